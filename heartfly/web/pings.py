"""The hot path: /ping/... and /api/v1/heartbeat/<key>. 200 means the ping is committed."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from heartfly.core.config_values import BODY_HARD_CAP
from heartfly.core.pingparse import (
    JSON_CAP,
    Ping,
    PingError,
    Target,
    batch_pings,
    parse_batch,
    parse_batch_path,
    parse_path,
    parse_query,
    parse_ts,
    read_ping,
    storable,
)
from heartfly.core.proxies import Networks, client_address
from heartfly.core.states import Event, Kind
from heartfly.server.engine import Check, Engine, PingRecord
from heartfly.store.api import StoreError
from heartfly.web import inflate, provision
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "HEAD"})
BODY_TIMEOUT = 30.0
# Pings by outcome for /metrics: the kind recorded, or not_found / invalid / unavailable.
# One dict increment per ping; create_app fills in the zeros.
PING_COUNTS = web.AppKey("ping_counts", Counter[str])
OUTCOMES = ("success", "start", "fail", "log", "progress", "not_found", "invalid", "unavailable")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n" if status >= 300 else text)


NOT_FOUND = "not found"


async def read_body(request: web.Request, keep: int, cap: int) -> tuple[bytes, bool]:
    """Up to `keep` bytes of the body and whether more followed; the rest is read and dropped."""
    if not request.body_exists:
        return b"", False
    kept: list[bytes] = []
    size = 0
    try:
        # Two header lines are one list (RFC 9110): a proxy may add its own to the client's
        inflating = inflate.inflater(", ".join(request.headers.getall("Content-Encoding", ())))
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await request.content.readany():
                if inflating is not None:
                    chunk = inflating.feed(chunk, cap + 1 - size)
                if size < keep:
                    kept.append(chunk[: keep - size])
                size += len(chunk)
                if size > cap:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=cap, actual_size=size, text=f"body larger than {cap} bytes\n"
                    )
        if inflating is not None:
            inflating.finish()
    except TimeoutError:  # a client dribbling its body: answered, not logged as a server error
        raise body_timeout() from None
    except ConnectionResetError:
        raise went_away(request) from None
    except inflate.BodyError as exc:  # e.g. Content-Encoding: gzip on a body that is not, or cut short
        raise web.HTTPBadRequest(text=f"cannot read the body: {exc}\n") from None
    except web.RequestPayloadError as exc:  # e.g. bad chunked framing
        reason = getattr(exc.__cause__, "message", None) or "malformed"
        raise web.HTTPBadRequest(text=f"cannot read the body: {' '.join(str(reason).split())}\n") from None
    return b"".join(kept), size > keep


def body_timeout() -> web.HTTPException:
    return web.HTTPRequestTimeout(text=f"the body took longer than {BODY_TIMEOUT:g} s\n")


def route_of(request: web.Request) -> str:
    """The route's pattern, for the log: never the path, which holds a ping's key (and in
    Healthchecks' API a check's uuid, which can be its ping key)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "?"


def went_away(request: web.Request) -> web.HTTPException:
    """The client hung up before its body arrived: nobody reads the answer, and it is no server
    error (aiohttp would log a traceback)."""
    log.debug("%s %s: the client went away before its request body arrived", request.method, route_of(request))
    return web.HTTPBadRequest(text="the request was cut off\n")


async def ping(request: web.Request) -> web.Response:
    tail = request.match_info["tail"]
    # Nearly every ping is `/ping/<key>`, without a query string or a body: read at once (_key_only).
    if "/" not in tail and request.method in METHODS and not (request.body_exists or request.rel_url.raw_query_string):
        return await _key_only(request, tail)
    if request.method == "OPTIONS":
        return _preflight()
    head, _, last = tail.rpartition("/")
    try:
        if last == "batch":
            engine = request.app[RUNTIME].engine
            named_batch = engine.lookup_name("batch") is not None
            if (batch_target := parse_batch_path(head, engine.config.server.ping_key, named_batch)) is not None:
                return _as_healthchecks(request, await batch(request, batch_target))
        return _as_healthchecks(request, await _one(request, as_json=False))
    except web.HTTPException as exc:  # a body too large, too slow, unreadable: a browser must see why too
        _refused(request, exc)
        raise


async def heartbeat(request: web.Request) -> web.Response:
    if request.method == "OPTIONS":
        return _preflight()
    try:
        return _as_healthchecks(request, await _one(request, as_json=True))
    except web.HTTPException as exc:
        _refused(request, exc)
        raise


def _refused(request: web.Request, exc: web.HTTPException) -> None:
    """A ping whose body could not be taken (too large, too slow, unreadable): counted with the
    malformed ones for /metrics, and answered with the headers of every ping's answer."""
    request.app[PING_COUNTS]["invalid"] += 1
    _as_healthchecks(request, exc)


