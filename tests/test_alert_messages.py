"""What an alert says and where it goes, without a socket: rendering, outbox rows and retry delays.

Every alert here is built the way the engine builds it: the pure state machine makes the flip,
outbox.payload freezes its facts (through a JSON round trip, as the outbox table stores them),
and message.py renders them.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from heartfly.core import states
from heartfly.core.clock import FakeClock
from heartfly.core.config import CheckConfig, load_config
from heartfly.core.config_alerts import AlertsConfig, ChannelConfig, SmtpConfig
from heartfly.core.printable import escape_lines
from heartfly.core.states import CheckState, Event, Flip, Kind, Reason, Status, initial_state
from heartfly.core.views import iso
from heartfly.notify import PermanentError, outbox, webhook
from heartfly.notify import dispatcher as dispatch
from heartfly.notify import email as mail
from heartfly.notify.dispatcher import LAST_TRY, backoff, next_try
from heartfly.notify.message import (
    TAIL,
    Alert,
    discord_json,
    html_body,
    ntfy_request,
    slack_json,
    subject,
    text,
    webhook_json,
)
from heartfly.notify.outbox import TEST_EXPIRE_AFTER
from heartfly.store.outboxqueries import OutboxItem
from tests.conftest import ConfigWriter, check

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
LINK = "https://hb.example.org/checks/backup"
CHECK_ID = 7
FLIP_ID = 42
EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def on_event(cfg: CheckConfig, st: CheckState, ev: Event, now: float) -> tuple[CheckState, Flip | None]:
    """states.apply_event's new state and flip (whatever else a step may carry)."""
    step: Sequence[Any] = states.apply_event(cfg, st, ev, now)
    return step[0], step[1]


def on_time(cfg: CheckConfig, st: CheckState, now: float) -> tuple[CheckState, Flip | None]:
    """states.advance's new state and flip."""
    step: Sequence[Any] = states.advance(cfg, st, now)
    return step[0], step[1]


def backup(**kw: Any) -> CheckConfig:
    fields: dict[str, Any] = {"every": 3600.0, "grace": 300.0, "description": "Nightly tar of /srv"}
    fields.update(kw)
    return check("backup", **fields)


def alert_for(
    cfg: CheckConfig,
    old: CheckState,
    new: CheckState,
    flip: Flip | None,
    *,
    ping_id: int = 9,
    last_ping: dict[str, Any] | None = None,
) -> Alert:
    """The Alert the dispatcher would render for this transition."""
    assert flip is not None
    event = flip.event
    assert event is not None
    facts = outbox.payload(cfg, flip, old, new, flip_id=None if flip.reminder else FLIP_ID, ping_id=ping_id)
    key = f"reminder-{CHECK_ID}-{int(flip.at * 1000)}" if flip.reminder else f"flip-{FLIP_ID}-{int(flip.at * 1000)}"
    return Alert(key=key, event=event, payload=json.loads(json.dumps(facts)), last_ping=last_ping, link=LINK)


def ping(at: float, kind: str, *, body: str = "", exit_status: int | None = None) -> dict[str, Any]:
    """A pings row as store.read_ping returns it."""
    return {
        "id": 9,
        "at": at,
        "kind": kind,
        "exit_status": exit_status,
        "run_id": None,
        "body": body,
        "source": "10.1.2.3",
    }


def run(cfg: CheckConfig, start: float, end: Event) -> tuple[CheckState, CheckState, Flip | None]:
    """A check that pinged once at T0, then a run from `start` ending with `end`."""
    up, _ = settled(cfg, initial_state(cfg, T0 - 60), Event(Kind.SUCCESS, T0), T0)
    running, _ = on_event(cfg, up, Event(Kind.START, start), start)
    new, flip = settled(cfg, running, end, end.at)
    return running, new, flip


def settled(cfg: CheckConfig, st: CheckState, ev: Event, now: float) -> tuple[CheckState, Flip | None]:
    """on_event, and then the reorder window a success waits out where a run's duration is judged."""
    new, flip = on_event(cfg, st, ev, now)
    return on_time(cfg, new, now + states.REORDER_WINDOW) if new.waiting else (new, flip)


def missed(cfg: CheckConfig) -> tuple[CheckState, CheckState, Flip | None]:
    """A check that pinged at T0 and then never again: down once due + grace has passed."""
    up, _ = on_event(cfg, initial_state(cfg, T0 - 60), Event(Kind.SUCCESS, T0), T0)
    new, flip = on_time(cfg, up, T0 + 3600 + 300)
    return up, new, flip


def lines(alert: Alert) -> list[str]:
    return text(alert).splitlines()


# ---- what a down alert says ---------------------------------------------------------------


def test_a_missed_run_says_which_check_did_not_run_when_it_was_due_and_when_it_last_pinged() -> None:
    cfg = backup()
    old, new, flip = missed(cfg)
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body="all good"))
    assert subject(alert) == "[DOWN] backup did not run: no ping arrived by its deadline"
    body = lines(alert)
    assert body[0] == "backup did not run: no ping arrived by its deadline"
    assert "Check: backup" in body
    assert "Description: Nightly tar of /srv" in body
    assert "Schedule: every hour" in body
    assert "State: down (missed)" in body
    assert "What happened: no ping arrived by the deadline" in body
    assert f"Was due: {iso(T0 + 3600)}" in body  # the due time itself, grace not added
    assert f"Noticed at: {iso(T0 + 3900)}" in body
    assert f"Last ping: success at {iso(T0)} from 10.1.2.3" in body
    assert f"Link: {LINK}" in body
    assert body[-2:] == ["Last ping's message (tail):", "all good"]


