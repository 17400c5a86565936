"""Review of counts: crops made from real footage by the real model, stored with their
events on both backends, reviews that never change events, raw vs reviewed counts."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import panel as pn
import pytest

from zvpanel.config import MAX_CROP_SIZE
from zvpanel.crops import HEAD_BLOCKS, CropSettings, event_crop, head_region, padded_box
from zvpanel.errors import InvalidValueError, NotFoundError
from zvpanel.storage import (
    REVIEWED_COLUMNS,
    Database,
    EventCrop,
    EventFilter,
    EventRow,
    EventWriter,
    reviewed_counts,
    utc_text,
)
from zvpanel.storage.values import new_event_uid

UTC = timezone.utc
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
VIDEO = Path(__file__).resolve().parents[1] / "data" / "vtest.avi"


@pytest.fixture
def camera(db: Database):
    store = db.create_store("Main street", "Europe/Paris")
    return db.create_camera(store.id, "Door", str(VIDEO))


def jpeg(shade: int = 128) -> bytes:
    ok, buffer = cv2.imencode(".jpg", np.full((40, 20, 3), shade, np.uint8))
    assert ok
    return buffer.tobytes()


def add_events(db: Database, camera, items, line: str = "door", crops: bool = True) -> list[str]:
    """Insert (time, direction) events on ``line``, each with a crop; their uids."""
    rows = [
        EventRow(camera.store_id, camera.id, line, i, d, utc_text(t), i, 0.8, new_event_uid())
        for i, (t, d) in enumerate(items)
    ]
    pictures = [EventCrop(r.uid, camera.id, r.ts_utc, jpeg(i)) for i, r in enumerate(rows)]
    db.insert_events(rows, pictures if crops else ())
    return [r.uid for r in rows]


# --------------------------------------------------------------------------- storage
def test_crops_are_stored_with_their_events_and_read_back(db: Database, camera):
    uids = add_events(db, camera, [(T0, "entry"), (T0 + timedelta(minutes=1), "exit")])
    assert db.event_crop(uids[0]) == jpeg(0)
    assert db.event_crop(uids[1]) == jpeg(1)
    assert db.event_crop(new_event_uid()) is None
    listed = db.line_events(camera.id, "door", T0, T0 + timedelta(hours=1))
    assert [e.event.uid for e in listed] == uids  # time order
    assert all(e.has_crop and e.verdict is None for e in listed)


def test_a_batch_sent_again_keeps_each_crop_once(db: Database, camera):
    row = EventRow(camera.store_id, camera.id, "door", 1, "entry", utc_text(T0), 1, 0.8, "u-1")
    crop = EventCrop("u-1", camera.id, row.ts_utc, jpeg(7))
    db.insert_events([row], [crop])
    db.insert_events([row], [crop._replace(jpeg=jpeg(200))])
    assert db.event_crop("u-1") == jpeg(7)
    assert len(db.events()) == 1


def test_a_crop_that_is_not_a_small_jpeg_is_refused(db: Database, camera):
    row = EventRow(camera.store_id, camera.id, "door", 1, "entry", utc_text(T0), 1, 0.8, "u-2")
    with pytest.raises(InvalidValueError, match="crop of event u-2: 0 bytes"):
        db.insert_events([row], [EventCrop("u-2", camera.id, row.ts_utc, b"")])
    assert db.events() == []  # nothing half-written


def test_crop_retention_and_event_roll_up_remove_crops(db: Database, camera):
    old, new = add_events(db, camera, [(T0 - timedelta(days=10), "entry"), (T0, "entry")])
    assert db.apply_crop_retention(5, now=T0) == 1
    assert db.event_crop(old) is None and db.event_crop(new) is not None
    assert len(db.events()) == 2  # crop retention never touches events
    db.roll_up_events(T0 + timedelta(hours=1))  # the events go: their crops go with them
    assert db.event_crop(new) is None
    with pytest.raises(InvalidValueError, match="crop retention days 0"):
        db.apply_crop_retention(0)


def test_reviews_never_change_the_recorded_events(db: Database, camera):
    uids = add_events(db, camera, [(T0, "entry"), (T0 + timedelta(seconds=2), "entry")])
    before = db.events()
    review = db.review_event(uids[1], "double", "alice")
    assert (review.verdict, review.reviewer, review.line_id) == ("double", "alice", "door")
    db.review_event(uids[1], "wrong", "bob")  # a new verdict replaces the old one
    missed = db.add_missed(camera.id, "door", "exit", T0 + timedelta(minutes=3), "bob")
    assert db.events() == before
    assert db.count_events(camera_id=camera.id) == {"entry": 2, "exit": 0}
    reviews = db.reviews(camera.id)
    assert [(r.event_uid, r.verdict, r.reviewer) for r in reviews] == [
        (uids[1], "wrong", "bob"),
        (None, "missed", "bob"),
    ]
    listed = db.line_events(camera.id, "door", T0, T0 + timedelta(hours=1))
    assert [e.verdict for e in listed] == [None, "wrong"]
    assert db.delete_review(missed.id) and not db.delete_review(missed.id)


def test_bad_reviews_are_refused_naming_the_value(db: Database, camera):
    (uid,) = add_events(db, camera, [(T0, "entry")])
    with pytest.raises(InvalidValueError, match="verdict 'missed'"):
        db.review_event(uid, "missed", "alice")
    with pytest.raises(NotFoundError, match="no event with uid 'nope'"):
        db.review_event("nope", "wrong", "alice")
    with pytest.raises(InvalidValueError, match="direction 'in'"):
        db.add_missed(camera.id, "door", "in", T0, "alice")
    with pytest.raises(NotFoundError, match="no camera with id 999"):
        db.add_missed(999, "door", "entry", T0, "alice")
    assert db.reviews() == []


def test_reviewed_counts_per_line_and_local_day(db: Database, camera):
    # Paris is UTC+1 in January: 23:30 UTC on the 15th is the 16th locally.
    day1 = [(T0 + timedelta(minutes=i), "entry") for i in range(4)]
    late = [(datetime(2026, 1, 15, 23, 30, tzinfo=UTC), "entry")]
    uids = add_events(db, camera, day1 + late)
    add_events(db, camera, [(T0, "exit")], line="side")
    db.review_event(uids[0], "wrong", "alice")
    db.review_event(uids[1], "double", "alice")
    db.add_missed(camera.id, "door", "entry", T0 + timedelta(hours=1), "alice")
    db.add_missed(camera.id, "door", "exit", T0 + timedelta(hours=1), "alice")
    counts = reviewed_counts(db, "Europe/Paris", EventFilter(store_id=camera.store_id))
    assert list(counts.columns) == REVIEWED_COLUMNS
    rows = {
        (r.date, r.line_id, r.direction): (r.raw, r.wrong, r.double, r.missed, r.reviewed)
        for r in counts.itertuples()
    }
    assert rows == {
        (date(2026, 1, 15), "door", "entry"): (4, 1, 1, 1, 3),
        (date(2026, 1, 15), "door", "exit"): (0, 0, 0, 1, 1),
        (date(2026, 1, 15), "side", "exit"): (1, 0, 0, 0, 1),
        (date(2026, 1, 16), "door", "entry"): (1, 0, 0, 0, 1),
    }
    keys = zip(counts.date, counts.line_id, counts.direction, strict=True)
    precision = dict(zip(keys, counts.precision, strict=True))
    assert precision[(date(2026, 1, 15), "door", "entry")] == pytest.approx(0.5)
    assert np.isnan(precision[(date(2026, 1, 15), "door", "exit")])  # nothing counted
    only_side = reviewed_counts(db, "Europe/Paris", EventFilter(camera_id=camera.id), "side")
    assert only_side["raw"].tolist() == [1]


def test_reviewed_counts_keep_raw_counts_and_reviews_after_a_roll_up(db: Database, camera):
    uids = add_events(db, camera, [(T0, "entry"), (T0 + timedelta(minutes=5), "entry")])
    db.review_event(uids[0], "wrong", "alice")
    before = reviewed_counts(db, "UTC")
    db.roll_up_events(T0 + timedelta(hours=2))
    assert db.events() == []
    after = reviewed_counts(db, "UTC")
    assert after.equals(before)
    assert after[["raw", "wrong", "reviewed"]].values.tolist() == [[2, 1, 1]]


def test_the_event_writer_stores_the_crops_it_is_given(db: Database, camera):
    from zvpanel.counting import CrossingEvent

    events = [CrossingEvent("door", 3, "entry", 10, 0.9, (1.0, 2.0))] * 2
    with EventWriter(db) as writer:
        assert writer.submit(camera.store_id, camera.id, events, T0, crops=(jpeg(9), None))
        assert writer.flush(10)
    first, second = db.line_events(camera.id, "door", T0, T0 + timedelta(seconds=1))
    assert db.event_crop(first.event.uid) == jpeg(9) and first.has_crop
    assert not second.has_crop


# --------------------------------------------------------------------------- crops
def test_crop_box_is_padded_and_clipped():
    assert padded_box((100, 100, 140, 200), 768, 576) == (94, 85, 146, 215)
    assert padded_box((0, 500, 30, 576), 768, 576) == (0, 488, 35, 576)
    assert head_region((100, 100, 140, 200), 768, 576) == (100, 100, 140, 125)


def test_crop_settings_are_validated():
    with pytest.raises(ValueError, match="crop size=8"):
        CropSettings(size=8)


def test_the_head_is_pixelated_and_the_rest_kept(model_path: str, video_path: Path):
    from zvpanel.detection import YoloDetector
    from zvpanel.sources import iter_frames

    frame = next(iter(iter_frames(video_path, max_frames=1)))
    boxes = YoloDetector(model_path).detect(frame.image).xyxy
    box = max(boxes, key=lambda b: b[3] - b[1])  # the tallest person in the first frame
    size = CropSettings(size=MAX_CROP_SIZE)  # no scaling: pixels comparable with the frame
    plain = decode(event_crop(frame.image, box, CropSettings(MAX_CROP_SIZE, privacy_blur=False)))
    blurred = decode(event_crop(frame.image, box, size))
    left, top, _, _ = padded_box(box, frame.width, frame.height)
    x1, y1, x2, y2 = head_region(box, frame.width, frame.height)
    head = (slice(y1 - top, y2 - top), slice(x1 - left, x2 - left))
    below = slice(y2 - top + 8, None)  # past JPEG blocks that straddle the head's edge
    # The head is a mosaic HEAD_BLOCKS across: that is all of it a stored crop keeps.
    face = frame.image[y1:y2, x1:x2]
    blocks = (HEAD_BLOCKS, round(HEAD_BLOCKS * face.shape[0] / face.shape[1]))
    mosaic = cv2.resize(cv2.resize(face, blocks, interpolation=cv2.INTER_AREA),
                        face.shape[1::-1], interpolation=cv2.INTER_NEAREST)  # fmt: skip
    # (Measured: 3.9 from JPEG's rounding, against 36 for the face as it was.)
    assert difference(blurred[head], mosaic) < 0.25 * difference(plain[head], mosaic)
    # The body keeps its detail.
    assert difference(blurred[below], plain[below]) < 1


def test_real_footage_through_the_real_model_stores_a_crop_per_crossing(
    tmp_path: Path, model_path: str, video_path: Path
):
    from zvpanel.calibration import parse_calibration
    from zvpanel.detection import YoloDetector
    from zvpanel.engine import Engine, ResultHub

    db = Database(tmp_path / "crops.db")
    store = db.create_store("Shop", "UTC")
    camera = db.create_camera(store.id, "Door", str(video_path))
    aisle = {"id": "aisle", "x1": 0, "y1": 300, "x2": 768, "y2": 300}
    db.set_calibration(camera.id, parse_calibration({"lines": [aisle], "detection_fps": 10.0}))
    settings = CropSettings(size=96)
    with EventWriter(db) as writer:
        engine = Engine(db, ResultHub(), writer, YoloDetector(model_path), crops=settings)
        engine.start()
        try:
            wait_until(lambda: len(db.events(camera_id=camera.id)) >= 3)
        finally:
            engine.stop()
        assert writer.flush(10)
    events = db.events(camera_id=camera.id)
    crops = [db.event_crop(e.uid) for e in events]
    assert len(events) >= 3 and all(c is not None for c in crops)
    for crop in crops:
        image = decode(crop)
        assert max(image.shape[:2]) <= settings.size and min(image.shape[:2]) >= 16
        assert len(crop) < 20_000
    # A person is taller than wide: the crop is the person, not a strip of the frame.
    assert all(decode(c).shape[0] > decode(c).shape[1] for c in crops)
    db.close()


def test_a_node_forwards_crops_with_their_events(db: Database, camera, tmp_path: Path):
    from zvpanel.counting import CrossingEvent
    from zvpanel.node.outbox import Forwarder, Outbox

    outbox = Outbox(tmp_path / "outbox.db", "node-1")
    events = [CrossingEvent("door", 4, "exit", 12, 0.8, (1.0, 2.0))] * 2
    outbox.submit(camera.store_id, camera.id, events, T0, crops=(None, jpeg(33)))
    assert Forwarder(outbox, db).forward_once() == 2
    first, second = db.line_events(camera.id, "door", T0, T0 + timedelta(seconds=1))
    assert not first.has_crop and db.event_crop(second.event.uid) == jpeg(33)
    assert second.event.node == "node-1"
    assert outbox.crops([second.event.uid]) == []  # forwarded: the node lets it go
    outbox.close()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images' pixels."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def wait_until(condition, seconds: float = 90.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out waiting for crossings"
        time.sleep(0.2)


def test_the_retention_job_deletes_old_crops_and_keeps_events(db: Database, camera):
    from zvpanel.storage.retention import RetentionJob

    now = datetime.now(UTC)
    old, new = add_events(db, camera, [(now - timedelta(days=40), "entry"), (now, "exit")])
    job = RetentionJob(db, None, crop_days=30)
    job.run_once()
    assert db.event_crop(old) is None and db.event_crop(new) is not None
    assert len(db.events()) == 2 and job.runs == 1


# --------------------------------------------------------------------------- the page
def demo_events(app, n: int) -> tuple[object, list[str]]:
    """``n`` entries on the demo camera's line, a minute apart from now, with crops."""
    camera = next(c for c in app.db.list_cameras() if c.name == "Demo camera")
    line = app.db.get_calibration(camera.id).lines[0].id
    now = datetime.now(UTC) - timedelta(minutes=n)
    items = [(now + timedelta(minutes=i), "entry") for i in range(n)]
    return camera, add_events(app.db, camera, items, line=line)


