"""Hand the C heap's free pages back to the system once a start's transient work is done.

A start with 100k checks frees far more than it keeps: the config's parse, the stored rows, the
texts of the states it decodes, the pings a crash left to replay. glibc's malloc keeps the freed
pages of its heaps (the main one, and one per thread that allocated, such as the writer's) unless
they sit at the very top, so the process stayed larger than what it holds: with 100k checks,
`VmRSS` once every state was read went from 237 to 203 MiB after a clean restart, and from 283
to 261 MiB after a crash, when malloc_trim(0) was called in it (through gdb). It gives back every
whole free page of every heap. Other C libraries (musl) have no such call: there this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the C library the process runs on (no lookup of its file name, which runs ldconfig)
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release() -> bool:
    """Give the free pages of the C heaps back (some milliseconds, without the GIL); False where
    the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def release_soon() -> None:
    """release() in a thread of its own, not waited for: nothing waits on it (the default
    executor, which name lookups share, may be busy), and a failure is logged, never raised."""

    def run() -> None:
        try:
            release()
        except Exception:  # a convenience: the server goes on without it
            log.warning("could not give free memory back to the system", exc_info=True)

    try:
        threading.Thread(target=run, name="heartfly-memtrim", daemon=True).start()
    except RuntimeError:  # no thread to be had (a pids limit): raised here, it ended the deadline timer
        log.warning("could not give free memory back to the system: no thread could be started", exc_info=True)
