"""Waiting on a task that another may give up: a cluster standby's view (given up when the node
takes the lease), a PostgreSQL start (given up for a stop). Watching a long-lived task that must
never end on its own: the deadline timer, housekeeping, the alert sender, the heartbeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def ran_to_its_end(task: asyncio.Task[None], stop: asyncio.Event | None = None) -> bool:
    """Wait for `task`, or for `stop` (if given) first. A task not ended then (`stop` set, or this
    wait cancelled) is cancelled, and waited for. True if it ran to its end, False if it was
    cancelled (here or by another); its error, if it failed, is raised."""
    stopped = asyncio.create_task(stop.wait(), name="heartfly-stop-while-waiting") if stop is not None else None
    try:
        await asyncio.wait([task] if stopped is None else [task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopped is not None:
            stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # its error, if it failed
    return True


def watched(work: Coroutine[Any, Any, None], name: str, died: Callable[[str], None]) -> asyncio.Task[None]:
    """A task named `name` that runs `work` until cancelled. If it ends otherwise (an error
    nothing in it caught), that is logged at once with its traceback, and `died` is told why: the server then stops and
    exits 1, so that systemd starts it again, rather than answer pings with that task gone (no
    deadline fired, no alert sent, no heartbeat) and nothing in the log saying why."""

    def ended(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        why = f"{task.get_name()} ended" + (f": {type(error).__name__}: {error}" if error is not None else "")
        log.critical("%s; stopping, to be started again", why, exc_info=error)
        died(why)

    task = asyncio.create_task(work, name=name)
    task.add_done_callback(ended)
    return task