def review_view(app, username: str = "admin", admin: bool = True):
    from zvpanel.ui.review import ReviewView
    from zvpanel.web.auth import issue_token, verify_token

    version = app.db.get_user(username).token_version
    token = issue_token(app.settings, username, admin=admin, version=version)
    claims = verify_token(app.settings, token)
    return ReviewView(app, claims)


def today_row(view) -> object:
    return view.counts().loc[view.day_picker.value]


def test_the_page_lists_crops_and_a_verdict_changes_the_precision(app):
    from bokeh.document import Document

    camera, uids = demo_events(app, 4)
    view = review_view(app)
    pn.panel(view).get_root(Document())  # renders like a server session
    assert view.camera_select.value == camera.id
    assert [item.event.uid for item in view.listed] == uids
    crops = [card[0] for card in view.events.objects]
    assert all(isinstance(c, pn.pane.JPG) and c.object == jpeg(i) for i, c in enumerate(crops))
    assert (today_row(view).raw, today_row(view).precision) == (4, 1.0)
    assert 'class="zv-precision">100.0%' in view.precision_table.object

    view.mark(view.listed[1], "wrong")
    view.mark(view.listed[2], "double")
    assert today_row(view).precision == pytest.approx(0.5)
    assert 'class="zv-precision">50.0%' in view.precision_table.object
    assert [item.verdict for item in view.listed] == [None, "wrong", "double", None]
    view.mark(view.listed[2], None)  # taken back
    assert today_row(view).double == 0 and view.listed[2].verdict is None

    view.missed_time.value = "bad"
    view.add_missed()
    assert view.message.visible and "HH:MM:SS" in view.message.object
    view.missed_time.value = "00:00:01"
    view.missed_direction.value = "exit"
    view.add_missed()
    row = today_row(view)
    assert (row.raw, row.wrong, row.missed, row.reviewed) == (4, 1, 1, 4)
    assert len(view.missed_list.objects) == 1
    assert len(app.db.events(camera_id=camera.id)) == 4  # reviews never add or remove events


def test_a_viewer_of_another_store_cannot_review_it(app):
    camera, _ = demo_events(app, 1)
    other = app.db.create_store("Elsewhere", "UTC")
    app.db.create_user("vera", "viewer-password")
    app.db.set_user_stores("vera", [other.id])
    view = review_view(app, "vera", admin=False)
    assert camera.store_id not in view.store_select.options.values()
    view.store_select.options = {"Demo": camera.store_id}  # a forged choice
    view.store_select.value = camera.store_id
    assert view.listed == [] and view.camera_select.value == camera.id  # nothing shown
    (item,) = app.db.line_events(camera.id, "door", *view.window(view.day_picker.value))
    view.mark(item, "wrong")  # a forged verdict
    assert view.message.visible and "may not review" in view.message.object
    assert app.db.reviews() == []


def test_names_on_the_page_are_escaped(app):
    camera, _ = demo_events(app, 1)
    view = review_view(app)
    view.line_select.options = ["<b>door</b>"]
    view.line_select.value = "<b>door</b>"
    assert "&lt;b&gt;door&lt;/b&gt;" in view.precision_table.object
