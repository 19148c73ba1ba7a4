"""The PostgreSQL store (one node): migrations, the writer with group commit, and the reader.

Imported only for a `postgresql://` database (store.backend), so the core install never needs
the driver (the `heartfly[postgres]` extra). The rows and statements are rows.py's, translated
in pgconn; the reads are queries.py's, through pgconn.PgConnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store import api
from heartfly.store.api import StoreError
from heartfly.store.groupcommit import GroupCommitter, gather, runs_of
from heartfly.store.inbox import DELETE_INBOX, INSERT_INBOX, NOTIFY
from heartfly.store.pgconn import PgConnection, connect, one_line, to_pg, usable
from heartfly.store.postgres_lease import FENCE, FENCED_WRITER, Fence, NotLeader
from heartfly.store.postgres_schema import MIGRATIONS
from heartfly.store.reader import SqlReader
from heartfly.store.rows import INSERT_FLIP, INSERT_OUTBOX, INSERT_PING, INSERT_RUN, Write, encode_state

log = logging.getLogger(__name__)

# Held while migrating, so two nodes starting together migrate once (a transaction-level lock:
# released by COMMIT, or by the server when the connection dies).
_MIGRATION_LOCK = 0x48_46_6C_79  # "HFly"
_UPDATE_STATE = "UPDATE checks SET state = %s, state_ping_id = %s WHERE id = %s"
# How long a writer whose COMMIT's answer was lost asks whether it was done before it answers 503.
IN_DOUBT_WAIT = 2.0
_SESSION = (
    "SELECT pg_backend_pid(), backend_start, pg_postmaster_start_time() FROM pg_stat_activity"
    " WHERE pid = pg_backend_pid()"
)
# The outcome of the transaction in doubt, and the server's start; first, the session that ran it
# is ended if it is still there (the server may not have noticed the client go): its transaction,
# if not committed yet, is then rolled back, where it would say "in progress" for as long.
_DONE = """
WITH ended AS (
  SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %(pid)s AND backend_start = %(began)s
)
SELECT txid_status(%(xid)s), pg_postmaster_start_time() FROM (SELECT count(*) FROM ended) AS e
"""


# What a node does to each table (rows.py's statements and queries.py's reads, the lease's, the
# inbox's), and the inbox's counter: checked at start, so that a role that may not is refused
# there, as SQLite's unwritable file is, not by every ping (or the first prune) after READY.
_NEEDED = {
    "checks": ("SELECT", "INSERT", "UPDATE"),
    "meta": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    **{t: ("SELECT", "INSERT", "DELETE") for t in ("pings", "flips", "runs", "alert_attempts", "downtimes", "inbox")},
    "lease": ("SELECT", "UPDATE"),
}
_LACKING = """
SELECT current_user, g.t, g.p FROM unnest(%(tables)s::text[], %(rights)s::text[]) AS g(t, p)
WHERE NOT has_table_privilege(g.t, g.p)
UNION ALL
SELECT current_user, s, 'USAGE' FROM pg_get_serial_sequence('inbox', 'id') AS s
WHERE NOT has_sequence_privilege(s, 'USAGE')
"""


async def _check_rights(conn: psycopg.AsyncConnection[TupleRow], database: PostgresDatabase) -> None:
    """StoreError naming what the connection's role may not do that a node does."""
    needed = [(table, right) for table, rights in _NEEDED.items() for right in rights]
    cur = await conn.execute(_LACKING, {"tables": [t for t, _ in needed], "rights": [r for _, r in needed]})
    if not (rows := await cur.fetchall()):
        return
    lacking: dict[str, list[str]] = {}
    for _, name, right in rows:
        lacking.setdefault(name, []).append(right)
    shown = "; ".join(f"{', '.join(rights)} on {name}" for name, rights in lacking.items())
    raise StoreError(f"cannot use database {database.shown}: role {rows[0][0]} may not {shown}")


def _setup(fence: Fence | None) -> dict[str, Any]:
    """How a writer's connections are made: a leader's named so that a takeover can end its
    sessions if it freezes, and ended by PostgreSQL when idle in a transaction for a lease."""
    return {} if fence is None else {"idle_limit": fence.lease, "name": FENCED_WRITER}


