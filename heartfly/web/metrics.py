"""/metrics in the Prometheus text format, built at scrape time from what the server already holds.

Nothing here sits on the ping path: the ping handlers only bump a dict (web.pings.PING_COUNTS),
and every other figure is read from the engine, the dispatcher and one COUNT query per scrape.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from heartfly import __version__
from heartfly.core.states import Status
from heartfly.core.statetypes import CheckState
from heartfly.notify.dispatcher import AttemptOutcome
from heartfly.store.api import StoreError
from heartfly.web import api, auth
from heartfly.web.pings import PING_COUNTS
from heartfly.web.process_metrics import ProcessMetrics
from heartfly.web.runtime import RUNTIME

_PROCESS = ProcessMetrics(registry=None)  # reads /proc/self at scrape time
# Seconds a scrape waits for the outbox's count, well inside Prometheus' default scrape timeout (10 s).
OUTBOX_READ_LIMIT = 3.0


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def metrics(request: web.Request) -> web.StreamResponse:
    """NOT_STORED, as the API's answers: its refusals and 503s too."""
    return await api.not_stored(_metrics(request))


async def _metrics(request: web.Request) -> web.Response:
    denied = auth.api_denial(request)  # as the API: a wrong token is refused even with public = true
    if denied is not None:
        return denied
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    pending: int | None = None  # unknown while the database cannot be read: left out, the rest served
    try:
        pending = await bounded(rt.reader.count_pending_alerts())
        await rt.engine.all_read()
    except (StoreError, TimeoutError) as exc:
        if rt.engine.reading_stored:  # states not read yet would be shown as new: nothing rather than wrong
            why = exc if isinstance(exc, StoreError) else f"no answer within {OUTBOX_READ_LIMIT:g} s"
            return web.Response(status=503, text=f"/metrics: the database cannot be read: {why}\n")
    # The states as they are now, read here; the text built in a thread: with 100k checks that is
    # 900k samples, seconds of Python during which, on the event loop, no ping was answered.
    checks = [_row(name, check.state) for name, check in rt.engine.checks.items()]
    rest = list(_families(request.app, pending))
    return web.Response(
        body=await asyncio.to_thread(_exposition, checks, rest),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    )


_CANCELLING: set[asyncio.Task[Any]] = set()  # reads given up on, until their cancellation ends


_T = TypeVar("_T")


async def bounded(count: Coroutine[Any, Any, _T]) -> _T:
    """The outbox's count (or another read of it), or TimeoutError after OUTBOX_READ_LIMIT: an
    outbox locked by a migration or VACUUM FULL held it, and with it the whole scrape (or the
    dashboard's page), past Prometheus' scrape timeout. The query is then cancelled (PostgreSQL's
    driver cancels it on the server, else closes the connection) but not waited for: on a
    connection gone silent the cancellation goes unanswered too, for up to 10 s more."""
    task = asyncio.ensure_future(count)
    try:
        done, _ = await asyncio.wait({task}, timeout=OUTBOX_READ_LIMIT)
    except asyncio.CancelledError:  # the scrape itself is cancelled (the client went away)
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()
    _CANCELLING.add(task)  # held, not left to the garbage collector mid-cancellation
    task.add_done_callback(_cancelled)
    raise TimeoutError


def _cancelled(task: asyncio.Task[Any]) -> None:
    _CANCELLING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failure of a count given up on is nobody's to report


# A check's figures: name, status, last ping, last success, last duration, next due (None: not shown).
Row = tuple[str, Status, float | None, float | None, float | None, float | None]


def _row(name: str, st: CheckState) -> Row:
    next_due = st.next_due() if st.status is not Status.PAUSED else None
    return name, st.status, st.last_ping_at, st.last_success_at, st.last_duration, next_due


def _exposition(checks: list[Row], rest: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([*_check_families(checks), *rest]))
    registry.register(_PROCESS)
    return generate_latest(registry)