def test_a_failed_run_says_failed_with_its_exit_status_its_duration_and_the_message_tail() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 135, exit_status=3))
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 135, "fail", body="tar: disk full", exit_status=3))
    assert subject(alert) == "[DOWN] backup failed with exit status 3"
    body = lines(alert)
    assert "State: down (failed)" in body
    assert "What happened: failed with exit status 3" in body
    assert "Run duration: 2 min 5 s" in body
    assert f"Last ping: fail at {iso(T0 + 135)} from 10.1.2.3" in body
    assert body[-1] == "tar: disk full"
    # A failure broke no deadline: the next run's due time is no "was due" (it is in the future).
    assert not any(line.startswith("Was due:") for line in body)
    assert webhook_json(alert)["due_at"] is None


def test_a_failure_without_an_exit_status_just_says_failed() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20))
    assert subject(alert_for(cfg, old, new, flip)) == "[DOWN] backup failed"


def test_an_overrun_says_it_ran_too_long() -> None:
    cfg = backup(max_runtime=60.0)
    up, _ = on_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 10), T0 + 10)
    new, flip = on_time(cfg, up, T0 + 71)
    alert = alert_for(cfg, up, new, flip)
    assert subject(alert) == "[DOWN] backup ran too long: still running past its max_runtime"
    assert "State: down (overrun)" in lines(alert)
    assert f"Was due: {iso(T0 + 70)}" in lines(alert)  # the max_runtime it broke, not the next run
    [happened] = [line for line in lines(alert) if line.startswith("What happened: ")]
    assert "max_runtime" in happened  # the state machine's own words


def test_a_run_that_finished_too_fast_says_so_with_both_durations() -> None:
    cfg = backup(min_runtime=30.0)
    old, new, flip = run(cfg, T0 + 10, Event(Kind.SUCCESS, T0 + 15))
    alert = alert_for(cfg, old, new, flip)
    assert subject(alert) == "[DOWN] backup finished too fast: sooner than its min_runtime"
    assert "What happened: finished after 5 s, sooner than min_runtime 30 s" in lines(alert)
    assert "Run duration: 5 s" in lines(alert)


def test_an_alert_gives_the_duration_of_its_own_run_only_never_one_an_earlier_run_left() -> None:
    cfg = backup()
    running, down, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 135))
    assert webhook_json(alert_for(cfg, running, down, flip))["run_duration_seconds"] == 125.0
    up, flip = on_event(cfg, down, Event(Kind.SUCCESS, T0 + 200), T0 + 200)  # no start
    alert = alert_for(cfg, down, up, flip)
    assert up.last_duration == 125.0  # the state keeps it, for the status and the metric
    assert webhook_json(alert)["run_duration_seconds"] is None
    assert not any(line.startswith("Run duration") for line in lines(alert))
    again, flip = on_event(cfg, up, Event(Kind.FAIL, T0 + 300), T0 + 300)  # no start
    assert webhook_json(alert_for(cfg, up, again, flip))["run_duration_seconds"] is None
    started, _ = on_event(cfg, again, Event(Kind.START, T0 + 400), T0 + 400)
    back, flip = on_event(cfg, started, Event(Kind.SUCCESS, T0 + 460), T0 + 460)
    assert webhook_json(alert_for(cfg, started, back, flip))["run_duration_seconds"] == 60.0


def test_a_replayed_run_that_recovers_a_missed_check_gives_its_duration_though_the_recovery_is_dated_later() -> None:
    cfg = backup()
    _, down, _ = missed(cfg)  # down at T0 + 3900
    started = states.receive(cfg, down, Event(Kind.START, T0 + 3700), T0 + 5000)[-1].state  # spooled, replayed
    [*_, (up, flip, _)] = states.receive(cfg, started, Event(Kind.SUCCESS, T0 + 3760), T0 + 5000)
    assert flip is not None and flip.is_recovery and flip.at == T0 + 3900  # not before the down it ends
    assert webhook_json(alert_for(cfg, started, up, flip))["run_duration_seconds"] == 60.0


def test_a_reminder_of_a_failed_run_gives_its_duration_and_an_alert_a_deadline_made_none() -> None:
    cfg = backup(repeat=600.0)
    _, down, _ = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 135))
    still, flip = on_time(cfg, down, T0 + 735)
    assert flip is not None and flip.reminder
    assert webhook_json(alert_for(cfg, down, still, flip))["run_duration_seconds"] == 125.0
    timed, _ = on_event(cfg, initial_state(cfg, T0 - 60), Event(Kind.START, T0 - 30), T0 - 30)
    timed, _ = on_event(cfg, timed, Event(Kind.SUCCESS, T0), T0)
    missed_it, flip = on_time(cfg, timed, T0 + 3900)
    assert flip is not None and flip.reason is Reason.MISSED and missed_it.last_duration == 30.0
    assert webhook_json(alert_for(cfg, timed, missed_it, flip))["run_duration_seconds"] is None  # no run ended


def test_a_recovery_says_the_check_is_back_and_how_long_it_was_down() -> None:
    cfg = backup()
    _, down, _ = missed(cfg)
    back_at = T0 + 3900 + 5400
    new, flip = on_event(cfg, down, Event(Kind.SUCCESS, back_at), back_at)
    alert = alert_for(cfg, down, new, flip, last_ping=ping(back_at, "success"))
    assert subject(alert) == "[UP] backup is back up"
    body = lines(alert)
    assert f"Recovered at: {iso(back_at)}" in body
    assert "Was down for: 1 h 30 min" in body
    assert not any(line.startswith(("State:", "Was due:")) for line in body)
    data = webhook_json(alert)
    assert (data["event"], data["state"], data["previous_state"], data["reason"]) == ("recovery", "up", "down", None)
    assert data["down_for_seconds"] == 5400.0


