"""Ping URLs, query parameters and bodies -> what happened. Pure: `now` is an argument.

Every problem raises PingError with a one-line reason for a 400 answer, given before a 404: a
malformed ping answers the same whether its key exists or not (only a start or fail key, which
records its event whatever the body, reads a bad body as its message). Text echoed in a reason is
clipped and made encodable: JSON can carry lone surrogates ("\\ud800").
"""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from heartfly.core.config_reader import did_you_mean
from heartfly.core.patterns import METRIC_RE, NAME_RE, RUN_ID_RE, fold_run_id
from heartfly.core.pingids import PING_ID_RE
from heartfly.core.statetypes import Event, Kind
from heartfly.core.units import is_decimal

MAX_METRICS = 32
FUTURE_SKEW = 300.0  # a client clock this far ahead is trusted as "now"
MAX_BATCH = 1000  # pings in one batch request (a client sends a longer spool in several)
JSON_CAP = 1024 * 1024  # bytes of a heartbeat's or a batch's JSON body

_SURROGATES = re.compile("[\ud800-\udfff]")
_EVENTS = {"": Kind.SUCCESS, "start": Kind.START, "fail": Kind.FAIL, "log": Kind.LOG, "progress": Kind.PROGRESS}
_STATUSES = {
    "success": Kind.SUCCESS,
    "start": Kind.START,
    "fail": Kind.FAIL,
    "log": Kind.LOG,
    "progress": Kind.PROGRESS,
}
# A heartbeat object's fields: anything else is a typo that would otherwise pass as a plain success.
FIELDS = ("status", "message", "run_id", "metrics", "exit_code", "ts", "member", "ping_id")


class PingError(ValueError):
    """A malformed ping: the message is the one-line reason sent with the 400."""


class Target(NamedTuple):
    """Who a ping URL addresses (a key, or a name under the server's ping_key) and what it says."""

    key: str | None
    name: str | None
    kind: Kind
    exit_status: int | None = None


class Details(NamedTuple):
    """What a ping carries besides its event: from the query string and/or a JSON body."""

    at: float
    run_id: str | None = None
    metrics: dict[str, float] | None = None
    message: str | None = None
    kind: Kind | None = None  # a JSON "status" or "exit_code"
    exit_status: int | None = None
    member: str | None = None  # a fan-in worker naming itself
    uid: str | None = None  # the client's own id for this ping (exactly once across resends)


class Ping(NamedTuple):
    """One ping read: the event it reports, its client-made id, and the message stored with it."""

    event: Event
    uid: str | None
    message: str
    truncated: bool


def read_ping(
    target: Target,
    query: Details,
    forced: Kind | None,
    body: bytes,
    more: bool,
    *,
    as_json: bool,
    body_limit: int,
    now: float,
    max_age: float,
) -> Ping:
    """What one ping says happened; PingError for a malformed one.

    `target` is what its URL addresses and says (a heartbeat URL says success), `query` its query
    string's details, `forced` the event its key forces (a check's start_key or fail_key), `body`
    the first bytes of its body and `more` whether more followed. A plain ping's body is its message,
    already cut to `body_limit` bytes by the reader. A heartbeat's body (`as_json`, parsed up to
    JSON_CAP bytes) is a JSON object whose fields override the query string's; a start or fail key
    records its event whatever the body, which is then the message, cut to `body_limit` bytes."""
    if not as_json:
        return _ping(forced or target.kind, query, target.exit_status, storable(body.decode("utf-8", "replace")), more)
    try:
        if more or len(body) > JSON_CAP:
            raise PingError(f"a JSON body is limited to {JSON_CAP} bytes")
        details = parse_json(body, query, now, max_age)
        message = details.message or ""
    except PingError:
        if forced is None:
            raise
        details, message = query, storable(body.decode("utf-8", "replace"))
    message, clipped = clip(message, body_limit)
    exit_status = target.exit_status if target.exit_status is not None else details.exit_status
    return _ping(forced or details.kind or target.kind, details, exit_status, message, more or clipped)


