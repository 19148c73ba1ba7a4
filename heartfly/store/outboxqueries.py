"""Reads of the outbox: the alerts the dispatcher tries now, those a pending one waits behind, and
a check's alerts with every attempt (for the API, `heartfly history` and the dashboard). SQLite's
SQL; PostgreSQL swaps in its own text for the few that differ (pgconn.PG_VARIANTS)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heartfly.store.queries import Db, fetch_all, fetch_one, page_cursor


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    key: str
    check_id: int | None
    channel: str
    event: str
    payload: dict[str, Any]
    created_at: float
    expires_at: float
    next_attempt_at: float
    attempts: int
    newer: bool = False  # a newer alert of the same check waits behind this one on its channel


_OUTBOX_COLUMNS = "id, key, check_id, channel, event, payload, created_at, expires_at, next_attempt_at, attempts"
_O_OUTBOX_COLUMNS = ", ".join(f"o.{name}" for name in _OUTBOX_COLUMNS.split(", "))

# The alerts to try now. Per (check, channel) only the oldest pending alert, so they arrive in
# order: a recovery never before its down alert, even when that one is being retried (a test
# alert, of no check, waits for nothing). A maintenance summary is the down alert of the checks it
# lists: the alert of one of them made after it waits while it is pending on that channel (found
# in its payload, as outbox.maintenance_row writes it, exactly: instr, strpos on PostgreSQL, not
# LIKE, which reads "_" as any character and, on SQLite, ignores case). And at most
# `per_channel` of each channel, oldest due first, so a channel's backlog cannot crowd the others
# out of the read; a channel's oldest due test alert first of all, so its backlog cannot crowd out
# the test the operator is waiting for (heartfly test-alert after an outage said "pending" of a
# channel that works). One only: they are tried one at a time, and a pile of them read first (a
# script trying a dead channel every few seconds) crowded the channel's alerts out in turn.
#
# `heads` walks the groups on the partial index outbox_heads (check_id, channel, id), one seek
# from each group's head to the next group's (the same check on a later channel, else the next
# check), so a read costs a few seeks per group with pending alerts however deep each group's
# backlog is; the alerts queued behind a head are never visited. (Scanning the due alerts in
# next_attempt_at order instead is cheap until a channel is down: its heads wait for their retry
# while the alerts behind them, due since they were made, are scanned and skipped on every read.)
# The sorts are over the due heads only.
# A maintenance summary is the down alert of every check it lists: it has a newer alert behind it
# on its channel when each of them has one (the dispatcher then lets a summary that reached some
# recipients give way, as a check's down alert, and no recipient loses the news of a check still
# down). PostgreSQL reads the payload's list with its own functions (pgconn.PG_VARIANTS).
_LISTED_NEWER = """json_array_length(o.payload, '$.down') > 0
        AND NOT EXISTS (SELECT 1 FROM json_each(o.payload, '$.down') AS d
            WHERE NOT EXISTS (SELECT 1 FROM outbox AS n JOIN checks AS c ON c.id = n.check_id
                              WHERE n.status = 'pending' AND n.channel = o.channel AND n.id > o.id
                                AND c.name = json_extract(d.value, '$.check')))"""
_LISTED_NEWER_PG = """json_array_length(o.payload::json -> 'down') > 0
        AND NOT EXISTS (SELECT 1 FROM json_array_elements(o.payload::json -> 'down') AS d(value)
            WHERE NOT EXISTS (SELECT 1 FROM outbox AS n JOIN checks AS c ON c.id = n.check_id
                              WHERE n.status = 'pending' AND n.channel = o.channel AND n.id > o.id
                                AND c.name = d.value ->> 'check'))"""

_DUE_ALERTS = f"""
WITH RECURSIVE heads(id) AS (
    SELECT (SELECT id FROM outbox WHERE status = 'pending' AND check_id IS NOT NULL
            ORDER BY check_id, channel, id LIMIT 1)
    UNION ALL
    SELECT COALESCE(
        (SELECT n.id FROM outbox AS n WHERE n.status = 'pending' AND n.check_id = h.check_id AND n.channel > h.channel
         ORDER BY n.channel, n.id LIMIT 1),
        (SELECT n.id FROM outbox AS n WHERE n.status = 'pending' AND n.check_id > h.check_id
         ORDER BY n.check_id, n.channel, n.id LIMIT 1))
    FROM heads JOIN outbox AS h ON h.id = heads.id
), due AS (
    SELECT id, channel, next_attempt_at, 1 AS later FROM heads JOIN outbox USING (id) WHERE next_attempt_at <= ?1
        AND NOT EXISTS (SELECT 1 FROM outbox AS m WHERE m.status = 'pending' AND m.event = 'maintenance'
                        AND m.channel = outbox.channel AND m.id < outbox.id
                        AND instr(m.payload,
                                  '"check": "' || (SELECT name FROM checks WHERE id = outbox.check_id) || '"') > 0)
    UNION ALL
    SELECT id, channel, next_attempt_at, CASE WHEN event = 'test' AND ROW_NUMBER() OVER (
        PARTITION BY channel, event = 'test' ORDER BY next_attempt_at, id) = 1 THEN 0 ELSE 1 END FROM outbox
    WHERE status = 'pending' AND check_id IS NULL AND next_attempt_at <= ?1
), ranked AS (
    SELECT id, later, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY later, next_attempt_at, id) AS n FROM due
)
SELECT {_O_OUTBOX_COLUMNS},
    EXISTS (SELECT 1 FROM outbox AS n WHERE n.status = 'pending'
            AND n.check_id = o.check_id AND n.channel = o.channel AND n.id > o.id)
    OR (o.check_id IS NULL AND o.event = 'maintenance' AND {_LISTED_NEWER}) AS newer
