"""Store overview queries on both backends (real SQLite file, real PostgreSQL): exact
numbers on hand-made events in two time zones, rolled-up hours, a daylight-saving day."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import holoviews as hv
import panel as pn
import pytest
from bokeh.document import Document

from zvpanel.engine.result import CameraStatus
from zvpanel.storage import Database, EventFilter, EventRow, occupancy, utc_text
from zvpanel.storage.overview import (
    TREND_DAYS,
    PastDays,
    Window,
    entries_in_windows,
    last_event_times,
    occupancy_now,
    store_days,
    weekly_heat,
)
from zvpanel.ui.overview import OverviewView, overview_page, sparkline_svg
from zvpanel.web.auth import issue_token, verify_token

VIDEO = Path(__file__).resolve().parents[1] / "data" / "vtest.avi"
PARIS, KOLKATA = ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata")
#: Thursday 15 January 2026, 14:30 in Paris (13:30 UTC; 19:00 in Kolkata).
NOW = datetime(2026, 1, 15, 14, 30, tzinfo=PARIS)


def render(viewable) -> object:
    return viewable.get_root(Document())


def add(db: Database, camera, items: list[tuple[datetime, str]]) -> None:
    db.insert_events(
        EventRow(camera.store_id, camera.id, "door", i, d, utc_text(t), i, 0.8)
        for i, (t, d) in enumerate(items)
    )


def paris(month: int, day: int, hour: int, minute: int) -> datetime:
    year = 2025 if month == 12 else 2026
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def stores(db: Database):
    """Paris: today, the same Thursday 1, 2 and 4 weeks ago (4 weeks ago rolled up into
    hourly totals), yesterday. Kolkata (UTC+5:30): around its local midnight and hour 18."""
    main = db.create_store("Main street", "Europe/Paris")
    door = db.create_camera(main.id, "Door", str(VIDEO))
    add(db, door, [(paris(12, 18, h, m), "entry") for h, m in ((13, 5), (13, 20), (13, 40))])
    add(db, door, [(paris(12, 18, 15, 10), "entry"), (paris(12, 18, 16, 0), "exit")])
    db.roll_up_events(paris(12, 19, 0, 0))  # retention took the 18th
    add(db, door, [(paris(1, 1, 12, 0), "entry")])
    last_week = [(paris(1, 8, 10, 0), "entry"), (paris(1, 8, 14, 29), "entry")]
    add(db, door, [*last_week, (paris(1, 8, 14, 31), "entry")])  # 14:31: after "now"
    add(db, door, [(paris(1, 14, 23, 50), "entry")])  # yesterday
    today = [(paris(1, 15, 8, 0), "exit"), (paris(1, 15, 9, 10), "entry")]
    today += [(paris(1, 15, 10, m), "entry") for m in (5, 20, 50)]
    today += [(paris(1, 15, 10, 30), "exit"), (paris(1, 15, 11, 0), "exit")]
    add(db, door, [*today, (paris(1, 15, 15, 0), "entry")])  # 15:00: after "now"
    india = db.create_store("Bengaluru", "Asia/Kolkata")
    gate = db.create_camera(india.id, "Gate", str(VIDEO))
    utc = timezone.utc
    add(
        db,
        gate,
        [
            (datetime(2026, 1, 14, 18, 20, tzinfo=utc), "entry"),  # 23:50 on the 14th
            (datetime(2026, 1, 14, 18, 40, tzinfo=utc), "entry"),  # 00:10 on the 15th
            (datetime(2026, 1, 15, 12, 35, tzinfo=utc), "entry"),  # 18:05
            (datetime(2026, 1, 15, 12, 40, tzinfo=utc), "entry"),  # 18:10
            (datetime(2026, 1, 15, 13, 0, tzinfo=utc), "entry"),  # 18:30
        ],
    )
    return main, india, door, gate


def test_store_days_count_today_last_week_and_the_usual_up_to_the_local_time(db, stores):
    main, india, _, _ = stores
    paris_day, india_day = store_days(db, [main, india], NOW)
    assert paris_day.name == "Main street" and paris_day.timezone == "Europe/Paris"
    assert paris_day.today == 4  # 09:10, 10:05, 10:20, 10:50 (not 15:00)
    assert paris_day.last_week == 2  # 10:00 and 14:29, not 14:31
    # Thursdays 1-4 weeks ago up to 14:30: 2, 1, 0 and the rolled-up 13:00 hour's 3
    # (its 15:00 hour starts after 14:30).
    assert paris_day.usual == pytest.approx((2 + 1 + 0 + 3) / 4)
    assert paris_day.occupancy == 2  # the 08:00 exit finds nobody inside
    assert (paris_day.peak_hour, paris_day.peak_entries) == (10, 3)
    assert len(paris_day.daily) == TREND_DAYS
    assert paris_day.daily[0] == 4 and paris_day.daily[-1] == 1  # 18 Dec; yesterday
    assert paris_day.daily[14] == 1 and paris_day.daily[21] == 3 and sum(paris_day.daily) == 9
    assert india_day.today == 4  # from 18:30 UTC on the 14th (local midnight)
    assert (india_day.peak_hour, india_day.peak_entries) == (18, 3)  # 18:00-19:00 IST
    assert india_day.occupancy == 4 and india_day.daily[-1] == 1
    assert india_day.last_week == 0 and india_day.usual == 0


def test_occupancy_now_equals_the_occupancy_curve_at_its_end(db, stores):
    main, india, _, _ = stores
    midnight = datetime(2026, 1, 15, tzinfo=PARIS)
    curve = occupancy(db, "Europe/Paris", EventFilter(main.id, None, midnight, NOW))
    assert occupancy_now(db, [main, india], NOW) == {
        main.id: int(curve["occupancy"].iloc[-1]),
        india.id: 4,
    }
    assert occupancy_now(db, [], NOW) == {}


def test_entries_in_windows_add_rolled_up_hours_by_their_start(db, stores):
    main, india, _, _ = stores
    day = Window(main.id, paris(12, 18, 0, 0), paris(12, 19, 0, 0))
    before_15 = Window(main.id, paris(12, 18, 0, 0), paris(12, 18, 15, 0))
    at_15 = Window(main.id, paris(12, 18, 15, 0), paris(12, 18, 15, 1))
    other_store = Window(india.id, paris(12, 18, 0, 0), paris(12, 19, 0, 0))
    assert entries_in_windows(db, [day, before_15, at_15, other_store]) == [4, 3, 1, 0]
    assert entries_in_windows(db, []) == []


def test_entries_in_windows_beyond_one_query(db, stores, monkeypatch):
    from zvpanel.storage import overview

    main, _, _, _ = stores
    monkeypatch.setattr(overview, "WINDOWS_PER_QUERY", 2)
    hours = [Window(main.id, paris(1, 15, h, 0), paris(1, 15, h + 1, 0)) for h in range(8, 12)]
    assert entries_in_windows(db, hours) == [0, 1, 3, 0]


def test_last_event_times_fall_back_to_the_rolled_up_hour(db, stores):
    main, india, door, gate = stores
    lonely = db.create_camera(india.id, "Back door", str(VIDEO))
    add(db, lonely, [(datetime(2025, 12, 1, 9, 40, tzinfo=timezone.utc), "entry")])
    db.roll_up_events(datetime(2025, 12, 2, tzinfo=timezone.utc))
    never = db.create_camera(india.id, "Never", str(VIDEO))
    times = last_event_times(db, [door.id, gate.id, lonely.id, never.id])
    assert times[door.id] == paris(1, 15, 15, 0)
    assert times[gate.id] == datetime(2026, 1, 15, 13, 0, tzinfo=timezone.utc)
    assert times[lonely.id] == datetime(2025, 12, 1, 9, 0, tzinfo=timezone.utc)
    assert times[never.id] is None
    assert last_event_times(db, []) == {}


def test_weekly_heat_is_the_mean_per_local_weekday_and_hour(db, stores):
    main, india, _, _ = stores
    heat = weekly_heat(db, main, NOW)
    assert heat.shape == (7, 24)
    thursday = 3
    assert heat.loc[thursday, 13] == pytest.approx(3 / 4)  # the rolled-up hour
    assert heat.loc[thursday, 10] == heat.loc[thursday, 12] == pytest.approx(1 / 4)
    assert heat.loc[thursday, 14] == pytest.approx(2 / 4)  # 14:29 and 14:31
    assert heat.loc[2, 23] == pytest.approx(1 / 4)  # yesterday, Wednesday 23:50
    assert heat.to_numpy().sum() == pytest.approx(9 / 4)  # today is not in it
    assert weekly_heat(db, india, NOW).loc[2, 23] == pytest.approx(1 / 4)


def test_the_same_time_last_week_is_local_time_across_a_daylight_saving_change(db):
    store = db.create_store("Spring", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    now = datetime(2026, 3, 29, 12, 0, tzinfo=PARIS)  # clocks went forward at 02:00
    week_ago = [(datetime(2026, 3, 22, 11, 30, tzinfo=PARIS), "entry")]
    week_ago += [(datetime(2026, 3, 22, 12, 30, tzinfo=PARIS), "entry")]  # after 12:00
    add(db, camera, [*week_ago, (datetime(2026, 3, 29, 3, 30, tzinfo=PARIS), "entry")])
    (day,) = store_days(db, [store], now)
    assert day.last_week == 1  # a plain 7 x 24 h back would end at 11:00 local
    assert (day.today, day.peak_hour) == (1, 3)  # the day's hours go 0, 1, 3, 4...
    assert weekly_heat(db, store, now).loc[6, 11] == pytest.approx(1 / 4)


def test_now_must_be_aware(db, stores):
    with pytest.raises(ValueError, match="timezone-aware"):
        store_days(db, [stores[0]], datetime(2026, 1, 15, 12, 0))


def test_an_empty_store_counts_zero(db):
    store = db.create_store("Empty", "UTC")
    (day,) = store_days(db, [store], NOW)
    assert (day.today, day.last_week, day.usual, day.occupancy) == (0, 0, 0, 0)
    assert day.peak_hour is None and day.daily == (0,) * TREND_DAYS
    assert weekly_heat(db, store, NOW).to_numpy().sum() == 0
    assert store_days(db, [], NOW) == []


# ---------------------------------------------------------------------- the page's view
@pytest.fixture
def admin(app):
    return verify_token(app.settings, issue_token(app.settings, "admin", admin=True))


def test_overview_table_cameras_and_heat_map(app, admin):
    main = app.db.create_store("<b>Main</b> & co", "Europe/Paris")
    door = app.db.create_camera(main.id, "Door <i>", str(VIDEO))
    add(app.db, door, [(paris(1, 15, 9, 10), "entry"), (paris(1, 8, 10, 0), "entry")])
    app.hub.set_status(CameraStatus(door.id, "online", None, 5.0, 4.2, hardware_limited=True))
    view = OverviewView(app, admin, clock=lambda: NOW)
    render(view.__panel__())
    table = view.table.value.set_index("store_id")
    row = table.loc[main.id]
    assert row["store"] == "&lt;b&gt;Main&lt;/b&gt; &amp; co"  # shown as text by the html cell
    assert (row["today"], row["last week"], row["4-week mean"], row["vs mean %"]) == (
        1,
        1,
        0.2,
        300.0,
    )
    assert (row["inside now"], row["peak hour"]) == (1, "09:00 (1)")
    assert row["cameras"] == "1/1 online, 1 hardware limited"
    assert 'class="zv-spark"' in row["last 28 days"] and "<i>" not in row["last 28 days"]
    assert 'data-values="' + ",".join(["0"] * 21 + ["1"] + ["0"] * 6) + '"' in row["last 28 days"]
    demo = table.loc[table["store"] == "Demo store"].iloc[0]
    assert demo["cameras"] == "0/1 online" and demo["peak hour"] == "-"
    cameras = view.camera_table.value.set_index("camera")
    assert cameras.loc["Door &lt;i&gt;", "state"] == "online"
    assert cameras.loc["Door &lt;i&gt;", "rate (fps)"] == "4.2 of 5.0"
    assert bool(cameras.loc["Door &lt;i&gt;", "hardware limited"])
    assert cameras.loc["Door &lt;i&gt;", "last event"] == "2026-01-15 09:10:00"
    assert cameras.loc["Demo camera", "state"] == "not running"
    # Choosing the store (a click on its row) draws its heat map: Thursday 10:00, 1/4.
    view.table.selection = [list(view.table.value["store_id"]).index(main.id)]
    assert view.store_select.value == main.id
    heat = view.heat.object
    assert isinstance(heat, hv.HeatMap) and len(heat) == 7 * 24
    assert heat.select(hour=10, day="Thu") == 0.25
    assert heat.dimension_values("entries").sum() == 0.25


def test_a_viewer_sees_only_their_stores(app):
    mine = app.db.create_store("Mine", "UTC")
    app.db.create_camera(mine.id, "Cam", str(VIDEO))
    app.db.create_user("vera", "viewer-password")
    app.db.set_user_stores("vera", [mine.id])
    vera = verify_token(app.settings, issue_token(app.settings, "vera", admin=False))
    view = OverviewView(app, vera, clock=lambda: NOW)
    assert list(view.table.value["store"]) == ["Mine"]
    assert list(view.camera_table.value["camera"]) == ["Cam"]
    assert list(view.store_select.options) == ["Mine"]
    page = overview_page(app, vera)
    render(page)
    assert page[0].object.count('href="/overview"') == 1


def test_no_stores_and_no_login(app, admin):
    for store in app.db.list_stores():
        for camera in app.db.list_cameras(store.id):
            app.db.delete_camera(camera.id)
        app.db.delete_store(store.id)
    view = OverviewView(app, admin)
    assert isinstance(view.__panel__(), pn.pane.Alert)
    assert "Log in" in overview_page(app, None)[-1].object


def test_sparkline_of_nothing_is_flat():
    assert 'points="0.0,23.0"' in sparkline_svg([0])
    assert sparkline_svg([]).count("<polyline") == 1


def test_camera_health_refreshes_without_counting_again(app, admin, monkeypatch):
    from zvpanel.ui import overview as overview_ui

    (camera,) = app.db.list_cameras()
    app.hub.set_status(CameraStatus(camera.id, "online", None, 5.0, 5.0))
    view = OverviewView(app, admin, clock=lambda: NOW)
    stores_before, cameras_before = view.table.value, view.camera_table.value
    assert list(stores_before["cameras"]) == ["1/1 online"]
    counted = []
    monkeypatch.setattr(overview_ui, "store_days", lambda *args: counted.append(args))
    view.refresh_health()
    assert view.table.value is stores_before and view.camera_table.value is cameras_before
    app.hub.set_status(CameraStatus(camera.id, "reconnecting", "stream <lost>", 5.0, 0.0))
    view.refresh_health()
    assert list(view.table.value["cameras"]) == ["0/1 online"] and counted == []
    assert view.camera_table.value.loc[0, "state"] == "reconnecting"
    assert view.camera_table.value.loc[0, "reason"] == "stream &lt;lost&gt;"


def test_past_days_are_reused_until_they_expire(db, stores):
    main, _, door, _ = stores
    ticks = [0.0]
    past = PastDays(ttl=600, clock=lambda: ticks[0])
    first = store_days(db, [main], NOW, past)[0]
    assert first == store_days(db, [main], NOW)[0]
    late = [(paris(1, 14, 12, 0), "entry"), (paris(1, 15, 12, 0), "entry")]
    add(db, door, late)  # yesterday's reaches the database late; today's counts at once
    again = store_days(db, [main], NOW, past)[0]
    assert (again.daily[-1], again.today) == (first.daily[-1], first.today + 1)
    ticks[0] = 600.0
    assert store_days(db, [main], NOW, past)[0].daily[-1] == first.daily[-1] + 1


def test_an_hour_repeated_when_clocks_go_back_is_two_hours(db):
    store = db.create_store("Autumn", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    utc = timezone.utc
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    times = [datetime(2026, 10, 25, 0, 30, tzinfo=utc), datetime(2026, 10, 25, 1, 30, tzinfo=utc)]
    times += [datetime(2026, 10, 25, 1, 40, tzinfo=utc), datetime(2026, 10, 25, 9, 0, tzinfo=utc)]
    add(db, camera, [(t, "entry") for t in times])
    (day,) = store_days(db, [store], datetime(2026, 10, 25, 12, 0, tzinfo=utc))
    assert (day.today, day.peak_hour, day.peak_entries) == (4, 2, 2)  # the second 02:00