def batch_pings(items: list[Details], forced: Kind | None, body_limit: int) -> list[Ping]:
    """The pings of a parsed batch: each says its own event, unless the batch's key forces one."""
    pings = []
    for details in items:
        message, truncated = clip(details.message or "", body_limit)
        pings.append(_ping(forced or details.kind or Kind.SUCCESS, details, details.exit_status, message, truncated))
    return pings


def _ping(kind: Kind, details: Details, exit_status: int | None, message: str, truncated: bool) -> Ping:
    event = Event(kind, details.at, details.run_id, exit_status, details.metrics, details.member)
    return Ping(event, details.uid, message, truncated)


def clip(message: str, limit: int) -> tuple[str, bool]:
    """A message within `limit` UTF-8 bytes (cut at a character), and whether it was cut."""
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message, False
    return encoded[:limit].decode("utf-8", "ignore"), True


def parse_event(segment: str) -> tuple[Kind, int | None]:
    """The last path segment: "", start, fail, log, progress, or an exit status 0-255."""
    kind = _EVENTS.get(segment)
    if kind is not None:
        return kind, None
    # Leading zeros as Healthchecks takes them ("0001" is 1), without int() of thousands of digits
    digits = segment.lstrip("0") or "0"
    if is_decimal(segment) and len(digits) <= 3 and int(digits) <= 255:
        status = int(digits)
        return (Kind.SUCCESS if status == 0 else Kind.FAIL), status
    raise PingError(
        f'unknown ping event "{_clip(segment)}": use start, fail, log, progress or an exit status 0-255'
        " (a check is pinged by name as /ping/<ping_key>/<name>)"
    )


# A ping that addresses no check: a check's name under a key that is not the ping_key. It is read
# as the same URL under the ping_key would be (its body, its event) and answered 404 as an unknown
# name is, so that no answer (400 or 404, before or after its body) tells the ping_key from a guess.
NOWHERE = Target(None, None, Kind.SUCCESS)


def parse_path(tail: str, ping_key: str | None) -> Target | None:
    """`<key>[/<event>]` or `<ping_key>/<name>[/<event>]`; None when it is neither form. A path is
    read alike whether or not its first segment is the ping_key: `<other>/<name>` is NOWHERE, and
    `<other>/<name>/<event>` too once its event is read (a bad one is a 400 under any key)."""
    parts = tail.split("/")
    if len(parts) > 3 or not parts[0]:
        return None
    if len(parts) == 1:
        return Target(parts[0], None, Kind.SUCCESS)
    named = ping_key is not None and hmac.compare_digest(parts[0].encode("utf-8", "surrogatepass"), ping_key.encode())
    if len(parts) == 3:
        kind, status = parse_event(parts[2])
        return Target(None, parts[1], kind, status) if named else NOWHERE  # positional: keywords cost a third more
    if named:
        if parts[1] and not NAME_RE.fullmatch(parts[1]):  # no check's name, nor an event: as under any key
            raise _neither(parts[1])
        return Target(None, parts[1], Kind.SUCCESS)
    try:
        kind, status = parse_event(parts[1])
    except PingError:
        if NAME_RE.fullmatch(parts[1]):  # a check's name (or "256", a name under the ping_key)
            return NOWHERE
        raise _neither(parts[1]) from None
    return Target(parts[0], None, kind, status)


def _neither(segment: str) -> PingError:
    """The reason for a second segment that is no event and no check's name, under any key: a name
    to be made with ?create=1 ("Bad Name") is told what a name may be, not only which events exist."""
    return PingError(
        f'unknown ping event "{_clip(segment)}": use start, fail, log, progress or an exit status 0-255;'
        ' nor is it a check\'s name (/ping/<ping_key>/<name>): letters, digits, "_", "." and "-", from a letter'
        " or digit, at most 100"
    )


