"""Alert delivery under faults: failing database writes, endless error bodies, greylisting, outages
and backlogs.

Real sockets throughout: aiohttp webhook receivers, an aiosmtpd SMTP server, a real SQLite file.
The fixtures and helpers are those of tests/test_alerts.py.
"""

# ruff: noqa: F811 - the fixtures imported below are named again as test parameters, as pytest wants

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpServer

from heartfly.core import states
from heartfly.core.clock import FakeClock
from heartfly.core.config import Config
from heartfly.notify import outbox
from heartfly.store import outboxqueries, queries
from heartfly.store import sqlite as store
from heartfly.store.pingrecord import PingRecord
from heartfly.store.rows import OutboxRow, Write, insert_check_statement
from heartfly.web import app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key, past_validation
from tests.storeutil import query, sqlite_file
from tests.test_alerts import (
    PUBLIC,
    SERVER,
    Heartfly,
    Hit,
    Inbox,
    Mailbox,
    Receiver,
    Receivers,
    Start,
    check,
    fast,
    mailbox,  # noqa: F401 - a fixture
    outcomes,
    receivers,  # noqa: F401 - a fixture
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_restart import running

# ---- failing database writes --------------------------------------------------------------------------


async def test_an_alert_delivered_while_database_writes_fail_is_sent_once_and_recorded_when_they_work(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = await receivers(hanging=True)
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("60s"), server=SERVER)
    hf = await start(config)
    writer = hf.client.app[RUNTIME].writer
    assert isinstance(writer, store.Writer)
    # Every commit fails while `full` is set, as on a full disk. (A real full disk, as in
    # tests/test_faults.py, cannot make *every* commit fail: small ones still fit in the WAL's
    # spare pages, and whether the attempt's own write fails would be a race.)
    full, failed = threading.Event(), [0]
    commit = writer._commit

    def failing_commit(writes: list[Write]) -> None:
        if full.is_set():
            failed[0] += 1
            raise sqlite3.OperationalError("database or disk is full")
        commit(writes)

    monkeypatch.setattr(writer, "_commit", failing_commit)
    kept = "kept in memory until the database can be written"
    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the down alert's request")  # held until writes fail
    full.set()
    hook.hanging = False
    hook.release.set()  # delivered now, while its attempt cannot be written
    await until(lambda: kept in caplog.text or len(hook.hits) > 1, "the attempt's failed write")
    seen = failed[0]
    await until(lambda: failed[0] >= seen + 2, "two more failed commits")  # time for a repeat to show up
    assert len(hook.hits) == 1
    assert "Task exception was never retrieved" not in caplog.text
    full.clear()
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["sent"])
    assert len(hook.hits) == 1
    assert caplog.text.count(kept) == 1


# ---- a receiver's endless error body ------------------------------------------------------


