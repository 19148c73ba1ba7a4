"""The JSON API under /api/v1 (token-protected) and the health endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from heartfly.core.states import Status
from heartfly.core.units import decimal
from heartfly.core.views import check_summary, iso
from heartfly.server import heartbeat
from heartfly.server.engine import Check
from heartfly.store.api import Reader
from heartfly.web import auth, control, record
from heartfly.web.pings import read_body, route_of
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHUNK = 64 * 1024  # bytes of a streamed page written at a time
# Checks summed up between two turns of the event loop. A ping takes several turns to be answered:
# 1,000 a turn (0.13 s at 50,000 checks on a 2-core VM) held each ping that came during a listing
# for up to 1.3 s, through the 5 to 10 s the listing lasts; a hundred, 0.5 s at most.
SUMMARIES_AT_A_TIME = 100
STALLED = 30.0  # seconds a client may take none of a streamed page before it is cut off
# On every answer of the APIs and /metrics: they hold check states and ping messages, which a
# browser's cache (the session cookie opens the API too) or a proxy's must not keep, as it keeps
# none of the dashboard's pages.
NOT_STORED = {"Cache-Control": "no-store"}


async def not_stored(answer: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """`answer` marked NOT_STORED, and so is an HTTPException it raises (a 404 "no such check", a
    400 of a query parameter); a streamed one (json_array) was marked as it began."""
    try:
        resp = await answer
    except web.HTTPException as exc:
        exc.headers.update(NOT_STORED)
        raise
    if not resp.prepared:
        resp.headers.update(NOT_STORED)
    return resp


def json_error(status: int, message: str, **headers: str) -> web.Response:
    """An error of the APIs (also a 404 or 405 of the routes, a 503 of the store): NOT_STORED, as their answers."""
    return web.json_response({"error": message}, status=status, headers={**NOT_STORED, **headers})


def authorized(*, query: frozenset[str] = frozenset(), new_token_opens: bool = False) -> Callable[[Handler], Handler]:
    """Requires the API token (Bearer, or the dashboard's session cookie plus its CSRF header for
    writes); with `public = true`, reads are open. `query` is the handler's query parameters: any
    other is a 400, so that a typo (`?limt=5`) is an error rather than a silently ignored wish.
    `new_token_opens`: the handler also takes the token file's new content
    (auth.bearer_is_new_token), so a reload finishes a token rotation."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            denied = auth.api_denial(request)
            if denied is not None and not (
                new_token_opens and denied.status == 401 and auth.bearer_is_new_token(request)
            ):
                return denied
            unknown = sorted(set(request.query) - query)
            if unknown:
                return json_error(400, f"unknown query parameter {unknown[0]!r}")
            return await handler(request)

        async def wrapper(request: web.Request) -> web.StreamResponse:
            return await not_stored(guarded(request))

        return wrapper

    return wrap


PAGE_PARAMS = frozenset({"limit", "before"})


def _check(request: web.Request) -> Check:
    check = request.app[RUNTIME].engine.lookup_name(request.match_info["name"])
    if check is None:
        raise web.HTTPNotFound(text='{"error": "no such check"}', content_type="application/json")
    return check


@authorized(query=frozenset({"state", "tag"}))
async def list_checks(request: web.Request) -> web.StreamResponse:
    """Every check; `state=` only those in it, `tag=` (repeatable) only those with every tag given."""
    engine = request.app[RUNTIME].engine
    wanted = request.query.get("state")
    if wanted is not None and wanted not in {s.value for s in Status}:
        return json_error(400, f"unknown state {wanted!r}")
    tags = set(request.query.getall("tag", []))
    await engine.all_read()
    items = []
    # 100k checks are seconds of summaries and 50 MB of JSON: made a part at a time, pings answered between.
    for n, c in enumerate(list(engine.checks.values()), 1):
        if (wanted is None or c.state.status.value == wanted) and tags <= set(c.config.tags):
            items.append(summary(request.app, c))
        if n % SUMMARIES_AT_A_TIME == 0:
            await asyncio.sleep(0)
    return await json_array(request, items, {})