def parse_batch_path(head: str, ping_key: str | None, named_batch: bool = False) -> Target | None:
    """What `/ping/<head>/batch` addresses: `<key>` or `<ping_key>/<name>` (NOWHERE under another
    key), without an event (each ping of a batch names its own); None when it is neither, or when it
    is `/ping/<ping_key>/batch` and a check is named "batch" (`named_batch`): a ping to that one.
    Without such a check, that URL is a batch for no check, as it is under any other key."""
    parts = head.split("/")
    named = ping_key is not None and hmac.compare_digest(parts[0].encode("utf-8", "surrogatepass"), ping_key.encode())
    if len(parts) == 1:
        if named:
            return None if named_batch else NOWHERE
        return Target(parts[0], None, Kind.SUCCESS) if parts[0] else None
    if len(parts) != 2 or not parts[0] or not NAME_RE.fullmatch(parts[1]):
        return None
    return Target(None, parts[1], Kind.SUCCESS) if named else NOWHERE


def parse_query(query: Mapping[str, str], now: float, max_age: float) -> Details:
    """rid=, ts=, member=, ping_id= and m_<name>= parameters; anything else is ignored (clients
    add cache-busters)."""
    if not query:
        return Details(now)
    run_id = _run_id(query.get("rid"))
    member = _member(query.get("member"))
    at = parse_ts(query.get("ts"), now, max_age)
    metrics: dict[str, float] = {}
    for name, value in query.items():
        if name.startswith("m_"):
            _add_metric(metrics, name[2:], value, f"m_{name[2:]}")
    return Details(at=at, run_id=run_id, metrics=metrics or None, member=member, uid=_uid(query.get("ping_id")))


def parse_ts(raw: object, now: float, max_age: float) -> float:
    """A client-supplied event time: in the past and within max_age; slightly ahead counts as now."""
    if raw is None:
        return now
    try:
        ts = float(raw) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else math.nan
    except (ValueError, OverflowError):  # OverflowError: a JSON integer of hundreds of digits
        ts = math.nan
    if not math.isfinite(ts):
        raise PingError(f'ts must be unix seconds, got "{_clip(str(raw))}"')
    if ts > now + FUTURE_SKEW:
        raise PingError(f"ts {ts:.0f} is in the future (server time is {now:.0f})")
    if ts < now - max_age:
        raise PingError(f"ts {ts:.0f} is older than the server accepts (max_ping_age, {max_age:.0f} s)")
    return min(ts, now)


def parse_json(raw: bytes, query: Details, now: float, max_age: float) -> Details:
    """The JSON heartbeat body; its fields override the query string's."""
    if not raw.strip():
        return query
    data = _load_json(raw)
    if not isinstance(data, dict):
        raise PingError("the JSON body must be an object")
    return parse_fields(data, query, now, max_age)


def parse_batch(raw: bytes, now: float, max_age: float) -> list[Details | PingError]:
    """A batch body, `{"pings": [<heartbeat object>, ...]}`: each ping's details, or its error.

    A body that is not such an object raises PingError; a bad ping is returned in its place, so
    the answer can say which ones were wrong (and the batch is refused whole)."""
    data = _load_json(raw)
    items = data.get("pings") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PingError('a batch is a JSON object {"pings": [...]}, each ping a heartbeat object')
    if not items:
        raise PingError("a batch needs at least one ping")
    if len(items) > MAX_BATCH:
        raise PingError(f"a batch holds at most {MAX_BATCH} pings; send the rest in another")
    details: list[Details | PingError] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise PingError("each ping of a batch must be a JSON object")
            details.append(parse_fields(item, Details(at=now), now, max_age))
        except PingError as exc:
            details.append(exc)
    return details


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise PingError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError, and integers past Python's 4,300 digits
        raise PingError(f"invalid JSON: {_clip(str(exc), 120)}") from None


