"""`heartfly migrate-db` from a cluster's PostgreSQL whose inbox holds pings no leader will apply:
real nodes, a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import psycopg

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_cluster import database, every, leader_and_standby, write  # noqa: F401 - database: the fixture


async def test_migrate_db_refused_for_pings_of_a_check_no_leader_watches_names_it_and_how_to_clear_them(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A standby's file kept a check the others had dropped; its pings wait in the inbox for a
    # leader whose file has it, which none will. migrate-db said "start one node and let it lead
    # for a moment first", which the operator did, and was refused the same way again, for ever.
    copies = [tmp_path / "a", tmp_path / "b"]
    job, gone = every("job", new_key(), "1h"), new_key()
    for folder in copies:
        folder.mkdir()
    files = [write(copies[0], database, job), write(copies[1], database, job + every("gone", gone, "1d"))]
    leading = Server(files[0]).start()
    standing = Server(files[1])
    try:
        await asyncio.to_thread(standing.start)
        async with aiohttp.ClientSession() as session:
            _, standby = await leader_and_standby(session, [leading, standing])
            assert standby is standing
            async with session.post(f"{standing.url}/ping/{gone}") as resp:
                assert resp.status == 200
        assert await asyncio.to_thread(leading.wait_for_log, "kept in the inbox"), leading.log()
    finally:
        standing.kill()
        assert leading.stop() == 0
    with Server(files[0]) as again:  # as the refusal said: one node leads for a moment
        assert await asyncio.to_thread(again.wait_for_log, "kept in the inbox"), again.log()
        assert again.stop() == 0
    result = await asyncio.to_thread(heartfly, "migrate-db", database, str(tmp_path / "copy.db"), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "holds 1 ping(s) a standby took that no leader applied yet" in result.stderr, result.stderr
    assert "gone: 1" in result.stderr, result.stderr
    assert "DELETE FROM inbox WHERE check_name = 'gone'" in result.stderr, result.stderr


async def test_migrate_db_refused_for_pings_not_applied_yet_does_not_offer_to_delete_those_of_a_watched_check(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # The refusal listed every check with pings in the inbox and a DELETE of them all, "if no node's
    # file has them any more": shown before any node led again, it named a check the leader
    # watches (a check made through the API is in no file at all), whose pings the next leader
    # applies, and the operator who ran it lost them.
    config = write(tmp_path, database, every("job", new_key(), "1h"))
    with Server(config) as node:
        assert node.stop() == 0
    # What standbys took before the leader stopped (applied by none since): a ping of a check the
    # leader watches, and one of a check only a standby's file had.
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO inbox (node, check_name, body) VALUES ('hb-2', 'job', '{}'), ('hb-2', 'gone', '{}')")
    result = await asyncio.to_thread(heartfly, "migrate-db", database, str(tmp_path / "copy.db"), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "(gone: 1, job: 1)" in result.stderr, result.stderr
    assert "DELETE FROM inbox WHERE check_name = 'gone'" in result.stderr, result.stderr
    assert "'job'" not in result.stderr, result.stderr
