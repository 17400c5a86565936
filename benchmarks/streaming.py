"""Cost and quality of the dashboards' live video (the StreamingImage pane's feed).

Starts a server process running the real App (engine on a fresh database whose demo
camera plays data/vtest.avi) and the real ``/ws/video/{id}`` (the pane's feed) and
``/stream/{id}.mjpg`` handlers on a Tornado IOLoop, as ``panel serve`` does, but without
Panel's sessions, so that the streaming threads can be measured alone. Then, for 1 and 4
clients watching the demo camera, prints:

* server CPU time per delivered frame: CPU spent streaming (the IOLoop thread, which
  writes to the sockets, and the rendering: encoding and packing each frame, which the
  streams do on the camera's thread and time with that thread's CPU clock) divided by
  the frames the clients received, next to the CPU cost of JPEG-encoding that frame
  alone (target: at most 1.3x);
* bytes per frame on the wire (everything the client read: frame header, WebSocket or
  multipart framing) next to the JPEG size;
* frames per second each client received;
* capture-to-display latency: from the frame's decode time (stamped by the camera's
  source thread) until the client has received AND decoded the JPEG. It includes the
  frame's wait for the camera's next detection: vtest.avi plays at 10 frames/s and is
  detected at 5/s, so depending on how the two clocks fall (they shift when the file
  loops, every 80 s) a frame waits from a few ms to one source frame, 100 ms.

"Encoding that frame alone" is measured in the server process, on the camera's own
processed frames as they are published (one every 200 ms at the demo's 5 detections/s),
by a hub listener that only encodes them, on the camera's thread, where the streams
render theirs, while no client watches: the same frames, thread, pace and engine load,
with nothing of the streaming path. Each case alternates baseline and streaming windows
(``--rounds``), so that the drifts of a shared machine, which move either figure by
10-40% from run to run, hit both alike. (Encoding side by side with the stream would
not be fair: whichever encodes a frame second finds it in the cache.) A tight loop over
100 frames on an idle machine is cheaper per frame (warm caches); it is printed too.

CPU times are thread CPU clocks (``pthread_getcpuclockid`` for the IOLoop thread,
``time.thread_time`` around each rendering and each baseline encoding). The clients run
in this process, so their own CPU is not counted.

    .venv/bin/python benchmarks/streaming.py [--seconds 30] [--clients 1 4] [--transport video mjpeg]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from zvpanel.web.jpeg import DEFAULT_QUALITY, encode_jpeg

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT.parent / "shared" / "models" / "yolov8n_int8_openvino_model"
#: JPEG quality of both streams.
JPEG_QUALITY = DEFAULT_QUALITY
ENCODE_SAMPLES = 100
CAMERA_ID = 1  # the demo camera


@dataclass
class ClientStats:
    frames: int = 0
    wire_bytes: int = 0
    jpeg_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def record(self, wire: int, jpeg: bytes, captured: datetime) -> None:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # "display"
        if image is None:
            raise SystemExit("received a frame that is not a JPEG")
        now = datetime.now(timezone.utc)
        self.latencies_ms.append((now - captured).total_seconds() * 1000)
        self.frames += 1
        self.wire_bytes += wire
        self.jpeg_bytes += len(jpeg)

    def reset(self) -> None:
        self.frames = self.wire_bytes = self.jpeg_bytes = 0
        self.latencies_ms.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- server process
def ioloop_cpu_s() -> float:
    """CPU seconds of the IOLoop's thread (the main thread of the server process)."""
    return time.clock_gettime(time.pthread_getcpuclockid(threading.main_thread().ident))


