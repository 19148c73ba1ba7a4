"""A resume given to a standby is applied by the leader later (at once, or by the next leader after
a take-over): a failure that came after the operator's resume, applied after it, counts. Real
nodes and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import new_key
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    LEASE,
    database,
    every,
    leader_and_standby,
    nodes,
    readiness,
    token,
    until,
    write,
)


async def test_a_failure_after_a_resume_given_to_a_standby_during_a_take_over_takes_the_check_down(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)

        async def state() -> str:
            async with session.get(f"{standby.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
                return str((await resp.json())["state"])

        async with session.post(f"{leader.url}/api/v1/checks/job/pause", headers=token(tmp_path)) as resp:
            assert resp.status == 200

        async def paused() -> bool:
            return await state() == "paused"

        await until(paused, 5, "the standby shows the pause")
        assert leader.proc is not None
        leader.proc.kill()  # kill -9: the lease is left to pass, the standby takes over within it
        async with session.post(f"{standby.url}/api/v1/checks/job/resume", headers=token(tmp_path)) as resp:
            assert resp.status == 200  # into the inbox: applied by the next leader
        await asyncio.sleep(0.2)
        async with session.get(f"{standby.url}/ping/{key}/fail") as resp:
            assert resp.status == 200  # the job fails after the operator's resume
        assert (await readiness(session, standby))["role"] == "standby", "took over too soon for this test"

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        await until(leads, LEASE + 5, "the standby leads")

        async def applied() -> bool:
            return await state() != "paused"

        await until(applied, 5, "the resume is applied")
        await asyncio.sleep(1.0)
        assert await state() == "down", standby.log()[-3000:]


async def test_a_failure_after_a_pause_given_to_a_standby_during_a_take_over_is_not_alerted(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.get(f"{leader.url}/ping/{key}") as resp:
            assert resp.status == 200
        await asyncio.sleep(1.5)  # checkpointed: the standby's view has it
        assert leader.proc is not None
        leader.proc.kill()
        async with session.post(f"{standby.url}/api/v1/checks/job/pause", headers=token(tmp_path)) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.2)
        async with session.get(f"{standby.url}/ping/{key}/fail") as resp:
            assert resp.status == 200  # the job fails after the operator's pause
        assert (await readiness(session, standby))["role"] == "standby", "took over too soon for this test"

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        await until(leads, LEASE + 5, "the standby leads")
        await asyncio.sleep(1.5)
        async with session.get(f"{standby.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
            assert (await resp.json())["state"] == "paused"
        assert " -> down" not in standby.log(), standby.log()[-3000:]
