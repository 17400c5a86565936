"""glibc malloc settings: camera threads share MALLOC_ARENAS arenas, as glibc's own
malloc_info reports them (fresh processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from zvpanel.memory import MALLOC_ARENAS

#: More threads than arenas, each allocating once: glibc gives each its own arena if allowed.
THREADS = 8

PROBE = f"""
import ctypes, ctypes.util, json, sys, tempfile, threading
from zvpanel.memory import tune_malloc

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]

def info():
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        fp = libc.fopen(f.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        return open(f.name).read()

tuned = tune_malloc() if sys.argv[1] == "tune" else None
blocks = []
together = threading.Barrier({THREADS})
def allocate():  # all alive at once: an exiting thread's arena would be reused
    together.wait()
    blocks.append(libc.malloc(1000))
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range({THREADS})]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({{"tuned": tuned, "arenas": info().count("<heap nr=")}}))
"""


def _probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_threads_share_the_arenas():
    untuned = _probe("none")
    assert untuned["arenas"] > MALLOC_ARENAS  # glibc's default: an arena per thread
    tuned = _probe("tune")
    assert tuned["tuned"] is True
    assert tuned["arenas"] <= MALLOC_ARENAS


def test_a_value_set_in_the_environment_wins():
    arenas = MALLOC_ARENAS + 1
    probed = _probe("tune", MALLOC_ARENA_MAX=str(arenas))
    assert probed["tuned"] is False
    assert probed["arenas"] == arenas
