"""Several `heartfly serve` processes on one PostgreSQL database: one leads, the others stand by;
pings sent to any node count; killing or freezing the leader hands over without a lost ping, a
lost alert or a false one. Real processes, a real PostgreSQL, a real webhook receiver."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from heartfly.server.cluster import DELETED_WAIT
from tests import pgserver
from tests.conftest import ConfigWriter, new_key, problems
from tests.proc import Server, heartfly
from tests.test_alerts import (
    Receivers,
    receivers,  # noqa: F401 - a fixture
)

LEASE = 2.0


def write(tmp_path: Path, database: str, checks: str, *extra: str) -> Path:
    path = tmp_path / "heartfly.toml"
    server = [
        'listen = "127.0.0.1:0"', f'database = "{database}"', 'api_token_file = "api-token"', f'lease = "{LEASE:g}s"',
        *extra,
    ]  # fmt: skip
    path.write_text("[server]\n" + "\n".join(server) + "\n" + checks)
    return path


def every(name: str, key: str, period: str, *extra: str) -> str:
    return "\n".join([f"[checks.{name}]", f'key = "{key}"', f'every = "{period}"', *extra]) + "\n"


def watched_every_second(tmp_path: Path, database: str, hook_url: str) -> tuple[Path, str]:
    """A config with one check, `dead`, due every second (1 s grace) and alerting a webhook at
    `hook_url`: the config's path and the check's key."""
    dead = new_key()
    checks = f'[channels.hook]\ntype = "webhook"\nurl = "{hook_url}"\n' + every(
        "dead", dead, "1s", 'grace = "1s"', 'channels = ["hook"]'
    )
    return write(tmp_path, database, checks), dead


@pytest.fixture
def database(pg_server: pgserver.PgServer) -> str:
    return pg_server.database()


@asynccontextmanager
async def nodes(config: Path, count: int) -> AsyncIterator[list[Server]]:
    """`count` nodes on one config, started at the same instant."""
    servers = [Server(config) for _ in range(count)]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        yield servers
    finally:
        for s in servers:
            s.kill()


async def readiness(session: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    async with session.get(f"{server.url}/readyz") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def roles(session: aiohttp.ClientSession, servers: list[Server]) -> list[str]:
    return [(await readiness(session, s))["role"] for s in servers]


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Waits for `condition`; the seconds it took."""
    began = time.monotonic()
    while not await condition():
        assert time.monotonic() - began < timeout, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def made_and_known(session: aiohttp.ClientSession, leader: Server, standby: Server, hc: dict[str, str]) -> str:
    """The uuid of a check "Nightly" made through the API on the leader, once the standby serves it."""
    async with session.post(f"{leader.url}/api/v3/checks/", json={"name": "Nightly"}, headers=hc) as resp:
        uuid = str((await resp.json())["uuid"])

    async def known_on_standby() -> bool:
        async with session.get(f"{standby.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            return resp.status == 200

    await until(known_on_standby, 5, "the standby serves the check")
    return uuid


def inbox_empty(database: str) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return stored(database, "SELECT count(*) FROM inbox") == [(0,)]

    return empty


async def leader_and_standby(session: aiohttp.ClientSession, servers: list[Server]) -> tuple[Server, Server]:
    async def one_leads() -> bool:
        return sorted(await roles(session, servers)) == ["leader", "standby"]

    await until(one_leads, 10, "one leader and one standby")
    first, second = servers
    return (first, second) if (await readiness(session, first))["role"] == "leader" else (second, first)


def token(tmp_path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {(tmp_path / 'api-token').read_text().strip()}"}


def stored(database: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(database) as conn:
        return list(conn.execute(sql))


async def test_two_nodes_started_in_the_same_instant_have_exactly_one_leader(tmp_path: Path, database: str) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"))
    async with nodes(config, 3) as servers, aiohttp.ClientSession() as session:
        leaders = [s for s in servers if (await readiness(session, s))["role"] == "leader"]
        assert len(leaders) == 1
        states = [await readiness(session, s) for s in servers]
        assert {st["leader"] for st in states} == {states[servers.index(leaders[0])]["node"]}
        assert len({st["node"] for st in states}) == 3  # each node has an id of its own
        assert all(st["ready"] and st["term"] >= 1 for st in states), states
        for s in servers:
            async with session.get(f"{s.url}/metrics", headers=token(tmp_path)) as resp:
                text = await resp.text()
            expected = "1.0" if s is leaders[0] else "0.0"
            assert f"heartfly_cluster_leader {expected}" in text
            assert "heartfly_cluster_term " in text
        assert sum("leads the cluster" in s.log() for s in servers) == 1


async def test_a_ping_sent_to_a_standby_is_applied_once_by_the_leader_and_shown_on_every_node(
    tmp_path: Path, database: str
) -> None:
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.post(f"{standby.url}/ping/{key}/fail", data="disk full") as resp:
            assert resp.status == 200

        async def down_on(server: Server) -> bool:
            async with session.get(f"{server.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
                return bool((await resp.json())["state"] == "down")

        await until(lambda: down_on(leader), 5, "the leader applies the standby's ping")
        await until(lambda: down_on(standby), 5, "the standby's view shows it")
        async with session.get(f"{standby.url}/api/v1/checks/job/pings", headers=token(tmp_path)) as resp:
            [ping] = await resp.json()
        assert ping["kind"] == "fail" and ping["body"] == "disk full"
        assert stored(database, "SELECT count(*) FROM inbox") == [(0,)]  # applied, and its row gone
        assert stored(database, "SELECT count(*) FROM pings") == [(1,)]


async def test_a_check_made_through_the_api_on_a_standby_is_watched_by_the_leader_and_deleted_everywhere(
    tmp_path: Path, database: str
) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        body = {"name": "Made on a standby", "timeout": 60, "grace": 60}
        async with session.post(f"{standby.url}/api/v3/checks/", json=body, headers=hc) as resp:
            assert resp.status == 201
            uuid = (await resp.json())["uuid"]

        async def known_on(server: Server, wanted: bool = True) -> bool:
            async with session.get(f"{server.url}/api/v3/checks/{uuid}", headers=hc) as resp:
                return (resp.status == 200) == wanted

        await until(lambda: known_on(leader), 5, "the leader takes the check the standby made")
        async with session.post(f"{leader.url}/ping/{uuid}/fail") as resp:
            assert resp.status == 200
        assert leader.wait_for_log("check made-on-a-standby: new -> down", 5)  # the leader judges it
        async with session.delete(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            assert resp.status == 200
        await until(lambda: known_on(standby, wanted=False), 5, "the standby drops the deleted check")
        assert stored(database, "SELECT count(*) FROM meta WHERE key LIKE 'check:%'") == [(0,)]
        # Made again under its name on the standby: new on the leader, without the old one's history.
        async with session.post(f"{standby.url}/api/v3/checks/", json=body, headers=hc) as resp:
            assert resp.status == 201
            uuid = (await resp.json())["uuid"]
        await until(lambda: known_on(leader), 5, "the leader takes the check made again")
        async with session.get(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            assert [(await resp.json())[field] for field in ("status", "n_pings")] == ["new", 0]
        async with session.post(f"{leader.url}/ping/{uuid}") as resp:
            assert resp.status == 200
        assert leader.wait_for_log("check made-on-a-standby: new -> up", 5)
        assert stored(database, "SELECT c.name, count(p.id) FROM checks c LEFT JOIN pings p ON p.check_id = c.id"
                                " WHERE c.name LIKE '%made-on-a-standby' GROUP BY c.name ORDER BY c.name") == [
            ("deleted:2:made-on-a-standby", 1), ("made-on-a-standby", 1)]  # fmt: skip


async def test_a_ping_a_standby_takes_just_after_a_rename_on_the_leader_counts_for_the_renamed_check(
    tmp_path: Path, database: str
) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        body = {"name": "Nightly", "timeout": 3600, "grace": 60}
        async with session.post(f"{leader.url}/api/v3/checks/", json=body, headers=hc) as resp:
            uuid = (await resp.json())["uuid"]

        async def status_on(server: Server) -> str:
            async with session.get(f"{server.url}/api/v3/checks/{uuid}", headers=hc) as resp:
                return str((await resp.json())["status"]) if resp.status == 200 else str(resp.status)

        async def known_on_standby() -> bool:
            return await status_on(standby) == "new"

        await until(known_on_standby, 5, "the standby serves the check")
        async with session.post(f"{leader.url}/api/v3/checks/{uuid}", json={"slug": "renamed"}, headers=hc) as resp:
            assert resp.status == 200
        # Within the second before the standby reads the rename: it takes the ping under the old name.
        async with session.get(f"{standby.url}/ping/{uuid}/fail") as resp:
            assert resp.status == 200

        async def down() -> bool:
            return await status_on(leader) == "down"

        await until(down, 5, "the leader applies the failure to the renamed check")

        # The row's delete commits after the state it changed shows.
        await until(inbox_empty(database), 5, "the leader deletes the row it applied")


async def test_a_ping_a_standby_takes_just_after_a_delete_on_the_leader_does_not_stay_in_the_inbox(
    tmp_path: Path, database: str
) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        uuid = await made_and_known(session, leader, standby, hc)
        async with session.delete(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            assert resp.status == 200
        # Within the second before the standby reads the delete: it takes the ping.
        async with session.get(f"{standby.url}/ping/{uuid}") as resp:
            assert resp.status == 200

        # Once it has waited for a reload that could bring the check back (moved into the file); else
        # no leader ever applies it, and migrate-db refuses the database.
        await until(inbox_empty(database), DELETED_WAIT + 10, "the leader drops the deleted check's ping")
        assert "check nightly, deleted through the API since; dropped" in leader.log(), leader.log()[-2000:]


async def test_a_ping_a_standby_takes_as_a_check_moves_into_the_file_counts_once_the_leader_reloads(
    tmp_path: Path, database: str
) -> None:
    # As docs/healthchecks.md says: heartfly export NAME >> the file, delete the API's copy, reload.
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        uuid = await made_and_known(session, leader, standby, hc)

        async def status_on(server: Server) -> str:
            async with session.get(f"{server.url}/api/v3/checks/{uuid}", headers=hc) as resp:
                return str((await resp.json())["status"]) if resp.status == 200 else str(resp.status)

        exported = (await asyncio.to_thread(heartfly, "export", "nightly", "-c", str(config))).stdout
        assert f'key = "{uuid}"' in exported, exported
        async with session.delete(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            assert resp.status == 200
        # Within the second before the standby reads the delete: it takes the failure, answered 200.
        async with session.get(f"{standby.url}/ping/{uuid}/fail") as resp:
            assert resp.status == 200
        assert await asyncio.to_thread(leader.wait_for_log, "a standby took a ping for check nightly", 5)
        config.write_text(config.read_text() + "\n" + exported)
        for server in servers:
            server.signal(signal.SIGHUP)

        async def down() -> bool:
            return await status_on(leader) == "down"

        await until(down, 10, "the leader applies the failure to the check now in the file")

        await until(inbox_empty(database), 5, "the row's delete commits (after the state the API shows)")


async def test_a_check_exported_into_the_file_is_taken_over_on_every_node_by_the_reload_alone(
    tmp_path: Path, database: str
) -> None:
    # docs/healthchecks.md: heartfly export NAME >> the file, then reload each node; no delete.
    # The file's table (the check's name and key) takes the check over on each, the API's copy is
    # deleted from the database once, and a failure a standby takes counts on the leader.
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        uuid = await made_and_known(session, leader, standby, hc)
        exported = (await asyncio.to_thread(heartfly, "export", "nightly", "-c", str(config))).stdout
        config.write_text(config.read_text() + "\n" + exported)
        for server in servers:
            server.signal(signal.SIGHUP)

        async def the_files_on_both() -> bool:  # an update answers 403 for a file's check
            for server in servers:
                async with session.post(f"{server.url}/api/v3/checks/{uuid}", json={}, headers=hc) as resp:
                    if resp.status != 403:
                        return False
            return stored(database, "SELECT count(*) FROM meta WHERE key = 'check:nightly'") == [(0,)]

        await until(the_files_on_both, 10, "both nodes serve the file's check, the API's copy deleted")
        async with session.get(f"{standby.url}/ping/{uuid}/fail") as resp:
            assert resp.status == 200

        async def down() -> bool:
            async with session.get(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
                return resp.status == 200 and (await resp.json())["status"] == "down"

        await until(down, 10, "the leader applies the standby's failure to the file's check")
        assert "took over the check made through the API" in leader.log() + standby.log()
        assert "is defined in" not in leader.log() + standby.log()


async def test_a_ping_a_standby_takes_for_a_deleted_check_does_not_count_for_one_made_again_under_its_name(
    tmp_path: Path, database: str
) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        uuid = await made_and_known(session, leader, standby, hc)
        async with session.delete(f"{leader.url}/api/v3/checks/{uuid}", headers=hc) as resp:
            assert resp.status == 200
        # Within the second before the standby reads the delete: it takes the old check's failure.
        async with session.get(f"{standby.url}/ping/{uuid}/fail") as resp:
            assert resp.status == 200
        assert await asyncio.to_thread(leader.wait_for_log, "a standby took a ping for check nightly", 5)
        async with session.post(f"{leader.url}/api/v3/checks/", json={"name": "Nightly"}, headers=hc) as resp:
            assert resp.status == 201
            again = (await resp.json())["uuid"]
        assert again != uuid
        await asyncio.sleep(3)  # the leader reads the inbox every second
        async with session.get(f"{leader.url}/api/v3/checks/{again}", headers=hc) as resp:
            assert (await resp.json())["status"] == "new"  # another check: the old one's failure is not its own
        assert "check nightly: new -> down" not in leader.log(), leader.log()[-2000:]


async def test_one_checks_runs_sprayed_over_both_nodes_end_as_on_a_single_node(tmp_path: Path, database: str) -> None:
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    runs = 15
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:

        async def ping(n: int, event: str, server: Server) -> int:
            path = "" if event == "success" else f"/{event}"
            async with session.post(f"{server.url}/ping/{key}{path}?rid=run-{n}", data=f"{event} {n}") as resp:
                return resp.status

        async def run(n: int) -> None:
            first, second = servers if n % 2 else servers[::-1]
            assert await ping(n, "start", first) == 200
            statuses = await asyncio.gather(ping(n, "log", first), ping(n, "log", second))
            assert list(statuses) == [200, 200]
            assert await ping(n, "success", second) == 200

        leader, _ = await leader_and_standby(session, servers)
        await asyncio.gather(*(run(n) for n in range(runs)))

        async def all_applied() -> bool:
            return stored(database, "SELECT count(*) FROM inbox") == [(0,)]

        await until(all_applied, 10, "the leader applies every standby ping")
        async with session.get(f"{leader.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
            state = await resp.json()
        assert state["state"] == "up", state
        assert stored(database, "SELECT count(*) FROM pings") == [(4 * runs,)]
        outcomes = stored(database, "SELECT run_id, outcome FROM runs ORDER BY run_id")
        assert sorted(outcomes) == sorted((f"run-{n}", "success") for n in range(runs)), outcomes


async def test_kill_9_of_the_leader_hands_over_fires_the_missed_deadline_and_raises_no_false_alarm(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    hook = await receivers()
    beat, dead, burst_key = new_key(), new_key(), new_key()
    checks = (
        every("burst", burst_key, "1h")
        + f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n'
        + every("beat", beat, "1s", 'grace = "1s"', 'channels = ["hook"]')
        + every("dead", dead, "1s", 'grace = "1s"', 'channels = ["hook"]')
    )
    config = write(tmp_path, database, checks)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        beating = True
        answers: list[int] = []

        async def keep_beating() -> None:  # through the standby, all through the handover
            while beating:
                async with session.get(f"{standby.url}/ping/{beat}") as resp:
                    answers.append(resp.status)
                await asyncio.sleep(0.3)

        burst: list[tuple[str, int | None]] = []

        async def spray() -> None:  # a ping burst over both nodes: the leader's answers end with it
            n = 0
            while beating:
                n += 1
                node = servers[n % 2]
                try:
                    async with session.post(f"{node.url}/ping/{burst_key}/log", data=f"burst {n}") as resp:
                        burst.append((f"burst {n}", resp.status))
                except aiohttp.ClientError:
                    burst.append((f"burst {n}", None))
                await asyncio.sleep(0.01)

        beats = asyncio.create_task(keep_beating())
        sprays = [asyncio.create_task(spray()) for _ in range(4)]
        async with session.get(f"{standby.url}/ping/{dead}") as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)

        async def sprayed() -> bool:  # acknowledged before the kill, however busy the machine: not a rate
            return sum(1 for _, status in burst if status == 200) > 50

        await until(sprayed, 60, "51 burst pings acknowledged")
        assert leader.proc is not None
        leader.proc.kill()  # kill -9: no clean stop, the lease is left to pass
        killed = time.monotonic()

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        took = await until(leads, LEASE + 5, "the standby leads")
        print(f"kill -9 to the standby leading: {took:.2f} s (lease {LEASE:g} s)")

        def dead_down() -> list[str]:
            return [h.json()["event"] for h in hook.hits if h.json()["check"]["name"] == "dead"]

        async def alerted() -> bool:
            return "down" in dead_down()

        await until(alerted, LEASE + 5, "the missed deadline is alerted")
        print(f"kill -9 to the missed deadline's alert: {time.monotonic() - killed:.2f} s")
        await asyncio.sleep(1.5)
        beating = False
        await asyncio.gather(beats, *sprays)

        async def applied() -> bool:
            return stored(database, "SELECT count(*) FROM inbox") == [(0,)]

        await until(applied, 5, "the new leader applies the inbox")
    assert set(answers) == {200}, answers
    acknowledged = {body for body, status in burst if status == 200}
    kept = {body for (body,) in stored(database, "SELECT body FROM pings WHERE body LIKE 'burst %'")}
    assert len(acknowledged) > 50 and acknowledged <= kept, sorted(acknowledged - kept)[:10]
    assert {status for _, status in burst} <= {200, 503, None}
    assert [h.json()["check"]["name"] for h in hook.hits].count("beat") == 0, [h.json() for h in hook.hits]
    assert dead_down() == ["down"]
    assert "no node led for" in standby.log(), standby.log()[-2000:]


async def test_status_after_a_take_over_says_no_node_led_not_that_heartfly_was_not_running(
    tmp_path: Path, database: str
) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        leader.kill()  # kill -9; the standby, taking pings all along, takes over

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        await until(leads, LEASE + 5, "the standby leads")
        assert await asyncio.to_thread(standby.wait_for_log, "no node led for", 5)
        shown = (await asyncio.to_thread(heartfly, "status", "-c", str(config))).stdout
    # Heartfly ran, and no deadline was extended: the standby was taking pings.
    assert "Heartfly was last not running" not in shown, shown
    assert "no node led for" in shown and "(a crash or kill of the leader, or its lease lost" in shown, shown


async def test_a_leader_frozen_past_its_lease_fires_and_sends_nothing_when_it_wakes(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    hook = await receivers()
    config, dead = watched_every_second(tmp_path, database, hook.url)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.get(f"{leader.url}/ping/{dead}") as resp:
            assert resp.status == 200
        leader.signal(signal.SIGSTOP)  # before dead's deadline: the frozen leader has it in its heap
        try:

            async def leads() -> bool:
                return bool((await readiness(session, standby))["role"] == "leader")

            await until(leads, LEASE + 5, "the standby leads")

            async def alerted() -> bool:
                return any(h.json()["check"]["name"] == "dead" for h in hook.hits)

            await until(alerted, 5, "the new leader alerts")
            woken_at = len(leader.lines)
        finally:
            leader.signal(signal.SIGCONT)

        async def stood_down() -> bool:
            return bool((await readiness(session, leader))["role"] == "standby")

        await until(stood_down, 5, "the woken leader stands by")
        await asyncio.sleep(1.0)
    after = "".join(leader.lines[woken_at:])
    assert "no longer leads" in after, after
    assert "-> down" not in after, after  # it fired nothing
    assert [h.json()["event"] for h in hook.hits] == ["down"], [h.json() for h in hook.hits]
    assert len({h.key for h in hook.hits}) == 1


def freeze_inside_a_fenced_transaction(database: str, leader: Server, tries: int = 400) -> float | None:
    """SIGSTOP `leader` while one of its fenced transactions holds the lease row (FOR SHARE shows
    as a RowShareLock on `lease`), trying again (SIGCONT first) until a stop lands inside one.
    When (time.monotonic()) the stop that did was sent, or None: the leader is then left stopped,
    its transaction open."""
    import psycopg

    held = (
        "SELECT l.pid, a.xact_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.relation = 'lease'::regclass AND l.mode = 'RowShareLock' AND l.granted"
    )
    with psycopg.connect(database, autocommit=True) as conn:
        for _ in range(tries):
            began = time.monotonic()
            while not (row := conn.execute(held).fetchone()) and time.monotonic() - began < 2:
                time.sleep(0.0002)  # lets the test's own load run
            if row is None:
                continue
            leader.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            time.sleep(0.2)  # long past any commit under way
            if conn.execute(held).fetchone() == row:
                return stopped
            leader.signal(signal.SIGCONT)
            time.sleep(0.05)
    return None


async def test_a_leader_frozen_inside_a_fenced_transaction_does_not_hold_the_takeover_back(
    tmp_path: Path, database: str
) -> None:
    key = new_key()
    config = write(tmp_path, database, every("busy", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        loading = True
        answers: list[tuple[str, int | None]] = []

        async def load(task: int) -> None:  # commits back to back, so a stop can land inside one
            n = 0
            while loading:
                n += 1
                body = f"load {task}-{n}"  # each its own: the set of those acknowledged counts them all
                try:
                    async with session.post(
                        f"{leader.url}/ping/{key}/log", data=body, timeout=aiohttp.ClientTimeout(total=1)
                    ) as resp:
                        answers.append((body, resp.status))
                except (aiohttp.ClientError, TimeoutError):
                    answers.append((body, None))

        loads = [asyncio.create_task(load(task)) for task in range(8)]
        try:

            async def loaded() -> bool:  # pings acknowledged before the stop, however busy the machine
                return sum(1 for _, status in answers if status == 200) >= 21

            await until(loaded, 60, "21 pings acknowledged under load")
            frozen = await asyncio.to_thread(freeze_inside_a_fenced_transaction, database, leader)
            assert frozen is not None, "no stop landed inside a fenced transaction"

            async def leads() -> bool:
                return bool((await readiness(session, standby))["role"] == "leader")

            # The lease passes; the standby then ends the frozen transaction that holds its row.
            await until(leads, 2 * LEASE + 3, "the standby leads while the old leader stays frozen")
            took = time.monotonic() - frozen
            print(f"SIGSTOP inside a fenced transaction to the standby leading: {took:.2f} s (lease {LEASE:g} s)")
            assert took >= LEASE / 2  # not before the lease could pass (renewals come every quarter lease)
        finally:
            loading = False
            leader.signal(signal.SIGCONT)
            await asyncio.gather(*loads)

        async def stood_down() -> bool:
            return bool((await readiness(session, leader))["role"] == "standby")

        await until(stood_down, 5, "the woken leader stands by")
    acknowledged = {body for body, status in answers if status == 200}
    kept = {body for (body,) in stored(database, "SELECT body FROM pings WHERE body LIKE 'load %'")}
    assert len(acknowledged) > 20 and acknowledged <= kept, sorted(acknowledged - kept)[:10]


async def test_a_leader_that_cannot_read_its_inbox_says_so_gives_the_lease_up_and_alerts_once_it_can(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    import psycopg

    hook = await receivers()
    config, dead = watched_every_second(tmp_path, database, hook.url)
    async with nodes(config, 1) as [node], aiohttp.ClientSession() as session:

        async def leads() -> bool:
            return bool((await readiness(session, node))["role"] == "leader")

        await until(leads, 10, "the node leads")
        async with session.get(f"{node.url}/ping/{dead}") as resp:
            assert resp.status == 200
        # A migration, VACUUM FULL or a stuck connection: the inbox cannot be read, so no deadline
        # may fire (a ping a standby answered 200 could be in it). Before, nothing said so.
        async with await psycopg.AsyncConnection.connect(database) as locker, locker.transaction():
            await locker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
            said = "cannot fire: the inbox cannot be applied; giving the lease up"
            took = await until(lambda: asyncio.sleep(0, said in node.log()), 2 + 5 + LEASE + 5, said)
            print(f"dead due to the node saying it cannot fire: {took:.1f} s")
            assert not hook.hits
        await until(lambda: asyncio.sleep(0, bool(hook.hits)), 2 * LEASE + 10, "the alert once the inbox is read")
        await asyncio.sleep(1.0)
    assert [h.json()["event"] for h in hook.hits] == ["down"], [h.json() for h in hook.hits]


async def test_a_standby_whose_inbox_write_waits_unanswered_is_unready_until_it_is_answered(
    tmp_path: Path, database: str
) -> None:
    import psycopg

    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        _, standby = await leader_and_standby(session, servers)

        async def ping() -> int:
            async with session.get(f"{standby.url}/ping/{key}") as resp:
                return resp.status

        assert await ping() == 200
        async with await psycopg.AsyncConnection.connect(database) as locker, locker.transaction():
            await locker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")  # the standby's next commit waits
            waiting = asyncio.create_task(ping())

            async def unready() -> bool:
                body = await readiness(session, standby)
                return bool(not body["ready"] and "a database commit has waited" in str(body["problem"]))

            took = await until(unready, 15, "the standby says its commit waits")
            print(f"a standby's commit waiting to its readiness saying so: {took:.1f} s")
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 10) == 200  # answered once it committed

        async def ready() -> bool:
            return bool((await readiness(session, standby))["ready"])

        await until(ready, 5, "the standby is ready again")


async def test_a_pause_given_to_a_standby_is_applied_by_the_leader(tmp_path: Path, database: str) -> None:
    config = write(tmp_path, database, every("job", new_key(), "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.post(f"{standby.url}/api/v1/checks/job/pause", headers=token(tmp_path)) as resp:
            assert resp.status == 200

        async def paused() -> bool:
            async with session.get(f"{leader.url}/api/v1/checks/job", headers=token(tmp_path)) as resp:
                return bool((await resp.json())["state"] == "paused")

        await until(paused, 5, "the leader pauses the check")


def test_node_id_and_lease_apply_only_to_a_postgresql_database(write_config: ConfigWriter) -> None:
    found = problems(write_config, "", server='node_id = "a"\nlease = "3s"')
    assert any(p.startswith("server.node_id") for p in found) and any(p.startswith("server.lease") for p in found)


async def test_a_node_older_than_the_database_stands_by_and_says_why_it_will_not_lead(
    tmp_path: Path, database: str
) -> None:
    key = new_key()
    config = write(tmp_path, database, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        # A newer Heartfly migrated the database while both ran; then the leader dies.
        stored(database, "INSERT INTO heartfly_schema (version) VALUES (999) RETURNING version")
        assert leader.proc is not None
        leader.proc.kill()
        assert await asyncio.to_thread(standby.wait_for_log, "will not lead", LEASE + 5), standby.log()
        await asyncio.sleep(LEASE)
        state = await readiness(session, standby)
        assert state["role"] == "standby", state
        async with session.get(f"{standby.url}/ping/{key}") as resp:
            assert resp.status == 200  # still takes pings, for the newer leader to apply
    line = next(line for line in standby.log().splitlines() if "will not lead" in line)
    assert "schema version 999, newer than this Heartfly" in line
    assert standby.log().count("will not lead") == 1  # said once, not on every try


async def test_status_names_the_leader_of_a_cluster(tmp_path: Path, database: str) -> None:
    from tests.proc import heartfly

    config = write(tmp_path, database, every("job", new_key(), "1h"))
    async with nodes(config, 1) as [server], aiohttp.ClientSession() as session:
        node = (await readiness(session, server))["node"]
        result = await asyncio.to_thread(heartfly, "status", "-c", str(config))
        assert result.returncode == 0, result.stderr
        assert f"cluster: {node} leads (term 1)" in result.stdout, result.stdout
        assert await asyncio.to_thread(server.stop) == 0
    result = await asyncio.to_thread(heartfly, "status", "-c", str(config))
    assert f"cluster: no node leads; {node} stopped cleanly (term 1)" in result.stdout, result.stdout


def test_servers_starting_together_on_one_config_share_one_new_api_token(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from heartfly.web.runtime import load_token

    path = tmp_path / "secrets" / "api-token"
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: load_token(path), range(32)))
    assert len(tokens) == 1 and None not in tokens
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]  # no file left aside


async def test_postgresql_restarting_under_load_loses_no_acknowledged_ping_and_one_node_leads_after(
    tmp_path: Path, own_cluster: pgserver.PgServer
) -> None:
    url = own_cluster.database()
    key = new_key()
    config = write(tmp_path, url, every("job", key, "1h"))
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        await leader_and_standby(session, servers)
        going = True
        answers: list[tuple[str, int | None, float]] = []  # body, status, when sent

        async def spray(first: int) -> None:
            n = first
            while going:
                n += 10
                sent = time.monotonic()
                try:
                    async with session.post(f"{servers[n % 2].url}/ping/{key}/log", data=f"p{n}") as resp:
                        answers.append((f"p{n}", resp.status, sent))
                except aiohttp.ClientError:
                    answers.append((f"p{n}", None, sent))
                await asyncio.sleep(0.02)

        sprays = [asyncio.create_task(spray(i)) for i in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_cluster.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_cluster.start)
        await leader_and_standby(session, servers)  # leadership resumes by itself
        settled = time.monotonic() + 1.0  # a writer may refuse one more batch after reconnecting
        await asyncio.sleep(2.0)
        going = False
        await asyncio.gather(*sprays)
        after = [(body, status) for body, status, sent in answers if sent > settled]
        assert after and {status for _, status in after} == {200}, after

        async def applied() -> bool:
            return stored(url, "SELECT count(*) FROM inbox") == [(0,)]

        await until(applied, 10, "the leader applies the inbox")
    assert {status for _, status, _ in answers} <= {200, 503, None}, answers
    acknowledged = {body for body, status, _ in answers if status == 200}
    kept = {body for (body,) in stored(url, "SELECT body FROM pings")}
    assert acknowledged <= kept, sorted(acknowledged - kept)[:10]
    assert any(status == 503 for _, status, _ in answers)  # the outage was seen
    for server in servers:
        assert "Traceback" not in server.log(), server.log()[-3000:]


async def test_a_standby_whose_config_differs_from_the_leaders_says_so(tmp_path: Path, database: str) -> None:
    # Each node its own copy of the file (as on two machines); one reloaded after a change, not the other.
    copies, key = [tmp_path / "a", tmp_path / "b"], new_key()
    for folder in copies:
        folder.mkdir()
    files = [write(folder, database, every("job", key, "1h")) for folder in copies]
    servers = [Server(path) for path in files]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            leader, standby = await leader_and_standby(session, servers)
        path = files[servers.index(leader)]
        path.write_text(path.read_text() + every("nightly", new_key(), "1d"))
        leader.signal(signal.SIGHUP)  # the standby answers 404 to nightly's pings, the leader alerts it down
        said = "config differs from the leader's: the leader watches nightly, which this node's config lacks"
        assert await asyncio.to_thread(standby.wait_for_log, said, 20), standby.log()[-2000:]
        assert standby.log().count("config differs from the leader's") == 1  # said once, not every second
        other = files[servers.index(standby)]
        other.write_text(path.read_text())
        standby.signal(signal.SIGHUP)
        assert await asyncio.to_thread(standby.wait_for_log, "config and the leader's agree again", 10)
    finally:
        for s in servers:
            s.kill()


async def test_pings_kept_in_the_inbox_for_a_check_the_leader_lacks_are_not_kept_in_its_memory(
    tmp_path: Path, database: str
) -> None:
    # The standby reloaded a file with a check the leader's lacks: its pings wait in the inbox (for
    # the leader's reload), bodies and all; the leader needs only which check each is for.
    copies, key = [tmp_path / "a", tmp_path / "b"], new_key()
    for folder in copies:
        folder.mkdir()
    files = [write(folder, database, every("job", key, "1h")) for folder in copies]
    servers = [Server(path) for path in files]
    extra = new_key()
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            leader, standby = await leader_and_standby(session, servers)
            path = files[servers.index(standby)]
            path.write_text(path.read_text() + every("extra", extra, "1d"))
            standby.signal(signal.SIGHUP)
            assert await asyncio.to_thread(standby.wait_for_log, ": 2 checks", 10), standby.log()[-2000:]
            kept = "a standby took a ping for check extra, which is not in this node's config"

            async def send(count: int) -> None:
                wanted = leader.log().count(kept) + count
                for n in range(count):
                    body = f"{n:06d}" + "x" * 90_000
                    async with session.post(f"{standby.url}/ping/{extra}", data=body) as resp:
                        assert resp.status == 200
                await until(lambda: _true(leader.log().count(kept) >= wanted), 10, "the leader keeps them")

            def rss_kib() -> int:
                assert leader.proc is not None
                with open(f"/proc/{leader.proc.pid}/status") as f:
                    return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

            await send(30)  # the leader's allocator warmed up
            before = rss_kib()
            await send(300)  # 27 MB of bodies
            grown = rss_kib() - before
        assert stored(database, "SELECT count(*) FROM inbox") == [(330,)]
        assert grown < 10_000, f"the leader grew by {grown} KiB"
    finally:
        for s in servers:
            s.kill()


async def _true(value: bool) -> bool:
    return value


async def test_pings_a_standby_takes_for_a_stored_check_the_leader_has_not_read_do_not_each_read_every_stored_check(
    tmp_path: Path, database: str
) -> None:
    # Many checks made through the API; one (its channel in the standby's file only) the leader
    # does not have, as for a check made on a standby in the second before the leader reads it.
    import psycopg

    from heartfly.core.stored_checks import META_PREFIX, StoredCheck

    copies = [tmp_path / "a", tmp_path / "b"]
    for folder in copies:
        folder.mkdir()
    journal = '[channels.journal]\ntype = "log"\n'
    files = [write(folder, database, journal + every("job", new_key(), "1h")) for folder in copies]
    servers = [Server(path) for path in files]
    extra = new_key()
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with aiohttp.ClientSession() as session:
            leader, standby = await leader_and_standby(session, servers)
            path = files[servers.index(leader)]
            path.write_text(path.read_text().replace(journal, ""))
            leader.signal(signal.SIGHUP)
            assert await asyncio.to_thread(leader.wait_for_log, "reloaded", 10), leader.log()[-2000:]
            made = [StoredCheck(f"api-{n}", "api", {"key": new_key(), "every": "1d"}, 1.0) for n in range(10_000)]
            made.append(StoredCheck("extra", "api", {"key": extra, "every": "1d", "channels": ["journal"]}, 1.0))
            with psycopg.connect(database, autocommit=True) as conn, conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO meta (key, value) VALUES (%s, %s)", [(META_PREFIX + c.name, c.encode()) for c in made]
                )

            async def served() -> bool:
                async with session.get(f"{standby.url}/ping/{extra}", params={"rid": "x"}) as resp:
                    return resp.status == 200

            await until(served, 60, "the standby serves the checks")
            kept = "a standby took a ping for check extra, which is not in this node's config"
            await until(lambda: _true(kept in leader.log()), 30, "the leader keeps it")
            wanted = leader.log().count(kept) + 100

            async def ping() -> int:
                async with session.get(f"{standby.url}/ping/{extra}") as resp:
                    return resp.status

            assert await asyncio.gather(*(ping() for _ in range(100))) == [200] * 100
            # Each read every stored check (0.1 s each here) before it was kept: 10 s, not 1.
            took = await until(lambda: _true(leader.log().count(kept) >= wanted), 60, "the leader keeps them")
        assert took < 5, f"the leader took {took:.1f} s"
    finally:
        for s in servers:
            s.kill()


async def test_a_new_slug_pinged_with_create_1_on_two_nodes_at_once_is_made_once_and_keeps_every_ping(
    tmp_path: Path, database: str
) -> None:
    # Each node decided from the checks it knew: both made the check, and the second's write took
    # away (as a deleted check's) the history of the pings the first had already acknowledged.
    ping_key = new_key()
    defaults = '[defaults]\nchannels = ["journal"]\n[channels.journal]\ntype = "log"\n'
    config = write(tmp_path, database, defaults, f'ping_key = "{ping_key}"', "auto_provision = true")
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        await leader_and_standby(session, servers)
        for n in range(3):  # a race of timing: three rounds lose pings near certainly without the fix

            async def ping(server: Server, slug: str = f"made-{n}") -> int:
                async with session.get(f"{server.url}/ping/{ping_key}/{slug}", params={"create": "1"}) as resp:
                    return resp.status

            codes = await asyncio.gather(*(ping(servers[i % 2]) for i in range(16)))
            assert sorted(codes) == [200] * 15 + [201], codes
        await until(inbox_empty(database), 10, "the leader applies the standby's pings")
        counts = "SELECT c.name, count(p.id) FROM checks c LEFT JOIN pings p ON p.check_id = c.id GROUP BY c.name"
        assert sorted(stored(database, counts)) == [(f"made-{n}", 16) for n in range(3)]


async def test_a_rename_on_one_node_to_a_name_another_node_just_made_is_refused_and_takes_nothing_away(
    tmp_path: Path, database: str
) -> None:
    # The leader decided from the checks it knew (it reads the others' within a second): the
    # rename answered 200 and wrote its check over the one the standby had made and answered 201
    # for, whose ping URL then answered 404, and whose history (pings taken meanwhile) it tombstoned.
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        for n in range(3):  # the leader must not read the standby's check in between: near certain in three
            nightly = await made_and_known(session, leader, standby, hc)
            async with session.post(f"{standby.url}/api/v3/checks/", json={"name": f"Taken {n}"}, headers=hc) as resp:
                assert resp.status == 201
                made = (await resp.json())["uuid"]
            async with session.post(
                f"{leader.url}/api/v3/checks/{nightly}", json={"slug": f"taken-{n}"}, headers=hc
            ) as resp:
                assert resp.status == 400, await resp.text()
                assert f"slug 'taken-{n}' is taken" in await resp.text()
            async with session.post(f"{standby.url}/ping/{made}") as resp:
                assert resp.status == 200
            for server in (leader, standby):  # both serve both: Nightly under its name, the made one under its own
                async with session.get(f"{server.url}/api/v3/checks/{made}", headers=hc) as resp:
                    assert resp.status == 200 and (await resp.json())["slug"] == f"taken-{n}"
                async with session.get(f"{server.url}/api/v3/checks/{nightly}", headers=hc) as resp:
                    assert resp.status == 200 and (await resp.json())["slug"] == "nightly"
            async with session.delete(f"{leader.url}/api/v3/checks/{nightly}", headers=hc) as resp:
                assert resp.status == 200

            async def gone_from_standby(nightly: str = nightly) -> bool:
                async with session.get(f"{standby.url}/api/v3/checks/{nightly}", headers=hc) as resp:
                    return resp.status == 404

            await until(gone_from_standby, 5, "the standby drops Nightly")
        await until(inbox_empty(database), 10, "the leader applies the standby's pings")
        names = "SELECT c.name, count(p.id) FROM checks c LEFT JOIN pings p ON p.check_id = c.id GROUP BY c.name"
        assert sorted(row for row in stored(database, names) if row[0].startswith("taken")) == [
            (f"taken-{n}", 1) for n in range(3)
        ]


@pytest.mark.parametrize("change", ["slug", "timeout"], ids=["rename", "update"])
async def test_a_change_on_one_node_of_a_check_another_node_just_deleted_is_not_found_and_brings_nothing_back(
    tmp_path: Path, database: str, change: str
) -> None:
    # The standby decided from the checks it knew (it reads the others' within a second): the
    # rename took the new name though the check was gone (the update wrote its row over the
    # deletion), answered 200, and the deleted check came back on both nodes.
    config = write(tmp_path, database, every("job", new_key(), "1h"), 'hc_api_key_file = "hc-key"')
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        hc = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip()}
        for n in range(3):  # the standby must not read the deletion in between: near certain in three
            nightly = await made_and_known(session, leader, standby, hc)
            async with session.delete(f"{leader.url}/api/v3/checks/{nightly}", headers=hc) as resp:
                assert resp.status == 200
            body = {"slug": f"renamed-{n}"} if change == "slug" else {"timeout": 120 + n}
            async with session.post(f"{standby.url}/api/v3/checks/{nightly}", json=body, headers=hc) as resp:
                assert resp.status == 404, await resp.text()

            async def gone_from_both(nightly: str = nightly) -> bool:
                for server in (leader, standby):
                    async with session.get(f"{server.url}/api/v3/checks/{nightly}", headers=hc) as resp:
                        if resp.status != 404:
                            return False
                return True

            await until(gone_from_both, 5, "both nodes drop Nightly")
        assert stored(database, "SELECT key FROM meta WHERE key LIKE '%renamed-%'") == []


async def test_a_test_alert_asked_of_a_standby_is_refused_naming_the_leader(tmp_path: Path, database: str) -> None:
    checks = '[channels.journal]\ntype = "log"\n' + every("job", new_key(), "1h", 'channels = ["journal"]')
    config = write(tmp_path, database, checks)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        leader_id = (await readiness(session, leader))["node"]
        async with session.post(f"{standby.url}/api/v1/channels/journal/test", headers=token(tmp_path)) as resp:
            assert resp.status == 409
            assert leader_id in (await resp.json())["error"]
        async with session.post(f"{leader.url}/api/v1/channels/journal/test", headers=token(tmp_path)) as resp:
            assert resp.status == 200, await resp.text()


async def test_an_alert_in_flight_when_the_leader_dies_is_sent_again_by_the_new_leader_with_the_same_key(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    hook = await receivers(hanging=True)  # holds every request: the first send is in flight at the kill
    key = new_key()
    checks = f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n' + every("job", key, "1h", 'channels = ["hook"]')
    config = write(tmp_path, database, checks)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.get(f"{standby.url}/ping/{key}/fail") as resp:
            assert resp.status == 200

        async def in_flight() -> bool:
            return len(hook.hits) >= 1

        await until(in_flight, 10, "the leader's first attempt reaches the receiver")
        first = hook.hits[0].json()  # its last ping read with the due rows, by id, in PostgreSQL
        assert first["last_ping"]["kind"] == "fail", first
        assert "cannot read the last pings" not in leader.log(), leader.log()
        assert leader.proc is not None
        leader.proc.kill()  # the attempt is never recorded as sent

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        await until(leads, LEASE + 5, "the standby leads")

        async def again() -> bool:
            return len(hook.hits) >= 2

        hook.hanging = False
        hook.release.set()
        await until(again, 15, "the new leader sends the pending alert")

        async def recorded_sent() -> bool:  # the attempt is committed just after the receiver answered
            async with session.get(f"{standby.url}/api/v1/checks/job/alerts", headers=token(tmp_path)) as resp:
                alerts = await resp.json()
            return len(alerts) == 1 and alerts[0]["status"] == "sent"

        await until(recorded_sent, 10, "the alert recorded as sent")
    # At least once, and a repeat only with the same Idempotency-Key: the receiver can tell.
    assert len({h.key for h in hook.hits}) == 1 and hook.hits[0].key.startswith("flip-")
    assert [h.json()["event"] for h in hook.hits] == ["down", "down"]


async def test_a_row_the_leader_kept_for_a_check_it_lacked_is_forgotten_once_a_reload_applies_it() -> None:
    # term.unknown names the rows left in the inbox for the next read: one applied since (its
    # check brought in by a reload) was kept in it for the whole term, one entry per row of a day
    # of config drift, each walked by every read of the inbox.
    from types import SimpleNamespace

    from heartfly.server.cluster import Node, _Term

    rows = {7: (7, "extra", '{"op":"pause","key":null,"stored":false,"why":""}')}
    checks: dict[str, object] = {}
    paused: list[str] = []

    async def read(limit: int, skip: set[int]) -> list[tuple[int, str, str]]:
        return [row for i, row in sorted(rows.items()) if i not in skip][:limit]

    async def pause(check: Any, item_id: int, at: float | None) -> None:
        paused.append(check.name)
        rows.pop(item_id)  # its commit deletes the row

    engine = SimpleNamespace(lookup_name=checks.get, lookup_key=lambda key: None, pause=pause)
    term = _Term(1, SimpleNamespace(failing=False), engine, SimpleNamespace(read=read))  # type: ignore[arg-type]
    node = object.__new__(Node)
    assert await node._drain(term)
    assert list(term.unknown) == [7] and paused == []
    checks["extra"] = SimpleNamespace(name="extra")  # the leader's reload brought the check in
    assert await node._drain(term)
    await asyncio.sleep(0)
    assert paused == ["extra"]
    assert term.unknown == {}, term.unknown


async def test_a_leaders_clean_stop_waits_for_the_alert_under_way_so_the_next_leader_does_not_send_it_again(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    # A clean stop (SIGTERM) of the leader cancelled the attempt under way: its row stayed pending
    # and the next leader sent the alert a second time (an email has no Idempotency-Key to drop it
    # by). The leader now waits for it, its lease still renewed, as a single server does.
    hook = await receivers(hanging=True)
    key = new_key()
    checks = f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n' + every("job", key, "1h", 'channels = ["hook"]')
    config = write(tmp_path, database, checks)
    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:
        leader, standby = await leader_and_standby(session, servers)
        async with session.get(f"{standby.url}/ping/{key}/fail") as resp:
            assert resp.status == 200

        async def in_flight() -> bool:
            return len(hook.hits) >= 1

        await until(in_flight, 10, "the leader's first attempt reaches the receiver")
        leader.signal(signal.SIGTERM)
        assert await asyncio.to_thread(leader.wait_for_log, "waiting up to"), leader.log()
        hook.hanging = False
        hook.release.set()  # answered while the leader stops
        assert await asyncio.to_thread(leader.stop) == 0
        assert stored(database, "SELECT event, status FROM outbox") == [("down", "sent")], leader.log()

        async def leads() -> bool:
            return bool((await readiness(session, standby))["role"] == "leader")

        await until(leads, LEASE + 5, "the standby leads")
        async with session.get(f"{standby.url}/ping/{key}") as resp:  # a recovery: it goes out after the down alert
            assert resp.status == 200

        async def recovered() -> bool:
            return "recovery" in hook.events()

        await until(recovered, 10, "the recovery alert")
    assert hook.events() == ["down", "recovery"]


BREAK_THE_SENDER_AND_SERVE = """
import sys
from heartfly import entry
from heartfly.notify.dispatcher import Dispatcher

async def broken(self):
    raise RuntimeError("a fault injected into the alert sender")

Dispatcher.run = broken
sys.argv = ["heartfly", "serve", "-c", sys.argv[1]]
entry.main()
"""


def test_a_leaders_alert_sender_that_fails_is_logged_and_ends_the_process_with_exit_1(
    tmp_path: Path, database: str
) -> None:
    # A term's tasks were not watched as a single server's are: the leader's alert sender died
    # unsaid and the node kept its lease, answering pings, with no alert ever sent.
    import subprocess
    import sys

    config = write(tmp_path, database, every("job", new_key(), "1h"))
    args = [sys.executable, "-c", BREAK_THE_SENDER_AND_SERVE, str(config)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        _, log = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, log = proc.communicate()
    assert proc.returncode == 1, log
    assert "RuntimeError: a fault injected into the alert sender" in log and "Traceback" in log
    assert log.rstrip().splitlines()[-1].startswith("error: stopped because heartfly-dispatcher ended"), log
    assert "had failed" not in log, log  # logged once (tasks.watched), not again by the term's end
    # Its lease freed for a standby, its stop recorded as an unclean one: the lease passed, not
    # released as a clean stop's (heartfly status would say it stopped cleanly).
    assert stored(database, "SELECT value FROM meta WHERE key = 'clean_stop'") == [("0",)], log
    freed = "SELECT isfinite(expires_at) AND expires_at <= clock_timestamp() FROM lease"
    assert stored(database, freed) == [(True,)], log


async def test_a_nodes_alert_attempt_counters_do_not_go_back_when_it_stops_leading(
    tmp_path: Path,
    database: str,
    receivers: Receivers,  # noqa: F811 - the fixture
) -> None:
    # Counted by each term's alert sender, heartfly_alert_attempts_total fell to 0 on a leader
    # that stood down (a standby has none) and started again from 0 at its next term: a counter
    # that went back without a restart, so a rule on increase() lost the attempts in between.
    hook = await receivers()
    config, dead = watched_every_second(tmp_path, database, hook.url)

    def sent(text: str) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "heartfly_alert_attempts_total" and s.labels == {"channel": "hook", "outcome": "sent"}
        )

    async with nodes(config, 2) as servers, aiohttp.ClientSession() as session:

        async def scrape(server: Server) -> float:
            async with session.get(f"{server.url}/metrics", headers=token(tmp_path)) as resp:
                assert resp.status == 200
                return sent(await resp.text())

        leader, standby = await leader_and_standby(session, servers)
        async with session.get(f"{leader.url}/ping/{dead}") as resp:
            assert resp.status == 200

        async def alerted() -> bool:
            return await scrape(leader) >= 1

        await until(alerted, 10, "the leader sends the down alert")
        before = await scrape(leader)
        leader.signal(signal.SIGSTOP)
        try:

            async def leads() -> bool:
                return bool((await readiness(session, standby))["role"] == "leader")

            await until(leads, LEASE + 5, "the standby leads")
        finally:
            leader.signal(signal.SIGCONT)

        async def stood_down() -> bool:
            return bool((await readiness(session, leader))["role"] == "standby")

        await until(stood_down, 5, "the woken leader stands by")

        async def takes_pings() -> bool:  # into the inbox: its standby's picture is up
            async with session.get(f"{leader.url}/ping/{dead}") as resp:
                return resp.status == 200

        await until(takes_pings, 10, "the woken leader takes pings as a standby")
        after = await scrape(leader)
        assert after >= before
