"""Fleet mode under faults, on this machine: every part real, every fault on a schedule.

    .venv/bin/python benchmarks/fleet.py [--duration 240] [--db-outage-s 60] [--quick]

Starts, in a temporary folder on free 127.0.0.1 ports, Debian's PostgreSQL and Mosquitto
(the tests' own starters, tests/postgres.py and tests/mosquitto.py), two dashboards
without engine (the README's ``panel serve`` line as tests/serving.py runs it, with
ZVPANEL_ENGINE=0, production mode, one JWT secret) and three ``zvpanel node`` processes
with two cameras each on data/vtest.avi and the real model (ZVPANEL_MODEL) at a low
detection rate: ``n1`` runs its two own cameras; ``pa`` and ``pb`` form pool ``p``:
``pa`` starts first and takes the pool's two cameras, ``pb`` runs its own two and
stands by. Beside them, for the CPU comparison only, one embedded ``panel serve``
(SQLite, its own engine) with two cameras the same.

Schedule, in seconds after every camera runs: a CPU window (nodes and embedded server
measured over the same seconds, then the embedded server stops); ``kill -9`` of ``pa``
(``pb`` must take the pool cameras; ``pa`` is started again once it did, so its outbox
drains); a broker restart; PostgreSQL stopped for ``--db-outage-s``; then the rest of
``--duration``. The nodes stop with SIGTERM (their last forward) and it prints:

- events produced at the nodes (the union of their outboxes) vs stored in PostgreSQL,
  events missing or unexpected, and duplicates,
- failover time after the kill (heartbeat, and first detections of the new node),
- end-to-end event latency p50/p99: event time at the node -> forwarded to PostgreSQL
  (the outbox's ``forwarded_at``) and -> arrival on each dashboard's ``/ws/events``,
- the longest gap in each camera's detections on the bus (what each fault cost live),
- CPU time per detection and share of a core per camera: the nodes vs the embedded
  server over the same window, and the central parts (dashboards, PostgreSQL, broker).

Everything it starts it stops, also on Ctrl-C, SIGTERM or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen

import paho.mqtt.client as mqtt
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' server starters, reused as they are

from mosquitto import MosquittoServer, mosquitto_server  # noqa: E402
from postgres import PostgresServer, postgres_server  # noqa: E402
from serving import panel_server  # noqa: E402

from zvpanel.bus import parse_mqtt_url, parse_topic  # noqa: E402
from zvpanel.bus.topics import subscription  # noqa: E402
from zvpanel.calibration import parse_calibration  # noqa: E402
from zvpanel.storage import Database  # noqa: E402

DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "yolov8n_int8_openvino_model"
VIDEO = ROOT / "data" / "vtest.avi"
#: Detections per second asked of every camera: low, the machine is shared.
DETECTION_FPS = 2.0
#: Lines through vtest.avi's crossroads (as tests/test_fleet.py).
LINES = [
    {"id": "door", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576},
    {"id": "aisle", "x1": 0, "y1": 300, "x2": 768, "y2": 300},
]
#: Node name -> (pool, how many cameras assigned to the node itself).
NODES = {"n1": (None, 2), "pa": ("p", 0), "pb": ("p", 2)}
POOL_CAMERAS = 2
EMBEDDED_CAMERAS = 2
JWT_SECRET = "fleet-benchmark-secret-" + "x" * 24
ADMIN_PASSWORD = "a real password for the fleet benchmark"
#: Longest wait for a process to start or for all cameras to run (model loading, 2 cores).
START_TIMEOUT_S = 180.0
#: Longest wait for the pool cameras to move (the issue's bound is 30 s).
FAILOVER_TIMEOUT_S = 90.0
#: How long the broker stays down.
BROKER_DOWN_S = 5.0
#: Seconds of CPU measurement, full run and --quick.
CPU_WINDOW_S, QUICK_CPU_WINDOW_S = 45.0, 20.0
#: Seconds of normal running after the database is back before the nodes stop.
TAIL_S, QUICK_TAIL_S = 30.0, 15.0
#: A camera counts as running when the bus carried its detections this recently.
FRESH_S = 5.0
#: How often faults' recovery is polled.
POLL_S = 0.2


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # the same clean-up as Ctrl-C
    with tempfile.TemporaryDirectory(prefix="zvpanel-fleet-bench-") as tmp, ExitStack() as stack:
        bench = Bench(Path(tmp), args, stack)
        bench.run()
        bench.report()
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, help="seconds of running once every camera runs")
    p.add_argument("--db-outage-s", type=float, help="how long PostgreSQL is stopped")
    p.add_argument("--quick", action="store_true", help="short run, every fault shortened")
    p.add_argument("--fps", type=float, default=DETECTION_FPS, help="detections/s per camera")
    p.add_argument("--model", default=os.environ.get("ZVPANEL_MODEL") or str(DEFAULT_MODEL))
    args = p.parse_args()
    args.db_outage_s = args.db_outage_s or (10.0 if args.quick else 60.0)
    args.cpu_window_s = QUICK_CPU_WINDOW_S if args.quick else CPU_WINDOW_S
    args.tail_s = QUICK_TAIL_S if args.quick else TAIL_S
    shortest = args.cpu_window_s + FAILOVER_TIMEOUT_S / 3 + args.db_outage_s + args.tail_s
    args.duration = args.duration or (max(100.0, shortest) if args.quick else 240.0)
    if args.duration < shortest:
        p.error(f"--duration {args.duration:g} is too short for the schedule: {shortest:g} s")
    if args.fps <= 0:
        p.error(f"--fps {args.fps:g} must be positive")
    if not Path(args.model).exists():
        p.error(f"--model {args.model}: not found (set ZVPANEL_MODEL)")
    args.model = str(Path(args.model).resolve())  # the servers run from the checkout
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------- observers
@dataclass
class Detections:
    """Every detections message on the bus: (arrival, camera, origin pid, frame key)."""

    seen: list[tuple[float, int, int, tuple[int, int]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, camera_id: int, payload: bytes) -> None:
        message = json.loads(payload)
        pid = int(message["origin"].rsplit("-", 2)[1])  # origin is host-pid-random
        with self.lock:
            self.seen.append((time.time(), camera_id, pid, (message["loop"], message["frame"])))

    def since(self, start: float) -> list[tuple[float, int, int, tuple[int, int]]]:
        with self.lock:
            return [s for s in self.seen if s[0] >= start]

    def fresh_cameras(self) -> set[int]:
        return {camera for _, camera, _, _ in self.since(time.time() - FRESH_S)}


@contextmanager
def bus_listener(url: str, detections: Detections) -> Iterator[None]:
    """A plain MQTT subscriber to every camera's detections; it reconnects by itself."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(subscription("detections"))

    def on_message(client, userdata, message) -> None:
        parsed = parse_topic(message.topic)
        if parsed is not None:
            detections.add(parsed[0], message.payload)

    client.on_message = on_message
    client.reconnect_delay_set(1, 2)
    broker = parse_mqtt_url(url)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield
    finally:
        client.disconnect()
        client.loop_stop()


