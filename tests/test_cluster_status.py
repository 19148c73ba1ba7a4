"""`heartfly status` on a node of a cluster: its notes name the leader's checks, which this node's
file may not have. Real nodes and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_cluster import database, every, leader_and_standby, stored, write  # noqa: F401 - database: the fixture


async def test_status_on_a_node_whose_file_lacks_a_check_the_leader_watches_says_to_change_every_nodes_file(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # Each node its own copy of the file (as on two machines); nightly taken out of the standby's
    # only. Its status said to `heartfly reload` it "to stop watching" nightly: a standby's reload
    # changes nothing of what the leader watches (and alerts for), so nightly stays watched, and
    # the pings this node takes for it answer 404 (docs/cluster.md).
    copies = [tmp_path / "a", tmp_path / "b"]
    job, nightly = every("job", new_key(), "1h"), every("nightly", new_key(), "1d")
    for folder in copies:
        folder.mkdir()
    files = [write(folder, database, job + nightly) for folder in copies]
    servers = [Server(path) for path in files]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            _, standby = await leader_and_standby(session, servers)
        other = files[servers.index(standby)]
        other.write_text(other.read_text().replace(nightly, ""))
        result = await asyncio.to_thread(heartfly, "status", "-c", str(other))
    finally:
        for s in servers:
            s.kill()
    assert result.returncode == 0, result.stderr
    said = "note: still watched by the cluster's leader, not in this node's file"
    assert result.stderr.startswith(said), result.stderr
    assert "give every node the same file and reload each" in result.stderr, result.stderr
    assert result.stderr.endswith(": nightly\n"), result.stderr


async def test_status_on_a_node_whose_file_has_a_check_the_leader_does_not_watch_says_to_change_every_nodes_file(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # The other way round: nightly added to one node's file only. Its status said to `heartfly
    # reload` (this node): a reload of a standby changes nothing of what the leader watches, so
    # nightly stays unwatched, told to nobody, however often the operator reloads it.
    copies = [tmp_path / "a", tmp_path / "b"]
    job, nightly = every("job", new_key(), "1h"), every("nightly", new_key(), "1d")
    for folder in copies:
        folder.mkdir()
    files = [write(folder, database, job) for folder in copies]
    servers = [Server(path) for path in files]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            _, standby = await leader_and_standby(session, servers)
        other = files[servers.index(standby)]
        other.write_text(other.read_text() + nightly)
        result = await asyncio.to_thread(heartfly, "status", "-c", str(other))
        history = await asyncio.to_thread(heartfly, "history", "-c", str(other), "nightly")
    finally:
        for s in servers:
            s.kill()
    assert result.returncode == 0, result.stderr
    said = "note: not watched by the cluster's leader, which has not loaded them"
    assert result.stderr.startswith(said), result.stderr
    assert "give every node the same file and reload each" in result.stderr, result.stderr
    assert "heartfly reload," not in result.stderr, result.stderr
    assert result.stderr.endswith(": nightly\n"), result.stderr
    assert history.returncode == 1 and "the cluster's leader has not loaded it" in history.stderr, history.stderr
    assert "give every node the same file and reload each" in history.stderr, history.stderr


async def test_status_does_not_say_a_leader_that_gave_its_lease_up_while_running_stopped_cleanly(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A leader that cannot fire (its inbox locked: a migration, VACUUM FULL) gives the lease up and
    # goes on running; so does one that took the lease and could not begin to lead. The lease was
    # freed as a clean stop frees it, and status said the node "stopped cleanly" while it ran, for
    # as long as the trouble lasted (a cluster of one: nobody else takes the lease).
    import psycopg

    key = new_key()
    config = write(tmp_path, database, every("due", key, "1s", 'grace = "1s"'))
    with Server(config) as node:
        async with aiohttp.ClientSession() as session, session.get(f"{node.url}/ping/{key}") as resp:
            assert resp.status == 200
        async with await psycopg.AsyncConnection.connect(database) as locker, locker.transaction():
            await locker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
            assert await asyncio.to_thread(node.wait_for_log, "giving the lease up", 20), node.log()
            for _ in range(10):  # the node takes the lease again after a while, and gives it up again
                result = await asyncio.to_thread(heartfly, "status", "-c", str(config))
                if "cluster: no node leads" in result.stdout:
                    break
            assert "cluster: no node leads; the lease of " in result.stdout, result.stdout
            assert "stopped cleanly" not in result.stdout, result.stdout


async def test_status_does_not_say_a_leader_whose_clean_stop_could_not_be_recorded_stopped_cleanly(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A leader's stop whose last commit the database refuses (a full disk, a lock timeout) logs
    # "the clean stop was not recorded", and the next leader counts a crash or kill; its lease was
    # freed as a clean stop's all the same, and status said the node "stopped cleanly".
    import psycopg

    config = write(tmp_path, database, every("job", new_key(), "1h"))
    with Server(config) as node:
        with psycopg.connect(database) as conn:
            conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON meta FOR EACH ROW"
                " WHEN (NEW.key = 'clean_stop' AND NEW.value = '1') EXECUTE FUNCTION refuse()"
            )
        await asyncio.to_thread(node.stop)
        assert "the clean stop was not recorded" in node.log(), node.log()
    assert stored(database, "SELECT value FROM meta WHERE key = 'clean_stop'") == [("0",)]
    result = await asyncio.to_thread(heartfly, "status", "-c", str(config))
    assert "cluster: no node leads; the lease of " in result.stdout, result.stdout
    assert "stopped cleanly" not in result.stdout, result.stdout


BREAK_THE_LOAD_AND_SERVE = """
import sys
from heartfly import entry
from heartfly.server.engine import Engine

async def broken(self, *args, **kwargs):
    raise RuntimeError("a fault injected into the load")

Engine.load = broken
sys.argv = ["heartfly", "serve", "-c", sys.argv[1]]
entry.main()
"""


async def test_status_does_not_say_a_node_whose_term_failed_to_begin_on_a_fault_stopped_cleanly(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A term whose start failed on anything but the database (a bug) was given up as if the node
    # were stopping: its lease freed as a clean stop's, and status said the node "stopped cleanly"
    # while it had failed with a traceback (or went on running: a later term, tried again).
    import subprocess
    import sys

    config = write(tmp_path, database, every("job", new_key(), "1h"))
    args = [sys.executable, "-c", BREAK_THE_LOAD_AND_SERVE, str(config)]
    proc = await asyncio.to_thread(
        subprocess.run, args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode != 0 and "a fault injected into the load" in proc.stderr, proc.stderr
    result = await asyncio.to_thread(heartfly, "status", "-c", str(config))
    assert "cluster: no node leads; the lease of " in result.stdout, result.stdout
    assert "stopped cleanly" not in result.stdout, result.stdout