def test_a_job_that_started_and_hung_past_its_deadline_is_told_it_did_not_finish_not_that_it_did_not_run() -> None:
    # every 1h, no max_runtime: a start does not move the schedule, so a run that hangs is caught
    # at its due time plus grace (reason missed). It did run: its start came.
    cfg = backup()
    up, _ = on_event(cfg, initial_state(cfg, T0 - 60), Event(Kind.SUCCESS, T0), T0)
    started, _ = on_event(cfg, up, Event(Kind.START, T0 + 3540), T0 + 3540)
    late, _ = on_time(cfg, started, T0 + 3600)
    new, flip = on_time(cfg, late, T0 + 3900)
    assert new.reason is Reason.MISSED
    alert = alert_for(cfg, late, new, flip, last_ping=ping(T0 + 3540, "start"))
    body = lines(alert)
    assert body[0] == "backup started but did not finish by its deadline"
    assert "What happened: it started 6 min before the deadline but had not finished by it" in body
    assert f"Running since: {iso(T0 + 3540)}" in body
    assert not any("did not run" in line or "no ping arrived" in line for line in body), body
    reminded, reminder = on_time(backup(repeat=600.0), new, T0 + 4500)
    assert (
        lines(alert_for(cfg, new, reminded, reminder))[0]
        == "Still down: backup started but did not finish by its deadline"
    )


def test_a_run_left_open_before_the_jobs_later_runs_does_not_make_a_missed_run_read_as_hung() -> None:
    # A run id whose end never came, then runs that ended: the job then stops running altogether.
    cfg = backup()
    st, _ = on_event(cfg, initial_state(cfg, T0 - 120), Event(Kind.START, T0 - 100, "lost"), T0 - 100)
    st, _ = on_event(cfg, st, Event(Kind.SUCCESS, T0, "r2"), T0)
    assert "lost" in st.runs
    late, _ = on_time(cfg, st, T0 + 3600)
    new, flip = on_time(cfg, late, T0 + 3900)
    alert = alert_for(cfg, late, new, flip)
    assert lines(alert)[0] == "backup did not run: no ping arrived by its deadline"
    assert "What happened: no ping arrived by the deadline" in lines(alert)


def test_a_reminder_says_still_down_and_since_when() -> None:
    cfg = backup(repeat=600.0)
    _, down, _ = missed(cfg)
    new, flip = on_time(cfg, down, T0 + 3900 + 600)
    assert flip is not None and flip.reminder
    alert = alert_for(cfg, down, new, flip)
    assert alert.key == f"reminder-{CHECK_ID}-{int((T0 + 4500) * 1000)}"
    assert subject(alert) == "[DOWN] Still down: backup did not run: no ping arrived by its deadline"
    assert f"Down since: {iso(T0 + 3900)}" in lines(alert)
    assert f"Was due: {iso(T0 + 3600)}" in lines(alert)  # the run it missed
    assert webhook_json(alert)["event"] == "reminder"


def test_a_reminder_after_a_start_moved_the_schedule_on_says_no_future_was_due() -> None:
    cfg = backup(repeat=3600.0, max_runtime=7200.0)  # max_runtime: a start anchors the schedule
    _, down, _ = missed(cfg)
    started, _ = on_event(cfg, down, Event(Kind.START, T0 + 4000), T0 + 4000)
    new, flip = on_time(cfg, started, T0 + 3900 + 3600)
    assert flip is not None and flip.reminder
    alert = alert_for(cfg, started, new, flip)
    assert not any(line.startswith("Was due:") for line in lines(alert))
    assert webhook_json(alert)["due_at"] is None


def test_a_test_alert_is_clearly_marked_as_a_test() -> None:
    alert = Alert(key="test-5", event="test", payload={"channel": "ops", "at": T0}, last_ping=None, link=LINK)
    assert subject(alert) == "[TEST] Heartfly test alert for channel ops: delivery works"
    assert lines(alert)[2:] == [f"Sent: {iso(T0)}", "Channel: ops"]
    assert webhook_json(alert)["event"] == "test"


def test_a_long_message_is_quoted_by_its_tail_only() -> None:
    cfg = backup()
    old, new, flip = missed(cfg)
    body = "HEAD" + "x" * 2000 + "the end"
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0, "log", body=body))
    assert alert.message_tail() == "…" + body[-TAIL:]
    assert "HEAD" not in text(alert) and text(alert).endswith("the end\n")


def test_an_alert_whose_last_ping_was_pruned_or_never_came_says_so() -> None:
    cfg = backup()
    old, new, flip = missed(cfg)
    assert "Last ping: no longer stored" in lines(alert_for(cfg, old, new, flip, ping_id=9))
    assert "Last ping: none yet" in lines(alert_for(cfg, old, new, flip, ping_id=0))


# ---- HTML is escaped ------------------------------------------------------------------------


def test_the_html_part_escapes_a_ping_body_with_script_and_img_onerror() -> None:
    cfg = backup(description="<b>bold</b> & co")
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20, exit_status=1))
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 20, "fail", body=f"oops {EVIL}", exit_status=1))
    page = html_body(alert)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "<h2>backup failed with exit status 1</h2>" in page
    assert f"<a href='{LINK}'>Open backup</a>" in page
    assert "<th align='left'>Run duration</th><td>10 s</td>" in page
    assert "Was due" not in page  # a failed run broke no deadline


