"""Waiting on a task that another may give up: a cluster standby's view (given up when the node
takes the lease), a PostgreSQL start (given up for a stop)."""

from __future__ import annotations

import asyncio


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
