"""Sources on real video files and a real (closed) network port: no capture is faked."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from zvpanel.errors import SourceError
from zvpanel.sources import (
    CameraSource,
    Frame,
    LatestFrame,
    SourceInfo,
    describe_source,
    iter_frames,
    open_capture,
    parse_source,
    probe_source,
    source_kind,
)

VTEST_FRAMES = 795
VTEST_FPS = 10.0
CLIP_FRAMES = 20
CLIP_FPS = 20.0
CLIP_SIZE = (160, 120)  # width, height
GRAY_STEP = 12  # clip frame k is uniformly gray k * GRAY_STEP, so a frame tells its index
WAIT_S = 10.0  # upper bound for polling loops; they normally end in well under a second


# -- fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    """A 20-frame, 20 fps MJPG clip whose frame k is uniformly gray k * GRAY_STEP."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), CLIP_FPS, CLIP_SIZE)
    assert writer.isOpened()
    for k in range(CLIP_FRAMES):
        writer.write(np.full((CLIP_SIZE[1], CLIP_SIZE[0], 3), k * GRAY_STEP, np.uint8))
    writer.release()
    return path


@pytest.fixture
def garbage_path(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.avi"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 200_000, np.uint8).tobytes())
    return path


@pytest.fixture
def empty_video_path(tmp_path: Path) -> Path:
    """A valid AVI container with no frame in it: opens, but decodes nothing."""
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), CLIP_FPS, CLIP_SIZE)
    writer.release()
    return path


@pytest.fixture
def closed_port_url() -> str:
    """An RTSP URL on a local port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"rtsp://127.0.0.1:{port}/none"


def clip_index(frame: Frame) -> int:
    return round(float(frame.image.mean()) / GRAY_STEP)


def open_fds_to(path: Path) -> list[str]:
    """File descriptors of this process that point at ``path`` (a capture holds one)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path.resolve()):
                found.append(fd)
        except OSError:
            pass
    return found


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("zvpanel-source-")]