class Sockets:
    """WebSocket clients on their own asyncio loop: each keeps reading and reconnects."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        #: label -> [(arrival, message)]
        self.received: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def follow(self, label: str, url: str) -> None:
        asyncio.run_coroutine_threadsafe(self._read(label, url), self.loop)

    async def _read(self, label: str, url: str) -> None:
        from tornado.websocket import websocket_connect

        while True:
            try:
                conn = await websocket_connect(url)
                while (text := await conn.read_message()) is not None:
                    with self.lock:
                        self.received[label].append((time.time(), json.loads(text)))
            except Exception:  # the server restarts or stops: try again
                pass
            await asyncio.sleep(1.0)

    def messages(self, label: str, kind: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(t, m) for t, m in self.received[label] if m.get("type") == kind]

    def close(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def token(url: str, username: str, password: str) -> str:
    form = urlencode({"username": username, "password": password}).encode()
    with urlopen(f"{url}/api/token", data=form) as answer:  # POST
        return json.loads(answer.read())["access_token"]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their children (ended ones included)."""
    total = 0.0
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in process.children(recursive=True):
                with suppress(psutil.NoSuchProcess):
                    times = child.cpu_times()
                    total += times.user + times.system
    return total


def postgres_pid(server: PostgresServer) -> int:
    return int((server.folder / "data" / "postmaster.pid").read_text().split()[0])


