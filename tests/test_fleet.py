"""Fleet mode on real parts: PostgreSQL (tests/postgres.py), real ``zvpanel node``
processes running the real model on data/vtest.avi at 2 detections/s, and the embedded
App on SQLite.

Waiting loops have deadlines only so that a broken fleet fails instead of hanging; the
one timed assertion is the issue's bound (a pool camera moves within 30 s).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zvpanel.app import App
from zvpanel.calibration import parse_calibration
from zvpanel.storage import Database
from zvpanel.storage.values import parse_utc

#: Longest wait for something a node should do within seconds (model loading included).
DEADLINE_S = 120.0
#: The issue's bound for a pool camera to move to another node.
FAILOVER_LIMIT_S = 30.0
#: Lines through vtest.avi's crossroads, detected at 2 frames/s.
CALIBRATION = parse_calibration(
    {
        "lines": [
            {"id": "door", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576},
            {"id": "aisle", "x1": 0, "y1": 300, "x2": 768, "y2": 300},
        ],
        "detection_fps": 2.0,
    }
)


def wait_for(what: str, condition: Callable[[], object], deadline: float = DEADLINE_S):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")


class Fleet:
    """A central PostgreSQL database with one store, and the nodes a test starts."""

    def __init__(self, url: str, folder: Path, model_path: str, video: Path) -> None:
        self.url = url
        self.folder = folder
        self.model_path = model_path
        self.video = video
        self.db = Database(url)
        self.store = self.db.create_store("Fleet store", "UTC")
        self.nodes: dict[str, subprocess.Popen] = {}

    def camera(self, name: str) -> int:
        camera = self.db.create_camera(self.store.id, name, str(self.video))
        self.db.set_calibration(camera.id, CALIBRATION)
        return camera.id

    def outbox(self, name: str) -> Path:
        return self.folder / f"outbox-{name}.db"

    def start_node(self, name: str, *args: str, url: str | None = None) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
        env.update(
            ZVPANEL_DATABASE_URL=url or self.url,
            ZVPANEL_MODEL=self.model_path,
            ZVPANEL_DEV_MODE="1",
        )
        command = [sys.executable, "-m", "zvpanel", "node", "--name", name]
        command += ["--outbox", str(self.outbox(name)), *args]
        log_path = self.folder / f"node-{name}.log"
        starts = self._starts(log_path)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.nodes[name] = process
        wait_for(f"node {name} to start", lambda: self._starts(log_path) > starts)
        return process

    @staticmethod
    def _starts(log_path: Path) -> int:
        """How many times the node said it runs (its signal handlers are set by then)."""
        return log_path.read_text().count(" running (database") if log_path.exists() else 0

    def kill9(self, name: str) -> None:
        process = self.nodes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_node(self, name: str) -> None:
        process = self.nodes[name]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (self.folder / f"node-{name}.log").read_text()[-3000:]

    def heartbeat(self, name: str):
        return next((n for n in self.db.list_nodes() if n.name == name), None)

    def cameras_of(self, name: str) -> tuple[int, ...]:
        """The cameras node ``name`` said it runs at its last heartbeat (none yet: ())."""
        beat = self.heartbeat(name)
        return () if beat is None else beat.cameras

    def central_uids(self, node: str | None = None, camera_id: int | None = None) -> list[str]:
        return [
            e.uid for e in self.db.events(camera_id=camera_id) if node is None or e.node == node
        ]

    def outbox_rows(self, name: str) -> list[tuple[str, str | None]]:
        """(uid, forwarded_at) of every event in the node's outbox, read as another
        process would (the node may be running)."""
        with sqlite3.connect(self.outbox(name)) as conn:
            return conn.execute("SELECT uid, forwarded_at FROM outbox ORDER BY seq").fetchall()

    def backlog(self, name: str) -> int:
        return sum(1 for _, forwarded in self.outbox_rows(name) if forwarded is None)

    def outbox_times(self, name: str) -> dict[str, float]:
        """uid -> when it was counted (seconds since the epoch), of the node's events."""
        with sqlite3.connect(self.outbox(name)) as conn:
            rows = conn.execute("SELECT uid, ts_utc FROM outbox").fetchall()
        return {uid: parse_utc(ts).timestamp() for uid, ts in rows}

    def close(self) -> None:
        for process in self.nodes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.db.close()


