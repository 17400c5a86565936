"""Occupancy alerts: limits on both backends, hysteresis (once per crossing), the webhook
sender against a real HTTP receiver on 127.0.0.1 that fails its first tries."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import panel as pn
import pytest

from zvpanel.alerts import (
    AlertJob,
    Webhook,
    WebhookSender,
    limits_occupancy,
    next_state,
)
from zvpanel.errors import InvalidValueError, NotFoundError
from zvpanel.storage import Database, EventRow, utc_text
from zvpanel.storage.alerts import OccupancyLimit, webhook_label

LIMIT = OccupancyLimit(store_id=1, max_people=10, hysteresis=3)

# (occupancy seen at each evaluation) -> the alert state after each one. Raised above 10,
# cleared at 7 or below; wobbling around the limit raises it once.
HYSTERESIS_TABLE = [
    ([0, 5, 10], [False, False, False]),
    ([11], [True]),
    ([11, 10, 11, 9, 12, 8, 11], [True] * 7),
    ([11, 7], [True, False]),
    ([11, 8, 7, 8, 11], [True, True, False, False, True]),
    ([20, 0, 20, 0], [True, False, True, False]),
]


@pytest.mark.parametrize(("seen", "expected"), HYSTERESIS_TABLE)
def test_next_state_has_hysteresis(seen, expected):
    state, states = False, []
    for people in seen:
        state = next_state(state, people, LIMIT)
        states.append(state)
    assert states == expected


def test_next_state_without_hysteresis_clears_at_the_limit():
    limit = OccupancyLimit(store_id=1, max_people=10)
    assert next_state(True, 10, limit) is False and next_state(True, 11, limit) is True


@pytest.fixture
def store(db):
    store = db.create_store("Main street", "Europe/Paris")
    return store, db.create_camera(store.id, "Door", "data/vtest.avi")


def add_people(db, camera, entries: int, exits: int = 0, when: datetime | None = None) -> None:
    when = when or datetime.now(timezone.utc)
    rows = [
        EventRow(camera.store_id, camera.id, "door", i, d, utc_text(when), i, 0.9)
        for i, d in enumerate(["entry"] * entries + ["exit"] * exits)
    ]
    db.insert_events(rows)


def test_limits_are_validated_and_stored(db, store):
    store, camera = store
    limit = db.set_occupancy_limit(store.id, 10, 3, "https://hooks.example/T0/secret")
    assert (limit.max_people, limit.clear_at, limit.exceeded) == (10, 7, False)
    assert db.occupancy_limits() == [limit]
    for bad, field in (
        ({"max_people": 0}, "max_people 0"),
        ({"max_people": 10, "hysteresis": 10}, "hysteresis 10"),
        ({"max_people": 10, "webhook_url": "ftp://x/y"}, "webhook_url"),
        ({"max_people": 10, "webhook_url": "https:///nohost"}, "webhook_url"),
    ):
        with pytest.raises(InvalidValueError, match=field):
            db.set_occupancy_limit(store.id, **bad)
    with pytest.raises(NotFoundError, match="no store with id 999"):
        db.set_occupancy_limit(999, 5)
    zone = db.set_occupancy_limit(store.id, 4, camera_id=camera.id, zone_id="queue")
    assert zone.is_zone and len(db.occupancy_limits(store.id)) == 2
    db.remove_occupancy_limit(store.id, camera_id=camera.id, zone_id="queue")
    assert db.occupancy_limits() == [limit]


def test_webhook_secret_never_shown_in_errors():
    assert webhook_label("https://user:pw@hooks.example:8443/T0/secret?token=x") == (
        "https://hooks.example:8443/…"
    )
    from zvpanel.storage.alerts import validate_webhook_url

    with pytest.raises(InvalidValueError) as error:
        validate_webhook_url("gopher://hooks.example/T0/secret")
    assert "secret" not in str(error.value)


def test_a_crossing_is_recorded_once_across_processes(db, db_target, store):
    """Two dashboards (two Database objects, as two processes have) see the same
    crossing: one records it, the other's conditional update changes nothing."""
    store, _ = store
    limit = db.set_occupancy_limit(store.id, 5, 1, "http://127.0.0.1:9/hook")
    other = Database(db_target)
    try:
        first = db.record_alert_transition(limit, True, 6)
        assert other.record_alert_transition(limit, True, 6) is None
    finally:
        other.close()
    assert first.kind == "exceeded" and first.webhook == "pending"
    assert db.occupancy_limit(store.id).exceeded
    db.finish_webhook(first.id, sent=True, attempts=2)
    [stored] = db.alert_transitions(store.id)
    assert (stored.id, stored.webhook, stored.attempts, stored.occupancy) == (
        first.id,
        "sent",
        2,
        6,
    )