def test_the_plain_text_and_json_keep_the_ping_body_verbatim() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20))
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 20, "fail", body=EVIL))
    assert text(alert).endswith(EVIL + "\n")  # plain text is not markup
    assert webhook_json(alert)["last_ping"]["message_tail"] == EVIL


# ---- the webhook body and the presets --------------------------------------------------------


def test_the_webhook_json_is_schema_version_1_with_the_idempotency_key_as_its_id() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 135, exit_status=3))
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 135, "fail", body="tar: disk full", exit_status=3))
    data = webhook_json(alert)
    documented = {
        "version": 1,
        "id": f"flip-{FLIP_ID}-{int((T0 + 135) * 1000)}",
        "event": "down",
        "summary": "backup failed with exit status 3",
        "check": {"name": "backup", "description": "Nightly tar of /srv", "url": LINK},
        "state": "down",
        "previous_state": "running",
        "reason": "failed",
        "detail": "failed with exit status 3",
        "at": iso(T0 + 135),
        "due_at": None,  # the deadline it did not meet: a failure met its deadline, and failed
        "down_since": iso(T0 + 135),
        "down_for_seconds": None,
        "run_duration_seconds": 125.0,
        "exit_status": 3,
        "last_ping": {
            "at": iso(T0 + 135),
            "kind": "fail",
            "source": "10.1.2.3",
            "exit_status": 3,
            "run_id": None,
            "message_tail": "tar: disk full",
        },
    }
    assert {k: data.get(k) for k in documented} == documented  # version 1 may gain fields, never lose one
    assert json.loads(json.dumps(data)) == data


def test_the_json_format_sends_the_idempotency_key_header_and_the_channels_own_headers() -> None:
    cfg = backup()
    old, new, flip = missed(cfg)
    alert = alert_for(cfg, old, new, flip)
    channel = ChannelConfig("hook", "webhook", url="https://x.example/h", headers=(("Authorization", "Bearer t0k"),))
    body, headers = webhook.request_for(channel, alert)
    assert json.loads(body) == webhook_json(alert)
    assert headers["Idempotency-Key"] == alert.key == json.loads(body)["id"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["User-Agent"].startswith("heartfly/")


def test_the_slack_preset_is_a_text_field_with_mrkdwn_escaped() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20))
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 20, "fail", body="a < b && " + EVIL))
    data = slack_json(alert)
    assert list(data) == ["text"]
    assert data["text"].startswith("backup failed\n")
    assert "a &lt; b &amp;&amp; &lt;script&gt;" in data["text"]
    assert "<" not in data["text"] and ">" not in data["text"]


def test_a_ping_message_cannot_notify_a_whole_slack_or_mattermost_channel() -> None:
    cfg = backup()
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20))
    body = "@here @channel @everyone @ALL <!here> mail me@here.example"
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0 + 20, "fail", body=body))
    sent = slack_json(alert)["text"]
    assert not re.search(r"(?<!\w)@(here|channel|everyone|all)\b", sent, re.I), sent
    assert "@\u200bhere @\u200bchannel @\u200beveryone @\u200bALL &lt;!here&gt; mail me@here.example" in sent


def test_a_ping_message_cannot_make_a_markdown_link_in_mattermost_through_the_slack_preset() -> None:
    # Mattermost and Rocket.Chat render markdown in a Slack-style webhook's text: a job's output
    # could show a link that reads as Heartfly's own, or load an image from anywhere.
    body = "[Open backup](https://evil.example) ![i](https://t.example/p.png)\n[r]: https://evil.example\n[Go][r]"
    cfg = backup(description="see [the runbook](https://wiki.example/backup)")  # the operator's own: kept
    old, new, flip = run(cfg, T0 + 10, Event(Kind.FAIL, T0 + 20))
    sent = slack_json(alert_for(cfg, old, new, flip, last_ping=ping(T0 + 20, "fail", body=body)))["text"]
    facts, message = sent.split("Last ping's message (tail):\n")
    assert not re.search(r"\]\s*[(\[:]", message), message
    assert message.replace("\u200b", "") == body + "\n"
    assert "[the runbook](https://wiki.example/backup)" in facts


def test_a_fan_in_workers_name_from_its_pings_makes_no_link_in_a_chat_preset() -> None:
    # An incomplete fan-in's "What happened" names the workers missing, by the names their pings
    # gave (member=, printable ASCII without spaces) when the check lists none: outside the
    # message's quoting, such a name rendered as a masked link in Discord and Mattermost.
    name = "[Open_backup](https://evil.example/login)"
    payload = {
        "check": "backup", "schedule": "every 1 h", "state": "down", "reason": "incomplete", "at": T0,
        "detail": f"2 of 3 successes arrived; missing: {name}",
    }  # fmt: skip
    alert = Alert(key=f"flip-{FLIP_ID}", event="down", payload=payload, last_ping=None, link=LINK)
    for body in (slack_json(alert)["text"], discord_json(alert)["content"]):
        assert not re.search(r"\][(\[:]", body), body
        assert f"What happened: 2 of 3 successes arrived; missing: {name}" in body.replace("\u200b", "")
    assert f"missing: {name}" in text(alert)  # the plain text keeps it as it came