@pytest.fixture
def fleet(postgres, tmp_path: Path, model_path: str, video_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(postgres.new_database(), tmp_path, model_path, video_path)
    try:
        yield fleet
    finally:
        fleet.close()
        if not postgres.running:
            postgres.start()


def _cli(fleet: Fleet, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env["ZVPANEL_DATABASE_URL"] = fleet.url
    done = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_node_runs_its_cameras_and_heartbeats(fleet: Fleet) -> None:
    mine, unassigned, elsewhere = fleet.camera("Mine"), fleet.camera("Free"), fleet.camera("B")
    assert "runs on node 'n1'" in _cli(fleet, "camera", "assign", str(mine), "--node", "n1")
    _cli(fleet, "camera", "assign", str(elsewhere), "--node", "n2")
    fleet.start_node("n1")

    beat = wait_for(
        "n1's heartbeat with a rate",
        lambda: (b := fleet.heartbeat("n1")) and b.cameras == (mine,) and b.rates.get(mine) and b,
    )
    assert 0 < beat.rates[mine] <= 2.5
    assert not beat.hardware_limited
    wait_for("n1's events", lambda: fleet.central_uids("n1", mine))
    assert not fleet.central_uids(camera_id=unassigned)
    assert not fleet.central_uids(camera_id=elsewhere)
    listed = _cli(fleet, "nodes")
    assert "n1" in listed and str(mine) in listed

    # Unassigned, the camera goes back to the dashboards' engine: the node lets it go.
    _cli(fleet, "camera", "assign", str(mine), "--none")
    wait_for("n1 to drop the camera", lambda: fleet.heartbeat("n1").cameras == ())
    fleet.stop_node("n1")


def test_embedded_engine_skips_cameras_assigned_to_nodes(settings) -> None:
    with App(settings) as app:
        (camera,) = app.db.list_cameras()  # the demo camera
        wait_for("the demo camera to run", lambda: app.engine.camera_ids == [camera.id])
        app.db.assign_camera(camera.id, node="store-1")
        wait_for("the engine to let it go", lambda: app.engine.camera_ids == [])
        app.db.assign_camera(camera.id)
        wait_for("the camera back", lambda: app.engine.camera_ids == [camera.id])


def test_outbox_through_a_database_outage_and_a_kill9(fleet: Fleet, postgres) -> None:
    camera = fleet.camera("Door")
    fleet.db.assign_camera(camera, node="n1")
    # One event per forward, half a second apart: the backlog drains slowly enough for
    # the kill below to land while it is being forwarded.
    slow = ("--forward-batch", "1", "--catch-up-pause", "0.5")
    fleet.start_node("n1", *slow)
    wait_for("the first events stored centrally", lambda: fleet.central_uids("n1"))

    postgres.stop()
    try:
        # Counting goes on into the outbox while the database is down.
        wait_for("a backlog of 8 events", lambda: fleet.backlog("n1") >= 8, deadline=300)
    finally:
        postgres.start()
    stored_before = len(fleet.central_uids("n1"))
    end = time.monotonic() + 60
    while not (len(fleet.central_uids("n1")) > stored_before and fleet.backlog("n1") > 0):
        assert time.monotonic() < end, "forwarding did not resume"
        time.sleep(0.05)
    fleet.kill9("n1")  # mid catch-up
    unforwarded = {uid for uid, forwarded in fleet.outbox_rows("n1") if forwarded is None}
    assert unforwarded, "the kill came after the backlog drained"

    fleet.start_node("n1", *slow)
    wait_for("the outbox to drain", lambda: fleet.backlog("n1") == 0)
    fleet.stop_node("n1")  # forwards what it counted last

    produced = [uid for uid, _ in fleet.outbox_rows("n1")]
    stored = fleet.central_uids("n1")
    assert fleet.backlog("n1") == 0
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert sorted(stored) == sorted(produced), "events lost or invented"
    assert unforwarded <= set(stored)


class HolderWatch:
    """Samples, every 0.2 s, which live nodes' heartbeats say they run a camera."""

    def __init__(self, fleet: Fleet, camera_id: int) -> None:
        self.fleet = fleet
        self.camera_id = camera_id
        self.dead: set[str] = set()
        self.overlaps: list[tuple[str, ...]] = []
        self._db = Database(fleet.url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._db.close()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            dead = set(self.dead)
            holders = tuple(
                n.name
                for n in self._db.list_nodes()
                if self.camera_id in n.cameras and n.name not in dead
            )
            if len(holders) > 1:
                self.overlaps.append(holders)


def test_pool_camera_fails_over_once_and_never_runs_twice(fleet: Fleet) -> None:
    camera = fleet.camera("Pool door")
    fleet.db.assign_camera(camera, pool="p")
    fleet.start_node("a", "--pool", "p")
    fleet.start_node("b", "--pool", "p")

    def holder() -> str | None:
        return next(
            (n.name for n in fleet.db.list_nodes() if camera in n.cameras and n.name in alive),
            None,
        )

    alive = {"a", "b"}
    with HolderWatch(fleet, camera) as watch:
        first = wait_for("a node of the pool to run the camera", holder)
        wait_for(f"{first}'s events", lambda: fleet.central_uids(first, camera))
        # Both nodes are up (the other one heartbeats) and only one runs the camera.
        other = ({"a", "b"} - {first}).pop()
        wait_for(f"{other}'s heartbeat", lambda: fleet.heartbeat(other))
        before = sorted(fleet.central_uids(camera_id=camera))

        watch.dead.add(first)
        alive.discard(first)
        fleet.kill9(first)
        killed = time.monotonic()
        assert wait_for(f"{other} to take the camera", holder) == other
        took = time.monotonic() - killed
        print(f"failover after kill -9: {took:.1f} s")
        assert took < FAILOVER_LIMIT_S, f"failover took {took:.1f} s"
        wait_for(f"{other}'s events", lambda: fleet.central_uids(other, camera))

    assert watch.overlaps == []
    events = fleet.db.events(camera_id=camera)
    assert set(before) <= {e.uid for e in events}, "events recorded before were lost"
    last_first = max(e.timestamp for e in events if e.node == first)
    first_other = min(e.timestamp for e in events if e.node == other)
    assert last_first < first_other, "the two nodes counted the camera at the same time"
    fleet.stop_node(other)


def test_admin_page_assigns_cameras_and_lists_nodes(settings) -> None:
    from bokeh.document import Document

    from zvpanel.storage.fleet import Assignment, NodeBeat
    from zvpanel.storage.values import now_text
    from zvpanel.ui.admin import AdminView
    from zvpanel.web.auth import issue_token, verify_token

    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    try:
        admin = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
        (camera,) = app.db.list_cameras()  # the demo camera
        app.db.heartbeat(
            NodeBeat("store-7", "p", now_text(), (camera.id,), {camera.id: 1.9}, True, 12)
        )
        view = AdminView(app, admin)
        view.__panel__().get_root(Document())
        assert view.cameras_table.value["runs on"].tolist() == ["this server"]

        view.cameras_table.selection = [0]
        view.camera_runs_on.value, view.camera_runner.value = "pool", "p"
        assert view.assign_camera_action() is True
        assert app.db.camera_assignment(camera.id) == Assignment(camera.id, pool="p")
        assert view.cameras_table.value["runs on"].tolist() == ["pool p"]
        node = view.nodes_table.value.iloc[0]
        assert (node["node"], node["pool"], node["cameras"]) == ("store-7", "p", str(camera.id))
        assert (node["backlog (events)"], node["hardware limited"]) == (12, True)
        assert node["rates (detections/s)"] == f"{camera.id}: 1.9"

        view.camera_runs_on.value, view.camera_runner.value = "node", ""
        assert view.assign_camera_action() is False
        assert "name the node" in view.status.object
        view.camera_runs_on.value = "this server"
        assert view.assign_camera_action() is True
        assert app.db.camera_assignment(camera.id) is None
    finally:
        app.stop()


def test_admin_page_in_a_browser_shows_each_nodes_backlog(
    fleet: Fleet, browser, model_path: str
) -> None:
    from serving import login, panel_server

    from zvpanel.storage.fleet import NodeBeat
    from zvpanel.storage.values import now_text

    camera = fleet.camera("Door")
    fleet.db.assign_camera(camera, node="store-7")
    fleet.db.heartbeat(NodeBeat("store-7", None, now_text(), (camera,), {camera: 1.9}, False, 321))
    env = {"ZVPANEL_DATABASE_URL": fleet.url, "ZVPANEL_DEMO": "0"}
    (fleet.folder / "server").mkdir()
    with panel_server(fleet.folder / "server", model_path, env=env) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            login(page, server.url)
            page.wait_for_url("**/live")
            page.goto(server.url + "/admin")
            page.get_by_text("node store-7").first.wait_for()  # the camera's "runs on"
            page.locator(".bk-tab", has_text="Nodes").click()
            page.get_by_text("321", exact=True).first.wait_for()  # the backlog
            assert page.get_by_text("store-7").first.is_visible()
        finally:
            context.close()


class Link:
    """A TCP relay to PostgreSQL that a test can cut: one node losing its link to the
    database while the database itself, and the other nodes, stay up."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        return url.replace(f":{self.target_port}/", f":{self.port}/")

    def cut(self) -> None:
        with self._lock:
            self.up = False
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def restore(self) -> None:
        with self._lock:
            self.up = True

    def close(self) -> None:
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if not self.up:
                    _close(client)
                    continue
                server = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(sink)


def test_pool_camera_moves_when_its_node_loses_the_database(fleet: Fleet, postgres) -> None:
    camera = fleet.camera("Pool door")
    fleet.db.assign_camera(camera, pool="p")
    link = Link(postgres.port)
    try:
        fleet.start_node("a", "--pool", "p", url=link.url(fleet.url))
        wait_for("a to run the camera", lambda: fleet.cameras_of("a") == (camera,))
        fleet.start_node("b", "--pool", "p")
        wait_for("b's heartbeat", lambda: fleet.heartbeat("b"))

        link.cut()  # a cannot renew its lease, and counts on: it cannot tell why
        cut = time.monotonic()
        wait_for("b to take the camera", lambda: fleet.cameras_of("b") == (camera,))
        took = time.monotonic() - cut
        print(f"failover after losing the link: {took:.1f} s")
        assert took < FAILOVER_LIMIT_S, f"failover took {took:.1f} s"
        wait_for("b's events", lambda: fleet.central_uids("b", camera))
        b_term = fleet.db.lease_terms(camera)[-1]
        assert b_term.node == "b"
        wait_for(
            "a to count a crossing while b holds the camera",
            lambda: max(fleet.outbox_times("a").values(), default=0) > b_term.started_at + 1,
        )

        link.restore()  # a forwards what it counted and lets the camera go
        wait_for("a's outbox to drain", lambda: fleet.backlog("a") == 0)
        wait_for("a to report no camera", lambda: fleet.cameras_of("a") == ())
    finally:
        link.close()
    fleet.stop_node("a")
    fleet.stop_node("b")
    events = fleet.db.events(camera_id=camera)
    uids = [e.uid for e in events]
    assert len(uids) == len(set(uids)), "an event was stored twice"
    counted_by_a = fleet.outbox_times("a")
    aside = fleet.db.superseded_events(camera)
    stored_a = {e.uid for e in events if e.node == "a"}
    assert stored_a | set(aside) == set(counted_by_a) and not stored_a & set(aside)
    # What a counted while b held the camera is set aside, and nothing else.
    b_term = next(t for t in fleet.db.lease_terms(camera) if t.node == "b")
    in_b_term = {u for u, t in counted_by_a.items() if b_term.started_at <= t < b_term.ended_at}
    assert in_b_term and set(aside) == in_b_term
    assert set(aside.values()) == {b_term.holder}
    last_a = max(e.timestamp for e in events if e.node == "a")
    first_b = min(e.timestamp for e in events if e.node == "b")
    assert last_a < first_b, "the central table counts the overlap twice"
    print(f"a counted {len(counted_by_a)}: {len(stored_a)} stored, {len(aside)} set aside")


def test_pool_camera_counts_on_through_a_database_outage(fleet: Fleet, postgres) -> None:
    from zvpanel.node import LEASE_SECONDS, RECONNECT_GRACE_SECONDS, RENEW_SECONDS

    camera = fleet.camera("Pool door")
    fleet.db.assign_camera(camera, pool="p")
    fleet.start_node("a", "--pool", "p")
    wait_for("a to run the camera", lambda: fleet.cameras_of("a") == (camera,))
    fleet.start_node("b", "--pool", "p")
    wait_for("b's heartbeat", lambda: fleet.heartbeat("b"))
    wait_for("a's first events stored", lambda: fleet.central_uids("a", camera))

    postgres.stop()
    stopped = time.time()
    try:
        # Well past the time its lease expired, a still counts (into its outbox).
        wait_for(
            "a crossing counted long after a's lease expired",
            lambda: max(fleet.outbox_times("a").values()) > stopped + LEASE_SECONDS + RENEW_SECONDS,
            deadline=300,
        )
    finally:
        postgres.start()
    wait_for("a's outbox to drain", lambda: fleet.backlog("a") == 0)
    time.sleep(RECONNECT_GRACE_SECONDS + 2 * RENEW_SECONDS)  # b had its chances to claim
    # The holder renewed first: a's one term spans the outage, b never took the camera.
    assert [t.holder.partition("@")[0] for t in fleet.db.lease_terms(camera)] == ["a"]
    assert fleet.cameras_of("a") == (camera,) and fleet.cameras_of("b") == ()
    fleet.stop_node("b")
    fleet.stop_node("a")  # forwards what it counted last

    counted = fleet.outbox_times("a")
    stored = fleet.central_uids(camera_id=camera)
    assert sorted(stored) == sorted(counted), "an event was lost, invented or stored twice"
    assert fleet.db.superseded_events(camera) == {}
    outage = [t for t in counted.values() if stopped <= t]
    print(f"a counted {len(counted)} events, {len(outage)} of them from the outage on")
    log = (fleet.folder / "node-a.log").read_text()
    for line in ("cannot renew leases (", "heartbeat failed ("):
        assert log.count(line) == 1, f"{line!r} said {log.count(line)} times in one outage"


def test_a_lease_has_one_holder_until_it_expires(db_target) -> None:
    from zvpanel.node import Leases

    with Database(db_target) as db:
        store = db.create_store("S", "UTC")
        camera = db.create_camera(store.id, "C", "x.avi").id
        db.assign_camera(camera, pool="p")
        assert db.claim_lease(camera, "a@1", 30) is True
        assert db.claim_lease(camera, "b@1", 30) is False
        assert db.claim_lease(camera, "a@1", 30) is True  # renewed
        assert db.lease_holders() == {camera: "a@1"}
        assert db.claim_lease(camera, "a@1", -1) is True  # now expired, in the db's clock
        assert db.lease_holders() == {}
        assert db.claim_lease(camera, "b@1", 30) is True
        db.release_leases("b@1")
        # Two processes under one node name (a mistake) still never both run the camera.
        twins = [Leases(db, "same", "p"), Leases(db, "same", "p")]
        for leases in twins:
            leases.refresh()
        assert [leases.runs(camera) for leases in twins].count(True) == 1


def test_a_second_node_on_the_same_outbox_is_refused(fleet: Fleet) -> None:
    fleet.start_node("n1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env.update(ZVPANEL_DATABASE_URL=fleet.url, ZVPANEL_MODEL=fleet.model_path)
    command = [sys.executable, "-m", "zvpanel", "node", "--name", "n1"]
    done = subprocess.run(
        [*command, "--outbox", str(fleet.outbox("n1"))], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "is in use by another zvpanel node process" in done.stderr
    fleet.stop_node("n1")


def test_events_counted_in_another_nodes_lease_term_are_set_aside(db_target) -> None:
    from zvpanel.storage import EventRow, utc_text
    from zvpanel.storage.values import new_event_uid

    with Database(db_target) as db:
        store = db.create_store("S", "UTC")
        camera = db.create_camera(store.id, "C", "x.avi").id
        db.assign_camera(camera, pool="p")

        def event(node: str | None, at: float) -> EventRow:
            return EventRow(
                store.id, camera, "door", 1, "entry", utc_text(at), 0, 0.9, new_event_uid(), node
            )

        assert db.claim_lease(camera, "a@1", 30) and db.claim_lease(camera, "a@1", 30)
        assert db.claim_lease(camera, "a@1", -1)  # a's lease ran out: a lost the database
        time.sleep(0.05)  # a gap between the terms, in the database's clock
        assert db.claim_lease(camera, "b@1", 30)
        a_term, b_term = db.lease_terms(camera)
        assert (a_term.holder, a_term.node, b_term.holder, b_term.node) == ("a@1", "a", "b@1", "b")
        assert a_term.ended_at < b_term.started_at, "a renewal extends a term"

        kept = [
            event("a", a_term.started_at + 0.001),  # a held the camera
            event("a", (a_term.ended_at + b_term.started_at) / 2),  # nobody held it
            event("b", b_term.started_at + 1),  # b holds it
            event(None, b_term.started_at + 1),  # the dashboards' own engine: no lease
        ]
        overlap = event("a", b_term.started_at + 1)  # a counted on, cut from the database
        for _ in range(2):  # a batch sent again changes nothing
            db.insert_events([*kept, overlap])
        assert sorted(e.uid for e in db.events(camera_id=camera)) == sorted(r.uid for r in kept)
        assert db.superseded_events(camera) == {overlap.uid: "b@1"}

        db.release_leases("b@1")  # its term ends now
        (_, b_term) = db.lease_terms(camera)
        after = event("a", b_term.ended_at + 1)
        db.insert_events([after])
        assert after.uid in {e.uid for e in db.events(camera_id=camera)}
