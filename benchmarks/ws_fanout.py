"""WebSocket fan-out under load: 100 detection clients + 4 live-frame clients.

    .venv/bin/python benchmarks/ws_fanout.py [--clients 100] [--frame-clients 4] [--seconds 20]

A child process runs the real App (database, demo camera on data/vtest.avi, YOLO model
from ZVPANEL_MODEL, engine) and serves the feed routes on 127.0.0.1; it prints the
engine's status once a second. This process measures the engine's processing rate
without clients, then connects the clients for the same time, then measures again
without them. It prints:

- messages per second per client (min / median / max), and what the server dropped,
- delivery delay: frame capture -> client receive (p50 / p99; includes detection time),
  and fan-out lag: how much later than the first client each client got the same frame,
- the engine's frame rate and processing time with and without the clients.

The demo camera is set to detect at the file's own rate (10/s) so the engine is as
busy as the source allows; on a shared 2-core machine it may be hardware-limited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "yolov8n_int8_openvino_model"
#: Detection rate asked of the demo camera: vtest.avi's own frame rate.
DETECTION_FPS = 10.0
#: Seconds the engine runs before anything is measured (model warm-up, first tracks).
WARMUP_S = 8.0
#: How long the child may take to load the model and listen.
START_TIMEOUT_S = 120.0
#: JPEG settings of the frame clients (annotated, as a dashboard would show).
FRAME_QUERY = {"frames": "annotated", "max_height": "576", "quality": "80"}


# ---------------------------------------------------------------------- server (child)
def serve(port_file: Path) -> None:
    from zvpanel.app import App
    from zvpanel.config import load_settings
    from zvpanel.web.routes import build_routes
    from zvpanel.web.server import FeedServer
    from zvpanel.web.ws_handlers import FeedRegistry

    settings = load_settings()
    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    camera = app.db.list_cameras()[0]
    calibration = app.db.get_calibration(camera.id)
    app.db.set_calibration(
        camera.id, calibration.model_copy(update={"detection_fps": DETECTION_FPS})
    )
    app.stop_database()
    app.start()
    registry = FeedRegistry()
    with FeedServer(build_routes(lambda: app, registry=registry)) as server:
        port_file.write_text(f"{server.port} {camera.id}")
        try:
            while True:
                status = app.engine.status(camera.id)
                line = {
                    "t": time.time(),
                    "processed": status.frames_processed if status else 0,
                    "processing_ms": status.processing_ms if status else 0.0,
                    "actual_fps": status.actual_fps if status else 0.0,
                    "hardware_limited": bool(status and status.hardware_limited),
                    "clients": len(registry.handlers()),
                    "dropped": sum(h.dropped for h in registry.handlers()),
                }
                print(json.dumps(line), flush=True)
                time.sleep(1.0)
        finally:
            app.stop()


# ---------------------------------------------------------------------- clients (parent)
class ClientStats:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.delays: list[float] = []  # capture -> receive, seconds
        self.received: dict[tuple[int, int], float] = {}  # (loop, frame) -> receive time
        self.last_dropped = 0


async def run_client(url: str, stats: ClientStats, stop: asyncio.Event, ready) -> None:
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(url, max_message_size=64 * 1024 * 1024)
    ready()
    while not stop.is_set():
        message = await conn.read_message()
        if message is None:
            break
        now = time.time()
        if isinstance(message, bytes):
            stats.bytes += len(message)
            continue
        data = json.loads(message)
        if data["type"] != "detections":
            continue
        stats.messages += 1
        captured = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00")).timestamp()
        stats.delays.append(now - captured)
        stats.received[(data["loop"], data["frame"])] = now
        stats.last_dropped = data["dropped"]
    conn.close()


async def load_phase(port: int, camera_id: int, token: str, args) -> tuple[list, list, float]:
    base = f"ws://127.0.0.1:{port}"
    detection_url = f"{base}/ws/detections/{camera_id}?token={token}"
    frame_url = f"{base}/ws/live/{camera_id}?" + urlencode({"token": token} | FRAME_QUERY)
    stop = asyncio.Event()
    connected = 0

    def ready() -> None:
        nonlocal connected
        connected += 1

    detection_stats = [ClientStats() for _ in range(args.clients)]
    frame_stats = [ClientStats() for _ in range(args.frame_clients)]
    tasks = [
        asyncio.create_task(run_client(detection_url, s, stop, ready)) for s in detection_stats
    ] + [asyncio.create_task(run_client(frame_url, s, stop, ready)) for s in frame_stats]
    while connected < len(tasks):
        await asyncio.sleep(0.05)
    started = time.time()
    await asyncio.sleep(args.seconds)
    stop.set()
    ended = time.time()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return detection_stats, frame_stats, ended - started


def engine_rate(lines: list[dict], start: float, end: float) -> tuple[float, float, bool]:
    """Processed frames per second and mean processing time between two wall times."""
    window = [line for line in lines if start <= line["t"] <= end]
    if len(window) < 2:
        return 0.0, 0.0, False
    fps = (window[-1]["processed"] - window[0]["processed"]) / (window[-1]["t"] - window[0]["t"])
    ms = statistics.mean(line["processing_ms"] for line in window)
    return fps, ms, any(line["hardware_limited"] for line in window)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def report(name: str, stats: list[ClientStats], seconds: float) -> None:
    rates = [s.messages / seconds for s in stats]
    delays = [d for s in stats for d in s.delays]
    print(
        f"{name}: {len(stats)} clients, messages/s per client min {min(rates):.2f} "
        f"median {statistics.median(rates):.2f} max {max(rates):.2f}; "
        f"dropped per client (server count) median {statistics.median(s.last_dropped for s in stats):.0f}"
    )
    print(
        f"  capture -> client delay p50 {percentile(delays, 50) * 1000:.0f} ms, "
        f"p99 {percentile(delays, 99) * 1000:.0f} ms"
    )
    if any(s.bytes for s in stats):
        mb = sum(s.bytes for s in stats) / seconds / 1e6
        print(f"  JPEG bytes received: {mb:.2f} MB/s in total")


def fanout_lag(groups: list[list[ClientStats]]) -> list[float]:
    first: dict[tuple[int, int], float] = {}
    for stats in (s for group in groups for s in group):
        for key, when in stats.received.items():
            first[key] = min(first.get(key, when), when)
    return [
        when - first[key]
        for group in groups
        for stats in group
        for key, when in stats.received.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100, help="detection clients")
    parser.add_argument("--frame-clients", type=int, default=4, help="/ws/live clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    tmp = Path(tempfile.mkdtemp(prefix="zvpanel-fanout-"))
    env = os.environ | {
        "ZVPANEL_DB_PATH": str(tmp / "zvpanel.db"),
        "ZVPANEL_DEV_MODE": "1",
        "ZVPANEL_MODEL": os.environ.get("ZVPANEL_MODEL", str(DEFAULT_MODEL)),
        "ZVPANEL_SAMPLE_VIDEO": str(ROOT / "data" / "vtest.avi"),
    }
    port_file = tmp / "port"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: list[dict] = []

    def collect() -> None:
        for text in child.stdout:
            if text.startswith("{"):
                lines.append(json.loads(text))

    threading.Thread(target=collect, daemon=True).start()
    try:
        deadline = time.time() + START_TIMEOUT_S
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.time() > deadline:
                raise SystemExit("the server process did not start (see its output above)")
            time.sleep(0.2)
        port, camera_id = (int(v) for v in port_file.read_text().split())
        os.environ.update(env)
        from zvpanel.config import load_settings
        from zvpanel.web.auth import issue_token

        token = issue_token(load_settings(), "admin", admin=True)
        print(
            f"engine on 127.0.0.1:{port}, camera {camera_id} at {DETECTION_FPS:g} detections/s; "
            f"warming up {WARMUP_S:g} s"
        )
        time.sleep(WARMUP_S)

        t0 = time.time()
        time.sleep(args.seconds)
        t1 = time.time()
        detection_stats, frame_stats, seconds = asyncio.run(
            load_phase(port, camera_id, token, args)
        )
        t2 = time.time()
        time.sleep(2.0)  # let the server notice the disconnects
        t3 = time.time()
        time.sleep(args.seconds)
        t4 = time.time()

        print()
        report("detection clients", detection_stats, seconds)
        report("frame clients", frame_stats, seconds)
        lag = fanout_lag([detection_stats, frame_stats])
        print(
            f"fan-out lag behind the first client: p50 {percentile(lag, 50) * 1000:.1f} ms, "
            f"p99 {percentile(lag, 99) * 1000:.1f} ms"
        )
        before = engine_rate(lines, t0, t1)
        during = engine_rate(lines, t1 + 1.0, t2)
        after = engine_rate(lines, t3, t4)
        without = (before[0] + after[0]) / 2
        print()
        for name, (fps, ms, limited) in (
            ("without clients (before)", before),
            (f"with {args.clients}+{args.frame_clients} clients", during),
            ("without clients (after)", after),
        ):
            print(
                f"engine {name:28} {fps:5.2f} frames/s, processing {ms:5.1f} ms/frame"
                + (" (hardware limited)" if limited else "")
            )
        if without > 0:
            change = (during[0] - without) / without * 100
            print(f"engine frame rate with clients vs without: {change:+.1f}% (target: above -5%)")
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
