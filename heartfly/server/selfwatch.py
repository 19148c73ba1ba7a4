"""`[alerts] trouble_channels`: Heartfly tells people when it cannot do its job itself.

While its database cannot be written (a full disk, a file gone read-only), Heartfly refuses pings
and every check's alerts wait in that database's outbox: about itself, it would say nothing but
log lines. After TROUBLE_AFTER seconds of it (a commit's hiccup is no news), an alert goes straight
from memory to the trouble channels, and, once writes have worked for CALM_AFTER seconds, another
that says it is over. Neither is stored (the database is the trouble): a restart meanwhile forgets
them, and the log says both. A channel that does not take one is tried again every RETRY seconds while it is news,
up to [alerts] expire_after, as the outbox's alerts.
One server only: a cluster's nodes share their PostgreSQL's troubles, and its heartbeat_url
tells them (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import aiohttp

from heartfly.core.clock import Clock
from heartfly.core.config import Config
from heartfly.core.printable import escape
from heartfly.core.statetypes import AlertEvent
from heartfly.core.units import human_duration
from heartfly.notify import DeliveryError, PermanentError
from heartfly.notify.dispatcher import send_to
from heartfly.notify.message import Alert
from heartfly.server.engine import Engine
from heartfly.server.heartbeat import COMMIT_WAITS, WRITES_FAIL, problem

log = logging.getLogger(__name__)

TROUBLE_AFTER = 30.0  # seconds of trouble before the channels are told
CALM_AFTER = 10.0  # seconds of working writes before they are told it is over
POLL = 1.0
RETRY = 30.0


@dataclass(frozen=True, slots=True)
class Watch:
    """Times by the monotonic clock (a step of the wall clock, NTP's, neither holds the news back nor
    makes it), but `began_at`: the wall clock's time when the trouble began, which the news tells."""

    since: float | None = None  # when the trouble began, while it lasts (or until its end is told)
    began_at: float = 0.0  # the same by the wall clock
    problem: str = ""  # its words (when it was told, once it has been)
    told: bool = False  # the trouble alert has been made
    calm_since: float | None = None  # after a trouble told: healthy since
    seen: float = 0.0  # when the health was last looked at


@dataclass(frozen=True, slots=True)
class News:
    event: AlertEvent
    problem: str
    since: float
    ended_at: float | None = None


# Seconds between two looks past which the time between is not counted as trouble: the process was
# frozen (SIGSTOP, a paused VM), and a timer late for a moment after the thaw is no news.
GAP = 5.0


def step(watch: Watch, trouble: str | None, now: float, wall: float) -> tuple[Watch, News | None]:
    """The watch after looking at the server's health (`trouble`: why it is unhealthy, or None)
    at `now` (the monotonic clock's; `wall`: the wall clock's), and the news to tell, if any. Pure."""
    gap, since = now - watch.seen > GAP, watch.since
    watch = replace(watch, seen=now)
    if trouble is not None:
        if since is None or (gap and not watch.told):
            return Watch(since=now, began_at=wall, problem=trouble, seen=now), None
        watch = replace(watch, calm_since=None)
        if not watch.told and now - since >= TROUBLE_AFTER:  # in its words now: "a commit has waited 31 s"
            return replace(watch, told=True, problem=trouble), News(AlertEvent.TROUBLE, trouble, watch.began_at)
        return watch, None
    if since is None:
        return watch, None
    # Over once writes have worked CALM_AFTER seconds: writes that fail most of the time, working
    # for a moment between, are trouble that goes on (and is told, with when it began).
    calm = now if watch.calm_since is None else watch.calm_since
    if now - calm < CALM_AFTER:
        return replace(watch, calm_since=calm), None
    if not watch.told:
        return Watch(seen=now), None
    ended_at = watch.began_at + calm - since  # as long after it began as the monotonic clock says
    return Watch(seen=now), News(AlertEvent.TROUBLE_OVER, watch.problem, watch.began_at, ended_at)


_WAIT = "and the alerts of checks that go down wait until it is over"


def meaning(problem: str) -> tuple[str, str]:
    """What the problem means for the jobs that ping, while it lasts and once it is over (the alerts' words)."""
    if problem == WRITES_FAIL:
        return f"pings are refused (503; heartfly run and ping keep them to send again), {_WAIT}", (
            "pings are taken again, and the alerts that waited are sent now"
        )
    if problem.startswith(COMMIT_WAITS):
        return f"pings wait unanswered (heartfly run and ping give up on them and keep them to send again), {_WAIT}", (
            "pings are answered again, and the alerts that waited are sent now"
        )
    # The deadline timer stopped (pings are taken): a check whose job does not ping goes down only after.
    return "no deadline fires: a job that does not ping is told as down only once it is over", (
        "deadlines fire again, those that fell due meanwhile too"
    )


def alert_for(news: News, config: Config) -> Alert:
    """The alert that tells `news`: its key is the same for every attempt (a webhook's Idempotency-Key)."""
    meanwhile, after = meaning(news.problem)
    payload = {"problem": news.problem, "since": news.since, "ended_at": news.ended_at}
    payload |= {"meanwhile": meanwhile} if news.ended_at is None else {"next": after}
    if news.ended_at is not None:
        payload["lasted"] = news.ended_at - news.since
    key = f"{news.event}-{round(news.since * 1000)}"  # as flip-<id>-<ms>: the time it began
    server = config.server
    return Alert(key, news.event, payload, None, server.public_url, server.display_timezone)


