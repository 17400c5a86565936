"""The bus's topics (``zvpanel/v1/cameras/{camera_id}/{kind}``) and their JSON Schemas.

Each JSON payload has a schema ``zvpanel/schemas/bus_<kind>.json``; ``frame`` is raw JPEG
bytes. The schemas refer to the WebSocket feed's (``detections.json#/$defs/...``), so one
registry of every schema file resolves them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
from referencing import Registry, Resource

from ..web.feed import SCHEMA_DIR

__all__ = [
    "TOPIC_ROOT",
    "KINDS",
    "camera_topic",
    "gone_topic",
    "GONE_ROOT",
    "parse_topic",
    "subscription",
    "bus_validator",
    "validate_payload",
]

TOPIC_ROOT = "zvpanel/v1/cameras"
#: Where the broker announces a publishing process's end (its MQTT last will).
GONE_ROOT = "zvpanel/v1/origins"
#: Topic kinds: what a publisher sends (all but watch) and what a viewer sends (watch).
KINDS = ("status", "counts", "detections", "events", "frame", "watch")
#: The JSON Schema of each JSON kind (frame is JPEG bytes).
SCHEMA_OF = {
    "status": "bus_status",
    "counts": "bus_counts",
    "detections": "bus_detections",
    "events": "bus_event",
    "watch": "bus_watch",
    "gone": "bus_gone",
}


def camera_topic(camera_id: int, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {KINDS}")
    return f"{TOPIC_ROOT}/{int(camera_id)}/{kind}"


def subscription(kind: str) -> str:
    """The wildcard topic of one kind for every camera."""
    return f"{TOPIC_ROOT}/+/{kind}"


def gone_topic(origin: str) -> str:
    """The topic of ``origin``'s last will: the broker sends it when that process's
    connection ends without a goodbye (killed, crashed, network lost)."""
    return f"{GONE_ROOT}/{origin}/gone"


def parse_topic(topic: str) -> tuple[int, str] | None:
    """(camera id, kind) of a camera topic; None for anything else."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in KINDS or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


@cache
def _registry() -> Registry:
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def bus_validator(kind: str) -> jsonschema.protocols.Validator:
    """A validator for one JSON kind's payload (``$ref``s to other schema files resolved)."""
    if kind not in SCHEMA_OF:
        raise ValueError(f"kind: {kind!r} has no JSON schema (one of {sorted(SCHEMA_OF)})")
    schema = _registry().contents(f"https://zvpanel.invalid/schemas/{SCHEMA_OF[kind]}.json")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry(), format_checker=cls.FORMAT_CHECKER)


def validate_payload(kind: str, payload: Any) -> None:
    """Raise ``ValueError`` naming the bad member if ``payload`` breaks the kind's schema."""
    error = jsonschema.exceptions.best_match(bus_validator(kind).iter_errors(payload))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "payload"
        raise ValueError(f"{kind} {where}: {error.message}")
