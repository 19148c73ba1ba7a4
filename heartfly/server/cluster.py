"""One node of a cluster on PostgreSQL: the lease (store/postgres_lease.py) says whether it leads.

The leader runs the engine as a single node does (deadlines, alerts, housekeeping), its writes
fenced by its term, and applies what standbys put in the inbox (store/inbox.py) before any
deadline fires. A standby takes pings and commands into the inbox (200 once committed there) and
shows the stored states through a view rebuilt from the database every second or so. The lease is
kept by a task of its own; losing it ends the term: its tasks stop and its queued writes are
dropped, never committed late (PostgreSQL would refuse them anyway: they are fenced by the term).
Every PostgreSQL database runs this way, a single node too: a cluster of one leads at its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import aiohttp

from heartfly.core.clock import Clock
from heartfly.core.config import Config
from heartfly.core.dburl import PostgresDatabase
from heartfly.core.stored_checks import META_PREFIX, decode_all
from heartfly.notify.dispatcher import Dispatcher
from heartfly.server import drift, heartbeat, housekeeping, viewage
from heartfly.server.checks import Check
from heartfly.server.engine import Engine
from heartfly.server.tasks import ran_to_its_end, watched
from heartfly.server.viewwriter import DROPPED
from heartfly.store import inbox
from heartfly.store import rows as store
from heartfly.store.api import OwnWriter, Reader, StoreError
from heartfly.store.inbox import Item
from heartfly.store.postgres import NewerSchema, Writer
from heartfly.store.postgres_inbox import InboxFeed
from heartfly.store.postgres_lease import Fence, Holding, Lease

log = logging.getLogger(__name__)

VIEW_EVERY = 1.0  # a standby rebuilds its view of the states at least this often...
VIEW_SHARE = 5.0  # ...and waits at least this many times as long as the last rebuild took
INBOX_POLL = 1.0  # the leader reads the inbox at least this often, notified or not
INBOX_PAGE = 1000
# A row of a check deleted through the API waits this long for a reload to bring its check back,
# moved into the file (heartfly export, then a reload of each node), before it is dropped.
DELETED_WAIT = 60.0
# A leader checkpoints states this soon: each standby's view replays the pings after the checkpoints
# every second, and must not replay half a minute of them (the engine's lazier default).
CHECKPOINT_AFTER = 1.0
STOPPING = "this node is stopping"  # a clean stop's why: its lease is freed as a clean stop's (status)


def node_id_of(config: Config) -> str:
    """[server] node_id, else this host, port and process: unique, so a restarted process waits
    for its predecessor's lease to pass (or be released by a clean stop) like any other node."""
    return config.server.node_id or f"{socket.gethostname()}:{config.server.port}:{os.getpid()}"


@dataclass
class _Term:
    """What one leadership holds, all of it dropped when it ends."""

    number: int
    writer: Writer
    engine: Engine
    feed: InboxFeed
    dispatcher: Dispatcher | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    in_flight: set[int] = field(default_factory=set)  # inbox rows applied, their commit pending
    unreadable: set[int] = field(default_factory=set)  # inbox rows of a newer Heartfly, said once
    unknown: dict[int, Item] = field(default_factory=dict)  # rows of a check this term's config lacks (yet)
    deleted: dict[int, float] = field(default_factory=dict)  # of those, a deleted check's: since (monotonic)
    drain_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    command: bool = False  # _apply just started a pause or resume


