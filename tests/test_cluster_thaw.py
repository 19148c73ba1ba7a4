"""A cluster's leader whose process was frozen (SIGSTOP, a paused VM) for less than its lease: its
timer was silent past TIMER_STALE, and so was everything else in it. A real node, lease and
PostgreSQL; the freeze is the event loop held, as a freeze holds it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from heartfly.core.clock import SystemClock
from heartfly.core.config import load_config
from heartfly.server.cluster import Node
from heartfly.server.liveness import TIMER_STALE
from heartfly.store import backend
from tests.conftest import new_key
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    LEASE,
    database,
    every,
    until,
    write,
)


async def test_a_leader_frozen_for_less_than_its_lease_keeps_it(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # Thawed, the keeper's renewal could run before the timer's wake-up (whichever of their sleeps
    # ended first): it read the timer's silence as a timer that stopped turning and gave the lease
    # up, for a timer that was only asleep. The node taking over judged the deadlines that fell in
    # the freeze at once, not after the pings that waited at the frozen node's door (clockwatch).
    path = write(tmp_path, database, every("job", new_key(), "1h"))
    path.write_text(path.read_text().replace(f'lease = "{LEASE:g}s"', 'lease = "30s"'))
    config = load_config(path)
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        async with aiohttp.ClientSession() as session:
            node = Node(lambda: config, SystemClock(), opened.reader, opened.writer, session, lambda e, d: None)
            await node.start()
            runner = asyncio.create_task(node.run())
            try:

                async def leads() -> bool:
                    return node.leading

                await until(leads, 20, "the node leads")
                term = node.term
                await asyncio.sleep(1.5)  # the timer has turned, and sleeps until its next beat
                time.sleep(TIMER_STALE + 1)  # frozen: the event loop, and the timer asleep in it, held
                await node._renew()  # the keeper first, as after a thaw it may be
                assert node.lease.is_leader and node.lease.term == term, "the lease was given up"
                await asyncio.sleep(1.5)  # the timer has turned again
                assert node.leading and node.term == term
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await node.stop()
    finally:
        await opened.close()