def test_the_discord_preset_is_content_within_discords_limit_and_mentions_nobody() -> None:
    cfg = backup(description="d" * 3000)
    old, new, flip = missed(cfg)
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body="@everyone look"))
    data = discord_json(alert)
    assert data["allowed_mentions"] == {"parse": []}  # "@everyone" in a ping body pings nobody
    assert data["content"].startswith("backup did not run")
    assert len(data["content"]) == 1990 and text(alert).startswith(data["content"])
    assert "```" not in data["content"]  # cut before the message's block: none left open


def test_a_ping_message_reaches_discord_in_a_code_block_where_no_link_or_heading_is_rendered() -> None:
    # Discord renders markdown in a webhook's content: a job's output could show a masked link that
    # reads as Heartfly's own ("Open backup" pointing elsewhere), a heading, a fence of its own.
    evil = "# Fixed\n[Open backup](https://evil.example/login) <@123>\n```\nclosed? ````"
    cfg = backup()
    old, new, flip = missed(cfg)
    content = discord_json(alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body=evil)))["content"]
    head, block, rest = content.split("```")
    assert block.startswith("\n# Fixed\n[Open backup](https://evil.example/login) <@123>\n`\u200b``") and rest == "\n"
    assert head.endswith("Last ping's message (tail):\n")
    cfg = backup(description="d" * 1500)  # the block cut by the limit is closed, not left open
    old, new, flip = missed(cfg)
    long = discord_json(
        alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body="[x](https://e.example) " * 30))
    )
    assert len(long["content"]) <= 2000 and long["content"].count("```") == 2 and long["content"].endswith("\n```")


@pytest.mark.parametrize(
    ("event", "priority", "tags"),
    [
        ("down", "high", "rotating_light"),
        ("reminder", "high", "rotating_light"),
        ("recovery", "default", "white_check_mark"),
    ],
)
def test_the_ntfy_preset_is_plain_text_with_title_priority_tags_and_click(event: str, priority: str, tags: str) -> None:
    alert = Alert(key="flip-1", event=event, payload={"check": "backup", "reason": "missed"}, last_ping=None, link=LINK)
    body, headers = ntfy_request(alert)
    assert body == text(alert).encode()
    assert headers == {"Title": subject(alert), "Priority": priority, "Click": LINK, "Tags": tags}
    channel = ChannelConfig("ntfy", "webhook", url="https://ntfy.sh/topic", format="ntfy")
    sent_body, sent = webhook.request_for(channel, alert)
    assert sent_body == body
    assert sent["Content-Type"] == "text/plain; charset=utf-8" and sent["Idempotency-Key"] == "flip-1"
    assert sent["Title"] == subject(alert)


def test_an_ntfy_test_alert_is_low_priority_without_tags() -> None:
    alert = Alert(key="test-1", event="test", payload={"channel": "ntfy", "at": T0}, last_ping=None, link=LINK)
    _, headers = ntfy_request(alert)
    assert headers["Priority"] == "low" and "Tags" not in headers
    assert headers["Title"] == "[TEST] Heartfly test alert for channel ntfy: delivery works"


def test_a_maintenance_summary_of_checks_still_down_is_tagged_and_sent_as_a_down_alert() -> None:
    # The summary is the only down alert its checks get: "[maintenance]" at ntfy's default priority
    # passed by the mail filters and phone settings made for [DOWN] and high.
    down = [{"check": "backup", "reason": "failed", "since": T0}]
    payload = {"window": "patching", "started_at": T0, "ended_at": T0 + 3600, "at": T0 + 3600, "down": down}
    alert = Alert(key="maintenance-patching-1", event="maintenance", payload=payload, last_ping=None, link=LINK)
    assert subject(alert) == "[DOWN] Maintenance patching ended: 1 check(s) still down (backup)"
    _, headers = ntfy_request(alert)
    assert (headers["Priority"], headers["Tags"]) == ("high", "rotating_light")


def test_a_maintenance_summarys_html_part_lists_a_check_named_link_still_down() -> None:
    # The HTML part left out every fact labelled "Link" (the link is its button): a summary's facts
    # are labelled by the check names, so a check named "Link" vanished from the email's list.
    down = [{"check": "Link", "reason": "failed", "since": T0}, {"check": "backup", "reason": "missed", "since": T0}]
    payload = {"window": "patching", "started_at": T0, "ended_at": T0 + 3600, "at": T0 + 3600, "down": down}
    alert = Alert(key="maintenance-patching-1", event="maintenance", payload=payload, last_ping=None, link=LINK)
    page = html_body(alert)
    assert "<th align='left'>Link</th><td>down (failed) since" in page
    assert "<th align='left'>backup</th><td>down (missed) since" in page
    assert page.count(LINK) == 1  # the link itself still as the button only


def test_an_ntfy_body_stays_under_ntfys_message_limit_cut_at_a_character() -> None:
    # ntfy takes a body of 4096 bytes or more as a file: refused with 400 ("attachments not allowed")
    # where attachments are off, as they are by default, so a long summary was lost for good.
    down = [{"check": f"etl-import-{n:03d}", "reason": "missed", "since": T0} for n in range(100)]
    payload = {"window": "db-patching", "started_at": T0, "ended_at": T0 + 3600, "at": T0 + 3600, "down": down}
    summary = Alert(key="maintenance-db-patching-1", event="maintenance", payload=payload, last_ping=None, link=LINK)
    cfg = backup(description="é" * 3000)  # two bytes each: a cut in the middle of one is no UTF-8
    old, new, flip = missed(cfg)
    for alert in (summary, alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body="ok"))):
        body, _ = ntfy_request(alert)
        assert len(text(alert).encode()) > 4096 and len(body) < 4096
        assert body.decode("utf-8").startswith(alert.headline()) and body.endswith("…\n".encode())
    payload = {"check": "backup", "reason": "missed"}
    short = Alert(key="flip-1", event="down", payload=payload, last_ping=None, link=LINK)
    assert ntfy_request(short)[0] == text(short).encode()


