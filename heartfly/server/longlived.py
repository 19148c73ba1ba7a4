"""The cyclic garbage collector in the server process, which holds a few objects per check for life.

With 100k checks that is some 400k objects (checks, configs, states, key maps). CPython's full
collection walks every tracked object with the event loop stopped: 0.2-0.5 s each time at 100k
checks, and under a ping load full collections came every second or two, because each ping
replaces a state that then dies old. Measured with bench/scale.py, that was most of the
throughput lost at 100k checks and the whole of its p99.

So the server (and only the server: tests and the CLI keep CPython's defaults)
- builds its long-lived objects with collection off and then freezes them, out of the collector's
  reach (refcounting still frees a frozen object that is replaced or removed, as states and
  configs are: they hold no reference cycles);
- runs a full collection after many more young ones than CPython's default 10;
- runs the youngest collection after 7,000 new container objects, not 700. Under a ping load the
  objects of the requests in flight (a task, futures, the request, its headers: a few thousand
  with 64 connections) are alive at every one of them, and each walks them all; it is the number
  of collections that costs, not what they free (nearly every object of a ping is freed by its
  reference count). At 700 they took about 5 % of the event loop under bench/ping_throughput.py.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# New container objects between collections of the youngest generation (CPython's default: 700).
YOUNG = 7000
# Generation-1 collections between full ones: a full collection comes after roughly
# YOUNG * 10 * FULL_AFTER container allocations, every 20-30 s at the fastest ping rate.
FULL_AFTER = 100

_tuned = False


def tune() -> None:
    """Apply the server's policy to this process."""
    global _tuned
    _tuned = True
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, FULL_AFTER)


@contextlib.contextmanager
def building(*, again: bool = False) -> Iterator[None]:
    """Build long-lived objects without collections, then freeze what exists.

    At start-up (again=False) what lives at the end is the config, the checks and their states,
    which form no reference cycles. A reload (again=True) may also freeze the objects of requests in
    flight, whose cycles would then never be collected; so it first thaws everything and runs one
    full collection (a fraction of a second with 100k checks, once per reload). Does nothing
    unless tune() ran.
    """
    if not _tuned:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if again:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        gc.enable()