class PacedEncode:
    """Encodes each processed frame of the camera as it is published, on the camera's
    thread, as the streams render theirs: the CPU of the encoding alone."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.size = self.count = 0

    def __call__(self, result) -> None:
        start = time.thread_time()
        buffer = encode_jpeg(result.frame.image, JPEG_QUALITY, result.camera_id)
        self.cpu_s += time.thread_time() - start
        self.size += len(buffer)
        self.count += 1

    def summary(self) -> dict:
        if not self.count:
            raise RuntimeError("the demo camera produced no frames")
        return {
            "encode_ms": self.cpu_s * 1000 / self.count,
            "jpeg_bytes": self.size / self.count,
            "frames": self.count,
        }


def serve(db_path: str, model: str, port: int) -> None:
    """Child process: the App and the video routes on this thread's IOLoop, plus /_stats
    (CPU spent streaming) and /_baseline (:class:`PacedEncode`)."""
    from tornado.ioloop import IOLoop
    from tornado.web import Application, RequestHandler

    from zvpanel.app import get_app
    from zvpanel.config import load_settings
    from zvpanel.web.auth import issue_token
    from zvpanel.web.mjpeg import mjpeg_route
    from zvpanel.web.video import video_route

    settings = load_settings(db_path=db_path, model=model, dev_mode=True)
    app = get_app(settings)

    class StatsHandler(RequestHandler):
        def get(self) -> None:
            self.write(
                {
                    "ioloop_cpu_s": ioloop_cpu_s(),
                    "render_cpu_s": sum(s.cpu_s for s in stats),
                    "rendered": sum(s.rendered for s in stats),
                }
            )

    class BaselineHandler(RequestHandler):
        async def get(self) -> None:
            seconds = float(self.get_query_argument("seconds"))
            encode = PacedEncode()
            with app.hub.subscribe(encode, [CAMERA_ID]):
                await asyncio.sleep(seconds)
            self.write(encode.summary())

    streamed = [video_route(lambda: app), mjpeg_route(lambda: app)]
    stats = [route[2]["streams"].stats for route in streamed]
    routes = [
        *streamed,
        (r"/_stats", StatsHandler),
        (r"/_baseline", BaselineHandler),
    ]
    Application(routes).listen(port, "127.0.0.1")
    token = issue_token(settings, "admin", admin=True)
    print(json.dumps({"token": token}), flush=True)
    IOLoop.current().start()


def start_server(port: int, db_path: Path, model: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    args = [sys.executable, __file__, "--serve", str(db_path), "--model", model]
    args += ["--port", str(port)]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE)
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"server exited with {process.wait()}")
    return process, json.loads(line)["token"]


def get_json(port: int, path: str, timeout: float = 30.0) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.load(response)


# ---------------------------------------------------------------------- clients
def watch_video(port: int, token: str, stop: threading.Event, stats: ClientStats) -> None:
    """Read /ws/video as the StreamingImage pane does: header length, header, JPEG."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    from zvpanel.web.video import parse_video_message

    async def run() -> None:
        url = f"ws://127.0.0.1:{port}/ws/video/{CAMERA_ID}"
        request = HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})
        conn = await websocket_connect(request)
        while not stop.is_set():
            message = await conn.read_message()
            if message is None:
                raise SystemExit(f"video feed closed: {conn.close_code} {conn.close_reason}")
            if isinstance(message, str):
                raise SystemExit(f"video feed sent text: {message}")
            header, jpeg = parse_video_message(message)
            # A binary frame of this size has a 4-byte WebSocket header (126 + 16-bit
            # length) below 64 KiB, 10 bytes (127 + 64-bit length) above.
            framing = 4 if len(message) < 65536 else 10
            captured = datetime.fromisoformat(header["timestamp"].replace("Z", "+00:00"))
            stats.record(len(message) + framing, jpeg, captured)
        conn.close()

    asyncio.run(run())


def watch_mjpeg(port: int, token: str, stop: threading.Event, stats: ClientStats) -> None:
    """Read /stream/{id}.mjpg as a browser's <img> does."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/stream/{CAMERA_ID}.mjpg", headers={"Authorization": f"Bearer {token}"})
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
        jpeg = response.fp.read(int(headers["content-length"]))
        wire += len(jpeg) + len(response.fp.readline())
        stats.record(wire, jpeg, datetime.fromisoformat(headers["x-captured-at"]))
    conn.close()


WATCHERS = {"video": watch_video, "mjpeg": watch_mjpeg}


def stream(port, token, transport, clients, seconds) -> tuple[list[ClientStats], dict]:
    """Stream to ``clients`` for ``seconds``: what they received, the streaming CPU."""
    stop = threading.Event()
    results = [ClientStats() for _ in range(clients)]
    threads = [
        threading.Thread(target=WATCHERS[transport], args=(port, token, stop, r), daemon=True)
        for r in results
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # connections set up and first frames through: measure steady state
    for r in results:
        r.reset()
    before = get_json(port, "/_stats")
    time.sleep(seconds)
    after = get_json(port, "/_stats")
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    return results, {k: after[k] - before[k] for k in after}


def measure(port, token, transport, clients, seconds, rounds) -> tuple[list, dict, dict]:
    """``rounds`` pairs of windows: the baseline alone, then the streaming (so that slow
    drifts of a shared machine hit both alike); totals over the rounds."""
    results: list[ClientStats] = []
    delta: dict = {}
    cpu = frames = 0.0
    for _ in range(rounds):
        window = seconds / rounds
        baseline = get_json(port, f"/_baseline?seconds={window}", timeout=window + 30)
        cpu += baseline["encode_ms"] * baseline["frames"]
        frames += baseline["frames"]
        received, used = stream(port, token, transport, clients, window)
        results += received
        delta = {k: delta.get(k, 0) + v for k, v in used.items()}
    return results, delta, {"encode_ms": cpu / frames}


def tight_loop_encode_ms(video: Path) -> float:
    """CPU ms to JPEG-encode one vtest frame in a tight loop over 100 frames, idle machine."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < ENCODE_SAMPLES:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    start = time.thread_time()
    for image in frames:
        encode_jpeg(image, JPEG_QUALITY, CAMERA_ID)
    return (time.thread_time() - start) * 1000 / len(frames)


