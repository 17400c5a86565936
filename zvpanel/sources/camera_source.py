"""One decoder thread per camera, shared by any number of frame readers.

A :class:`CameraSource` owns exactly one ``cv2.VideoCapture`` and one thread that decodes
into a :class:`~zvpanel.sources.buffer.LatestFrame`. Consumers call :meth:`CameraSource.reader`
and read the newest frame; what they were too slow to see is counted, never queued.

- Files play at their own frame rate (``realtime=True``) or as fast as they decode, and
  loop (``Frame.loop`` counts passes, ``Frame.index`` restarts at 0). A file that cannot be
  opened or has no decodable frame makes the source ``offline`` with the reason.
- Streams and webcams deliver frames as they come; when opening or reading fails the
  source is ``reconnecting`` (with ``last_error``) and retries with exponential backoff.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import cv2
import numpy as np

from ..errors import SourceError
from ..rate import Pacer
from .buffer import LatestFrame
from .capture import (
    OPEN_TIMEOUT_S,
    READ_TIMEOUT_S,
    TRUNCATED_RATIO,
    SourceSpec,
    capture_fps,
    describe_source,
    open_capture,
    parse_source,
    source_kind,
)
from .frame import Frame

__all__ = [
    "SourceState",
    "SourceStatus",
    "FrameReader",
    "CameraSource",
    "RECONNECT_INITIAL_S",
    "RECONNECT_MAX_S",
    "RECONNECT_JITTER",
    "STOP_TIMEOUT_S",
    "reconnect_delay",
]

log = logging.getLogger(__name__)

# Reconnect delays: 0.5 s, 1 s, 2 s, ... capped at RECONNECT_MAX_S, reset after a frame
# arrives. The cap keeps a stream that comes back found within 10 s (one delay plus one
# open), while a dead host is still tried only every few seconds.
RECONNECT_INITIAL_S = 0.5
RECONNECT_FACTOR = 2.0
RECONNECT_MAX_S = 6.0
# Each delay is shortened by up to this share at random, so cameras that lost the same
# network at once do not all retry in the same instant.
RECONNECT_JITTER = 0.25
# The thread may be inside an FFmpeg open or read when asked to stop; both give up after
# their timeouts, so a join this long sees the thread end.
STOP_TIMEOUT_S = OPEN_TIMEOUT_S + READ_TIMEOUT_S + 1.0
# A realtime file that falls further behind its schedule than this (slow disk, busy CPU)
# restarts the schedule instead of bursting frames out to catch up.
MAX_PACING_LAG_S = 1.0

# The same values as zvpanel.engine.result.SourceState (kept here to avoid an import cycle).
SourceState = Literal["starting", "online", "reconnecting", "offline", "stopped"]


def reconnect_delay(backoff: float) -> float:
    """The wait before the next reconnect: ``backoff`` (capped), less a random jitter."""
    return min(backoff, RECONNECT_MAX_S) * (1.0 - RECONNECT_JITTER * random.random())


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's health, safe to hand to any thread.

    ``last_error`` is the most recent problem and is kept after recovery, so a camera
    that drops out now and then stays visible. ``nominal_fps`` is the container rate for
    files and the rate a live source reports (0.0 if unknown).
    """

    state: SourceState = "starting"
    last_error: str | None = None
    frames_decoded: int = 0
    nominal_fps: float = 0.0
    width: int = 0
    height: int = 0
    reconnects: int = 0
    captures_opened: int = 0


class FrameReader:
    """One consumer's view of a source: the newest frame since its last read.

    Belongs to one consumer thread. A new reader's first ``read`` returns the frame the
    source holds right now, if any.
    """

    def __init__(self, buffer: LatestFrame) -> None:
        self._buffer = buffer
        self._last_seq = max(buffer.seq - 1, 0)
        self._dropped = 0
        self._frames_read = 0

    def read(self, timeout: float | None = None) -> Frame | None:
        """Wait up to ``timeout`` seconds for a frame newer than the last one read."""
        got = self._buffer.wait_newer(self._last_seq, timeout)
        if got is None:
            return None
        seq, frame = got
        self._dropped += seq - self._last_seq - 1
        self._last_seq = seq
        self._frames_read += 1
        return frame

    @property
    def dropped(self) -> int:
        """Frames decoded since this reader started that it never saw."""
        return self._dropped

    @property
    def frames_read(self) -> int:
        return self._frames_read


