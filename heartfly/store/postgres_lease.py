"""The leader lease: one row in PostgreSQL (table `lease`, postgres_schema migration 2) saying which
node leads, in which term, until when (server/cluster.py keeps it).

- Time is the database's (clock_timestamp()), never a node's: the nodes' clocks may disagree.
- The term only grows: each new holding (a takeover, or a holder whose lease had passed) is
  term + 1, so a term names one holding for ever and is the fencing token.
- A node leads only while a renewal it *sent* less than `length` seconds ago (its monotonic
  clock) succeeded. The database's expiry is its own clock at the update plus `length`, so that
  is never earlier: a node that believes it leads cannot overlap with a node that took over.
- Fencing backs this up where a node's belief is wrong (a frozen process, a stalled network):
  a leader's write runs in a transaction that first share-locks the lease row at its term
  (`fenced`); it is refused once the term has moved on or the lease has passed, and a takeover
  waits for a fenced transaction in progress to end, so none commits after one.
- A fenced transaction still open once the lease has passed belongs to a leader frozen in the
  middle of it (a stopped process, a paused VM). A takeover does not wait for it to wake: it ends
  that session (pg_terminate_backend), and the transaction commits nothing. A leader's writer
  also lets PostgreSQL end a transaction left idle for a lease (Fence), for roles that may not end
  another's session; that alone misses a client frozen inside a pipeline, which is never idle.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store.api import StoreError
from heartfly.store.pgconn import one_line, usable

Connection = psycopg.AsyncConnection[TupleRow]

log = logging.getLogger(__name__)

# One statement, so two nodes asking at once are serialized by the row lock: the second sees the
# first's row (READ COMMITTED re-checks WHERE on it) and finds it held. `now` is taken once.
_ACQUIRE = """
WITH now AS (SELECT clock_timestamp() AS t)
UPDATE lease SET
    term = CASE WHEN lease.holder = %(node)s AND lease.term = %(term)s AND lease.expires_at > now.t
                THEN lease.term ELSE lease.term + 1 END,
    holder = %(node)s,
    expires_at = now.t + make_interval(secs => %(length)s)
FROM now
WHERE lease.id = 1 AND (lease.expires_at <= now.t OR (lease.holder = %(node)s AND lease.term = %(term)s))
RETURNING lease.term
"""
# A clean stop's lease expires at -infinity (status: "stopped cleanly"); one given up by a node that
# goes on running (it cannot fire, or could not begin to lead) or that dies passes now.
_RELEASE = (
    "UPDATE lease SET expires_at = CASE WHEN %s THEN '-infinity'::timestamptz ELSE clock_timestamp() END"
    " WHERE id = 1 AND holder = %s AND term = %s"
)
_READ = (  # a released lease expires at -infinity, which timestamp arithmetic refuses
    "SELECT holder, term, CASE WHEN isfinite(expires_at)"
    " THEN EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 ELSE '-infinity'::float8 END"
    " FROM lease WHERE id = 1"
)
# FOR SHARE: a takeover's UPDATE waits until the fenced transaction ends.
# Its row is the transaction's id (txid_current): should the COMMIT's answer be lost, the writer
# asks txid_status whether it was done.
FENCE = (
    "SELECT txid_current() FROM lease"
    " WHERE id = 1 AND holder = %s AND term = %s AND expires_at > clock_timestamp() FOR SHARE"
)
# How long a takeover waits for the lease row before looking for a frozen leader's transaction.
TAKEOVER_WAIT = 0.25
# A leader's writer's application_name: what tells its sessions from any other's.
FENCED_WRITER = "heartfly-fenced-writer"
# End each leader's writer session that holds a fenced transaction (FENCE's RowShareLock on this
# database's lease table; pg_locks lists every database's) although the lease has passed: checked
# and ended in one statement, so a pid reused meanwhile is never hit.
_END_STALE = """
SELECT l.pid, pg_terminate_backend(l.pid) FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = 'lease'::regclass AND l.mode = 'RowShareLock' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.pid <> pg_backend_pid()
  AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid AND a.application_name = %(writer)s)
  AND EXISTS (SELECT 1 FROM lease WHERE id = 1 AND expires_at <= clock_timestamp())