@authorized(query=PAGE_PARAMS)
async def list_downtimes(request: web.Request) -> web.StreamResponse:
    """When Heartfly itself was not running, newest first: deadlines in those spans were extended."""
    reader = request.app[RUNTIME].reader
    assert reader is not None
    limit = _limit(request)
    rows = await reader.read_downtimes(limit, _before(request))
    shown = [{**_times(r, "stopped_at", "started_at"), "seconds": r["started_at"] - r["stopped_at"]} for r in rows]
    return await _page(request, shown, limit)


def summary(app: web.Application, check: Check) -> dict[str, Any]:
    """A check as the API shows it: the `heartfly status --json` shape plus when a pause ends."""
    return {**check_summary(check.config, check.state), "paused_until": iso(control.paused_until(app, check))}


@authorized()
async def check_record(request: web.Request) -> web.Response:
    """Availability, downtime, times down, failed runs and run durations over 24 h, 7 d and 30 d."""
    check = _check(request)
    rt = request.app[RUNTIME]
    await rt.settled()
    windows = await record.read(rt, check)
    return web.json_response({"check": check.name, "windows": [record.as_json(r) for r in windows]})


@authorized()
async def get_check(request: web.Request) -> web.Response:
    check = _check(request)
    return web.json_response(summary(request.app, check))


# A page read of the Reader: (check id, limit, before) -> rows.
PageRead = Callable[[int, int, "int | None"], Awaitable[list[dict[str, Any]]]]


async def _history(
    request: web.Request, read: Callable[[Reader], PageRead], shape: Callable[[dict[str, Any]], dict[str, Any]]
) -> web.StreamResponse:
    """One page of a check's history, newest first (`limit`, and `before` an id cursor)."""
    check = _check(request)
    rt = request.app[RUNTIME]
    reader = rt.reader
    assert reader is not None
    limit, before = _limit(request), _before(request)
    await rt.settled()
    rows = await read(reader)(check.id, limit, before)
    return await _page(request, [shape(r) for r in rows], limit)


@authorized(query=PAGE_PARAMS)
async def check_pings(request: web.Request) -> web.StreamResponse:
    return await _history(request, lambda db: db.read_pings, lambda r: _times(r, "at", "received_at"))


@authorized(query=PAGE_PARAMS)
async def check_runs(request: web.Request) -> web.StreamResponse:
    """Finished runs, newest first; runs still open are in the check's `open_runs`/`running_since`."""
    return await _history(request, lambda db: db.read_runs, lambda r: _times(r, "started_at", "ended_at"))


@authorized(query=PAGE_PARAMS | {"all"})
async def check_flips(request: web.Request) -> web.StreamResponse:
    """The changes that matter, newest first; `all=1` adds the up <-> running of every healthy run."""
    routine = _flag(request, "all")

    def read(db: Reader) -> PageRead:
        return lambda check_id, limit, before: db.read_flips(check_id, limit, before, routine=routine)

    return await _history(request, read, lambda r: _times(r, "at", "deadline", "learned_at"))


@authorized(query=PAGE_PARAMS)
async def check_alerts(request: web.Request) -> web.StreamResponse:
    """The check's alerts, newest first, each with every delivery attempt."""
    return await _history(request, lambda db: db.read_alerts, _alert_times)


@authorized()
async def test_channel(request: web.Request) -> web.Response:
    """Send a clearly marked test through the real outbox and report the first attempt's outcome."""
    rt = request.app[RUNTIME]
    name = request.match_info["name"]
    channel = rt.config.channels.get(name)
    if channel is None:
        return json_error(404, f'no channel "{name}"')
    cluster = rt.cluster_status()
    if cluster is not None and cluster.role != "leader":
        leader = cluster.leader or "none right now"
        return json_error(409, f"this node ({cluster.node}) stands by; the leader sends alerts: ask it ({leader})")
    outbox_id, committed = rt.engine.send_test_alert(name)
    await committed
    reader = rt.reader
    assert reader is not None
    # The attempt's own time limit: the channel's timeout, if it has one, else [alerts] timeout.
    deadline = rt.clock.now() + (channel.timeout or rt.config.alerts.timeout) + 5
    while True:
        # This alert alone (the newest test alert before id + 1): more test alerts may come meanwhile.
        [alert] = await reader.read_alerts(None, 1, before=outbox_id + 1)
        if alert["attempt_log"] or rt.clock.now() > deadline:
            break
        await asyncio.sleep(0.05)
    return web.json_response(_alert_times(alert))


