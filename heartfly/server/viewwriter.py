"""The writer of a cluster standby's view (server/cluster.py): the view's rows (checkpoints, alive
marks) are the leader's to write, so they go nowhere."""

from __future__ import annotations

import asyncio

from heartfly.store import rows as store
from heartfly.store.api import StoreError


class Dropped:
    """The writer of a standby's view: the view's rows (checkpoints, alive marks) are the leader's
    to write, so they go nowhere."""

    failing = False
    lost: str | None = None
    commits = 0

    def watch_file(self) -> None:
        pass

    def stuck(self) -> float | None:
        return None

    def submit(self, write: store.Write) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def submit_nowait(self, write: store.Write) -> None:
        pass

    def refused(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_exception(StoreError("a standby's view stores nothing"))
        return done

    async def flush(self) -> None:
        pass


DROPPED = Dropped()