async def test_a_webhook_answering_500_with_an_endless_body_is_retried_with_the_status_and_a_short_excerpt(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    requests = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        if requests > 1:
            return web.Response(text="ok")
        resp = web.StreamResponse(status=500)
        await resp.prepare(request)
        await resp.write(b"overloaded: ")
        deadline = time.monotonic() + 10  # bounded, should the client never hang up
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline:
                await resp.write(b"x" * 65536)
        return resp

    receiver = web.Application()
    receiver.router.add_post("/hook", endless)
    server = await aiohttp_server(receiver)
    key = new_key()
    config = write_config(webhook("hook", str(server.make_url("/hook"))) + check("job", key, ["hook"]) + fast())
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"])
    error = alert["attempt_log"][0]["error"]
    assert error.startswith("HTTP 500: overloaded: xxx") and len(error) < 300


# ---- a stop while an alert is under way ---------------------------------------------------


class HeldAnswer(Inbox):
    """Queues each message at once, and answers its DATA only once `answer` is set (a content filter
    still at work when Heartfly is stopped)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = threading.Event()  # set from the test's loop; this handler runs in aiosmtpd's

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await super().handle_DATA(server, session, envelope)
        while not self.answer.is_set():
            await asyncio.sleep(0.01)
        return "250 OK"


async def test_an_email_the_server_took_as_heartfly_stops_is_recorded_sent_and_not_sent_again_after_the_restart(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # The stop cancelled the attempt under way: the alert stayed pending, and the next start sent
    # the same email again (an email has no Idempotency-Key for the reader's mail client to drop it by).
    caplog.set_level(logging.INFO, "heartfly.notify.dispatcher")
    inbox = HeldAnswer()
    mailbox.inbox = inbox
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n' + check("job", key, ["ops"])
        + fast("60s"),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: mailbox.received, "the down alert taken by the server")
    stopping = asyncio.create_task(hf.client.close())
    await until(lambda: stopping.done() or "under way" in caplog.text, "the stop to begin")
    inbox.answer.set()
    await stopping
    assert query(config, "SELECT event, status FROM outbox") == [("down", "sent")]
    assert "cut off" not in caplog.text

    hf = await start(config)
    await hf.ping(key)  # its recovery goes out after the down alert, were that one pending still
    alerts = await hf.settled("job", 2)
    assert [(a["event"], a["status"]) for a in alerts] == [("down", "sent"), ("recovery", "sent")]
    assert [str(m["Subject"]).split()[0] for _, m in mailbox.received] == ["[DOWN]", "[UP]"]


async def test_an_attempt_still_under_way_when_the_stops_wait_ends_stays_pending_and_is_sent_after_the_restart(
    monkeypatch: pytest.MonkeyPatch,
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # At least once: the stop waits STOP_GRACE for the attempts under way, and one that outlives it
    # is cut off with its row pending, to be sent after the next start with the same Idempotency-Key.
    monkeypatch.setattr(app, "STOP_GRACE", 0.3)  # stands for its 5 s
    caplog.set_level(logging.INFO, "heartfly.notify.dispatcher")
    hook = await receivers(hanging=True)
    key = new_key()
    config = write_config(
        webhook("hook", hook.url, 'timeout = "30s"') + check("job", key, ["hook"]) + fast("60s"), server=SERVER
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the down alert's request")
    await hf.client.close()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping: ")]
    assert said == [
        "stopping: waiting up to 0.3 s for 1 alert attempt(s) under way",
        "stopping: 1 alert attempt(s) still under way after 0.3 s cut off; they stay pending and are sent after"
        " the next start (a second time, if they got through)",
    ]
    assert query(config, "SELECT event, status FROM outbox") == [("down", "pending")]
    assert query(config, "SELECT count(*) FROM alert_attempts") == [(0,)]

    hook.hanging = False  # the next start's request is answered
    hf = await start(config)
    [alert] = await hf.settled("job", 1)
    assert alert["status"] == "sent" and outcomes(alert) == ["sent"]
    assert [h.key for h in hook.hits] == [alert["key"], alert["key"]]


# ---- SMTP greylisting -----------------------------------------------------------------------


class Greylisting(Inbox):
    """Refuses each grey* recipient with 450 the first time, as greylisting does; accepts later."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("grey") and address not in self.refused:
            self.refused.add(address)
            return "450 4.2.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_recipient_greylisted_with_smtp_450_is_retried_and_only_that_recipient_gets_the_retry(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    mailbox.inbox = Greylisting()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.pair]\ntype = "email"\nto = ["ops@example.org", "grey1@example.org"]\n'
        + '[channels.solo]\ntype = "email"\nto = ["grey2@example.org"]\n'
        + check("job", key, ["pair", "solo"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    alerts = await hf.settled("job", 2)
    for alert in alerts:
        assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"]), alert
        assert "450" in alert["attempt_log"][0]["error"]
    assert sorted(envelope.rcpt_tos for envelope, _ in mailbox.received) == [
        ["grey1@example.org"],
        ["grey2@example.org"],
        ["ops@example.org"],
    ]


class RefusingOne(Inbox):
    """Refuses stuck@ with 452 (a full mailbox) while `refusing` is set; takes everyone else."""

    refusing = True

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("stuck@") and self.refusing:
            return "452 4.2.2 Mailbox full, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_recipient_refused_for_now_does_not_hold_the_next_alert_from_the_recipients_the_last_one_reached(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # One full mailbox held every later alert of the check on the channel (the recovery, the next
    # down) from everyone until the down alert expired, 24 h by default. Now the newer alert takes
    # over for the refused recipient at the down's next try: each recipient still gets the alerts in
    # order, and the newest at least once.
    inbox = mailbox.inbox = RefusingOne()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + '[channels.pair]\ntype = "email"\nto = ["ops@example.org", "stuck@example.org"]\n'
        + check("job", key, ["pair"]) + fast("60s"),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    await hf.wait_alert("job", "pair", "down", lambda a: len(a["attempt_log"]) >= 1)
    await hf.ping(key)  # recovers: its recovery waits behind the down
    await hf.wait_alert("job", "pair", "recovery", lambda a: len(a["attempt_log"]) >= 1)
    inbox.refusing = False
    down, recovery = await hf.settled("job", 2)
    assert (down["event"], down["status"], recovery["event"], recovery["status"]) == (
        "down", "superseded", "recovery", "sent"
    )  # fmt: skip
    assert down["attempt_log"][-1]["error"] == (
        "every recipient was refused: stuck@example.org (452 4.2.2 Mailbox full, try again later);"
        " a newer alert of this check replaced it for them"
    )
    told = [(envelope.rcpt_tos, message["Subject"]) for envelope, message in mailbox.received]
    up = "[UP] job is back up"
    assert told == [(["ops@example.org"], "[DOWN] job failed"), (["ops@example.org"], up), (["stuck@example.org"], up)]


@pytest.mark.both_stores  # the outbox's read is SQL of its own on each
async def test_a_maintenance_summary_refused_for_now_by_one_recipient_does_not_hold_the_recovery_of_its_check(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # The summary is the down alert of the checks it lists: one full mailbox held their recovery
    # behind it from every recipient until it expired, as it did behind a down alert.
    inbox = mailbox.inbox = RefusingOne()
    await mailbox.start()
    key = new_key()
    begun = datetime.fromtimestamp(time.time() - 1, UTC).isoformat(timespec="seconds")
    window = f'[[maintenance]]\nname = "patching"\nstart = "{begun}"\nduration = "3s"\nchecks = ["job"]\n'
    config = write_config(
        mailbox.toml() + '[channels.pair]\ntype = "email"\nto = ["ops@example.org", "stuck@example.org"]\n'
        + check("job", key, ["pair"]) + window + fast("60s"),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")  # held for the window's summary

    def told() -> list[tuple[list[str], str]]:
        return [(envelope.rcpt_tos, str(message["Subject"])) for envelope, message in mailbox.received]

    await until(lambda: told(), "the summary, to the recipient who takes it", 10)
    await hf.ping(key)  # recovers: its recovery waits behind the summary
    up = "[UP] job is back up"
    await until(lambda: (["ops@example.org"], up) in told(), "the recovery, to the recipient who took the summary", 5)
    inbox.refusing = False
    await until(lambda: (["stuck@example.org"], up) in told(), "the recovery, to the recipient refused until now", 5)
    [(to, summary), *rest] = told()
    assert to == ["ops@example.org"] and "Maintenance patching ended" in summary, summary
    assert rest == [(["ops@example.org"], up), (["stuck@example.org"], up)]


# ---- order per check and channel ------------------------------------------------------------


class FailingDown(Receiver):
    """Answers 500 to down alerts while `down_fails` is set, 200 to anything else."""

    down_fails: bool = True

    async def handle(self, request: web.Request) -> web.Response:
        hit = Hit(request.path, CIMultiDict(request.headers), await request.read())
        self.hits.append(hit)
        failing = self.down_fails and hit.json()["event"] == "down"
        return web.Response(status=500 if failing else 200)


async def test_a_recovery_waits_until_its_down_alert_being_retried_is_delivered(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    hook = FailingDown()
    hook.url = str((await aiohttp_server(hook.app())).make_url("/hook"))
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("60s"), server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the down alert's first attempt")
    await hf.ping(key)  # recovers while the down alert waits for its retry
    await hf.wait_alert("job", "hook", "down", lambda a: len(a["attempt_log"]) >= 3)
    assert hook.events() == ["down"] * len(hook.hits)  # the recovery was not sent meanwhile
    hook.down_fails = False
    alerts = await hf.settled("job", 2)
    assert [(a["event"], a["status"]) for a in alerts] == [("down", "sent"), ("recovery", "sent")]
    assert hook.events()[-2:] == ["down", "recovery"] and hook.events().count("recovery") == 1


async def test_reminders_piled_up_behind_an_undelivered_down_alert_are_superseded_by_the_newer_alert(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers(status=503)
    key = new_key()
    config = write_config(
        webhook("hook", hook.url) + check("job", key, ["hook"], 'every = "1h"') + fast("60s"),
        server=SERVER,
    )
    hf = await start(past_validation(config, "job", repeat=0.1))
    await hf.ping(key, "/fail")

    async def reminders() -> int:
        return sum(a["event"] == "reminder" for a in await hf.alerts("job"))

    while await reminders() < 3:
        await asyncio.sleep(0.05)
    await hf.ping(key)  # the recovery is the newest alert now
    hook.status = 200
    alerts = await hf.settled("job", 5)
    stale = [a for a in alerts if a["event"] == "reminder"]
    assert len(stale) >= 3
    assert {(a["status"], a["attempts"]) for a in stale} == {("superseded", 1)}
    assert stale[0]["attempt_log"][0]["outcome"] == "superseded"
    assert [a["status"] for a in alerts if a["event"] != "reminder"] == ["sent", "sent"]
    assert set(hook.events()) == {"down", "recovery"} and hook.events()[-1] == "recovery"


@pytest.mark.both_stores
async def test_a_channel_without_recoveries_is_not_told_still_down_by_a_reminder_delivered_after_the_check_recovered(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # No recovery is queued for it, so no newer alert superseded the last reminder: after an outage
    # of the channel, the pager was told "Still down" of a check up for a while.
    pager = await receivers(status=503)
    key = new_key()
    config = write_config(
        webhook("pager", pager.url, "recovery = false") + check("job", key, ["pager"], 'every = "1h"') + fast("60s"),
        server=SERVER,
    )
    hf = await start(past_validation(config, "job", repeat=0.1))
    await hf.ping(key, "/fail")

    async def reminders() -> int:
        return sum(a["event"] == "reminder" for a in await hf.alerts("job"))

    while await reminders() < 3:
        await asyncio.sleep(0.05)
    await hf.ping(key)  # up again while the pager's alerts wait
    pager.status = 200
    alerts = await hf.settled("job", 4)
    assert set(pager.events()) == {"down"}  # tried until the pager took it; no reminder
    stale = [a for a in alerts if a["event"] == "reminder"]
    assert {a["status"] for a in stale} == {"superseded"}
    assert stale[-1]["attempt_log"][-1]["error"] == "the check is no longer down"


async def test_a_pile_of_stale_reminders_is_superseded_in_one_read_and_write_leaving_a_down_alert_among_them_to_be_sent(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    hook = await receivers()
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("60s"), server=SERVER)
    # As a channel down for hours leaves them: 100 reminders, the down alert of a second outage,
    # 100 more reminders (3 of them expired), the recovery, the newest. All due.
    now = time.time()
    events = ["reminder"] * 100 + ["down"] + ["reminder"] * 100 + ["recovery"]
    expired = {150, 151, 152}
    rows: list[OutboxRow] = []
    for outbox_id, event in enumerate(events, start=1):
        facts = json.dumps({"check": "job", "state": "up" if event == "recovery" else "down", "at": now})
        expires_at = now - 1 if outbox_id in expired else now + 3600
        rows.append((outbox_id, f"{event}-{outbox_id}", 1, "hook", event, facts, now, expires_at, now))
    writer = await store.Writer.open(sqlite_file(config))
    writer.start()
    try:
        initial = states.initial_state(config.checks["job"], now)
        await writer.submit(Write(statements=[insert_check_statement(1, "job", now, initial)], outbox=rows))
    finally:
        await writer.close()
    real, heads = outboxqueries.read_due_alerts, set[int]()

    async def read_due_alerts(*args: Any) -> list[outboxqueries.OutboxItem]:
        items = await real(*args)
        heads.update(item.id for item in items if item.event == "reminder")
        return items

    monkeypatch.setattr(outboxqueries, "read_due_alerts", read_due_alerts)
    caplog.set_level(logging.INFO, logger="heartfly.notify.dispatcher")
    hf = await start(config)
    pending = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
    await until(lambda: query(config, pending) == [(0,)], "the outbox to empty")
    # Only the first reminder was ever a head read: the 196 behind it went in its write. The
    # expired ones were left to the expiry path, each in its turn.
    assert heads == {1} | expired
    got = query(config, "SELECT id, event, status, attempts FROM outbox ORDER BY id")
    attempts = query(config, "SELECT outbox_id, outcome FROM alert_attempts ORDER BY outbox_id")
    assert [(r[1], r[2], r[3]) for r in got if r[1] != "reminder"] == [("down", "sent", 1), ("recovery", "sent", 1)]
    stale = [r for r in got if r[1] == "reminder" and r[0] not in expired]
    assert len(stale) == 197 and {(r[2], r[3]) for r in stale} == {("superseded", 1)}
    assert {(r[2], r[3]) for r in got if r[0] in expired} == {("expired", 1)}
    assert [outcome for outbox_id, outcome in attempts if outbox_id in {r[0] for r in stale}] == ["superseded"] * 197
    assert hook.events() == ["down", "recovery"]
    dispatcher = hf.client.app[RUNTIME].dispatcher
    assert dispatcher is not None and dispatcher.outcomes[("hook", "superseded")] == 197
    said = [r.getMessage() for r in caplog.records if "superseded" in r.getMessage()]
    assert len(said) == 1 and "196 more stale reminder(s)" in said[0] and key not in caplog.text


# ---- a backlog on one channel -----------------------------------------------------------------


async def backlog(config: Config, counts: dict[str, int]) -> None:
    """Queue alerts of no check (maintenance summaries listing none) on channels before Heartfly
    starts, as a long outage leaves them. Not test alerts: one of those goes beside the limit."""
    writer = await store.Writer.open(sqlite_file(config))
    writer.start()
    try:
        now, ids = time.time(), itertools.count(1)
        rows = [
            outbox.maintenance_row(next(ids), name, "backlog", (now - 60, now), [], now, config.alerts)
            for name, n in counts.items()
            for _ in range(n)
        ]
        await writer.submit(Write(outbox=rows))
    finally:
        await writer.close()


async def test_a_reload_that_raises_alerts_concurrency_lets_the_waiting_attempts_of_a_hung_channel_start(
    monkeypatch: pytest.MonkeyPatch, start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # Its requests hang past its end, where the stop would wait its 5 s grace for them (monkeypatch is
    # the first fixture, so the one undone last: after the app stops).
    monkeypatch.setattr(app, "STOP_GRACE", 0.0)
    # Each channel's semaphore kept the concurrency it was made with, until a restart.
    stuck = await receivers(hanging=True)
    keys = [new_key() for _ in range(3)]
    alerts = '[alerts]\nconcurrency = {n}\ntimeout = "30s"\nexpire_after = "60s"\n'
    body = webhook("stuck", stuck.url) + "".join(check(f"job{i}", key, ["stuck"]) for i, key in enumerate(keys))
    config = write_config(body + alerts.format(n=1), server=SERVER)
    hf = await start(config)
    for key in keys:
        await hf.ping(key, "/fail")
    await until(lambda: stuck.hits, "the first request")
    await asyncio.sleep(0.3)  # time for a second request, were it let through
    assert len(stuck.hits) == 1
    config.path.write_text(config.path.read_text(encoding="utf-8").replace("concurrency = 1", "concurrency = 3"))
    async with hf.client.post("/api/v1/reload", headers=hf.auth) as resp:
        assert resp.status == 200, await resp.text()
    await until(lambda: len(stuck.hits) == 3, "the waiting requests", timeout=5)


async def other_channel_alerts(hf: Heartfly, key: str, live: Receiver) -> None:
    """A check on a healthy channel fails, and its alert arrives while the other channel hangs."""
    await hf.ping(key, "/fail")
    await until(lambda: live.hits, "the other channel's alert", timeout=5)
    assert live.events() == ["down"]


async def test_a_hung_channel_with_over_a_thousand_pending_alerts_does_not_hold_up_another_channel(
    monkeypatch: pytest.MonkeyPatch, start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # Its requests hang past its end, where the stop would wait its 5 s grace for them (monkeypatch is
    # the first fixture, so the one undone last: after the app stops).
    monkeypatch.setattr(app, "STOP_GRACE", 0.0)
    stuck, live = await receivers(hanging=True), await receivers()
    key = new_key()
    config = write_config(
        webhook("stuck", stuck.url, 'timeout = "30s"')
        + webhook("live", live.url)
        + check("other", new_key(), ["stuck"])
        + check("job", key, ["live"])
        + fast("60s"),
        server=SERVER,
    )
    await backlog(config, {"stuck": 1100})
    hf = await start(config)
    await until(lambda: len(stuck.hits) == config.alerts.concurrency, "the stuck channel's requests")
    await other_channel_alerts(hf, key, live)


async def test_over_a_hundred_hung_webhook_requests_do_not_hold_up_another_channel(
    monkeypatch: pytest.MonkeyPatch, start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # Its requests hang past its end, where the stop would wait its 5 s grace for them (monkeypatch is
    # the first fixture, so the one undone last: after the app stops).
    monkeypatch.setattr(app, "STOP_GRACE", 0.0)
    stuck, live = await receivers(hanging=True), await receivers()
    key = new_key()
    config = write_config(
        "".join(webhook(f"stuck{i}", f"{stuck.url}/{i}", 'timeout = "30s"') for i in range(3))
        + webhook("live", live.url)
        + check("other", new_key(), ["stuck0", "stuck1", "stuck2"])
        + check("job", key, ["live"])
        + fast("60s")
        + "concurrency = 40\n",
        server=SERVER,
    )
    await backlog(config, {f"stuck{i}": 40 for i in range(3)})
    hf = await start(config)
    await until(lambda: len(stuck.hits) >= 100, "a hundred hung requests")  # aiohttp's default pool size
    await other_channel_alerts(hf, key, live)


# ---- a check removed from the config ----------------------------------------------------------


async def test_the_pending_alerts_of_a_check_removed_from_the_config_are_dropped(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers(status=503)
    key = new_key()
    kept = check("kept", new_key(), ["hook"])
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + kept + fast("60s"), server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    await hf.wait_alert("job", "hook", "down", lambda a: len(a["attempt_log"]) >= 1)
    write_config(webhook("hook", hook.url) + kept + fast("60s"), server=SERVER)
    async with hf.client.post("/api/v1/reload", headers=hf.auth) as resp:
        assert resp.status == 200, await resp.text()

    def dropped() -> list[tuple[object, ...]]:
        return query(config, "SELECT status, last_error FROM outbox WHERE status != 'pending'")

    assert await until(dropped, "the removed check's alert to be dropped", timeout=5) == [
        ("failed", 'check "job" is no longer in the config')
    ]


# ---- a check's channels changed while it is down -------------------------------------------------


async def test_a_recovery_goes_to_the_channels_told_the_down_after_a_reload_changed_the_checks_channels(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    told, new = await receivers(), await receivers()
    key = new_key()
    channels = webhook("told", told.url) + webhook("new", new.url) + fast("60s")
    config = write_config(channels + check("job", key, ["told"]), server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: told.hits, "the down alert")
    write_config(channels + check("job", key, ["new"]), server=SERVER)
    async with hf.client.post("/api/v1/reload", headers=hf.auth) as resp:
        assert resp.status == 200, await resp.text()
    await hf.ping(key)
    await until(lambda: len(told.hits) == 2, "the recovery where the down went", timeout=5)
    assert told.events() == ["down", "recovery"]
    await hf.ping(key, "/fail")  # the next down goes to the channels the check names now
    await until(lambda: new.hits, "the next down alert", timeout=5)
    assert new.events() == ["down"] and told.events() == ["down", "recovery"]


async def test_a_recovery_goes_to_the_channels_told_the_down_after_a_restart_on_a_file_with_other_channels(
    write_config: ConfigWriter,
) -> None:
    # Told "a" and "b" (a reminder to "b" after a reload): both hear the recovery, stored across the restart.
    key = new_key()
    logs = '[channels.a]\ntype = "log"\n[channels.b]\ntype = "log"\n[channels.c]\ntype = "log"\n'
    job = f'[checks.job]\nkey = "{key}"\nevery = "1h"\nrepeat = "1m"\nchannels = {{}}\n'
    config = write_config(logs + job.format('["a"]'))
    clock = FakeClock()

    async def ping(engine: Any, kind: states.Kind) -> None:
        await engine.record(engine.checks["job"], PingRecord(states.Event(kind, clock.now()), clock.now()))

    async with running(config, clock) as engine:
        await ping(engine, states.Kind.FAIL)
    clock.advance(30)
    async with running(write_config(logs + job.format('["b"]')), clock) as engine:
        clock.advance(60)
        engine.fire_due(clock.now())
    clock.advance(10)
    async with running(write_config(logs + job.format('["c"]')), clock) as engine:
        await ping(engine, states.Kind.SUCCESS)
    rows = query(config, "SELECT event, channel FROM outbox ORDER BY id")
    assert rows == [("down", "a"), ("reminder", "b"), ("recovery", "a"), ("recovery", "b")]


async def test_a_checks_pending_down_alert_follows_it_through_a_rename_through_the_api(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # A new slug renames the check, history and all (docs/healthchecks.md); its down alert, waiting
    # out a channel's outage, was dropped as "no longer in the config", and nobody was told.
    hook = await receivers(status=503)
    config = write_config(webhook("hook", hook.url) + fast("60s"), server=f'{SERVER}\nhc_api_key_file = "hc-key"')
    hf = await start(config)
    hc = {"X-Api-Key": (config.path.parent / "hc-key").read_text().strip()}
    async with hf.client.post("/api/v3/checks/", json={"name": "sync", "channels": "hook"}, headers=hc) as resp:
        assert resp.status == 201, await resp.text()
        uuid = (await resp.json())["uuid"]
    await hf.ping(uuid, "/fail")
    await hf.wait_alert("sync", "hook", "down", lambda a: len(a["attempt_log"]) >= 1)
    async with hf.client.post(f"/api/v3/checks/{uuid}", json={"slug": "user-sync"}, headers=hc) as resp:
        assert resp.status == 200, await resp.text()
    hook.status = 200
    [alert] = await hf.settled("user-sync", 1)
    assert (alert["event"], alert["status"]) == ("down", "sent"), alert
    told = hook.hits[-1].json()
    assert told["check"]["name"] == "user-sync" and told["check"]["url"] == f"{PUBLIC}/checks/user-sync"


# ---- the dispatcher itself ------------------------------------------------------------------


async def test_the_dispatcher_survives_a_failed_read_of_the_outbox_and_delivers_the_next_alert(
    monkeypatch: pytest.MonkeyPatch, start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers()
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast(), server=SERVER)
    real = outboxqueries.read_due_alerts
    failed = asyncio.Event()

    async def fails_once(*args: Any) -> list[outboxqueries.OutboxItem]:
        if not failed.is_set():
            failed.set()
            raise sqlite3.OperationalError("disk I/O error")
        return await real(*args)

    monkeypatch.setattr(outboxqueries, "read_due_alerts", fails_once)
    hf = await start(config)
    await failed.wait()
    await hf.ping(key, "/fail")
    alerts = await hf.settled("job", 1)
    assert [(a["event"], a["status"]) for a in alerts] == [("down", "sent")]
    assert hook.events() == ["down"]


async def test_alert_rows_made_before_the_dispatcher_exists_wake_it_once_committed(write_config: ConfigWriter) -> None:
    # A start's first changes may be made before the dispatcher is: their rows waited for its next
    # safety poll, 30 s, when their commit came after its first read.
    config = write_config(
        f'[channels.journal]\ntype = "log"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        assert engine.on_alerts is None
        committed = engine.record(
            engine.checks["a"], PingRecord(states.Event(states.Kind.FAIL, clock.now()), clock.now())
        )
        woken: list[bool] = []
        engine.on_alerts = lambda: woken.append(True)  # the dispatcher, made meanwhile
        await committed
        assert woken == [True]


async def test_alerts_read_together_each_show_their_own_checks_last_ping(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # The dispatcher reads the last pings of the alerts it reads in one go (a storm's alerts read
    # them one at a time, queued on the one reader): each alert still gets its own check's.
    hook = await receivers()
    keys = {f"job{i}": new_key() for i in range(12)}
    checks = "".join(check(name, key, ["hook"]) for name, key in keys.items())
    hf = await start(write_config(webhook("hook", hook.url) + checks + fast(), server=SERVER))
    await asyncio.gather(*(hf.ping(key, "/fail", body=f"{name}: disk full") for name, key in keys.items()))
    await until(lambda: len(hook.hits) == len(keys), "a down alert per check")
    bodies = [hit.json() for hit in hook.hits]
    assert sorted(b["check"]["name"] for b in bodies) == sorted(keys)
    for body in bodies:
        assert body["event"] == "down" and body["last_ping"]["kind"] == "fail"
        assert body["last_ping"]["message_tail"] == f"{body['check']['name']}: disk full"


async def test_a_ping_row_that_cannot_be_read_holds_back_no_other_checks_alert(
    monkeypatch: pytest.MonkeyPatch,
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The last pings of the alerts read together are read in one statement: when one ping row could
    # not be read (a damaged page of the pings table), that read failed, the whole dispatch with it,
    # every second, and no alert of any check went out, logged as the outbox that cannot be read.
    # Each attempt reads its own then: only the alert of the damaged ping is retried.
    hook = await receivers()
    hurt, key = new_key(), new_key()
    checks = check("hurt", hurt, ["hook"]) + check("job", key, ["hook"])
    config = write_config(webhook("hook", hook.url) + checks + fast("60s"), server=SERVER)
    real = queries.read_pings_by_id

    async def damaged(*args: Any) -> dict[int, dict[str, Any]]:
        found = await real(*args)
        if any(ping["body"] == "on a damaged page" for ping in found.values()):
            raise sqlite3.DatabaseError("database disk image is malformed")
        return found

    monkeypatch.setattr(queries, "read_pings_by_id", damaged)
    hf = await start(config)
    await hf.ping(hurt, "/fail", body="on a damaged page")
    await hf.ping(key, "/fail", body="disk full")
    alerts = await hf.settled("job", 1)
    assert [(a["event"], a["status"]) for a in alerts] == [("down", "sent")]
    [body] = [hit.json() for hit in hook.hits]
    assert body["check"]["name"] == "job" and body["last_ping"]["message_tail"] == "disk full"
    assert [a["status"] for a in await hf.alerts("hurt")] == ["pending"]  # retried, alone
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if "cannot read the alert outbox" in m], logged
    assert [m for m in logged if "cannot read the last pings of" in m], logged