@authorized(query=frozenset({"until"}))
async def pause_check(request: web.Request) -> web.Response:
    """Pause now; `?until=2h` or `?until=2026-11-24T08:00:00Z` resumes it by itself then."""
    check = _check(request)
    if (sent := await _body_given(request)) is not None:
        return json_error(400, f"a pause takes its end in the URL (?until=2h or ?until=2026-11-24T08:00:00Z), not in"
                               f" the request body ({sent}): nothing was paused")  # fmt: skip
    until = None
    if "until" in request.query:  # present but empty is a mistake, not "no end"
        try:
            until = control.parse_until(request.query["until"], request.app[RUNTIME].clock.now())
        except ValueError as exc:
            return json_error(400, str(exc))
    applied = not control.passed_on(request.app)
    await control.pause(request.app, check, until)
    # Said: a check made through the API has it, which the file (all `heartfly pause` reads) does not show.
    said = {"resume_on_ping": check.config.resume_on_ping, "applied": applied}
    return web.json_response({**summary(request.app, check), **said})


BODY_READ = 4096  # bytes of a pause's body read to say what it held: it takes none


async def _body_given(request: web.Request) -> str | None:
    """What a request that takes no body sent in one, if anything but nothing or `{}` (what a
    client library sends for "no fields"): a pause's end sent there (`-d until=2h`, a JSON
    `{"until": ...}` as Healthchecks' API takes its fields) would be a pause for ever, unsaid."""
    try:
        raw, _ = await read_body(request, BODY_READ, BODY_READ)  # a longer one: a 413's words
    except web.HTTPException as exc:
        return (exc.text or exc.reason).strip()
    if b"".join(raw.split()) in (b"", b"{}"):  # `{` and `}` on lines of their own too (curl -d @file)
        return None
    return f"{len(raw)} bytes"


@authorized()
async def resume_check(request: web.Request) -> web.Response:
    """Watch a paused check again; `was_paused` false says it was not paused (nothing changed)."""
    check = _check(request)
    was_paused, applied = check.state.status is Status.PAUSED, not control.passed_on(request.app)
    await control.resume(request.app, check)
    return web.json_response({**summary(request.app, check), "was_paused": was_paused, "applied": applied})


@authorized(new_token_opens=True)
async def reload_config(request: web.Request) -> web.Response:
    """Re-read the config file, as SIGHUP does; a broken file is reported and the old config kept.

    Besides the API token, the token file's new content is accepted (NEW_TOKEN_OPENS).
    """
    count, problems = await control.reload_config(request.app)
    if problems:
        body = {"error": "the config file has errors; still running the previous config", "problems": problems}
        return web.json_response(body, status=400)
    rt = request.app[RUNTIME]
    return web.json_response({"config": str(rt.config.path), "checks": count, "restart_needed": rt.restart_needed()})


async def not_found(request: web.Request) -> web.Response:
    """Anything else under /api/v1: JSON 405 for a known path with another method, else JSON 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical.startswith("/api/v1/{tail"):
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        return json_error(405, f"use {', '.join(sorted(allowed))}", Allow=", ".join(sorted(allowed)))
    return json_error(404, "no such endpoint (see /api/v1/openapi.json)")


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database takes writes and the deadline timer is running."""
    rt = request.app[RUNTIME]
    writer = rt.ping_writer()
    problem = None
    if rt.writer is not None and rt.writer.lost is not None:
        problem = rt.writer.lost
    elif writer is None:
        problem = "database writes are failing"
    else:
        problem = heartbeat.problem(rt.engine, writer)
    if problem is None and rt.cluster is not None and rt.cluster.lease_unreadable:
        problem = "cannot reach the database: the cluster's lease cannot be read"  # a standby has no writes to fail
    if problem is None and rt.cluster is not None and rt.engine.standby is not None:  # alive by its lease reads
        problem = rt.cluster.view_age.stale()
    cluster = rt.cluster_status()
    if cluster is not None:  # a cluster node says its role, ready or not
        body = {"ready": problem is None, "problem": problem, **dataclasses.asdict(cluster)}
        return web.json_response(body, status=503 if problem else 200)
    if problem is not None:
        return web.Response(status=503, text=f"{problem}\n")
    return web.Response(text="OK")


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    value = decimal(text, digits=19)  # the cursor's bound, 2**62, has 19 digits
    if value is None or not low <= value <= high:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be an integer from {low} to {high}"}}', content_type="application/json"
        )
    return value


