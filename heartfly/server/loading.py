"""The engine's start-up and reload: its checks rebuilt from the store and the config.

Stored states are checkpoints; pings committed after them are replayed through the same pure
state machine. A check gone from the config keeps its row and comes back with its history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from heartfly.core import states
from heartfly.core.clock import Clock
from heartfly.core.config import CheckConfig, Config
from heartfly.core.deadlines import RESTART_SETTLE
from heartfly.core.holding import WAITING_MAX
from heartfly.core.pingids import PingIds, scoped
from heartfly.core.states import CheckState, Event, Kind
from heartfly.server import longlived, settings, windows
from heartfly.server.changes import ChangeRows
from heartfly.server.checks import Armed, Check, Removed
from heartfly.server.downtime import UNREAD_DOWNTIMES, Downtime, Pending, log_downtime, pending_downtimes
from heartfly.server.drift import Drift
from heartfly.server.unstored import Unstored
from heartfly.store import rows as store
from heartfly.store.api import Reader, WriteQueue
from heartfly.store.queries import CheckRow, CheckText, LoggedPing, unapplied
from heartfly.store.rows import decode_state

log = logging.getLogger("heartfly.server.engine")  # the engine's log, as before the split
_quiet = logging.getLogger("heartfly.server.engine.view")  # a standby's view, rebuilt every second
_quiet.disabled = True

LOAD_PAGE = 1000  # stored checks finish_load reads at a time (some 40 ms at 100k checks)...
# ...and the pause after each, for pings: a ping takes several turns of the event loop (read, commit,
# answer), and with one turn between pages each waited 0.3-0.5 s during a restart's read of 100k
# checks, some 50 answered a second. With the pause: under 80 ms, some 300 a second, and the read
# 0.5 s longer.
LOAD_PAUSE = 0.005
NAMED_CHECKS = 10  # more checks than this new (or gone, or back) at once are logged as a count
# A check made through the API not served (deleted, here or on another node; left out, the file no
# longer fitting it): never "removed from the config", which sent an operator looking in the file.
UNSERVED = (
    "(made through the API) is no longer served; its history is kept",
    "made through the API are no longer served",
)
TAKEOVER_SLOP = 3.0  # seconds: see the settle in load()
# A first start of a big config makes every check's row (100k: seconds of work). A cluster leader's
# lease is kept by a task of its own meanwhile, so the load lets the event loop turn this often, and
# the rows go in writes of this many, each its own commit: none holds the lease row (which a renewal
# waits for) long, and those committed stay should the term be lost, for the next term not to redo.
YIELD_EVERY = 0.02  # seconds
NEW_ROWS_PER_WRITE = 1000


class Loading(ChangeRows):
    """The engine's part that builds its checks at start (load(), finish_load()) and the helpers a
    reload shares with it (reloading.Reloading)."""

    config: Config
    clock: Clock
    writer: WriteQueue
    checks: dict[str, Check]
    ping_ids: PingIds
    started_at: float
    downtime: tuple[float, float] | None
    _keys: dict[str, Check]
    _kind_keys: dict[str, tuple[Check, Kind]]
    _by_id: dict[int, Check]
    _next_check_id: int
    _next_flip_id: int
    _next_ping_id: int
    _next_outbox_id: int
    _unstored: Unstored
    _removed: dict[str, Removed]
    drift: Drift
    _db: Reader | None
    _new_names: list[str]
    _new_texts: store.NewStateTexts
    windows_done: dict[str, float]
    _edges: dict[str, str]
    _steps: dict[str, list[tuple[str, str]]]
    # A restart's stored checks whose state is not read yet, and what reading one needs.
    _unread: list[Check]
    _loading: dict[int, CheckState] | None  # during load(): the stored state of each check read
    _waiting_at_load: list[Check]  # during load(): checks that may hold pings for the reorder window (_held_at_load)
    # A restart's pings committed after the last checkpoint, of checks whose state is not read yet:
    # replayed as it is read (_load_stored), not before the server answers.
    _pending: dict[int, list[LoggedPing]]
    _kept_below: int | None  # the first deferred ping of a state that could not be read (_load_stored)
    _settle_after: int  # the Unstored entry of the last state that replayed deferred pings (0: none)
    _all_read: bool  # every stored state is read, and _settle_replay has yet to run to its end
    _loaded_downtime: Downtime | None
    _unapplied: list[Pending]  # the downtimes kept in UNREAD_DOWNTIMES until every state is read
    _rebuilding: bool  # apply_config is putting the checks back in the maps
    _reconfiguring: asyncio.Lock
    read_after: asyncio.Event | None  # finish_load waits for it: the first pings are answered first
    _downtime_log: tuple[Downtime, float, bool, bool] | None
    _instants: dict[float, float]
    _adopt_holds: bool  # the first start of a version that keeps window holds (windows.release's adopt)

    if TYPE_CHECKING:  # the engine's own (declared only: a stub here would shadow them at run time)
        _fire_at: Callable[[Check, Downtime | None], float | None]

        def _schedule(self, check: Check, at: float | None = math.nan) -> None: ...

        _schedule_all: Callable[[Iterable[Check], Downtime | None], None]

        def _apply_held(self, check: Check, now: float, *, due: bool = True) -> None: ...

        checkpoint: Callable[[], None]
        _drop_stale: Callable[[], None]

        def _apply(
            self, check: Check, event: Event, now: float, *, arm: bool = True
        ) -> tuple[list[states.Step], Armed, float | None]: ...

    # ---- start-up -------------------------------------------------------------------------

    async def load(self, db: Reader, *, view: bool = False, serving_since: float | None = None) -> None:
        """Rebuild from the store, add checks new to the config, and account for our own downtime.

        Stored states are checkpoints; pings committed after a check's checkpoint are replayed
        through the same pure state machine, so a crash loses nothing that was acknowledged.

        `view`: a cluster standby's picture of the stored states, written nowhere (its writer
        drops the rows), quietly, with no downtime of its own. `serving_since`: a cluster node
        taking the lead has taken pings (into the inbox) since then, so deadlines are extended only
        by the part of the leader's absence before it.
        """
        self._view = view
        if view:
            self.log = _quiet
        now = self.clock.now()
        self.started_at = now
        self._db = db
        # A view decodes every state, a page at a time; a server that writes decodes a stored check's
        # state when it is first used, or in the background once it answers (finish_load).
        rows: dict[str, CheckRow | CheckText] = {}
        for read in await (db.read_checks() if view else db.read_check_texts()):
            rows[read.name] = read
        self._next_check_id = max((r.id for r in rows.values()), default=0) + 1
        self._next_flip_id = await db.max_id("flips") + 1
        checkpoint = await db.read_checkpoint()
        # A ping refused with 503 is not stored, but a state may name it: never hand its id out again.
        stored_ids = max((r.state_ping_id for r in rows.values()), default=0)
        self._next_ping_id = max(await db.max_id("pings"), stored_ids, checkpoint) + 1
        self._next_outbox_id = await db.max_id("outbox") + 1
        stopped_at, clean = await db.read_last_alive()
        statements: list[store.Statement] = []
        stored: dict[int, CheckState] = {}
        self._loading = stored  # a stored check's state read during the load is added (_load_stored)
        self._waiting_at_load = []  # checks holding pings for the reorder window (_held_at_load)
        self._pending = {}
        returned: list[Check] = []
        unwatched: list[str] = []  # in the config, and not watched by whoever wrote the rows
        turn_at = time.monotonic() + YIELD_EVERY
        # A part committed says when this start began, as its end would (a first start has no mark
        # yet): should it die before its end, the next start counts the time since as its downtime,
        # and does not judge the checks it finds from this start on, when none could be pinged.
        unmarked = stopped_at is None and not view
        for name, cfg in self.config.checks.items():
            if time.monotonic() >= turn_at:
                await asyncio.sleep(0)
                turn_at = time.monotonic() + YIELD_EVERY
            row = rows.get(name)
            if row is None:
                unwatched.append(name)
                check = self._create(cfg, now, statements)
                stored[check.id] = check.state  # as its INSERT stores it: not written a second time below
                if len(statements) >= NEW_ROWS_PER_WRITE:
                    if unmarked:  # a first start: see above
                        statements += [store.alive_statement(now), store.clean_stop_statement(False)]
                        unmarked = False
                    self.writer.submit_nowait(store.Write(statements=statements))
                    statements = []
            elif isinstance(row, CheckText) and row.removed_at is None:
                check = Check.stored(row.id, cfg, row.text, row.state_ping_id, self._load_stored)
            else:
                decoded = row.state if isinstance(row, CheckRow) else self._decode(name, row.text)
                check = Check(row.id, cfg, decoded or self._afresh(cfg), ping_id=row.state_ping_id)
                stored[check.id] = self._bring_to_load(check, decoded, tell=row.removed_at is None)
                if row.removed_at is not None:
                    unwatched.append(name)
                    returned.append(check)
            self._add(check)
        gone: list[str] = []
        for name, row in rows.items():
            if name in self.config.checks:
                continue
            decoded = row.state if isinstance(row, CheckRow) else self._decode(name, row.text)
            self._removed[name] = Removed(row.id, decoded or self._afresh(None), row.state_ping_id, stale=True)
            if row.removed_at is None:
                statements.append(store.removed_statement(row.id, now))
                if not name.startswith(store.TOMBSTONE):  # a check deleted through the API: no news of the config
                    gone.append(name)
        left_out = [name for name in gone if name in self.config.left_out]  # left out: never in the file
        taken_out = [name for name in gone if name not in self.config.left_out]
        self._log_checks(taken_out, "is no longer in the config; its history is kept", "are no longer in the config")
        self._log_checks(left_out, *UNSERVED)
        if view:  # a standby's: which checks the leader watches that its config lacks, and the other way
            self.drift = (tuple(gone), tuple(unwatched), await settings.differ(db, self.config))
        self._log_new()
        for check in returned:  # after the loop above: a replayed flip may look at other checks
            pings = await db.check_pings_after(check.id, check.ping_id)
            self.writer.submit_nowait(self._bring_back(check, pings, now))
            stored[check.id] = check.state
        await self._replay(db, checkpoint)
        held_open = [check for check in self._waiting_at_load if self._held_at_load(check, now)]
        self._waiting_at_load = []
        if not view:  # what only a server that writes needs: a view, rebuilt every second, skips the reads
            statements += await settings.statements(self.config, view)  # a cluster's leader's, for its standbys
            if self.config.maintenance:
                stored_marks = await db.read_meta_prefix(windows.DONE_META)
                self.windows_done, new_marks = windows.marks(self.config, stored_marks, now)
                statements += new_marks
            self._adopt_holds = not await db.read_meta_prefix(windows.HOLDS_META)
            for check_id, uid, received_at in await db.read_ping_ids(now - self.ping_ids.keep_for, self.ping_ids.limit):
                self.ping_ids.add(scoped(check_id, uid), received_at)
        downtime = None
        earlier = [] if view else pending_downtimes(await db.read_meta_prefix(UNREAD_DOWNTIMES))
        if earlier and (stopped_at is None or stopped_at >= now):  # a clock stepped back: those alone
            downtime = Downtime(now, now, 0.0, earlier)
        if not view and stopped_at is not None and stopped_at < now:
            unserved = now if serving_since is None else max(stopped_at, min(now, serving_since))
            settle_until = 0.0
            # Nobody took pings from the stop on: some are still being retried. A node taking the
            # lead (serving_since) may have begun serving just after the old leader's last "alive"
            # mark, which comes up to a second and a commit before its stop: no gap in truth.
            if unserved - stopped_at > (0.0 if serving_since is None else TAKEOVER_SLOP):
                # From the load's end: pings that came during it wait in the listen queue until then.
                ready = self.clock.now()
                settle_until = ready + min(RESTART_SETTLE, 1.0 + 1.5 * (ready - stopped_at))
            downtime = Downtime(stopped_at, unserved, settle_until, earlier)
            self.downtime = (stopped_at, now)
            statements.append(store.downtime_statement(stopped_at, now, clean))
            statements.append(store.outbox_downtime_statement(stopped_at, now))
        if downtime is not None:  # what they set once applied gets its extension then
            for check in held_open:
                self._hold_over(check, downtime)
        self._loading = None
        # The downtime extends deadlines first. A stored check not read yet is scheduled when it is.
        self._schedule_all((c for c in self.checks.values() if c.loaded), downtime)
        unread = [c for c in self.checks.values() if not c.loaded]
        self._loaded_downtime = downtime
        self._downtime_log = None if downtime is None else (downtime, now, clean, serving_since is not None)
        # Alive marks go on as the server answers, so a crash before every state is read leaves the
        # next start only its own downtime: the downtimes not applied to every state are kept
        # until they are (_loaded), for the next start to apply first.
        self._unapplied = list(earlier)
        if unread and downtime is not None and downtime.stopped_at < downtime.unserved:
            self._unapplied.append(downtime.own())
        if self._unapplied != earlier or (earlier and not unread):
            kept = self._unapplied if unread else []
            statements.append(store.meta_statement(UNREAD_DOWNTIMES, json.dumps(kept)))
        if not unread:
            self._unapplied = []
        statements.append(store.alive_statement(now))
        statements.append(store.clean_stop_statement(False))
        self.writer.submit_nowait(store.Write(statements=statements))
        for check in self.checks.values():
            if not check.loaded:
                continue
            if (
                before := stored.get(check.id)
            ) is not check.state and before != check.state:  # `is`: no 28-field compare
                self._unstored.note(check.id, now, self._next_ping_id)
        self.checkpoint()
        self._unread = unread  # after the checkpoint, which would read them (a stop's does)
        if not unread:
            self._loaded()
        await self.writer.flush()

    @property
    def reading_stored(self) -> bool:
        """Whether some of a restart's stored states are still unread (finish_load)."""
        return bool(self._unread)

    def _load_stored(self, check: Check, text: str) -> CheckState:
        """A stored check's state, read for the first time (Check.stored): decoded and brought
        to this load as load() brings the others (the config's changes, the restart's downtime),
        then scheduled; one that cannot be decoded is logged and watched afresh. So is one whose
        reading fails otherwise (a bug, memory): a check left unread would have no deadline at all.
        Its row is left as it is, for the next start to read, until the check changes; so are the
        pings it lacks (_pending), which the checkpoint mark stays below for as long."""
        pending = self._pending.get(check.id, ()) if self._pending else ()
        as_stored = check.ping_id_as_read
        try:
            decoded = self._decode(check.name, text)
            check.state = decoded or self._afresh(check.config)
            stored = self._bring_to_load(check, decoded, replay=pending)
        except Exception:
            log.exception("check %s: its stored state cannot be brought to this start; watching it afresh from"
                          " this start; the stored text was %.300r", check.name, text)  # fmt: skip
            check.state = stored = self._afresh(check.config)  # stored: not written over the row
            if pending:
                check.ping_id = as_stored
                first = pending[0].id
                self._kept_below = first if self._kept_below is None else min(self._kept_below, first)
        if pending:
            del self._pending[check.id]
        if self._loading is not None:  # during load(): its end schedules it, and stores a change
            self._loading[check.id] = stored
            return check.state
        self._schedule(check, self._fire_at(check, self._loaded_downtime))
        if check.state is stored:  # unchanged (or afresh, not written over the row)
            return stored
        if pending:  # replayed (one that could not be is afresh, `stored`)
            # Stored by the next checkpoints, not at once: 100k state rows queued during the read
            # held every ping's commit back behind them (p50 0.8 s). Until they are stored, the
            # checkpoint mark stays below their pings and the downtime stays kept (_settle_replay).
            self._unstored.note(check.id, self.clock.now(), pending[0].id)
            self._settle_after = self._unstored.noted()
        else:  # stored at once, as load() stores the states it changed
            self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
        return check.state

    def _bring_to_load(
        self, check: Check, decoded: CheckState | None, *, replay: Sequence[LoggedPing] = (), tell: bool = True
    ) -> CheckState:
        """Bring a stored check's state (`decoded`, or a fresh one in its place where it is None)
        to this load's config, then apply `replay` (its pings after the checkpoint, deferred by
        load()); returns what the store holds for it, which a state changed since is not equal
        to (a fresh one is stored). `tell`: queue the change a late check made on time has (a
        check back in the file is watched afresh instead, _bring_back)."""
        was = check.state
        # Pings held for the reorder window when it stopped: see _held_at_load; once the pings after
        # the checkpoint are replayed.
        if was.waiting and self._loading is not None:
            self._waiting_at_load.append(check)
        elif was.waiting and tell and not replay:
            self._held_lazily(check)
        before = check.state
        try:
            step = states.reconfigure(check.config, before, self.started_at, complete=tell)  # not tell: back
        except Exception:  # as a deadline that cannot be computed (_fire_at): the others go on
            log.exception("check %s: cannot bring its stored state to the config; keeping it as stored", check.name)
            step = states.Step(before, None)
        # The stored state itself when nothing moved (nearly always): not 100k copies kept
        # besides it until the end of the load, which the allocator would keep as well.
        if not (step.state is before or step.state == before):
            check.state = step.state
            # The file changed while stopped: a late check may be on time, a batch complete.
            if tell and (step.flip is not None or step.ended):
                self.writer.submit_nowait(self._change(check, step, before))
        for ping in replay:
            self._replay_one(check, ping)
        if replay and self._loading is None:  # during load(): as above
            self._held_lazily(check)
        return CheckState() if decoded is None else was

    def _held_at_load(self, check: Check, now: float) -> bool:
        """What a check held for the reorder window when it stopped, with the deadlines among them,
        applied before the downtime extends what they move, if the window passed while it was
        stopped. One still open (a quick restart, a cluster's hand-over) goes on: the timer applies
        them when it ends, so a ping still on its way to the new start counts first, and the
        downtime extends the deadlines they set then (_hold_over). True: it still holds them."""
        if check.state.waiting and now >= check.state.hold_until:
            self._apply_held(check, now, due=False)
        return bool(check.state.waiting)

    def _held_lazily(self, check: Check) -> None:
        """_held_at_load, for a stored state read after the load (the downtime is known then)."""
        if self._held_at_load(check, self.started_at) and self._loaded_downtime is not None:
            self._hold_over(check, self._loaded_downtime)

    @staticmethod
    def _hold_over(check: Check, downtime: Downtime) -> None:
        """A check whose held pings a restart left held: the deadlines they set once applied get its
        downtime's extension then (CheckState.held_over, states' _release), after those of the
        restarts before it within the window and of starts that died while reading the states
        (Downtime.earlier). Each counts for a held ping that arrived before its start: a start and
        the pings it takes do not overlap a downtime, whatever the lag of the alive mark that
        dates its stop."""
        st = check.state
        spans = [s for s in (*downtime.earlier, downtime.own()) if s[0] < s[1]]
        if spans:  # the newest few: a ping is held for seconds, over as many restarts at most
            held_over = tuple(sorted({*st.held_over, *spans}))[-WAITING_MAX:]
            check.state = dataclasses.replace(st, held_over=held_over)

    def _decode(self, name: str, text: str) -> CheckState | None:
        """A stored state; None for one that cannot be read (a damaged row), logged with its
        text: its check is watched afresh (_afresh), and a restart goes on with the others."""
        try:
            return decode_state(text, self._instants)
        except Exception as exc:  # noqa: BLE001 - any shape of damage (from_json's TypeError, say)
            log.error("check %s: its stored state cannot be read (%s: %s); watching it afresh from this start;"
                      " the stored text was %.300r", name, type(exc).__name__, exc, text)  # fmt: skip
            return None

    def _afresh(self, cfg: CheckConfig | None) -> CheckState:
        """In place of a state that cannot be read: watched from this start, as a new check."""
        now = self.started_at
        if cfg is not None:
            try:
                return states.initial_state(cfg, now)
            except Exception:  # its schedule cannot be computed: no deadline (logged as it is tried)
                log.exception("check %s: cannot compute its schedule", cfg.name)
        # A removed check's (its schedule is set if it comes back, rewatch), or one with none.
        return CheckState(
            changed_at=now, watched_from=now, anchor=now, due_at=math.inf, due_since=math.inf, told_at=now
        )

    def load_rest(self) -> None:
        """Read every stored check's state not read yet (before deadlines are judged, states
        stored at a stop or the maps rebuilt by a reload)."""
        unread, self._unread = self._unread, []
        for check in unread:
            self._read(check)
        self._loaded()

    def _read(self, check: Check) -> None:
        if check.loaded:
            return
        try:
            check.state  # noqa: B018 - reading it loads it
        except Exception:  # scheduling it failed too (_load_stored): the other checks are read all the same
            log.exception("check %s: its stored state could not be read", check.name)

    async def finish_load(self, alive: Callable[[], None]) -> None:
        """load_rest, a page at a time, pings answered in between (the timer's first work, `alive`
        called after each page). The states are built as a start builds them, out of the cyclic
        garbage collector's reach (longlived)."""
        if self._unread and self.read_after is not None:
            alive()
            await self.read_after.wait()
        unread = self._unread
        if unread:
            with longlived.building(again=True):  # again: pings in between made garbage of their own
                work = 0
                self._instants = {}  # a page's equal instants share one float, as read_checks does
                for check in unread:
                    if check.loaded:
                        continue
                    work += 3 + len(self._pending.get(check.id, ()))  # a replayed ping: a third of a read
                    self._read(check)
                    if work >= 3 * LOAD_PAGE:
                        work = 0
                        alive()
                        await asyncio.sleep(LOAD_PAUSE)
                        self._instants = {}
                alive()
        self._unread = []
        self._loaded()

    async def all_read(self) -> None:
        """Wait until every stored state is read (a view of all checks right after a restart
        reads them a page at a time, pings answered in between, not all at once)."""
        if self._unread:
            await self.finish_load(lambda: None)

    def _loaded(self) -> None:
        """Every state is read: the downtime is applied to all (its count logged) and stored."""
        self._instants = {}
        self._loaded_downtime = None
        self._pending = {}  # empty by now, but sized for every check that had some
        if self._downtime_log is not None:
            downtime, now, clean, led = self._downtime_log
            self._downtime_log = None
            log_downtime(self.log, downtime, now, clean, led)
        self._all_read = True
        self._settle_replay()
        # The file may have lost a window while Heartfly was stopped; holds a version before kept none of.
        self.release_holds(self.clock.now(), adopt=self._adopt_holds)
        if self._adopt_holds and not self._view:
            self._adopt_holds = False
            self.writer.submit_nowait(store.Write(statements=[store.meta_statement(windows.HOLDS_META, "1")]))
        self._holds_settled = True  # the windows' summaries may go from here: close_windows

    def _settle_replay(self) -> None:
        """Once every state is read and those that replayed pings are queued for storing (by the
        checkpoints that follow, _load_stored): the checkpoint mark may pass the deferred pings,
        but those of a state that could not be brought to this start, and the downtimes kept in
        UNREAD_DOWNTIMES are applied to all."""
        if not self._all_read or (self._settle_after and not self._unstored.stored_up_to(self._settle_after)):
            return
        self._all_read, self._settle_after = False, 0
        self._unstored.hold(self._kept_below)
        if self._unapplied:  # after the states each read stored (the writer commits in order)
            self._unapplied = []
            self.writer.submit_nowait(store.Write(statements=[store.meta_statement(UNREAD_DOWNTIMES, "[]")]))

    async def _replay(self, db: Reader, checkpoint: int) -> None:
        """Replay the pings committed after the checkpoint that the stored states lack: now, for a
        check whose state is read already; as it is read, for the others (_pending: a crash under
        load leaves some 200k pings over 100k checks, 3 s of work before the server would answer).
        The checkpoint mark stays below the first deferred one until every state is read."""
        replayed = 0
        pending = self._pending

        def applied_up_to(check_id: int) -> int | None:
            check = self._by_id.get(check_id)
            return check.ping_id_as_read if check is not None else None  # None: a removed check

        async for ping in unapplied(db.pings_after(checkpoint), applied_up_to):
            check = self._by_id[ping.check_id]
            if check.loaded:
                self._replay_one(check, ping)
                replayed += 1
            elif (deferred := pending.get(check.id)) is not None:
                deferred.append(ping)
            else:
                pending[check.id] = [ping]
                if len(pending) == 1:
                    self._unstored.hold(ping.id)
        if later := sum(map(len, pending.values())):
            self.log.info("replaying %d ping(s) committed after the last state checkpoint: %d now, %d as their"
                          " checks' stored states are read", replayed + later, replayed, later)  # fmt: skip
        elif replayed:
            self.log.info("replayed %d ping(s) committed after the last state checkpoint", replayed)

    def _replay_one(self, check: Check, ping: LoggedPing) -> None:
        old = check.state
        steps, _, _ = self._apply(check, ping.event(), ping.received_at, arm=False)
        check.ping_id = ping.id
        if check.state.waiting and self._loading is not None:  # applied once every ping is replayed
            self._waiting_at_load.append(check)
        if any(step.flip is not None or step.ended for step in steps):  # only if the config changed while stopped
            self.writer.submit_nowait(self._changes(check, steps, old))

    def _bring_back(self, check: Check, pings: list[LoggedPing], now: float) -> store.Write:
        """A check back in the config: apply the pings its stored state lacks (see Removed.stale),
        then watch it afresh. Its row stops being "removed" in the commit that stores its state: a
        crash in between must not leave it looking current with those pings never applied."""
        if check.state.window_hold is not None:  # a window's hold went with the check (taken out while stopped
            # too); one the pings replayed below give it now is its own, kept
            check.state = dataclasses.replace(check.state, window_hold=None, window_end=0.0)
        for ping in pings:
            self._replay_one(check, ping)
        if pings:
            self.log.info("check %s: replayed %d ping(s) from before it was removed", check.name, len(pings))
        self._apply_held(check, now, due=False)  # what it held, as of its times: not the deadlines since
        check.state = states.reconfigure(check.config, states.rewatch(check.config, check.state, now), now).state
        self._schedule(check)
        write = store.Write(state=self._mark_stored(check))
        write.statements.append(store.removed_statement(check.id, None))
        return write

    def _create(self, cfg: CheckConfig, now: float, statements: list[store.Statement]) -> Check:
        check = Check(self._next_check_id, cfg, states.initial_state(cfg, now))
        self._next_check_id += 1
        statements.append(store.insert_check_statement(check.id, cfg.name, now, check.state, self._new_texts))
        self._new_names.append(cfg.name)
        return check

    def removed_ids(self) -> list[int]:
        """The ids of the stored checks no longer in the config."""
        return [gone.id for gone in self._removed.values()]

    def _log_new(self) -> None:
        names, self._new_names = self._new_names, []
        self._new_texts = store.NewStateTexts()  # the next load's new checks are watched from another instant
        self._log_checks(names, "is new; watching it from now", "are new", "; watching them from now")

    def _log_checks(self, names: list[str], one: str, many: str, then: str = "; their history is kept") -> None:
        """One line per check for a handful; a count for a config of thousands (`check NAME <one>`,
        `N checks <many> (NAME, ...)<then>`)."""
        if len(names) <= NAMED_CHECKS:
            for name in names:
                self.log.info("check %s %s", name, one)
        else:
            shown = ", ".join(names[:NAMED_CHECKS])
            self.log.info("%d checks %s (%s, ...)%s", len(names), many, shown, then)

    def _add(self, check: Check) -> None:
        self.checks[check.name] = check
        self._by_id[check.id] = check
        cfg = check.config
        self._keys[cfg.key] = check
        if cfg.start_key:
            self._kind_keys[cfg.start_key] = (check, Kind.START)
        if cfg.fail_key:
            self._kind_keys[cfg.fail_key] = (check, Kind.FAIL)
