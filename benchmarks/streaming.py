"""Cost and quality of the dashboards' live video (the MJPEG streaming pane).

Starts a server process running the real App (engine on a fresh database whose demo
camera plays data/vtest.avi) and the real ``/stream/{id}.mjpg`` handler on a Tornado
IOLoop, as ``panel serve`` does, but without Panel's sessions, so that the streaming
threads can be measured alone. Then, for 1 and 4 clients watching the demo camera, prints:

* server CPU time per delivered frame: CPU of the threads that stream (the IOLoop thread,
  which writes to the sockets, and the JPEG encoder pool, which annotates and encodes)
  divided by the frames the clients received, next to the CPU cost of JPEG-encoding one
  such frame alone (target: at most 1.3x);
* bytes per frame on the wire (everything the client read, part headers included) next
  to the JPEG size;
* frames per second each client received;
* capture-to-display latency: from the frame's decode time (``X-Captured-At``, stamped by
  the camera's source thread) until the client has received AND decoded the JPEG.

The clients read ``/stream/{id}.mjpg`` exactly as a browser's ``<img>`` does (the same
bytes on the wire); they run in this process, so their own CPU is not counted.

    .venv/bin/python benchmarks/streaming.py [--seconds 20] [--clients 1 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT.parent / "shared" / "models" / "yolov8n_int8_openvino_model"
START_TIMEOUT_S = 180
#: JPEG quality the stream uses (zvpanel.web.mjpeg.STREAM_VARIANT).
JPEG_QUALITY = 80
ENCODE_SAMPLES = 100


@dataclass
class ClientStats:
    frames: int = 0
    wire_bytes: int = 0
    jpeg_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(db_path: str, model: str, port: int) -> None:
    """Child process: the App + the MJPEG route on this thread's IOLoop; a /_stats route."""
    from tornado.ioloop import IOLoop
    from tornado.web import Application, RequestHandler

    from zvpanel.app import get_app
    from zvpanel.config import load_settings
    from zvpanel.web.auth import issue_token
    from zvpanel.web.jpeg import shared_encoder
    from zvpanel.web.mjpeg import mjpeg_route

    settings = load_settings(db_path=db_path, model=model, dev_mode=True)
    app = get_app(settings)

    class StatsHandler(RequestHandler):
        def get(self) -> None:
            names = {t.native_id: t.name for t in threading.enumerate()}
            ioloop = encoder = 0.0
            for thread in psutil.Process().threads():
                name = names.get(thread.id, "")
                if name == "MainThread":
                    ioloop += thread.user_time + thread.system_time
                elif name.startswith("zvpanel-jpeg"):
                    encoder += thread.user_time + thread.system_time
            self.write(
                {
                    "streaming_cpu_s": ioloop + encoder,
                    "ioloop_cpu_s": ioloop,
                    "encoder_cpu_s": encoder,
                    "encoded": shared_encoder().encoded,
                }
            )

    routes = [
        mjpeg_route(lambda: app),
        (r"/_stats", StatsHandler),
    ]
    Application(routes).listen(port, "127.0.0.1")
    token = issue_token(settings, "admin", admin=True)
    print(json.dumps({"token": token}), flush=True)
    IOLoop.current().start()


def start_server(port: int, db_path: Path, model: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    args = [
        sys.executable,
        __file__,
        "--serve",
        str(db_path),
        "--model",
        model,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE)
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"server exited with {process.wait()}")
    return process, json.loads(line)["token"]


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats") as response:
        return json.load(response)