def _flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "0").lower()
    if text not in ("0", "1", "false", "true"):
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be 1 (or true) or 0 (or false)"}}', content_type="application/json"
        )
    return text in ("1", "true")


def _limit(request: web.Request) -> int:
    limit = _int_param(request, "limit", 100, 1, 1000)
    assert limit is not None
    return limit


def _before(request: web.Request) -> int | None:
    return _int_param(request, "before", None, 1, 2**62)


async def _page(request: web.Request, items: list[dict[str, Any]], limit: int) -> web.StreamResponse:
    """A page of newest-first items; a full page links to the next one (`before` = the last id)."""
    headers = {}
    if len(items) == limit:
        query = {**request.query, "limit": str(limit), "before": str(items[-1]["id"])}
        headers["Link"] = f'<{request.rel_url.with_query(query)}>; rel="next"'
    return await json_array(request, items, headers)


async def json_array(
    request: web.Request, items: list[dict[str, Any]], headers: dict[str, str], around: tuple[bytes, bytes] = (b"", b"")
) -> web.StreamResponse:
    """A JSON array (inside `around`: an object's text before and after it) written a chunk at a
    time, as the client takes it. 1000 pings of 100 KB are 100 MB of JSON, 600 MB if the bodies
    are control characters (each one a \\u escape): built whole, the answer took twice that in
    memory and held the event loop (no ping answered) for seconds."""
    resp = web.StreamResponse(headers={**headers, **NOT_STORED})
    resp.content_type, resp.charset = "application/json", "utf-8"
    head = request.method == "HEAD"
    if head:  # the length the GET would have, and no body: aiohttp would send what is written
        # here (neither chunked nor counted), which the client reads as its next answer
        size = 0
        for chunk in _chunks(items, *around):
            size += len(chunk)
            await asyncio.sleep(0)
        resp.content_length = size
    try:
        await resp.prepare(request)  # in here: a client gone while the list was made is gone here
        for chunk in () if head else _chunks(items, *around):
            async with asyncio.timeout(STALLED):
                await resp.write(chunk)
            await asyncio.sleep(0)  # a write returns at once while the client keeps up: let pings in
        async with asyncio.timeout(STALLED):
            await resp.write_eof()
    except TimeoutError:  # a client that stopped reading: cut off, not a page held for it for ever
        log.debug("%s %s: the client took none of the answer for %g s", request.method, route_of(request), STALLED)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:  # the client went away mid-answer: nobody to tell, no server error
        log.debug("%s %s: the client went away during the answer", request.method, route_of(request))
    return resp


def _chunks(items: list[dict[str, Any]], before: bytes, after: bytes) -> Iterator[bytes]:
    """The JSON array of `items`, about CHUNK bytes at a time."""
    parts, size = [before + b"["], 1
    for n, item in enumerate(items):
        part = (b"," if n else b"") + json.dumps(item).encode()
        parts.append(part)
        size += len(part)
        if size >= CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    yield b"".join(parts) + b"]" + after


def _alert_times(alert: dict[str, Any]) -> dict[str, Any]:
    attempts = [_times(a, "at") for a in alert["attempt_log"]]
    return {**_times(alert, "created_at", "done_at", "next_attempt_at"), "attempt_log": attempts}


def _times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{k: iso(row[k]) for k in keys}}
