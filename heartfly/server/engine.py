"""Owns every check's state, the key maps and the deadline heap; applies pings and expiries.
(Its start-up is in loading.py, its reload in reloading.py, the pipeline steps its changes arm in
steps.py, a change's rows and the maintenance windows' held alerts in changes.py, and its
bookkeeping rounds, checkpoints, alive marks and pruning, in housekeeping.py.)

State changes are pure (states.py); this module decides when they happen and hands the
resulting rows to the writer (store.api.WriteQueue). Memory is the source of truth while running,
the store (store.api.Reader) on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence

from heartfly.core import pipeline, states
from heartfly.core.clock import Clock
from heartfly.core.config import Config
from heartfly.core.pingids import PingIds, scoped, with_first_copies
from heartfly.core.states import CheckState, Event, Kind
from heartfly.notify import outbox
from heartfly.server import drift, memtrim, windows
from heartfly.server.checks import Armed, Removed
from heartfly.server.checks import Check as Check  # re-exported: the web names checks by it
from heartfly.server.clockwatch import TIMER_BEAT, ClockWatch
from heartfly.server.deadlineheap import DeadlineHeap, Entry
from heartfly.server.downtime import Downtime, Pending
from heartfly.server.liveness import TIMER_STALE, TimerMark
from heartfly.server.unstored import Unstored
from heartfly.store import inbox
from heartfly.store import rows as store
from heartfly.store.api import Reader, StoreError, WriteQueue
from heartfly.store.pingrecord import PingRecord as PingRecord  # re-exported: the web and tests hand pings in

log = logging.getLogger(__name__)

# A check's state is checkpointed this long after its first ping the stored state lacks. Until
# then the ping rows are its log (replayed after a crash, and by `heartfly status`). Writing states
# lazily is what keeps 100k checks as fast as 100: pings spread over many checks would otherwise
# rewrite most of the states table every second.
CHECKPOINT_AFTER = 30.0
RETRY_BROKEN_CHECK = 3600.0
HELD_RETRY = 0.05  # a cluster leader that cannot read its inbox tries again after this long
# Deadlines the timer judges at a time, each part's rows committed before the next: 10,000 checks
# due at one instant were judged in one go and their rows queued at once, and a ping that came
# meanwhile was committed after all of them, answered 5.8 s late (0.7 s in parts).
FIRE_AT_ONCE = 500
PART_COMMIT_WAIT = 1.0  # seconds the next part waits at most for the last one's rows to be committed


class Engine(ClockWatch):
    """The running heart: pings in, deadlines out, rows to the writer (loading.py builds it,
    reloading.py rebuilds it)."""

    def __init__(self, config: Config, clock: Clock, writer: WriteQueue) -> None:
        self.config = config
        self.clock = clock
        self.writer = writer
        self.checks: dict[str, Check] = {}
        # A check's own key maps to it; start_key and fail_key, rarer, to it with the event they force
        # (a tuple each for 100k plain keys would be 5 MiB).
        self._keys: dict[str, Check] = {}
        self._kind_keys: dict[str, tuple[Check, Kind]] = {}
        self._heap = DeadlineHeap(self._is_live)
        self._by_id: dict[int, Check] = {}
        self._wake = asyncio.Event()
        self._next_check_id = 1
        self._next_flip_id = 1
        self._next_ping_id = 1
        self._next_outbox_id = 1
        self.on_alerts: Callable[[], None] | None = None  # called once alert rows are committed
        self._unstored = Unstored()  # checks whose state changed since their last checkpoint
        self._removed: dict[str, Removed] = {}
        self._db: Reader | None = None  # the reader load() was given
        self._new_names: list[str] = []  # checks created by the current load or reload, for one log line
        self._new_texts = store.NewStateTexts()  # their initial states' texts, each distinct one encoded once
        self._edges: dict[str, str] = {}  # pipeline step -> its upstream
        self._steps: dict[str, list[tuple[str, str]]] = {}  # upstream -> [(step, trigger)]
        self._edges, self._steps = pipeline.steps_of(config.checks.values())
        self.timer_lag = 0.0  # how late the last deadline fired, seconds
        self.timer_alive = TimerMark(clock)  # the timer task's last wake-up
        # Since when (monotonic) due deadlines have waited for before_fire (a cluster leader that cannot
        # apply its inbox), None while nothing waits: past TIMER_STALE the node is unhealthy (held_back).
        self.held_since: float | None = None
        self.started_at = 0.0
        self.downtime: tuple[float, float] | None = None
        self.ping_ids = PingIds(config.server.max_ping_age)
        self.checkpoint_after = CHECKPOINT_AFTER
        self.windows_done: dict[str, float] = {}  # maintenance window -> last moment handled (windows.py)
        self._view = False  # load(view=True): a cluster standby's picture, which tells nothing
        self.drift: drift.Drift = drift.NONE  # a view's (Loading.load)
        self._adopt_holds = False
        self._holds_settled = False
        self._unread: list[Check] = []  # a restart's checks whose stored state is not read yet
        self._loading: dict[int, CheckState] | None = None
        self._waiting_at_load: list[Check] = []
        self._pending = {}  # a restart's pings that wait for their check's state to be read
        self._kept_below = None
        self._settle_after = 0
        self._all_read = False
        self._loaded_downtime: Downtime | None = None
        self._downtime_log: tuple[Downtime, float, bool, bool] | None = None
        self._unapplied: list[Pending] = []
        self._rebuilding = False
        self._judging: float | None = None  # a storm's instant, while parts of it wait (fire_due)
        self._reconfiguring = asyncio.Lock()  # apply_config, one at a time
        self._beat: float | None = None  # Clock.suspended() at the last look
        self.read_after: asyncio.Event | None = None
        self._instants: dict[float, float] = {}
        # A cluster's standby (server/cluster.py): pings and commands go to the inbox, through
        # this writer, for the leader to apply; this engine only shows the stored states.
        self.standby: tuple[str, WriteQueue] | None = None  # (this node's id, the writer)
        # A cluster's leader: before deadlines fire, the inbox is read (pings a standby took before
        # the deadline are applied first). False: not now (the inbox cannot be read).
        self.before_fire: Callable[[], Awaitable[bool]] | None = None

    # ---- pings ----------------------------------------------------------------------------

    def lookup_key(self, key: str) -> tuple[Check, Kind | None] | None:
        check = self._keys.get(key)
        return (check, None) if check is not None else self._kind_keys.get(key)

    def lookup_name(self, name: str) -> Check | None:
        return self.checks.get(name)

    def name_of(self, check_id: int) -> str | None:
        """The name the check with this row id goes by now (a rename through the API keeps the id);
        None when no watched check has it (removed, or deleted through the API)."""
        check = self._by_id.get(check_id)
        return None if check is None else check.name

    def taken_before(self, check: Check, ping: PingRecord) -> bool:
        """Whether `ping` is a copy of one taken already (by its id): record answers it as the first
        copy was answered and applies nothing. A standby cannot tell, and says False."""
        if self.standby is not None or ping.uid is None:
            return False
        return self.ping_ids.seen(scoped(check.id, ping.uid)) is not False

    def record(self, check: Check, ping: PingRecord, inbox_id: int | None = None) -> asyncio.Future[None]:
        """Apply a ping and queue its rows; the future resolves when they are committed.

        A ping the writer refuses (503: its client retries it) has no effect: refused before it is
        applied while writes fail, taken back (_undo) if it was in the commit that failed. A ping
        whose id was seen (pingids) is not applied again: its answer is the first copy's.
        `inbox_id`: the inbox row it came from (a cluster's standby took it), deleted in its commit.
        """
        if self.standby is not None:
            return self._to_inbox(inbox.ping_row(self.standby[0], check.config, [ping], batch=False))
        if self.writer.failing:  # the writer's retries and the alive marks find out when writes work again
            return self.writer.refused()
        uid = None if ping.uid is None else scoped(check.id, ping.uid)
        if uid is not None and (seen := self.ping_ids.seen(uid)) is not False:
            if inbox_id is not None:
                self._drop_copy(seen, inbox_id)
            return self._as_before(seen)
        now = self.clock.now()
        self._watch_clock_if_timer_late(now)
        if self._judging is not None and check.heap_at is not None:
            self._judge_first(check, min(self._judging, ping.event.at))
        old, old_ping_id = check.state, check.ping_id
        steps, armed, fires_at = self._apply(check, ping.event, now)
        row = self._ping_row(check, ping)
        self._schedule(check, fires_at)
        write: store.Write | None = None  # None: the ping row alone (store.ping_write)
        if len(steps) == 1 and steps[0].flip is None and not steps[0].ended:
            # The ping row is the log; the state is checkpointed later.
            self._unstored.note(check.id, now, check.ping_id)
            if inbox_id is not None:
                write = store.Write(ping=row, inbox_done=[inbox_id])
        else:  # a change of status is checkpointed with its ping, its flip, its runs and its alerts together
            write = self._changes(check, steps, old, ping=row, here=inbox_id is None)
            if inbox_id is not None:
                write.inbox_done.append(inbox_id)
        uids = (uid,)
        undo = functools.partial(self._undo, check, old, old_ping_id, check.state, armed, uids)
        if write is None:
            write = store.ping_write(row, undo)
        else:
            write.on_refuse = undo
        return self._committed(write, uids, now)

    def record_batch(
        self, check: Check, pings: Sequence[PingRecord], inbox_id: int | None = None
    ) -> tuple[asyncio.Future[None], list[bool]]:
        """Apply a client's batch of one check's pings (a replayed spool) in event-time order, and
        commit them as one: all stored and applied, or none. Deadlines the batch leaves in the
        past wait for the reorder window after it (states.after_batch). Returns the commit and, per
        ping in the order given, whether it was a copy of one already taken (not applied again; a
        standby cannot tell, and says False).
        """
        if self.standby is not None:
            row = inbox.ping_row(self.standby[0], check.config, list(pings), batch=True)
            return self._to_inbox(row), [False] * len(pings)
        if self.writer.failing:
            return self.writer.refused(), []
        now = self.clock.now()
        self._watch_clock_if_timer_late(now)
        seen: list[bool] = []  # per ping: a copy of one taken before, or earlier in this batch
        fresh: list[PingRecord] = []
        uids: dict[str, None] = {}  # the fresh ids in order; not a list: `in` it made a batch quadratic
        firsts: list[asyncio.Future[None]] = []  # the commits of copies taken before, still pending
        for ping in pings:
            uid = None if ping.uid is None else scoped(check.id, ping.uid)
            first = False if uid is None or uid in uids else self.ping_ids.seen(uid)
            if isinstance(first, asyncio.Future):
                firsts.append(first)
            duplicate = uid is not None and (uid in uids or first is not False)
            seen.append(duplicate)
            if not duplicate:
                fresh.append(ping)
                if uid is not None:
                    uids[uid] = None
        old, old_ping_id = check.state, check.ping_id
        writes: list[store.Write] = []
        armed: list[tuple[Check, CheckState, CheckState]] = []
        for ping in sorted(fresh, key=lambda p: p.event.at):
            before = check.state
            steps, armed_now, _ = self._apply(check, ping.event, now, window=0.0, batch=True)
            armed += armed_now
            writes.append(self._changes(check, steps, before, ping=self._ping_row(check, ping), here=inbox_id is None))
        before = check.state
        judged = states.after_batch(check.config, old, before, now, max((p.event.at for p in fresh), default=now))
        check.state = judged[-1].state
        if any(step.flip is not None or step.ended for step in judged):
            writes.append(self._changes(check, judged, before))
        self._schedule(check)
        if not writes:
            answer = with_first_copies(self._as_before(True), firsts)
            if inbox_id is not None:  # once the first copies are stored: if one is not, this row is its copy left
                self._drop_copy(answer if firsts else True, inbox_id)
            return answer, seen
        write = store.merge(writes)
        if inbox_id is not None:
            write.inbox_done.append(inbox_id)
        write.state = self._mark_stored(check)
        write.on_refuse = functools.partial(self._undo, check, old, old_ping_id, check.state, armed, tuple(uids))
        # No wait for `firsts` here: queued after them, this write is refused with any of them (groupcommit)
        return self._committed(write, tuple(uids), now), seen

    def _committed(self, write: store.Write, uids: Sequence[str | None], now: float) -> asyncio.Future[None]:
        fut = self.writer.submit(write)
        for uid in uids:
            if uid is not None:
                self.ping_ids.add(uid, now, fut)
        return fut

    def _drop_copy(self, first: asyncio.Future[None] | bool, inbox_id: int) -> None:
        """The inbox row of a copy of a ping already taken goes, once the first copy is committed:
        if the first is refused, the copy is what is left of the ping, and is read again."""

        def committed(fut: asyncio.Future[None] | None = None) -> None:
            if fut is None or (not fut.cancelled() and fut.exception() is None):
                self.writer.submit_nowait(store.Write(inbox_done=[inbox_id]))

        if isinstance(first, asyncio.Future):
            first.add_done_callback(committed)
        else:
            committed()

    def _to_inbox(self, row: store.InboxRow) -> asyncio.Future[None]:
        """A standby's ping or command: committed to the inbox for the leader to apply."""
        assert self.standby is not None
        writer = self.standby[1]
        return writer.refused() if writer.failing else writer.submit(store.Write(inbox=[row]))

    def _as_before(self, seen: asyncio.Future[None] | bool) -> asyncio.Future[None]:
        """The answer to a copy of a ping already taken: its first copy's commit."""
        if isinstance(seen, asyncio.Future):
            return asyncio.ensure_future(asyncio.shield(seen))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _ping_row(self, check: Check, ping: PingRecord) -> store.PingRow:
        """The stored row of a ping applied to `check`: it takes the next ping id."""
        check.ping_id = ping_id = self._next_ping_id
        self._next_ping_id += 1
        check.unpruned += 1
        return store.ping_row(ping, ping_id, check.id)

    def _undo(
        self, check: Check, old: CheckState, ping_id: int, new: CheckState, armed: Armed, uids: Sequence[str | None]
    ) -> None:
        """Take a refused ping (or batch) back: its check's state, the pipeline steps it armed, and
        its ids (a resend must be taken).

        The writer calls this newest ping first, so each check returns to its state before them. A
        state something else changed since (a timer flip, say) is left as it is.
        """
        for uid in uids:
            if uid is not None:
                self.ping_ids.forget(uid)
        self._restore(check, new, old, ping_id)
        for downstream, before, after in reversed(armed):
            self._restore(downstream, after, before, downstream.ping_id)

    def _restore(self, check: Check, new: CheckState, old: CheckState, ping_id: int) -> None:
        if check.state is not new:
            return
        check.state, check.ping_id = old, ping_id
        self._schedule(check)
        # Its row replaces any queued checkpoint of the refused state (the carry commits as one).
        self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))

    def _apply(
        self,
        check: Check,
        event: Event,
        now: float,
        *,
        arm: bool = True,
        window: float = states.REORDER_WINDOW,
        batch: bool = False,
    ) -> tuple[list[states.Step], Armed, float | None]:
        """Apply a ping to its check, and arm the pipeline steps that wait on this event.

        Returns the steps (states.receive), the steps armed (each with its state before and
        after, for _undo), and the check's next fire time if known (states.receive_timed: for
        _schedule). Replay does not arm: the arming of a stored ping was stored before it
        (below), and arming again could undo a step that has run since.
        """
        old = check.state
        steps, fires_at = states.receive_timed(check.config, old, event, now, window, batch=batch)
        check.state = steps[-1].state
        # A batch's window (0) is for its own check's pings, all in it; a step's own replayed pings
        # are not, and may be right behind it: a deadline it leaves a step in the past waits for them.
        armed = self._arm_steps(check, old, event, steps, now, states.REORDER_WINDOW) if arm else []
        return steps, armed, fires_at

    async def pause(self, check: Check, inbox_id: int | None = None, at: float | None = None) -> None:
        """`at`: when a standby was asked (its inbox row's time): a ping it took after that, which
        the leader applies after the pause, ends it under resume_on_ping."""
        if self.standby is not None:
            row = inbox.command_row(self.standby[0], check.config, "pause", "", self.clock.now())
            return await self._to_inbox(row)
        now = self.clock.now()
        self._apply_held(check, now)  # what came before it is judged first
        await self._operator_step(check, states.pause(check.state, now, at), inbox_id)

    async def resume(
        self, check: Check, why: str = "resumed by an operator", inbox_id: int | None = None, at: float | None = None
    ) -> None:
        """`at`: when a standby was asked (its inbox row's time): a failure that came after it counts
        though the leader applies the resume later (CheckState.resumed_at)."""
        if self.standby is not None:
            row = inbox.command_row(self.standby[0], check.config, "resume", why, self.clock.now())
            return await self._to_inbox(row)
        now = self.clock.now()
        if check.state.status is states.Status.PAUSED:  # pings held while it was paused apply to the paused check
            self._apply_held(check, now)
        await self._operator_step(check, states.resume(check.config, check.state, now, why, at), inbox_id)

    async def _operator_step(self, check: Check, step: states.Step, inbox_id: int | None) -> None:
        """An operator's pause or resume, applied and committed (with the inbox row it came from)."""
        old, check.state = check.state, step.state
        self._schedule(check)
        self._judge_steps_after(check, old, [step], self.clock.now())  # resumed: up again
        write = self._change(check, step, old)
        if inbox_id is not None:
            write.inbox_done.append(inbox_id)
        await self.writer.submit(write)

    def send_test_alert(self, channel: str) -> tuple[int, asyncio.Future[None]]:
        """Queue a clearly marked test alert through the real outbox; returns its outbox id."""
        outbox_id = self._next_outbox_id
        self._next_outbox_id += 1
        row = outbox.test_row(outbox_id, channel, self.clock.now(), self.config.alerts)
        return outbox_id, self.writer.submit(store.Write(outbox=[row], on_commit=self._alerts_committed))

    def _mark_stored(self, check: Check) -> store.StateRow:
        """The check's state row, to queue now: from here the check counts as checkpointed (out
        of Unstored), so the checkpoint mark may move past its pings."""
        self._unstored.stored(check.id)
        return store.StateRow(check.id, check.state, check.ping_id)

    def checkpoint(self, now: float | None = None) -> None:
        """Queue the states of checks changed since their last checkpoint, and the checkpoint mark.

        All of them, or (given `now`) those whose first change the stored state lacks is
        `checkpoint_after` (CHECKPOINT_AFTER) old. Every ping numbered up to the mark is then included in the stored
        states; a restart replays the pings after it. Without `now` (a stop), every check's state is
        read first (load_rest): a stop must keep what the restart's load gave each (its downtime).
        """
        if now is None and self._unread:
            self.load_rest()
        for cid in self._unstored.due(now, self.checkpoint_after):
            check = self._by_id.get(cid)
            if check is None:  # removed by a reload, which stored its state
                self._unstored.stored(cid)
            else:
                self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
        if self._all_read:  # a restart's states that replayed pings may all be queued by now
            self._settle_replay()
        if (mark := self._unstored.new_mark(self._next_ping_id)) is not None:
            self.writer.submit_nowait(store.Write(statements=[store.checkpoint_statement(mark)]))

    # ---- deadlines ------------------------------------------------------------------------

    def _schedule(self, check: Check, at: float | None = math.nan) -> None:
        """Make sure the heap holds an entry for this check at or before its next deadline.

        A deadline that moved later (what most pings do) keeps its earlier entry, which is checked
        again when it comes up; only a deadline that moved earlier needs a push. `at`: the fire
        time of the check's next deadline (None: it has none) if the caller knows it already.
        """
        if at is not None and math.isnan(at):
            at = self._fire_at(check)
        if at is not None and (check.heap_at is None or at < check.heap_at):
            self._push(check, at)

    def _schedule_all(self, checks: Iterable[Check], downtime: Downtime | None) -> None:
        """_schedule for every check of a load: one heapify, not a push each (100k at a start).
        `downtime`: a restart's, which may extend each check's deadline first (Downtime)."""
        entries: list[Entry] = []
        for check in checks:
            at = self._fire_at(check, downtime)
            if at is not None and (check.heap_at is None or at < check.heap_at):
                entries.append(self._entry(check, at))
        self._heap.push_all(entries)
        self._wake.set()
        self._drop_stale()

    def _fire_at(self, check: Check, downtime: Downtime | None = None) -> float | None:
        """When the timer is to judge the check's next deadline; None: it has none."""
        try:
            deadline = states.next_deadline(check.config, check.state)
            if downtime is not None and downtime(check, deadline):  # it moved the state
                deadline = states.next_deadline(check.config, check.state)
        except Exception:
            log.exception("check %s: cannot compute its deadline; trying again within the hour", check.name)
            return self.clock.now() + RETRY_BROKEN_CHECK
        return None if deadline is None else states.fire_time(check.state, deadline)

    def _push(self, check: Check, at: float) -> None:
        if self._heap.push(*self._entry(check, at)):
            self._wake.set()
        self._drop_stale()

    def _entry(self, check: Check, at: float) -> Entry:
        """The check's new heap entry, at `at`: its seq moves on, so its older entries are stale."""
        check.seq += 1
        check.heap_at = at
        return at, check.seq, check.id

    def _drop_stale(self) -> None:
        if not self._rebuilding and len(self._heap) > 2 * len(self.checks) + 1024:
            self._heap.compact()

    def _is_live(self, entry: tuple[float, int, int]) -> bool:
        check = self._by_id.get(entry[2])
        return check is not None and check.seq == entry[1] and self.checks.get(check.name) is check

    def held_back(self) -> float | None:
        """Seconds due deadlines have waited to fire, if longer than TIMER_STALE, else None: a node
        that cannot fire is as unhealthy as one whose timer stopped (readyz, the heartbeat, and a
        cluster leader gives its lease up)."""
        if self.held_since is None:
            return None
        held = self.clock.monotonic() - self.held_since  # a step of the wall clock holds nothing back
        return held if held > TIMER_STALE else None

    def next_wakeup(self) -> float | None:
        if self._unread:  # a deadline of theirs may come first
            self.load_rest()
        return self._heap.earliest()

    def fire_due(self, now: float, most: int | None = None) -> int:
        """Apply every deadline at or before `now` (the `most` earliest of them: the rest wait for
        the next part, `_judging` meanwhile); returns how many checks changed status."""
        if self._unread:  # each one's deadline is scheduled as its state is read
            self.load_rest()
        changed = judged = 0
        for check_id in itertools.islice(self._heap.pop_due(now), most):
            check = self._by_id[check_id]
            check.heap_at = None
            changed += self._fire_safely(check, now)
            judged += 1
        self._judging = now if judged == most else None
        return changed

    def _judge_first(self, check: Check, until: float) -> None:
        """A ping between two parts of a storm (fire_due's `most`) whose check's deadline, due by
        `until` (the storm's instant and the ping's own), waits for a later part: that deadline is
        judged first, as in one go. Else a ping seconds late (9 s at 10,000) was on time, untold."""
        if check.heap_at is not None and check.heap_at <= until:
            check.seq += 1  # its heap entry is judged here: stale
            check.heap_at = None
            self._fire_safely(check, until)

    def _fire_safely(self, check: Check, now: float) -> int:
        old = check.state
        try:
            return self._fire(check, now)
        except Exception:  # the timer must keep running: this check is retried, the others go on
            log.exception("check %s: cannot apply its deadline; trying again in an hour", check.name)
            check.state = old  # no change without its rows (flip, alerts)
            # _change may have marked it stored: queue the state it went back to
            self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
            self._push(check, now + RETRY_BROKEN_CHECK)
            return 0

    def _apply_held(self, check: Check, now: float, *, due: bool = True) -> None:
        """Apply what the check holds for the reorder window now, and (with `due`) the deadlines
        due by now (states.apply_held), each change recorded as the timer records its own. Not
        those on a cluster's leader: its timer fires them only once it has read the pings its
        standbys took."""
        for step in states.apply_held(check.config, check.state, now, due=due and self.before_fire is None):
            old = check.state
            # Steps made in a row, each from the one before: a window hold the last one's change
            # gave its state (_note_hold) is carried on, the state machine never sets one.
            check.state = windows.with_hold_of(old, step.state)
            self._judge_steps_after(check, old, [step], now)
            self.writer.submit_nowait(self._change(check, step, old))

    def _fire(self, check: Check, now: float) -> int:
        """Apply one check's deadline if it has come; 1 if its status changed."""
        deadline = states.next_deadline(check.config, check.state)
        if deadline is None:
            return 0  # paused or down since this entry was pushed
        at = states.fire_time(check.state, deadline)
        if at > now:  # moved later since: wait for the new time
            self._push(check, at)
            return 0
        self.timer_lag = now - at
        old = check.state
        steps = states.up_then_running(states.advance(check.config, old, now))
        check.state = steps[-1].state
        self._judge_steps_after(check, old, steps, now)  # a held success's recovery, say
        write = self._changes(check, steps, old)
        self._schedule(check)
        self.writer.submit_nowait(write)
        return 0 if steps[-1].flip is None else 1

    async def run_timer(self) -> None:
        """Sleep until the earliest deadline (or an earlier one is pushed), then fire it.

        It also wakes at least every TIMER_BEAT seconds to mark itself alive (`timer_alive`),
        which is what readiness and the systemd watchdog look at. First it reads the states a
        restart left unread (finish_load): no deadline is judged before every one is scheduled;
        then it gives what the start freed back to the system (memtrim).
        """

        def alive() -> None:
            self.timer_alive.mark(self.clock.now())

        await self.finish_load(alive)
        # What the start built and dropped (a parse, rows, texts, replayed pings): its pages go back.
        memtrim.release_soon()
        while True:
            now = self.clock.now()
            self.watch_clock(now)
            self.watch_thaw(now)  # after a freeze: the pings at its door first
            self.timer_alive.mark(now)
            held = False
            if self.before_fire is not None and (due := self.next_wakeup()) is not None and due <= now:
                held = not await self.before_fire()
                if held:  # a leader that has not read its standbys' pings: none judged at a ping either
                    self._judging = None
                now = self.clock.now()
                self.watch_clock(now)
            if not held:
                self.held_since = None
                self.fire_due(now, FIRE_AT_ONCE)
            elif self.writer.failing:  # readiness says that already, and the lease is kept for when they work
                self.held_since = None
            elif self.held_since is None:
                self.held_since = self.clock.monotonic()
            self._wake.clear()
            wakeup = self.next_wakeup()
            delay = TIMER_BEAT if wakeup is None else min(TIMER_BEAT, wakeup - self.clock.now())
            if held:  # tried again soon, not in a busy loop
                delay = max(delay, HELD_RETRY)
            if delay <= 0 and self._judging is not None:  # a part (FIRE_AT_ONCE) of a storm: the pings
                # waiting meanwhile are committed with its rows, not after the rest of the storm's; a
                # database that does not answer (writes fail, PostgreSQL out of reach) holds the next
                # part up little. Not a deadline that came due during the turn: judged at once.
                with contextlib.suppress(StoreError, TimeoutError):
                    async with asyncio.timeout(PART_COMMIT_WAIT):
                        await self.writer.flush()
            if delay <= 0:
                continue
            self.timer_alive.asleep = True  # a silence from here on is the event loop's (TimerMark.stuck)
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            finally:
                self.timer_alive.asleep = False
