"""The PostgreSQL store (one node): migrations, the writer with group commit, and the reader.

Imported only for a `postgresql://` database (store.backend), so the core install never needs
the driver (the `heartfly[postgres]` extra). The rows and statements are rows.py's, translated
in pgconn; the reads are queries.py's, through pgconn.PgConnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store.api import StoreError
from heartfly.store.groupcommit import GroupCommitter, gather, runs_of
from heartfly.store.inbox import DELETE_INBOX, INSERT_INBOX, NOTIFY
from heartfly.store.pgconn import PgConnection, connect, one_line, to_pg, usable
from heartfly.store.postgres_lease import FENCE, FENCED_WRITER, Fence, NotLeader
from heartfly.store.postgres_schema import MIGRATIONS
from heartfly.store.queries import SqlReader
from heartfly.store.rows import INSERT_FLIP, INSERT_OUTBOX, INSERT_PING, INSERT_RUN, Write, encode_state

log = logging.getLogger(__name__)

# Held while migrating, so two nodes starting together migrate once (a transaction-level lock:
# released by COMMIT, or by the server when the connection dies).
_MIGRATION_LOCK = 0x48_46_6C_79  # "HFly"
_UPDATE_STATE = "UPDATE checks SET state = %s, state_ping_id = %s WHERE id = %s"
# How long a writer whose COMMIT's answer was lost asks whether it was done before it answers 503.
IN_DOUBT_WAIT = 2.0


async def _schema_version(conn: psycopg.AsyncConnection[TupleRow]) -> int | None:
    """The last migration the database has, or None if it has no Heartfly tables."""
    cur = await conn.execute("SELECT to_regclass('heartfly_schema') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM heartfly_schema")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


class NewerSchema(StoreError):
    """The database was migrated by a newer Heartfly: this one must not write to it."""


def _newer(database: PostgresDatabase, version: int) -> StoreError:
    return NewerSchema(
        f"the database {database.shown} has schema version {version}, newer than this Heartfly ({len(MIGRATIONS)})"
    )


async def migrate(conn: psycopg.AsyncConnection[TupleRow], database: PostgresDatabase) -> None:
    """Apply the migrations the database lacks, each in a transaction of its own; refuse a
    database a newer Heartfly wrote."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS heartfly_schema (version INTEGER PRIMARY KEY)")
        version = await _schema_version(conn) or 0
    if version > len(MIGRATIONS):
        raise _newer(database, version)
    for number in range(version + 1, len(MIGRATIONS) + 1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if (await _schema_version(conn) or 0) >= number:  # another node was first
                continue
            await conn.execute(MIGRATIONS[number - 1].encode())
            await conn.execute("INSERT INTO heartfly_schema (version) VALUES (%s)", (number,))
        log.info("database migrated to schema version %d", number)


async def open_reader(database: PostgresDatabase) -> SqlReader:
    """The read side (api.Reader) over a connection of its own; StoreError if the database cannot
    be read, has no Heartfly tables yet, or was written by a newer Heartfly."""
    conn = await connect(database, reader=True)
    try:
        version = await _schema_version(conn)
    except psycopg.Error as exc:
        await conn.close()
        raise StoreError(f"cannot read database {database.shown}: {one_line(exc, database)}") from None
    if version is None or version == 0:
        await conn.close()
        raise StoreError(f"{database.shown} has no Heartfly tables: has `heartfly serve` run with this config?")
    if version > len(MIGRATIONS):
        await conn.close()
        raise _newer(database, version)
    return SqlReader(PgConnection(database, conn))


class Writer(GroupCommitter):
    """The one writer: one connection, a transaction per batch (GroupCommitter). After the server
    dropped the connection (a restart), the next batch connects again; until then commits fail
    and pings answer 503, as with SQLite's failing disk."""

    def __init__(
        self, database: PostgresDatabase, conn: psycopg.AsyncConnection[TupleRow], fence: Fence | None = None
    ) -> None:
        super().__init__()
        self._database = database
        self._conn = conn
        # A leader's writer. Each batch commits only while its term holds the lease
        # (postgres_lease.fenced); after it, every batch is refused with NotLeader.
        self.fence = fence
        self._idle_limit = None if fence is None else fence.lease
        # The transaction of the commit under way (txid_current), and whether its COMMIT was sent:
        # a connection lost then leaves the outcome in doubt, and txid_status tells it.
        self._xid: int | None = None
        self._commit_sent = False
        self._in_doubt: tuple[int, set[int], list[Write]] | None = None  # its xid and writes, kept alive
        # A commit in doubt turned out done after its pings had been refused and taken back in
        # memory: the database holds what memory lacks (a standby's ping, whose inbox row that
        # commit deleted, is sent again by nobody). A cluster leader then leads again from the
        # database (cluster.Node._renew).
        self.behind = False
        self._name = "heartfly" if fence is None else FENCED_WRITER  # a takeover ends a frozen one's sessions

    @classmethod
    async def open(cls, database: PostgresDatabase, fence: Fence | None = None) -> Writer:
        """Connect and migrate; StoreError says what failed (naming the database without its password)."""
        if fence is None:
            conn = await connect(database)
        else:
            conn = await connect(database, idle_limit=fence.lease, name=FENCED_WRITER)
        try:
            await migrate(conn, database)
        except psycopg.Error as exc:
            await conn.close()
            raise StoreError(f"cannot use database {database.shown}: {one_line(exc, database)}") from None
        except BaseException:
            await conn.close()
            raise
        return cls(database, conn, fence)

    def watch_file(self) -> None:
        """SQLite's check of its file; a PostgreSQL database is lost only as failing commits."""

    def start(self) -> None:
        self._start_task()

    async def abandon(self, why: str) -> None:
        """GroupCommitter.abandon, and the connection closed."""
        try:
            await super().abandon(why)
        finally:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()

    async def close(self) -> None:
        """Commit what is queued, stop, and close the connection."""
        try:
            await self._stop_task()
        finally:
            await self._conn.close()

    async def _commit_batch(self, writes: list[Write]) -> None:
        if self._in_doubt is not None:  # a commit whose outcome could not be learned: learn it first
            writes = await self._settle_doubt(writes)
        self._xid, self._commit_sent = None, False
        try:
            await self._commit(writes)
        except psycopg.Error as exc:
            # The next batch starts on a new connection: a connection cut in the middle of a
            # pipelined executemany can be left neither broken nor usable ("cannot exit pipeline
            # mode while busy"), and would refuse every batch after.
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            if self._commit_sent and self._xid is not None:  # the COMMIT went out: it may have been done
                status = await self._status_within(self._xid, IN_DOUBT_WAIT)
                if status == "committed":
                    log.warning("database %s: a commit's answer was lost, but it was committed (%s)",
                                self._database.shown, one_line(exc, self._database))  # fmt: skip
                    return
                if status is None:
                    self._in_doubt = (self._xid, {id(w) for w in writes}, writes)
            raise StoreError(f"database {self._database.shown}: {one_line(exc, self._database)}") from None

    async def _settle_doubt(self, writes: list[Write]) -> list[Write]:
        """The writes to commit now, after the commit in doubt: without its own if it was done
        (a retry would add its rows twice, or fail for ever on their ids); StoreError while its
        outcome cannot be learned."""
        assert self._in_doubt is not None
        xid, ids, doubtful = self._in_doubt
        status = await self._status_within(xid, 0.0)
        if status is None:
            raise StoreError(f"database {self._database.shown}: whether the last commit was done is not known yet")
        self._in_doubt = None
        if status != "committed":
            return writes
        log.warning("database %s: a commit whose answer was lost had been done; it is not repeated",
                    self._database.shown)  # fmt: skip
        # Its pings were answered 503 and taken back in memory: they are in the database all the same.
        self.behind = self.behind or any(w.has_pings for w in doubtful)
        return [w for w in writes if id(w) not in ids]

    async def _status_within(self, xid: int, wait: float) -> str | None:
        """The outcome of transaction `xid` ("committed" or "aborted"), asking on a new connection
        for up to `wait` seconds while the server is not reached or is still ending it; None if it
        is not known by then."""
        give_up = time.monotonic() + wait
        while True:
            try:
                self._conn = await usable(self._conn, self._database, idle_limit=self._idle_limit, name=self._name)
                cur = await self._conn.execute("SELECT txid_status(%s)", (xid,))
                row = await cur.fetchone()
                status = None if row is None or row[0] is None else str(row[0])
                if status in ("committed", "aborted"):
                    return status
                if status is None:  # too old to be known: PostgreSQL has long forgotten it
                    return "aborted"
            except (psycopg.Error, StoreError):
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
            if time.monotonic() >= give_up:
                return None
            await asyncio.sleep(0.05)

    async def _commit(self, writes: list[Write]) -> None:
        self._conn = await usable(self._conn, self._database, idle_limit=self._idle_limit, name=self._name)
        batch = gather(writes)
        conn = self._conn
        # executemany pipelines the rows: one round trip per table, not one per row.
        async with conn.transaction(), conn.cursor() as cur:
            if self.fence is not None:
                node, term, _ = self.fence
                await cur.execute(FENCE, (node, term))
                if (fenced := await cur.fetchone()) is None:
                    raise NotLeader(f"{node} no longer leads: its term {term} is over or its lease has passed")
                self._xid = int(fenced[0])
            else:
                await cur.execute("SELECT txid_current()")
                self._xid = int((await cur.fetchone() or (0,))[0])
            if batch.inbox:
                await cur.executemany(INSERT_INBOX, batch.inbox)
                await cur.execute(NOTIFY)
            if batch.inbox_done:  # one statement for the batch: a busy leader applies thousands a second
                await cur.execute(DELETE_INBOX, (batch.inbox_done,))
            for sql, rows in runs_of(batch.statements):
                query = to_pg(sql)[0].encode()
                if len(rows) == 1:  # most batches: one round trip, where executemany's pipeline takes more
                    await cur.execute(query, rows[0])
                else:
                    await cur.executemany(query, rows)
            for sql, rows in ((INSERT_PING, batch.pings), (INSERT_FLIP, batch.flips), (INSERT_RUN, batch.runs),
                              (INSERT_OUTBOX, batch.outbox)):  # fmt: skip
                if rows:
                    await cur.executemany(to_pg(sql)[0].encode(), rows)
            for sql, values in batch.amends:
                await cur.execute(to_pg(sql)[0].encode(), values)
            if batch.states:
                states = [(encode_state(r.state), r.ping_id, r.check_id) for r in batch.states]
                await cur.executemany(_UPDATE_STATE, states)
            self._commit_sent = True  # leaving the block sends COMMIT