def report(transport: str, clients: int, seconds: float, results, delta, baseline) -> None:
    frames = sum(r.frames for r in results)
    if not frames:
        print(f"{transport:>9} {clients:>7} no frames received")
        return
    encode_ms = baseline["encode_ms"]
    cpu_ms = (delta["ioloop_cpu_s"] + delta["render_cpu_s"]) * 1000 / frames
    fps = frames / clients / seconds  # results: one per client and round
    wire = sum(r.wire_bytes for r in results) / frames
    jpeg = sum(r.jpeg_bytes for r in results) / frames
    lat = sorted(x for r in results for x in r.latencies_ms)
    p50, p95 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.95))]
    print(
        f"{transport:>9} {clients:>7} {fps:>10.2f} {cpu_ms:>12.2f} {encode_ms:>9.2f} "
        f"{cpu_ms / encode_ms:>7.2f}x "
        f"{delta['rendered'] / frames:>13.2f} {wire:>12.0f} {jpeg:>8.0f} "
        f"{wire / jpeg - 1:>7.2%} {p50:>6.0f}ms {p95:>6.0f}ms "
        f"{delta['ioloop_cpu_s'] * 1000 / frames:>9.2f} "
        f"{delta['render_cpu_s'] * 1000 / frames:>9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring time per case")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3, help="baseline/stream windows per case")
    parser.add_argument("--transport", nargs="+", choices=sorted(WATCHERS), default=["video"])
    parser.add_argument("--model", default=os.environ.get("ZVPANEL_MODEL") or str(DEFAULT_MODEL))
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.model, args.port)
        return

    tight_ms = tight_loop_encode_ms(REPO_ROOT / "data" / "vtest.avi")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server, token = start_server(port, Path(folder) / "zvpanel.db", args.model)
        try:
            stream(port, token, args.transport[0], 1, 3.0)  # warm up: camera online
            print(
                f"JPEG quality {JPEG_QUALITY}, 768x576 frames, about "
                f"{get_json(port, '/_baseline?seconds=3')['jpeg_bytes'] / 1024:.1f} KiB; "
                f"encoding one in a tight loop on an idle machine: {tight_ms:.2f} ms CPU"
            )
            print(
                f"{'transport':>9} {'clients':>7} {'fps/client':>10} {'CPU ms/frame':>12} "
                f"{'encode ms':>9} {'x encode':>8} {'encodes/frame':>13} {'wire B/frame':>12} "
                f"{'JPEG B':>8} {'overhead':>8} {'lat p50':>8} {'lat p95':>8} "
                f"{'IOLoop ms':>9} {'render ms':>9}"
            )
            for transport in args.transport:
                for clients in args.clients:
                    results, delta, baseline = measure(
                        port, token, transport, clients, args.seconds, args.rounds
                    )
                    report(transport, clients, args.seconds, results, delta, baseline)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print()
    print("video: /ws/video, the dashboards' pane (raw JPEG + header; the browser draws the")
    print("overlay). mjpeg: /stream/{id}.mjpg for other applications (annotated on the server).")
    print("CPU ms/frame: CPU of streaming (IOLoop + rendering on the camera's thread) per")
    print("frame delivered; encode ms: encoding the frame alone, in windows alternating;")
    print("x encode: CPU ms/frame over encode ms (target <= 1.3x);")
    print("encodes/frame: encodings per delivered frame (shared by all viewers). The frame rate")
    print("is the camera's detection rate: the stream shows processed frames. IOLoop ms and")
    print("render ms split CPU ms/frame between socket writing and encoding + packing (+ drawing,")
    print("mjpeg). Latency includes the frame's wait for the next detection (0-100 ms here).")


if __name__ == "__main__":
    main()
