"""One node of a cluster on PostgreSQL: the lease (store/postgres_lease.py) says whether it leads.

The leader runs the engine as a single node does (deadlines, alerts, housekeeping), its writes
fenced by its term, and applies what standbys put in the inbox (store/inbox.py) before any
deadline fires. A standby takes pings and commands into the inbox (200 once committed there) and
shows the stored states through a view rebuilt from the database every second or so. Losing the
lease (or a fenced write refused) ends the term at once: its tasks stop and its queued writes are
dropped, never committed late. Every PostgreSQL database runs this way, a single node too: a
cluster of one leads as soon as it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from heartfly.core.clock import Clock
from heartfly.core.config import Config
from heartfly.core.dburl import PostgresDatabase
from heartfly.notify.dispatcher import Dispatcher
from heartfly.server import heartbeat, housekeeping
from heartfly.server.engine import Engine
from heartfly.store import inbox
from heartfly.store import rows as store
from heartfly.store.api import OwnWriter, Reader, StoreError
from heartfly.store.inbox import Item
from heartfly.store.postgres import NewerSchema, Writer
from heartfly.store.postgres_inbox import InboxFeed
from heartfly.store.postgres_lease import Holding, Lease

log = logging.getLogger(__name__)

VIEW_EVERY = 1.0  # a standby rebuilds its view of the states at least this often...
VIEW_SHARE = 5.0  # ...and waits at least this many times as long as the last rebuild took
INBOX_POLL = 1.0  # the leader reads the inbox at least this often, notified or not
# A leader checkpoints states this soon: each standby's view replays the pings after the checkpoints
# every second, and must not replay half a minute of them (the engine's lazier default).
CHECKPOINT_AFTER = 1.0


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
    drain_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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

    @property
    def leading(self) -> bool:
        return self._term is not None

    @property
    def term(self) -> int | None:
        return None if self._term is None else self._term.number

    async def start(self) -> None:
        """Lead now if the lease is free, else start as a standby."""
        await self._step()
        if self._term is None:
            await self._show_view()

    async def run(self) -> None:
        """Keep the lease (or wait for it) and the standby's view, until cancelled."""
        length = self.lease.length
        last_view = 0.0
        view_took = 0.0
        while True:
            await asyncio.sleep(length / 4 if self._term is not None else min(0.5, length / 4))
            await self._step()
            if self._view is not None:  # the standby's liveness, as the leader's timer shows its own
                self._view.timer_alive_at = self._clock.now()
            if self._term is None and time.monotonic() - last_view >= max(VIEW_EVERY, VIEW_SHARE * view_took):
                began = time.monotonic()
                try:
                    await self._show_view()
                except StoreError as exc:
                    log.debug("the standby's view was not rebuilt: %s", exc)
                last_view = time.monotonic()
                view_took = last_view - began

    async def stop(self) -> None:
        """A clean stop: the leader records it and frees the lease for a standby at once."""
        if self._term is not None:
            await self._end_term("this node is stopping", clean=True)
        await self.lease.close()

    # ---- the lease ------------------------------------------------------------------------

    async def _step(self) -> None:
        """Renew or take the lease, and become leader or standby accordingly."""
        length = self.lease.length
        try:
            async with asyncio.timeout(length):  # a renewal answered later is no good anyway
                leads = self._cannot_lead is None and await self.lease.acquire_or_renew()
                if not leads:
                    self.holding = await self.lease.holding()
        except (StoreError, TimeoutError) as exc:
            leads = False
            if not self._lease_failing:
                why = "no answer within the lease" if isinstance(exc, TimeoutError) else str(exc)
                log.error("node %s cannot reach the lease (%s); retrying", self.node_id, why)
            self._lease_failing = True
        else:
            if self._lease_failing:
                log.warning("node %s reaches the lease again", self.node_id)
            self._lease_failing = False
        self.holding_read_at = time.monotonic()
        if leads:
            term = self.lease.term
            assert term is not None
            before, self.holding = self.holding, Holding(self.node_id, term, length)
            if self._term is not None and self._term.number != term:  # a renewal keeps its term
                await self._end_term(f"its lease passed before it was renewed (a pause?); term {term} begins")
            if self._term is None:
                await self._begin_term(term, before)
        elif self._term is not None:
            why = "the lease could not be renewed" if self._lease_failing else "another node holds the lease"
            await self._end_term(why)

    # ---- leading --------------------------------------------------------------------------

    async def _begin_term(self, number: int, before: Holding | None) -> None:
        config = self._config()
        writer = feed = None
        try:
            writer = await Writer.open(self.database, fence=(self.node_id, number))
            writer.start()
            engine = Engine(config, self._clock, writer)
            engine.checkpoint_after = CHECKPOINT_AFTER
            feed = InboxFeed(self.database)
            term = _Term(number, writer, engine, feed)
            await engine.load(self._reader, serving_since=self._serving_since)
            await self._drain(term)
        except (StoreError, OSError) as exc:
            if isinstance(exc, NewerSchema):  # a newer node upgraded the database: it leads, this one stands by
                self._cannot_lead = str(exc)
                log.error("node %s will not lead: %s; it stands by, taking pings, until it is upgraded",
                          self.node_id, exc)  # fmt: skip
            else:
                log.error("node %s took the lease (term %d) but cannot lead: %s; giving it up", self.node_id, number,
                          exc)  # fmt: skip
            if writer is not None:
                await writer.abandon("this node could not begin to lead")
            if feed is not None:
                await feed.close()
            await self.lease.release()
            return
        self._term = term
        engine.before_fire = self._before_fire
        dispatcher = Dispatcher(config, self._clock, writer, self._reader, self._session, may_send=self._may_act)
        term.dispatcher = dispatcher
        engine.on_alerts = dispatcher.wake
        term.tasks = [
            asyncio.create_task(engine.run_timer(), name="heartfly-timer"),
            asyncio.create_task(housekeeping.run(engine), name="heartfly-housekeeping"),
            asyncio.create_task(dispatcher.run(), name="heartfly-dispatcher"),
            asyncio.create_task(self._follow_inbox(term), name="heartfly-inbox"),
            asyncio.create_task(heartbeat.run(self._config, lambda: engine, self._session), name="heartfly-heartbeat"),
        ]
        self._view = None
        self._publish(engine, dispatcher)
        previous = ""
        if before is not None and before.holder and before.holder != self.node_id:
            previous = f" after {before.holder} (term {before.term})"
        log.info("node %s leads the cluster, term %d%s", self.node_id, number, previous)

    async def _end_term(self, why: str, *, clean: bool = False) -> None:
        term, self._term = self._term, None
        assert term is not None
        for task in term.tasks:
            task.cancel()
        for task in term.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if term.dispatcher is not None:
            await term.dispatcher.stop()
        if clean and self.lease.is_leader:
            try:
                await housekeeping.mark_stopped(term.engine)
                await term.writer.close()
            except StoreError as exc:
                log.warning("node %s: the clean stop was not recorded: %s", self.node_id, exc)
                await term.writer.abandon(why)
            await self.lease.release()
        else:
            await term.writer.abandon(f"this node no longer leads: {why}")
            await self.lease.release()
        await term.feed.close()
        self._serving_since = self._clock.now()
        log.log(logging.INFO if clean else logging.WARNING, "node %s no longer leads (term %d): %s",
                self.node_id, term.number, why)  # fmt: skip
        if not clean:
            with contextlib.suppress(StoreError):
                await self._show_view()

    def _may_act(self) -> bool:
        """Whether this node may fire and send now: it leads by its own clock."""
        return self._term is not None and self.lease.is_leader

    async def _before_fire(self) -> bool:
        """Before deadlines fire: pings standbys took are applied first (no false alarm for a ping
        that was answered 200 before its deadline)."""
        term = self._term
        return term is not None and self.lease.is_leader and await self._drain(term)

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
        """Apply what the inbox holds; False if it cannot be read."""
        async with term.drain_lock:
            try:
                rows = await term.feed.read(skip=term.in_flight | term.unreadable)
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
                    self._apply(term, item)
            return True

    def _apply(self, term: _Term, item: Item) -> None:
        engine = term.engine
        check = engine.lookup_name(item.check_name)
        if check is None:
            log.warning("a standby took a %s for check %s, which is not in this node's config; dropped",
                        item.op, item.check_name)  # fmt: skip
            term.writer.submit_nowait(store.Write(inbox_done=[item.id]))
            return
        done: asyncio.Future[None]
        if item.op == "ping":
            done = engine.record(check, item.pings[0], item.id)
        elif item.op == "batch":
            done, _ = engine.record_batch(check, item.pings, item.id)
        elif item.op == "pause":
            done = asyncio.ensure_future(engine.pause(check, item.id))
        else:
            done = asyncio.ensure_future(engine.resume(check, item.why or "resumed by an operator", item.id))
        term.in_flight.add(item.id)

        def settled(fut: asyncio.Future[None]) -> None:
            term.in_flight.discard(item.id)
            if not fut.cancelled():
                fut.exception()  # a refused commit leaves the row, applied again next time

        done.add_done_callback(settled)

    # ---- standing by ----------------------------------------------------------------------

    async def _show_view(self) -> None:
        """A fresh picture of the stored states for the dashboard and the API, and an engine whose
        pings go to the inbox."""
        view = Engine(self._config(), self._clock, _DROPPED)
        view.standby = (self.node_id, self._writer)
        await view.load(self._reader, view=True)
        view.timer_alive_at = self._clock.now()
        if self._term is None:  # not promoted meanwhile
            self._view = view
            self._publish(view, None)


class _Dropped:
    """The writer of a standby's view: the view's rows (checkpoints, alive marks) are the leader's
    to write, so they go nowhere."""

    failing = False
    lost: str | None = None
    commits = 0

    def watch_file(self) -> None:
        pass

    def submit(self, write: store.Write) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def submit_nowait(self, write: store.Write) -> None:
        pass

    def refused(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_exception(StoreError("a standby's view stores nothing"))
        return done

    async def flush(self) -> None:
        pass


_DROPPED = _Dropped()
