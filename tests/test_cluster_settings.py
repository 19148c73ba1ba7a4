"""A check set otherwise on one node only (its schedule edited in one node's file, that node
reloaded): the names agree, and the standby says so all the same, for its dashboard, API and
status show its own schedule while the leader judges by its own. Real nodes, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

import aiohttp

from heartfly import __version__
from heartfly.core.config import Config, load_config
from heartfly.server import settings
from tests.conftest import new_key
from tests.proc import Server
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    database,
    every,
    leader_and_standby,
    nodes,
    stored,
    write,
)


async def test_a_standby_whose_file_sets_a_check_otherwise_than_the_leaders_says_so(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    copies, key = [tmp_path / "a", tmp_path / "b"], new_key()
    for folder in copies:
        folder.mkdir()
    files = [write(folder, database, every("job", key, "1h")) for folder in copies]
    servers = [Server(path) for path in files]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            _, standby = await leader_and_standby(session, servers)
        other = files[servers.index(standby)]
        other.write_text(other.read_text().replace('every = "1h"', 'every = "1d"'))
        standby.signal(signal.SIGHUP)  # its dashboard shows job due in a day; the leader alerts it in an hour
        said = "config differs from the leader's: the leader's file sets its checks otherwise"
        assert await asyncio.to_thread(standby.wait_for_log, said, 20), standby.log()[-2000:]
        other.write_text(other.read_text().replace('every = "1d"', 'every = "1h"'))
        standby.signal(signal.SIGHUP)
        assert await asyncio.to_thread(standby.wait_for_log, "config and the leader's agree again", 20)
    finally:
        for s in servers:
            s.kill()
    assert standby.log().count("config differs from the leader's") == 1  # said once, not every second
    leader = servers[1 - servers.index(standby)]
    assert "config differs" not in leader.log()


async def test_the_digest_the_leader_stores_leaves_its_ping_keys_out(tmp_path: Path) -> None:
    # The digest is stored in the database, unsalted: one of the keys would let whoever reads the
    # database try guessed keys against it (a key chosen by hand, a file of one check). Nothing of
    # a key goes in; whether a check has a start key does, as its schedule does.
    url = "postgresql://heartfly@127.0.0.1:1/heartfly"  # read, never connected to

    async def digest_of(name: str, checks: str) -> str:
        (tmp_path / name).mkdir()
        return await settings.digest(load_config(write(tmp_path / name, url, checks)))

    key = new_key()
    one = await digest_of("one", every("job", key, "1h", f'start_key = "{new_key()}"'))
    assert await digest_of("other", every("job", new_key(), "1h", f'start_key = "{new_key()}"')) == one
    assert await digest_of("daily", every("job", key, "1d", f'start_key = "{new_key()}"')) != one
    assert await digest_of("no-start", every("job", key, "1h")) != one


async def test_a_digest_left_by_a_leader_since_gone_is_not_compared(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A leader of an older version stores no digest: the one a leader of this version stored before
    # it stays. Every node's file edited alike since and reloaded, a standby compared its own with
    # that one and said its checks were set otherwise, though every file agrees. Here the row is set
    # as a leader whose file differs would store it: in the lease's term (said), then in the term
    # before it (a leader since gone: not compared, so this node's config and the leader's agree).
    def differing(term: int) -> None:
        import psycopg

        value = f"{__version__} {'0' * 32} {term}"
        with psycopg.connect(database) as conn:
            conn.execute("UPDATE meta SET value = %s WHERE key = %s", (value, settings.META))

    config = write(tmp_path, database, every("job", new_key(), "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        _, standby = await leader_and_standby(session, servers)
        term = stored(database, "SELECT term FROM lease")[0][0]
        (written,) = stored(database, f"SELECT value FROM meta WHERE key = '{settings.META}'")
        assert written[0].startswith(f"{__version__} ") and written[0].endswith(f" {term}"), written
        await asyncio.to_thread(differing, term)
        said = "config differs from the leader's: the leader's file sets its checks otherwise"
        assert await asyncio.to_thread(standby.wait_for_log, said, 20), standby.log()[-2000:]
        await asyncio.to_thread(differing, term - 1)
        assert await asyncio.to_thread(standby.wait_for_log, "config and the leader's agree again", 20)


async def test_a_big_files_digest_lets_pings_be_answered_between_its_parts(tmp_path: Path) -> None:
    # A check made, changed or deleted through the API gives every node a new config with the
    # file's same checks: their digest is not made again, but comparing 100,000 of them at once
    # held the event loop (and every ping) for 20 to 150 ms at each such change. Part by part now.
    url = "postgresql://heartfly@127.0.0.1:1/heartfly"  # read, never connected to
    config = load_config(write(tmp_path, url, every("job", new_key(), "1h")))
    job = config.checks["job"]
    many = {f"job-{i}": job._replace(name=f"job-{i}") for i in range(5 * settings.PART)}
    first = dataclasses.replace(config, checks=many)
    turns = 0

    async def ticking() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    try:
        made = await settings.digest(first)
        turns = 0
        api_made = job._replace(name="made", origin="api")
        assert await settings.digest(dataclasses.replace(config, checks={**many, "made": api_made})) == made
        assert turns >= 5, turns  # between its parts, as many as it has
    finally:
        ticker.cancel()


async def test_a_digest_compared_while_another_config_is_digested_is_its_own_checks_not_the_others(
    tmp_path: Path,
) -> None:
    # The comparison of a config with the same file checks as the last yields between its parts:
    # a digest of other checks made meanwhile (two nodes in one process) replaced the last, and
    # the first call handed back that other digest.
    url = "postgresql://heartfly@127.0.0.1:1/heartfly"  # read, never connected to
    config = load_config(write(tmp_path, url, every("job", new_key(), "1h")))
    job = config.checks["job"]
    many = {f"job-{i}": job._replace(name=f"job-{i}") for i in range(3 * settings.PART)}
    first = dataclasses.replace(config, checks=many)
    made = await settings.digest(first)
    other = dataclasses.replace(config, checks={"other": job._replace(name="other", every=60.0)})
    theirs = await settings.digest(other)

    async def after(turns: int, config: Config) -> str:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await settings.digest(config)

    for turns in range(12):  # the other's digest made at each point of this one's comparison
        await settings.digest(first)
        same = dataclasses.replace(first, checks={**many, "made": job._replace(name="made", origin="api")})
        ours, others = await asyncio.gather(settings.digest(same), after(turns, other))
        assert (ours, others) == (made, theirs), turns