"""
_LOCK_WAIT = "SELECT set_config('lock_timeout', %s, false)"
_said_at: dict[str, float] = {}  # what a standby trying every half second has said, and when


class Fence(NamedTuple):
    """What a leader's writer commits under: its node id and term, and the lease's length, which
    is also how long PostgreSQL lets one of its transactions sit idle. A leader frozen inside a
    fenced transaction (a stopped process, a paused VM) would otherwise hold the lease row, and so
    every takeover, for as long as it stays frozen; the ended transaction commits nothing."""

    node_id: str
    term: int
    lease: float


def _uptime() -> float:
    """Seconds since boot, suspend included (CLOCK_BOOTTIME): a machine suspended past its lease
    wakes knowing it; time.monotonic() stands still during a suspend."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class NotLeader(StoreError):
    """A fenced write by a node whose term is over, or whose lease has passed."""


@dataclass(frozen=True, slots=True)
class Holding:
    holder: str  # '' before anyone held it
    term: int  # 0 before anyone held it
    expires_in: float  # seconds by the database's clock; <= 0 once passed (-inf when released)


async def acquire_or_renew(conn: Connection, node_id: str, length: float, term: int | None = None) -> int | None:
    """Take the lease for `length` seconds if it is free or has passed (a new term), or renew it
    if `node_id` holds it in `term` (the same term). The term held, or None if it is held: by
    another node, or by this node id under another term (another process with the same id, or this
    one's before a restart), which must pass first.

    Every statement runs alone, in autocommit: a node frozen between two of them holds no lock.
    Each waits at most TAKEOVER_WAIT for the lease row (a session setting); a holder renewing tries
    again behind its own writer's commit, however slow, for up to `length`."""
    if not node_id:
        raise ValueError("a node id is needed")
    if not length > 0:
        raise ValueError(f"a lease lasts more than 0 s, not {length}")
    values = {"node": node_id, "length": float(length), "term": -1 if term is None else term}
    await conn.execute(_LOCK_WAIT, (f"{round(TAKEOVER_WAIT * 1000)}",))
    began, ended = time.monotonic(), False
    while True:
        try:
            cur = await conn.execute(_ACQUIRE, values)
            row = await cur.fetchone()
            return None if row is None else int(row[0])
        except psycopg.errors.LockNotAvailable:  # the lease has passed (or is this node's), its row locked
            if term is not None:  # its own writer's commit: tried again for up to a lease
                if time.monotonic() - began >= length:
                    return None
            elif ended:  # tried once more after ending the stale sessions
                return None
            elif not await _end_stale_fences(conn, node_id):
                _say_held(node_id)
                return None
            else:
                ended = True


async def _end_stale_fences(conn: Connection, node_id: str) -> bool:
    """End the sessions holding fenced transactions open past the lease: a leader frozen in the
    middle of one would otherwise hold every takeover back until it woke. A role that may not end
    them waits instead (until PostgreSQL's idle limit, Fence, or the frozen node's wake-up).
    Whether there were any."""
    try:
        cur = await conn.execute(_END_STALE, {"writer": FENCED_WRITER})
        ended = await cur.fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        if _once_a_minute("cannot end"):
            log.error("node %s cannot end a former leader's session that holds a transaction open past its lease "
                      "(%s); the takeover waits for it to end", node_id, " ".join(str(exc).split()))  # fmt: skip
        return True
    for pid, done in ended:
        if done:
            log.warning("node %s ended session %d: a former leader's transaction, held open past its lease "
                        "(a frozen process?); it commits nothing", node_id, pid)  # fmt: skip
    return bool(ended)


def _say_held(node_id: str) -> None:
    """The lease has passed but its row stays locked by something other than a fenced transaction
    (an operator's, say)."""
    if _once_a_minute("held"):
        log.warning("node %s cannot take the lease although it has passed: its row is locked (see pg_locks for "
                    "table lease); no node leads until that lock is released", node_id)  # fmt: skip


def _once_a_minute(what: str) -> bool:
    now = time.monotonic()
    if now - _said_at.get(what, -math.inf) < 60.0:
        return False
    _said_at[what] = now
    return True