def test_store_occupancy_counts_today_only(db, store):
    store, camera = store
    add_people(db, camera, 9, 0, datetime.now(timezone.utc) - timedelta(days=2))
    add_people(db, camera, 7, 2)
    limits = [db.set_occupancy_limit(store.id, 10)]
    assert limits_occupancy(db, limits) == [5]


class Receiver:
    """A real HTTP server on 127.0.0.1 that answers 503 to its first ``failures`` POSTs."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.posts: list[tuple[float, dict, dict]] = []  # (time, headers, body)
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.got:
                    receiver.posts.append((time.monotonic(), dict(self.headers), body))
                    failing = len(receiver.posts) <= receiver.failures
                    receiver.got.notify_all()
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        with self.got:
            assert self.got.wait_for(lambda: len(self.posts) >= count, timeout), self.posts
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(failures: int = 0) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for r in made:
        r.close()


def wait_for_outcome(db, store_id: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [latest, *_] = db.alert_transitions(store_id)
        if latest.webhook != "pending":
            return latest
        time.sleep(0.05)
    raise AssertionError("the webhook outcome was never recorded")


def test_webhook_retries_with_exponential_backoff(db, store, receiver, caplog):
    store, _ = store
    hook = receiver(failures=3)
    limit = db.set_occupancy_limit(store.id, 5, 0, hook.url)
    transition = db.record_alert_transition(limit, True, 6)
    sender = WebhookSender(db, attempts=5, backoff=0.1)
    try:
        sender.send(Webhook(transition.id, hook.url, {"event": "occupancy_exceeded"}))
        posts = hook.wait_for(4)
        stored = wait_for_outcome(db, store.id)
    finally:
        sender.stop()
    assert (stored.webhook, stored.attempts) == ("sent", 4)
    assert sender.delays == [0.1, 0.2, 0.4]
    gaps = [later[0] - earlier[0] for earlier, later in zip(posts, posts[1:], strict=False)]
    assert all(gap >= delay for gap, delay in zip(gaps, sender.delays, strict=True))
    keys = {headers["Idempotency-Key"] for _, headers, _ in posts}
    assert keys == {f"zvpanel-alert-{transition.id}"}
    assert all(body == {"event": "occupancy_exceeded"} for _, _, body in posts)
    assert "secret" not in caplog.text and "503" in caplog.text


def test_webhook_gives_up_after_its_attempts(db, store, receiver):
    store, _ = store
    hook = receiver(failures=100)
    limit = db.set_occupancy_limit(store.id, 5, 0, hook.url)
    transition = db.record_alert_transition(limit, True, 6)
    sender = WebhookSender(db, attempts=3, backoff=0.05)
    try:
        sender.send(Webhook(transition.id, hook.url, {}))
        stored = wait_for_outcome(db, store.id)
    finally:
        sender.stop()
    assert (stored.webhook, stored.attempts, len(hook.posts)) == ("failed", 3, 3)


def test_alert_job_fires_once_per_crossing(db, store, receiver):
    """Occupancy from real stored events: over the limit, wobbling, cleared, over again."""
    store, camera = store
    hook = receiver()
    db.set_occupancy_limit(store.id, 5, 2, hook.url)
    job = AlertJob(db, WebhookSender(db, backoff=0.05))
    try:
        kinds = []
        for entries, exits in ((5, 0), (1, 0), (0, 1), (1, 0), (0, 1), (0, 2), (2, 0)):
            add_people(db, camera, entries, exits)
            kinds.append([t.kind for t in job.run_once()])
        posts = hook.wait_for(2)
    finally:
        job.stop()
    # occupancy: 5, 6 (raised), 5, 6, 5, 3 (cleared), 5: raised once, cleared once.
    assert kinds == [[], ["exceeded"], [], [], [], ["cleared"], []]
    bodies = [body for _, _, body in posts]
    assert [(b["event"], b["occupancy"]) for b in bodies] == [
        ("occupancy_exceeded", 6),
        ("occupancy_cleared", 3),
    ]
    assert bodies[0]["store"] == "Main street" and bodies[0]["max_people"] == 5


# ---------------------------------------------------------------------- the banner
def test_banner_shows_exceeded_limits_the_user_may_see(app):
    from zvpanel.ui.alerts import AlertBanner, banner_html
    from zvpanel.ui.layout import page
    from zvpanel.web.auth import issue_token, verify_token

    db = app.db
    shop = db.create_store("<b>Shop</b>", "UTC")
    other = db.create_store("Other", "UTC")
    db.create_user("vera", "viewer-password")
    db.set_user_stores("vera", [other.id])
    limit = db.set_occupancy_limit(shop.id, 3)
    admin = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    banner = AlertBanner(db, "admin")
    assert not banner.pane.visible and banner.pane.object == ""

    db.record_alert_transition(limit, True, 4)
    banner.refresh()
    assert banner.pane.visible
    assert "&lt;b&gt;Shop&lt;/b&gt;" in banner.pane.object and "<b>Shop" not in banner.pane.object
    assert "more than 3 people" in banner.pane.object
    assert banner_html(db, "vera") == ""  # not her store
    column = page("Live", "/live", pn.pane.Markdown("body"), admin, app)
    assert "Occupancy limit exceeded" in column[1].object

    db.record_alert_transition(db.occupancy_limit(shop.id), False, 0)
    banner.refresh()
    assert not banner.pane.visible


# ---------------------------------------------------------------------- the CLI
def test_alert_commands(db, db_target, store, monkeypatch, capsys):
    from zvpanel.cli import main

    for name in ("ZVPANEL_DB_PATH", "ZVPANEL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZVPANEL_DATABASE_URL", str(db_target))
    store, camera = store
    url = "https://hooks.example/T0/B0/secret-token"
    args = ["alert", "set", "Main street", "--max", "20", "--hysteresis", "5", "--webhook", url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "raised above 20, cleared at 15 or below" in out and "secret" not in out
    zone = ["--camera", str(camera.id), "--zone", "till"]
    assert main(["alert", "set", str(store.id), "--max", "4", *zone]) == 0
    assert main(["alert", "list"]) == 0
    listed = capsys.readouterr().out
    assert "https://hooks.example/…" in listed and "secret" not in listed
    assert "Main street zone 'till'" in listed
    assert main(["alert", "set", "Main street", "--max", "5", "--hysteresis", "9"]) == 2
    assert "hysteresis 9 is not between 0 and max_people - 1 (4)" in capsys.readouterr().err
    assert main(["alert", "set", "Nowhere", "--max", "5"]) == 2
    assert "no store with id or name 'Nowhere'" in capsys.readouterr().err
    db.record_alert_transition(db.occupancy_limit(store.id), True, 21)
    assert main(["alert", "history", "--store", "Main street"]) == 0
    assert "exceeded" in capsys.readouterr().out
    assert main(["alert", "remove", str(store.id), *zone]) == 0
    assert [x.zone_id for x in db.occupancy_limits()] == [""]


def test_admin_alerts_tab_sets_limits_without_showing_the_webhook(app):
    from zvpanel.ui.alerts import AlertSettings
    from zvpanel.web.auth import issue_token, verify_token

    store = app.db.list_stores()[0]
    admin = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    tab = AlertSettings(app, admin)
    tab.store.value = store.id
    tab.max_people.value, tab.hysteresis.value = 12, 2
    tab.webhook.value = "https://hooks.example/T0/secret"
    tab.save_action()
    assert tab.status.alert_type == "success", tab.status.object
    assert tab.webhook.value == ""
    [row] = tab.table.value.to_dict("records")
    assert (row["max people"], row["clear at"], row["webhook"]) == (
        12,
        10,
        "https://hooks.example/…",
    )
    assert "secret" not in tab.table.value.to_csv()
    # Saving again with the URL field empty keeps the stored webhook.
    tab.table.selection = [0]
    tab.max_people.value = 15
    tab.save_action()
    assert app.db.occupancy_limit(store.id).webhook_url == "https://hooks.example/T0/secret"
    tab.hysteresis.value = 15
    tab.save_action()
    assert tab.status.alert_type == "danger" and "hysteresis 15" in tab.status.object
    tab.table.selection = [0]
    tab.remove_action()
    assert app.db.occupancy_limits() == []

    app.db.create_user("vera", "viewer-password")
    viewer = verify_token(app.settings, issue_token(app.settings, "vera", admin=False))
    read_only = AlertSettings(app, viewer)
    assert read_only.save_button.disabled
    read_only.store.value = store.id
    read_only.save_action()  # a forged click: refused on the server
    assert read_only.status.alert_type == "danger" and app.db.occupancy_limits() == []


# ---------------------------------------------------------------------- in a browser
@pytest.mark.ui
def test_banner_and_one_webhook_in_a_real_server(tmp_path, model_path, browser, receiver, caplog):
    """The README's panel serve: events stored by another process take a store over its
    limit; every page shows the banner, the receiver gets exactly one POST while it stays
    over (wobbling inside the hysteresis), and one more when it clears."""
    import os

    from serving import REPO_ROOT, login, panel_server

    hook = receiver()
    shots = Path(
        os.environ.get("ZVPANEL_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots"
    )
    shots.mkdir(parents=True, exist_ok=True)
    with panel_server(tmp_path, model_path) as server:
        db = Database(server.db)
        try:
            shop = db.create_store("Shop <1>", "UTC")
            door = db.create_camera(shop.id, "Door", "data/vtest.avi", enabled=False)
            db.set_occupancy_limit(shop.id, 3, 1, hook.url)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60_000)
            login(page, server.url)
            page.wait_for_url("**/live")
            page.goto(server.url + "/analytics")
            banner = page.locator(".zv-alert")
            assert banner.count() == 0

            add_people(db, door, 4)  # 4 inside: over 3
            banner.wait_for(state="visible", timeout=30_000)
            assert "Occupancy limit exceeded: Shop <1>" in banner.inner_text()
            page.screenshot(path=str(shots / "alert-banner.png"))
            add_people(db, door, 0, 1)  # 3: not cleared (clears at 2)
            time.sleep(3 * 2.0)  # three evaluations of the server's alert job
            add_people(db, door, 1)  # 4 again: still the same crossing
            time.sleep(3 * 2.0)
            page.goto(server.url + "/admin")  # every page shows it
            page.locator(".zv-alert").wait_for(state="visible")
            assert len(hook.posts) == 1
            assert hook.posts[0][2]["event"] == "occupancy_exceeded"
            assert hook.posts[0][2]["store"] == "Shop <1>"

            add_people(db, door, 0, 2)  # 2 inside: cleared
            page.locator(".zv-alert").wait_for(state="hidden", timeout=30_000)
            posts = hook.wait_for(2)
            assert [p[2]["event"] for p in posts] == ["occupancy_exceeded", "occupancy_cleared"]
            assert [t.webhook for t in db.alert_transitions(shop.id)] == ["sent", "sent"]
            context.close()
        finally:
            db.close()
        log = server.log_text()
    assert "secret" not in log and "webhook to http://127.0.0.1" in log


def test_zone_limit_follows_stored_zone_events(db, store, receiver):
    from zvpanel.storage.zones import ZoneEventRow

    store, camera = store
    hook = receiver()
    db.set_occupancy_limit(store.id, 2, 0, hook.url, camera_id=camera.id, zone_id="till")
    job = AlertJob(db, WebhookSender(db, backoff=0.05))
    now = utc_text(datetime.now(timezone.utc))

    def zone(kind: str, track: int) -> None:
        dwell = 5.0 if kind == "leave" else None
        db.insert_zone_events(
            [ZoneEventRow(store.id, camera.id, "till", track, kind, now, 0, dwell)]
        )

    try:
        kinds = []
        for kind, track in (("enter", 1), ("enter", 2), ("enter", 3), ("leave", 1)):
            zone(kind, track)
            kinds.append([t.kind for t in job.run_once()])
        posts = hook.wait_for(2)
    finally:
        job.stop()
    assert kinds == [[], [], ["exceeded"], ["cleared"]]
    assert [p[2]["event"] for p in posts] == ["occupancy_exceeded", "occupancy_cleared"]
    body = posts[0][2]
    assert (body["zone_id"], body["camera_id"], body["occupancy"]) == ("till", camera.id, 3)


def evaluate_at_once(jobs: list[AlertJob]) -> list:
    """Run every job's evaluation at the same moment (one thread each); all transitions."""
    start = threading.Barrier(len(jobs))
    results: list = [[] for _ in jobs]
    errors: list[BaseException] = []

    def evaluate(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i].run_once()
        except BaseException as error:  # reported below: a thread's error must fail the test
            errors.append(error)

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return [t for result in results for t in result]


def test_two_dashboards_evaluating_at_once_fire_each_crossing_once(db, db_target, store, receiver):
    """Two alert jobs on two connections (two dashboard processes) evaluate at the same
    moment after each change: every crossing is recorded, and POSTed, exactly once."""
    store, camera = store
    hook = receiver()
    db.set_occupancy_limit(store.id, 3, 0, hook.url)
    other = Database(db_target)
    jobs = [AlertJob(d, WebhookSender(d, backoff=0.05)) for d in (db, other)]
    try:
        recorded = []
        for entries, exits in ((4, 0), (0, 2), (2, 0), (0, 3), (5, 0)):  # 4, 2, 4, 1, 6
            add_people(db, camera, entries, exits)
            recorded.append(sorted(t.kind for t in evaluate_at_once(jobs)))
        posts = hook.wait_for(5)
    finally:
        for job in jobs:
            job.stop()
        other.close()
    assert recorded == [["exceeded"], ["cleared"], ["exceeded"], ["cleared"], ["exceeded"]]
    assert len(posts) == 5 and len(db.alert_transitions(store.id)) == 5
