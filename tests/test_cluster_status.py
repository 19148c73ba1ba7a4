"""`heartfly status` on a node of a cluster: its notes name the leader's checks, which this node's
file may not have. Real nodes and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_cluster import database, every, leader_and_standby, write  # noqa: F401 - database: the fixture


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