def wait_until(predicate, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def read_until(reader, predicate, timeout: float = WAIT_S) -> list[Frame]:
    """Read frames until one satisfies ``predicate``; all frames read are returned."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = reader.read(timeout=0.5)
        if frame is None:
            continue
        frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError(f"no matching frame within {timeout} s; got {len(frames)} frames")


@pytest.fixture(autouse=True)
def no_source_thread_left():
    yield
    assert source_threads() == [], "a CameraSource thread outlived its test"


# -- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "parsed", "kind"),
    [
        ("0", 0, "webcam"),
        (" 12 ", 12, "webcam"),
        (3, 3, "webcam"),
        ("rtsp://cam.local:554/stream1", "rtsp://cam.local:554/stream1", "stream"),
        ("RTSPS://cam/1", "RTSPS://cam/1", "stream"),
        ("http://cam/video.mjpg", "http://cam/video.mjpg", "stream"),
        ("https://cam/live.m3u8", "https://cam/live.m3u8", "stream"),
        ("data/vtest.avi", "data/vtest.avi", "file"),
        (Path("/videos/shop 1.mp4"), "/videos/shop 1.mp4", "file"),
        ("C:\\videos\\a.mp4", "C:\\videos\\a.mp4", "file"),
    ],
)
def test_parse_source(given, parsed, kind):
    assert parse_source(given) == parsed
    assert source_kind(given) == kind


@pytest.mark.parametrize("bad", ["", "   ", -1, True, None, 2.5])
def test_parse_source_rejects(bad):
    with pytest.raises(SourceError):
        parse_source(bad)


def test_describe_source_masks_password():
    shown = describe_source("rtsp://admin:s3cret@10.0.0.5:554/live")
    assert "s3cret" not in shown
    assert shown == "rtsp://admin:***@10.0.0.5:554/live"
    assert describe_source(2) == "webcam 2"


# -- offline reading -------------------------------------------------------------------


def test_iter_frames_indices_and_media_time(video_path):
    frames = list(iter_frames(video_path, max_frames=5))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.media_time for f in frames] == pytest.approx([i / VTEST_FPS for i in range(5)])
    assert all(f.loop == 0 for f in frames)
    assert all(f.captured_at.tzinfo == timezone.utc for f in frames)
    assert (frames[0].width, frames[0].height) == (768, 576)
    assert not np.array_equal(frames[0].image, frames[4].image)


def test_iter_frames_from_start_to_end(video_path):
    tail = list(iter_frames(str(video_path), start=VTEST_FRAMES - 5))
    assert [f.index for f in tail] == list(range(VTEST_FRAMES - 5, VTEST_FRAMES))
    assert tail[0].media_time == pytest.approx((VTEST_FRAMES - 5) / VTEST_FPS)


def test_iter_frames_start_gives_the_same_images(clip_path):
    every = list(iter_frames(clip_path))
    assert len(every) == CLIP_FRAMES
    assert [clip_index(f) for f in every] == list(range(CLIP_FRAMES))
    later = list(iter_frames(clip_path, start=7, max_frames=3))
    assert [f.index for f in later] == [7, 8, 9]
    assert [clip_index(f) for f in later] == [7, 8, 9]
    assert later[0].media_time == pytest.approx(7 / CLIP_FPS)


def test_iter_frames_releases_capture_when_closed_early(video_path):
    frames = iter_frames(video_path)
    next(frames)
    assert open_fds_to(video_path), "an open capture should hold the file open"
    frames.close()
    assert open_fds_to(video_path) == []


def test_iter_frames_releases_capture_at_the_end(clip_path):
    assert len(list(iter_frames(clip_path))) == CLIP_FRAMES
    assert open_fds_to(clip_path) == []


def test_probe_source(video_path):
    info = probe_source(video_path)
    assert info == SourceInfo(
        width=768, height=576, fps=VTEST_FPS, kind="file", frame_count=VTEST_FRAMES
    )
    assert open_fds_to(video_path) == []


# -- errors ----------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.avi"
    for call in (open_capture, probe_source, lambda s: next(iter_frames(s))):
        with pytest.raises(SourceError, match="no such file") as err:
            call(missing)
        assert str(missing) in str(err.value)


def test_garbage_file_is_named(garbage_path):
    for call in (open_capture, probe_source, lambda s: next(iter_frames(s))):
        with pytest.raises(SourceError, match="not a video OpenCV can decode") as err:
            call(garbage_path)
        assert str(garbage_path) in str(err.value)


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(SourceError, match="not a regular file"):
        probe_source(tmp_path)


def test_file_without_frames_is_named(empty_video_path):
    with pytest.raises(SourceError, match="returned no frame") as err:
        probe_source(empty_video_path)
    assert str(empty_video_path) in str(err.value)
    with pytest.raises(SourceError, match="returned no frame"):
        list(iter_frames(empty_video_path))
    assert open_fds_to(empty_video_path) == []


def test_unreachable_stream_probe(closed_port_url):
    with pytest.raises(SourceError, match="cannot connect") as err:
        probe_source(closed_port_url, timeout_s=2.0)
    assert closed_port_url in str(err.value)


# -- the one-slot buffer -----------------------------------------------------------------


def _frame(index: int) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), index, index / 10, datetime.now(timezone.utc))


def test_latest_frame_keeps_only_the_newest():
    buffer = LatestFrame()
    assert buffer.latest() is None
    assert buffer.wait_newer(0, timeout=0.01) is None
    for i in range(5):
        buffer.put(_frame(i))
    seq, frame = buffer.wait_newer(0, timeout=0)
    assert (seq, frame.index) == (5, 4)  # four frames skipped, none queued
    assert buffer.wait_newer(5, timeout=0.01) is None


def test_latest_frame_wakes_a_waiting_consumer():
    buffer = LatestFrame()
    got: list = []
    consumer = threading.Thread(target=lambda: got.append(buffer.wait_newer(0, timeout=WAIT_S)))
    consumer.start()
    time.sleep(0.05)
    buffer.put(_frame(42))
    consumer.join(WAIT_S)
    assert not consumer.is_alive()
    assert got[0][0] == 1 and got[0][1].index == 42


# -- the camera source: files ---------------------------------------------------------------


def test_file_source_loops_and_restarts_index(clip_path):
    source = CameraSource(clip_path, camera_id=7, realtime=False, loop=True)
    reader = source.reader()
    source.start()
    try:
        frames = read_until(reader, lambda f: f.loop >= 2)
    finally:
        assert source.stop()
    status = source.status
    assert status.state == "stopped"
    assert status.frames_decoded >= 2 * CLIP_FRAMES
    assert status.captures_opened == 1  # looping rewinds, it does not reopen
    assert (status.width, status.height, status.nominal_fps) == (*CLIP_SIZE, CLIP_FPS)
    # Every frame's index is its position in the file (the gray level says which frame it is).
    assert all(f.index == clip_index(f) for f in frames)
    assert all(f.media_time == pytest.approx(f.index / CLIP_FPS) for f in frames)
    # Within a pass indices increase; across a pass boundary loop grows and index restarts.
    for before, after in zip(frames, frames[1:], strict=False):
        if after.loop == before.loop:
            assert after.index > before.index
        else:
            assert after.loop > before.loop
    assert reader.frames_read == len(frames)


def test_file_source_without_loop_plays_once_and_stops(clip_path):
    source = CameraSource(clip_path, realtime=False, loop=False)
    reader = source.reader()
    source.start()
    try:
        last = read_until(reader, lambda f: f.index == CLIP_FRAMES - 1)[-1]
        assert wait_until(lambda: not source.running)
        assert source.status.state == "stopped"
        assert source.status.frames_decoded == CLIP_FRAMES
        assert last.loop == 0
        assert reader.frames_read + reader.dropped == CLIP_FRAMES
    finally:
        source.stop()


def test_one_decoder_feeds_two_readers(clip_path):
    source = CameraSource(clip_path, camera_id=3, realtime=True, loop=False)
    fast, slow = source.reader(), source.reader()
    slow_frames: list[Frame] = []

    def read_slowly() -> None:
        # Far slower than the clip's 20 fps: this reader must miss frames, never queue them.
        while True:
            frame = slow.read(timeout=WAIT_S)
            if frame is None:
                return
            slow_frames.append(frame)
            if frame.index == CLIP_FRAMES - 1:
                return
            time.sleep(0.3)

    slow_thread = threading.Thread(target=read_slowly)
    source.start()
    slow_thread.start()
    try:
        fast_frames = read_until(fast, lambda f: f.index == CLIP_FRAMES - 1)
        assert len(source_threads()) <= 1
        slow_thread.join(WAIT_S)
        assert not slow_thread.is_alive()
    finally:
        assert source.stop()
    status = source.status
    assert status.captures_opened == 1
    assert status.frames_decoded == CLIP_FRAMES
    assert slow_frames and slow_frames[-1].index == CLIP_FRAMES - 1
    assert fast_frames[-1].index == CLIP_FRAMES - 1
    # Each reader saw or counted as dropped every frame the one decoder produced.
    assert fast.frames_read + fast.dropped == CLIP_FRAMES
    assert slow.frames_read + slow.dropped == CLIP_FRAMES
    assert slow.dropped > 0
    assert slow.dropped > fast.dropped
    # Both got the very same frame objects: one decode, shared.
    shared = {id(f) for f in fast_frames} & {id(f) for f in slow_frames}
    assert shared


def test_realtime_file_is_paced_not_burst(clip_path):
    """Wide bound only: 20 frames at 20 fps cannot come out in less than half their time."""
    source = CameraSource(clip_path, realtime=True, loop=False)
    reader = source.reader()
    source.start()
    try:
        frames = read_until(reader, lambda f: f.index == CLIP_FRAMES - 1)
    finally:
        source.stop()
    first = frames[0]
    span = (frames[-1].captured_at - first.captured_at).total_seconds()
    nominal = (frames[-1].index - first.index) / CLIP_FPS
    assert span >= 0.5 * nominal


def test_new_reader_gets_the_current_frame(clip_path):
    source = CameraSource(clip_path, realtime=False, loop=False).start()
    try:
        assert wait_until(lambda: source.status.state == "stopped")
        late = source.reader()
        frame = late.read(timeout=1.0)
        assert frame is not None and frame.index == CLIP_FRAMES - 1
        assert late.dropped == 0
        assert late.read(timeout=0.05) is None
    finally:
        source.stop()


def test_stop_leaves_no_thread_and_releases_the_file(video_path):
    source = CameraSource(video_path, camera_id=11, realtime=True)
    with source:
        assert source.reader().read(timeout=WAIT_S) is not None
        assert [t.name for t in source_threads()] == ["zvpanel-source-11"]
        assert source.status.state == "online"
    assert source_threads() == []
    assert not source.running
    assert source.status.state == "stopped"
    assert open_fds_to(video_path) == []
    # A stopped source can be started again.
    source.start()
    try:
        assert source.reader().read(timeout=WAIT_S) is not None
    finally:
        assert source.stop()
    assert source.status.captures_opened == 2


@pytest.mark.parametrize("fixture", ["garbage_path", "empty_video_path"])
def test_broken_file_goes_offline_naming_it(request, fixture):
    path: Path = request.getfixturevalue(fixture)
    source = CameraSource(path, camera_id=5, realtime=False).start()
    try:
        # The thread ends by itself: no retry loop, no reopen spin.
        assert wait_until(lambda: not source.running)
        status = source.status
        assert status.state == "offline"
        assert str(path) in status.last_error
        assert status.frames_decoded == 0
        assert status.captures_opened <= 1
        assert source.reader().read(timeout=0.05) is None
    finally:
        source.stop()


def test_missing_file_goes_offline(tmp_path):
    missing = tmp_path / "gone.mp4"
    source = CameraSource(missing).start()
    try:
        assert wait_until(lambda: not source.running)
        assert source.status.state == "offline"
        assert "no such file" in source.status.last_error
        assert str(missing) in source.status.last_error
    finally:
        source.stop()
    assert source.status.state == "stopped"
    assert str(missing) in source.status.last_error


@pytest.fixture
def truncated_path(video_path: Path, tmp_path: Path) -> Path:
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(video_path.read_bytes()[:300_000])  # header intact, data cut
    return truncated


def test_iter_frames_warns_about_a_truncated_file(truncated_path, caplog):
    with caplog.at_level("WARNING", logger="zvpanel.sources"):
        frames = list(iter_frames(truncated_path))
    assert 0 < len(frames) < VTEST_FRAMES
    assert [f.index for f in frames] == list(range(len(frames)))
    assert any(
        str(truncated_path) in r.getMessage() and "truncated" in r.getMessage()
        for r in caplog.records
    )


def test_truncated_avi_is_reported_and_does_not_crash(truncated_path):
    truncated = truncated_path
    source = CameraSource(truncated, realtime=False, loop=True).start()
    try:
        assert wait_until(lambda: source.status.last_error is not None)
        status = source.status
        assert str(truncated) in status.last_error
        assert "truncated" in status.last_error
        assert status.frames_decoded > 0
        assert source.running  # it keeps playing the part that decodes
    finally:
        assert source.stop()


# -- the camera source: streams ----------------------------------------------------------------


def test_unreachable_stream_reconnects_then_stops_cleanly(closed_port_url):
    source = CameraSource(closed_port_url, camera_id=9).start()
    try:
        assert wait_until(lambda: source.status.state == "reconnecting")
        status = source.status
        assert closed_port_url in status.last_error
        assert "cannot connect" in status.last_error
        assert status.frames_decoded == 0
        # The first retry comes after the initial backoff (0.5 s), not in a tight loop.
        assert wait_until(lambda: source.status.reconnects >= 1)
        assert source.status.reconnects < 5
    finally:
        assert source.stop(timeout=WAIT_S)
    assert source.status.state == "stopped"
    assert source_threads() == []
