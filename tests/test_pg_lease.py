"""The leader lease against a real PostgreSQL: nodes are Lease objects, each on its own connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from heartfly.core.dburl import PostgresDatabase
from heartfly.store import postgres_lease
from heartfly.store.pgconn import connect
from heartfly.store.postgres import migrate
from heartfly.store.postgres_lease import Lease, NotLeader
from tests import pgserver

Nodes = Callable[..., Lease]


@pytest.fixture
async def database(pg_server: pgserver.PgServer) -> PostgresDatabase:
    database = PostgresDatabase(pg_server.database())
    conn = await connect(database)
    try:
        await migrate(conn, database)
    finally:
        await conn.close()
    return database


@pytest.fixture
async def node(database: PostgresDatabase) -> AsyncIterator[Nodes]:
    """Makes nodes (Lease objects) on the test's database; closes them after."""
    made: list[Lease] = []

    def make(name: str, length: float = 0.5) -> Lease:
        made.append(Lease(database, name, length))
        return made[-1]

    yield make
    for lease in made:
        await lease.close()


def lease_row(database: PostgresDatabase) -> tuple[str, int]:
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT holder, term FROM lease").fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


@contextlib.asynccontextmanager
async def lease_row_locked(database: PostgresDatabase) -> AsyncIterator[None]:
    """The lease row locked by another session meanwhile: a renewal waits behind it."""
    blocker = await connect(database)
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM lease FOR UPDATE")
            yield
    finally:
        await blocker.close()


async def wait_out(lease: Lease) -> None:
    """Until the lease `lease` holds has passed by the database's clock (a little after it has by
    the node's own)."""
    await asyncio.sleep(lease.length + 0.05)


async def test_of_two_nodes_exactly_one_leads(node: Nodes, database: PostgresDatabase) -> None:
    a, b = node("a"), node("b")
    assert await a.acquire_or_renew() is True
    assert await b.acquire_or_renew() is False
    assert (a.is_leader, b.is_leader) == (True, False)
    assert (a.term, b.term) == (1, None)
    assert lease_row(database) == ("a", 1)


