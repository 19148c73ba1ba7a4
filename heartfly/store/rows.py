"""What the writer commits: each row's columns beside its INSERT, and the other statements.

Callers hand in facts (a flip, a finished run, a ping, a meta key) and get rows or statements
back; nothing outside heartfly/store knows a column's place or speaks SQL.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from heartfly.core.statetypes import CheckState, Flip, RunEnd

if TYPE_CHECKING:
    from heartfly.store.pingrecord import PingRecord

INSERT_PING = (
    "INSERT INTO pings (id, check_id, at, received_at, kind, exit_status, run_id, body, truncated,"
    " metrics, method, source, user_agent, member, uid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_FLIP = (
    "INSERT INTO flips (id, check_id, at, old, new, reason, deadline, detail, learned_at) VALUES (?,?,?,?,?,?,?,?,?)"
)
INSERT_RUN = (
    "INSERT INTO runs (check_id, run_id, started_at, ended_at, outcome, exit_status, detail, members)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (id, key, check_id, channel, event, payload, created_at, expires_at, next_attempt_at)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)
SET_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"

PingRow = tuple[
    int, int, float, float, str, int | None, str | None, str, int, str | None, str, str, str, str | None, str | None
]
FlipRow = tuple[int, int, float, str, str, str | None, float | None, str, float | None]
OutboxRow = tuple[int, str, int | None, str, str, str, float, float, float]
RunRow = tuple[int, str | None, float, float, str, int | None, str, str | None]
Statement = tuple[str, tuple[Any, ...]]
InboxRow = tuple[str, str, str]  # a cluster's inbox (inbox.py): node, check name, body


@dataclass(frozen=True, slots=True)
class StateRow:
    """A checkpoint of one check: its state including every ping up to `ping_id`.

    `state` is a snapshot: the engine replaces a check's state object, never mutates a queued one.
    """

    check_id: int
    state: CheckState
    ping_id: int


@dataclass(slots=True)
class Write:
    """Rows to commit together."""

    ping: PingRow | None = None
    state: StateRow | None = None
    flip: FlipRow | None = None
    pings: list[PingRow] = field(default_factory=list)  # more of them: a batch of pings, or of flips
    flips: list[FlipRow] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    inbox: list[InboxRow] = field(default_factory=list)  # a standby's pings for the leader (PostgreSQL)
    inbox_done: list[int] = field(default_factory=list)  # inbox rows this write applies: deleted with it
    amends: list[Statement] = field(default_factory=list)  # run after every row is in: they amend those
    on_commit: Callable[[], None] | None = None  # called in the event loop once committed
    # A ping's: takes it back if its commit fails. A write with one is never retried after a
    # failed commit (an API change's: a no-op, its caller is told 503 and nothing changed).
    on_refuse: Callable[[], None] | None = None

    @property
    def has_pings(self) -> bool:
        return self.ping is not None or bool(self.pings) or bool(self.inbox)


_NO_ROWS: Any = ()  # ping_write's lists: one shared empty tuple, which nothing appends to
_new = object.__new__


def ping_write(ping: PingRow, on_refuse: Callable[[], None]) -> Write:
    """The write of one ping row and nothing else: what nearly every ping commits.

    Made without Write's generated __init__ and its seven new lists, in about a third of the time
    (it is made for every ping). Its lists are one shared empty tuple: rows are added to a Write made
    the usual way (an append here fails, loudly)."""
    w: Write = _new(Write)
    w.ping, w.state, w.flip = ping, None, None
    w.pings = w.flips = w.statements = w.outbox = w.runs = w.inbox = w.inbox_done = w.amends = _NO_ROWS
    w.on_commit, w.on_refuse = None, on_refuse
    return w


# ping_write sets every field: one added to Write must be added there too.
assert set(Write.__slots__) == {
    "ping", "state", "flip", "pings", "flips", "statements", "outbox", "runs", "inbox", "inbox_done",
    "amends", "on_commit", "on_refuse",
}  # fmt: skip


def merge(writes: Sequence[Write]) -> Write:
    """One write of several, committed as one (a batch of pings: all of it or none of it).

    A check's later state row replaces its earlier ones; callbacks run in order."""
    if len(writes) == 1:
        return writes[0]
    merged = Write()
    commits: list[Callable[[], None]] = []
    refusals: list[Callable[[], None]] = []
    for w in writes:
        merged.pings += [p for p in ((w.ping, *w.pings) if w.pings else (w.ping,)) if p is not None]
        merged.flips += [f for f in ((w.flip, *w.flips) if w.flips else (w.flip,)) if f is not None]
        merged.state = w.state or merged.state
        merged.statements += w.statements
        merged.outbox += w.outbox
        merged.runs += w.runs
        merged.inbox += w.inbox
        merged.inbox_done += w.inbox_done
        merged.amends += w.amends
        commits += [w.on_commit] if w.on_commit is not None else []
        refusals += [w.on_refuse] if w.on_refuse is not None else []
    if commits:
        merged.on_commit = commits[0] if len(commits) == 1 else functools.partial(_call_each, commits)
    if refusals:
        merged.on_refuse = functools.partial(_call_each, refusals[::-1])
    return merged


