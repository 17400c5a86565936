"""glibc malloc settings for a process that runs many camera threads.

glibc gives threads that allocate at the same time arenas of their own, up to 8 per core
(16 on two cores), and each keeps the memory it once held. It also raises its mmap
threshold to the size of every large block freed (up to 32 MB), after which a camera's
frame-sized buffers (a 640x480 float input is 3.7 MB) are carved from those arenas and
fragment them instead of going back to the system when freed. Measured with
``benchmarks/memory.py`` (32 idle cameras, 2 minutes), these two settings took the
resident memory from 839 to 693 MB. They are set at run time with ``mallopt`` (as
``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` would at start-up) by the ``zvpanel``
command and the server's ``--setup`` before any thread starts, and by the engine before
its camera threads; a value the user set in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["tune_malloc", "trim_malloc", "MALLOC_ARENAS", "MMAP_THRESHOLD"]

log = logging.getLogger(__name__)

#: Arenas all threads share (glibc's own default is 8 per core).
MALLOC_ARENAS = 2
#: Blocks at least this large are mapped and unmapped on their own (bytes); fixing it stops
#: glibc's dynamic threshold from growing to frame size.
MMAP_THRESHOLD = 1 << 20
#: ``mallopt`` parameter numbers from glibc's ``malloc.h``.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: The settings, their environment variables (which win) and values.
_SETTINGS = (
    (_M_ARENA_MAX, "MALLOC_ARENA_MAX", MALLOC_ARENAS),
    (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
)


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (``mallopt`` numbers differ elsewhere), else None."""
    name = ctypes.util.find_library("c")
    if name is None or not hasattr(os, "confstr"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (ValueError, OSError):  # not glibc: the name is unknown to this C library
        return None
    return ctypes.CDLL(name)


def tune_malloc() -> bool:
    """Apply :data:`MALLOC_ARENAS` and :data:`MMAP_THRESHOLD` to this process (glibc only).

    Returns whether they were applied. Idempotent; call before the camera threads start.
    """
    libc = _glibc()
    if libc is None:
        return False
    for param, env, value in _SETTINGS:
        if env in os.environ:
            continue
        if not libc.mallopt(param, value):
            log.warning("mallopt(%d, %d) was refused; %s is glibc's default", param, value, env)
    return True


def trim_malloc() -> bool:
    """Give the free memory at the top of every arena back to the system (glibc only)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
