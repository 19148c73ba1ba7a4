"""Maintenance windows in a cluster: a window's done mark (windows.DONE_META) is the leader's to
store, a reload's as a start's. Real nodes and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from heartfly.server import windows
from tests.conftest import new_key
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    database,
    every,
    leader_and_standby,
    nodes,
    stored,
    token,
    write,
)

MARKS = f"SELECT count(*) FROM meta WHERE key LIKE '{windows.DONE_META}%'"
WINDOW = '[[maintenance]]\nname = "patching"\ncron = "0 2 * * 1"\nduration = "1h"\n'


async def test_a_window_a_reload_adds_has_its_mark_stored_by_the_leader_not_by_a_standby(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A standby's picture writes nothing (its writer drops the rows): the leader's reload stores
    # the mark, which a start (a failover's new leader's too) reads, as it reads one a start stored.
    job = every("job", new_key(), "1h")
    config = write(tmp_path, database, job)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        write(tmp_path, database, job + WINDOW)
        async with session.post(f"{standby.url}/api/v1/reload", headers=token(tmp_path)) as resp:
            assert resp.status == 200, await resp.text()
        assert stored(database, MARKS) == [(0,)], "a standby's reload stored a window's mark"
        async with session.post(f"{leader.url}/api/v1/reload", headers=token(tmp_path)) as resp:
            assert resp.status == 200, await resp.text()
        assert stored(database, MARKS) == [(1,)], "the leader's reload did not store the new window's mark"
