"""A cluster while PostgreSQL is down: what its nodes say of themselves (/readyz, /metrics) is
what they know, not what they last knew. Real nodes and a real PostgreSQL of the test's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests import pgserver
from tests.conftest import new_key
from tests.test_cluster import LEASE, every, leader_and_standby, nodes, readiness, token, until, write


async def test_while_postgresql_is_down_no_node_is_ready_or_names_a_leader_and_metrics_still_answer(
    tmp_path: Path, own_cluster: pgserver.PgServer
) -> None:
    key = new_key()
    config = write(tmp_path, own_cluster.database(), every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        await asyncio.to_thread(own_cluster.stop)
        try:
            await asyncio.sleep(LEASE + 3.0)
            seen = [await readiness(session, s) for s in (leader, standby)]
            scraped = []
            for server in (leader, standby):
                async with session.get(f"{server.url}/metrics", headers=token(tmp_path)) as resp:
                    scraped.append((resp.status, await resp.text()))
        finally:
            await asyncio.to_thread(own_cluster.start)
        for body in seen:  # a standby has no write of its own to fail: the lease it cannot read says it
            assert not body["ready"] and body["problem"], body
            assert body["leader"] is None and body["lease_checked_seconds_ago"] >= LEASE, body
        for status, text in scraped:
            assert status == 200 and "heartfly_cluster_lease_checked_age_seconds" in text, text[:300]

        async def ready_again() -> bool:
            return all([(await readiness(session, s))["ready"] for s in servers])

        await until(ready_again, 30, "both nodes ready once PostgreSQL is back")
