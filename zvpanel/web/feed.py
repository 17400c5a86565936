"""The messages of the WebSocket feed, built from :class:`FrameResult` values.

Every message is a JSON object with a ``type``; its format is the JSON Schema file
``zvpanel/schemas/<type>.json`` (see :func:`load_schema`). Building the JSON of a result
is done once per result and shared by every client (:class:`MessageCache`); only the
per-connection ``dropped`` counter is spliced in per client.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from ..counting import CrossingEvent, ZoneEvent
from ..engine.result import CameraStatus, FrameResult
from ..errors import ZvpanelError
from ..numbers import refuse_json_constant

__all__ = [
    "SCHEMA_DIR",
    "MESSAGE_TYPES",
    "ClientMessageError",
    "iso_utc",
    "event_dict",
    "zone_event_dict",
    "zone_counts",
    "detections_message",
    "event_messages",
    "hello_message",
    "status_message",
    "error_message",
    "with_dropped",
    "MessageCache",
    "load_schema",
    "parse_client_message",
]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
#: Server -> client message types, one schema file each.
MESSAGE_TYPES = (
    "detections",
    "event",
    "zone_event",
    "status",
    "hello",
    "pong",
    "settings",
    "error",
)
#: Decimals kept in pixel coordinates, normalised coordinates and confidences.
PIXEL_DECIMALS = 1
NORMALISED_DECIMALS = 5
CONFIDENCE_DECIMALS = 4


class ClientMessageError(ZvpanelError, ValueError):
    """A message a client sent is not JSON or not one of the accepted messages."""


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def event_dict(event: CrossingEvent) -> dict[str, Any]:
    return {
        "line_id": event.line_id,
        "track_id": int(event.track_id),
        "direction": event.direction,
        "frame": int(event.frame_index),
        "confidence": round(float(event.confidence), CONFIDENCE_DECIMALS),
        "point": [round(float(v), PIXEL_DECIMALS) for v in event.point],
    }


def zone_event_dict(event: ZoneEvent) -> dict[str, Any]:
    point = event.point
    return {
        "zone_id": event.zone_id,
        "track_id": int(event.track_id),
        "kind": event.kind,
        "frame": int(event.frame_index),
        "dwell_s": None if event.dwell_s is None else round(float(event.dwell_s), 2),
        "point": None if point is None else [round(float(v), PIXEL_DECIMALS) for v in point],
    }


def zone_counts(result: FrameResult) -> dict[str, dict[str, Any]]:
    """Per zone: people inside now, enters and leaves so far, whether it is a queue and how
    long the people inside have been there (``schemas/detections.json#/$defs/zone_counts``)."""
    return {
        zone_id: {
            "occupancy": int(c["occupancy"]),
            "enters": int(c["enters"]),
            "leaves": int(c["leaves"]),
            "queue": bool(c["queue"]),
            "longest_inside_s": round(float(c["longest_inside_s"]), 2),
            "mean_inside_s": round(float(c["mean_inside_s"]), 2),
        }
        for zone_id, c in result.zones.items()
    }


def _clip01(value: float) -> float:
    return round(min(1.0, max(0.0, value)), NORMALISED_DECIMALS)


def _detections(result: FrameResult) -> list[dict[str, Any]]:
    dets = result.detections
    width, height = result.frame.width, result.frame.height
    labels = result.labels
    rows = []
    for xyxy, confidence, class_id, track_id in zip(
        dets.xyxy.tolist(),
        dets.confidence.tolist(),
        dets.class_id.tolist(),
        dets.tracker_id.tolist(),
        strict=True,
    ):
        x1, y1, x2, y2 = xyxy
        rows.append(
            {
                "label": labels[class_id] if 0 <= class_id < len(labels) else str(class_id),
                "class_id": int(class_id),
                "confidence": round(float(confidence), CONFIDENCE_DECIMALS),
                "bbox": [round(v, PIXEL_DECIMALS) for v in xyxy],
                "bbox_normalized": [
                    _clip01(x1 / width),
                    _clip01(y1 / height),
                    _clip01(x2 / width),
                    _clip01(y2 / height),
                ],
                "track_id": int(track_id) if track_id >= 0 else None,
            }
        )
    return rows


def detections_message(result: FrameResult) -> dict[str, Any]:
    """One processed frame: boxes, running counts per line, events, camera rate and status."""
    events = [event_dict(e) for e in result.events]
    status = result.status
    return {
        "type": "detections",
        "camera_id": int(result.camera_id),
        "timestamp": iso_utc(result.frame.captured_at),
        "frame": int(result.frame.index),
        "loop": int(result.frame.loop),
        "width": result.frame.width,
        "height": result.frame.height,
        "detections": _detections(result),
        "counts": {
            line_id: {"entries": int(c["entries"]), "exits": int(c["exits"])}
            for line_id, c in result.counts.items()
        },
        "event": events[0] if events else None,
        "events": events,
        "zones": zone_counts(result),
        "zone_events": [zone_event_dict(e) for e in result.zone_events],
        "status": status.state,
        "actual_fps": round(float(status.actual_fps), 3),
        "target_fps": round(float(status.target_fps), 3),
        "hardware_limited": bool(status.hardware_limited),
    }


def event_messages(result: FrameResult) -> list[dict[str, Any]]:
    """One ``event`` message per entry/exit and one ``zone_event`` message per zone enter/
    leave on this frame (for ``/ws/events``)."""
    timestamp = iso_utc(result.frame.captured_at)
    camera = {"camera_id": int(result.camera_id), "timestamp": timestamp}
    counts = {
        line_id: {"entries": int(c["entries"]), "exits": int(c["exits"])}
        for line_id, c in result.counts.items()
    }
    zones = zone_counts(result) if result.zone_events else {}
    return [
        {"type": "event"} | camera | event_dict(event) | {"counts": counts}
        for event in result.events
    ] + [
        {"type": "zone_event"} | camera | zone_event_dict(event) | {"zones": zones}
        for event in result.zone_events
    ]


def hello_message(endpoint: str, username: str, camera_ids: list[int], **options: Any) -> dict:
    """First message on every socket: what it is subscribed to and with which options."""
    return {
        "type": "hello",
        "endpoint": endpoint,
        "user": username,
        "camera_ids": sorted(camera_ids),
    } | options


def status_message(status: CameraStatus) -> dict[str, Any]:
    """A camera's state changed (e.g. it is reconnecting, and why): ``schemas/status.json``."""
    return {
        "type": "status",
        "camera_id": int(status.camera_id),
        "state": status.state,
        "reason": status.reason,
        "timestamp": iso_utc(datetime.now(timezone.utc)),
    }


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def with_dropped(message_json: str, dropped: int) -> str:
    """Append the connection's ``dropped`` counter to a serialised JSON object."""
    return f'{message_json[:-1]},"dropped":{int(dropped)}}}'


class MessageCache:
    """The serialised ``detections`` JSON of each camera's newest result, shared by clients.

    Used on the IOLoop thread only; keeps one entry per camera.
    """

    def __init__(self) -> None:
        self._newest: dict[int, tuple[FrameResult, str]] = {}

    def detections_json(self, result: FrameResult) -> str:
        cached = self._newest.get(result.camera_id)
        if cached is not None and cached[0] is result:
            return cached[1]
        text = json.dumps(detections_message(result), separators=(",", ":"))
        self._newest[result.camera_id] = (result, text)
        return text


# ---------------------------------------------------------------------- schemas
@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``zvpanel/schemas/<name>.json``."""
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no JSON schema {name!r} in {SCHEMA_DIR}")
    return json.loads(path.read_text())


@lru_cache(maxsize=1)
def _client_validator() -> jsonschema.protocols.Validator:
    schema = load_schema("client_message")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def parse_client_message(raw: str | bytes) -> dict[str, Any]:
    """Validate a client's message against ``client_message.json``.

    Raises :class:`ClientMessageError` naming what is wrong (never anything else).
    """
    if isinstance(raw, bytes):
        raise ClientMessageError("binary messages are not accepted; send JSON text")
    try:
        message = json.loads(raw, parse_constant=refuse_json_constant)
    except (ValueError, RecursionError) as error:
        raise ClientMessageError(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise ClientMessageError(f"expected a JSON object, got {type(message).__name__}")
    error = jsonschema.exceptions.best_match(_client_validator().iter_errors(message))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "message"
        raise ClientMessageError(f"{where}: {error.message}")
    return message
