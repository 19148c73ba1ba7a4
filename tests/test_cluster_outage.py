"""A cluster while PostgreSQL is down: what its nodes say of themselves (/readyz, /metrics) is
what they know, not what they last knew. Real nodes and a real PostgreSQL of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from tests import pgserver
from tests.conftest import new_key
from tests.proc import heartfly
from tests.test_alerts import (
    Receivers,
    receivers,  # noqa: F401 - a fixture
    webhook,
)
from tests.test_cluster import (
    LEASE,
    every,
    inbox_empty,
    leader_and_standby,
    nodes,
    readiness,
    stored,
    token,
    until,
    write,
)


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


async def test_a_deadline_that_falls_while_postgresql_is_down_waits_for_the_ping_its_client_sends_again(
    tmp_path: Path,
    own_cluster: pgserver.PgServer,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    # Every node answers 503 while PostgreSQL is down: nobody takes pings, as when every node is
    # down, and the client sends its ping again once it can. The node that leads after it must not
    # count the outage as time in which pings were taken (a false down, then its recovery).
    hook, key = await receivers(), new_key()
    checks = webhook("hook", hook.url) + every("job", key, "6s", 'grace = "1s"', 'channels = ["hook"]')
    url = own_cluster.database()
    config = write(tmp_path, url, checks)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        await leader_and_standby(session, servers)
        async with session.get(f"{servers[0].url}/ping/{key}") as resp:
            assert resp.status == 200

        async def checkpointed() -> bool:  # its state stored with the ping, as a minute later would be
            return stored(url, "SELECT state FROM checks WHERE state_ping_id > 0") != []

        await until(checkpointed, 10, "the leader stores the check's state")
        await asyncio.to_thread(own_cluster.stop)  # the job's deadline falls within the outage
        try:
            await asyncio.sleep(8.0)  # past its deadline (7 s after its ping), whenever the stop came before it
            async with session.get(f"{servers[1].url}/ping/{key}") as resp:
                assert resp.status == 503  # its next ping: refused, so its client keeps it to send again
        finally:
            await asyncio.to_thread(own_cluster.start)

        async def taken_again() -> bool:  # the client's retry, as `heartfly run` and curl --retry do
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{servers[1].url}/ping/{key}") as resp:
                    return resp.status == 200
            return False

        await until(taken_again, 30, "the ping is taken once PostgreSQL is back")
        await leader_and_standby(session, servers)
        await until(inbox_empty(url), 10, "the leader applies the ping sent again")
        shown = (await asyncio.to_thread(heartfly, "status", "-c", str(config))).stdout
    # No node crashed: the leader lost its lease while PostgreSQL was out, which status names too.
    assert "no node led for" in shown and "or its lease lost: PostgreSQL unreachable" in shown, shown
    assert stored(url, "SELECT old, new, reason FROM flips WHERE new = 'down'") == []
    assert any("1 deadline(s) in the rest were extended" in s.log() for s in servers)
    # Nor does the log of the node taking over say the last leader stopped: it lost its lease.
    said = [line for s in servers for line in s.log().splitlines() if "no node led for" in line]
    assert said and all("or its lease lost: PostgreSQL unreachable, a pause)" in line for line in said), said
    assert hook.events() == [], [h.json() for h in hook.hits]


async def test_a_long_postgresql_outage_is_logged_in_words_without_a_traceback(
    tmp_path: Path, own_cluster: pgserver.PgServer
) -> None:
    # A node rides out PostgreSQL's outages (docs/cluster.md); the re-reading of the stored ends of
    # timed pauses said so after 10 s with a Python traceback, as if Heartfly had a bug.
    config = write(tmp_path, own_cluster.database(), every("job", new_key(), "1h"))
    async with nodes(config, 1) as [node]:
        await asyncio.to_thread(own_cluster.stop)
        try:
            said = "the ends of timed pauses cannot be read"
            assert await asyncio.to_thread(node.wait_for_log, said, 30), node.log()[-3000:]
        finally:
            await asyncio.to_thread(own_cluster.start)
    assert "Traceback" not in node.log(), node.log()[-3000:]
    assert "cannot open database" in next(line for line in node.log().splitlines() if said in line)
