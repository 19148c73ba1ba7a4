"""Hand the C heap's free pages back to the system once a start's transient work is done.

A start with 100k checks frees far more than it keeps: the config's parse, the stored rows, the
texts of the states it decodes, the pings a crash left to replay. glibc's malloc keeps the freed
pages of its heaps (the main one, and one per thread that allocated, such as the writer's) unless
they sit at the very top, so the process stayed some 35 MiB larger than what it holds
(bench/crash_restart.py, `VmRSS` before and after a malloc_trim: 237 -> 203 MiB after a clean
restart, 283 -> 261 MiB after a crash). malloc_trim(0) gives back every whole free page of every
heap. Other C libraries (musl) have no such call: there this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release() -> bool:
    """Give the free pages of the C heaps back (it takes a few milliseconds, without the GIL:
    call it in a thread). False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
