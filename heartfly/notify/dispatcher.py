"""Delivers the outbox: at least once, with retries, one attempt row per try.

Each due outbox row gets a task of its own behind a per-channel limit, so a hung webhook
never delays email. A check's alerts go out in order on each channel (outboxqueries.read_due_alerts);
a reminder with a newer alert behind it, or of a check no longer down, is superseded, not sent,
and in the same write the stale reminders queued behind it. An attempt that fails for a reason
that may pass (timeout, 5xx, server down) is retried with capped exponential backoff and jitter
until its row expires; a permanent failure (4xx, refused recipient) stops at once.
Restarts lose nothing: the rows wait in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from enum import StrEnum
from typing import Any

import aiohttp

from heartfly.core.clock import SLEPT_MIN, Clock
from heartfly.core.config import Config
from heartfly.core.config_alerts import ChannelConfig
from heartfly.core.printable import escape
from heartfly.core.statetypes import AlertEvent, Status
from heartfly.core.units import human_duration
from heartfly.notify import DeliveryError, PermanentError, apprise_channel, email, log_channel, webhook
from heartfly.notify.message import Alert
from heartfly.store import rows as store
from heartfly.store.api import Reader, StoreError, WriteQueue
from heartfly.store.outboxqueries import GONE_FROM_CONFIG, OutboxItem
from heartfly.store.rows import Statement

log = logging.getLogger(__name__)

SAFETY_POLL = 30.0  # seconds: wake up at least this often, whatever the wake-ups said
READ_RETRY = 1.0  # seconds between reads of the outbox while reading it fails
DUE_PER_CHANNEL = 100  # due rows read per channel at a time: enough to keep `concurrency` busy
SUPERSEDE_AT_ONCE = 1000  # stale reminders superseded along with their group's head, in one write
# Seconds a clean stop waits for the attempts under way to end (and their outcome to be queued for
# the writer, which commits it before the database closes). Cancelled, an email whose message the
# server had taken went again after the next start. Within systemd's TimeoutStopSec (20 s) with the
# 5 s the pings in flight get.
STOP_GRACE = 5.0


class AttemptOutcome(StrEnum):
    """How one delivery attempt ended: the alert_attempts outcome column (and, but for retry, the
    outbox row's status), the API's attempt log and a metrics label, all as these strings."""

    SENT = "sent"
    RETRY = "retry"  # failed for a reason that may pass: tried again after a backoff
    FAILED = "failed"  # permanently: not tried again
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # a stale reminder: a newer alert of its check tells more, or it is up


async def send_to(
    config: Config,
    session: aiohttp.ClientSession,
    channel: ChannelConfig,
    alert: Alert,
    reached: set[str],
    limit: asyncio.Timeout,
) -> None:
    """One attempt at one channel: the outbox's, and a trouble alert's (server.selfwatch). The
    time limit is the sender's to move on (email: while a server takes the message). `reached`: the
    recipients (email addresses, apprise URLs) an earlier attempt of the alert reached; the sender
    adds those it reaches."""
    if channel.type == "email":
        assert config.smtp is not None  # config validation requires [smtp] for email channels
        await email.send(config.smtp, channel, alert, reached, limit)
    elif channel.type == "webhook":
        await webhook.send(session, channel, alert)
    elif channel.type == "apprise":
        await apprise_channel.send(channel, alert, reached)
    else:
        await log_channel.send(channel, alert)


def backoff(attempt: int, initial: float, most: float, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (1-based): doubling, capped, with jitter in [0.5, 1]."""
    # The exponent is capped too: 2.0 ** 1024 overflows, and an alert can be tried thousands of times.
    return min(most, initial * 2.0 ** min(attempt - 1, 60)) * rng.uniform(0.5, 1.0)


LAST_TRY = 1.0  # seconds before its expiry: an alert whose next retry would come after it is tried then


def next_try(
    ended: float,
    attempt: int,
    expires_at: float,
    initial: float,
    most: float,
    rng: random.Random,
    asked: float | None = None,
) -> float | None:
    """When to try again after failed attempt number `attempt` that ended at `ended`; None when it
    expires instead. `asked`: the wait the receiver asked for (Retry-After), kept to if longer than
    the backoff, up to `most`: a rate-limited webhook tried sooner only answers 429 again. A retry
    put past the expiry comes just before it: giving up at the backoff's word left up to retry_max
    (15 min) of the alert's life untried."""
    at = ended + max(backoff(attempt, initial, most, rng), min(asked or 0.0, most))
    if at <= expires_at:
        return at
    last = expires_at - LAST_TRY
    return last if ended < last else None


class _Slots:
    """One channel's attempts in flight, at most `most()` at once. The limit is read whenever one
    may start, so a reload's [alerts] concurrency holds for the attempts already waiting too (a
    semaphore kept the value it was made with until a restart). None starts before `resume_at`
    (the event loop's clock): the receiver asked the channel to wait (Retry-After)."""

    def __init__(self) -> None:
        self.busy = 0  # attempts in flight, a test alert's too
        self.tests = 0  # test alerts in flight: one at a time, beside the `most()` of the others
        self.changed = asyncio.Event()  # set when a slot frees or the limit may have changed
        self.resume_at = 0.0

    def wait_asked(self, seconds: float) -> None:
        """The receiver asked to be left alone this long: every attempt on the channel waits, not only
        the one it answered (the others, sent at once, were answered 429 again, each of them)."""
        self.resume_at = max(self.resume_at, asyncio.get_running_loop().time() + seconds)

    @contextlib.asynccontextmanager
    async def held(self, most: Callable[[], int], first: bool = False, last: float = math.inf) -> AsyncIterator[None]:
        """A slot, once one is free and the receiver's wait is over (or at once, when `most()` is 0:
        the dispatcher stops). `first` (a test alert, whose operator waits for it now): a slot of its
        own beside the `most()` of the other alerts, one test at a time, so it goes beside the
        attempts under way rather than after a backlog's; and takes none of theirs (counted among
        them, a test unanswered held a channel's alerts back for its time limit, two tests all of
        them). `last`: seconds from now to the alert's last try before it expires, which the
        receiver's wait does not hold back (as next_try's does not): held past it, the alerts queued
        on a channel told to wait, and the one told, expired untried."""
        loop = asyncio.get_running_loop()
        latest = loop.time() + last
        while (limit := most()) > 0:
            asked = min(self.resume_at, latest) - loop.time()
            free = self.tests == 0 if first else self.busy - self.tests < limit
            if free and asked <= 0:
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(asked if free else None):
                    await self.changed.wait()
        self.busy += 1
        self.tests += first
        try:
            yield
        finally:
            self.busy -= 1
            self.tests -= first
            self.changed.set()


class Dispatcher:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        writer: WriteQueue,
        reader: Reader,
        session: aiohttp.ClientSession,
        may_send: Callable[[], bool] | None = None,
        names: Callable[[int], str | None] | None = None,
        outcomes: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self._limits: dict[str, _Slots] = {}
        self.config = config
        # A cluster's leader sends only while it holds the lease (by its own clock): a node frozen
        # past its lease and woken again must not send what its successor sends.
        self.may_send = may_send or (lambda: True)
        # A check's current name by its row id (the engine's): its alerts follow a rename through the
        # API. Without it, a check is looked up by the name its alert was made under.
        self.names = names
        self.clock = clock
        self.writer = writer
        self.reader = reader
        self.session = session
        # (channel, outcome) -> attempts. Keyed by str: the outcome is an AttemptOutcome, but the
        # counts are read as Prometheus labels and looked up by plain strings. `outcomes`: the
        # process's (Runtime.alert_outcomes), which every term's sender of a cluster's node adds to.
        self.outcomes: Counter[tuple[str, str]] = Counter() if outcomes is None else outcomes
        # (alert key, channel) -> email recipients (apprise URLs) reached while the alert is retried
        # for the rest; in memory: after a restart a retry goes to all of them again (at least once).
        self.reached: dict[tuple[str, str], set[str]] = {}
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._settled: set[int] = set()  # attempts that finished while the due rows were being read
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False  # stop() has begun: no attempt starts
        self._rng = random.Random()  # jitter, not secrets
        self._asleep = clock.suspended()  # the machine's time asleep when the outbox was last read
        self._owed = 0.0  # of the sleeps given back since (_give_back_sleep), the time not committed yet
        self._pings_failing = False  # the last read of the due alerts' pings failed: logged once per spell

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """A reload's config: the attempts waiting for a slot look at its concurrency at once. One that
        changed [smtp] (the password fixed) ends the wait its email channels kept after a refused
        login (email.LOGIN_WAIT): the test alert that says the new login works went only after it."""
        login = getattr(self, "_config", config).smtp != config.smtp
        self._config = config
        for name, slots in self._limits.items():
            if login and (channel := config.channels.get(name)) is not None and channel.type == "email":
                slots.resume_at = 0.0
            slots.changed.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        failing = False  # a read of the outbox failed last time: logged once per spell
        while True:
            self._wake.clear()
            try:
                upcoming = await self._dispatch_due()
            except Exception as exc:  # noqa: BLE001 - a failed read must not end delivery for good
                if not failing:
                    log.error("cannot read the alert outbox (%s: %s); retrying every %g s",
                              exc.__class__.__name__, exc, READ_RETRY)  # fmt: skip
                failing, upcoming = True, self.clock.now() + READ_RETRY
            else:
                if failing:
                    log.warning("the alert outbox can be read again")
                failing = False
            delay = SAFETY_POLL if upcoming is None else min(SAFETY_POLL, max(0.0, upcoming - self.clock.now()))
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _dispatch_due(self) -> float | None:
        """Start an attempt for each due row; returns when the next one falls due, if any."""
        await self._give_back_sleep()
        if not self.may_send():
            return None
        # A sleep given back but not committed yet (writes failing) is not in the rows read: the
        # attempts give it to them (_slept_through), as to a sleep after the read.
        now, asleep = self.clock.now(), self._asleep - self._owed
        self._settled.clear()
        per_channel = max(DUE_PER_CHANNEL, self.config.alerts.concurrency)
        due = await self.reader.read_due_alerts(now, per_channel)
        # The last pings the new attempts' alerts show, in one read: one each queued a storm's
        # attempts, slots held, behind one another and the outbox's reads on the one reader.
        last = [int(p) for item in due if item.id not in self._in_flight and (p := item.payload.get("last_ping_id"))]
        pings = await self._read_pings(last)
        for item in due:
            # A row whose attempt finished during the reads may be stale: skip it, the next read
            # sees what that attempt committed.
            if item.id not in self._in_flight and item.id not in self._settled:
                self._in_flight.add(item.id)
                task = asyncio.create_task(self._attempt(item, asleep, pings), name=f"heartfly-alert-{item.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return await self.reader.next_alert_after(now)

    async def _read_pings(self, ids: list[int]) -> Mapping[int, dict[str, Any]]:
        """The pings `ids` by id. A read that fails does not hold back the due alerts (a ping row
        that cannot be read held every alert of the outbox, those of other checks too, with the
        outbox's read said to fail): each attempt then reads its own (_alert), as it did, and one
        whose read fails is retried alone."""
        if not ids:
            return {}
        try:
            pings = await self.reader.read_pings_by_id(ids)
        except Exception as exc:  # noqa: BLE001 - logged; the attempts read them one by one
            if not self._pings_failing:
                log.warning("cannot read the last pings of %d alert(s) together (%s: %s); each attempt reads"
                            " its own", len(ids), exc.__class__.__name__, exc)  # fmt: skip
            self._pings_failing = True
            return {}
        self._pings_failing = False
        return pings

    async def _give_back_sleep(self) -> None:
        """The time the machine slept (a suspend) since the last read, given back to the pending
        alerts' expiry before the next read, as a restart gives its downtime (Loading): none could
        be sent meanwhile, and a down alert retried when a laptop went to sleep for longer than
        expire_after expired at the wake-up, unsent. Not a standby's sleep: the leader sent."""
        asleep = self.clock.suspended()
        slept, self._asleep = asleep - self._asleep, asleep
        if slept <= SLEPT_MIN or not self.may_send():
            return
        now = self.clock.now()
        self._owed += slept

        def committed() -> None:
            self._owed -= slept

        # Given once: a commit that fails (a full disk at the wake-up) leaves the write to the
        # writer, which commits it once it can. Given again at each read meanwhile, every copy kept,
        # it extended the expiry by the sleep once a second of the outage; and an error raised here
        # stopped the reads, so the alerts that could go out waited for the disk. (Refused, as by a
        # term that ended, it is the next leader's load that gives the time back, as a downtime.)
        write = store.Write(statements=[store.outbox_downtime_statement(now - slept, now)], on_commit=committed)
        with contextlib.suppress(StoreError):
            await self.writer.submit(write)
        log.info("this machine was suspended for %s: the pending alerts expire that much later",
                 human_duration(slept))  # fmt: skip

    async def stop(self, grace: float = 0.0) -> None:
        """Start no attempt from now on; wait up to `grace` seconds for those under way to end (a
        clean stop), then cancel the rest: their rows stay pending and are sent after the next start.
        The attempts still waiting for a slot of their channel end at once, their rows pending."""
        self._stopping = True
        for slots in self._limits.values():
            slots.changed.set()  # the waiting ones look again, and find the dispatcher stopping
        if grace > 0 and (under_way := sum(s.busy for s in self._limits.values())):
            log.info("stopping: waiting up to %g s for %d alert attempt(s) under way", grace, under_way)
            await asyncio.wait(set(self._tasks), timeout=grace)
            if left := sum(s.busy for s in self._limits.values()):  # said: one may reach its receiver twice
                log.warning("stopping: %d alert attempt(s) still under way after %g s cut off; they stay pending"
                            " and are sent after the next start (a second time, if they got through)",
                            left, grace)  # fmt: skip
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _attempt(self, item: OutboxItem, asleep: float | None, pings: Mapping[int, dict[str, Any]]) -> None:
        try:
            slots = self._limits.setdefault(item.channel, _Slots())
            # A test alert does not queue behind a backlog's attempts: the API waits for its first
            # (a channel's timeout and 5 s), and it is to say whether the channel works now.
            last = item.expires_at - LAST_TRY - self.clock.now()
            async with slots.held(self._most, first=item.event == AlertEvent.TEST, last=last):
                # Stopping, or no longer the leader: the row stays pending for the next start or leader.
                if self._stopping or not self.may_send():
                    self._in_flight.discard(item.id)
                    return
                statements = await self._deliver(item, asleep, pings)
        except BaseException:
            self._release(item.id)
            raise
        # The row stays in flight until its attempt is committed: until then the database still
        # says pending, and sending it again would deliver the alert twice.
        write = store.Write(statements=statements, on_commit=functools.partial(self._release, item.id))
        try:
            await self.writer.submit(write)
        except StoreError as exc:  # the writer keeps the rows and commits them once it can
            log.warning("alert %s via %s: outcome kept in memory until the database can be written (%s);"
                        " not sent again meanwhile", item.key, item.channel, exc)  # fmt: skip

    def _most(self) -> int:
        """Attempts in flight a channel may have now: none from the stop on."""
        return 0 if self._stopping else self.config.alerts.concurrency

    def _release(self, item_id: int) -> None:
        self._in_flight.discard(item_id)
        self._settled.add(item_id)
        self.wake()

    async def _deliver(
        self, item: OutboxItem, asleep: float | None, pings: Mapping[int, dict[str, Any]]
    ) -> list[Statement]:
        """Try once; returns the statements that record the attempt. `asleep`: the machine's time
        asleep when `item` was read; a sleep since (waiting for a slot, or with the attempt under
        way) does not count toward its expiry (_slept_through). `pings`: the stored last pings of
        the alerts read with it, by id."""
        started = self.clock.now()
        item, asleep = self._slept_through(item, asleep, started)
        channel = self.config.channels.get(item.channel)
        timeout = self.config.alerts.timeout if channel is None else channel.timeout or self.config.alerts.timeout
        outcome: AttemptOutcome = AttemptOutcome.SENT
        error: str | None = None
        asked: float | None = None  # the receiver's Retry-After
        name = self._check_name(item)
        if started > item.expires_at:
            outcome, error = AttemptOutcome.EXPIRED, "expired before it could be sent"
        elif channel is None:
            outcome, error = AttemptOutcome.FAILED, f'channel "{item.channel}"{GONE_FROM_CONFIG}'
        elif name is None:
            outcome, error = AttemptOutcome.FAILED, f'check "{item.payload.get("check")}"{GONE_FROM_CONFIG}'
        elif item.event == AlertEvent.REMINDER and (stale := await self._stale(item)) is not None:
            outcome, error = AttemptOutcome.SUPERSEDED, stale
        else:
            try:
                alert = await self._alert(item, name, pings)
                async with asyncio.timeout(timeout) as limit:
                    reached = self.reached.setdefault((alert.key, channel.name), set())
                    await send_to(self.config, self.session, channel, alert, reached, limit)
            except PermanentError as exc:
                outcome, error = AttemptOutcome.FAILED, str(exc)
            except DeliveryError as exc:
                outcome, error, asked = AttemptOutcome.RETRY, str(exc), exc.retry_after
            except TimeoutError:
                outcome, error = AttemptOutcome.RETRY, f"no answer within {timeout:g} s"
            except Exception as exc:  # a sender bug must not lose the alert: logged, retried
                log.exception("alert %s via %s: unexpected error", item.key, item.channel)
                outcome, error = AttemptOutcome.RETRY, f"{exc.__class__.__name__}: {exc}"
        partly = outcome is AttemptOutcome.RETRY and item.newer and bool(self.reached.get((item.key, item.channel)))
        if partly:
            # Some recipients have it, some refuse it for now (a full mailbox): retried until it
            # expired, it held the newer alert behind it from everyone. The rest get that one
            # instead, so each recipient still gets the check's alerts in order, the newest at least once.
            outcome, error = AttemptOutcome.SUPERSEDED, f"{error}; a newer alert of this check replaced it for them"
        if error is not None:  # a receiver's words (an error page, an SMTP reply): one printable line
            error = escape(error)
        if asked and channel is not None:  # kept to by every alert of the channel, up to retry_max
            self._limits.setdefault(item.channel, _Slots()).wait_asked(min(asked, self.config.alerts.retry_max))
        ended = self.clock.now()
        next_at = None
        if outcome is AttemptOutcome.RETRY:
            # Asleep with the attempt under way (a laptop shut as it waited for an answer): the retry
            # is judged against the expiry the next read gives the stored row, not the one it had.
            item, _ = self._slept_through(item, asleep, ended)
            alerts = self.config.alerts
            next_at = next_try(
                ended, item.attempts + 1, item.expires_at, alerts.retry_initial, alerts.retry_max, self._rng, asked
            )
            if next_at is None:
                outcome = AttemptOutcome.EXPIRED
        self.outcomes[(item.channel, outcome)] += 1
        if outcome is not AttemptOutcome.RETRY:
            self.reached.pop((item.key, item.channel), None)
        statements = store.attempt_statements(item.id, started, ended - started, outcome, error, next_at)
        behind: list[int] = []
        if outcome is AttemptOutcome.SUPERSEDED and not partly:  # a reminder: the stale ones behind go with it
            behind = await self._reminders_behind(item, started)
            for outbox_id in behind:
                statements += store.attempt_statements(outbox_id, started, ended - started, outcome, error, None)
            self.outcomes[(item.channel, outcome)] += len(behind)
        quiet = outcome in (AttemptOutcome.SENT, AttemptOutcome.SUPERSEDED) and not partly
        level = logging.INFO if quiet else logging.WARNING
        more = f": {error}" if error else ""
        retry = f"; next try in {human_duration(next_at - ended)}" if next_at is not None else ""
        also = f"; and {len(behind)} more stale reminder(s) of this check with it" if behind else ""
        # A retry is logged as failed, with its next try.
        told = AttemptOutcome.FAILED if outcome is AttemptOutcome.RETRY else outcome
        # Its check by name: for an alert given up, this line is all that tells of a down nobody heard of.
        of = "" if item.check_id is None else f" of check {name or item.payload.get('check')}"
        log.log(level, "alert %s (%s%s) via %s: %s after %d attempt(s)%s%s%s", item.key, item.event, of, item.channel,
                told, item.attempts + 1, more, retry, also)  # fmt: skip
        return statements

    def _slept_through(self, item: OutboxItem, asleep: float | None, at: float) -> tuple[OutboxItem, float | None]:
        """`item` with the time the machine slept since `asleep` (its time asleep when it was read,
        or last looked at) given back on its expiry, as _give_back_sleep gives it to the stored row
        at the next read: none could be sent meanwhile. Not a test alert's (it is for the moment it
        was asked for, as outbox_downtime_statement says), nor to one expired before the sleep
        (before `at` less it). Returns the item and the machine's time asleep now."""
        if asleep is None:
            return item, None
        now_asleep = self.clock.suspended()
        slept = now_asleep - asleep
        if slept > SLEPT_MIN and item.event != AlertEvent.TEST and item.expires_at > at - slept:
            item = dataclasses.replace(item, expires_at=item.expires_at + slept)
        return item, now_asleep

    async def _stale(self, reminder: OutboxItem) -> str | None:
        """Why a reminder is not to be sent, if it is not: a newer alert of its check waits behind
        it (and tells more), or its check is no longer down. A channel with recovery = false has no
        recovery queued to supersede it: one delayed past the recovery said "Still down" of a check
        that was up. A failed read sends it (at least once)."""
        if reminder.newer:
            return "a newer alert of this check replaced it"
        if reminder.check_id is None:
            return None
        try:
            status = await self.reader.read_last_status(reminder.check_id)
        except Exception as exc:  # noqa: BLE001 - the reminder goes, as it did before this was read
            log.warning("alert %s via %s: cannot read whether its check is still down (%s: %s); sending it",
                        reminder.key, reminder.channel, exc.__class__.__name__, exc)  # fmt: skip
            return None
        return None if status in (None, Status.DOWN) else "the check is no longer down"

    async def _reminders_behind(self, head: OutboxItem, now: float) -> list[int]:
        """The stale reminders queued behind a superseded head, to supersede in the same write, so
        a pile of them left by a long outage clears in one commit, not one read and commit each.

        Never the group's newest alert, nor an expired one, nor any other event (queries). Only
        heads are read and tried, so none of these is in flight; checked all the same. A failed
        read costs only speed: the head goes alone, the rest in later rounds.
        """
        if head.check_id is None:
            return []
        try:
            ids = await self.reader.read_reminders_behind(head.check_id, head.channel, head.id, now, SUPERSEDE_AT_ONCE)
        except Exception as exc:  # noqa: BLE001 - the head's own outcome must still be recorded
            log.warning("alert %s via %s: cannot read the stale reminders behind it (%s: %s); superseding it alone",
                        head.key, head.channel, exc.__class__.__name__, exc)  # fmt: skip
            return []
        return [outbox_id for outbox_id in ids if outbox_id not in self._in_flight]

    def _check_name(self, item: OutboxItem) -> str | None:
        """The name the alert's check goes by now ("" for an alert of no check: a test, a summary);
        None when the check is gone. By its id where the engine tells: a check renamed through the
        API keeps its id, and another check made under the old name since is not it."""
        if item.check_id is None:
            return ""
        if self.names is not None:
            return self.names(item.check_id)
        name = str(item.payload.get("check"))
        return name if name in self.config.checks else None

    async def _alert(self, item: OutboxItem, name: str, pings: Mapping[int, dict[str, Any]]) -> Alert:
        """The alert to render, under the check's current `name`, which its link must find;
        `pings`: the last pings read with the item. One not there is read now: that read failed, or
        the item's attempt was under way then (a pending alert's ping is never pruned: rare)."""
        ping_id = item.payload.get("last_ping_id")
        last_ping = pings.get(int(ping_id)) if ping_id else None
        if ping_id and last_ping is None:
            last_ping = await self.reader.read_ping(int(ping_id))
        payload = {**item.payload, "check": name} if name else item.payload
        base = self.config.server.public_url
        link = f"{base}/checks/{name}" if name else base
        zone = self.config.server.display_timezone
        return Alert(key=item.key, event=item.event, payload=payload, last_ping=last_ping, link=link, zone=zone)
