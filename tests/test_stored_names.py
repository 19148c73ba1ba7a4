"""Checks made, renamed and deleted through the API: which row, and so which history, goes by
each name, on one node and on a cluster's nodes as they follow each other's changes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from heartfly.core.states import Status
from heartfly.core.stored_checks import META_PREFIX, StoredCheck
from heartfly.server.engine import Engine
from heartfly.store import groupcommit
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.web import control, stored
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.test_hc_api import made, rw, start


async def test_a_timed_pause_of_a_renamed_check_still_ends(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    # The rename now keeps the check's state (paused too), but the pause's end is kept by name.
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    check = await made(client, key, name="nightly", timeout=600)
    engine = app[RUNTIME].engine
    await control.pause(app, engine.checks["nightly"], time.time() + 1.0)
    resp = await client.post(f"/api/v3/checks/{check['uuid']}", json={"slug": "nightly-db"}, headers=rw(key))
    assert resp.status == 200
    renamed = engine.checks["nightly-db"]
    assert renamed.state.status is Status.PAUSED  # its history (its pause) went with it
    await asyncio.sleep(1.5 + control.IN_STEP)
    assert renamed.state.status is not Status.PAUSED, "the renamed check's timed pause never ends"
    await client.close()


async def _as_another_node(app: Any, *statements: store.Statement) -> None:
    await app[RUNTIME].writer.submit(store.Write(statements=list(statements)))


def _encoded(check: StoredCheck, name: str) -> StoredCheck:
    return StoredCheck(name, check.origin, check.table, check.created_at, check.title)


def _fails_once(app: Any, monkeypatch: pytest.MonkeyPatch, sql_part: str, *, committed: bool = False) -> list[bool]:
    """The writer's next commit of a statement holding `sql_part` fails (StoreError), after
    committing it if `committed` (a commit in doubt: the answer was lost); the list says if it did."""
    writer = app[RUNTIME].writer
    real = writer._commit_batch
    failed: list[bool] = []

    async def fails_once(writes: Any) -> None:
        if failed or not any(sql_part in str(statement) for w in writes for statement in w.statements):
            return await real(writes)  # type: ignore[no-any-return]
        failed.append(True)
        if committed:
            await real(writes)
        raise StoreError("the database is locked")

    monkeypatch.setattr(writer, "_commit_batch", fails_once)
    return failed


async def _renamed_elsewhere(app: Any, check: StoredCheck, old: str, new: str) -> None:
    """Another node renames a stored check, as stored.rename commits it."""
    await _as_another_node(
        app,
        store.delete_meta_statement(META_PREFIX + old),
        store.meta_statement(META_PREFIX + new, _encoded(check, new).encode()),
        store.tombstone_statement(new),
        store.rename_check_statement(old, new),
    )


async def test_a_follower_keeps_track_of_a_check_deleted_and_taken_over_by_a_rename_between_two_polls(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Another node: DELETE a, then rename b -> a, both before this node's next poll of the stored checks.
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    await made(client, key, name="a", timeout=600)
    await made(client, key, name="b", timeout=600)
    engine = rt.engine
    first, b_id = engine.checks["a"], engine.checks["b"].id
    b = rt.stored["b"]
    await _as_another_node(app, store.delete_meta_statement(META_PREFIX + "a"))  # delete a
    await _renamed_elsewhere(app, b, "b", "a")
    await stored._follow_once(app, set())
    assert engine.checks["a"].id == b_id != first.id, "the check renamed onto the name lost its history"
    assert first.id in engine.removed_ids(), "the deleted check is forgotten: not removed, its history never pruned"
    await client.close()


@pytest.mark.parametrize("store_backend", ["postgres"], indirect=True)
async def test_a_rename_while_a_term_begins_is_followed_by_the_new_terms_engine(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    check = await made(client, key, name="a", timeout=600)
    first_id = rt.engine.checks["a"].id
    node = rt.cluster
    assert node is not None and node.leading
    real_load = Engine.load
    renamed: list[int] = []

    async def load(self: Engine, db: Any, **kw: Any) -> None:
        await real_load(self, db, **kw)
        if not kw.get("view") and not renamed:  # the new term's engine has read the rows: a rename now
            resp = await client.post(f"/api/v3/checks/{check['uuid']}", json={"slug": "b"}, headers=rw(key))
            renamed.append(resp.status)

    monkeypatch.setattr(Engine, "load", load)
    await node._end_term("a test ends it")  # the run loop begins the next term
    for _ in range(100):
        if node.leading and renamed:
            break
        await asyncio.sleep(0.1)
    assert renamed == [200] and node.leading
    await asyncio.sleep(0.5)
    engine = rt.engine
    assert not engine.writer.failing, "the new term's writer fails for good (INSERT of a name the rename took)"
    assert engine.checks["b"].id == first_id, "the renamed check lost its history on the new leader"
    await client.close()


async def test_a_restart_names_no_tombstone_as_a_check_gone_from_the_config(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # Another node deleted x and made it again; this one stopped before it followed the change.
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    await made(client, key, name="x", timeout=600)
    again = StoredCheck("x", "api", {"key": "5a9e0d7c-1111-4222-8333-444455556666", "every": "1d"}, time.time())
    await _as_another_node(app, store.meta_statement(META_PREFIX + "x", again.encode()), store.tombstone_statement("x"))
    await client.close()
    caplog.clear()
    caplog.set_level("INFO", logger="heartfly.server.engine")
    restarted, _, _ = await start(aiohttp_client, write_config)
    assert not [r.getMessage() for r in caplog.records if "deleted:" in r.getMessage()]
    await restarted.close()


@pytest.mark.parametrize("store_backend", ["postgres"], indirect=True)
async def test_a_term_begun_before_this_node_followed_a_rename_keeps_the_renamed_checks_history(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    await made(client, key, name="a", timeout=600)
    first_id = rt.engine.checks["a"].id
    node = rt.cluster
    assert node is not None and node.leading
    real_follow = stored._follow_once

    async def not_yet(app: Any, logged: set[str]) -> None:
        pass

    monkeypatch.setattr(stored, "_follow_once", not_yet)  # this node has not polled yet
    a = rt.stored["a"]
    await _renamed_elsewhere(app, a, "a", "b")
    await node._end_term("a test ends it")  # the run loop begins the next term, on the config with a
    for _ in range(100):
        if node.leading:
            break
        await asyncio.sleep(0.1)
    await real_follow(app, set())
    assert rt.engine.checks["b"].id == first_id, "the renamed check lost its history on the new leader"
    await client.close()


@pytest.mark.both_stores
async def test_a_new_check_whose_name_another_node_gave_a_row_meanwhile_does_not_stop_the_writes(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The row read that tells the engine which row goes by a name fails (or came just before
    # another node's rename): the INSERT of that name failed every write after it, for good.
    client, _, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    insert = "INSERT INTO checks (id, name, created_at, removed_at, state) VALUES (9999, 'later', 0, NULL, '{}')"
    await _as_another_node(app, (insert, ()))

    async def unreadable(names: Any) -> dict[str, int]:
        raise StoreError("the read failed")

    assert rt.engine._db is not None
    monkeypatch.setattr(rt.engine._db, "read_check_ids", unreadable)
    config = rt.config.path
    config.write_text(config.read_text() + f'\n[checks.later]\nkey = "{new_key()}"\nevery = "1h"\n')
    assert (await control.reload_config(app))[1] == []
    assert (await client.get(f"/ping/{rt.config.checks['later'].key}")).status == 200
    assert not rt.engine.writer.failing
    await client.close()


@pytest.mark.both_stores
async def test_a_rename_tried_again_after_a_failed_answer_keeps_the_checks_history(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit of a rename went through but its answer was lost (a commit in doubt): the client
    # is told 503, the node still serves the old name, and the client tries the rename again.
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    check = await made(client, key, name="nightly", timeout=600)
    assert (await client.get(f"/ping/{check['uuid']}/fail")).status == 200
    await control.pause(app, rt.engine.checks["nightly"], time.time() + 3600)
    first_id = rt.engine.checks["nightly"].id
    failed = _fails_once(app, monkeypatch, "SET name", committed=True)
    rename = {"slug": "nightly-db"}
    first = await client.post(f"/api/v3/checks/{check['uuid']}", json=rename, headers=rw(key))
    assert first.status == 503 and failed
    again = await client.post(f"/api/v3/checks/{check['uuid']}", json=rename, headers=rw(key))
    assert again.status == 200, await again.text()
    assert rt.engine.checks["nightly-db"].id == first_id, "the check tried again lost its history"
    assert rt.engine.checks["nightly-db"].state.status is Status.PAUSED
    await client.close()
    restarted, _, _ = await start(aiohttp_client, write_config)
    got = await (await restarted.get(f"/api/v3/checks/{check['uuid']}", headers=rw(key))).json()
    assert (got["slug"], got["status"], got["n_pings"]) == ("nightly-db", "paused", 1)
    ends = await restarted.app[RUNTIME].reader.read_meta_prefix("pause_until:")
    assert list(ends) == ["pause_until:nightly-db"], "the timed pause of the check tried again never ends"
    await restarted.close()


async def test_a_reload_that_adds_many_checks_inserts_them_in_one_run_of_statements(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each run of one SQL text is one executemany (groupcommit.runs_of); on PostgreSQL a lone
    # statement is a round trip of its own: 100k new checks, each a tombstone then an INSERT, took
    # 200k round trips in the commit every ping waits behind.
    client, _, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    writer = rt.engine.writer
    queued: list[store.Write] = []
    real = writer.submit_nowait

    def keep(write: store.Write) -> None:
        queued.append(write)
        real(write)

    monkeypatch.setattr(writer, "submit_nowait", keep)
    config = rt.config.path
    added = "".join(f'\n[checks.many-{i}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(50))
    config.write_text(config.read_text() + added)
    assert (await control.reload_config(app))[1] == []
    assert all(f"many-{i}" in rt.engine.checks for i in range(50))
    texts = [sql for w in queued for sql, _ in groupcommit.runs_of(w.statements)]
    assert len(texts) == len(set(texts)), "the new checks' statements alternate: one round trip each on PostgreSQL"
    await client.close()


async def test_an_api_change_answered_503_is_not_committed_later(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer retried every failed write without pings: a create told 503 was made all the same
    # once the database worked again, unseen by the node (and clashed with the file at a restart).
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    failed = _fails_once(app, monkeypatch, META_PREFIX + "told-503")
    resp = await client.post("/api/v3/checks/", json={"name": "told-503", "timeout": 600}, headers=rw(key))
    assert resp.status == 503 and failed
    await app[RUNTIME].writer.flush()
    assert await app[RUNTIME].reader.read_meta_prefix(META_PREFIX + "told-503") == {}
    await client.close()
    restarted, _, _ = await start(aiohttp_client, write_config)
    listed = await (await restarted.get("/api/v3/checks/", headers=rw(key))).json()
    assert "told-503" not in [c["slug"] for c in listed["checks"]]
    await restarted.close()