FROM ranked JOIN outbox AS o USING (id) WHERE ranked.n <= ?2 ORDER BY ranked.later, o.next_attempt_at, o.id
"""  # noqa: S608 - fixed column names and texts


async def read_due_alerts(db: Db, now: float, per_channel: int = 100) -> list[OutboxItem]:
    rows = await fetch_all(db, _DUE_ALERTS, (now, per_channel))
    return [
        OutboxItem(
            id=r[0], key=r[1], check_id=r[2], channel=r[3], event=r[4], payload=json.loads(r[5]),
            created_at=r[6], expires_at=r[7], next_attempt_at=r[8], attempts=r[9], newer=bool(r[10]),
        )
        for r in rows
    ]  # fmt: skip


# The pending reminders queued behind a superseded head, to supersede with it (dispatcher): of the
# same check and channel, after the head, before the group's newest pending alert (which tells
# more, whatever it is), and not expired by the dispatcher's measure (now <= expires_at; the
# expiry path records the others). Other events behind the head are left alone: a down or a
# recovery is sent in its turn. A range on outbox_heads (check_id, channel, id), as is the MAX.
_REMINDERS_BEHIND = """
SELECT id FROM outbox
WHERE status = 'pending' AND check_id = ?1 AND channel = ?2 AND id > ?3 AND event = 'reminder' AND expires_at >= ?4
    AND id < (SELECT MAX(id) FROM outbox WHERE status = 'pending' AND check_id = ?1 AND channel = ?2)
