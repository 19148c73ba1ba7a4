"""Group commit, whatever the database: writes queue here, and each batch is everything queued
while the previous commit ran, so under load one commit carries many pings and at rest a lone
ping commits at once. A backend's writer subclasses GroupCommitter with the commit itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from heartfly.store.api import StoreError
from heartfly.store.rows import SET_META, FlipRow, InboxRow, OutboxRow, PingRow, RunRow, Statement, StateRow, Write

log = logging.getLogger(__name__)

STUCK_AFTER = 5.0  # seconds a commit may take before readiness counts the database unanswering
ABANDON_WAIT = 3.0  # seconds abandon() waits for the commit under way to end before it cancels it


class GroupCommitter:
    """The queue, the batches, the refusals and the carry of a failed batch; `_commit_batch` is the
    backend's (one transaction: all of the writes or none)."""

    def __init__(self) -> None:
        # Kept, not looked up per ping: asyncio.get_running_loop() calls getpid(), a real system
        # call on every ping (about 10 % of the event loop's time under load in a Firecracker VM).
        self._loop = asyncio.get_running_loop()
        self._queue: list[tuple[Write, asyncio.Future[None] | None]] = []
        self._carry: list[Write] = []  # state/flip/bookkeeping rows of a failed batch, retried
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._committing = False  # a batch is being committed: flush waits for it too
        self._commit_began = 0.0  # time.monotonic() when the batch under way began
        self._broken = False  # the last commit failed
        self.lost: str | None = None  # what happened to the database, if it is not the one open
        self._failures_told = False  # the log said why commits fail, for good (a damaged file): not again
        # Pings are refused: a commit failed, or the database is lost. One attribute, read on every ping.
        self.failing = False
        self.commits = 0
        self._abandoned: str | None = None  # abandon()'s reason: every write is refused from then on

    async def _commit_batch(self, writes: list[Write]) -> None:
        raise NotImplementedError

    def _start_task(self) -> None:
        self._task = asyncio.create_task(self._run(), name="heartfly-writer")

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue rows; the future resolves when they are committed (or fails with the error)."""
        if self._abandoned is not None:
            return self.refused()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._queue.append((write, fut))
        self._wake.set()
        return fut

    def stuck(self) -> float | None:
        """Seconds the commit under way has waited for the database, if longer than STUCK_AFTER
        (a table locked, a server gone silent): readiness says so, for pings then wait unanswered."""
        if not self._committing:
            return None
        waited = time.monotonic() - self._commit_began
        return waited if waited > STUCK_AFTER else None

    def refused(self) -> asyncio.Future[None]:
        """An already failed future: a ping's answer while writes fail (nothing of it is queued)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        fut.set_exception(StoreError(self._abandoned or "database writes are failing"))
        return fut

    def submit_nowait(self, write: Write) -> None:
        """Queue rows nobody waits for (timer flips, bookkeeping); retried if a commit fails."""
        if self._abandoned is not None:
            return
        self._queue.append((write, None))
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        if self._abandoned is not None:
            raise StoreError(self._abandoned)
        if self._task is not None and (self._queue or self._carry or self._committing):
            await asyncio.shield(self.submit(Write()))

    async def _stop_task(self) -> None:
        """Commit what is queued, then stop the batches."""
        if self._abandoned is not None:  # stopped already, with nothing to commit
            return
        try:
            await self.flush()
        finally:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def abandon(self, why: str) -> None:
        """Stop at once, committing nothing more (a leader that lost its lease: its writes would be
        refused anyway). Waiters are told `why`; what was queued is dropped, and later writes are
        refused at once. A commit under way is let end first (for up to ABANDON_WAIT): it may yet be
        done (a lease lost while the database works), and its pings, told 503 though stored, would
        be sent again and stored twice."""
        self._abandoned = why
        try:
            if self._task is not None and self._committing:  # _run returns after it
                await asyncio.wait({self._task}, timeout=ABANDON_WAIT)
        finally:  # also when the wait is cancelled (a stop): nobody is left waiting for ever
            await self._drop_all(why)

    async def _drop_all(self, why: str) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.failing = True
        self.lost = why
        queued, self._queue, self._carry = self._queue, [], []
        for _, fut in queued:
            if fut is not None and not fut.done():
                fut.set_exception(StoreError(why))

    async def _run(self) -> None:
        while self._abandoned is None:
            await self._wake.wait()
            self._wake.clear()
            # While commits fail and pings are refused, nothing may come to be committed (a cluster
            # standby has no bookkeeping of its own): an empty batch then finds out when they work.
            if not self._queue and not self._carry and not self._broken:
                continue
            # A failed batch's carry is retried under the same caps, before anything queued since
            # (in parts: a big first start's rows, carried whole, would be one long commit again).
            taken, rest = _take([(w, None) for w in self._carry])
            carry, self._carry = [w for w, _ in taken], [w for w, _ in rest]
            batch: list[tuple[Write, asyncio.Future[None] | None]] = []
            if not self._carry:
                batch, self._queue = _take(self._queue)
            if self._queue or self._carry:
                self._wake.set()
            writes = carry + [w for w, _ in batch]
            self._committing = True
            self._commit_began = time.monotonic()
            try:
                await self._commit_batch(writes)
            except asyncio.CancelledError:  # abandon(): the batch's waiters are told, not left hanging
                self._queue = batch + self._queue
                self._carry = carry + self._carry
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the waiters
                if self._abandoned is not None:  # abandon() waits for this batch, and drops the rest
                    log.info("the commit under way when writes were abandoned failed: %s", exc)
                    for _, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(StoreError(str(exc)))
                    return
                self._fail(batch, writes, exc)
                await asyncio.sleep(0.5)  # a full disk will not have cleared in microseconds
                self._wake.set()
                continue
            finally:
                self._committing = False
            if self._broken:
                if self.lost is None:  # else pings are still refused, as watch_file logged
                    log.warning("database writes work again")
                self._broken = False
                self.failing = self.lost is not None
            self.commits += 1
            for _, fut in batch:
                if fut is not None and not fut.done():
                    fut.set_result(None)
            for write in writes:
                if write.on_commit is not None:
                    _call(write.on_commit)

    def _fail(
        self, batch: list[tuple[Write, asyncio.Future[None] | None]], writes: list[Write], exc: Exception
    ) -> None:
        if not self._broken and not self._failures_told:  # a lost file's log line does not say this one's
            log.error("database write failed, pings are refused until it works again: %s", exc)
        self._broken = self.failing = True
        # A ping whose client is told 503 must leave no trace: it is not kept, and its change to
        # memory is taken back. The pings queued behind this batch were applied after its own, so
        # they are refused too: taken back newest first, every check returns to its committed state.
        queued, self._queue = self._queue, []
        pending = writes + self._carry + [w for w, _ in queued]  # the carry not taken yet: before the queue
        for w in reversed(pending):
            if w.on_refuse is not None:
                _call(w.on_refuse)
        # Keep state, flips and bookkeeping, retried until they commit; not a write refused (a
        # ping's, or an API change whose caller is told it failed: committed later, unseen, it
        # would change what the caller was told stayed as it was).
        self._carry = carried([w for w in pending if not w.has_pings and w.on_refuse is None])
        for _, fut in batch + queued:
            if fut is not None and not fut.done():
                fut.set_exception(StoreError(str(exc)))


