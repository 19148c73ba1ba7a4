"""Reads: what the API, the command line and start-up ask of the database (reader.SqlReader
offers them as api.Reader).

The SQL is SQLite's. PostgreSQL runs the same functions through pgconn.PgConnection, which
translates the placeholders and swaps in its own text for the few statements that differ.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import aiosqlite

from heartfly.core import hcshape, states
from heartfly.core.config import CheckConfig
from heartfly.core.patterns import fold_run_id
from heartfly.core.record import Change, RecordRows, RunSpan
from heartfly.core.states import CheckState, Event, Kind
from heartfly.store.rows import ALIVE_AT, CHECKPOINT, CLEAN_STOP, COUNTED_FLIP, decode_states

if TYPE_CHECKING:  # the driver is an optional extra: imported only for a postgresql:// database
    from heartfly.store.pgconn import PgConnection

Db: TypeAlias = "aiosqlite.Connection | PgConnection"


class CheckRow(NamedTuple):
    """A stored check. A NamedTuple, not a frozen dataclass: a restart reads 100k of them, and a
    frozen dataclass's __init__ costs 1.3 µs more (each field set through object.__setattr__)."""

    id: int
    name: str
    created_at: float
    removed_at: float | None
    state: CheckState
    state_ping_id: int


class CheckText(NamedTuple):
    """A stored check with its state's stored text, not decoded (read_check_texts)."""

    id: int
    name: str
    removed_at: float | None
    text: str
    state_ping_id: int


CHECKS_PAGE = 1000  # rows read_checks fetches, and decodes, at a time