def test_an_ntfy_body_shows_a_pings_escape_sequences_as_text_not_to_a_subscribers_terminal() -> None:
    # `ntfy subscribe TOPIC` prints each message in a terminal: a ping's raw ESC, BEL and OSC
    # sequences cleared it, set its title and coloured what followed
    cfg = backup()
    old, new, flip = missed(cfg)
    body = "disk full\x1b[2J\x1b]0;pwned\x07\tnext \u202eline\r\nlast"
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body=body))
    sent = ntfy_request(alert)[0].decode()
    assert sent.endswith("disk full\\x1b[2J\\x1b]0;pwned\\x07\tnext \\u202eline\nlast\n")
    assert not [c for c in sent if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")]


def test_an_ntfy_body_and_an_emails_text_keep_accents_cjk_and_emoji_as_they_are() -> None:
    # Escaping invisible characters must not break text: an emoji sequence's joiner (U+200D), a
    # Persian word's (U+200C), a subdivision flag's tag characters, and an emoji newer than this
    # Python's Unicode tables (U+1FAE8, unassigned to it) were written as \u200d, \U000e0067, \U0001fae8
    words = (
        "café 日本語 \U0001f44d \U0001f469\u200d\U0001f4bb \U0001f468\u200d\U0001f469\u200d\U0001f467"
        " \U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
        " \U0001fae8 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u2764\ufe0f"
    )
    cfg = backup()
    old, new, flip = missed(cfg)
    alert = alert_for(cfg, old, new, flip, last_ping=ping(T0, "success", body=words + "\x1b[2J"))
    assert ntfy_request(alert)[0].decode().endswith(words + "\\x1b[2J\n")
    assert escape_lines(text(alert)).endswith(words + "\\x1b[2J\n")  # the email's text part


def test_an_ntfy_title_header_stays_ascii_and_short() -> None:
    payload = {"check": "backup", "reason": "failed", "exit_status": 2, "description": "é"}
    alert = Alert(key="flip-1", event="down", payload=payload, last_ping=None, link=LINK)
    _, headers = ntfy_request(alert)
    assert headers["Title"].isascii() and len(headers["Title"]) <= 250
    assert headers["Tags"] == "rotating_light"


# ---- outbox rows -----------------------------------------------------------------------------

CHANNELS = {
    "mail": ChannelConfig("mail", "email", to=("ops@example.org",)),
    "hook": ChannelConfig("hook", "webhook", url="https://x.example/h"),
    "pager": ChannelConfig("pager", "webhook", url="https://x.example/p", recovery=False),
}
ALERTS = AlertsConfig(expire_after=5.0)


def rows(cfg: CheckConfig, old: CheckState, new: CheckState, flip: Flip | None) -> list[tuple[Any, ...]]:
    assert flip is not None
    flip_id = None if flip.reminder else FLIP_ID
    facts = outbox.payload(cfg, flip, old, new, flip_id=flip_id, ping_id=3)
    return list(outbox.rows_for(cfg, CHECK_ID, flip, facts, CHANNELS, ALERTS, first_id=100))


def test_a_down_flip_makes_one_row_per_channel_sharing_the_flips_key() -> None:
    cfg = backup(channels=("mail", "hook", "pager"))
    old, new, flip = missed(cfg)
    made = rows(cfg, old, new, flip)
    at = T0 + 3900
    key = f"flip-42-{int(at * 1000)}"  # its id and time: ids start again after a restore
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in made] == [
        (100, key, CHECK_ID, "mail", "down"),
        (101, key, CHECK_ID, "hook", "down"),
        (102, key, CHECK_ID, "pager", "down"),
    ]
    assert all(r[6:] == (at, at + ALERTS.expire_after, at) for r in made)  # created, expires, first attempt
    facts = json.loads(made[0][5])
    assert (facts["check"], facts["state"], facts["reason"], facts["last_ping_id"]) == ("backup", "down", "missed", 3)


def test_a_recovery_skips_channels_with_recovery_false() -> None:
    cfg = backup(channels=("mail", "hook", "pager"))
    _, down, _ = missed(cfg)
    new, flip = on_event(cfg, down, Event(Kind.SUCCESS, T0 + 5000), T0 + 5000)
    assert [(r[3], r[4]) for r in rows(cfg, down, new, flip)] == [("mail", "recovery"), ("hook", "recovery")]


def test_a_reminder_goes_to_every_channel_under_a_reminder_key() -> None:
    cfg = backup(channels=("hook", "pager"), repeat=600.0)
    _, down, _ = missed(cfg)
    new, flip = on_time(cfg, down, T0 + 4500)
    made = rows(cfg, down, new, flip)
    key = f"reminder-{CHECK_ID}-{int((T0 + 4500) * 1000)}"
    assert [(r[1], r[3], r[4]) for r in made] == [(key, "hook", "reminder"), (key, "pager", "reminder")]
    assert json.loads(made[0][5])["transition_id"] is None
    later, flip2 = on_time(cfg, new, T0 + 5100)
    assert rows(cfg, new, later, flip2)[0][1] == f"reminder-{CHECK_ID}-{int((T0 + 5100) * 1000)}"  # a key each


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (Status.NEW, Status.UP, None),
        (Status.UP, Status.RUNNING, None),
        (Status.RUNNING, Status.UP, None),
        (Status.UP, Status.LATE, None),
        (Status.UP, Status.PAUSED, None),
        (Status.DOWN, Status.PAUSED, None),
        (Status.PAUSED, Status.UP, None),
    ],
)
def test_a_flip_that_is_neither_down_nor_recovery_makes_no_rows(
    old: Status, new: Status, reason: Reason | None
) -> None:
    cfg = backup(channels=("mail", "hook", "pager"))
    flip = Flip(at=T0, old=old, new=new, reason=reason, deadline=None, detail="")
    assert flip.event is None
    state = initial_state(cfg, T0)
    assert rows(cfg, state, state, flip) == []