def _call(callback: Callable[[], None]) -> None:
    """Run a write's callback; its error is logged, for the writer must not stop: every later ping
    would wait for ever."""
    try:
        callback()
    except Exception:
        log.exception("a callback of a database write failed")


def carried(writes: list[Write]) -> list[Write]:
    """What a failed batch leaves to retry, bounded however long the outage: without empty writes
    (a flush's), and without state rows or meta values that a later write replaces (an alive mark a
    second). The carry commits in order (in parts, under a batch's caps), so the last row of a check
    or a key still wins."""
    kept: list[Write] = []
    states: set[int] = set()
    keys: set[str] = set()
    for w in reversed(writes):
        meta = [params[0] for sql, params in w.statements if sql == SET_META]
        if _replaced(w, states, keys, meta):
            continue
        kept.append(w)
        if w.state is not None:
            states.add(w.state.check_id)
        keys.update(meta)
    kept.reverse()
    return kept


def _replaced(w: Write, states: set[int], keys: set[str], meta: list[str]) -> bool:
    """True if a carried write adds nothing to the writes after it (`states` and `keys` they set)."""
    if w.has_pings or w.flip is not None or w.flips or w.outbox or w.runs or w.inbox_done or w.amends:
        return False
    if w.on_commit is not None:
        return False
    if len(meta) != len(w.statements):  # other statements run as they are
        return False
    return (w.state is None or w.state.check_id in states) and keys.issuperset(meta)