async def _rows(db: Db, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """A statement's rows, all read in one call on the connection. SQLite holds a read snapshot
    while a statement is open, and on a shared connection (the server's one reader) any read
    begun by another coroutine meanwhile runs in it: the API counted one ping fewer than it had
    already answered, while the dispatcher's read of the outbox was between its steps."""
    return list(await db.execute_fetchall(sql, args))


async def _first(db: Db, sql: str, args: Sequence[Any] = ()) -> Any | None:
    """A statement's first row, or None (_rows)."""
    rows = await _rows(db, sql, args)
    return rows[0] if rows else None


async def read_checks(db: Db) -> list[CheckRow]:
    sql = "SELECT id, name, created_at, removed_at, state, state_ping_id FROM checks WHERE id > ? ORDER BY id LIMIT ?"
    checks: list[CheckRow] = []
    after = 0
    # A page at a time, each decoded before the next: 100k rows' state texts at once take some
    # 45 MB, which the allocator keeps (its arenas end up shared with the states) after they go.
    while True:
        rows = await _rows(db, sql, (after, CHECKS_PAGE))
        decoded = decode_states(r[4] for r in rows)  # a page shares its equal instants
        checks += [CheckRow(r[0], r[1], r[2], r[3], st, r[5]) for r, st in zip(rows, decoded, strict=True)]
        if len(rows) < CHECKS_PAGE:
            return checks
        after = rows[-1][0]


async def read_check_ids(db: Db, names: Sequence[str]) -> dict[str, int]:
    """The id of the row each of `names` has now (none: no row goes by it, a tombstoned one say)."""
    found: dict[str, int] = {}
    for start in range(0, len(names), 500):  # within SQLite's bound on a statement's parameters
        part = list(names[start : start + 500])
        sql = f"SELECT name, id FROM checks WHERE name IN ({','.join('?' * len(part))})"  # noqa: S608
        found.update({str(name): int(check_id) for name, check_id in await _rows(db, sql, part)})
    return found


async def read_check_texts(db: Db) -> list[CheckText]:
    """Every stored check, its state left as stored: a restart decodes each when it is first
    used or in the background after the server answers (Loading.load), not before."""
    sql = "SELECT id, name, removed_at, state, state_ping_id FROM checks ORDER BY id"
    return [CheckText(*row) for row in await _rows(db, sql)]


async def read_current_checks(db: Db, configs: Mapping[str, CheckConfig]) -> list[CheckRow]:
    """read_checks, each state brought up to its newest committed ping.

    States are checkpointed lazily (engine.CHECKPOINT_AFTER); the pings after a check's checkpoint
    are replayed through the same pure state machine a restart uses. One read transaction, so the
    checkpoints and the log agree: on a connection of its own (the command line's), for any other
    read on it meanwhile would run in that transaction. Checks no longer in `configs` are returned
    as stored.
    """
    await db.execute("BEGIN")
    try:
        rows = {row.id: row for row in await read_checks(db)}

        def applied_up_to(check_id: int) -> int | None:
            row = rows.get(check_id)
            return row.state_ping_id if row is not None and row.name in configs else None

        async for ping in unapplied(pings_after(db, await read_checkpoint(db)), applied_up_to):
            row = rows[ping.check_id]
            state = states.receive(configs[row.name], row.state, ping.event(), ping.received_at)[-1].state
            rows[row.id] = row._replace(state=state, state_ping_id=ping.id)
    finally:
        await db.execute("COMMIT")
    return list(rows.values())


async def unapplied(
    pings: AsyncIterator[LoggedPing], applied_up_to: Callable[[int], int | None]
) -> AsyncIterator[LoggedPing]:
    """The pings after a checkpoint that a check's stored state lacks (newer than the last ping it
    includes); none for a check not watched (`applied_up_to` gives None). Restarts and the CLI's
    current states replay the same pings."""
    async for ping in pings:
        last = applied_up_to(ping.check_id)
        if last is not None and ping.id > last:
            yield ping


@dataclass(frozen=True, slots=True)
class LoggedPing:
    """What replay needs of a stored ping."""

    id: int
    check_id: int
    at: float
    received_at: float
    kind: str
    exit_status: int | None
    run_id: str | None
    metrics: dict[str, float] | None
    member: str | None

    def event(self) -> Event:
        # Replayed as its run's end will be compared: a UUID run id stored as sent by a version before is folded.
        run_id = None if self.run_id is None else fold_run_id(self.run_id)
        return Event(Kind(self.kind), self.at, run_id, self.exit_status, self.metrics, self.member)


_LOGGED_PING = "SELECT id, check_id, at, received_at, kind, exit_status, run_id, metrics, member FROM pings"


def _logged(r: Any) -> LoggedPing:
    return LoggedPing(
        id=r[0], check_id=r[1], at=r[2], received_at=r[3], kind=r[4], exit_status=r[5], run_id=r[6],
        metrics=json.loads(r[7]) if r[7] else None, member=r[8],
    )  # fmt: skip


async def pings_after(db: Db, ping_id: int, page: int = 10_000) -> AsyncIterator[LoggedPing]:
    """Pings newer than a checkpoint, oldest first: the ones a restart replays. Read a page at a
    time, because after a crash under load they can number hundreds of thousands."""
    sql = f"{_LOGGED_PING} WHERE id > ? ORDER BY id LIMIT ?"
    while True:
        rows = await _rows(db, sql, (ping_id, page))
        for r in rows:
            yield _logged(r)
        if len(rows) < page:
            return
        ping_id = rows[-1][0]


async def check_pings_after(db: Db, check_id: int, ping_id: int) -> list[LoggedPing]:
    """One check's pings newer than its stored state, oldest first: at most a checkpoint's delay of
    them (pruning keeps them), for a check that comes back after it was removed."""
    sql = f"{_LOGGED_PING} WHERE check_id = ? AND id > ? ORDER BY id"
    return [_logged(r) for r in await _rows(db, sql, (check_id, ping_id))]


async def read_ping_ids(db: Db, since: float, limit: int) -> list[tuple[int, str, float]]:
    """Client-made ping ids received since `since`, each with its check, oldest first (the newest
    `limit` of them)."""
    sql = (
        "SELECT check_id, uid, received_at FROM (SELECT check_id, uid, received_at FROM pings WHERE uid IS NOT NULL"
        " AND received_at >= ? ORDER BY received_at DESC LIMIT ?) AS recent ORDER BY received_at"
    )
    return [(int(check), str(uid), float(at)) for check, uid, at in await _rows(db, sql, (since, limit))]


async def read_meta(db: Db, key: str) -> str | None:
    row = await _first(db, "SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def read_checkpoint(db: Db) -> int:
    """The checkpoint mark (CHECKPOINT): the pings after it are replayed on start."""
    return int(await read_meta(db, CHECKPOINT) or 0)


async def read_last_alive(db: Db) -> tuple[float | None, bool]:
    """The server's last alive mark, if it ever ran, and whether it stopped cleanly then."""
    alive = await read_meta(db, ALIVE_AT)
    return (float(alive) if alive else None), await read_meta(db, CLEAN_STOP) == "1"


Table = Literal["pings", "flips", "outbox"]  # the tables whose ids the engine hands out


async def max_id(db: Db, table: Table) -> int:
    row = await _first(db, f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - fixed names
    return int(row[0]) if row else 0


async def count_pings(db: Db, check_id: int | None = None) -> dict[int, int]:
    """How many pings each check (or the one given) has kept: Healthchecks' API shows a count."""
    where, args = ("WHERE check_id = ?", (check_id,)) if check_id is not None else ("", ())
    sql = f"SELECT check_id, COUNT(*) FROM pings {where} GROUP BY check_id"  # noqa: S608 - fixed text
    return {int(r[0]): int(r[1]) for r in await _rows(db, sql, args)}


async def read_downtimes(db: Db, limit: int = 20) -> list[dict[str, Any]]:
    sql = "SELECT stopped_at, started_at, clean FROM downtimes ORDER BY id DESC LIMIT ?"
    rows = await _rows(db, sql, (limit,))
    return [{"stopped_at": r[0], "started_at": r[1], "clean": bool(r[2])} for r in rows]


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
# out of the read.
#
# `heads` walks the groups on the partial index outbox_heads (check_id, channel, id), one seek
# from each group's head to the next group's (the same check on a later channel, else the next
# check), so a read costs a few seeks per group with pending alerts however deep each group's
# backlog is; the alerts queued behind a head are never visited. (Scanning the due alerts in
# next_attempt_at order instead is cheap until a channel is down: its heads wait for their retry
# while the alerts behind them, due since they were made, are scanned and skipped on every read.)
# The sorts are over the due heads only.
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
    SELECT id, channel, next_attempt_at FROM heads JOIN outbox USING (id) WHERE next_attempt_at <= ?1
        AND NOT EXISTS (SELECT 1 FROM outbox AS m WHERE m.status = 'pending' AND m.event = 'maintenance'
                        AND m.channel = outbox.channel AND m.id < outbox.id
                        AND instr(m.payload,
                                  '"check": "' || (SELECT name FROM checks WHERE id = outbox.check_id) || '"') > 0)
    UNION ALL
    SELECT id, channel, next_attempt_at FROM outbox
    WHERE status = 'pending' AND check_id IS NULL AND next_attempt_at <= ?1
), ranked AS (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY next_attempt_at, id) AS n FROM due
)
SELECT {_O_OUTBOX_COLUMNS},
    EXISTS (SELECT 1 FROM outbox AS n WHERE n.status = 'pending'
            AND n.check_id = o.check_id AND n.channel = o.channel AND n.id > o.id) AS newer
FROM ranked JOIN outbox AS o USING (id) WHERE ranked.n <= ?2 ORDER BY o.next_attempt_at, o.id
"""  # noqa: S608 - fixed column names


async def read_due_alerts(db: Db, now: float, per_channel: int = 100) -> list[OutboxItem]:
    rows = await _rows(db, _DUE_ALERTS, (now, per_channel))
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
    return [int(r[0]) for r in await _rows(db, _REMINDERS_BEHIND, (check_id, channel, head_id, now, limit))]


async def read_alert_ahead(db: Db, check_id: int, channel: str, outbox_id: int) -> str | None:
    """The key of the pending alert of (check_id, channel) queued just before `outbox_id`, which
    read_due_alerts sends first (a check's alerts go out in order on each channel), else of an older
    pending maintenance summary on the channel that names the check; None if none. One seek on
    outbox_heads (check_id, channel, id) for the first."""
    sql = (
        "SELECT key FROM outbox WHERE status = 'pending' AND check_id = ? AND channel = ? AND id < ?"
        " ORDER BY id DESC LIMIT 1"
    )
    row = await _first(db, sql, (check_id, channel, outbox_id))
    if row is None:  # the head of its queue: it waits for a maintenance summary naming its check, as _DUE_ALERTS
        row = await _first(db, _SUMMARY_AHEAD, (check_id, channel, outbox_id))
    return None if row is None else str(row[0])


# The pending maintenance summary on a channel, older than a check's alert, that names the check
# (found as _DUE_ALERTS finds it): the head of the check's queue waits for it.
_SUMMARY_AHEAD = """
SELECT key FROM outbox
WHERE status = 'pending' AND event = 'maintenance' AND channel = ?2 AND id < ?3
    AND instr(payload, '"check": "' || (SELECT name FROM checks WHERE id = ?1) || '"') > 0
ORDER BY id DESC LIMIT 1
"""


async def read_last_status(db: Db, check_id: int) -> str | None:
    """The status the check's latest recorded change left it in; None before its first. One seek
    on flips_by_check (check_id, id)."""
    row = await _first(db, "SELECT new FROM flips WHERE check_id = ? ORDER BY id DESC LIMIT 1", (check_id,))
    return None if row is None else str(row[0])


async def next_alert_after(db: Db, now: float) -> float | None:
    """When the next pending alert that is not due yet becomes due."""
    sql = "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?"
    row = await _first(db, sql, (now,))
    return None if row is None or row[0] is None else float(row[0])


async def read_alerts(db: Db, check_id: int | None, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """A check's alerts (or the test alerts, check_id None), newest first, each with every attempt.

    One statement, so one snapshot: an alert's status always agrees with its attempt log.
    """
    where = "check_id IS NULL" if check_id is None else "check_id = ?"
    params: tuple[Any, ...] = (_cursor(before), limit)
    if check_id is not None:
        params = (check_id, *params)
    sql = (
        "SELECT o.id, o.key, o.channel, o.event, o.created_at, o.status, o.attempts, o.done_at, o.last_error,"  # noqa: S608 - `where` is one of two fixed texts
        " o.next_attempt_at, a.at, a.duration, a.outcome, a.error"
        f" FROM (SELECT * FROM outbox WHERE {where} AND id < ? ORDER BY id DESC LIMIT ?) AS o"
        " LEFT JOIN alert_attempts AS a ON a.outbox_id = o.id ORDER BY o.id DESC, a.id"
    )
    rows = await _rows(db, sql, params)
    keys = ("id", "key", "channel", "event", "created_at", "status", "attempts", "done_at", "error", "next_attempt_at")
    alerts: dict[int, dict[str, Any]] = {}
    for row in rows:
        alert = alerts.setdefault(row[0], {**dict(zip(keys, row[:10], strict=True)), "attempt_log": []})
        if row[12] is not None:
            alert["attempt_log"].append({"at": row[10], "duration": row[11], "outcome": row[12], "error": row[13]})
    return list(alerts.values())


async def read_ping(db: Db, ping_id: int) -> dict[str, Any] | None:
    sql = "SELECT id, at, kind, exit_status, run_id, body, source, check_id FROM pings WHERE id = ?"
    row = await _first(db, sql, (ping_id,))
    if row is None:
        return None
    return dict(zip(("id", "at", "kind", "exit_status", "run_id", "body", "source", "check_id"), row, strict=True))


# ---- pages for the dashboard and the JSON API (newest first, `before` an id cursor) -----------
# "Newest" is by event time: a spooled ping replayed today sits among the pings of the night it
# happened. `before` names an item; the page holds the ones before it in that order (time, id).
# Sorting needs no index of its own: a check keeps at most `keep_pings` pings.


def _page(table: str, columns: str, time: str, where: str = "TRUE") -> str:
    """A cursor whose item is gone (pruned) pages by id, as before event-time order. `where`: a
    filter of the rows (the cursor's item itself need not pass it)."""
    return (
        f"SELECT {columns} FROM {table} WHERE check_id = ?1 AND ({where}) AND (?2 IS NULL"  # noqa: S608 - names only
        f" OR ({time}, id) < (SELECT {time}, id FROM {table} WHERE id = ?2)"
        f" OR (id < ?2 AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = ?2)))"
        f" ORDER BY {time} DESC, id DESC LIMIT ?3"
    )


async def read_pings(db: Db, check_id: int, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
    keys = ("id", "at", "received_at", "kind", "exit_status", "run_id", "body", "truncated", "metrics", "method",
            "source", "member")  # fmt: skip
    sql = _page("pings", ", ".join(keys), "at")
    rows = [dict(zip(keys, row, strict=True)) for row in await _rows(db, sql, (check_id, before, limit))]
    for item in rows:
        item["truncated"] = bool(item["truncated"])
        item["metrics"] = json.loads(item["metrics"]) if item["metrics"] else {}
    return rows


# up <-> running: the start and the end of every healthy run, 192 a day for a 15-minute job. The
# views of state changes leave them out unless asked (`routine`), so the changes that matter show.
NOT_ROUTINE = "NOT ((old = 'up' AND new = 'running') OR (old = 'running' AND new = 'up'))"


async def read_flips(
    db: Db, check_id: int, limit: int = 100, before: int | None = None, routine: bool = True
) -> list[dict[str, Any]]:
    keys = ("id", "at", "old", "new", "reason", "deadline", "detail", "learned_at")
    sql = _page("flips", ", ".join(keys), "at", "TRUE" if routine else NOT_ROUTINE)
    rows = await _rows(db, sql, (check_id, before, limit))
    return [dict(zip(keys, row, strict=True)) for row in rows]


# Healthchecks' flips (its API's GET .../flips/): a change between up (up, running, late) and not
# up, or into down or paused. Filtered in the one statement: the up <-> late of a job routinely a
# little late may be most of a check's history, and a page at a time over it cost a statement a
# page, each seeking its cursor (minutes for a year of a minutely job).
_HC_UP = "(" + ", ".join(f"'{state}'" for state in hcshape.UP_STATES) + ")"
_HC_FLIP = f"((old IN {_HC_UP}) <> (new IN {_HC_UP}) OR (old <> new AND new IN ('down', 'paused')))"
_HC_FLIPS = (
    f"SELECT at, new FROM flips WHERE check_id = ? AND at >= ? AND at < ? AND {_HC_FLIP}"  # noqa: S608 - constants
    " ORDER BY at DESC, id DESC LIMIT ?"
)


async def read_hc_flips(db: Db, check_id: int, since: float, until: float, limit: int) -> list[dict[str, Any]]:
    """A check's changes Healthchecks has a flip for, at `since` or later and before `until`,
    newest first: at and new."""
    rows = await _rows(db, _HC_FLIPS, (check_id, since, until, limit))
    return [{"at": at, "new": new} for at, new in rows]


# The changes into or out of down and paused: the only ones a record's figures depend on (running,
# late and up all count as up), which leaves out the up <-> running of every healthy run. The
# prune of old history keeps the newest before its cut, for _RECORD_BEFORE (index flips_counted).
_COUNTED = COUNTED_FLIP
_RECORD_CHANGES = f"SELECT at, old, new FROM flips WHERE check_id = ? AND at >= ? AND {_COUNTED} ORDER BY at, id"  # noqa: S608
_RECORD_BEFORE = f"SELECT new FROM flips WHERE check_id = ? AND at < ? AND {_COUNTED} ORDER BY at DESC, id DESC LIMIT 1"  # noqa: S608
_RECORD_RUNS = "SELECT started_at, ended_at, outcome FROM runs WHERE check_id = ? AND ended_at >= ? ORDER BY ended_at"


async def read_record(db: Db, check_id: int, since: float) -> RecordRows:
    """What a check's record (core/record.py) since `since` is computed from."""
    row = await _first(db, "SELECT created_at FROM checks WHERE id = ?", (check_id,))
    created_at = float(row[0]) if row else since
    args = (check_id, since)
    before = await _first(db, _RECORD_BEFORE, args)
    changes = [Change(float(at), str(old), str(new)) for at, old, new in await _rows(db, _RECORD_CHANGES, args)]
    runs = [RunSpan(float(a), float(b), str(outcome)) for a, b, outcome in await _rows(db, _RECORD_RUNS, args)]
    return RecordRows(created_at, str(before[0]) if before else None, changes, runs)


async def read_runs(db: Db, check_id: int, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
    """A check's finished runs: started_at, ended_at, duration, outcome, exit_status, detail, members."""
    keys = ("id", "run_id", "started_at", "ended_at", "outcome", "exit_status", "detail", "members")
    rows = await _rows(db, _page("runs", ", ".join(keys), "started_at"), (check_id, before, limit))
    out = [dict(zip(keys, row, strict=True)) for row in rows]
    for item in out:
        item["duration"] = max(0.0, item["ended_at"] - item["started_at"])
        item["members"] = json.loads(item["members"]) if item["members"] else []
    return out


# A check's missed deadlines (the index flips_missed holds these alone): what the run charts draw
# beside the runs and end pings.
MISSED = " AND new = 'down' AND reason IN ('missed', 'step_missed')"


async def read_misses(db: Db, check_id: int, limit: int) -> list[dict[str, Any]]:
    """The `limit` newest missed deadlines of a check (flips into down, missed or step_missed)."""
    sql = f"SELECT {', '.join(_FLIP_KEYS)} FROM flips WHERE check_id = ?{MISSED} ORDER BY at DESC, id DESC LIMIT ?"  # noqa: S608
    return [dict(zip(_FLIP_KEYS, row, strict=True)) for row in await _rows(db, sql, (check_id, limit))]


async def read_end_pings(db: Db, check_id: int, limit: int) -> list[dict[str, Any]]:
    """The latest success and failure pings: a timeline's events for jobs that never send a start."""
    sql = (
        "SELECT id, at, kind, exit_status, metrics FROM pings WHERE check_id = ? AND kind IN ('success', 'fail')"
        " ORDER BY id DESC LIMIT ?"
    )
    return [
        {"id": r[0], "at": r[1], "kind": r[2], "exit_status": r[3], "metrics": json.loads(r[4]) if r[4] else None}
        for r in await _rows(db, sql, (check_id, limit))
    ]


async def count_pending_alerts(db: Db) -> int:
    row = await _first(db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
    return int(row[0]) if row else 0


async def read_meta_prefix(db: Db, prefix: str) -> dict[str, str]:
    sql = "SELECT key, value FROM meta WHERE key >= ? AND key < ?"
    return {str(r[0]): str(r[1]) for r in await _rows(db, sql, (prefix, prefix + "\uffff"))}


def _cursor(before: int | None) -> int:
    return (1 << 62) if before is None else before


# ---- the dashboard's index: every row's recent history in one read per table --------------------
# The same rows, in the same order, as read_runs, read_end_pings and read_flips give one check
# (no cursor), for a page of checks at once: one statement per table instead of three per row.
# json_each walks the page's ids; for each, the LIMIT subquery seeks that check's newest rows on
# its index (runs_by_start, pings_by_check, flips_by_time), so a page costs what its rows cost.

_RUN_KEYS = ("id", "run_id", "started_at", "ended_at", "outcome", "exit_status", "detail", "members")
_END_KEYS = ("id", "at", "kind", "exit_status", "metrics")
_FLIP_KEYS = ("id", "at", "old", "new", "reason", "deadline", "detail", "learned_at")


def _newest_of_each(
    table: str, keys: tuple[str, ...], order: str, where: str, ids: str, value: str, lateral: bool
) -> str:
    """`?2` newest rows of each check in the JSON array `?1`, ordered by check, then newest first.
    `lateral`: PostgreSQL's form, a LATERAL join (it cannot make the IN subquery a join, and walks
    the whole table for it); SQLite has no LATERAL, and seeks the subquery's index as it is."""
    columns = ", ".join(f"t.{k}" for k in keys)
    newest = ", ".join(f"t.{part}" for part in order.split(", "))
    if lateral:
        return (
            f"SELECT {value} AS check_id, {columns} FROM {ids} CROSS JOIN LATERAL"  # noqa: S608 - names only
            f" (SELECT {', '.join(keys)} FROM {table} WHERE check_id = {value}{where} ORDER BY {order} LIMIT ?2) AS t"
            f" ORDER BY check_id, {newest}"
        )
    return (
        f"SELECT t.check_id, {columns} FROM {ids} JOIN {table} AS t ON t.id IN"  # noqa: S608 - names only
        f" (SELECT id FROM {table} WHERE check_id = {value}{where} ORDER BY {order} LIMIT ?2)"
        f" ORDER BY t.check_id, {newest}"
    )


def recent_statements(
    ids: str = "json_each(?1) AS c", value: str = "c.value", *, lateral: bool = False
) -> tuple[str, str, str]:
    """read_recent's three statements, walking the ids as `ids` lists them (SQLite's json_each by
    default; `lateral`: see _newest_of_each)."""
    return (
        _newest_of_each("runs", _RUN_KEYS, "started_at DESC, id DESC", "", ids, value, lateral),
        _newest_of_each("pings", _END_KEYS, "id DESC", " AND kind IN ('success', 'fail')", ids, value, lateral),
        _newest_of_each("flips", _FLIP_KEYS, "at DESC, id DESC", MISSED, ids, value, lateral),
    )


_RUNS_OF, _END_PINGS_OF, _MISSES_OF = recent_statements()


@dataclass(frozen=True, slots=True)
class Recent:
    """One check's newest runs, end pings and missed deadlines, as read_runs, read_end_pings and
    read_misses give them."""

    runs: list[dict[str, Any]]
    ends: list[dict[str, Any]]
    misses: list[dict[str, Any]]


async def _grouped(db: Db, sql: str, ids: str, limit: int, keys: tuple[str, ...]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for row in await _rows(db, sql, (ids, limit)):
        out.setdefault(row[0], []).append(dict(zip(keys, row[1:], strict=True)))
    return out


async def read_recent(db: Db, check_ids: list[int], runs: int) -> dict[int, Recent]:
    """Each check's `runs` newest runs, end pings and missed deadlines: three statements in all."""
    ids = json.dumps(check_ids)
    run_rows = await _grouped(db, _RUNS_OF, ids, runs, _RUN_KEYS)
    end_rows = await _grouped(db, _END_PINGS_OF, ids, runs, _END_KEYS)
    flip_rows = await _grouped(db, _MISSES_OF, ids, runs, _FLIP_KEYS)
    for items in run_rows.values():
        for item in items:
            item["duration"] = max(0.0, item["ended_at"] - item["started_at"])
            item["members"] = json.loads(item["members"]) if item["members"] else []
    for items in end_rows.values():
        for item in items:
            item["metrics"] = json.loads(item["metrics"]) if item["metrics"] else None
    return {i: Recent(run_rows.get(i, []), end_rows.get(i, []), flip_rows.get(i, [])) for i in check_ids}
