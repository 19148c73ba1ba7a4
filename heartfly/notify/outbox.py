"""Which channels hear of a transition, and the facts each outbox row carries. Pure."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from heartfly.core.config import CheckConfig
from heartfly.core.config_alerts import AlertsConfig, ChannelConfig
from heartfly.core.deadlines import hung_since
from heartfly.core.states import CheckState, Flip, Reason, Status
from heartfly.store.rows import OutboxRow, outbox_row


def payload(
    cfg: CheckConfig,
    flip: Flip,
    old: CheckState,
    new: CheckState,
    *,
    flip_id: int | None,
    ping_id: int,
    chain: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every fact of a transition, frozen when it happens (the last ping's body is read at send
    time). `chain`: the pipeline the check is a step of (pipeline.chain), if any."""
    down_since = new.changed_at if new.status is Status.DOWN else None
    facts: dict[str, Any] = {
        "check": cfg.name,
        "description": cfg.description,
        "schedule": cfg.schedule_words(),
        "transition_id": flip_id,
        "state": flip.new.value,
        "previous_state": flip.old.value,
        "reason": flip.reason.value if flip.reason and flip.new is Status.DOWN else None,
        "detail": (new.down_detail or flip.detail) if flip.reminder else flip.detail,  # a reminder: its down's
        "at": flip.at,
        "learned_at": flip.learned_at,
        "deadline": flip.deadline,
        "due_at": _was_due(flip, old, new),
        "down_since": down_since,
        "down_for": flip.at - _down_since(old) if flip.is_recovery else None,
        "duration": _run_duration(flip, new),
        "exit_status": new.last_exit_status,
        "last_ping_id": ping_id or None,
    }
    if new.runs and new.status is Status.DOWN and new.reason is Reason.MISSED:
        # Missed while its run is open: it started and hung, it did not fail to run (the headline's words).
        # A reminder's words are its down's: a run that started after that down is not what it caught.
        facts["running_since"] = hung_since(cfg, new, new.changed_at)
    if chain is not None:
        facts["pipeline"] = list(chain)
        facts["step"] = cfg.name
    return facts


def _down_since(old: CheckState) -> float:
    """When the down a recovery ends began: before the pause, for a resume that ends one."""
    if old.status is Status.PAUSED and old.paused_down_since is not None:
        return old.paused_down_since
    return old.changed_at


# The reasons an end gives: a check down for another was taken down by a deadline, not by a run's end.
_BY_AN_END = (Reason.FAILED, Reason.TOO_FAST, Reason.ASSERTION)


def _run_duration(flip: Flip, new: CheckState) -> float | None:
    """The duration of the run whose end made this change (for a reminder: the down it repeats).
    The state keeps the last timed run's duration across ends that time none (no start), so it is
    this end's only if dated by the newest end; a change a deadline made has none."""
    if new.last_duration_at is None or new.last_duration_at != new.last_end_at:
        return None
    by_an_end = new.reason in _BY_AN_END if flip.reminder else flip.deadline is None
    return new.last_duration if by_an_end else None


def _due(st: CheckState) -> float | None:
    return st.due_at if math.isfinite(st.due_at) else None


def _was_due(flip: Flip, old: CheckState, new: CheckState) -> float | None:
    """Down: the deadline it failed to meet; None when a ping took it down (a failure is not late:
    the next due time is no news). Reminder: the missed due time, while the state still holds it.
    Recovery: when the next run is due."""
    if flip.is_recovery:
        return new.next_due()
    if flip.is_down:  # the run's due time, not the deadline a downtime moved (the detail says by how much)
        return _due(old) if flip.reason is Reason.MISSED else flip.deadline
    due = _due(new) if new.reason is Reason.MISSED else None
    return due if due is not None and due <= flip.at else None  # a start since moved it on


def rows_for(
    cfg: CheckConfig,
    check_id: int,
    flip: Flip,
    facts: dict[str, Any],
    channels: Mapping[str, ChannelConfig],
    alerts: AlertsConfig,
    first_id: int,
    told: Sequence[str] | None = None,
) -> list[OutboxRow]:
    """One outbox row per channel that wants this event (hearers); ids from `first_id` on."""
    event = flip.event
    if event is None:
        return []
    # The Idempotency-Key: a transition's id and time (ids start again from a restored backup's
    # highest, and the alerts sent since must not be repeated), or for a reminder the check and the moment.
    moment = int(flip.at * 1000)
    key = f"reminder-{check_id}-{moment}" if event == "reminder" else f"flip-{facts['transition_id']}-{moment}"
    sent = flip.learned  # a flip dated in the past (a late ping) is news now: sent and expiring from now
    text = json.dumps(facts, separators=(",", ":"))
    rows: list[OutboxRow] = []
    for name in hearers(cfg, event, channels, told):
        outbox_id = first_id + len(rows)
        rows.append(outbox_row(outbox_id, key, check_id, name, event, text, sent, sent + alerts.expire_after))
    return rows


def hearers(
    cfg: CheckConfig, event: str, channels: Mapping[str, ChannelConfig], told: Sequence[str] | None
) -> list[str]:
    """The channels told of this event: the check's; for a recovery, those told the down
    (`told`, when known), as a reload may have changed the check's channels since: a channel
    told the down hears it is over, and none hears of the end of a down it never heard of."""
    names = told if event == "recovery" and told is not None else cfg.channels
    return [
        name
        for name in names
        if (channel := channels.get(name)) is not None and (event != "recovery" or channel.recovery)
    ]


# A test alert is for the person trying a channel now: one still undelivered after this is given up,
# rather than retried for a day and arriving, stale, once the channel is fixed.
TEST_EXPIRE_AFTER = 300.0


def maintenance_row(
    outbox_id: int, channel: str, window: str, span: tuple[float, float], down: list[dict[str, Any]],
    now: float, alerts: AlertsConfig,
) -> OutboxRow:  # fmt: skip
    """The one summary a held maintenance window sends each channel when it ends."""
    start, end = span
    facts = json.dumps({"window": window, "started_at": start, "ended_at": end, "at": end, "down": down})
    key = f"maintenance-{window}-{int(end * 1000)}"
    return outbox_row(outbox_id, key, None, channel, "maintenance", facts, now, now + alerts.expire_after)


def test_row(outbox_id: int, channel: str, now: float, alerts: AlertsConfig) -> OutboxRow:
    facts = json.dumps({"channel": channel, "at": now})
    expires_at = now + min(TEST_EXPIRE_AFTER, alerts.expire_after)
    key = f"test-{outbox_id}-{int(now * 1000)}"  # with its time: ids start again from a restored backup's highest
    return outbox_row(outbox_id, key, None, channel, "test", facts, now, expires_at)
