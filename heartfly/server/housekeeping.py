"""The engine's bookkeeping beside pings and deadlines: every round it watches the database file,
checkpoints the states that came due, marks "alive at" every second and prunes old pings and
history (keep_pings, keep_history) now and then; at a clean stop it says so (the next start then
records no unclean downtime).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math

from heartfly.server.engine import Engine
from heartfly.store import rows as store
from heartfly.store.api import Reader, StoreError

log = logging.getLogger(__name__)

ALIVE_EVERY = 1.0  # seconds between "alive at" marks
# Seconds between checkpoint rounds. Each round queues the states that came due since the last, a
# few hundred at most with 100k busy checks: pings queued behind them wait for one or two batches,
# not for a second's worth.
CHECKPOINT_ROUND = 0.1
# A prune round trims the history of at least this many checks, and of all of them every this many
# rounds (an hour at the default prune_every): each check's own commit, so pings wait for none long.
HISTORY_CHECKS = 1000
HISTORY_ROUNDS = 60
# At its turn a check's history before the cut is deleted a batch (rows.HISTORY_BATCH) a commit, up
# to this many batches: a busy check's hour of runs, or keep_history lowered, is not a batch an hour.
HISTORY_TURN = 100
# The batches a round deletes beyond each check's first, at most, for all its checks: keep_history
# lowered on 100k checks with a year of runs each was 100 batches for each check of a round's
# 1,667, a round of hours (some 170,000 commits) that held up the trims of the busy checks' logs, of
# finished alerts, and of the next slices. What is left waits for the check's next turn.
HISTORY_ROUND = 1000


async def run(engine: Engine, prune_every: float = 60.0, reader: Reader | None = None) -> None:
    """Housekeeping rounds until cancelled (`reader`: prune's).

    A round that fails (a full disk during a prune, say) is logged once per spell and the next
    round tries again: this task stopping would end alive marks, checkpoints and pruning for good.
    A prune runs beside the rounds, in a task of its own: one of many commits (a log far past
    keep_pings, the sweep of every check after a start) held up the alive marks, checkpoints, the
    ends of maintenance windows and the look at the database file for as long as it lasted.
    """
    last_alive = engine.clock.now()
    last_prune: float | None = last_alive  # None: due at once (the last one failed)
    pruning: asyncio.Task[None] | None = None
    prune_failed = False  # the last prune failed: the spell lasts until one ends well
    history = History()
    failing = False
    try:
        while True:
            await asyncio.sleep(CHECKPOINT_ROUND)
            now = engine.clock.now()
            try:
                engine.writer.watch_file()
                engine.checkpoint(now)
                engine.close_windows(now)
                # Also after a clock set back: a mark dated ahead of now would stand until the clock
                # caught up, and a crash meanwhile would leave the next start no downtime.
                if not 0.0 <= now - last_alive < ALIVE_EVERY:
                    last_alive = now
                    engine.writer.submit_nowait(store.Write(statements=[store.alive_statement(now)]))
                if pruning is not None and pruning.done():
                    ended, pruning = pruning, None
                    error = None if ended.cancelled() else ended.exception()
                    prune_failed = error is not None
                    if ended.cancelled() or error is not None:
                        last_prune = None  # retried next round
                    if error is not None:
                        raise error
                if pruning is None and (last_prune is None or not 0.0 <= now - last_prune < prune_every):
                    pruning = asyncio.create_task(prune(engine, history, reader), name="heartfly-prune")
                    last_prune = now
            except Exception as exc:  # logged once per spell; the next round retries
                if not failing:
                    trace = not isinstance(exc, StoreError)  # a store error is the writer's, logged there
                    log.error("housekeeping round failed (retried every round until it works): %s", exc, exc_info=trace)
                failing = True
            else:
                if failing and not prune_failed:
                    log.warning("housekeeping rounds work again")
                    failing = False
    finally:  # a stop, or a leader's term ending: the prune under way ends with the rounds
        if pruning is not None:
            pruning.cancel()
            await asyncio.wait({pruning})
            if not pruning.cancelled():
                pruning.exception()  # a failure it ended with before the cancel: its round would have logged it


class History:
    """Where the pruning of history past keep_history goes on next round: a slice of the checks per
    round, not all of them (100k checks would be 100k commits).

    The first pass over the checks after a start, and after keep_pings changed, trims every ping
    log too: a check's count of pings since its last trim (Check.unpruned) starts at 0 in each
    process, so a check that pings less than a tenth of keep_pings between restarts, or one that
    stopped pinging before keep_pings was lowered, was never trimmed again. The checks still to
    trim are kept by id, not as a count of positions: a reload that removes a check moves the
    checks after it one place forward, and a round that fails is not done."""

    def __init__(self) -> None:
        self.next = 0  # the index, in engine.checks, of the first check of the next slice
        self.unswept: set[int] = set()  # checks whose ping log the slices still trim, whatever their count
        self.keep: int | None = None  # the keep_pings of the last sweep begun


async def prune(engine: Engine, history: History | None = None, reader: Reader | None = None) -> None:
    """Trim each check's ping log; a ping its stored state lacks is kept (prune_statement). Forget
    the client ping ids past their time. Delete history older than keep_history: a slice of the
    checks' runs and flips (`history`: where the last round stopped; None: every check), all of
    a check's at its turn given `reader` (HISTORY_TURN batches at most, HISTORY_ROUND beyond each
    check's first in a round; without one: a batch), and finished alerts and
    downtimes. A log is trimmed store.PINGS_PER_TRIM pings a commit, fewer of long bodies (store.
    TRIM_BYTES); those a sweep trims are counted first by `reader` (without one: one commit's worth)."""
    now = engine.clock.now()
    engine.ping_ids.prune(now)
    await engine.writer.flush()  # a batch runs statements before state rows: commit queued states first
    keep = engine.config.server.keep_pings
    for check in list(engine.checks.values()):
        if check.unpruned > max(10, keep // 10):
            await _trim(engine, check.id, keep, check.unpruned, reader)  # the log was at most keep_pings before them
            check.unpruned = 0
    cut = now - engine.config.server.keep_history
    # Checks removed from the config too: their history is kept for when they come back, not for ever.
    ids = [check.id for check in engine.checks.values()] + engine.removed_ids()
    start, count = 0, len(ids)
    unswept = None  # None: every check's log is trimmed
    if history is not None and ids:
        if history.keep != keep:
            history.keep, history.unswept = keep, set(ids)
        elif history.unswept:
            history.unswept.intersection_update(ids)  # a check gone for good is not waited for
        unswept = history.unswept
        start = history.next % len(ids)
        count = min(len(ids), max(HISTORY_CHECKS, math.ceil(len(ids) / HISTORY_ROUNDS)))
        history.next = start + count
    budget = [HISTORY_ROUND]  # the round's batches beyond each check's first, left (_prune_rest)
    for check_id in itertools.islice(itertools.chain(ids[start:], ids[:start]), count):
        statements = store.prune_history_statements(check_id, cut)
        trim = unswept is None or check_id in unswept
        if trim:
            statements.append(_trim_statement(check_id, keep))
        await _submit(engine, statements)
        if reader is not None:
            await _prune_rest(engine, reader, check_id, cut, budget)
        if trim and reader is not None:
            over = (await reader.count_pings(check_id)).get(check_id, 0) - keep
            if over > 0:
                await _trim(engine, check_id, keep, over, reader)
        if trim and unswept:
            unswept.discard(check_id)  # once committed
    if unswept is not None and not unswept:
        unswept.clear()  # an emptied set keeps its table (100k checks: 4 MiB) until cleared
    await _submit(engine, store.prune_done_statements(cut))


async def _prune_rest(engine: Engine, reader: Reader, check_id: int, cut: float, budget: list[int]) -> None:
    """Delete what a check's first batch of history before `cut` left (more than a batch of runs or
    flips), a batch a commit, up to HISTORY_TURN of them and what is left of the round's `budget`
    (HISTORY_ROUND, taken from): a check's turn comes once an hour with many checks, and a batch an
    hour fell behind a check that runs every few seconds for good."""
    if budget[0] <= 0:
        return
    batch = store.HISTORY_BATCH
    runs, flips = await reader.count_history_before(check_id, cut, HISTORY_TURN * batch)
    # One flip before the cut may stay for good (the newest that counts): not a batch's worth.
    batches = min(budget[0], math.ceil(max(runs, flips - 1) / batch))
    budget[0] -= batches
    for _ in range(batches):
        await _submit(engine, store.prune_history_statements(check_id, cut))


async def _trim(engine: Engine, check_id: int, keep: int, over: int, reader: Reader | None) -> None:
    """Trim a log that may hold `over` pings past `keep`, a commit of at most store.PINGS_PER_TRIM
    each, fewer of long bodies (store.TRIM_BYTES): so long as `reader` counts fewer left each time
    (without one: a commit per PINGS_PER_TRIM)."""
    while over > 0:
        for _ in range(math.ceil(over / store.PINGS_PER_TRIM)):
            await _submit(engine, [_trim_statement(check_id, keep)])
        if reader is None:
            return
        left = (await reader.count_pings(check_id)).get(check_id, 0) - keep
        if left >= over:  # those left are held (a pending alert's last ping, one past the checkpoint), or new
            return
        over = left


def _trim_statement(check_id: int, keep: int) -> store.Statement:
    return store.prune_statement(check_id, keep, store.PINGS_PER_TRIM, store.TRIM_BYTES)


async def _submit(engine: Engine, statements: list[store.Statement]) -> None:
    """Commit one of a prune's writes (each its own commit: the pings queued meanwhile wait for
    none long)."""
    await engine.writer.submit(store.Write(statements=statements))


async def mark_stopped(engine: Engine, clean: bool = True) -> None:
    """A stop's last commit: every state, and the time it stopped at. `clean` False: the process
    stops because a long-lived task of it died (tasks.watched), which the next start calls an
    unclean stop, as it is."""
    engine.checkpoint()
    now = engine.clock.now()
    await engine.writer.submit(store.Write(statements=[store.alive_statement(now), store.clean_stop_statement(clean)]))
