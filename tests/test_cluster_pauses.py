"""Timed pauses in a cluster: the end is the leader's to keep, whichever node was told of it, and
a pause given again on another node (with another end, or none) is the one that holds. Real nodes
and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    database,
    every,
    leader_and_standby,
    nodes,
    stored,
    token,
    until,
    write,
)
from tests.webutil import csrf_in

ENDS = "SELECT count(*) FROM meta WHERE key LIKE 'pause_until:%'"


async def state_on(session: aiohttp.ClientSession, server: Server, tmp_path: Path) -> str:
    async with session.get(f"{server.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
        return str((await resp.json())["state"])


async def pause_on(session: aiohttp.ClientSession, server: Server, tmp_path: Path, query: str = "") -> None:
    async with session.post(f"{server.url}/api/v1/checks/job/pause{query}", headers=token(tmp_path)) as resp:
        assert resp.status == 200, await resp.text()


@asynccontextmanager
async def leader_and_standby_of_job(
    tmp_path: Path, url: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, Server, Server]]:
    """Two nodes watching one check, `job`: a session, the leader and the standby."""
    config = write(tmp_path, url, every("job", new_key(), "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        yield (session, *await leader_and_standby(session, servers))


async def test_a_timed_pause_given_to_a_standby_that_then_goes_away_still_ends(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    async with leader_and_standby_of_job(tmp_path, database) as (session, leader, standby):
        await pause_on(session, standby, tmp_path, "?until=4s")

        async def paused() -> bool:
            return await state_on(session, leader, tmp_path) == "paused"

        await until(paused, 5, "the leader pauses the check")
        assert stored(database, ENDS) == [(1,)]
        standby.kill()  # the leader keeps leading: no new term re-arms the end
        await asyncio.sleep(4.0 + 3.0)
        assert await state_on(session, leader, tmp_path) != "paused", "the timed pause never ended"
        assert stored(database, ENDS) == [(0,)]


async def test_a_pause_without_an_end_given_to_a_standby_is_not_ended_by_the_leaders_earlier_timed_one(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    async with leader_and_standby_of_job(tmp_path, database) as (session, leader, standby):
        await pause_on(session, leader, tmp_path, "?until=4s")
        await pause_on(session, standby, tmp_path)  # the operator changes their mind: no end
        await asyncio.sleep(1.0)
        assert stored(database, ENDS) == [(0,)]
        await asyncio.sleep(4.0 + 2.0)
        assert await state_on(session, leader, tmp_path) == "paused", "the pause without an end was ended"
        assert "its pause ended" not in leader.log(), leader.log()[-2000:]


async def test_a_pause_until_given_to_a_standby_right_after_its_resume_keeps_its_end(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # Told to a standby while no node applies its inbox (the leader has gone, its lease not yet
    # passed): resume, then pause for an hour. The new leader applies both rows; the resume's
    # commit took the end the pause had stored meanwhile, and the check stayed paused for good.
    async with leader_and_standby_of_job(tmp_path, database) as (session, leader, standby):
        await pause_on(session, standby, tmp_path)

        async def paused_on(server: Server) -> bool:
            return await state_on(session, server, tmp_path) == "paused"

        await until(lambda: paused_on(leader), 5, "the leader pauses the check")
        leader.kill()
        async with session.post(f"{standby.url}/api/v1/checks/job/resume", headers=token(tmp_path)) as resp:
            assert resp.status == 200, await resp.text()
        await pause_on(session, standby, tmp_path, "?until=1h")

        async def leads() -> bool:
            return "leads the cluster" in standby.log() and "paused -> new" in standby.log()

        await until(leads, 20, "the standby leads and applies the resume")
        await asyncio.sleep(1.0)
        assert await paused_on(standby)
        assert stored(database, ENDS) == [(1,)], "the pause for an hour lost its end: it never ends"


async def test_a_ping_a_standby_takes_after_the_pause_it_was_given_resumes_a_check_with_resume_on_ping(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # The leader applies the standby's pause later (here: once the standby leads, the leader gone),
    # then the job's ping that came after it. Dated by when the leader applied it, the pause came
    # after the ping, which ended nothing: the check stayed paused, silent, until another ping.
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h", "resume_on_ping = true"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        leader.kill()
        await pause_on(session, standby, tmp_path)
        await asyncio.sleep(0.2)
        async with session.get(f"{standby.url}/ping/{key}") as resp:
            assert resp.status == 200, await resp.text()

        async def applied() -> bool:
            return "leads the cluster" in standby.log() and "-> paused" in standby.log()

        await until(applied, 20, "the standby leads and applies the pause")
        await asyncio.sleep(1.0)
        assert await state_on(session, standby, tmp_path) == "up", "the ping after the pause did not end it"


async def test_heartfly_pause_given_to_a_standby_says_the_leader_applies_it_not_that_a_ping_resumed_it(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # The standby answers with the state before the leader applied its inbox row: `up`, which
    # heartfly pause took for a pause a ping had ended ("it is watched"), the check being paused.
    async with leader_and_standby_of_job(tmp_path, database) as (session, leader, standby):
        config = tmp_path / "heartfly.toml"
        asked = tmp_path / "standby.toml"  # the file on the standby's machine: its address
        asked.write_text(config.read_text().replace("127.0.0.1:0", standby.url.removeprefix("http://")))
        paused = await asyncio.to_thread(heartfly, "pause", "job", "--until", "1h", "-c", str(asked))
        assert paused.returncode == 0, paused
        assert "resumed" not in paused.stdout and "watched" not in paused.stdout.split(";")[0], paused.stdout
        assert "leader" in paused.stdout, paused.stdout
        await until(lambda: _state_is(session, leader, tmp_path, "paused"), 5, "the leader pauses the check")
        resumed = await asyncio.to_thread(heartfly, "resume", "job", "-c", str(asked))
        assert resumed.returncode == 0, resumed
        assert "leader" in resumed.stdout and "paused," not in resumed.stdout, resumed.stdout


async def _state_is(session: aiohttp.ClientSession, server: Server, tmp_path: Path, state: str) -> bool:
    return await state_on(session, server, tmp_path) == state


async def test_the_dashboards_pause_given_on_a_standby_says_the_leader_applies_it(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # The standby's page after its Pause button showed the check up, with the Pause button again,
    # until its next refresh: the operator took the pause for lost. It says the leader applies it.
    async with leader_and_standby_of_job(tmp_path, database) as (_, leader, standby):
        paused = await _pressed(standby, tmp_path, "pause", {"until": "1h"})
        assert "Pause passed to the leader" in paused, paused[-3000:]
        resumed = await _pressed(standby, tmp_path, "resume", {})
        assert "Resume passed to the leader" in resumed, resumed[-3000:]
        on_leader = await _pressed(leader, tmp_path, "pause", {"until": "1h"})
        assert "passed to the leader" not in on_leader and "<h1>job</h1>" in on_leader, on_leader[-3000:]


async def _pressed(server: Server, tmp_path: Path, action: str, form: dict[str, str]) -> str:
    """The page a signed-in operator sees after pressing the check page's `action` button."""
    secret = (tmp_path / "api-token").read_text().strip()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(f"{server.url}/login", data={"token": secret, "next": "/"}) as resp:
            assert resp.status == 200, await resp.text()
        async with browser.get(f"{server.url}/checks/job") as resp:
            csrf = csrf_in(await resp.text())
        async with browser.post(f"{server.url}/checks/job/{action}", data={"csrf": csrf, **form}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()