class Node:
    """This process in the cluster: leader or standby, and the switch between them."""

    def __init__(
        self,
        config: Callable[[], Config],
        clock: Clock,
        reader: Reader,
        writer: OwnWriter,
        session: aiohttp.ClientSession,
        publish: Callable[[Engine, Dispatcher | None], None],
        on_lead: Callable[[], Awaitable[None]] | None = None,
        died: Callable[[str], None] | None = None,
        outcomes: Counter[tuple[str, str]] | None = None,
    ) -> None:
        first = config()
        database = first.server.database
        assert isinstance(database, PostgresDatabase)
        self.database = database
        self.node_id = node_id_of(first)
        self.lease = Lease(database, self.node_id, first.server.lease)
        self.holding: Holding | None = None  # the lease as last read: who leads, in which term
        self.holding_read_at = 0.0  # by time.monotonic()
        self._config = config
        self._clock = clock
        self._reader = reader
        self._writer = writer  # the standby's (the inbox), unfenced
        self._session = session
        self._publish = publish
        self._term: _Term | None = None
        self._view: Engine | None = None  # the standby's, while it stands by
        self._serving_since = clock.now()  # pings are taken (into the inbox at least) from here
        self._lease_failing = False
        self._cannot_lead: str | None = None  # why this node must not lead (an older Heartfly)
        self._hold_off_until = 0.0  # by time.monotonic(): not before this, after failing to lead
        self._before: Holding | None = None  # the lease before this node took it, for the log
        self._changed = asyncio.Event()  # what the lease holds for this node changed
        self._on_lead = on_lead
        self._died, self._dead = died, False  # a term's task died: see _term_died
        self._outcomes = Counter() if outcomes is None else outcomes  # every term's alert attempts (/metrics)
        self._drift = drift.DriftTeller(self.node_id)
        self._keeper: asyncio.Task[None] | None = None  # keeps the lease, from start() on
        self._viewing: asyncio.Task[None] | None = None  # a standby's view being built (_stand_by)
        self.view_age = viewage.ViewAge(self.node_id)  # how old the standby's view is (/readyz)

    @property
    def leading(self) -> bool:
        return self._term is not None

    @property
    def lease_unreadable(self) -> bool:
        """Whether the lease has not been read for longer than its length, its reads failing (the
        database cannot be reached): not a blip a renewal later takes back."""
        return self._lease_failing and time.monotonic() - self.holding_read_at > self.lease.length

    @property
    def term(self) -> int | None:
        return None if self._term is None else self._term.number

    async def start(self) -> None:
        """Lead now if the lease is free, else start as a standby. The lease is kept from here on
        (a task of its own, run() goes on with it): a first term's start, which makes every new
        check's row, can take longer than the lease with a big config."""
        await self._renew()
        self._keeper = asyncio.create_task(self._keep_lease(), name="heartfly-lease")
        try:
            await self._settle()
            while self._term is None and not await self._stand_by():  # the lease taken meanwhile: lead
                await self._settle()
        except BaseException:  # failed, or given up (a SIGTERM): the lease is freed now, not left to pass
            await self._stop_keeper()
            await self.stop()
            raise

    async def run(self) -> None:
        """Keep the lease (a task of its own: a term's slow start must not let it pass), follow it
        into leading or standing by, and keep the standby's view fresh, until cancelled."""
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_lease(), name="heartfly-lease")
        last_view = view_took = 0.0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(VIEW_EVERY / 2):
                        await self._changed.wait()
                self._changed.clear()
                try:
                    await self._settle()
                    if self._view is not None:  # the standby's liveness, as the leader's timer shows its own
                        self._view.timer_alive.mark(self._clock.now())
                    due = max(VIEW_EVERY, VIEW_SHARE * view_took)
                    if self._term is None and time.monotonic() - last_view >= due:
                        began = time.monotonic()
                        try:
                            await self._stand_by()  # given up if the lease is taken: settled next turn
                        except StoreError as exc:
                            self.view_age.failed(str(exc))
                        last_view = time.monotonic()
                        view_took = last_view - began
                except Exception:  # this loop is the node's role: it must outlive any one failure
                    log.exception("node %s: a change of role failed; trying again", self.node_id)
                    await asyncio.sleep(VIEW_EVERY)
        finally:
            await self._stop_keeper()

    async def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def stop_sending(self, grace: float) -> None:
        """A clean stop's first step, run() and the lease still kept: the leader starts no alert
        attempt and waits up to `grace` for those under way, so that their outcome is committed
        in its term (cut off, they stay pending and the next leader sends them a second time)."""
        term = self._term
        if term is not None and term.dispatcher is not None:
            await term.dispatcher.stop(grace)

    async def stop(self, clean: bool = True) -> None:
        """A stop: the leader records it (`clean` False: a task died, an unclean one) and frees the lease."""
        await self._stop_keeper()  # not renewed while it is freed
        if self._term is not None:
            await self._end_term(STOPPING, clean=True, recorded_clean=clean and not self._dead)
        await self.lease.close()

    # ---- the lease ------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        while True:
            leading = self.lease.term is not None
            await asyncio.sleep(self.lease.length / 4 if leading else min(0.5, self.lease.length / 4))
            try:
                await self._renew()
            except Exception:
                log.exception("node %s: renewing the lease failed; trying again", self.node_id)

    async def _renew(self) -> None:
        """Renew or take the lease (or only read it, while this node must not lead), and wake the
        role loop when what this node holds changed."""
        length = self.lease.length
        held = self.lease.term if self.lease.is_leader else None
        term = self._term
        if term is not None and (sick := self._cannot_fire(term.engine)) is not None:
            log.error("node %s: %s; giving the lease up", self.node_id, sick)
            self._hold_off_until = time.monotonic() + 2 * length
            await self.lease.release(clean=False)
        try:
            async with asyncio.timeout(length):  # a renewal answered later is no good anyway
                may_lead = self._cannot_lead is None and time.monotonic() >= self._hold_off_until
                if may_lead and await self.lease.acquire_or_renew():
                    assert self.lease.term is not None
                    self._before = self.holding
                    self.holding = Holding(self.node_id, self.lease.term, length)
                else:
                    self.holding = await self.lease.holding()
        except (StoreError, TimeoutError) as exc:
            if not self._lease_failing:
                why = "no answer within the lease" if isinstance(exc, TimeoutError) else str(exc)
                log.error("node %s cannot reach the lease (%s); retrying", self.node_id, why)
            self._lease_failing = True
        else:
            if self._lease_failing:  # cut off, it took no pings: a gap it ends counts from here (load)
                log.warning("node %s reaches the lease again", self.node_id)
                self._serving_since = self._clock.now()
            self._lease_failing = False
            self.holding_read_at = time.monotonic()  # only a read that came back: its age is /readyz's
            if self._view is not None:  # a standby is alive while it reads the lease, its view rebuilt or not
                self._view.timer_alive.mark(self._clock.now())
        now_held = self.lease.term if self.lease.is_leader else None
        if now_held != held or now_held != self.term:
            self._changed.set()
        if now_held is not None and self._term is None and self._viewing is not None:
            self._viewing.cancel()  # this node is to lead: no standby's view keeps it from it (_stand_by)

    def _cannot_fire(self, engine: Engine) -> str | None:
        """Why this leader's deadlines cannot fire (its timer stopped, or they wait on an inbox it
        cannot read), or None: another node may do better."""
        stale = engine.timer_alive.stuck()  # not asleep: a freeze within the lease is the timer's to judge
        if stale is not None:
            return f"its deadline timer has not run for {stale:.0f} s"
        held = engine.held_back()
        return None if held is None else heartbeat.held_words(held)

    async def _settle(self) -> None:
        """Lead in the term the lease holds for this node, or stand by."""
        held = self.lease.term if self.lease.is_leader else None
        if self._term is not None and self._term.number != held:
            if held is not None:
                why = f"its lease passed before it was renewed (a pause?); term {held} begins"
            elif self._lease_failing:
                why = "the lease could not be renewed"
            else:
                why = "another node holds the lease"
            await self._end_term(why)
        if self._term is None and held is not None:
            await self._begin_term(held, self._before)

    # ---- leading --------------------------------------------------------------------------

    async def _begin_term(self, number: int, before: Holding | None) -> None:
        config = self._config()
        writer = feed = None
        try:
            writer = await Writer.open(self.database, fence=Fence(self.node_id, number, self.lease.length))
            writer.start()
            engine = Engine(config, self._clock, writer)
            engine.checkpoint_after = CHECKPOINT_AFTER
            feed = InboxFeed(self.database)
            term = _Term(number, writer, engine, feed)
            await engine.load(self._reader, serving_since=self._serving_since)
            if not await self._drain_within(term):
                raise StoreError("the inbox could not be read")
        except BaseException as exc:
            if not isinstance(exc, StoreError | OSError):  # a stop (cancelled), or a fault: what it opened is closed
                why = STOPPING if isinstance(exc, asyncio.CancelledError) else "this node could not begin to lead"
                await self._give_up_term(number, writer, feed, why)  # only a stop's lease reads as a clean stop
                raise
            if isinstance(exc, NewerSchema):  # a newer node upgraded the database: it leads, this one stands by
                self._cannot_lead = str(exc)
                log.error("node %s will not lead: %s; it stands by, taking pings, until it is upgraded",
                          self.node_id, exc)  # fmt: skip
            else:
                log.error("node %s took the lease (term %d) but cannot lead: %s; giving it up for %g s",
                          self.node_id, number, exc, 2 * self.lease.length)  # fmt: skip
                self._hold_off_until = time.monotonic() + 2 * self.lease.length
            await self._give_up_term(number, writer, feed, "this node could not begin to lead")
            return
        self._term = term
        engine.before_fire = self._before_fire
        dispatcher = Dispatcher(
            config, self._clock, writer, self._reader, self._session, self._may_act, engine.name_of, self._outcomes
        )
        term.dispatcher = dispatcher
        engine.on_alerts = dispatcher.wake
        engine.timer_alive.mark(self._clock.now())  # alive from here: a renewal before its first turn is no stall
        died = self._term_died
        term.tasks = [
            watched(engine.run_timer(), "heartfly-timer", died),
            watched(housekeeping.run(engine, reader=self._reader), "heartfly-housekeeping", died),
            watched(dispatcher.run(), "heartfly-dispatcher", died),
            watched(self._follow_inbox(term), "heartfly-inbox", died),
            watched(
                heartbeat.run(self._config, lambda: engine, self._session, self._may_act), "heartfly-heartbeat", died
            ),
        ]
        self._view = None
        self._publish(engine, dispatcher)
        previous = ""
        if before is not None and before.holder and before.holder != self.node_id:
            previous = f" after {before.holder} (term {before.term})"
        log.info("node %s leads the cluster, term %d%s", self.node_id, number, previous)
        if self._config() is not config:  # reloaded while this term began
            await engine.apply_config(self._config())
            dispatcher.config = self._config()
        if self._on_lead is not None:
            await self._on_lead()

    def _term_died(self, why: str) -> None:
        """A term's task died (tasks.watched, as a single server's): the process stops (`died`),
        which frees the lease for a standby (no alert sender gone, the lease kept); unclean."""
        self._dead = True
        if self._died is not None:
            self._died(why)

    async def _give_up_term(self, number: int, writer: Writer | None, feed: InboxFeed | None, why: str) -> None:
        if writer is not None:  # first: a commit under way holds the lease row that a release updates
            await writer.abandon(why)
        if feed is not None:
            await feed.close()
        if self.lease.term == number:
            await self.lease.release(clean=why == STOPPING)

    async def _end_term(self, why: str, *, clean: bool = False, recorded_clean: bool = True) -> None:
        term, self._term = self._term, None
        assert term is not None
        for task in term.tasks:
            task.cancel()
        await asyncio.gather(*term.tasks, return_exceptions=True)  # one that failed was logged as it died (watched)
        if term.dispatcher is not None:
            await term.dispatcher.stop()
        if clean and self.lease.is_leader and self.lease.term == term.number:
            try:
                await housekeeping.mark_stopped(term.engine, clean=recorded_clean)
                await term.writer.close()
            except StoreError as exc:
                log.warning("node %s: the clean stop was not recorded: %s", self.node_id, exc)
                await term.writer.abandon(why)
                recorded_clean = False  # nor is its lease freed as a clean stop's (status)
            await self.lease.release(clean=recorded_clean)
        else:  # what it queued is dropped: committed now, it would be refused, or worse, late
            await term.writer.abandon(f"this node no longer leads: {why}")
        await term.feed.close()
        self._serving_since = self._clock.now()
        self.view_age = viewage.ViewAge(self.node_id)  # a standby again: its picture counts from here
        log.log(logging.INFO if clean else logging.WARNING, "node %s no longer leads (term %d): %s",
                self.node_id, term.number, why)  # fmt: skip
        if not clean:  # given up, as a standby's, should this node take the lease meanwhile (_stand_by)
            with contextlib.suppress(StoreError):
                await self._stand_by()

    def _may_act(self) -> bool:
        """Whether this node may fire and send now: it leads by its own clock."""
        return self._term is not None and self.lease.is_leader

    async def _before_fire(self) -> bool:
        """Before deadlines fire: pings standbys took are applied first (no false alarm for a ping
        that was answered 200 before its deadline)."""
        term = self._term
        if term is None or not self.lease.is_leader:
            return False
        return await self._drain_within(term) and self._may_act()  # still leading after the read

    async def _drain_within(self, term: _Term) -> bool:
        """_drain, given up after a lease: a read that hangs (a table locked, a connection gone
        silent) must not keep a node that holds the lease from leading, or from saying so."""
        try:
            async with asyncio.timeout(self.lease.length):
                return await self._drain(term)
        except TimeoutError:
            return False

    async def _follow_inbox(self, term: _Term) -> None:
        failing = False
        while True:
            try:
                await term.feed.wait(INBOX_POLL)
            except StoreError as exc:
                if not failing:
                    log.error("node %s cannot listen to the inbox (%s); reading it every %g s", self.node_id, exc,
                              INBOX_POLL)  # fmt: skip
                failing = True
                await asyncio.sleep(INBOX_POLL)
            else:
                failing = False
            await self._drain(term)

    async def _drain(self, term: _Term) -> bool:
        """Apply all the inbox holds, page by page; False if it cannot be read or what it holds
        cannot be applied now (writes fail): deadlines must not fire on a partial picture."""
        async with term.drain_lock:
            while True:
                if term.writer.failing:
                    return False
                # A row for an unknown check is read again once a reload brought its check in.
                # A deleted check's is read again once it has waited DELETED_WAIT, to be dropped.
                waited = time.monotonic() - DELETED_WAIT
                unknown = {i for i, item in term.unknown.items() if _waiting(term, i, item, waited)}
                try:
                    rows = await term.feed.read(INBOX_PAGE, skip=term.in_flight | term.unreadable | unknown)
                except StoreError as exc:
                    log.debug("the inbox was not read: %s", exc)
                    return False
                for item_id, check_name, body in rows:
                    try:
                        item = inbox.read(item_id, check_name, body)
                    except ValueError as exc:  # kept for a leader that can read it (a newer Heartfly)
                        log.error("%s; left in the inbox for a leader that can read it", exc)
                        term.unreadable.add(item_id)
                    else:
                        gone = item.id in term.deleted
                        if not gone and _check_of(term.engine, item) is None:
                            gone = await self._deleted(item)
                        if gone and not _back(term.engine, item):
                            if item.id not in term.deleted:
                                log.info("a standby took a %s for check %s, deleted through the API since; kept in the"
                                         " inbox for %g s for a reload to bring it back (moved into the file), then"
                                         " dropped", item.op, item.check_name, DELETED_WAIT)  # fmt: skip
                            since = term.deleted.setdefault(item.id, time.monotonic())
                            if time.monotonic() - since < DELETED_WAIT:
                                term.unknown[item.id] = _which(item)
                                continue
                            term.unknown.pop(item.id, None)
                            del term.deleted[item.id]
                            _drop(term, item)
                        else:
                            term.deleted.pop(item.id, None)  # its check back, if it was deleted
                            term.unknown.pop(item.id, None)  # read again, its check come (else _apply keeps it)
                            if not self._apply(term, item):
                                return False
                        if term.command:
                            # A pause or resume changes the state in its task's first step (it then
                            # awaits its commit): let it run before the rows after it are applied,
                            # or a ping that came after the operator's resume finds the check paused.
                            term.command = False
                            await asyncio.sleep(0)
                if len(rows) < INBOX_PAGE:
                    return True

    async def _deleted(self, item: Item) -> bool:
        """Whether a row of a check made through the API is for one deleted since (the standby took
        it before it read the delete): no stored check has its key or its name. One made on another
        node this node has not read yet is stored, and waits in the inbox until this node reads it
        (so does one of a name two nodes made at once, which counts under the name)."""
        if not item.stored or item.key is None:
            return False
        try:
            # Its name first, a row or so: a check made on another node that this one has not read
            # yet (a ping's auto-provisioning on a standby, say) must not cost a read of them all.
            name = META_PREFIX + item.check_name
            if name in await self._reader.read_meta_prefix(name):
                return False
            found, _ = decode_all(await self._reader.read_meta_prefix(META_PREFIX))
        except StoreError:
            return False  # kept: read again by the next term
        return item.check_name not in found and all(c.table.get("key") != item.key for c in found.values())

    def _apply(self, term: _Term, item: Item) -> bool:
        """Apply one inbox item; False if it was refused at once (writes fail)."""
        engine = term.engine
        check = _check_of(engine, item)
        if check is None:  # kept: a node reloaded before this one took it (this one's reload applies it)
            log.warning("a standby took a %s for check %s, which is not in this node's config; kept in the inbox",
                        item.op, item.check_name)  # fmt: skip
            term.unknown[item.id] = _which(item)
            return True
        done: asyncio.Future[None]
        if item.op == "ping":
            done = engine.record(check, item.pings[0], item.id)
        elif item.op == "batch":
            done, _ = engine.record_batch(check, item.pings, item.id)
        elif item.op == "pause":
            done = asyncio.ensure_future(engine.pause(check, item.id, item.at))
        else:
            done = asyncio.ensure_future(engine.resume(check, item.why or "resumed by an operator", item.id, item.at))
        if done.done() and not done.cancelled() and done.exception() is not None:
            return False  # refused before it was applied: the row stays for the next read
        term.in_flight.add(item.id)
        carried = item.op in ("pause", "resume")  # a failed commit's command is retried by the writer
        term.command = carried

        def settled(fut: asyncio.Future[None]) -> None:
            failed = fut.cancelled() or fut.exception() is not None
            if not (failed and carried):  # a refused ping leaves its row, applied again next time
                term.in_flight.discard(item.id)

        done.add_done_callback(settled)
        return True

    # ---- standing by ----------------------------------------------------------------------

    async def _stand_by(self) -> bool:
        """_show_view, given up (False) should this node take the lease meanwhile: a big config's view
        takes seconds, and a node holding the lease must lead at once (none fires deadlines, nor takes over)."""
        if self.lease.is_leader:  # already taken (a term that passed, taken again in a new one): lead
            return False
        task = self._viewing = asyncio.create_task(self._show_view(), name="heartfly-view")
        try:
            return await ran_to_its_end(task)  # cancelled by _keep_lease's renewal that took the lease
        finally:
            self._viewing = None

    async def _show_view(self) -> None:
        """A fresh picture of the stored states for the dashboard and the API, and an engine whose
        pings go to the inbox."""
        config, began = self._config(), time.monotonic()
        view = Engine(config, self._clock, DROPPED)
        view.standby = (self.node_id, self._writer)
        await view.load(self._reader, view=True)
        while self._config() is not config:  # reloaded, or a check made through the API, meanwhile
            config = self._config()
            await view.apply_config(config)
        view.timer_alive.mark(self._clock.now())
        if self._term is None:  # not promoted meanwhile
            self._view = view
            self._publish(view, None)
            self.view_age.built(time.monotonic() - began)
            self._drift.see(drift.of_leader(view.drift, self.holding))  # with no leader, nobody writes the rows