async def release(conn: Connection, node_id: str, term: int, clean: bool = True) -> None:
    """Give the lease up at once, so another node need not wait for it to pass: a clean stop's
    (`clean`), or one given up by a node that is not stopping cleanly, which passes now."""
    await conn.execute(_RELEASE, (clean, node_id, term))


async def read(conn: Connection) -> Holding:
    cur = await conn.execute(_READ)
    row = await cur.fetchone()
    assert row is not None, "the lease row is made by migration 2"
    return Holding(str(row[0]), int(row[1]), float(row[2]))


@contextlib.asynccontextmanager
async def fenced(conn: Connection, node_id: str, term: int) -> AsyncIterator[Connection]:
    """A transaction on `conn` for a leader's writes, committed only if `node_id` still holds the
    lease in `term`; NotLeader (and nothing written) otherwise."""
    async with conn.transaction():
        cur = await conn.execute(FENCE, (node_id, term))
        if await cur.fetchone() is None:
            raise NotLeader(f"{node_id} no longer leads: its term {term} is over or its lease has passed")
        yield conn


class Lease:
    """One node's side of the lease, over a connection of its own: whether it leads, by its own
    monotonic clock, and fenced transactions for its writes."""

    def __init__(
        self, database: PostgresDatabase, node_id: str, length: float, *, clock: Callable[[], float] = _uptime
    ) -> None:
        self.database = database
        self.node_id = node_id
        self.length = length
        self.term: int | None = None  # the term this node leads in, while it does
        self._clock = clock
        self._valid_until = 0.0  # by self._clock
        self._conn: Connection | None = None
        self._releases = 0  # release() calls: a renewal under way at one leads no more (acquire_or_renew)

    @property
    def is_leader(self) -> bool:
        return self.term is not None and self._clock() < self._valid_until

    async def acquire_or_renew(self) -> bool:
        """Try to lead (or go on leading) for `length` seconds from now; whether this node leads.
        A renewal answered `length` or more after it was sent counts as failed: the lease may have
        passed meanwhile. A database error ends the leadership too, and raises StoreError."""
        releases = self._releases
        try:
            conn = await self._connection()
            sent = self._clock()
            term = await acquire_or_renew(conn, self.node_id, self.length, self.term)
        except psycopg.Error as exc:
            self._resign()
            await self._drop()
            raise StoreError(f"the lease in {self.database.shown}: {one_line(exc, self.database)}") from None
        except BaseException:  # cancelled (a renewal that took too long): the connection is in doubt
            self._resign()
            await self._drop()
            raise
        # Released meanwhile: the release, queued behind this renewal on the connection, frees
        # the lease in the database after it, and this node must not go on believing it leads.
        if term is None or self._clock() >= sent + self.length or self._releases != releases:
            self._resign()
            return False
        self.term, self._valid_until = term, sent + self.length
        return True

    async def holding(self) -> Holding:
        """Who holds the lease now, by the database (StoreError if it cannot be read)."""
        try:
            return await read(await self._connection())
        except psycopg.Error as exc:
            await self._drop()
            raise StoreError(f"the lease in {self.database.shown}: {one_line(exc, self.database)}") from None

    async def release(self, clean: bool = True) -> None:
        """Stop leading and free the lease for the others now (`clean`: as a clean stop does)."""
        self._releases += 1
        term, self.term = self.term, None
        self._valid_until = 0.0
        if term is not None and self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error):  # then it simply passes
                await release(self._conn, self.node_id, term, clean)

    def fenced(self, conn: Connection | None = None) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction (on `conn`, by default the lease's own) whose writes commit only while
        this node's term is current; NotLeader at once if this node does not lead by its own clock."""
        if self.term is None or not self.is_leader:
            raise NotLeader(f"{self.node_id} does not lead")
        own = self._conn
        assert own is not None, "a term is had through the lease's connection"
        return fenced(conn or own, self.node_id, self.term)

    async def close(self) -> None:
        await self.release()
        if self._conn is not None:
            await self._conn.close()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    def _resign(self) -> None:
        self.term = None
        self._valid_until = 0.0

    async def _connection(self) -> Connection:
        """The lease's connection, made again after the server dropped it."""
        self._conn = await usable(self._conn, self.database)
        return self._conn
