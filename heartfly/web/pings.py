"""The hot path: /ping/... and /api/v1/heartbeat/<key>. 200 means the ping is committed."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiohttp import web

from heartfly.engine import Check, PingRecord
from heartfly.pingparse import Details, PingError, Target, parse_json, parse_path, parse_query, storable
from heartfly.states import Event, Kind
from heartfly.store import StoreError
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "HEAD"})
BODY_HARD_CAP = 16 * 1024 * 1024  # past this a body is refused, not just truncated
JSON_CAP = 1024 * 1024
BODY_TIMEOUT = 30.0
# Pings by outcome for /metrics: the kind recorded, or not_found / invalid / unavailable.
# One dict increment per ping; create_app fills in the zeros.
PING_COUNTS = web.AppKey("ping_counts", Counter[str])
OUTCOMES = ("success", "start", "fail", "log", "progress", "not_found", "invalid", "unavailable")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n" if status != 200 else text)


NOT_FOUND = "not found"


async def read_body(request: web.Request, keep: int, cap: int) -> tuple[bytes, bool]:
    """Up to `keep` bytes of the body and whether more followed; the rest is read and dropped."""
    if not request.body_exists:
        return b"", False
    kept: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await request.content.readany():
                if size < keep:
                    kept.append(chunk[: keep - size])
                size += len(chunk)
                if size > cap:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=cap, actual_size=size, text=f"body larger than {cap} bytes\n"
                    )
    except TimeoutError:  # a client dribbling its body: answered, not logged as a server error
        raise body_timeout() from None
    except ConnectionResetError:
        raise went_away(request) from None
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not
        reason = getattr(exc.__cause__, "message", None) or "malformed"
        raise web.HTTPBadRequest(text=f"cannot read the body: {' '.join(str(reason).split())}\n") from None
    return b"".join(kept), size > keep


def body_timeout() -> web.HTTPException:
    return web.HTTPRequestTimeout(text=f"the body took longer than {BODY_TIMEOUT:g} s\n")


def went_away(request: web.Request) -> web.HTTPException:
    """The client hung up before its body arrived: nobody reads the answer, and it is no server
    error (aiohttp would log a traceback). The route's pattern is logged, never the path: a ping
    path holds the check's key."""
    resource = request.match_info.route.resource
    where = resource.canonical if resource is not None else "?"
    log.debug("%s %s: the client went away before its request body arrived", request.method, where)
    return web.HTTPBadRequest(text="the request was cut off\n")


async def ping(request: web.Request) -> web.Response:
    if request.method not in METHODS:
        return web.Response(status=405, text="use GET, POST or HEAD\n", headers={"Allow": "GET, POST, HEAD"})
    rt = request.app[RUNTIME]
    server = rt.engine.config.server
    try:
        target = parse_path(request.match_info["tail"], server.ping_key)
        details = parse_query(request.query, rt.clock.now(), server.max_ping_age)
    except PingError as exc:
        request.app[PING_COUNTS]["invalid"] += 1
        return _text(400, str(exc))
    if target is None:
        request.app[PING_COUNTS]["not_found"] += 1
        return _text(404, NOT_FOUND)
    body, truncated = await read_body(request, server.body_limit, BODY_HARD_CAP)
    return await _record(request, target, details, body.decode("utf-8", "replace"), truncated)


async def heartbeat(request: web.Request) -> web.Response:
    if request.method not in METHODS:
        return web.Response(status=405, text="use GET, POST or HEAD\n", headers={"Allow": "GET, POST, HEAD"})
    rt = request.app[RUNTIME]
    server = rt.engine.config.server
    now = rt.clock.now()
    key = request.match_info["key"]
    try:
        details = parse_query(request.query, now, server.max_ping_age)
    except PingError as exc:
        request.app[PING_COUNTS]["invalid"] += 1
        return _text(400, str(exc))
    raw, too_long = await read_body(request, JSON_CAP, BODY_HARD_CAP)
    try:
        if too_long:
            raise PingError(f"a JSON body is limited to {JSON_CAP} bytes")
        details = parse_json(raw, details, now, server.max_ping_age)
        message = details.message or ""
    except PingError as exc:
        found = rt.engine.lookup_key(key)
        if found is None or found[1] is None:
            request.app[PING_COUNTS]["invalid"] += 1
            return _text(400, str(exc))
        # A start or fail key records its event whatever the body; the body is the message then.
        message = raw.decode("utf-8", "replace")
    encoded = message.encode("utf-8")
    truncated = too_long or len(encoded) > server.body_limit
    if len(encoded) > server.body_limit:
        message = encoded[: server.body_limit].decode("utf-8", "ignore")
    target = Target(key=key, name=None, kind=details.kind or Kind.SUCCESS)
    return await _record(request, target, details, message, truncated)


async def _record(request: web.Request, target: Target, details: Details, body: str, truncated: bool) -> web.Response:
    rt = request.app[RUNTIME]
    engine = rt.engine
    check: Check | None
    forced: Kind | None = None
    if target.key is not None:
        found = engine.lookup_key(target.key)
        check, forced = found if found is not None else (None, None)
    else:
        assert target.name is not None
        check = engine.lookup_name(target.name)
    if check is None:
        request.app[PING_COUNTS]["not_found"] += 1
        return _text(404, NOT_FOUND)
    exit_status = target.exit_status if target.exit_status is not None else details.exit_status
    event = Event(forced or target.kind, details.at, details.run_id, exit_status, details.metrics, details.member)
    record = PingRecord(
        event=event,
        received_at=rt.clock.now(),
        body=body,
        truncated=truncated,
        metrics=details.metrics,
        method=request.method,
        source=request.remote or "",
        user_agent=storable(request.headers.get("User-Agent", "")[:200]),
    )
    try:
        await engine.record(check, record)
    except StoreError:
        request.app[PING_COUNTS]["unavailable"] += 1
        return _text(503, "storage unavailable, ping not recorded: try again")
    request.app[PING_COUNTS][event.kind] += 1
    return _text(200, "OK")