def _drop(term: _Term, item: Item) -> None:
    log.warning("a standby took a %s for check %s, deleted through the API since; dropped from the inbox",
                item.op, item.check_name)  # fmt: skip
    term.in_flight.add(item.id)

    def settled(fut: asyncio.Future[None]) -> None:  # not dropped (writes fail): read again next time
        term.in_flight.discard(item.id)
        if not fut.cancelled():
            fut.exception()

    term.writer.submit(store.Write(inbox_done=[item.id])).add_done_callback(settled)


def _waiting(term: _Term, item_id: int, item: Item, waited: float) -> bool:
    """Whether an inbox row kept unapplied is left out of the next read: its check still unknown
    (a deleted one's, until it has waited since `waited`)."""
    if item_id in term.deleted:
        return term.deleted[item_id] > waited and not _back(term.engine, item)
    return _check_of(term.engine, item) is None


def _back(engine: Engine, item: Item) -> bool:
    """Whether a row of a check deleted through the API has its check back: moved into the file
    (its name), or its key; not another check made through the API under its name since."""
    check = _check_of(engine, item)
    return check is not None and (check.config.origin == "file" or check.config.key == item.key)


def _which(item: Item) -> Item:
    """What a row kept in the inbox is remembered by (which check it is for): not its pings, whose
    bodies it may keep for a long time (a standby whose file has a check the leader's lacks)."""
    return replace(item, pings=())


def _check_of(engine: Engine, item: Item) -> Check | None:
    """The check an inbox row is for: by its name, else the check made through the API that its
    key names under another name: renamed (on any node) after the standby took the row, or before
    this node read the rename. Its uuid is its key and goes with it, so the key names it in both
    cases; a file's check waits for its name."""
    check = engine.lookup_name(item.check_name)
    if check is not None or item.key is None:
        return check
    found = engine.lookup_key(item.key)
    if found is None or found[1] is not None or found[0].config.origin == "file":
        return None
    return found[0]
