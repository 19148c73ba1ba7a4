"""Reads: what the API, the command line and start-up ask of the database (reader.SqlReader
offers them as api.Reader).

The SQL is SQLite's. PostgreSQL runs the same functions through pgconn.PgConnection, which
translates the placeholders and swaps in its own text for the few statements that differ.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import aiosqlite

from heartfly.core import hcshape, states
from heartfly.core.config import CheckConfig
from heartfly.core.patterns import fold_stored_run_id
from heartfly.core.record import Change, RecordRows, RunSpan
from heartfly.core.states import CheckState, Event, Kind
from heartfly.store.rows import ALIVE_AT, CHECKPOINT, CLEAN_STOP, COUNTED_FLIP, SUSPENDED, decode_states

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


async def fetch_all(db: Db, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """A statement's rows, all read in one call on the connection. SQLite holds a read snapshot
    while a statement is open, and on a shared connection (the server's one reader) any read
    begun by another coroutine meanwhile runs in it: the API counted one ping fewer than it had
    already answered, while the dispatcher's read of the outbox was between its steps."""
    return list(await db.execute_fetchall(sql, args))


async def fetch_one(db: Db, sql: str, args: Sequence[Any] = ()) -> Any | None:
    """A statement's first row, or None (_rows)."""
    rows = await fetch_all(db, sql, args)
    return rows[0] if rows else None


async def read_checks(db: Db) -> list[CheckRow]:
    sql = "SELECT id, name, created_at, removed_at, state, state_ping_id FROM checks WHERE id > ? ORDER BY id LIMIT ?"
    checks: list[CheckRow] = []
    after = 0
    # A page at a time, each decoded before the next: 100k rows' state texts at once take some
    # 45 MB, which the allocator keeps (its arenas end up shared with the states) after they go.
    while True:
        rows = await fetch_all(db, sql, (after, CHECKS_PAGE))
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
        found.update({str(name): int(check_id) for name, check_id in await fetch_all(db, sql, part)})
    return found


async def read_check_texts(db: Db) -> list[CheckText]:
    """Every stored check, its state left as stored: a restart decodes each when it is first
    used or in the background after the server answers (Loading.load), not before."""
    sql = "SELECT id, name, removed_at, state, state_ping_id FROM checks ORDER BY id"
    return [CheckText(*row) for row in await fetch_all(db, sql)]


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
        return Event(
            Kind(self.kind), self.at, fold_stored_run_id(self.run_id), self.exit_status, self.metrics, self.member
        )


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
        rows = await fetch_all(db, sql, (ping_id, page))
        for r in rows:
            yield _logged(r)
        if len(rows) < page:
            return
        ping_id = rows[-1][0]


async def check_pings_after(db: Db, check_id: int, ping_id: int) -> list[LoggedPing]:
    """One check's pings newer than its stored state, oldest first: at most a checkpoint's delay of
    them (pruning keeps them), for a check that comes back after it was removed."""
    sql = f"{_LOGGED_PING} WHERE check_id = ? AND id > ? ORDER BY id"
    return [_logged(r) for r in await fetch_all(db, sql, (check_id, ping_id))]


async def read_ping_ids(db: Db, since: float, limit: int) -> list[tuple[int, str, float]]:
    """Client-made ping ids received since `since`, each with its check, oldest first (the newest
    `limit` of them)."""
    sql = (
        "SELECT check_id, uid, received_at FROM (SELECT check_id, uid, received_at FROM pings WHERE uid IS NOT NULL"
        " AND received_at >= ? ORDER BY received_at DESC LIMIT ?) AS recent ORDER BY received_at"
    )
    return [(int(check), str(uid), float(at)) for check, uid, at in await fetch_all(db, sql, (since, limit))]


async def read_meta(db: Db, key: str) -> str | None:
    row = await fetch_one(db, "SELECT value FROM meta WHERE key = ?", (key,))
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
    row = await fetch_one(db, f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - fixed names
    return int(row[0]) if row else 0


async def count_pings(db: Db, check_id: int | None = None) -> dict[int, int]:
    """How many pings each check (or the one given) has kept: Healthchecks' API shows a count."""
    where, args = ("WHERE check_id = ?", (check_id,)) if check_id is not None else ("", ())
    sql = f"SELECT check_id, COUNT(*) FROM pings {where} GROUP BY check_id"  # noqa: S608 - fixed text
    return {int(r[0]): int(r[1]) for r in await fetch_all(db, sql, args)}


_HISTORY_BEFORE = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM runs WHERE check_id = ?1 AND started_at < ?2 AND ended_at < ?2"
    " LIMIT ?3) AS r), (SELECT count(*) FROM (SELECT 1 FROM flips WHERE check_id = ?1 AND at < ?2 LIMIT ?3) AS f)"
)


async def count_history_before(db: Db, check_id: int, cut: float, limit: int) -> tuple[int, int]:
    """How many of a check's runs and of its flips are from before `cut`, as the prune of history
    past keep_history deletes them, each counted up to `limit`: one statement, seeks of the
    indexes runs_by_start and flips_by_time."""
    row = await fetch_one(db, _HISTORY_BEFORE, (check_id, cut, limit))
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def read_downtimes(db: Db, limit: int = 20, before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; `before` an id cursor, as the other lists have."""
    sql = "SELECT id, stopped_at, started_at, clean FROM downtimes WHERE id < ? ORDER BY id DESC LIMIT ?"
    rows = await fetch_all(db, sql, (page_cursor(before), limit))
    # `suspended` (rows.SUSPENDED): the machine slept while Heartfly ran, a stop of neither kind.
    return [
        {"id": r[0], "stopped_at": r[1], "started_at": r[2], "clean": bool(r[3]), "suspended": r[3] == SUSPENDED}
        for r in rows
    ]


async def read_last_status(db: Db, check_id: int) -> str | None:
    """The status the check's latest recorded change left it in; None before its first. One seek
    on flips_by_check (check_id, id)."""
    row = await fetch_one(db, "SELECT new FROM flips WHERE check_id = ? ORDER BY id DESC LIMIT 1", (check_id,))
    return None if row is None else str(row[0])


_ONE_PING = ("id", "at", "kind", "exit_status", "run_id", "body", "source", "check_id")


async def read_ping(db: Db, ping_id: int) -> dict[str, Any] | None:
    return (await read_pings_by_id(db, (ping_id,))).get(ping_id)


async def read_pings_by_id(db: Db, ping_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """Pings by id, several at once (a storm's last pings); those no longer stored are not in it."""
    ids = list(dict.fromkeys(ping_ids))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):  # within SQLite's bound on a statement's parameters
        part = ids[start : start + 500]
        sql = f"SELECT {', '.join(_ONE_PING)} FROM pings WHERE id IN ({','.join('?' * len(part))})"  # noqa: S608
        found.update({int(row[0]): dict(zip(_ONE_PING, row, strict=True)) for row in await fetch_all(db, sql, part)})
    return found


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


def _ping_rows(columns: str) -> str:
    """A page of a check's pings (_page's ?1 check, ?2 cursor, ?3 limit): its ids are chosen by
    time first, and only their rows read. Sorted with their columns, every kept ping's row was
    read for the page's few: those stored after the body (metrics, method, source, user_agent,
    member), and a cut body, SQLite reaches by reading the body whole."""
    return f"SELECT {columns} FROM pings WHERE id IN ({_page('pings', 'id', 'at')}) ORDER BY at DESC, id DESC"  # noqa: S608


_PING_KEYS = ("id", "at", "received_at", "kind", "exit_status", "run_id", "body", "truncated", "metrics", "method",
              "source", "member")  # fmt: skip


def _clipped(shown: int) -> str:
    """The columns of read_pings, a body longer than `shown` characters as its start (a quarter)
    and its end (the rest: a log's end says what went wrong), cut in the statement so the rest
    never reaches Python; then `tail` and `length`. substr and length read characters on both
    stores, so the database still reads each long body whole (on SQLite, 25 of 16 MiB: seconds of
    the reader's connection, off the event loop; the cut saves their transfer and escaping). Which
    body is long is asked of its first `shown` + 1 characters, not of length(): that reads it whole,
    and the test comes twice a row, so a long body is read three times, not five."""
    head, tail = shown // 4, shown - shown // 4
    long = f"substr(body, {int(shown) + 1}, 1) <> ''"
    body = f"CASE WHEN {long} THEN substr(body, 1, {head}) ELSE body END"
    end = f"CASE WHEN {long} THEN substr(body, length(body) - {tail - 1}) ELSE '' END"
    return ", ".join(body if k == "body" else k for k in _PING_KEYS) + f", {end}, length(body)"


async def read_pings(
    db: Db, check_id: int, limit: int = 100, before: int | None = None, shown: int | None = None
) -> list[dict[str, Any]]:
    """A page of a check's pings, newest first. `shown`: a body longer than that many characters
    comes as its start in `body` and its end in `tail`, `omitted` the characters between (a page's
    read: 25 bodies of up to 16 MiB each are not sent to Python, nor put in its HTML, whole)."""
    keys = _PING_KEYS if shown is None else (*_PING_KEYS, "tail", "length")
    sql = _ping_rows(", ".join(_PING_KEYS) if shown is None else _clipped(shown))
    rows = [dict(zip(keys, row, strict=True)) for row in await fetch_all(db, sql, (check_id, before, limit))]
    for item in rows:
        item["truncated"] = bool(item["truncated"])
        item["metrics"] = json.loads(item["metrics"]) if item["metrics"] else {}
        if shown is not None:
            item["omitted"] = item.pop("length") - len(item["body"]) - len(item["tail"])
    return rows


# up <-> running: the start and the end of every healthy run, 192 a day for a 15-minute job. The
# views of state changes leave them out unless asked (`routine`), so the changes that matter show.
NOT_ROUTINE = "NOT ((old = 'up' AND new = 'running') OR (old = 'running' AND new = 'up'))"


async def read_flips(
    db: Db, check_id: int, limit: int = 100, before: int | None = None, routine: bool = True
) -> list[dict[str, Any]]:
    keys = ("id", "at", "old", "new", "reason", "deadline", "detail", "learned_at")
    sql = _page("flips", ", ".join(keys), "at", "TRUE" if routine else NOT_ROUTINE)
    rows = await fetch_all(db, sql, (check_id, before, limit))
    return [dict(zip(keys, row, strict=True)) for row in rows]


# Healthchecks' flips (its API's GET .../flips/): a change between up (up, running, late) and not
# up, or into down or paused. Not a change into late: from up or running it is no flip, and from
# new (a check never pinged, now overdue) no recovery; Healthchecks' flips go up at a ping only.
# Filtered in the one statement: the up <-> late of a job routinely a little late may be most of a
# check's history, and a page at a time over it cost a statement a page, each seeking its cursor
# (minutes for a year of a minutely job).
# Nor a new check's start (new -> running): Healthchecks' start changes no status, its first
# success is the flip up; so the first change into up (or down, paused) after new -> running or
# new -> late is one (asked of the few changes out of new, once, not of every routine running -> up).
_HC_UP = "(" + ", ".join(f"'{state}'" for state in hcshape.UP_STATES) + ")"
_HC_FLIP = (
    f"(((old IN {_HC_UP}) <> (new IN {_HC_UP}) AND new <> 'late' AND NOT (old = 'new' AND new = 'running'))"  # noqa: S608 - constants
    " OR (old <> new AND new IN ('down', 'paused'))"
    " OR (new = 'up' AND id IN (SELECT (SELECT min(u.id) FROM flips u WHERE u.check_id = n.check_id AND u.id > n.id"
    " AND u.new IN ('up', 'down', 'paused')) FROM flips n WHERE n.check_id = ?1 AND n.old = 'new'"
    " AND n.new IN ('running', 'late'))))"
)
_HC_FLIPS = (
    f"SELECT at, new FROM flips WHERE check_id = ?1 AND at >= ?2 AND at < ?3 AND {_HC_FLIP}"  # noqa: S608 - constants
    " ORDER BY at DESC, id DESC LIMIT ?4"
)


# Healthchecks' ping list links to each body (body_url) and shows none: whether a ping has one is
# asked of its first character, so the 100 newest bodies (up to 16 MiB each) never reach Python;
# and only the listed rows are read (_ping_rows: method, source and user_agent follow the body).
_HC_PINGS = _ping_rows("id, at, kind, exit_status, run_id, method, source, user_agent, substr(body, 1, 1) <> ''")


# The runs ended at the listed success and failure pings' times (?4 the oldest, ?3 the newest): a
# run ends at its end ping's event time. Each started at most 72 hours (?5) before its end, as
# Healthchecks looks back for a ping's start (MAX_DURATION). Read where they started on
# runs_by_start: from the listed pings' oldest time (?2), which a run whose start is listed started
# at or after; and of the runs started before it, in the 72 hours before the oldest end, the
# HC_EARLIER newest (a run open while the oldest listed pings came, whose start the list cut off).
# Not every run of those 72 hours: a job run every 10 s had 26,000 rows read for a list of 100 pings.
_HC_RUN_ENDS = (
    "SELECT ended_at, run_id, ended_at - started_at FROM runs WHERE check_id = ?1 AND started_at >= ?2"
    " AND started_at <= ?3 AND ended_at >= ?4 AND ended_at <= ?3 AND ended_at - started_at <= ?5"
)
_HC_RUNS_BEFORE = (
    "SELECT ended_at, run_id, ended_at - started_at FROM runs WHERE check_id = ?1 AND started_at < ?2"
    " AND started_at >= ?3 ORDER BY started_at DESC LIMIT ?4"
)
HC_MAX_DURATION = 72 * 3600.0
HC_EARLIER = 100


async def read_hc_pings(db: Db, check_id: int, limit: int) -> list[dict[str, Any]]:
    """A check's newest pings as Healthchecks lists them, newest first: id, at, kind, exit_status,
    run_id, method, source, user_agent, has_body (not the body), and duration: the seconds of the
    run a success or failure ended, else None."""
    keys = ("id", "at", "kind", "exit_status", "run_id", "method", "source", "user_agent", "has_body")
    rows = [dict(zip(keys, row, strict=True)) for row in await fetch_all(db, _HC_PINGS, (check_id, None, limit))]
    ends = [item["at"] for item in rows if item["kind"] in ("success", "fail")]
    found: list[Any] = []
    if ends:
        oldest, newest = min(ends), max(ends)
        since = max(min(item["at"] for item in rows), oldest - HC_MAX_DURATION)
        found = await fetch_all(db, _HC_RUN_ENDS, (check_id, since, newest, oldest, HC_MAX_DURATION))
        if since > oldest - HC_MAX_DURATION:
            earlier = await fetch_all(db, _HC_RUNS_BEFORE, (check_id, since, oldest - HC_MAX_DURATION, HC_EARLIER))
            found += [r for r in earlier if oldest <= r[0] <= newest and r[2] <= HC_MAX_DURATION]
    # Paired by end time and run id: two runs that ended at one instant (spooled ends, stamped in
    # whole seconds) each have their own; by end time alone only where one run ended then. To the
    # hundredth of a second, as Healthchecks rounds it (not 42.36999988555908).
    by_run = {(float(at), fold_stored_run_id(rid)): round(float(took), 2) for at, rid, took in found}
    by_end: dict[float, list[float]] = {}
    for (end, _), seconds in by_run.items():
        by_end.setdefault(end, []).append(seconds)
    for item in rows:
        item["has_body"] = bool(item["has_body"])
        duration: float | None = None
        if item["kind"] in ("success", "fail"):
            end = float(item["at"])
            duration = by_run.get((end, fold_stored_run_id(item["run_id"])))
            if duration is None and len(by_end.get(end, ())) == 1:
                duration = by_end[end][0]
        item["duration"] = duration
    return rows


async def read_hc_flips(db: Db, check_id: int, since: float, until: float, limit: int) -> list[dict[str, Any]]:
    """A check's changes Healthchecks has a flip for, at `since` or later and before `until`,
    newest first: at and new."""
    rows = await fetch_all(db, _HC_FLIPS, (check_id, since, until, limit))
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
    row = await fetch_one(db, "SELECT created_at FROM checks WHERE id = ?", (check_id,))
    created_at = float(row[0]) if row else since
    args = (check_id, since)
    before = await fetch_one(db, _RECORD_BEFORE, args)
    changes = [Change(float(at), str(old), str(new)) for at, old, new in await fetch_all(db, _RECORD_CHANGES, args)]
    runs = [RunSpan(float(a), float(b), str(outcome)) for a, b, outcome in await fetch_all(db, _RECORD_RUNS, args)]
    return RecordRows(created_at, str(before[0]) if before else None, changes, runs)


async def read_runs(db: Db, check_id: int, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
    """A check's finished runs: started_at, ended_at, duration, outcome, exit_status, detail, members."""
    keys = ("id", "run_id", "started_at", "ended_at", "outcome", "exit_status", "detail", "members")
    rows = await fetch_all(db, _page("runs", ", ".join(keys), "started_at"), (check_id, before, limit))
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
    return [dict(zip(_FLIP_KEYS, row, strict=True)) for row in await fetch_all(db, sql, (check_id, limit))]


async def read_end_pings(db: Db, check_id: int, limit: int, metrics: bool = True) -> list[dict[str, Any]]:
    """The latest success and failure pings: a timeline's events for jobs that never send a start.
    Without `metrics` (a check without assertions: None), which SQLite stores after the body and
    reaches by reading the body whole (_BARE)."""
    sql = (
        f"SELECT id, at, kind, exit_status, {'metrics' if metrics else 'NULL'}, run_id FROM pings"  # noqa: S608
        " WHERE check_id = ? AND kind IN ('success', 'fail') ORDER BY id DESC LIMIT ?"
    )
    return [
        {"id": r[0], "at": r[1], "kind": r[2], "exit_status": r[3], "metrics": json.loads(r[4]) if r[4] else None}
        | {"run_id": r[5]}
        for r in await fetch_all(db, sql, (check_id, limit))
    ]


async def read_meta_prefix(db: Db, prefix: str) -> dict[str, str]:
    sql = "SELECT key, value FROM meta WHERE key >= ? AND key < ?"
    return {str(r[0]): str(r[1]) for r in await fetch_all(db, sql, (prefix, prefix + "\uffff"))}


def page_cursor(before: int | None) -> int:
    return (1 << 62) if before is None else before


# ---- the dashboard's index: every row's recent history in one read per table --------------------
# The same rows, in the same order, as read_runs, read_end_pings and read_flips give one check
# (no cursor), for a page of checks at once: one statement per table instead of three per row.
# json_each walks the page's ids; for each, the LIMIT subquery seeks that check's newest rows on
# its index (runs_by_start, pings_by_check, flips_by_time), so a page costs what its rows cost.

_RUN_KEYS = ("id", "run_id", "started_at", "ended_at", "outcome", "exit_status", "detail", "members")
_END_KEYS = ("id", "at", "kind", "exit_status", "metrics", "run_id")
# Without metrics: a row's columns after its body (metrics) are reached by reading the body whole
# on SQLite, 24 bodies a row of the index, for checks that have no assertions to judge them by.
_BARE = tuple(k for k in _END_KEYS if k != "metrics")
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
) -> tuple[str, str, str, str]:
    """read_recent's statements, walking the ids as `ids` lists them (SQLite's json_each by
    default; `lateral`: see _newest_of_each): runs, end pings, missed deadlines, and end pings
    without their metrics."""
    ends = " AND kind IN ('success', 'fail')"
    return (
        _newest_of_each("runs", _RUN_KEYS, "started_at DESC, id DESC", "", ids, value, lateral),
        _newest_of_each("pings", _END_KEYS, "id DESC", ends, ids, value, lateral),
        _newest_of_each("flips", _FLIP_KEYS, "at DESC, id DESC", MISSED, ids, value, lateral),
        _newest_of_each("pings", _BARE, "id DESC", ends, ids, value, lateral),
    )


_RUNS_OF, _END_PINGS_OF, _MISSES_OF, _BARE_END_PINGS_OF = recent_statements()


@dataclass(frozen=True, slots=True)
class Recent:
    """One check's newest runs, end pings and missed deadlines, as read_runs, read_end_pings and
    read_misses give them."""

    runs: list[dict[str, Any]]
    ends: list[dict[str, Any]]
    misses: list[dict[str, Any]]


async def _grouped(db: Db, sql: str, ids: str, limit: int, keys: tuple[str, ...]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for row in await fetch_all(db, sql, (ids, limit)):
        out.setdefault(row[0], []).append(dict(zip(keys, row[1:], strict=True)))
    return out


async def read_recent(db: Db, check_ids: list[int], runs: int, judged: Collection[int] = ()) -> dict[int, Recent]:
    """Each check's `runs` newest runs, end pings and missed deadlines: three statements in all (a
    fourth where some checks are `judged`: their end pings come with metrics, the others' without)."""
    ids = json.dumps(check_ids)
    run_rows = await _grouped(db, _RUNS_OF, ids, runs, _RUN_KEYS)
    with_metrics = [i for i in check_ids if i in judged]
    bare = [i for i in check_ids if i not in judged]
    end_rows = await _grouped(db, _END_PINGS_OF, json.dumps(with_metrics), runs, _END_KEYS) if with_metrics else {}
    if bare:
        end_rows |= await _grouped(db, _BARE_END_PINGS_OF, json.dumps(bare), runs, _BARE)
    flip_rows = await _grouped(db, _MISSES_OF, ids, runs, _FLIP_KEYS)
    for items in run_rows.values():
        for item in items:
            item["duration"] = max(0.0, item["ended_at"] - item["started_at"])
            item["members"] = json.loads(item["members"]) if item["members"] else []
    for items in end_rows.values():
        for item in items:
            item["metrics"] = json.loads(item["metrics"]) if item.get("metrics") else None
    return {i: Recent(run_rows.get(i, []), end_rows.get(i, []), flip_rows.get(i, [])) for i in check_ids}