def _as_healthchecks(request: web.Request, resp: web.Response) -> web.Response:
    """The headers Healthchecks' ping answers carry: a browser may ping from any page, and
    Ping-Body-Limit tells clients (runitor sizes its output buffer by it) how much of a body is kept.
    (A recorded ping's answer, _ok's, has them already.)"""
    headers = resp.headers
    if "Ping-Body-Limit" in headers:
        return resp
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Ping-Body-Limit"] = str(request.app[RUNTIME].config.server.body_limit)
    return resp


@functools.lru_cache(maxsize=4)
def _ok_headers(body_limit: int) -> CIMultiDictProxy[str]:
    """_ok's headers, read-only: each answer gets a copy of its own."""
    return CIMultiDictProxy(
        CIMultiDict(
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Access-Control-Allow-Origin": "*",
                "Ping-Body-Limit": str(body_limit),
            }
        )
    )


def _ok(body_limit: int) -> web.Response:
    """The answer to a recorded ping: "OK", with _as_healthchecks' headers. Given as bytes with a
    copy of all of its headers (a C copy, which aiohttp takes as it is): about a third of the work of
    a text answer whose headers are added one by one, and it is the answer to nearly every request."""
    return web.Response(body=b"OK", headers=_ok_headers(body_limit).copy())


def _preflight() -> web.Response:
    """A browser's CORS preflight of a ping: any origin may send GET, POST or HEAD."""
    return web.Response(status=204, headers=_PREFLIGHT)


_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


_NO_QUERY: dict[str, str] = {}  # never written: parse_query only reads it


async def _one(request: web.Request, *, as_json: bool) -> web.Response:
    """One ping: `/ping/<key or ping_key/name>[/<event>]`, or a JSON heartbeat (`as_json`).

    This runs for every ping: request.app (a property), the query string's multidict and the body
    reader's coroutine are each taken once, or not at all when there is no query or no body."""
    if request.method not in METHODS:
        request.app[PING_COUNTS]["invalid"] += 1
        return web.Response(status=405, text="use GET, POST or HEAD\n", headers={"Allow": "GET, POST, HEAD"})
    app = request.app
    counts = app[PING_COUNTS]
    rt = app[RUNTIME]
    engine = rt.engine
    server = engine.config.server
    now = rt.clock.now()
    try:
        if as_json:
            target: Target | None = Target(key=request.match_info["key"], name=None, kind=Kind.SUCCESS)
        else:
            target = parse_path(request.match_info["tail"], server.ping_key)
        query = request.query if request.rel_url.raw_query_string else _NO_QUERY
        details = parse_query(query, now, server.max_ping_age)
    except PingError as exc:
        counts["invalid"] += 1
        return _text(400, str(exc))
    if target is None:
        counts["not_found"] += 1
        return _text(404, NOT_FOUND)
    if request.body_exists:
        # A heartbeat keeps body_limit too when that is more: a start or fail key's body is its message
        keep = max(JSON_CAP, server.body_limit) if as_json else server.body_limit
        body, more = await read_body(request, keep, BODY_HARD_CAP)
        # Received once its body is, which may have taken seconds (a job's output over a slow link):
        # a ping without `ts` is dated then, as Healthchecks dates it. Dated at its headers, it
        # was older than its arrival, and was told as a replayed one ("arrived 3 s after it happened").
        # So is a `ts` ahead of the server's clock, which counts as now: the instant it arrived.
        now = rt.clock.now()
        ts = query.get("ts")
        try:
            details = details._replace(at=now if ts is None else parse_ts(ts, now, server.max_ping_age))
        except PingError as exc:  # older than max_ping_age by the time its body came
            counts["invalid"] += 1
            return _text(400, str(exc))
    else:
        body, more = b"", False  # nothing awaited since `now`
    engine = rt.engine  # again after the body: a reload, or a cluster's change of leader, may have come meanwhile
    check, forced = _lookup(engine, target)
    try:
        read = read_ping(
            target, details, forced, body, more,
            as_json=as_json, body_limit=server.body_limit, now=now, max_age=server.max_ping_age,
        )  # fmt: skip
    except PingError as exc:  # before the 404: a malformed ping answers alike for any key
        counts["invalid"] += 1
        return _text(400, str(exc))
    created = False
    if check is None and target.name is not None and query.get("create") == "1":
        try:
            check, created = await provision.create(app, target.name)
        except StoreError:
            counts["unavailable"] += 1
            return _text(503, "storage unavailable, check not created: try again")
        engine = rt.engine
    if check is None:
        counts["not_found"] += 1
        return _text(404, NOT_FOUND)
    record = _ping_record(request, now, read, server.trusted_proxies)
    copy = engine.taken_before(check, record)  # a resend: counted once, as it is stored once
    try:
        await engine.record(check, record)
    except StoreError:
        counts["unavailable"] += 1
        return _text(503, "storage unavailable, ping not recorded: try again")
    if not copy:
        counts[read.event.kind] += 1
    if created:
        return _text(201, "Created")
    return _ok(rt.config.server.body_limit)  # as _as_healthchecks reads it