def test_a_first_ping_flipping_new_to_up_makes_no_rows() -> None:
    cfg = backup(channels=("mail",))
    st = initial_state(cfg, T0)
    new, flip = on_event(cfg, st, Event(Kind.SUCCESS, T0 + 1), T0 + 1)
    assert flip is not None and (flip.old, flip.new) == (Status.NEW, Status.UP)
    assert rows(cfg, st, new, flip) == []


def test_a_check_without_channels_makes_no_rows() -> None:
    cfg = backup()
    old, new, flip = missed(cfg)
    assert rows(cfg, old, new, flip) == []


def test_a_test_row_is_a_test_event_outside_any_check() -> None:
    row = outbox.test_row(12, "hook", T0, ALERTS)
    facts = json.dumps({"channel": "hook", "at": T0})
    assert row == (12, f"test-12-{int(T0 * 1000)}", None, "hook", "test", facts, T0, T0 + 5.0, T0)


# ---- retry delays ----------------------------------------------------------------------------


class Fixed(random.Random):
    """uniform(a, b) always lands at the same fraction of the way from a to b."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_backoff_doubles_from_retry_initial_and_caps_at_retry_max() -> None:
    delays = [backoff(n, 0.1, 0.5, Fixed(1.0)) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.5])
    assert [backoff(n, 5.0, 900.0, Fixed(1.0)) for n in (1, 2, 3, 8, 9, 50)] == pytest.approx(
        [5.0, 10.0, 20.0, 640.0, 900.0, 900.0]
    )


def test_backoff_jitter_takes_at_most_half_of_the_nominal_delay_off() -> None:
    assert [backoff(n, 0.1, 0.5, Fixed(0.0)) for n in range(1, 5)] == pytest.approx([0.05, 0.1, 0.2, 0.25])
    rng = random.Random(1234)
    for attempt in range(1, 13):
        nominal = min(0.5, 0.1 * 2 ** (attempt - 1))
        samples = [backoff(attempt, 0.1, 0.5, rng) for _ in range(400)]
        assert all(0.5 * nominal <= s <= nominal for s in samples)
        assert min(samples) < 0.6 * nominal and max(samples) > 0.9 * nominal  # really spread, not fixed


def test_a_retry_the_backoff_puts_past_the_expiry_is_tried_just_before_it_once() -> None:
    # Expiring at 86,400 s with retries 15 min apart: it was given up at 85,800 s, untried for
    # its last 10 minutes.
    expiry = 86_400.0
    assert next_try(80_000.0, 40, expiry, 5.0, 900.0, Fixed(1.0)) == 80_900.0  # the backoff's, before it
    assert next_try(85_800.0, 41, expiry, 5.0, 900.0, Fixed(1.0)) == expiry - LAST_TRY  # not None: tried once more
    assert next_try(expiry - LAST_TRY, 42, expiry, 5.0, 900.0, Fixed(1.0)) is None  # that was the last
    assert next_try(expiry - 0.5, 42, expiry, 5.0, 900.0, Fixed(1.0)) is None


def test_a_retry_waits_as_long_as_the_receivers_retry_after_asks_up_to_retry_max() -> None:
    assert next_try(1000.0, 1, 90_000.0, 5.0, 900.0, Fixed(1.0), asked=120.0) == 1120.0
    assert next_try(1000.0, 1, 90_000.0, 5.0, 900.0, Fixed(1.0), asked=2.0) == 1005.0  # the backoff is longer
    assert next_try(1000.0, 1, 90_000.0, 5.0, 900.0, Fixed(1.0), asked=86_400.0) == 1900.0  # retry_max at most
    assert next_try(1000.0, 1, 1060.0, 5.0, 900.0, Fixed(1.0), asked=120.0) == 1060.0 - LAST_TRY  # not past expiry


def test_retry_after_is_read_as_seconds_or_an_http_date_and_ignored_when_unreadable() -> None:
    assert webhook.retry_after("120") == 120.0
    assert webhook.retry_after(" 0 ") == 0.0
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert 3500 < (webhook.retry_after(later) or 0) <= 3600
    assert webhook.retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0  # past: at once
    for unreadable in (None, "", "-5", "1.5", "\xb2", "soon", "Thu, 01 Jan 1970 00:00:00"):  # the last: no zone
        assert webhook.retry_after(unreadable) is None, unreadable


def test_backoff_stays_at_retry_max_however_many_attempts_were_made() -> None:
    assert backoff(1025, 30.0, 30.0, Fixed(1.0)) == 30.0
    assert 15.0 <= backoff(5000, 30.0, 30.0, random.Random(1)) <= 30.0


async def test_a_webhook_url_aiohttp_cannot_use_fails_for_good_without_naming_the_url() -> None:
    # The config refuses the URLs we know of; one it let through would have been retried all day,
    # aiohttp's error (its text the URL, token and all) logged each time.
    secret = "XyZsecretTOKEN0123456789"
    channel = ChannelConfig("hook", "webhook", url=f"http://127.0.0.1:99999/services/{secret}")
    alert = Alert(
        key="flip-1", event="down", payload={"check": "backup", "reason": "missed"}, last_ping=None, link=LINK
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PermanentError) as info:
            await webhook.send(session, channel, alert)
    assert secret not in str(info.value) and "Port out of range" in str(info.value)


SLOW_HOOK = '[channels.hook]\ntype = "webhook"\nurl = "https://example.org/hook"\ntimeout = "10m"\n'


def _expiring_item(event: str, created: float, expires: float) -> OutboxItem:
    payload = {"channel": "hook", "at": created}
    return OutboxItem(1, f"{event}-1", None, "hook", event, payload, created, expires, created, 0)


@pytest.mark.parametrize("late", [5.0, 9 * 60.0])
async def test_an_alert_is_never_sent_after_its_expiry_whatever_its_channels_time_limit(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, late: float
) -> None:
    config = load_config(write_config(SLOW_HOOK).path)
    sent: list[Any] = []

    async def fake(config: Any, session: Any, channel: Any, alert: Any, reached: Any, limit: Any) -> None:
        sent.append(alert)

    monkeypatch.setattr(dispatch, "send_to", fake)
    created = 1_000_000.0
    clock = FakeClock(created + TEST_EXPIRE_AFTER + late)  # e.g. the first read after a restart
    d = dispatch.Dispatcher(config, clock, None, None, None)  # type: ignore[arg-type]
    await d._deliver(_expiring_item("test", created, created + TEST_EXPIRE_AFTER), None, {})
    assert sent == []  # a test alert is for whoever tries the channel now, not minutes later
    assert d.outcomes[("hook", "expired")] == 1


def test_a_reminder_of_a_job_that_did_not_run_does_not_say_it_started_before_its_deadline_once_it_starts_late() -> None:
    cfg = backup(repeat=600.0)
    up, _ = on_event(cfg, initial_state(cfg, T0 - 60), Event(Kind.SUCCESS, T0), T0)
    late, _ = on_time(cfg, up, T0 + 3600)
    down, flip = on_time(cfg, late, T0 + 3900)
    assert lines(alert_for(cfg, late, down, flip))[0] == "backup did not run: no ping arrived by its deadline"
    started, _ = on_event(cfg, down, Event(Kind.START, T0 + 4200), T0 + 4200)  # 5 min after the deadline
    reminded, reminder = on_time(cfg, started, T0 + 4500)
    assert lines(alert_for(cfg, started, reminded, reminder))[0] == (
        "Still down: backup did not run: no ping arrived by its deadline"
    )


def test_a_cron_jobs_missed_next_run_is_not_worded_as_the_previous_run_not_finishing_by_its_deadline() -> None:
    # hourly cron, no max_runtime: the 00:00 run started (it moved the schedule) and is still
    # running; the 01:00 run did not start by 01:05.
    cfg = check("backup", cron="0 * * * *", grace=300.0)
    t = 1_700_002_800.0  # 2023-11-14T23:00:00Z
    st, _ = on_event(cfg, initial_state(cfg, t - 60), Event(Kind.START, t), t)
    late, _ = on_time(cfg, st, t + 3600)
    down, flip = on_time(cfg, late, t + 3900)
    assert down.reason is Reason.MISSED
    head = lines(alert_for(cfg, late, down, flip))[0]
    assert head != "backup started but did not finish by its deadline"


def test_an_emails_message_id_is_of_the_senders_mail_domain_not_a_bare_word() -> None:
    # "@heartfly", no domain name: spam filters score a Message-ID without one, the more so beside
    # a From of a real domain, and an alert in the spam folder is told to nobody. RFC 5322's unique
    # id takes the domain the sender is of.
    alert = Alert(key="flip-7-1795396329113", event="down", payload={"check": "backup"}, last_ping=None, link=LINK)
    channel = ChannelConfig("ops", "email", to=("ops@example.org",))
    message = mail.build(SmtpConfig("mail.example.org", sender="heartfly@alerts.example.org"), channel, alert)
    assert re.fullmatch(r"<\S+\.flip\.7\.1795396329113@alerts\.example\.org>", message["Message-ID"].strip())
    # A header is ASCII: an IDN's domain as its punycode, and the message still flattens
    message = mail.build(SmtpConfig("mail.example.org", sender="hb@exämple.org"), channel, alert)
    assert message["Message-ID"].strip().endswith("@xn--exmple-cua.org>") and message.as_bytes()


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        # IDNA 2008, as DNS (and a webhook's host) has it: Python's codec made it strasse.de, another domain
        ("hb@straße.de", "xn--strae-oqa.de"),
        ("hb@alerts.example.org.", "alerts.example.org"),  # a root's dot: no msg-id ends in one
        ("hb@[192.0.2.1]", "[192.0.2.1]"),  # a domain literal is an id-right too
        ("hb@exa..mple.org", "heartfly"),  # none a msg-id can hold: not an invalid header
    ],
)
def test_an_emails_message_id_domain_is_the_senders_as_dns_knows_it_and_always_a_valid_msg_id(
    sender: str, domain: str
) -> None:
    alert = Alert(key="flip-7-1795396329113", event="down", payload={"check": "backup"}, last_ping=None, link=LINK)
    channel = ChannelConfig("ops", "email", to=("ops@example.org",))
    header = mail.build(SmtpConfig("mail.example.org", sender=sender), channel, alert)["Message-ID"]
    assert header.strip().endswith(f".flip.7.1795396329113@{domain}>") and not header.defects, header.defects