def watch(port: int, token: str, camera_id: int, stop: threading.Event, stats: ClientStats) -> None:
    """Read the multipart stream like a browser, decode every JPEG, record what arrived."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/stream/{camera_id}.mjpg", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"stream answered {response.status} {response.reason}")
    while not stop.is_set():
        wire = 0
        headers: dict[str, str] = {}
        while True:
            line = response.fp.readline()
            wire += len(line)
            text = line.decode("latin-1").strip()
            if not text:
                if headers:
                    break
                continue
            if ":" in text:
                key, value = text.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        size = int(headers["content-length"])
        jpeg = response.fp.read(size)
        wire += size + len(response.fp.readline())
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # "display"
        now = datetime.now(timezone.utc)
        if image is None:
            raise SystemExit("received a part that is not a JPEG")
        captured = datetime.fromisoformat(headers["x-captured-at"])
        stats.latencies_ms.append((now - captured).total_seconds() * 1000)
        stats.frames += 1
        stats.wire_bytes += wire
        stats.jpeg_bytes += size
        stats.last = time.monotonic()
        if stats.frames == 1:
            stats.first = stats.last
    conn.close()


def measure(port, token, camera_id, clients, seconds) -> tuple[list[ClientStats], dict]:
    stop = threading.Event()
    results = [ClientStats() for _ in range(clients)]
    threads = [
        threading.Thread(target=watch, args=(port, token, camera_id, stop, r), daemon=True)
        for r in results
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # connections set up and first frames through: measure steady state
    for r in results:
        r.frames = r.wire_bytes = r.jpeg_bytes = 0
        r.latencies_ms.clear()
    before = stats(port)
    time.sleep(seconds)
    after = stats(port)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    delta = {k: after[k] - before[k] for k in after}
    return results, delta


def encode_cost_ms(video: Path) -> tuple[float, float, float]:
    """Mean CPU ms to JPEG-encode one vtest.avi frame alone, the mean JPEG size, and the
    mean CPU ms to draw the annotations (8 boxes, the demo line) and encode."""
    from zvpanel.annotate import annotate
    from zvpanel.detections import Detections
    from zvpanel.storage.bootstrap import DEMO_CALIBRATION

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < ENCODE_SAMPLES:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    sizes, start = [], time.thread_time()
    for image in frames:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        sizes.append(len(buffer))
    encode_ms = (time.thread_time() - start) * 1000 / len(frames)
    boxes = np.array([[100, 100, 150, 250]] * 8, float) + np.arange(8)[:, None] * 60
    people = Detections(boxes, np.full(8, 0.8), np.zeros(8), np.arange(8))
    counts = {"door": {"entries": 3, "exits": 2}}
    start = time.thread_time()
    for image in frames:
        drawn = annotate(image, people, DEMO_CALIBRATION, counts, ("person",))
        cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    both_ms = (time.thread_time() - start) * 1000 / len(frames)
    return encode_ms, statistics.mean(sizes), both_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per case")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--model", default=os.environ.get("ZVPANEL_MODEL") or str(DEFAULT_MODEL))
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.model, args.port)
        return

    encode_ms, sample_jpeg, both_ms = encode_cost_ms(REPO_ROOT / "data" / "vtest.avi")
    print(
        f"JPEG-encoding one 768x576 vtest frame alone (q={JPEG_QUALITY}): "
        f"{encode_ms:.2f} ms CPU, {sample_jpeg / 1024:.1f} KiB; "
        f"drawing the annotations + encoding: {both_ms:.2f} ms"
    )
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server, token = start_server(port, Path(folder) / "zvpanel.db", args.model)
        try:
            camera_id = 1
            measure(port, token, camera_id, 1, 3.0)  # warm up: camera online, stream once
            header = (
                f"{'clients':>7} {'fps/client':>10} {'CPU ms/frame':>12} {'x encode':>8} "
                f"{'encodes/frame':>13} {'wire B/frame':>12} {'JPEG B':>8} {'overhead':>8} "
                f"{'lat p50':>8} {'lat p95':>8} {'IOLoop ms':>9} {'pool ms':>8}"
            )
            print(header)
            for clients in args.clients:
                results, delta = measure(port, token, camera_id, clients, args.seconds)
                frames = sum(r.frames for r in results)
                if not frames:
                    print(f"{clients:>7} no frames received")
                    continue
                cpu_ms = delta["streaming_cpu_s"] * 1000 / frames
                fps = statistics.mean(r.frames / args.seconds for r in results)
                wire = sum(r.wire_bytes for r in results) / frames
                jpeg = sum(r.jpeg_bytes for r in results) / frames
                lat = sorted(x for r in results for x in r.latencies_ms)
                p50, p95 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.95))]
                print(
                    f"{clients:>7} {fps:>10.2f} {cpu_ms:>12.2f} {cpu_ms / encode_ms:>7.2f}x "
                    f"{delta['encoded'] / frames:>13.2f} {wire:>12.0f} {jpeg:>8.0f} "
                    f"{wire / jpeg - 1:>7.2%} {p50:>6.0f}ms {p95:>6.0f}ms "
                    f"{delta['ioloop_cpu_s'] * 1000 / frames:>9.2f} "
                    f"{delta['encoder_cpu_s'] * 1000 / frames:>8.2f}"
                )
            print()
            print("CPU ms/frame: CPU of the streaming threads (IOLoop + encoder pool, which also")
            print("draws the annotations) per frame delivered; x encode: that over the cost of")
            print("encoding the frame alone (target <= 1.3x); encodes/frame: encodings per")
            print("delivered frame (shared by all viewers). The frame rate is the camera's")
            print("detection rate: the stream shows annotated, processed frames. IOLoop ms and")
            print("pool ms split CPU ms/frame between socket writing and drawing + encoding.")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
