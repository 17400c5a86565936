"""glibc malloc settings for a process that runs many camera threads.

glibc gives threads that allocate at the same time arenas of their own, up to 8 per core
(16 on two cores), and each arena keeps the memory it once held. A counting process runs
a few threads per camera, so all threads share :data:`MALLOC_ARENAS` arenas instead.
Measured with ``benchmarks/memory.py``-like runs (32 idle cameras, 1 minute, the same
machine, two rounds): 733 / 753 MB instead of 782 / 769 MB at the same detection rate
(149 / 139 detections/s against 146 / 128). A fixed 1 MB mmap threshold as well (frame-size
blocks mapped and unmapped each time) saved about 150 MB more but cost 6% of the
detections/s and doubled the processing time per frame, so glibc keeps its dynamic one.

The limit is set at run time with ``mallopt`` (as ``MALLOC_ARENA_MAX`` would at start-up)
by the ``zvpanel`` command and the server's ``--setup`` before any thread starts, and by
the engine before its camera threads; a value the user set in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["tune_malloc", "MALLOC_ARENAS"]

log = logging.getLogger(__name__)

#: Arenas all threads share (glibc's own default is 8 per core).
MALLOC_ARENAS = 2
#: ``mallopt``'s parameter number for it (glibc's ``malloc.h``) and its environment variable.
_M_ARENA_MAX = -8
_ARENA_ENV = "MALLOC_ARENA_MAX"


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
    """Limit this process to :data:`MALLOC_ARENAS` malloc arenas (glibc only; not when
    ``MALLOC_ARENA_MAX`` is set). Returns whether the limit was set. Idempotent; call
    before the camera threads start."""
    libc = _glibc()
    if libc is None or _ARENA_ENV in os.environ:
        return False
    if not libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS):
        log.warning("mallopt(M_ARENA_MAX, %d) was refused", MALLOC_ARENAS)
        return False
    return True