def wait_for(what: str, condition: Callable[[], object], timeout: float = START_TIMEOUT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := condition():
            return value
        time.sleep(POLL_S)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def utc_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)} (too few)"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.2f} s  p99 {q[98]:.2f} s  max {max(values):.2f} s  (n={len(values)})"


# ---------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, folder: Path, args: argparse.Namespace, stack: ExitStack) -> None:
        self.folder = folder
        self.args = args
        self.stack = stack
        self.detections = Detections()
        self.sockets: Sockets | None = None
        self.nodes: dict[str, subprocess.Popen] = {}
        self.cameras: dict[str, list[int]] = {}  # node -> its own cameras; "pool" too
        self.faults: list[tuple[str, float, float]] = []  # (what, start, end), wall time
        self.figures: dict[str, object] = {}

    # ------------------------------------------------------------------ schedule
    def run(self) -> None:
        self.start_central()
        self.start_fleet()
        self.t0 = time.time()
        print(f"every camera runs; schedule starts ({self.args.duration:g} s)", flush=True)
        self.measure_cpu()
        self.kill_pool_node()
        self.restart_broker()
        self.stop_database()
        self.sleep_until(max(self.args.duration, self.elapsed(time.time()) + self.args.tail_s))
        self.stop_nodes()
        self.end = time.time()

    def sleep_until(self, second: float) -> None:
        time.sleep(max(0.0, self.t0 + second - time.time()))

    def elapsed(self, moment: float) -> float:
        return moment - self.t0

    # ------------------------------------------------------------------ start
    def start_central(self) -> None:
        self.pg: PostgresServer = self.stack.enter_context(postgres_server())
        self.url = self.pg.new_database()
        (self.folder / "mosquitto").mkdir()
        self.broker: MosquittoServer = self.stack.enter_context(
            mosquitto_server(self.folder / "mosquitto")
        )
        self.stack.enter_context(bus_listener(self.broker.url, self.detections))
        self.db = self.stack.enter_context(Database(self.url))
        self.store = self.db.create_store("Fleet benchmark", "UTC").id
        for name, (_, own) in NODES.items():
            self.cameras[name] = [
                self.camera(self.db, f"{name}-{i}", node=name) for i in range(own)
            ]
        self.cameras["pool"] = [
            self.camera(self.db, f"pool-{i}", pool="p") for i in range(POOL_CAMERAS)
        ]
        print(f"PostgreSQL on {self.pg.port}, Mosquitto on {self.broker.port}", flush=True)

    def camera(
        self,
        db: Database,
        name: str,
        *,
        node: str | None = None,
        pool: str | None = None,
        store: int | None = None,
    ) -> int:
        camera = db.create_camera(store or self.store, name, str(VIDEO)).id
        db.set_calibration(
            camera, parse_calibration({"lines": LINES, "detection_fps": self.args.fps})
        )
        if node or pool:
            db.assign_camera(camera, node=node, pool=pool)
        return camera

    def start_fleet(self) -> None:
        self.stack.callback(self.kill_nodes)
        self.start_node("n1", wait=False)
        self.start_node("pa", wait=False)
        self.dashboard_pids: list[int] = []
        self.dashboards = [self.start_dashboard(i) for i in (1, 2)]
        pool = set(self.cameras["pool"])
        wait_for("pa to hold the pool cameras", lambda: pool <= set(self.node_cameras("pa")))
        self.start_node("pb", wait=False)
        self.start_embedded()
        self.sockets = Sockets()
        self.stack.callback(self.sockets.close)
        admin = token(self.dashboards[0], "admin", ADMIN_PASSWORD)
        for i, url in enumerate(self.dashboards, 1):  # one token for both: one secret
            self.sockets.follow(f"dashboard {i}", f"{_ws(url)}/ws/events?token={admin}")
        dev = token(self.embedded, "admin", "admin")
        for camera in self.embedded_cameras:
            self.sockets.follow(
                "embedded", f"{_ws(self.embedded)}/ws/detections/{camera}?token={dev}"
            )
        every = {c for cameras in self.cameras.values() for c in cameras}
        wait_for("every node camera on the bus", lambda: every <= self.detections.fresh_cameras())
        wait_for(
            "the embedded cameras", lambda: self.embedded_fresh() == set(self.embedded_cameras)
        )

    def node_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
        (self.folder / name).mkdir(exist_ok=True)
        env.update(
            ZVPANEL_DATABASE_URL=self.url,
            ZVPANEL_MQTT_URL=self.broker.url,
            ZVPANEL_MODEL=self.args.model,
            ZVPANEL_DEV_MODE="1",
            ZVPANEL_DB_PATH=str(self.folder / name / "unused.db"),  # its data folder
        )
        return env

    def outbox(self, name: str) -> Path:
        return self.folder / name / "outbox.db"

    def start_node(self, name: str, *, wait: bool = True) -> None:
        pool, _ = NODES[name]
        command = [sys.executable, "-m", "zvpanel", "node", "--name", name]
        command += ["--outbox", str(self.outbox(name))] + (["--pool", pool] if pool else [])
        env = self.node_env(name)
        log = self.folder / name / "node.log"
        starts = _starts(log)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.nodes[name] = process
        if wait:
            wait_for(f"node {name} to start", lambda: _starts(log) > starts)

    def start_dashboard(self, i: int) -> str:
        folder = self.folder / f"dashboard-{i}"
        folder.mkdir()
        env = {
            "ZVPANEL_DATABASE_URL": self.url,
            "ZVPANEL_MQTT_URL": self.broker.url,
            "ZVPANEL_ENGINE": "0",
            "ZVPANEL_DEMO": "0",
            "ZVPANEL_DEV_MODE": "0",
            "ZVPANEL_JWT_SECRET": JWT_SECRET,
            "ZVPANEL_ADMIN_USERNAME": "admin",
            "ZVPANEL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        server = self.stack.enter_context(panel_server(folder, self.args.model, env=env))
        self.dashboard_pids.append(server.process.pid)
        return server.url

    def start_embedded(self) -> None:
        """The embedded mode (SQLite, its own engine, no broker) with its own cameras; it
        runs in a stack of its own so it can stop after the CPU window."""
        folder = self.folder / "embedded"
        folder.mkdir()
        with Database(folder / "zvpanel.db") as db:
            store = db.create_store("Embedded", "UTC").id
            self.embedded_cameras = [
                self.camera(db, f"embedded-{i}", store=store) for i in range(EMBEDDED_CAMERAS)
            ]
        self.embedded_stack = self.stack.enter_context(ExitStack())
        server = self.embedded_stack.enter_context(
            panel_server(folder, self.args.model, env={"ZVPANEL_DEMO": "0"})
        )
        self.embedded, self.embedded_pid = server.url, server.process.pid

    def embedded_fresh(self) -> set[int]:
        now = time.time()
        return {
            m["camera_id"]
            for t, m in self.sockets.messages("embedded", "detections")
            if t > now - FRESH_S
        }

    # ------------------------------------------------------------------ measure & faults
    def measure_cpu(self) -> None:
        node_pids = [p.pid for p in self.nodes.values()]
        central = [*self.dashboard_pids, postgres_pid(self.pg), self.broker.process.pid]
        groups = {"nodes": node_pids, "embedded": [self.embedded_pid], "central": central}
        start = time.time()
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        self.sleep_until(self.args.cpu_window_s)
        after = {k: cpu_seconds(v) for k, v in groups.items()}
        end = time.time()
        node_frames = {(c, f) for t, c, _, f in self.detections.since(start) if t <= end}
        embedded_frames = {
            (m["camera_id"], m["loop"], m["frame"])
            for t, m in self.sockets.messages("embedded", "detections")
            if start <= t <= end
        }
        self.figures["cpu"] = dict(
            window=end - start,
            cpu={k: after[k] - before[k] for k in groups},
            detections={"nodes": len(node_frames), "embedded": len(embedded_frames)},
        )
        self.embedded_stack.close()  # the rest of the run is the fleet's alone
        print(f"CPU window done ({end - start:.0f} s); embedded server stopped", flush=True)

    def kill_pool_node(self) -> None:
        self.sleep_until(self.args.cpu_window_s + 5)
        pool = set(self.cameras["pool"])
        holder = next(n for n in ("pa", "pb") if pool & set(self.node_cameras(n)))
        other = "pb" if holder == "pa" else "pa"
        self.nodes[holder].send_signal(signal.SIGKILL)
        self.nodes[holder].wait(10)
        killed = time.time()
        new_pid = self.nodes[other].pid
        print(f"kill -9 {holder} at {self.elapsed(killed):.0f} s", flush=True)

        def counting() -> bool:
            return {c for t, c, pid, _ in self.detections.since(killed) if pid == new_pid} >= pool

        try:
            wait_for(
                f"{other} to take the pool cameras",
                lambda: pool <= set(self.node_cameras(other)),
                FAILOVER_TIMEOUT_S,
            )
            beat = time.time() - killed
            wait_for(f"{other}'s pool detections", counting, FAILOVER_TIMEOUT_S)
            self.figures["failover"] = (holder, other, beat, time.time() - killed)
        except TimeoutError as error:
            self.figures["failover"] = (holder, other, str(error), None)
        self.faults.append((f"kill -9 {holder}", killed, time.time()))
        self.start_node(holder)  # back as the pool's standby; its outbox drains

    def restart_broker(self) -> None:
        self.sleep_until(max(self.elapsed(time.time()), self.args.cpu_window_s + 25))
        down = time.time()
        print(f"broker down at {self.elapsed(down):.0f} s", flush=True)
        self.broker.stop()
        time.sleep(BROKER_DOWN_S)
        self.broker.start()
        up = time.time()
        self.faults.append(("broker down", down, up))
        every = {c for cameras in self.cameras.values() for c in cameras}
        try:
            wait_for(
                "every camera back on the bus", lambda: every <= self.detections.fresh_cameras()
            )
            back = min(t for t, _, _, _ in self.detections.since(up))
            latest = max(
                min(t for t, c, _, _ in self.detections.since(up) if c == cam) for cam in every
            )
            self.figures["bus_back"] = (back - up, latest - up)
        except (TimeoutError, ValueError) as error:
            self.figures["bus_back"] = str(error)

    def stop_database(self) -> None:
        self.sleep_until(max(self.elapsed(time.time()) + 10, self.args.cpu_window_s + 40))
        down = time.time()
        print(
            f"PostgreSQL down at {self.elapsed(down):.0f} s for {self.args.db_outage_s:g} s",
            flush=True,
        )
        self.pg.stop()
        try:
            time.sleep(self.args.db_outage_s)
        finally:
            self.pg.start()
        up = time.time()
        self.faults.append(("database down", down, up))
        peak = sum(self.outbox_backlog(n) for n in NODES)
        try:
            wait_for("the backlogs to drain", lambda: sum(map(self.outbox_backlog, NODES)) == 0)
            self.figures["drain"] = (peak, time.time() - up)
        except TimeoutError as error:
            self.figures["drain"] = (peak, str(error))

    def stop_nodes(self) -> None:
        for process in self.nodes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.nodes.items():
            code = process.wait(60)
            if code != 0:
                print(f"node {name} exited with {code}", flush=True)
        time.sleep(1.0)  # the last events' trip through the bus to the dashboards

    def kill_nodes(self) -> None:
        for process in self.nodes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)

    # ------------------------------------------------------------------ reads
    def node_cameras(self, name: str) -> list[int]:
        """The cameras the node's last heartbeat says it runs ([] if unknown)."""
        try:
            beat = next((n for n in self.db.list_nodes() if n.name == name), None)
        except Exception:  # the database is down
            return []
        return list(beat.cameras) if beat else []

    def outbox_rows(self, name: str) -> list[tuple]:
        if not self.outbox(name).exists():
            return []
        with closing(sqlite3.connect(self.outbox(name))) as conn:
            return conn.execute(
                "SELECT uid, camera_id, line_id, track_id, direction, frame_index, ts_utc, "
                "forwarded_at FROM outbox ORDER BY seq"
            ).fetchall()

    def outbox_backlog(self, name: str) -> int:
        if not self.outbox(name).exists():
            return 0
        with closing(sqlite3.connect(self.outbox(name))) as conn:
            query = "SELECT count(*) FROM outbox WHERE forwarded_at IS NULL"
            return conn.execute(query).fetchone()[0]

    # ------------------------------------------------------------------ report
    def report(self) -> None:
        args = self.args
        mode = "quick" if args.quick else "full"
        print()
        print(
            f"fleet benchmark ({mode}): 3 nodes x 2 cameras of vtest.avi at {args.fps:g} "
            f"detections/s, pool p = pa + pb, 2 dashboards (no engine), PostgreSQL, Mosquitto; "
            f"{self.elapsed(self.end):.0f} s"
        )
        print(
            "faults: "
            + "; ".join(
                f"{what} {self.elapsed(a):.0f}-{self.elapsed(b):.0f} s"
                for what, a, b in self.faults
            )
        )
        self.report_events()
        self.report_faults()
        self.report_latency()
        self.report_gaps()
        self.report_cpu()
        self.report_unseen()
        self.report_logs()

    def report_events(self) -> None:
        produced = [row[0] for name in NODES for row in self.outbox_rows(name)]
        with psycopg.connect(self.url) as conn:
            stored = [uid for (uid,) in conn.execute("SELECT uid FROM events")]
            # Counted by a node while another held the camera's lease (a link cut).
            aside = [uid for (uid,) in conn.execute("SELECT uid FROM superseded_events")]
        produced_set, stored_set = set(produced), set(stored) | set(aside)
        equal = "yes" if sorted(produced) == sorted(stored + aside) else "NO"
        print(f"events produced at the nodes (outboxes):  {len(produced)}")
        print(
            f"events stored centrally (PostgreSQL):     {len(stored)}   + set aside as "
            f"counted twice {len(aside)}, equal: {equal} "
            f"(missing {len(produced_set - stored_set)}, unexpected {len(stored_set - produced_set)})"
        )
        print(
            f"duplicates: stored {len(stored) - len(stored_set)}, "
            f"across outboxes {len(produced) - len(produced_set)}"
        )
        unforwarded = sum(map(self.outbox_backlog, NODES))
        print(f"left unforwarded in the outboxes at the end: {unforwarded}")

    def report_faults(self) -> None:
        holder, other, beat, counting = self.figures.get("failover", ("?", "?", "not run", None))
        if counting is None:
            print(f"failover after kill -9 {holder}: FAILED: {beat}")
        else:
            print(
                f"failover after kill -9 {holder}: {other}'s heartbeat lists the pool cameras "
                f"after {beat:.1f} s; {other}'s detections of both on the bus after {counting:.1f} s"
            )
        bus = self.figures.get("bus_back", "not run")
        if isinstance(bus, tuple):
            print(
                f"broker restart ({BROKER_DOWN_S:g} s down): first detections {bus[0]:.1f} s, "
                f"every camera {bus[1]:.1f} s after it listened again"
            )
        else:
            print(f"broker restart: {bus}")
        peak, drained = self.figures.get("drain", ("?", "not run"))
        text = f"{drained:.1f} s" if isinstance(drained, float) else drained
        print(
            f"database outage ({self.args.db_outage_s:g} s): backlog {peak} events when it came "
            f"back, outboxes drained after {text}"
        )

    def report_latency(self) -> None:
        rows = [row for name in NODES for row in self.outbox_rows(name)]
        stored = [utc_seconds(r[7]) - utc_seconds(r[6]) for r in rows if r[7] is not None]
        print(f"latency event -> forwarded to PostgreSQL: {percentiles(stored)}")
        # (camera, line, track, direction, frame, time to the millisecond) of each event.
        produced = {(r[1], r[2], r[3], r[4], r[5], r[6][:23]): r[6] for r in rows}
        for label in ("dashboard 1", "dashboard 2"):
            seen: dict[tuple, float] = {}
            for arrival, m in self.sockets.messages(label, "event"):
                key = (m["camera_id"], m["line_id"], m["track_id"], m["direction"], m["frame"])
                key += (m["timestamp"][:23],)
                if key in produced and key not in seen:
                    seen[key] = arrival - utc_seconds(produced[key])
            print(
                f"latency event -> {label} /ws/events: {percentiles(list(seen.values()))}; "
                f"{len(seen)} of {len(produced)} events seen there"
            )

    def report_gaps(self) -> None:
        by_camera: dict[int, list[float]] = defaultdict(list)
        for t, camera, _, _ in self.detections.since(self.t0):
            if t <= self.end:
                by_camera[camera].append(t)
        parts = []
        for name, cameras in self.cameras.items():
            for camera in cameras:
                times = [self.t0, *by_camera[camera], self.end]
                gap, start = max((b - a, a) for a, b in zip(times, times[1:], strict=False))
                parts.append(f"{name}/{camera} {gap:.0f} s at {self.elapsed(start):.0f} s")
        print("longest gap in each camera's detections on the bus: " + ", ".join(parts))

    def report_cpu(self) -> None:
        cpu = self.figures["cpu"]
        window = cpu["window"]
        n_nodes = sum(len(c) for c in self.cameras.values())
        print(f"CPU over the same {window:.0f} s window (user + system, all cores):")
        for label, group, cameras in (
            (f"fleet: 3 nodes, {n_nodes} cameras", "nodes", n_nodes),
            (
                f"embedded: panel serve on SQLite, {EMBEDDED_CAMERAS} cameras",
                "embedded",
                EMBEDDED_CAMERAS,
            ),
        ):
            seconds, frames = cpu["cpu"][group], cpu["detections"][group]
            per = f"{1000 * seconds / frames:.1f} ms per detection" if frames else "no detections"
            print(
                f"  {label}: {per}, {100 * seconds / window / cameras:.1f} % of a core per camera "
                f"({frames} detections, {frames / window / cameras:.2f}/s per camera)"
            )
        central = cpu["cpu"]["central"]
        print(
            f"  central for the fleet (2 dashboards, PostgreSQL, Mosquitto): "
            f"{100 * central / window / n_nodes:.1f} % of a core per camera"
        )

    def report_unseen(self) -> None:
        """Which fault the events a dashboard never got were counted in (+5 s after it)."""
        rows = [row for name in NODES for row in self.outbox_rows(name)]
        seen = {
            (m["camera_id"], m["line_id"], m["track_id"], m["direction"], m["frame"])
            for _, m in self.sockets.messages("dashboard 1", "event")
        }
        where: dict[str, int] = defaultdict(int)
        for r in rows:
            if (r[1], r[2], r[3], r[4], r[5]) in seen:
                continue
            t = utc_seconds(r[6])
            fault = next((w for w, a, b in self.faults if a - 5 <= t <= b + 5), "no fault")
            where[fault] += 1
        text = ", ".join(f"{n} around {w}" for w, n in where.items()) or "none"
        print(f"events dashboard 1 never got, by when they were counted: {text}")

    def report_logs(self) -> None:
        """How many tracebacks each log has, and the errors they end in (most common first)."""
        found = {}
        for path in sorted(self.folder.glob("*/*.log")):
            errors = _traceback_errors(path.read_text(errors="replace"))
            if errors:
                found[f"{path.parent.name}/{path.name}"] = errors
        if not found:
            print("tracebacks in the logs: none")
        for name, errors in found.items():
            print(f"tracebacks in {name}: {sum(errors.values())}")
            for error, n in errors.most_common(3):
                print(f"  {n} x {error[:160]}")


def _traceback_errors(text: str) -> Counter[str]:
    """The last line (the error) of each traceback in a log, counted."""
    errors: Counter[str] = Counter()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = next(
                (x for x in lines[i + 1 :] if x and not x.startswith((" ", "\t"))), "(cut off)"
            )
            errors[end] += 1
    return errors


def _ws(url: str) -> str:
    return url.replace("http", "ws", 1)


def _starts(log: Path) -> int:
    """How many times a node's log says it runs (its signal handlers are set by then)."""
    return log.read_text().count(" running (database") if log.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