# A batch carries at most this many state rows. States are checkpointed lazily, in rounds
# (housekeeping.CHECKPOINT_ROUND); with 100k checks a round can hold hundreds, scattered over the checks
# table, and pings must not wait behind one long commit of them all.
STATES_PER_BATCH = 200
# ...and at most this many statements (unless one write has more): a big first start's check rows,
# queued in parts (server/loading.py), commit in parts.
STATEMENTS_PER_BATCH = 1000


def _take(
    queue: list[tuple[Write, asyncio.Future[None] | None]],
) -> tuple[list[tuple[Write, asyncio.Future[None] | None]], list[tuple[Write, asyncio.Future[None] | None]]]:
    """(this batch, what waits for the next): a prefix, so writes still commit in the order queued."""
    states = statements = 0
    for i, (write, _) in enumerate(queue):
        if write.state is not None:
            states += 1
        statements += len(write.statements)
        if i and (states > STATES_PER_BATCH or statements > STATEMENTS_PER_BATCH):
            return queue[:i], queue[i:]
    return queue, []


@dataclass(slots=True)
class Batch:
    """The rows of a batch's writes, table by table, as one transaction inserts them: the
    statements first, then the rows, the amends to them, the newest state row of each check last."""

    statements: list[Statement]
    pings: list[PingRow]
    flips: list[FlipRow]
    runs: list[RunRow]
    outbox: list[OutboxRow]
    states: list[StateRow]
    inbox: list[InboxRow]
    inbox_done: list[int]
    amends: list[Statement]


def gather(writes: list[Write]) -> Batch:
    pings = [w.ping for w in writes if w.ping is not None]  # one per write, nearly always
    flips = [w.flip for w in writes if w.flip is not None]
    for w in writes:
        if w.pings or w.flips:  # a merged batch (rows carry their ids: order does not matter)
            pings += w.pings
            flips += w.flips
    states: dict[int, StateRow] = {}
    statements: list[Statement] = []
    for w in writes:
        if w.state is not None:
            states[w.state.check_id] = w.state
        statements.extend(w.statements)
    runs = [row for w in writes for row in w.runs]
    outbox = [row for w in writes for row in w.outbox]
    inbox = [row for w in writes for row in w.inbox]
    inbox_done = [item for w in writes for item in w.inbox_done]
    amends = [item for w in writes for item in w.amends]
    return Batch(statements, pings, flips, runs, outbox, list(states.values()), inbox, inbox_done, amends)


def runs_of(statements: list[Statement]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """The statements in order, each run of one SQL text as one executemany: a first start inserts
    every check with a statement of its own (100k of them; on PostgreSQL a round trip each)."""
    for sql, run in itertools.groupby(statements, key=operator.itemgetter(0)):
        yield sql, [params for _, params in run]