def parse_fields(data: dict[str, Any], query: Details, now: float, max_age: float) -> Details:
    """A heartbeat object's fields, over the query string's details."""
    _known_fields(data)
    kind: Kind | None = None
    if "status" in data:
        status = data["status"]
        if not isinstance(status, str) or status not in _STATUSES:
            raise PingError(f"unknown status {_clip(json.dumps(status))}: use start, success, fail, progress or log")
        kind = _STATUSES[status]
    exit_status = query.exit_status
    if data.get("exit_code") is not None:
        code = data["exit_code"]
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise PingError("exit_code must be an integer from 0 to 255")
        exit_status = code
        # A non-zero exit is a failure, as at /ping/<key>/<status>: never a silent success.
        if kind in (None, Kind.SUCCESS):
            kind = Kind.SUCCESS if code == 0 else Kind.FAIL
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        raise PingError("message must be a string")
    if message is not None:
        message = storable(message)
    run_id = _run_id(data["run_id"], "run_id") if data.get("run_id") is not None else query.run_id
    at = parse_ts(data["ts"], now, max_age) if data.get("ts") is not None else query.at
    metrics = dict(query.metrics or {})
    raw_metrics = data.get("metrics")
    if raw_metrics is not None:
        if not isinstance(raw_metrics, dict):
            raise PingError("metrics must be an object of numbers")
        for name, value in raw_metrics.items():
            _add_metric(metrics, str(name), value, f"metrics.{_clip(str(name))}")
    member = _member(data["member"]) if data.get("member") is not None else query.member
    uid = _uid(data["ping_id"]) if data.get("ping_id") is not None else query.uid
    return Details(at, run_id, metrics or None, message, kind, exit_status, member, uid)


def _known_fields(data: dict[str, Any]) -> None:
    """Refuse the first unknown field, naming the closest known one, as the config file does."""
    for name in data:
        if name not in FIELDS:
            raise PingError(
                f"unknown field {_clip(json.dumps(name))}{did_you_mean(name, FIELDS)}: a heartbeat has "
                + ", ".join(FIELDS)
            )


def _token(raw: Any, pattern: re.Pattern[str], rule: str) -> str | None:
    """An optional client-made identifier: absent or empty is None, else it must match `pattern`."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        raise PingError(rule)
    return raw


def _uid(raw: Any) -> str | None:
    return _token(raw, PING_ID_RE, "ping_id must be 8 to 64 letters, digits or '_', '.', ':', '-'")


def _run_id(raw: Any, label: str = "rid") -> str | None:
    """A run id, or None when absent; an empty one is refused: the README promises 1 to 128
    characters, and "" would silently pair with whichever run is open."""
    rule = f"{label} must be 1 to 128 printable ASCII characters without spaces"
    if raw == "":
        raise PingError(rule)
    run_id = _token(raw, RUN_ID_RE, rule)
    return None if run_id is None else fold_run_id(run_id)


def _member(raw: Any) -> str | None:
    return _token(raw, RUN_ID_RE, "member must be 1 to 128 printable ASCII characters without spaces")


def _add_metric(metrics: dict[str, float], name: str, value: Any, label: str) -> None:
    if not METRIC_RE.fullmatch(name):
        raise PingError(f"metric name {_clip(label)!r} must be 1 to 64 letters, digits or '_'")
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise PingError(f"metric {label} must be a finite number, got {_clip(str(value))!r}")
    metrics[name] = number
    if len(metrics) > MAX_METRICS:
        raise PingError(f"at most {MAX_METRICS} metrics per ping")


def storable(text: str) -> str:
    """Client text as every store can keep it, one rule for all: NUL bytes (a job piping binary
    output into its ping) and lone surrogates (JSON escapes; header bytes that are not UTF-8, as
    aiohttp passes them) replaced by U+FFFD. PostgreSQL text cannot hold NUL and SQLite's UTF-8
    refuses surrogates, either failing the whole batch. ASCII text without NUL (nearly all of it)
    costs two scans in C."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)


def _clip(text: str, limit: int = 40) -> str:
    text = storable(text)
    return text if len(text) <= limit else text[:limit] + "…"