class CameraSource:
    """Decodes one camera (file, stream or webcam) on one thread for many readers."""

    def __init__(
        self,
        source: SourceSpec,
        *,
        camera_id: int = 0,
        realtime: bool = True,
        loop: bool = True,
    ) -> None:
        self.source = parse_source(source)
        self.kind = source_kind(self.source)
        self.name = describe_source(self.source)
        self.camera_id = camera_id
        self.realtime = realtime
        self.loop = loop
        self._buffer = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the status fields below
        self._state: SourceState = "starting"
        self._last_error: str | None = None
        self._frames_decoded = 0
        self._nominal_fps = 0.0
        self._width = 0
        self._height = 0
        self._reconnects = 0
        self._captures_opened = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> CameraSource:
        """Start the decoder thread (no-op if it is running)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._set_state("starting")
        self._thread = threading.Thread(
            target=self._run, name=f"zvpanel-source-{self.camera_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the thread, wait for it and its capture release; False if it did not end."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning(
                    "camera %s: source thread for %s did not stop within %.1f s",
                    self.camera_id,
                    self.name,
                    timeout,
                )
                return False
            self._thread = None
        self._set_state("stopped")
        return True

    def __enter__(self) -> CameraSource:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- consumers -------------------------------------------------------------------

    def reader(self) -> FrameReader:
        """A new consumer of this source's frames (the decoder is shared, not duplicated)."""
        return FrameReader(self._buffer)

    def latest(self) -> Frame | None:
        """The newest decoded frame, without waiting."""
        got = self._buffer.latest()
        return None if got is None else got[1]

    @property
    def status(self) -> SourceStatus:
        with self._lock:
            return SourceStatus(
                state=self._state,
                last_error=self._last_error,
                frames_decoded=self._frames_decoded,
                nominal_fps=self._nominal_fps,
                width=self._width,
                height=self._height,
                reconnects=self._reconnects,
                captures_opened=self._captures_opened,
            )

    # -- status helpers --------------------------------------------------------------

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _fail(self, state: SourceState, error: str) -> None:
        level = logging.ERROR if state == "offline" else logging.WARNING
        log.log(level, "camera %s: %s (%s)", self.camera_id, error, state)
        self._set_state(state, error)

    def _open(self) -> cv2.VideoCapture:
        cap = open_capture(self.source)
        with self._lock:
            self._captures_opened += 1
            self._nominal_fps = capture_fps(cap, self.kind)
        return cap

    def _publish(self, image: np.ndarray, index: int, media_time: float, loop: int) -> None:
        frame = Frame(
            image=image,
            index=index,
            media_time=media_time,
            captured_at=datetime.now(timezone.utc),
            loop=loop,
        )
        with self._lock:
            self._frames_decoded += 1
            self._state = "online"
            self._height, self._width = int(image.shape[0]), int(image.shape[1])
        self._buffer.put(frame)

    # -- decoder thread --------------------------------------------------------------

    def _run(self) -> None:
        backoff = RECONNECT_INITIAL_S
        while not self._stop.is_set():
            try:
                if self.kind == "file":
                    self._run_file()
                else:
                    self._run_live()
                return
            except Exception as exc:  # top of the thread loop: log, back off, keep going
                log.exception("camera %s: unexpected error reading %s", self.camera_id, self.name)
                self._set_state("reconnecting", f"unexpected error reading {self.name!r}: {exc!r}")
                if self._stop.wait(reconnect_delay(backoff)):
                    return
                backoff = min(backoff * RECONNECT_FACTOR, RECONNECT_MAX_S)
                with self._lock:
                    self._reconnects += 1

    def _run_file(self) -> None:
        try:
            cap = self._open()
        except SourceError as exc:
            self._fail("offline", str(exc))
            return
        try:
            fps = self._nominal_fps or 1.0
            announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            pacer = Pacer(fps, max_lag=MAX_PACING_LAG_S) if self.realtime else None
            passes = 0
            fresh = True  # the capture was just opened (not rewound)
            while not self._stop.is_set():
                decoded = self._play_once(cap, fps, passes, pacer)
                if self._stop.is_set():
                    return
                if decoded == 0:
                    if fresh:
                        self._fail("offline", f"video file {self.name!r} has no decodable frame")
                        return
                    # Rewinding did not work for this container: start from a new capture.
                    cap.release()
                    cap = self._open()
                    fresh = True
                    continue
                # A damaged file still loops over the part that decodes; the status says so.
                if passes == 0 and announced and decoded < announced * TRUNCATED_RATIO:
                    self._fail(
                        "online",
                        f"video file {self.name!r} ended after {decoded} of {announced} "
                        "frames (truncated or damaged)",
                    )
                if not self.loop:
                    self._set_state("stopped")
                    return
                passes += 1
                fresh = False
                if not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    cap.release()
                    cap = self._open()
                    fresh = True
        finally:
            cap.release()

    def _play_once(
        self, cap: cv2.VideoCapture, fps: float, passes: int, pacer: Pacer | None
    ) -> int:
        """Decode one pass of a file; returns how many frames it produced."""
        index = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                break
            if pacer is not None:
                delay = pacer.delay(time.monotonic())
                if delay > 0 and self._stop.wait(delay):
                    break
                pacer.taken(time.monotonic())
            self._publish(image, index, index / fps, passes)
            index += 1
        return index

    def _run_live(self) -> None:
        backoff = RECONNECT_INITIAL_S
        index = 0  # keeps counting across reconnects: decode order within the source
        online_since: float | None = None
        while not self._stop.is_set():
            got_frame = False
            try:
                cap = self._open()
            except SourceError as exc:
                error = str(exc)
            else:
                try:
                    while not self._stop.is_set():
                        ok, image = cap.read()
                        if not ok or image is None:
                            break
                        if online_since is None:
                            online_since = time.monotonic()
                        got_frame = True
                        self._publish(image, index, time.monotonic() - online_since, 0)
                        index += 1
                finally:
                    cap.release()
                error = (
                    f"{self.kind} {self.name!r} stopped sending frames"
                    if got_frame
                    else f"{self.kind} {self.name!r} opened but returned no frame"
                )
            if self._stop.is_set():
                return
            if got_frame:
                backoff = RECONNECT_INITIAL_S
            delay = reconnect_delay(backoff)
            self._fail("reconnecting", f"{error}; retrying in {delay:.1f} s")
            if self._stop.wait(delay):
                return
            backoff = min(backoff * RECONNECT_FACTOR, RECONNECT_MAX_S)
            with self._lock:
                self._reconnects += 1