class _Session(NamedTuple):
    pid: int
    began: datetime.datetime
    server_started: datetime.datetime


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
    database a newer Heartfly wrote. A new database is made whole in the transaction that found
    it empty, under the lock: a node starting meanwhile finds it complete, not half made (it
    said it had migrated the rest, step by step, beside the maker's line that it created it)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS heartfly_schema (version INTEGER PRIMARY KEY)")
        version = await _schema_version(conn) or 0
        if version == 0:
            with api.migrating():
                for number, migration in enumerate(MIGRATIONS, start=1):
                    await conn.execute(migration.encode())
                    await conn.execute("INSERT INTO heartfly_schema (version) VALUES (%s)", (number,))
    if version == 0:
        log.info("database %s created (schema version %d)", database.shown, len(MIGRATIONS))
        return
    if version > len(MIGRATIONS):
        raise _newer(database, version)
    if version == len(MIGRATIONS):
        return
    with api.migrating():
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
        self._setup = _setup(fence)
        # The transaction of the commit under way (txid_current), and whether its COMMIT was sent:
        # a connection lost then leaves the outcome in doubt, and txid_status tells it.
        self._xid: int | None = None
        self._commit_sent = False
        self._session: _Session | None = None  # the connection's session, as the server knows it

    @classmethod
    async def open(cls, database: PostgresDatabase, fence: Fence | None = None) -> Writer:
        """Connect and migrate; StoreError says what failed (naming the database without its password)."""
        conn = await connect(database, **_setup(fence))
        try:
            await migrate(conn, database)
            await _check_rights(conn, database)
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
        self._xid, self._commit_sent = None, False
        reused = not self._conn.closed  # from an earlier batch: the server may have ended it since
        try:
            await self._commit(writes)
        except psycopg.Error as exc:
            lost = self._conn.closed or self._conn.broken
            # The next batch starts on a new connection: a connection cut in the middle of a
            # pipelined executemany can be left neither broken nor usable ("cannot exit pipeline
            # mode while busy"), and would refuse every batch after.
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            if reused and lost and not self._commit_sent:
                # A session the server ended while it sat idle (a restart, a failover, an operator's
                # pg_terminate_backend) shows only when used: no COMMIT went out, nothing of this
                # batch is in. Once more, on a new connection, rather than pings answered 503.
                log.info("database %s: the writer's connection had been closed (%s); writing on a new one",
                         self._database.shown, one_line(exc, self._database))  # fmt: skip
                await self._commit_batch(writes)
                return
            # The COMMIT went out: it may have been done. Not known within IN_DOUBT_WAIT: refused, and
            # its flips and alerts are carried to the next commit, which skips those in already.
            xid, session = self._xid, self._session
            if self._commit_sent and xid is not None and session is not None and await self._was_done(xid, session):
                log.warning("database %s: a commit's answer was lost, but it was done (%s)",
                            self._database.shown, one_line(exc, self._database))  # fmt: skip
                return
            raise StoreError(f"database {self._database.shown}: {one_line(exc, self._database)}") from None

    async def _was_done(self, xid: int, session: _Session) -> bool:
        """Whether transaction `xid`, of `session`, committed: asked on a new connection for up to
        IN_DOUBT_WAIT. False when not known by then, or when the server restarted since (after a
        crash a transaction id can be handed out again, and txid_status would answer for another)."""
        give_up = time.monotonic() + IN_DOUBT_WAIT
        while time.monotonic() < give_up:
            try:
                async with asyncio.timeout(max(0.1, give_up - time.monotonic())):
                    self._conn = await self._connection()
                    cur = await self._conn.execute(_DONE, {"xid": xid, "pid": session.pid, "began": session.began})
                    row = await cur.fetchone()
            except (psycopg.Error, StoreError, TimeoutError):
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
                await asyncio.sleep(0.05)
                continue
            assert row is not None
            status, server_started = row
            if server_started != session.server_started:
                return False
            if status in ("committed", "aborted"):
                return bool(status == "committed")
            await asyncio.sleep(0.05)  # in progress: its session, ended by _DONE, is rolling it back
        return False

    async def _connection(self) -> psycopg.AsyncConnection[TupleRow]:
        """The writer's connection, made again if it was dropped, and its session noted."""
        conn = await usable(self._conn, self._database, **self._setup)
        if conn is not self._conn or self._session is None:
            cur = await conn.execute(_SESSION)
            row = await cur.fetchone()
            assert row is not None
            self._session = _Session(*row)
        return conn

    async def _commit(self, writes: list[Write]) -> None:
        self._conn = await self._connection()
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
