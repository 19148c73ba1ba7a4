"""The batch form of the ping endpoint and client ping ids, through a real socket into SQLite."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config
from heartfly.core.pingparse import MAX_BATCH
from heartfly.core.states import REORDER_WINDOW, Event, Kind
from heartfly.server import engine as engine_module
from heartfly.server.engine import PingRecord
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query, sqlite_file
from tests.test_restart import running
from tests.webutil import bearer, login, until

KEY = new_key()
FAIL_KEY = new_key()
FAN_KEY = new_key()
QUICK_KEY = new_key()
PING_KEY = new_key()
Client = TestClient[web.Request, web.Application]
HOUR = 3600.0


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(
        f"""
        [checks.backup]
        key = "{KEY}"
        fail_key = "{FAIL_KEY}"
        every = "1d"
        max_runtime = "2h"
        [checks.quick]
        key = "{QUICK_KEY}"
        every = "1d"
        max_runtime = "1s"
        [checks.shards]
        key = "{FAN_KEY}"
        every = "1d"
        expect = 3
        """,
        server=f'ping_key = "{PING_KEY}"',
    )


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Client:
    result: Client = await aiohttp_client(create_app(config))
    return result


def rows(config: Config, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sqlite_file(config)) as db:
        return list(db.execute(sql))


def night(at: float, uid: str = "") -> list[dict[str, Any]]:
    start = {"status": "start", "ts": at, "run_id": f"r{at:.0f}"}
    end = {"status": "success", "ts": at + 2400, "run_id": f"r{at:.0f}", "message": "dumped 3 GB"}
    if uid:
        start["ping_id"], end["ping_id"] = f"{uid}-start", f"{uid}-end"
    return [start, end]


async def post_batch(client: Client, pings: list[dict[str, Any]], path: str = f"/ping/{KEY}/batch") -> Any:
    return await client.post(path, data=json.dumps({"pings": pings}), headers={"Content-Type": "application/json"})


async def test_a_batch_of_spooled_nights_is_stored_in_event_order_with_no_alert(client: Client, config: Config) -> None:
    base = time.time() - 3 * 86400
    pings = [p for n in (2, 0, 1) for p in night(base + n * 86400)]  # sent out of order: applied in order
    answer = await post_batch(client, pings)
    assert answer.status == 200
    assert (await answer.json()) == {"results": [{"status": "ok"}] * 6}
    stored = rows(config, "SELECT kind, at FROM pings ORDER BY id")
    assert [s[1] for s in stored] == sorted(s[1] for s in stored)  # ids follow event time
    runs = rows(config, "SELECT outcome, ended_at - started_at FROM runs ORDER BY started_at")
    assert runs == [("success", pytest.approx(2400))] * 3
    assert rows(config, "SELECT new, reason FROM flips WHERE new = 'down'") == []
    assert rows(config, "SELECT COUNT(*) FROM outbox") == [(0,)]


async def test_a_batch_whose_run_really_overran_is_judged_once_after_the_whole_batch_and_its_reorder_window(
    client: Client, config: Config
) -> None:
    start = time.time() - 5 * HOUR
    answer = await post_batch(client, [{"status": "start", "ts": start}, {"status": "log", "ts": start + 60}])
    assert answer.status == 200
    downs = "SELECT new, reason, detail FROM flips WHERE new = 'down'"
    assert rows(config, downs) == []  # not yet: a replay's next batch, right behind, may hold the run's end

    async def told() -> bool:
        return bool(rows(config, downs))

    await until(told, timeout=REORDER_WINDOW + 5)
    flips = rows(config, downs)
    assert flips == [("down", "overrun", "still running after 2 h (max_runtime 2 h)")]  # not "after 5h"
    assert rows(config, "SELECT outcome, ended_at - started_at FROM runs") == [("overrun", pytest.approx(2 * HOUR))]


async def test_a_batch_judges_a_deadline_between_its_pings_even_when_the_last_is_recent(
    client: Client, config: Config
) -> None:
    now = time.time()
    pings = [{"status": "start", "ts": now - 1.6}, {"status": "success", "ts": now - 0.1}]  # ran 1.5 s of 1 s
    assert (await post_batch(client, pings, f"/ping/{QUICK_KEY}/batch")).status == 200
    assert rows(config, "SELECT outcome FROM runs") == [("overrun",)]
    assert rows(config, "SELECT reason FROM flips WHERE new = 'down'") == [("overrun",)]


async def test_a_half_invalid_batch_stores_nothing_and_says_which_pings_were_wrong(
    client: Client, config: Config
) -> None:
    good = {"status": "start", "ts": time.time() - 60}
    answer = await post_batch(client, [good, {"status": "bogus"}, good, {"ts": "yesterday"}])
    assert answer.status == 400
    body = await answer.json()
    assert body["error"].startswith("ping 1 of the batch: unknown status")
    assert [r["status"] for r in body["results"]] == ["refused", "invalid", "refused", "invalid"]
    assert "ts must be unix seconds" in body["results"][3]["error"]
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(0,)]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"[1, 2]", 'a batch is a JSON object {"pings": [...]}'),
        (b'{"pings": []}', "a batch needs at least one ping"),
        (b"{nope", "invalid JSON"),
        (json.dumps({"pings": [{}] * 1001}).encode(), "at most 1000 pings"),
    ],
)
async def test_a_malformed_batch_is_a_clear_400(client: Client, config: Config, body: bytes, complaint: str) -> None:
    answer = await client.post(f"/ping/{KEY}/batch", data=body)
    assert answer.status == 400 and complaint in await answer.text()
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(0,)]


async def test_a_batch_to_an_unknown_key_is_not_found_and_get_is_not_allowed(client: Client) -> None:
    assert (await post_batch(client, [{}], f"/ping/{new_key()}/batch")).status == 404
    answer = await client.get(f"/ping/{KEY}/batch")
    assert answer.status == 405 and answer.headers["Allow"] == "POST"


async def test_a_batch_by_name_under_the_ping_key_and_a_fail_key_forcing_its_kind(
    client: Client, config: Config
) -> None:
    assert (await post_batch(client, [{"ts": time.time() - 5}], f"/ping/{PING_KEY}/backup/batch")).status == 200
    assert (await post_batch(client, [{"status": "success"}], f"/ping/{FAIL_KEY}/batch")).status == 200
    assert rows(config, "SELECT kind FROM pings ORDER BY id") == [("success",), ("fail",)]


async def test_a_check_named_batch_is_still_pinged_by_name(write_config: ConfigWriter, aiohttp_client: Any) -> None:
    config = write_config(f'[checks.batch]\nkey = "{new_key()}"\nevery = "1h"\n', server=f'ping_key = "{PING_KEY}"')
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"/ping/{PING_KEY}/batch")).status == 200
    assert rows(config, "SELECT kind FROM pings") == [("success",)]


async def test_a_batch_sent_again_after_its_answer_was_lost_counts_once(client: Client, config: Config) -> None:
    pings = night(time.time() - 86400, uid="0123456789abcdef")
    assert (await (await post_batch(client, pings)).json())["results"] == [{"status": "ok"}] * 2
    again = await post_batch(client, pings)
    assert (await again.json())["results"] == [{"status": "duplicate"}] * 2
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(2,)]
    assert rows(config, "SELECT COUNT(*) FROM runs") == [(1,)]


async def test_a_resent_fan_in_ping_counts_once_so_a_short_batch_stays_short(client: Client, config: Config) -> None:
    url = f"/ping/{FAN_KEY}?rid=b1&ping_id=worker-1-b1-xyz"
    for _ in range(3):  # one worker's success, resent twice after lost answers
        answer = await client.get(url)
        assert (answer.status, await answer.text()) == (200, "OK")
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(1,)]
    state = json.loads(rows(config, "SELECT state FROM checks WHERE name = 'shards'")[0][0])
    assert state.get("status", "new") != "up"  # 1 of 3, not a complete batch


async def test_ping_ids_are_remembered_across_a_restart(config: Config, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"/ping/{KEY}?ping_id=restart-proof-1")).status == 200
    await client.close()
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"/ping/{KEY}?ping_id=restart-proof-1")).status == 200
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(1,)]


@pytest.mark.both_stores
async def test_the_same_ping_id_sent_to_two_checks_is_two_pings_before_and_after_a_restart(
    config: Config, aiohttp_client: Any
) -> None:
    # `?ping_id=$(hostname)-$(date +%s)` from two jobs of one host starting in the same second:
    # the second check's start was answered OK and dropped as a copy of the first's.
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"/ping/{KEY}/start?ping_id=host1-1796500000")).status == 200
    assert (await client.get(f"/ping/{QUICK_KEY}/start?ping_id=host1-1796500000")).status == 200
    await client.close()
    client = await aiohttp_client(create_app(config))  # the ids read back are each their check's
    batch = await client.post(f"/ping/{FAN_KEY}/batch", json={"pings": [{"ping_id": "host1-1796500000"}]})
    assert (await batch.json())["results"] == [{"status": "ok"}]
    assert (await client.get(f"/ping/{KEY}/start?ping_id=host1-1796500000")).status == 200  # a resend: once
    found = query(config, "SELECT c.name, p.kind FROM pings p JOIN checks c ON c.id = p.check_id ORDER BY p.id")
    assert found == [("backup", "start"), ("quick", "start"), ("shards", "success")]


async def test_a_malformed_ping_id_is_a_clear_400(client: Client) -> None:
    answer = await client.get(f"/ping/{KEY}?ping_id=no spaces allowed")
    assert answer.status == 400 and "ping_id must be 8 to 64" in await answer.text()


async def test_the_check_page_lists_replayed_pings_by_their_time_with_their_arrival_beside(
    client: Client, config: Config
) -> None:
    assert (await client.get(f"/ping/{KEY}?ping_id=live-ping-0001")).status == 200
    assert (await post_batch(client, night(time.time() - 86400))).status == 200
    await login(client, config)
    page = await (await client.get("/checks/backup")).text()
    pings = page[page.index('id="pings"') :]
    assert pings.count("received ") == 2  # the two replayed pings show when they arrived
    assert pings.index("dumped 3 GB") > pings.index("k-success")  # the live success is listed first (newest)


async def test_the_same_ping_id_twice_in_one_batch_counts_once(client: Client, config: Config) -> None:
    ping = {"status": "log", "ts": time.time() - 30, "ping_id": "twice-in-one-batch"}
    answer = await post_batch(client, [ping, ping])
    assert (await answer.json())["results"] == [{"status": "ok"}, {"status": "duplicate"}]
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(1,)]


async def test_pages_follow_event_time_and_a_pruned_cursor_still_pages(client: Client, config: Config) -> None:
    token = bearer(config)
    base = time.time() - 3600
    for n in (3, 1, 2, 0):  # sent out of order, one at a time
        assert (await client.get(f"/ping/{KEY}/log?ts={base + n * 60}")).status == 200
    page = await (await client.get("/api/v1/checks/backup/pings?limit=2", headers=token)).json()
    assert [p["id"] for p in page] == [1, 3]  # ts +180, +120
    cursor = page[-1]["id"]
    rest = await (await client.get(f"/api/v1/checks/backup/pings?limit=2&before={cursor}", headers=token)).json()
    assert [p["id"] for p in rest] == [2, 4]  # ts +60, +0
    gone = await (await client.get("/api/v1/checks/backup/pings?before=99", headers=token)).json()
    assert len(gone) == 4  # a cursor whose ping is gone pages by id


@pytest.mark.both_stores  # the page's ids are picked first, then its rows read: on either store's SQL
async def test_pages_follow_event_time_with_pings_of_the_same_time_in_arrival_order(
    client: Client, config: Config
) -> None:
    token = bearer(config)
    base = time.time() - 3600
    sent: list[tuple[float, int]] = []
    for n in (2, 1, 2, 0, 1):  # sent out of order, two pairs at the same event time
        assert (await client.get(f"/ping/{KEY}/log?ts={base + n * 60}")).status == 200
        sent.append((base + n * 60, len(sent)))
    by_arrival = [n for (n,) in query(config, "SELECT id FROM pings ORDER BY id")]  # ids follow arrival
    ids = [by_arrival[i] for _, i in sorted(sent, reverse=True)]  # by event time, a tie's later arrival first
    listed = await (await client.get("/api/v1/checks/backup/pings", headers=token)).json()
    assert [p["id"] for p in listed] == ids
    pages: list[list[int]] = []
    cursor = ""
    while len(pages) < 4:
        page = await (await client.get(f"/api/v1/checks/backup/pings?limit=2{cursor}", headers=token)).json()
        pages.append([p["id"] for p in page])
        if len(page) < 2:
            break
        cursor = f"&before={page[-1]['id']}"
    assert pages == [ids[0:2], ids[2:4], ids[4:]]


async def test_ping_ids_are_remembered_as_long_as_a_reloaded_max_ping_age_takes_pings(
    write_config: ConfigWriter, aiohttp_client: Any
) -> None:
    # max_ping_age raised by a reload took pings two days old, but their ids were still forgotten
    # after the start's hour: a resend of one was applied twice.
    body = f'[checks.backup]\nkey = "{KEY}"\nevery = "1d"\n'
    config = write_config(body, server='max_ping_age = "1h"')
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"/ping/{KEY}?ping_id=kept-two-days")).status == 200
    write_config(body, server='max_ping_age = "2d"')
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    engine = client.app[RUNTIME].engine
    engine.ping_ids.prune(time.time() + 3 * HOUR)  # a housekeeping round three hours on
    assert (await client.get(f"/ping/{KEY}?ping_id=kept-two-days")).status == 200
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(1,)]


async def test_a_batch_resending_a_ping_whose_first_copy_is_still_being_committed_waits_for_that_commit(
    config: Config,
) -> None:
    # The client's first send timed out while its commit was slow; its flush sent the ping again
    # in a batch, answered "duplicate" and 200 at once: had that commit then failed (503, the id
    # forgotten), the client had dropped its spooled copy and the ping was lost.
    async with running(config, FakeClock(time.time())) as engine:
        check, now = engine.checks["backup"], engine.clock.now()
        resent = PingRecord(Event(Kind.SUCCESS, now), now, uid="slow-first-copy")
        first = engine.record(check, resent)
        committed, duplicates = engine.record_batch(check, [resent])
        assert duplicates == [True]
        assert not first.done() and not committed.done()  # a 200 now would say stored what may yet be refused
        await asyncio.gather(first, committed)


async def test_a_batch_from_the_inbox_resending_a_pending_first_copy_keeps_its_row_until_that_copy_is_stored(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster's leader applies a standby's batch (inbox row 7) that resends a ping whose first
    # copy is still being committed. Its row was deleted at once: when that commit then failed
    # (the id forgotten), the ping's only other copy was gone, and the ping was lost.
    async with running(config, FakeClock(time.time())) as engine:
        check, now = engine.checks["backup"], engine.clock.now()
        writer = engine.writer
        real_submit, real_nowait, real_commit = writer.submit, writer.submit_nowait, writer._commit_batch  # type: ignore[attr-defined]
        dropped: list[int] = []
        gate = asyncio.Event()
        fail = [True]

        def note_drops(write: store.Write) -> store.Write:
            dropped.extend(write.inbox_done)
            write.inbox_done = []  # SQLite has no inbox: the row is not there to delete
            return write

        async def commit(writes: Any) -> None:
            if any(w.has_pings for w in writes) and fail:
                fail.clear()
                await gate.wait()
                raise StoreError("the database is locked")
            await real_commit(writes)

        monkeypatch.setattr(writer, "submit", lambda write: real_submit(note_drops(write)))
        monkeypatch.setattr(writer, "submit_nowait", lambda write: real_nowait(note_drops(write)))
        monkeypatch.setattr(writer, "_commit_batch", commit)
        resent = PingRecord(Event(Kind.SUCCESS, now), now, uid="first-copy-fails")
        first = engine.record(check, resent)
        done, duplicates = engine.record_batch(check, [resent], inbox_id=7)
        assert duplicates == [True]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, done, return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results)
        await writer.flush()
        assert 7 not in dropped, "the row of the ping's only copy left was deleted"
        done, duplicates = engine.record_batch(check, [resent], inbox_id=7)  # the row read again
        await done
        assert duplicates == [False]
        assert dropped == [7]


class _CountedId(str):
    """A scoped ping id that counts the comparisons made with it."""

    compared = 0
    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        _CountedId.compared += 1
        return str.__eq__(self, other)


async def test_a_full_batch_of_new_ping_ids_is_told_apart_in_linear_work(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # record_batch looked each id up in a list of those before it, twice since ff7e51a: a spool's
    # batch of 1000 new ids made a million string comparisons (about 0.1 s of the event loop,
    # every other ping waiting). Counted, not timed.
    monkeypatch.setattr(engine_module, "scoped", lambda check_id, uid: _CountedId(f"{check_id}/{uid}"))
    async with running(config, FakeClock(time.time())) as engine:
        check, now = engine.checks["backup"], engine.clock.now()
        spool = [PingRecord(Event(Kind.LOG, now - MAX_BATCH + n), now, uid=f"spooled-{n:05}") for n in range(MAX_BATCH)]
        _CountedId.compared = 0
        done, duplicates = engine.record_batch(check, spool)
        assert _CountedId.compared < 10 * MAX_BATCH
        await done
        assert duplicates == [False] * MAX_BATCH


@pytest.mark.parametrize("with_fresh", [False, True])
async def test_a_batch_resending_a_first_copy_whose_commit_fails_answers_503_and_stores_nothing(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch, with_fresh: bool
) -> None:
    # The other half of ff7e51a's promise: the first copy's commit fails (503, its id forgotten),
    # so the batch that resent it must fail too, store nothing of itself, and its resend take all.
    assert client.app is not None
    rt = client.app[RUNTIME]
    writer: Any = rt.writer  # the SQLite writer (GroupCommitter): its commit is replaced below
    engine = rt.engine
    real_commit, real_batch = writer._commit_batch, engine.record_batch
    gate, committing, batched = asyncio.Event(), asyncio.Event(), asyncio.Event()
    fail = [True]

    async def commit(writes: list[store.Write]) -> None:
        if fail and any(w.has_pings for w in writes):
            fail.clear()
            committing.set()
            await gate.wait()
            raise StoreError("the database is locked")
        await real_commit(writes)

    def record_batch(*args: Any) -> Any:
        batched.set()
        return real_batch(*args)

    monkeypatch.setattr(writer, "_commit_batch", commit)
    monkeypatch.setattr(engine, "record_batch", record_batch)
    first = asyncio.ensure_future(client.get(f"/ping/{KEY}?ping_id=first-copy-fails"))
    await committing.wait()
    pings: list[dict[str, Any]] = [{"ping_id": "first-copy-fails"}]
    if with_fresh:
        pings.append({"status": "log", "ping_id": "fresh-in-the-batch"})
    resent = asyncio.ensure_future(post_batch(client, pings))
    await batched.wait()
    gate.set()
    assert [(await first).status, (await resent).status] == [503, 503]
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(0,)]
    while writer.failing:  # the writer finds out that writes work again
        await writer.flush()
    again = await post_batch(client, pings)
    assert await again.json() == {"results": [{"status": "ok"}] * len(pings)}
    assert rows(config, "SELECT COUNT(*) FROM pings") == [(len(pings),)]


class Ticking(FakeClock):
    """A clock a millisecond later at each reading: two readings are two instants."""

    def now(self) -> float:
        return self.advance(0.001)


async def test_a_batch_ping_without_ts_is_dated_at_the_instant_the_batch_is_received(
    aiohttp_client: Any, config: Config
) -> None:
    # at and received_at agree, as for a single ping without ts: no ping is dated apart from its arrival
    client = await aiohttp_client(create_app(config, clock=Ticking(time.time())))
    pings: list[dict[str, Any]] = [{"status": "start"}, {"status": "success", "ts": time.time() - 60}]
    assert (await post_batch(client, pings)).status == 200
    (start_at, start_received), (end_at, end_received) = rows(config, "SELECT at, received_at FROM pings ORDER BY kind")
    assert start_at == start_received == end_received and end_at < end_received