ORDER BY id LIMIT ?5
"""


async def read_reminders_behind(
    db: Db, check_id: int, channel: str, head_id: int, now: float, limit: int = 1000
) -> list[int]:
    """Ids of the stale reminders queued behind the head `head_id` of (check_id, channel), oldest first."""
    return [int(r[0]) for r in await fetch_all(db, _REMINDERS_BEHIND, (check_id, channel, head_id, now, limit))]


async def read_alert_ahead(db: Db, check_id: int, channel: str, outbox_id: int) -> str | None:
    """The key of the pending alert of (check_id, channel) queued just before `outbox_id`, which
    read_due_alerts sends first (a check's alerts go out in order on each channel), else of an older
    pending maintenance summary on the channel that names the check; None if none. One seek on
    outbox_heads (check_id, channel, id) for the first."""
    sql = (
        "SELECT key FROM outbox WHERE status = 'pending' AND check_id = ? AND channel = ? AND id < ?"
        " ORDER BY id DESC LIMIT 1"
    )
    row = await fetch_one(db, sql, (check_id, channel, outbox_id))
    if row is None:  # the head of its queue: it waits for a maintenance summary naming its check, as _DUE_ALERTS
        row = await fetch_one(db, _SUMMARY_AHEAD, (check_id, channel, outbox_id))
    return None if row is None else str(row[0])


# The pending maintenance summary on a channel, older than a check's alert, that names the check
# (found as _DUE_ALERTS finds it): the head of the check's queue waits for it.
_SUMMARY_AHEAD = """
SELECT key FROM outbox
WHERE status = 'pending' AND event = 'maintenance' AND channel = ?2 AND id < ?3
    AND instr(payload, '"check": "' || (SELECT name FROM checks WHERE id = ?1) || '"') > 0
ORDER BY id DESC LIMIT 1
"""


async def next_alert_after(db: Db, now: float) -> float | None:
    """When the next pending alert that is not due yet becomes due."""
    sql = "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?"
    row = await fetch_one(db, sql, (now,))
    return None if row is None or row[0] is None else float(row[0])


# A check's alerts, and the maintenance summaries that list it (the down alert it got for a down
# a window held), found in the payload as _SUMMARY_AHEAD finds them: both on outbox_by_check.
# Only summaries made since the check's row was: one naming a check deleted since, under whose
# name a new check (a row of its own) was made, is the deleted one's, not the new one's.
# PostgreSQL reads instr as strpos (pgconn.PG_VARIANTS).
_ATTEMPTS_OF = """SELECT o.id, o.key, o.channel, o.event, o.created_at, o.status, o.attempts, o.done_at,
    o.last_error, o.next_attempt_at, a.at, a.duration, a.outcome, a.error
FROM ({}) AS o LEFT JOIN alert_attempts AS a ON a.outbox_id = o.id ORDER BY o.id DESC, a.id"""
_CHECK_ALERTS = _ATTEMPTS_OF.format("""
    SELECT * FROM outbox WHERE check_id = ?1 AND id < ?2
    UNION ALL
    SELECT * FROM outbox WHERE check_id IS NULL AND event = 'maintenance' AND id < ?2
        AND created_at >= (SELECT created_at FROM checks WHERE id = ?1)
        AND instr(payload, '"check": "' || (SELECT name FROM checks WHERE id = ?1) || '"') > 0
    ORDER BY id DESC LIMIT ?3""")
_TEST_ALERTS = _ATTEMPTS_OF.format("SELECT * FROM outbox WHERE check_id IS NULL AND id < ?1 ORDER BY id DESC LIMIT ?2")


async def read_alerts(db: Db, check_id: int | None, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """A check's alerts, the maintenance summaries that told its down among them (or the test
    alerts, check_id None), newest first, each with every attempt.

    One statement, so one snapshot: an alert's status always agrees with its attempt log.
    """
    if check_id is None:
        rows = await fetch_all(db, _TEST_ALERTS, (page_cursor(before), limit))
    else:
        rows = await fetch_all(db, _CHECK_ALERTS, (check_id, page_cursor(before), limit))
    keys = ("id", "key", "channel", "event", "created_at", "status", "attempts", "done_at", "error", "next_attempt_at")
    alerts: dict[int, dict[str, Any]] = {}
    for row in rows:
        alert = alerts.setdefault(row[0], {**dict(zip(keys, row[:10], strict=True)), "attempt_log": []})
        if row[12] is not None:
            alert["attempt_log"].append({"at": row[10], "duration": row[11], "outcome": row[12], "error": row[13]})
    return list(alerts.values())


async def count_pending_alerts(db: Db) -> int:
    row = await fetch_one(db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
    return int(row[0]) if row else 0


async def count_given_up_alerts(db: Db, since: float) -> dict[str, int]:
    """Per channel, the alerts given up (failed for good, or expired) since `since`; not test
    alerts, whose sender saw the outcome, nor those failed because their check or channel left the
    file (no failure of a channel's: counted, they named a channel that works as telling nobody,
    which the dashboard did not). A scan of the outbox: read by `heartfly status`, not by pages
    that refresh themselves."""
    sql = (
        "SELECT channel, COUNT(*) FROM outbox WHERE status IN ('failed', 'expired') AND event <> 'test'"
        " AND done_at >= ? AND (status = 'expired' OR COALESCE(last_error, '') NOT LIKE ?)"
        " GROUP BY channel ORDER BY channel"
    )
    return {str(channel): int(count) for channel, count in await fetch_all(db, sql, (since, f"%{GONE_FROM_CONFIG}"))}


# How the error of an alert failed because its check or channel left the file ends (the dispatcher's
# words): no failure of the channel's, which the dashboard does not name for it.
GONE_FROM_CONFIG = " is no longer in the config"

# A channel's last alert given up (failed for good, not because its check left the file; or
# expired), and its last one sent (a test alert too), each by a seek on outbox_done; failed test
# alerts left out, as their sender saw them.
_LAST_DONE = (
    "SELECT (SELECT MAX(done_at) FROM outbox WHERE channel = ? AND status = 'failed' AND event <> 'test'"
    " AND COALESCE(last_error, '') NOT LIKE ?),"
    " (SELECT MAX(done_at) FROM outbox WHERE channel = ? AND status = 'expired' AND event <> 'test'),"
    " (SELECT MAX(done_at) FROM outbox WHERE channel = ? AND status = 'sent')"
)


async def read_given_up_channels(db: Db, channels: Sequence[str]) -> dict[str, float]:
    """Of `channels`, those whose last alert done was given up (failed for good, or expired) and not
    followed by one sent there, with when it was given up. From the outbox, so a restart and every
    node of a cluster tell the same as `heartfly status`."""
    given_up: dict[str, float] = {}
    for channel in channels:
        row = await fetch_one(db, _LAST_DONE, (channel, f"%{GONE_FROM_CONFIG}", channel, channel))
        if row is None:
            continue
        failed, expired, sent = row
        last = max((float(t) for t in (failed, expired) if t is not None), default=None)
        if last is not None and (sent is None or last > float(sent)):
            given_up[channel] = last
    return given_up
