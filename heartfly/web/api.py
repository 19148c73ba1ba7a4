"""The JSON API under /api/v1 (token-protected) and the health endpoints."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from heartfly import queries
from heartfly.engine import Check
from heartfly.states import Status
from heartfly.views import check_summary, iso
from heartfly.web.runtime import RUNTIME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def authorized(handler: Handler) -> Handler:
    """Requires `Authorization: Bearer <token>` matching the server's API token."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        token = request.app[RUNTIME].token
        if token is None:
            return json_error(403, "the API is disabled: set server.api_token_file in the config")
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return json_error(401, "missing or wrong API token", **{"WWW-Authenticate": 'Bearer realm="heartfly"'})
        return await handler(request)

    return wrapper


def _check(request: web.Request) -> Check:
    check = request.app[RUNTIME].engine.lookup_name(request.match_info["name"])
    if check is None:
        raise web.HTTPNotFound(text='{"error": "no such check"}', content_type="application/json")
    return check


@authorized
async def list_checks(request: web.Request) -> web.Response:
    engine = request.app[RUNTIME].engine
    wanted = request.query.get("state")
    if wanted is not None and wanted not in {s.value for s in Status}:
        return json_error(400, f"unknown state {wanted!r}")
    items = [
        check_summary(c.config, c.state)
        for c in engine.checks.values()
        if wanted is None or c.state.status.value == wanted
    ]
    return web.json_response(items)


@authorized
async def get_check(request: web.Request) -> web.Response:
    check = _check(request)
    return web.json_response(check_summary(check.config, check.state))


@authorized
async def check_pings(request: web.Request) -> web.Response:
    check = _check(request)
    reader = request.app[RUNTIME].reader
    assert reader is not None
    rows = await queries.read_pings(reader, check.id, _limit(request))
    return web.json_response([_times(r, "at", "received_at") for r in rows])


@authorized
async def check_flips(request: web.Request) -> web.Response:
    check = _check(request)
    reader = request.app[RUNTIME].reader
    assert reader is not None
    rows = await queries.read_flips(reader, check.id, _limit(request))
    return web.json_response([_times(r, "at", "deadline") for r in rows])


@authorized
async def check_alerts(request: web.Request) -> web.Response:
    """The check's alerts, newest first, each with every delivery attempt."""
    check = _check(request)
    reader = request.app[RUNTIME].reader
    assert reader is not None
    alerts = await queries.read_alerts(reader, check.id, _limit(request))
    return web.json_response([_alert_times(a) for a in alerts])


@authorized
async def test_channel(request: web.Request) -> web.Response:
    """Send a clearly marked test through the real outbox and report the first attempt's outcome."""
    rt = request.app[RUNTIME]
    name = request.match_info["name"]
    if name not in rt.config.channels:
        return json_error(404, f'no channel "{name}"')
    outbox_id, committed = rt.engine.send_test_alert(name)
    await committed
    reader = rt.reader
    assert reader is not None
    deadline = rt.clock.now() + rt.config.alerts.timeout + 5
    while True:
        alert = next(a for a in await queries.read_alerts(reader, None, 50) if a["id"] == outbox_id)
        if alert["attempt_log"] or rt.clock.now() > deadline:
            break
        await asyncio.sleep(0.05)
    return web.json_response(_alert_times(alert))


@authorized
async def pause_check(request: web.Request) -> web.Response:
    check = _check(request)
    await request.app[RUNTIME].engine.pause(check)
    return web.json_response(check_summary(check.config, check.state))


@authorized
async def resume_check(request: web.Request) -> web.Response:
    check = _check(request)
    await request.app[RUNTIME].engine.resume(check)
    return web.json_response(check_summary(check.config, check.state))


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="OK")


TIMER_STALE = 5.0  # seconds without a timer wake-up before readiness fails


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database takes writes and the deadline timer is running."""
    rt = request.app[RUNTIME]
    if rt.writer is None or rt.writer.failing:
        return web.Response(status=503, text="database writes are failing\n")
    if rt.clock.now() - rt.engine.timer_alive_at > TIMER_STALE:
        return web.Response(status=503, text="the deadline timer is not running\n")
    return web.Response(text="OK")


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "limit must be an integer"}', content_type="application/json"
        ) from None


def _alert_times(alert: dict[str, Any]) -> dict[str, Any]:
    attempts = [_times(a, "at") for a in alert["attempt_log"]]
    return {**_times(alert, "created_at", "done_at", "next_attempt_at"), "attempt_log": attempts}


def _times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{k: iso(row[k]) for k in keys}}