async def _key_only(request: web.Request, key: str) -> web.Response:
    """A success (or the event its key forces) at `/ping/<key>` with no query string and no body:
    what _one records for it (the test of this fast path compares the two), without the Target,
    Details and Ping tuples that the general path builds, about 1 µs each on every ping."""
    app = request.app
    counts = app[PING_COUNTS]
    rt = app[RUNTIME]
    engine = rt.engine
    now = rt.clock.now()
    found = engine.lookup_key(key)
    if found is None:
        counts["not_found"] += 1
        return _as_healthchecks(request, _text(404, NOT_FOUND))
    check, forced = found
    event = Event(forced or _SUCCESS, now, None, None, None, None)
    user_agent = storable(request.headers.get("User-Agent", "")[:200])
    source = _source(request, engine.config.server.trusted_proxies)
    record = PingRecord(event, now, "", False, None, request.method, source, user_agent, None)
    try:
        await engine.record(check, record)
    except StoreError:
        counts["unavailable"] += 1
        return _as_healthchecks(request, _text(503, "storage unavailable, ping not recorded: try again"))
    counts[event.kind] += 1
    return _ok(rt.config.server.body_limit)


_SUCCESS = Kind.SUCCESS  # a module constant: an enum member read through its class costs a hook call


def _lookup(engine: Engine, target: Target) -> tuple[Check | None, Kind | None]:
    """The check a ping addresses, and the event its key forces (a start_key's or fail_key's)."""
    if target.key is not None:
        found = engine.lookup_key(target.key)
        return found if found is not None else (None, None)
    if target.name is None:  # NOWHERE: a name under a key that is not the ping_key
        return None, None
    return engine.lookup_name(target.name), None


def _ping_record(request: web.Request, received_at: float, ping: Ping, trusted: Networks) -> PingRecord:
    event = ping.event
    user_agent = storable(request.headers.get("User-Agent", "")[:200])
    # Positional: a NamedTuple's keyword arguments cost a third more, on every ping.
    return PingRecord(
        event, received_at, ping.message, ping.truncated, event.metrics, request.method, _source(request, trusted),
        user_agent, ping.uid,
    )  # fmt: skip


def _source(request: web.Request, trusted: Networks) -> str:
    """Where the ping came from: its connection's peer, or the client a trusted proxy names."""
    peer = request.remote or ""
    # aiohttp's istr: a plain str's lookup lowercases it first, twice the cost on every ping
    if hdrs.X_FORWARDED_FOR not in request.headers:  # no proxy in front, or one that names no client
        return peer
    return client_address(peer, ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR)), trusted)


async def batch(request: web.Request, target: Target) -> web.Response:
    """`POST /ping/<key>/batch`: a client's spooled pings of one check, applied in event-time
    order and committed as one, all or none; the answer says, per ping, "ok" or "duplicate" (a
    resend of a ping id already taken), or why the batch was refused."""
    if request.method != "POST":
        request.app[PING_COUNTS]["invalid"] += 1
        return web.Response(status=405, text="a batch is sent with POST\n", headers={"Allow": "POST"})
    rt = request.app[RUNTIME]
    server = rt.engine.config.server
    raw, too_long = await read_body(request, JSON_CAP, BODY_HARD_CAP)
    now = rt.clock.now()  # received, its body too: its pings without ts are dated then, as is their arrival
    try:
        if too_long:
            raise PingError(f"a batch body is limited to {JSON_CAP} bytes; send the rest in another")
        items = parse_batch(raw, now, server.max_ping_age)
    except PingError as exc:
        request.app[PING_COUNTS]["invalid"] += 1
        return _text(400, str(exc))
    errors = [(n, item) for n, item in enumerate(items) if isinstance(item, PingError)]
    if errors:
        request.app[PING_COUNTS]["invalid"] += 1
        results = [{"status": "invalid", "error": str(e)} if isinstance(e, PingError) else {"status": "refused"}
                   for e in items]  # fmt: skip
        first, why = errors[0]
        error = f"ping {first} of the batch: {why}; nothing was stored"
        return web.json_response({"error": error, "results": results}, status=400)
    check, forced = _lookup(rt.engine, target)
    if check is None:
        request.app[PING_COUNTS]["not_found"] += 1
        return _text(404, NOT_FOUND)
    parsed = [details for details in items if not isinstance(details, PingError)]  # all of them, as checked
    trusted = server.trusted_proxies
    records = [_ping_record(request, now, read, trusted) for read in batch_pings(parsed, forced, server.body_limit)]
    committed, duplicates = rt.engine.record_batch(check, records)
    try:
        await committed
    except StoreError:
        request.app[PING_COUNTS]["unavailable"] += 1
        return _text(503, "storage unavailable, batch not recorded: try again")
    for record, duplicate in zip(records, duplicates, strict=True):
        if not duplicate:
            request.app[PING_COUNTS][record.event.kind] += 1
    return web.json_response({"results": [{"status": "duplicate" if d else "ok"} for d in duplicates]})