def _call_each(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


# ---- rows ---------------------------------------------------------------------------------------


def ping_row(ping: PingRecord, ping_id: int, check_id: int) -> PingRow:
    ev = ping.event
    return (
        ping_id,
        check_id,
        ev.at,
        ping.received_at,
        ev.kind._value_,  # not .value: an enum property, a Python call per ping
        ev.exit_status,
        ev.run_id,
        ping.body,
        int(ping.truncated),
        json.dumps(ping.metrics) if ping.metrics else None,
        ping.method,
        ping.source,
        ping.user_agent,
        ev.member,
        ping.uid,
    )


def flip_row(flip_id: int, check_id: int, flip: Flip) -> FlipRow:
    return (
        flip_id,
        check_id,
        flip.at,
        flip.old.value,
        flip.new.value,
        flip.reason.value if flip.reason else None,
        flip.deadline,
        flip.detail,
        flip.learned_at,
    )


def run_rows(check_id: int, ended: Iterable[RunEnd]) -> list[RunRow]:
    return [
        (check_id, r.run_id, r.started_at, r.ended_at, r.outcome, r.exit_status, r.detail,
         json.dumps(r.members) if r.members else None)
        for r in ended
    ]  # fmt: skip


def outbox_row(
    outbox_id: int, key: str, check_id: int | None, channel: str, event: str, payload: str, at: float, expires_at: float
) -> OutboxRow:
    """An alert to send from `at` (its first attempt is due then) until `expires_at`."""
    return (outbox_id, key, check_id, channel, event, payload, at, expires_at, at)


_orjson_dumps, _orjson_loads = orjson.dumps, orjson.loads
_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(**options) builds an encoder per call


def encode_state(state: CheckState) -> str:
    """The state's stored text, by orjson (a checkpoint writes every state pinged since the last:
    with 100k checks, most pings' own; to_json included, 10 µs a state against 25 with the json
    module on the bench's VM), or by the json module where orjson would write another document:
    inf and nan as null (a pipeline step's due_at is inf), or not at all (integers past 64 bits,
    lone surrogates). Either way the same document (orjson leaves non-ASCII text unescaped)."""
    data = state.to_json()
    if _finite(data.values()):
        try:
            return _orjson_dumps(data).decode()
        except TypeError:
            pass
    return _encode(data)


def _finite(values: Iterable[Any]) -> bool:
    """No inf or nan among the values of a state's to_json, nested or not (x - x is nan for both).
    Loops more than it recurses: it runs for every state a checkpoint writes."""
    for value in values:
        cls = value.__class__
        if cls is float:
            if value - value != 0.0:
                return False
        elif cls is tuple or cls is list:
            if not _finite(value):
                return False
        elif cls is dict and not _finite(value.values()):
            return False
    # A type orjson has no rule for (a float or tuple subclass) makes it raise TypeError.
    return True


class NewStateTexts:
    """encode_state for the checks one load or reload creates: all watched from the same instant,
    those of one schedule have equal initial states, each encoded once (a float's text is most of
    an encoding's cost, and a first start of 100k checks would encode 100k equal states). For
    initial states: the key holds the top-level values, which is all an initial state holds."""

    def __init__(self) -> None:
        self._texts: dict[tuple[object, ...], str] = {}

    def __call__(self, state: CheckState) -> str:
        if state.runs:  # not a new state's: a dict is no key
            return encode_state(state)
        # The fields as the key, read in C (to_json's walk over them costs several times more):
        # to_json runs once per distinct state, not once per check. Their types are not in the
        # key (that doubled its cost): equal values of other types (5 and 5.0) would share a text
        # that decodes to an equal state.
        key = _FIELDS_BUT_RUNS(state)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = encode_state(state)
        return text


_FIELDS_BUT_RUNS = operator.attrgetter(*(f.name for f in dataclasses.fields(CheckState) if f.name != "runs"))


def decode_states(texts: Iterable[str], instants: dict[float, float] | None = None) -> list[CheckState]:
    """Stored states, equal instants among them (and in `instants`, which they add to) one float
    object (integers stay integers)."""
    if instants is None:
        instants = {}
    states = []
    for text in texts:
        try:
            # A fifth of the json module's cost. It would read an integer past 64 bits as a float
            # (the json module keeps it exact), but no field holds one: a state's integers are
            # counts and exit codes (0-255), its instants floats (pingparse.parse_ts).
            data = _orjson_loads(text)
        except ValueError:  # orjson.JSONDecodeError: also Infinity and NaN, which it does not read
            data = json.loads(text)  # reads those, and words the error of a damaged row
        states.append(CheckState.from_json(data, instants))
    return states


def decode_state(text: str, instants: dict[float, float] | None = None) -> CheckState:
    return decode_states((text,), instants)[0]


# ---- statements -------------------------------------------------------------------------------


def withdraw_flips_statement(check_id: int, after: float, before_id: int) -> Statement:
    """Withdraw a check's changes dated after `after` that were recorded before flip `before_id`
    (states.Step.withdraw_after): an amend, run once the batch's flips are in."""
    return "DELETE FROM flips WHERE check_id = ? AND at > ? AND id < ?", (check_id, after, before_id)


def replaced_run_statement(check_id: int, run: RunEnd) -> Statement:
    """Delete the row a run row replaces (RunEnd.replaces): an amend, run once the batch's runs are in."""
    # One row: a retried end can have recorded the same run twice, and a later write in the batch
    # may hold another row like it.
    sql = (
        "DELETE FROM runs WHERE id = (SELECT min(id) FROM runs"
        " WHERE check_id = ? AND run_id IS NULL AND started_at = ? AND ended_at = ?)"
    )
    assert run.replaces is not None
    return sql, (check_id, *run.replaces)


def meta_statement(key: str, value: str) -> Statement:
    return SET_META, (key, value)


def delete_meta_statement(key: str) -> Statement:
    return "DELETE FROM meta WHERE key = ?", (key,)


def new_meta_statement(key: str, value: str) -> Statement:
    """The meta row `key`, written only if there is none (the first of two writers keeps it)."""
    return "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value)


def changed_meta_statement(key: str, value: str) -> Statement:
    """The meta row `key` set to `value` if it is there, else nothing: a stored check's change,
    which must not bring back a check another node deleted."""
    return "UPDATE meta SET value = ? WHERE key = ?", (value, key)


def new_meta_while_statement(key: str, value: str, other: str) -> Statement:
    """new_meta_statement, only while the meta row `other` is there: a rename takes its new name
    only while its check is stored under its old one (another node may have deleted it)."""
    sql = "INSERT INTO meta (key, value) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM meta WHERE key = ?)"
    return f"{sql} ON CONFLICT(key) DO NOTHING", (key, value, other)


# The server's own marks in the meta table (queries.read_checkpoint and read_last_alive read them).
CHECKPOINT = "checkpoint"  # every ping numbered up to it is in the stored states
ALIVE_AT = "alive_at"  # the server's last sign of life: a restart's downtime starts here
CLEAN_STOP = "clean_stop"  # "1" once it stopped cleanly, "0" while it runs


def checkpoint_statement(mark: int) -> Statement:
    return meta_statement(CHECKPOINT, str(mark))


def alive_statement(now: float) -> Statement:
    return meta_statement(ALIVE_AT, repr(now))


def clean_stop_statement(clean: bool) -> Statement:
    return meta_statement(CLEAN_STOP, "1" if clean else "0")


def insert_check_statement(
    check_id: int, name: str, now: float, state: CheckState, encode: Callable[[CheckState], str] = encode_state
) -> Statement:
    return (
        "INSERT INTO checks (id, name, created_at, removed_at, state) VALUES (?, ?, ?, NULL, ?)",
        (check_id, name, now, encode(state)),
    )


# A row a check no longer owns goes by this name (no check's name has a ':'), so that a new check
# under that name gets a row, and a history, of its own (as in Healthchecks, where a new check is new).
TOMBSTONE = "deleted:"


def tombstone(check_id: int, name: str) -> str:
    return f"{TOMBSTONE}{check_id}:{name}"


def tombstone_statement(name: str) -> Statement:
    """Free `name` for a check made through the API: the row a check of that name left (deleted
    through the API, removed from the config) goes by its tombstone name, its history kept as a
    removed check's."""
    renamed = "CAST(? AS TEXT) || CAST(id AS TEXT) || ':' || name"
    return f"UPDATE checks SET name = {renamed} WHERE name = ?", (TOMBSTONE, name)  # noqa: S608


def rename_check_statement(old: str, new: str) -> Statement:
    return "UPDATE checks SET name = ? WHERE name = ?", (new, old)


def while_meta(statement: Statement, key: str) -> Statement:
    """`statement` (an UPDATE or a DELETE with a WHERE) if the meta row `key` is there when it runs,
    else nothing: a rename's moves of rows, done only while the check is stored under its old name."""
    sql, params = statement
    return f"{sql} AND EXISTS (SELECT 1 FROM meta WHERE key = ?)", (*params, key)  # noqa: S608


def while_meta_is(statement: Statement, key: str, value: str) -> Statement:
    """`statement` (an UPDATE or a DELETE with a WHERE) if the meta row `key` holds `value` when it
    runs, else nothing: a rename's moves, done only once its new_meta_statement took the new name."""
    sql, params = statement
    return f"{sql} AND EXISTS (SELECT 1 FROM meta WHERE key = ? AND value = ?)", (*params, key, value)  # noqa: S608


def unless_meta(statement: Statement, key: str) -> Statement:
    """`statement` (an UPDATE or a DELETE with a WHERE) if the meta row `key` is not there when it
    runs, else nothing: a new stored check's clearing of its name, done only while nobody made it."""
    sql, params = statement
    return f"{sql} AND NOT EXISTS (SELECT 1 FROM meta WHERE key = ?)", (*params, key)  # noqa: S608


def rename_meta_statement(old_key: str, new_key: str) -> Statement:
    """A meta row kept by a check's name (the end of its timed pause) follows a rename; a row under
    `new_key` must be gone first (delete_meta_statement): the key is unique."""
    return "UPDATE meta SET key = ? WHERE key = ?", (new_key, old_key)


def removed_statement(check_id: int, removed_at: float | None) -> Statement:
    """Mark a check gone from the config since `removed_at` (its history stays), or back (None)."""
    if removed_at is None:
        return "UPDATE checks SET removed_at = NULL WHERE id = ?", (check_id,)
    return "UPDATE checks SET removed_at = ? WHERE id = ?", (removed_at, check_id)


SUSPENDED = 2  # a downtime's `clean`: the machine slept (an older version reads it as a clean stop)


def downtime_statement(stopped_at: float, started_at: float, clean: bool, *, suspended: bool = False) -> Statement:
    return "INSERT INTO downtimes (stopped_at, started_at, clean) VALUES (?, ?, ?)", (
        stopped_at,
        started_at,
        SUSPENDED if suspended else int(clean),
    )


def outbox_downtime_statement(stopped_at: float, started_at: float) -> Statement:
    """Give the pending alerts the downtime back on their expiry: none could be sent while
    Heartfly was not running (a test alert is for the moment it was asked for, and keeps its own)."""
    return (
        "UPDATE outbox SET expires_at = expires_at + ? WHERE status = 'pending' AND expires_at > ? AND event <> 'test'",
        (started_at - stopped_at, stopped_at),
    )


def attempt_statements(
    item_id: int, at: float, duration: float, outcome: str, error: str | None, next_attempt_at: float | None
) -> list[Statement]:
    """Record one delivery attempt and move its outbox row on (sent, failed, expired or retry later)."""
    record = (
        "INSERT INTO alert_attempts (outbox_id, at, duration, outcome, error) VALUES (?, ?, ?, ?, ?)",
        (item_id, at, duration, outcome, error),
    )
    update: Statement
    if outcome == "retry":
        update = (
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, error, item_id),
        )
    else:
        update = (
            "UPDATE outbox SET attempts = attempts + 1, status = ?, done_at = ?, last_error = ? WHERE id = ?",
            (outcome, at, error, item_id),
        )
    return [record, update]