def _check_families(checks: list[Row]) -> Iterator[Metric]:
    up = GaugeMetricFamily("heartfly_check_up", "1 unless the check is down.", labels=["check"])
    state = GaugeMetricFamily(
        "heartfly_check_state", "1 for the check's current state, 0 for the others.", labels=["check", "state"]
    )
    last_ping = GaugeMetricFamily(
        "heartfly_check_last_ping_timestamp_seconds", "When the check's last ping happened.", labels=["check"]
    )
    last_success = GaugeMetricFamily(
        "heartfly_check_last_success_timestamp_seconds", "When the check last succeeded.", labels=["check"]
    )
    duration = GaugeMetricFamily(
        "heartfly_check_last_duration_seconds", "How long the check's last finished run took.", labels=["check"]
    )
    due = GaugeMetricFamily(
        "heartfly_check_due_timestamp_seconds", "When the check's next run is due (before grace).", labels=["check"]
    )
    statuses = list(Status)
    for name, status, last_ping_at, last_success_at, last_duration, next_due in checks:
        up.add_metric([name], 0.0 if status is Status.DOWN else 1.0)
        for s in statuses:
            state.add_metric([name, s.value], 1.0 if status is s else 0.0)
        if last_ping_at is not None:
            last_ping.add_metric([name], last_ping_at)
        if last_success_at is not None:
            last_success.add_metric([name], last_success_at)
        if last_duration is not None:
            duration.add_metric([name], last_duration)
        if next_due is not None:
            due.add_metric([name], next_due)
    yield from (up, state, last_ping, last_success, duration, due)


def _families(app: web.Application, outbox_pending: int | None) -> Iterator[Metric]:
    rt = app[RUNTIME]
    engine = rt.engine
    info = GaugeMetricFamily("heartfly_build_info", "Heartfly's version (always 1).", labels=["version"])
    info.add_metric([__version__], 1)
    yield info

    pings = CounterMetricFamily(
        "heartfly_pings_received",
        "Pings received, by outcome: the event recorded, or why none was.",
        labels=["outcome"],
    )
    for outcome, count in sorted(app[PING_COUNTS].items()):
        pings.add_metric([outcome], count)
    yield pings

    alerts = CounterMetricFamily(
        "heartfly_alert_attempts", "Alert delivery attempts, by channel and outcome.", labels=["channel", "outcome"]
    )
    # Every channel's series from 0: one that first appears at 1 has no increase() in Prometheus, so a
    # rule on failed attempts would miss each channel's first failure after a start.
    counts = Counter({(channel, outcome.value): 0 for channel in rt.config.channels for outcome in AttemptOutcome})
    counts.update(rt.alert_outcomes)  # every sender's: a cluster's node keeps its counts when it stands by
    for (channel, outcome), count in sorted(counts.items()):
        alerts.add_metric([channel, outcome], count)
    yield alerts

    if outbox_pending is not None:
        yield GaugeMetricFamily("heartfly_outbox_pending", "Alerts waiting to be delivered.", value=outbox_pending)
    yield GaugeMetricFamily(
        "heartfly_timer_lag_seconds", "How late the last deadline fired after its time.", value=engine.timer_lag
    )
    yield GaugeMetricFamily(
        "heartfly_timer_alive_timestamp_seconds", "The deadline timer's last wake-up.", value=engine.timer_alive.at
    )
    writer = rt.ping_writer()
    # A commit the database leaves unanswered (a locked table, a hung disk) holds every ping and
    # alert as surely as one that fails: 1 then too, as /readyz says it.
    failing = writer is None or writer.failing or writer.stuck() is not None
    yield GaugeMetricFamily(
        "heartfly_database_writes_failing",
        "1 while database writes fail or a commit has waited more than 5 s for the database.",
        value=1.0 if failing else 0.0,
    )
    cluster = rt.cluster_status()
    if cluster is not None:
        yield GaugeMetricFamily(
            "heartfly_cluster_leader", "1 on the cluster's leader, 0 on a standby.",
            value=1.0 if cluster.role == "leader" else 0.0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "heartfly_cluster_term", "The leader's term as this node last read it (it only grows).",
            value=float(cluster.term),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "heartfly_cluster_lease_checked_age_seconds", "Seconds since this node last renewed or read the lease.",
            value=cluster.lease_checked_seconds_ago,
        )  # fmt: skip
        node = InfoMetricFamily("heartfly_cluster_node", "This node's id and the leader's.")
        node.add_metric([], {"node": cluster.node, "leader": cluster.leader or ""})
        yield node
