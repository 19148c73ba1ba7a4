"""Faults: a full filesystem, a reload storm, a database file removed under the server, broken steps."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import NoReturn

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from heartfly.core.clock import FakeClock
from heartfly.core.states import Event, Kind, Status
from heartfly.notify import outbox as notify_outbox
from heartfly.server import daemon
from heartfly.server.engine import PingRecord
from heartfly.store import sqlite as store
from heartfly.store import wal
from heartfly.store.api import StoreError
from heartfly.store.rows import PingRow, Write, meta_statement
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.proc import Server
from tests.storeutil import sqlite_file
from tests.test_restart import running
from tests.webutil import Client, until


@contextlib.contextmanager
def a_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at tmp_path/disk: a real filesystem that fills up (skips without root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs."""
    with a_tmpfs(tmp_path, "2m") as mount:
        yield mount


def write_config(tmp_path: Path, database: Path, checks: str) -> Path:
    path = tmp_path / "hb.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "{database}"\napi_token_file = "token"\n' + checks)
    return path


async def ping(session: aiohttp.ClientSession, url: str, body: str) -> int:
    async with session.post(url, data=body) as resp:
        await resp.read()
        return resp.status


def test_a_full_filesystem_answers_503_says_so_and_recovers_without_a_restart(tmp_path: Path, tiny_disk: Path) -> None:
    key = new_key()
    config = write_config(tmp_path, tiny_disk / "hb.db", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    acked: list[str] = []
    with Server(config) as server:
        url = f"{server.url}/ping/{key}/log"

        async def scenario() -> tuple[Counter[int], int]:
            statuses: Counter[int] = Counter()
            async with aiohttp.ClientSession() as session:
                filler = tiny_disk / "filler"
                with filler.open("wb") as out:  # fill the disk to the last block
                    try:
                        while True:
                            out.write(b"\0" * 65536)
                            out.flush()
                    except OSError:
                        pass
                n = 0
                while statuses[503] == 0 and n < 2000:  # the WAL's spare pages run out after some pings
                    body = f"p{n}-" + "x" * 2000
                    status = await ping(session, url, body)
                    statuses[status] += 1
                    if status == 200:
                        acked.append(body)
                    n += 1
                async with session.get(f"{server.url}/readyz") as ready:
                    ready_status = ready.status
                filler.unlink()  # space comes back; no restart
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    body = f"after-{len(acked)}"
                    if await ping(session, url, body) == 200:
                        acked.append(body)
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("writes did not resume after space came back")
            return statuses, ready_status

        statuses, ready_status = asyncio.run(scenario())
        assert statuses[503] >= 1 and set(statuses) <= {200, 503}
        assert ready_status == 503
        assert server.wait_for_log("database write failed")
        assert server.wait_for_log("database writes work again")
        assert server.stop() == 0
    with sqlite3.connect(tiny_disk / "hb.db") as db:
        stored = {row[0] for row in db.execute("SELECT body FROM pings")}
    assert [b for b in acked if b not in stored] == []


def test_a_storm_of_reloads_during_pings_loses_no_ping_and_keeps_serving(tmp_path: Path) -> None:
    keys = [new_key() for _ in range(5)]
    checks = "".join(f'[checks.c{i}]\nkey = "{k}"\nevery = "1h"\n' for i, k in enumerate(keys))
    config = write_config(tmp_path, tmp_path / "hb.db", checks)
    statuses: Counter[int] = Counter()
    with Server(config) as server:

        async def load(stop: asyncio.Event) -> None:
            async with aiohttp.ClientSession() as session:
                i = 0
                while not stop.is_set():
                    statuses[await ping(session, f"{server.url}/ping/{keys[i % 5]}", "x")] += 1
                    i += 1

        async def storm() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(load(stop))
            for n in range(40):
                extra = f'[checks.extra{n}]\nkey = "{new_key()}"\nevery = "1h"\n' if n % 2 else ""
                # Atomically, as editors save: the server reads the file in a thread, maybe mid-write.
                config.with_suffix(".new").write_text(config.read_text().split("[checks.extra")[0] + extra)
                os.replace(config.with_suffix(".new"), config)
                server.signal(signal.SIGHUP)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            # Pings after the storm, however slow a loaded machine answers them (the count, not the time).
            waited = 0.0
            while statuses[200] <= 50 and waited < 60:
                await asyncio.sleep(0.05)
                waited += 0.05
            stop.set()
            await task

        asyncio.run(storm())
        assert server.proc is not None and server.proc.poll() is None
        assert set(statuses) == {200} and statuses[200] > 50
        assert server.wait_for_log("reloaded")
        assert server.stop() == 0
    assert "Traceback" not in server.log()


# ---- in-process: the app on a real SQLite file ------------------------------------------------


def fill(mount: Path) -> Path:
    """Fill the filesystem to its last block; deleting the returned file gives the space back."""
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):  # to the last byte: a write of a few pages must not fit either
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    return filler