async def test_the_holder_renews_in_the_same_term_and_the_expiry_moves_on(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a", length=0.6), node("b", length=0.6)
    assert await a.acquire_or_renew()
    for _ in range(4):  # renewed for longer than the lease lasts: it never passes
        await asyncio.sleep(0.3)
        assert await a.acquire_or_renew() and a.term == 1
        assert not await b.acquire_or_renew()
    conn = await connect(database)
    try:
        holding = await postgres_lease.read(conn)
    finally:
        await conn.close()
    assert (holding.holder, holding.term) == ("a", 1) and 0.3 < holding.expires_in <= 0.6


async def test_when_the_holder_stops_renewing_another_takes_over_after_the_lease_in_a_higher_term(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a"), node("b")
    assert await a.acquire_or_renew()
    assert not await b.acquire_or_renew()
    await wait_out(a)
    assert not a.is_leader  # by its own clock, before anyone took over
    assert await b.acquire_or_renew() and b.term == 2
    assert not await a.acquire_or_renew() and not a.is_leader
    assert lease_row(database) == ("b", 2)


async def test_a_holder_whose_lease_passed_unclaimed_takes_it_again_in_a_new_term(node: Nodes) -> None:
    a = node("a")
    assert await a.acquire_or_renew() and a.term == 1
    await wait_out(a)
    assert await a.acquire_or_renew() and a.term == 2  # its writes of term 1 are fenced off


async def test_a_released_lease_is_taken_at_once_in_a_higher_term(node: Nodes, database: PostgresDatabase) -> None:
    a, b = node("a", length=30), node("b", length=30)
    assert await a.acquire_or_renew()
    await a.release()
    assert not a.is_leader
    assert await b.acquire_or_renew() and b.term == 2
    assert lease_row(database) == ("b", 2)


async def test_a_renewal_answered_after_the_lease_could_have_passed_counts_as_not_leading(
    node: Nodes, database: PostgresDatabase
) -> None:
    a = node("a", length=0.3)
    assert await a.acquire_or_renew()
    async with lease_row_locked(database):  # the renewal waits behind it (a stalled database)
        renewal = asyncio.create_task(a.acquire_or_renew())
        await asyncio.sleep(0.5)
    assert await renewal is False and not a.is_leader
    await wait_out(a)  # a retry may have renewed it in the database all the same: a held it, and nobody led
    assert await a.acquire_or_renew() and a.is_leader  # answered in time: it leads again


async def test_a_release_while_a_renewal_is_under_way_leaves_the_node_not_leading(
    node: Nodes, database: PostgresDatabase
) -> None:
    # The release waits behind the renewal on the lease's connection, then frees the lease: the
    # renewal's answer must not make the node lead again (it would fire and send beside the next).
    a = node("a", length=30)
    assert await a.acquire_or_renew()
    async with lease_row_locked(database):  # the renewal waits behind it
        renewal = asyncio.create_task(a.acquire_or_renew())
        await asyncio.sleep(0.1)
        release = asyncio.create_task(a.release())
        await asyncio.sleep(0.1)
    assert await renewal is False
    await release
    assert not a.is_leader and a.term is None
    b = node("b", length=30)
    assert await b.acquire_or_renew()  # freed in the database, too


async def test_a_leaders_fenced_write_commits_and_a_stale_leaders_is_refused_and_leaves_nothing(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a"), node("b")
    assert await a.acquire_or_renew()
    writes = await connect(database)  # the writer's connection, not the lease's
    try:
        async with a.fenced(writes) as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('by', 'a in term 1')")
        stale_term = a.term
        assert stale_term == 1
        await wait_out(a)
        assert await b.acquire_or_renew() and b.term == 2
        with pytest.raises(NotLeader):  # by its own clock it knows
            a.fenced(writes)
        # A frozen node that still believes it leads writes with its old term: the database refuses.
        with pytest.raises(NotLeader, match="term 1 is over"):
            async with postgres_lease.fenced(writes, "a", stale_term) as conn:
                await conn.execute("INSERT INTO meta (key, value) VALUES ('stale', 'a in term 1')")
        async with b.fenced(writes) as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('by2', 'b in term 2')")
        cur = await writes.execute("SELECT key, value FROM meta ORDER BY key")
        assert await cur.fetchall() == [("by", "a in term 1"), ("by2", "b in term 2")]
    finally:
        await writes.close()


async def test_a_takeover_while_the_lease_lasts_leaves_a_fenced_write_under_way_alone(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a", length=5.0), node("b", length=5.0)
    assert await a.acquire_or_renew()
    writes = await connect(database, name=postgres_lease.FENCED_WRITER)
    try:
        async with a.fenced(writes) as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('slow', 'a')")
            assert not await asyncio.wait_for(b.acquire_or_renew(), 2.0)  # not held back, and not taken
    finally:
        await writes.close()
    assert lease_row(database) == ("a", 1)
    with psycopg.connect(database.url) as check:
        assert check.execute("SELECT value FROM meta WHERE key = 'slow'").fetchall() == [("a",)]


async def test_a_fenced_write_still_open_when_the_lease_passes_is_ended_by_the_takeover_and_commits_nothing(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a", length=0.3), node("b", length=0.3)
    assert await a.acquire_or_renew()
    # A leader's writer's name, without its idle limit: the takeover itself ends the frozen transaction.
    writes = await connect(database, name=postgres_lease.FENCED_WRITER)

    async def frozen_writer() -> None:
        async with a.fenced(writes) as conn, conn.cursor() as cur:
            # executemany pipelines: the server never counts the session idle, so no idle limit would end it
            await cur.executemany("INSERT INTO meta (key, value) VALUES (%s, 'a')", [("slow1",), ("slow2",)])
            await asyncio.sleep(2.0)  # frozen: the lease passes while the transaction is open

    try:
        writing = asyncio.create_task(frozen_writer())
        await asyncio.sleep(0.4)
        takeover = asyncio.create_task(b.acquire_or_renew())
        await asyncio.sleep(0.1)
        assert not takeover.done()  # it waits for the row a while before looking for a frozen leader
        assert await asyncio.wait_for(takeover, 3.0) and b.term == 2
        with pytest.raises(psycopg.Error, match="administrator command"):
            await writing
    finally:
        await writes.close()
    assert lease_row(database) == ("b", 2)
    with psycopg.connect(database.url) as check:
        assert check.execute("SELECT count(*) FROM meta WHERE key LIKE 'slow%'").fetchone() == (0,)


async def test_a_role_that_may_not_end_a_frozen_leaders_session_says_so_once_and_waits_for_it(
    node: Nodes, database: PostgresDatabase, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_lease, "_said_at", {})
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE heartfly_plain; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT SELECT, UPDATE ON lease TO heartfly_plain")
    a = node("a", length=0.3)
    assert await a.acquire_or_renew()
    writes, plain = await connect(database, name=postgres_lease.FENCED_WRITER), await connect(database)
    await plain.execute("SET ROLE heartfly_plain")  # may not end a superuser's session

    async def frozen_writer() -> None:
        async with a.fenced(writes) as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('late', 'a')")
            await asyncio.sleep(2.0)  # frozen past the lease, then it wakes and commits

    try:
        writing = asyncio.create_task(frozen_writer())
        await asyncio.sleep(0.4)
        assert await postgres_lease.acquire_or_renew(plain, "b", 0.3) is None
        assert await postgres_lease.acquire_or_renew(plain, "b", 0.3) is None
        await writing
        assert await postgres_lease.acquire_or_renew(plain, "b", 0.3) == 2  # once it ended
    finally:
        await writes.close()
        await plain.close()
    told = [r.getMessage() for r in caplog.records if "cannot end a former leader's session" in r.getMessage()]
    assert len(told) == 1 and "the takeover waits for it to end" in told[0], told


async def test_a_takeover_blocked_by_a_lock_that_is_no_leaders_says_so_and_does_not_hang(
    node: Nodes, database: PostgresDatabase, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_lease, "_said_at", {})
    a, b = node("a", length=0.3), node("b", length=0.3)
    assert await a.acquire_or_renew()
    await wait_out(a)
    blocker = await connect(database)  # an operator's transaction on the lease table, left open
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM lease FOR UPDATE")
            for _ in range(2):
                assert not await asyncio.wait_for(b.acquire_or_renew(), 2.0)
    finally:
        await blocker.close()
    said = [r.getMessage() for r in caplog.records if "its row is locked" in r.getMessage()]
    assert len(said) == 1, said  # once, not every half second
    assert await b.acquire_or_renew() and b.term == 2


async def test_a_fenced_transaction_left_idle_for_a_lease_is_ended_and_a_takeover_goes_ahead(
    node: Nodes, database: PostgresDatabase
) -> None:
    a, b = node("a", length=0.5), node("b", length=0.5)
    assert await a.acquire_or_renew()
    writes = await connect(database, idle_limit=a.length)  # with a leader's writer's limit, and no other's name

    async def frozen_writer() -> None:
        async with a.fenced(writes) as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('frozen', 'a')")
            await asyncio.sleep(0.8)  # frozen: nothing more is sent

    try:
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout"):
            await frozen_writer()
        assert await asyncio.wait_for(b.acquire_or_renew(), 2.0) and b.term == 2  # not held back
    finally:
        await writes.close()
    assert lease_row(database) == ("b", 2)
    with psycopg.connect(database.url) as check:
        assert check.execute("SELECT count(*) FROM meta WHERE key = 'frozen'").fetchone() == (0,)


async def test_nodes_starting_in_the_same_instant_elect_exactly_one(node: Nodes) -> None:
    nodes = [node(f"n{i}", length=30) for i in range(6)]
    for round_ in range(10):
        won = await asyncio.gather(*(n.acquire_or_renew() for n in nodes))
        assert won.count(True) == 1, won
        [leader] = [n for n in nodes if n.is_leader]
        assert leader.term == round_ + 1
        await leader.release()


async def test_a_node_id_and_a_positive_length_are_needed(node: Nodes, database: PostgresDatabase) -> None:
    conn = await connect(database)
    try:
        with pytest.raises(ValueError, match="node id"):
            await postgres_lease.acquire_or_renew(conn, "", 1.0)
        with pytest.raises(ValueError, match="more than 0 s"):
            await postgres_lease.acquire_or_renew(conn, "a", 0)
    finally:
        await conn.close()


async def test_a_second_process_with_the_same_node_id_cannot_take_a_lease_that_has_not_passed(
    node: Nodes, database: PostgresDatabase
) -> None:
    first, second = node("same", length=2.0), node("same", length=2.0)
    assert await first.acquire_or_renew() and first.term == 1
    assert not await second.acquire_or_renew()  # same id, but it does not hold term 1
    assert await first.acquire_or_renew() and first.term == 1  # the holder renews undisturbed
    assert lease_row(database) == ("same", 1)


async def test_a_released_lease_is_taken_at_once_in_a_new_term(node: Nodes, database: PostgresDatabase) -> None:
    a, b = node("a", length=5.0), node("b", length=5.0)
    assert await a.acquire_or_renew() and a.term == 1
    await a.release()
    assert not a.is_leader
    assert await b.acquire_or_renew() and b.term == 2
    holding = await b.holding()
    assert holding.holder == "b" and holding.term == 2 and holding.expires_in > 4
    await b.release()
    released = await b.holding()
    assert released.expires_in == float("-inf")  # read without "cannot subtract infinite timestamps"