# The pings the check's pending alerts name as their last: read when each is sent (a seek of the
# partial index outbox_heads). PostgreSQL reads the payload with its own operator (pgconn.PG_VARIANTS).
ALERTED_PINGS = (
    "SELECT json_extract(payload, '$.last_ping_id') AS p FROM outbox WHERE check_id = ? AND status = 'pending'"
)
ALERTED_PINGS_PG = (
    "SELECT CAST(payload::json ->> 'last_ping_id' AS BIGINT) AS p FROM outbox WHERE check_id = ? AND status = 'pending'"
)
# Pings one trim deletes at most, oldest first: a log past keep_pings by many (a flood of pings, or
# keep_pings lowered) is trimmed in commits of this many, each its own, and the pings queued
# meanwhile wait for one of them, not for one long commit (measured, 300 byte bodies: 300,000
# pings in one commit 3.8 s, where readiness counts 5 s as the database unanswering; in commits
# of 2,000 about 0.1 s each, of 10,000 about 0.55 s, the same in total).
PINGS_PER_TRIM = 2000
# Bytes of bodies one trim deletes at most (the ping that passes it the last): a long body is a
# chain of overflow pages that SQLite reads to free, and 2,000 bodies of 100 KB took one commit
# 6 s. About 0.1 s of a commit at this many (4 MiB). Counted from the bodies themselves, not from
# body_limit: pings with short bodies still go PINGS_PER_TRIM a commit, and those stored before a
# reload lowered body_limit are not taken for short.
TRIM_BYTES = 4 << 20
# A ping the trim may delete: past the newest `keep`, in the checkpoint, not the last of a pending alert.
_TRIMMABLE = (
    "check_id = ? AND id <= (SELECT id FROM pings WHERE check_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"  # noqa: S608
    " AND id <= (SELECT state_ping_id FROM checks WHERE id = ?)"
    f" AND id NOT IN (SELECT p FROM ({ALERTED_PINGS}) AS alerted WHERE p IS NOT NULL)"
)
# The trimmable pings, oldest first, a seek of pings_by_check each, until `batch` of them or their
# bodies reach `budget` bytes: the bodies past those are not read.
PRUNE_PINGS = (
    "WITH RECURSIVE walk(id, bytes, n) AS ("  # noqa: S608 - our own text
    f"SELECT id, length(body), 1 FROM pings WHERE id = (SELECT min(id) FROM pings WHERE {_TRIMMABLE})"
    " UNION ALL SELECT q.id, walk.bytes + length(q.body), walk.n + 1 FROM walk JOIN pings AS q"
    f" ON q.id = (SELECT min(id) FROM pings WHERE {_TRIMMABLE} AND id > walk.id)"
    " WHERE walk.bytes < ? AND walk.n < ?)"
    " DELETE FROM pings WHERE id IN (SELECT id FROM walk)"
)


