"""A cluster's first start with a big config (100k checks, all new): making the checks' rows can
take longer than the lease, and the node must still lead, and keep leading, in the term it took.
The start is made slow on purpose (each new check blocks the event loop for a while), as 100k
checks make it on a busy machine; a real node, lease and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from heartfly.core.clock import SystemClock
from heartfly.core.config import CheckConfig, load_config
from heartfly.server import loading
from heartfly.server.checks import Check
from heartfly.server.cluster import Node
from heartfly.server.engine import Engine
from heartfly.store import backend
from heartfly.store import rows as store
from tests.conftest import new_key
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    LEASE,
    database,
    every,
    stored,
    until,
    write,
)

CHECKS = 400
BLOCKED = 0.01  # seconds each new check holds the event loop: CHECKS of them, twice the lease


async def test_a_first_start_that_blocks_longer_than_the_lease_still_leads_in_its_first_term(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first start made every new check's row in one go, with the event loop blocked throughout
    # and the lease kept by nobody (the keeper began after it): past the lease, its commit was
    # refused, the term given up, and the next term redid it all, for ever: no leader, no alert.
    config = load_config(write(tmp_path, database, "".join(every(f"c{i}", new_key(), "1h") for i in range(CHECKS))))
    assert CHECKS * BLOCKED >= 2 * LEASE
    create = Engine._create

    def slow_create(self: Engine, cfg: CheckConfig, now: float, statements: list[store.Statement]) -> Check:
        time.sleep(BLOCKED)
        return create(self, cfg, now, statements)

    monkeypatch.setattr(Engine, "_create", slow_create)
    monkeypatch.setattr(loading, "NEW_ROWS_PER_WRITE", 50)  # several commits, each of a part of the rows
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

                await until(leads, 10 * CHECKS * BLOCKED, "the node leads")
                assert node.term == 1, f"the first term was lost; leads in term {node.term}"
                await asyncio.sleep(2 * LEASE)  # renewed since, while it leads
                assert node.leading and node.term == 1
                assert stored(database, "SELECT count(*) FROM checks") == [(CHECKS,)]
                assert stored(database, "SELECT term FROM lease") == [(1,)]
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await node.stop()
    finally:
        await opened.close()
