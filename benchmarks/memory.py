"""Where a counting process's memory goes: resident memory at each stage of starting up,
then while idle cameras run (issue 14: under 1.5 GB after 10 minutes at 32 cameras).

Per line: RSS, its anonymous and file-backed parts (``/proc/self/smaps_rollup``: native
memory that tracemalloc does not see), threads, and the glibc malloc heaps (arenas) mapped.
Stages: imports, detector built, model compiled (warm-up), one tracker, then ``--cameras``
cameras of the throughput benchmark's idle footage (70% empty) in the real engine, every
``--step`` seconds for ``--minutes``. ``--no-tune`` leaves glibc's malloc defaults (see
:mod:`zvpanel.memory`) to measure what they cost.

Usage (a benchmark: under the lock on a shared machine)::

    flock /work/notes/bench.lock python benchmarks/memory.py [--cameras 32] [--minutes 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

#: The mapping of a glibc malloc heap: 64 MB aligned (HEAP_MAX_SIZE on 64-bit).
HEAP_ALIGN = 64 << 20


def _lines(path: str) -> list[str]:
    return Path(path).read_text().splitlines()


def memory_line(label: str) -> str:
    status = dict(line.split(":", 1) for line in _lines("/proc/self/status"))
    rollup = {}
    for line in _lines("/proc/self/smaps_rollup"):
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            rollup[key] = int(value.split()[0]) // 1024
    heaps = 0
    for line in _lines("/proc/self/maps"):
        fields = line.split()
        start, end = (int(v, 16) for v in fields[0].split("-"))
        if len(fields) == 5 and fields[1] == "rw-p" and start % HEAP_ALIGN == 0:
            heaps += end - start <= HEAP_ALIGN
    rss = int(status["VmRSS"].split()[0]) // 1024
    return (
        f"{label:38s} RSS {rss:5d} MB  anonymous {rollup.get('Anonymous', 0):5d} MB  "
        f"file {rollup.get('Pss_File', 0):4d} MB  threads {status['Threads'].strip():>4s}  "
        f"malloc heaps {heaps}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--step", type=float, default=30.0, help="seconds between lines")
    parser.add_argument("--no-tune", action="store_true", help="glibc's malloc defaults")
    args = parser.parse_args(argv)
    print(memory_line("start"), flush=True)
    from zvpanel.engine import engine as engine_module
    from zvpanel.memory import tune_malloc

    if args.no_tune:
        engine_module.tune_malloc = lambda: False  # Engine.start calls it too
    else:
        tune_malloc()  # as the zvpanel command and the server's --setup do
    import throughput

    from zvpanel.calibration import parse_calibration
    from zvpanel.config import load_settings
    from zvpanel.detection import YoloDetector
    from zvpanel.engine import Engine, ResultHub
    from zvpanel.storage import Database, EventWriter
    from zvpanel.tracking import PersonTracker

    print(memory_line("imports"), flush=True)
    settings = load_settings()
    detector = YoloDetector.from_settings(settings)
    print(memory_line("detector built"), flush=True)
    video = throughput.PROJECT_ROOT / "data" / "vtest.avi"
    first = next(throughput.iter_frames(video, max_frames=1)).image
    detector.warmup(first.shape[1], first.shape[0])
    print(memory_line("model compiled (warm-up)"), flush=True)
    PersonTracker(throughput.DETECTION_FPS)
    print(memory_line("one tracker"), flush=True)
    with tempfile.TemporaryDirectory(prefix="zv-memory-") as folder:
        idle = throughput.build_idle_footage(video, Path(folder), quick=False)
        db = Database(Path(folder) / "memory.db")
        store = db.create_store("Memory", "UTC")
        calibration = parse_calibration(throughput.CALIBRATION)
        for i in range(args.cameras):
            camera = db.create_camera(store.id, f"cam-{i + 1}", str(idle[i % len(idle)]))
            db.set_calibration(camera.id, calibration)
        writer = EventWriter(db)
        engine = Engine(db, ResultHub(), writer, detector, motion_gating=settings.motion_gating)
        engine.start()
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < 60 * args.minutes:
                time.sleep(min(args.step, 60 * args.minutes - elapsed))
                label = f"{args.cameras} cameras, {time.monotonic() - started:4.0f} s"
                print(memory_line(label), flush=True)
        finally:
            engine.stop()
            writer.close()
            db.close()
    print(memory_line("cameras stopped"))
    print(f"torch imported: {'torch' in sys.modules}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # throughput.py beside it
    sys.exit(main())