async def run(
    config: Callable[[], Config], engine: Callable[[], Engine], session: aiohttp.ClientSession, clock: Clock
) -> None:
    """Watch the server's health every POLL seconds, and tell the trouble channels, until cancelled.
    Each channel's attempt is a task of its own: a slow one (an SMTP server that takes minutes to
    take a message) holds up neither the other channels nor the watch."""
    watch = Watch()
    owed: dict[str, Alert] = {}  # channel -> the alert it has not taken yet
    told: set[str] = set()  # the channels that took the trouble alert: they get its end
    settled: set[str] = set()  # the channels done with the trouble alert: taken, or refused for good
    trouble: Alert | None = None  # the trouble alert, while the trouble it tells goes on
    over: Alert | None = None  # the last end told: for a channel whose trouble attempt ends after it
    reached: dict[tuple[str, str], set[str]] = {}  # (alert key, channel) -> recipients reached
    retry_at: dict[str, float] = {}
    made: dict[str, float] = {}  # alert key -> when the news was made (monotonic): given up past expire_after
    sending: dict[str, tuple[Alert, asyncio.Task[bool | str | None]]] = {}
    try:
        while True:
            now = clock.monotonic()
            for name, (alert, task) in list(sending.items()):  # the attempts that ended
                if not task.done():
                    continue
                del sending[name]
                outcome = task.result()
                took, why = outcome is True, outcome if isinstance(outcome, str) else None
                if alert is trouble and why is None:  # done with it, named still or not (a reload)
                    settled.add(name)
                    if took:
                        told.add(name)
                elif (
                    took
                    and alert.event == AlertEvent.TROUBLE
                    and over is not None
                    and over.payload["since"] == alert.payload["since"]
                ):
                    owed[name] = over  # told of a trouble that ended meanwhile: told its end too
                    retry_at[name] = now  # (before the trouble that goes on, if another began since)
                if owed.get(name) is alert:
                    expire_after = config().alerts.expire_after
                    if why is None:  # taken, or never to be
                        del owed[name]
                    elif now - made.get(alert.key, now) >= expire_after:  # an end refused: not tried for ever
                        del owed[name]
                        if alert is trouble:  # a reload naming it again does not make it news again
                            settled.add(name)
                        why += f"; given up: not taken within [alerts] expire_after ({human_duration(expire_after)})"
                    else:
                        retry_at[name] = now + RETRY
                        why += f"; trying again in {RETRY:g} s"
                elif why is not None:  # its trouble is over, or a reload no longer names the channel
                    why += "; not tried again: no longer news"
                if why is not None:
                    log.warning("%s alert via %s failed: %s", alert.event, name, why)
            watch, news = step(watch, problem(engine()), now, clock.now())
            if news is not None:
                current = config()
                alert = alert_for(news, current)
                made[alert.key] = now  # one a trouble: a few keys in a process's life
                if news.event == AlertEvent.TROUBLE:
                    trouble = alert
                    told.clear()
                    settled.clear()
                    owed = dict.fromkeys(current.alerts.trouble_channels, alert)
                    log.error("Heartfly has not been able to do its job for %.0f s (%s)%s",
                              now - (watch.since or now), news.problem, _telling(owed))  # fmt: skip
                else:
                    trouble, over = None, alert
                    owed = dict.fromkeys(told, alert)  # who was not told of the trouble is not told it is over
                    told.clear()
                    log.warning("Heartfly works again (%s lasted %.0f s)%s", news.problem, alert.payload["lasted"],
                                _telling(owed))  # fmt: skip
                retry_at.clear()
                reached.clear()  # an attempt under way keeps its own
            elif trouble is not None:  # a reload may name other channels: those named now are told, the rest not
                named = [name for name in config().alerts.trouble_channels if name not in settled]
                ends = {name: alert for name, alert in owed.items() if alert is not trouble}  # owed, named or not
                owed = ends | {name: owed.get(name, trouble) for name in named}
            current = config()
            for name, alert in owed.items():
                if name not in sending and now >= retry_at.get(name, 0.0):
                    attempt = _send(current, session, name, alert, reached.setdefault((alert.key, name), set()))
                    sending[name] = (alert, asyncio.create_task(attempt, name=f"heartfly-trouble-{name}"))
            await asyncio.sleep(POLL)
    finally:  # cancelled (a stop): the attempts under way end with the watch
        for _, task in sending.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in sending.values()), return_exceptions=True)


def _telling(owed: dict[str, Alert]) -> str:
    return f"; telling {', '.join(owed)}" if owed else ""  # [alerts] trouble_channels (docs/install.md)


async def _send(
    config: Config, session: aiohttp.ClientSession, name: str, alert: Alert, reached: set[str]
) -> bool | str | None:
    """True: the channel took it; a string: why it did not (tried again while it is news, which the
    watch knows when the attempt ends, and logs); None: never (gone, or refused for good)."""
    channel = config.channels.get(name)
    if channel is None:
        log.warning("%s alert not sent to channel %s: it is no longer in the config", alert.event, name)
        return None
    timeout = channel.timeout or config.alerts.timeout
    try:
        async with asyncio.timeout(timeout) as limit:
            await send_to(config, session, channel, alert, reached, limit)
    except PermanentError as exc:
        log.warning("%s alert via %s failed for good: %s", alert.event, name, exc)
        return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except DeliveryError as exc:
        return escape(str(exc))
    except Exception as exc:  # a sender's bug must not end the watch (nor the server)
        log.exception("%s alert via %s: unexpected error", alert.event, name)
        return exc.__class__.__name__
    log.info("%s alert sent via %s", alert.event, name)
    return True