async def holds(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async def check() -> bool:
        return predicate()

    await until(check, timeout)


def meta(database: Path, key: str) -> str | None:
    with closing(sqlite3.connect(database)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def count(database: Path, table: str) -> int:
    with closing(sqlite3.connect(database)) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def post(client: Client, path: str, body: str = "") -> int:
    async with client.post(path, data=body.encode()) as resp:
        await resp.read()
        return resp.status


BIG = "x" * 90_000  # a ping the WAL's spare pages cannot hold for long


async def refused_soon(client: Client, path: str) -> None:
    """Ping with big bodies until the full disk refuses one."""
    for _ in range(200):
        if await post(client, path, BIG) == 503:
            return
    pytest.fail("the full disk never refused a ping")


async def test_housekeeping_survives_a_full_disk_during_a_prune_and_carries_on_once_space_returns(
    aiohttp_client: AiohttpClient,
    write_config: ConfigWriter,
    tiny_disk: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The WAL copier stays idle: had it copied the log into the database before the disk filled,
    # SQLite would write the round's few pages over the log's own space, and the round would not
    # fail (the test then depended on whether 0.1 s passed before the disk filled).
    monkeypatch.setattr(wal, "CHECKPOINT_EVERY", 3600.0)
    key, database, clock = new_key(), tiny_disk / "hb.db", FakeClock()
    config = write_config(
        f'[checks.a]\nkey = "{key}"\nevery = "1h"\n', server=f'database = "{database}"\nkeep_pings = 5'
    )
    client = await aiohttp_client(create_app(config, clock=clock))
    for _ in range(20):  # more unpruned pings than the prune's threshold
        assert await post(client, f"/ping/{key}") == 200
    filler = fill(tiny_disk)
    await refused_soon(client, f"/ping/{key}/log")
    housekeeping = next(t for t in asyncio.all_tasks() if t.get_name() == "heartfly-housekeeping")
    clock.advance(61)  # the next round marks "alive at" and prunes, with the disk still full
    await holds(lambda: housekeeping.done() or "housekeeping round failed" in caplog.text)
    assert not housekeeping.done()
    filler.unlink()
    await holds(lambda: meta(database, "alive_at") == repr(clock.now()), timeout=10)
    now = clock.advance(61)  # a round after the outage: the mark moves on and the prune runs
    await holds(lambda: meta(database, "alive_at") == repr(now) and count(database, "pings") <= 5)
    assert caplog.text.count("housekeeping round failed") == 1


@pytest.mark.parametrize("how", ["removed", "replaced"])
async def test_a_database_file_removed_or_replaced_under_the_running_daemon_refuses_pings_and_fails_readiness(
    aiohttp_client: AiohttpClient,
    write_config: ConfigWriter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    database = sqlite_file(config)
    client = await aiohttp_client(create_app(config))
    assert await post(client, f"/ping/{key}") == 200
    if how == "removed":
        database.unlink()
    else:
        (tmp_path / "other.db").write_bytes(b"")
        (tmp_path / "other.db").replace(database)

    async def refused() -> bool:
        return await post(client, f"/ping/{key}") == 503

    await until(refused)
    async with client.get("/readyz") as ready:
        assert ready.status == 503
        assert f"{database} was removed or replaced" in await ready.text()
    assert await post(client, f"/ping/{key}") == 503
    assert caplog.text.count(f"{database} was removed or replaced") == 1


async def test_a_wal_file_removed_under_the_running_daemon_refuses_pings_and_fails_readiness(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # `rm hb.db-wal hb.db-shm` against a live server: SQLite goes on committing into the removed
    # WAL, and a crash then loses every ping it answered 200 since.
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    wal_file = sqlite_file(config).with_name(sqlite_file(config).name + "-wal")
    client = await aiohttp_client(create_app(config))
    assert await post(client, f"/ping/{key}") == 200
    wal_file.unlink()

    async def refused() -> bool:
        return await post(client, f"/ping/{key}") == 503

    await until(refused)
    async with client.get("/readyz") as ready:
        assert ready.status == 503
        assert f"WAL file {wal_file} was removed or replaced" in await ready.text()
    assert caplog.text.count(f"{wal_file} was removed or replaced") == 1


async def test_writes_that_fail_while_the_database_file_is_moved_away_are_logged_too(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # The failure of a commit was not logged while the file was lost (moved away, its WAL not
    # copied), as if that said it: moved back, the log said "pings are taken again" while every
    # ping was still refused, and no line had said why (here a lock held past the busy timeout).
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    database = sqlite_file(config)
    client = await aiohttp_client(create_app(config))
    writer = client.app[RUNTIME].writer
    assert writer is not None
    assert await post(client, f"/ping/{key}") == 200

    def logged(text: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return text in caplog.text

        return check

    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # the write lock, held past the writer's busy timeout (5 s)
        moved = database.rename(database.with_name("moved.db"))
        await until(logged(f"{database} was removed or replaced"))
        with pytest.raises(StoreError, match="database is locked"):
            await writer.flush()
        moved.rename(database)
        await until(logged(f"{database} is back and its WAL usable"))
        assert await post(client, f"/ping/{key}") == 503  # still refused: the lock
        assert "database write failed, pings are refused until it works again" in caplog.text
        # Not "pings are taken again" while each is refused: that is said once a write works.
        assert "pings are taken again" not in caplog.text, caplog.text
        other.execute("ROLLBACK")
    await until(logged("database writes work again"))
    assert await post(client, f"/ping/{key}") == 200


def test_a_stop_on_a_full_disk_says_in_one_line_what_it_could_not_store_and_exits_1(
    tmp_path: Path, tiny_disk: Path
) -> None:
    # `systemctl stop` (or a restart to mend things) during a full disk ended in a traceback of
    # aiohttp's CleanupError: the final commit and the clean-stop mark both failed.
    key = new_key()
    config = write_config(tmp_path, tiny_disk / "hb.db", f'[checks.a]\nkey = "{key}"\nevery = "1s"\ngrace = "1s"\n')
    server = Server(config).start()
    try:
        filler = fill(tiny_disk)
        assert server.wait_for_log("check a: late -> down"), server.log()  # its rows held in memory
        assert server.stop() == 1, server.log()
    finally:
        server.kill()
    assert "Traceback" not in server.log(), server.log()
    assert (
        f"error: the stop could not store what it held (cannot write database {tiny_disk / 'hb.db'}:"
        " database or disk is full): the next start counts it as an unclean stop" in server.log()
    ), server.log()
    filler.unlink()
    with Server(config) as again:  # as systemd's next start finds it once there is space
        assert "(unclean stop)" in again.log() or again.wait_for_log("(unclean stop)")
        assert again.stop() == 0


async def test_an_error_that_ended_a_start_is_not_hidden_by_a_cleanup_that_cannot_store_after_it(
    write_config: ConfigWriter,
) -> None:
    # The one line of a stop that cannot store ("the stop could not store what it held", exit 1)
    # also took the place of an error that had ended the run before any stop was asked for (one
    # that is no StartError: a bug), and dropped it with its traceback: nothing left to find it by.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    app = create_app(config)

    async def cannot_store(app: web.Application) -> AsyncIterator[None]:
        yield
        raise StoreError(f"cannot write database {config.server.database}: database or disk is full")

    async def fails(app: web.Application) -> AsyncIterator[None]:
        raise RuntimeError("the error that ended the start")
        yield  # an async generator, as aiohttp's cleanup contexts are

    app.cleanup_ctx.append(cannot_store)
    app.cleanup_ctx.append(fails)
    with pytest.raises(StoreError) as raised:  # as before the one line: the cleanup's, after the start's error
        await daemon._run(app, asyncio.Event(), asyncio.Queue())
    told = "".join(traceback.format_exception(raised.value))
    assert "RuntimeError: the error that ended the start" in told, told


def test_a_start_on_a_full_disk_exits_1_saying_so_so_that_systemd_starts_it_again(
    tmp_path: Path, tiny_disk: Path
) -> None:
    # Exit 2 is RestartPreventExitStatus in the unit: once space was back, nothing watched the jobs.
    key = new_key()
    config = write_config(tmp_path, tiny_disk / "hb.db", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    filler = fill(tiny_disk)
    try:
        again = Server(config)
        with pytest.raises(RuntimeError):
            again.start(timeout=15)
        assert again.proc is not None and again.proc.wait(10) == 1, again.log()
        assert f"error: the disk holding {tiny_disk / 'hb.db'} is full" in again.log(), again.log()
        assert "Traceback" not in again.log()
    finally:
        filler.unlink()
    with Server(config) as server:  # as systemd's restart finds it once there is space
        assert server.stop() == 0


def test_a_start_while_another_program_holds_the_databases_write_lock_exits_1_so_that_systemd_starts_it_again(
    tmp_path: Path,
) -> None:
    # A `sqlite3` shell left in a transaction, a script of the operator's: the start waited its 5 s
    # and exited 2, RestartPreventExitStatus in the unit, so once the lock was let go nothing
    # watched the jobs. A lock is let go: exit 1, and systemd's next start finds the file free.
    key = new_key()
    database = tmp_path / "hb.db"
    config = write_config(tmp_path, database, f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO meta (key, value) VALUES ('held', 'by another program')")
        again = Server(config)
        with pytest.raises(RuntimeError):
            again.start(timeout=30)
        assert again.proc is not None and again.proc.wait(10) == 1, again.log()
        assert f"error: cannot use database {database}: database is locked (another program holds it" in again.log()
        assert "Traceback" not in again.log()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Server(config) as server:  # as systemd's restart finds it once the lock is let go
        assert server.stop() == 0


async def test_a_database_file_moved_away_and_back_refuses_pings_only_while_it_is_away(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    database = sqlite_file(config)
    client = await aiohttp_client(create_app(config))
    database.rename(tmp_path / "away.db")

    async def answered(status: int) -> bool:
        return await post(client, f"/ping/{key}") == status

    await until(lambda: answered(503))
    (tmp_path / "away.db").rename(database)
    await until(lambda: answered(200))
    async with client.get("/readyz") as ready:
        assert ready.status == 200
    assert f"the database file {database} is back" in caplog.text


async def test_a_database_folder_moved_away_with_a_file_in_its_place_refuses_pings_and_fails_readiness(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, tmp_path: Path
) -> None:
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n', server='database = "data/hb.db"')
    database = sqlite_file(config)
    client = await aiohttp_client(create_app(config))
    database.parent.rename(tmp_path / "moved")
    database.parent.write_text("not a folder")  # stat() of the path now fails with ENOTDIR

    async def answered(status: int) -> bool:
        return await post(client, f"/ping/{key}") == status

    await until(lambda: answered(503))
    async with client.get("/readyz") as ready:
        assert ready.status == 503
        assert f"{database} was removed or replaced" in await ready.text()


def damage(database: Path, index: str) -> None:
    """Overwrite the head of `index`'s first page, as a failing disk or a stray write might: the
    file still opens, and only a write into that index finds it damaged."""
    with closing(sqlite3.connect(database)) as db:
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        root = int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0])
    with database.open("r+b") as out:
        out.seek((root - 1) * page_size)
        out.write(b"\xff" * 16)


async def test_a_database_found_damaged_by_a_ping_refuses_pings_and_fails_readiness_until_mended(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # Every ping's commit failed on the damaged index, but the empty retry after it succeeded: the
    # log said "writes work again", /readyz and the heartbeat said healthy, and each ping was a 503.
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    database = sqlite_file(config)
    first = await aiohttp_client(create_app(config))
    assert await post(first, f"/ping/{key}") == 200
    await first.close()
    damage(database, "pings_by_check")
    client = await aiohttp_client(create_app(config))
    assert await post(client, f"/ping/{key}") == 503
    await asyncio.sleep(1.5)  # past the writer's retry of what it still holds
    async with client.get("/readyz") as ready:
        assert ready.status == 503
        assert f"the database file {database} is damaged" in await ready.text()
    assert await post(client, f"/ping/{key}") == 503
    assert caplog.text.count(f"the database file {database} is damaged") == 1
    assert "database writes work again" not in caplog.text


async def test_a_damaged_database_is_told_with_a_recovery_that_writes_a_new_file(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter
) -> None:
    # It said "recover it with `sqlite3 FILE .recover`": that prints SQL and leaves FILE as damaged
    # as it was, so the restart the message asks for found the same damage.
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    database = sqlite_file(config)
    first = await aiohttp_client(create_app(config))
    assert await post(first, f"/ping/{key}") == 200
    await first.close()
    damage(database, "pings_by_check")
    client = await aiohttp_client(create_app(config))
    assert await post(client, f"/ping/{key}") == 503
    async with client.get("/readyz") as ready:
        text = await ready.text()
    assert ready.status == 503, text
    assert f"`sqlite3 {database} .recover | sqlite3 {database}.recovered`" in text, text


async def test_a_ping_refused_for_a_full_disk_changes_no_state_queues_no_alert_and_its_retry_works(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, tiny_disk: Path
) -> None:
    key, database = new_key(), tiny_disk / "hb.db"
    config = write_config(
        '[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        f'[checks.a]\nkey = "{key}"\nevery = "1h"\nchannels = ["hook"]\n',
        server=f'database = "{database}"',
    )
    client = await aiohttp_client(create_app(config))
    engine = client.app[RUNTIME].engine
    check = engine.checks["a"]
    assert await post(client, f"/ping/{key}") == 200
    flips_before = count(database, "flips")
    filler = fill(tiny_disk)
    acked = 0
    for _ in range(50):  # every ping flips the check (down, recovery); the full disk soon refuses one
        path = f"/ping/{key}" if check.state.status is Status.DOWN else f"/ping/{key}/fail"
        before = check.state
        if await post(client, path, BIG) == 503:
            break
        acked += 1
    else:
        pytest.fail("the full disk never refused a ping")
    assert check.state == before  # the refused ping, in the commit that failed, left no trace
    assert await post(client, path, "again") == 503  # and one while the writer knows it is failing
    assert check.state == before
    filler.unlink()

    async def retried() -> bool:
        return await post(client, path, "retried") == 200

    await until(retried, timeout=15)
    assert check.state.status is not before.status
    await engine.writer.flush()
    with closing(sqlite3.connect(database)) as db:
        payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox")]
        pings = {i for (i,) in db.execute("SELECT id FROM pings")}
    assert count(database, "flips") - flips_before == acked + 1 == len(payloads)
    assert all(p["last_ping_id"] in pings for p in payloads)


async def test_a_refused_upstream_ping_leaves_the_pipeline_step_it_would_arm_as_it_was(
    write_config: ConfigWriter, tiny_disk: Path
) -> None:
    clock = FakeClock()
    steps = f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
    steps += f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\n'
    config = write_config(steps, server=f'database = "{tiny_disk / "hb.db"}"')
    async with running(config, clock) as engine:
        extract, transform = engine.checks["extract"], engine.checks["transform"]
        filler = fill(tiny_disk)
        for _ in range(200):  # every start re-arms the step; the full disk soon refuses one
            before = (extract.state, transform.state)
            now = clock.advance(1)
            try:
                await engine.record(extract, PingRecord(Event(Kind.START, now), now, body=BIG))
            except store.StoreError:
                break
        after = (extract.state, transform.state)
        filler.unlink()  # before the engine stops: its last commits need the space
    assert after == before


async def test_many_pings_refused_during_an_outage_leave_the_writers_retry_list_bounded(tiny_disk: Path) -> None:
    database = tiny_disk / "hb.db"
    writer = await store.Writer.open(database)
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'a', 0, '{}')")
    writer.start()

    def ping(n: int, body: str = "") -> Write:
        return Write(ping=(n, 1, 1.0, 1.0, "log", None, None, body, 0, None, "POST", "", "", None, None))

    filler = fill(tiny_disk)
    try:
        for n in range(1, 200):
            try:
                await writer.submit(ping(n, BIG))
            except store.StoreError:
                break
        refused = [writer.submit(ping(1000 + n)) for n in range(300)]
        for n in range(300):  # and an "alive at" mark a second, all the while
            writer.submit_nowait(Write(statements=[meta_statement("alive_at", str(n))]))
        results = await asyncio.gather(*refused, return_exceptions=True)
        assert all(isinstance(r, store.StoreError) for r in results)
        assert len(writer._carry) == 1  # the last mark, retried until it commits
        filler.unlink()
        await holds(lambda: not writer.failing, timeout=10)
    finally:
        filler.unlink(missing_ok=True)
        await writer.close()
    assert meta(database, "alive_at") == "299"


async def test_pings_queued_behind_a_failing_commit_are_refused_too_and_taken_back_newest_first(
    tiny_disk: Path,
) -> None:
    database = tiny_disk / "hb.db"
    writer = await store.Writer.open(database)
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'a', 0, '{}')")
    writer.start()
    taken_back: list[int] = []

    def ping(n: int) -> Write:
        row: PingRow = (n, 1, 1.0, 1.0, "log", None, None, BIG, 0, None, "POST", "", "", None, None)
        return Write(ping=row, on_refuse=functools.partial(taken_back.append, n))

    filler = fill(tiny_disk)
    try:
        for n in range(1, 200):  # until a commit fails, so the writer knows
            try:
                await writer.submit(ping(n))
            except store.StoreError:
                break
        await asyncio.sleep(0.6)  # the writer's pause after a failed commit: it is idle after it
        taken_back.clear()
        first = writer.submit(ping(1001))
        await asyncio.sleep(0)  # the writer takes it alone and starts its commit
        behind = [writer.submit(ping(1002)), writer.submit(ping(1003))]
        results = await asyncio.gather(first, *behind, return_exceptions=True)
    finally:
        filler.unlink(missing_ok=True)
        await writer.close()
    assert all(isinstance(r, store.StoreError) for r in results)
    assert taken_back == [1003, 1002, 1001]
    assert count(database, "pings WHERE id > 1000") == 0


async def test_a_reload_during_a_full_disk_takes_effect_and_its_rows_land_once_there_is_space(
    aiohttp_client: AiohttpClient, write_config: ConfigWriter, tiny_disk: Path
) -> None:
    key, database = new_key(), tiny_disk / "hb.db"
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n', server=f'database = "{database}"')
    app = create_app(config)
    client = await aiohttp_client(app)
    filler = fill(tiny_disk)
    try:
        await refused_soon(client, f"/ping/{key}/log")
        config.path.write_text(config.path.read_text() + f'[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n')
        # Its commit waits for space; the reload (and the SIGHUP loop that runs it) must not fail.
        assert await control.reload_config(app, "SIGHUP") == (2, [])
    finally:
        filler.unlink()
    await holds(lambda: count(database, "checks") == 2, timeout=10)


async def test_the_deadline_timer_survives_an_error_applying_a_deadline_and_retries_that_check_later(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    async with running(config, clock) as engine:
        check = engine.checks["a"]
        before = check.state

        def broken(*args: object, **kwargs: object) -> NoReturn:
            raise RuntimeError("a bug in the alert payload")

        with monkeypatch.context() as patch:
            patch.setattr(notify_outbox, "payload", broken)
            assert engine.fire_due(clock.advance(2 * 3600)) == 0
        assert "check a: cannot apply its deadline" in caplog.text
        assert check.state == before  # nothing half applied: no flip without its rows
        assert engine.fire_due(clock.advance(3600)) == 1  # retried an hour later
        assert check.state.status is Status.DOWN


def test_a_start_whose_migration_runs_out_of_space_exits_1_though_the_space_came_back(tmp_path: Path) -> None:
    # A migration's index over many flips fails "database or disk is full"; the failed
    # transaction's pages are free again when the start looks: the error itself says full.
    with a_tmpfs(tmp_path, "40m") as disk:
        database = disk / "hb.db"
        config = write_config(tmp_path, database, f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        with Server(config) as server:
            assert server.stop() == 0
        with closing(sqlite3.connect(database, isolation_level=None)) as db:
            db.execute("DROP INDEX flips_counted")
            db.execute("PRAGMA user_version = 8")
            db.execute("BEGIN")
            flips = ((float(n), "up", "down") if n % 2 else (float(n), "down", "up") for n in range(250_000))
            db.executemany("INSERT INTO flips (check_id, at, old, new) VALUES (1, ?, ?, ?)", flips)
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(disk)
        os.truncate(filler, os.path.getsize(filler) - 3 * 1024 * 1024)  # 3 MiB free
        again = Server(config)
        with pytest.raises(RuntimeError):
            again.start(timeout=30)
        assert again.proc is not None
        code = again.proc.wait(10)
        assert code == 1 and "is full" in again.log(), again.log()