def prune_statement(check_id: int, keep: int, batch: int = PINGS_PER_TRIM, budget: int = TRIM_BYTES) -> Statement:
    """Delete the oldest `batch` of one check's pings but the newest `keep`, fewer once their
    bodies reach `budget` bytes (one at least), never one its checkpoint lacks, nor the last ping
    of one of its pending alerts (its message shows that ping)."""
    trimmable = (check_id, check_id, keep, check_id, check_id)
    return PRUNE_PINGS, (*trimmable, *trimmable, budget, batch)


# History past [server] keep_history: deleted a batch at a time (a commit with a long delete would
# hold up the pings behind it), oldest first, each by a seek of an index led by the check.
HISTORY_BATCH = 1000
# The changes into or out of down and paused: the only ones a record's figures depend on
# (queries.read_record). The newest of them before the cut stays: it is a check's status then.
COUNTED_FLIP = "old <> new AND (old IN ('down', 'paused') OR new IN ('down', 'paused'))"


def prune_history_statements(check_id: int, cut: float, batch: int = HISTORY_BATCH) -> list[Statement]:
    """Delete up to `batch` of one check's runs and flips from before `cut`, oldest first (the
    indexes runs_by_start and flips_by_time), keeping the newest counted flip before it (the
    index flips_counted finds it) and the newest flip of all: a start numbers flips on from the
    highest id stored, so a pruned newest flip (a step's down told, down to down, counts for no
    record) had its id handed out again (a down's alert key, `flip-N-<ms>`, holds its time too)."""
    runs = (
        "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE check_id = ? AND started_at < ? AND ended_at < ?"
        " ORDER BY started_at LIMIT ?)"  # ended before the cut too: a record counts a run by its end
    )
    oldest = "SELECT id FROM flips WHERE check_id = ? AND at < ? ORDER BY at LIMIT ?"
    newest_counted = f"SELECT id FROM flips WHERE check_id = ? AND at < ? AND {COUNTED_FLIP} ORDER BY at DESC, id DESC"  # noqa: S608
    flips = (
        f"DELETE FROM flips WHERE id IN ({oldest}) AND id <> COALESCE(({newest_counted} LIMIT 1), -1)"  # noqa: S608
        " AND id < (SELECT max(id) FROM flips)"
    )
    return [(runs, (check_id, cut, cut, batch)), (flips, (check_id, cut, batch, check_id, cut))]


def prune_done_statements(cut: float, batch: int = HISTORY_BATCH) -> list[Statement]:
    """Delete finished alerts done before `cut`, with their attempts, and the downtimes before it:
    among the oldest `batch` rows of each (ids grow with time; neither table has an index on its
    times, and a filter over the whole table would read it all every round). The newest alert
    stays, whatever its age: a start numbers alerts on from the highest id stored, and an
    emptied outbox handed out id 1 again (a test alert's key, `test-N-<ms>`, holds its time too,
    as a restored backup's numbering repeats ids)."""
    done = (
        "SELECT id FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)"
        " AND status <> 'pending' AND done_at < ? AND id < (SELECT max(id) FROM outbox)"
    )
    return [
        (f"DELETE FROM alert_attempts WHERE outbox_id IN ({done})", (batch, cut)),  # noqa: S608 - our own text
        (f"DELETE FROM outbox WHERE id IN ({done})", (batch, cut)),  # noqa: S608
        (
            "DELETE FROM downtimes WHERE id IN (SELECT id FROM downtimes ORDER BY id LIMIT ?) AND started_at < ?",
            (batch, cut),
        ),
    ]
