"""create_app(): routes plus the resources they need, started and stopped in dependency order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from heartfly import __version__
from heartfly.core import hcshape
from heartfly.core.clock import Clock, SystemClock
from heartfly.core.config import Config
from heartfly.core.dburl import PostgresDatabase
from heartfly.core.stored_checks import check_uuid
from heartfly.notify import proxy
from heartfly.notify.dispatcher import STOP_GRACE, Dispatcher
from heartfly.server import heartbeat, housekeeping, selfwatch
from heartfly.server.engine import Engine
from heartfly.server.tasks import watched
from heartfly.store import backend
from heartfly.store.api import StoreError, StoreFault
from heartfly.web import (
    api,
    badges,
    control,
    dashboard,
    hc_openapi,
    hcapi,
    hcfind,
    metrics,
    openapi,
    pings,
    provision,
    stored,
)
from heartfly.web.api import Handler
from heartfly.web.runtime import RUNTIME, Runtime

log = logging.getLogger(__name__)


def create_app(config: Config, *, clock: Clock | None = None) -> web.Application:
    # Bodies are inflated where they are read (pings.read_body), which checks that a gzip body ends
    # where its stream does: aiohttp's inflating took one cut short for a whole one.
    app = web.Application(
        middlewares=[_unread_compressed_body, _store_unavailable], handler_args={"auto_decompress": False}
    )
    app[RUNTIME] = Runtime(config=config, clock=clock or SystemClock())
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_engine)
    app.cleanup_ctx.append(_dispatcher)
    app.cleanup_ctx.append(control.control_context)
    app[pings.PING_COUNTS] = Counter(dict.fromkeys(pings.OUTCOMES, 0))
    app[control.CONTROL] = control.Control()
    app[badges.INDEX] = badges.CheckIndex(badges.badge_of)
    app[hcfind.UUIDS] = badges.CheckIndex(check_uuid)
    app[hcfind.UNIQUE_KEYS] = badges.CheckIndex(hcshape.unique_key)
    app[provision.AT_CAP] = [False]
    r = app.router
    r.add_route("*", "/ping/{tail:.+}", pings.ping)
    r.add_route("*", "/api/v1/heartbeat/{key}", pings.heartbeat)
    # Healthchecks' API: these paths below /api/v1 are shared with Heartfly's own
    own = {"/checks": _only("GET", api.list_checks), "/checks/{name}": _only("GET", api.get_check),
           "/checks/{name}/pause": _only("POST", api.pause_check),
           "/checks/{name}/resume": _only("POST", api.resume_check),
           "/checks/{name}/pings": _only("GET", api.check_pings),
           "/checks/{name}/flips": _only("GET", api.check_flips)}  # fmt: skip
    hcapi.add_routes(r, own)
    r.add_get("/api/v1/checks/{name}/alerts", api.check_alerts)
    r.add_post("/api/v1/channels/{name}/test", api.test_channel)
    r.add_get("/api/v1/checks/{name}/runs", api.check_runs)
    r.add_get("/api/v1/checks/{name}/record", api.check_record)
    r.add_post("/api/v1/reload", api.reload_config)
    r.add_get("/api/v1/downtimes", api.list_downtimes)
    r.add_get("/api/v1/openapi.json", openapi.document)
    r.add_get("/api/v3/openapi.json", hc_openapi.document)  # Healthchecks' Management API
    r.add_route("*", "/api/v1/{tail:.*}", api.not_found)  # last: JSON 404/405 for the rest of /api/v1
    r.add_get("/livez", api.livez)
    r.add_get("/readyz", api.readyz)
    r.add_get("/metrics", metrics.metrics)
    r.add_get("/badge/{key}.svg", badges.svg)
    r.add_get("/badge/{key}.json", badges.shields)
    r.add_get("/b/{states:[23]}/{key}.{fmt:svg|json|shields}", badges.healthchecks)
    r.add_get("/", dashboard.index)
    r.add_get("/checks/{name}", dashboard.check_page)
    r.add_post("/checks/{name}/pause", dashboard.pause)
    r.add_post("/checks/{name}/resume", dashboard.resume)
    r.add_get("/login", dashboard.login_form)
    r.add_post("/login", dashboard.login)
    r.add_post("/logout", dashboard.logout)
    r.add_static("/static/", Path(__file__).parent / "static", append_version=False)
    return app


@web.middleware
async def _unread_compressed_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A compressed body the handler left unread (a 405, a 413, an API call that takes no body)
    is not drained after the answer: the answer is sent and the connection closed instead. (When
    aiohttp inflated bodies itself, a drain inflated all of it without once yielding to the event
    loop: 2 MB of gzip are 2 GB of zeros. Now only read_body inflates, up to its cap.)"""
    if "Content-Encoding" not in request.headers:  # nearly every request: one lookup
        return await handler(request)
    try:
        resp = await handler(request)
    except web.HTTPException as exc:  # as aiohttp answers one
        resp = web.Response(status=exc.status, reason=exc.reason, text=exc.text, headers=exc.headers)
    if not request.content.is_eof():
        try:
            await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:  # the client went away (a curl killed mid-body): nobody to tell, no server error
            log.debug("%s %s: the client went away before its answer", request.method, pings.route_of(request))
        request.protocol.force_close()
        if isinstance(resp, web.FileResponse):  # aiohttp prepares what it is handed again: a file's
            return _Sent(status=resp.status, reason=resp.reason)  # would be sent again, to no connection
    return resp


@web.middleware
async def _store_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A read the database cannot answer (PostgreSQL restarting or out of reach) is a 503 to try
    again, as a refused ping's is, not a 500 with a traceback logged for every request. The
    writer and the lease already log the outage. Not a statement the database refused (a query's
    mistake, a right taken away): no outage that passes, so a 500 and its traceback in the log."""
    try:
        return await handler(request)
    except StoreFault:
        raise
    except StoreError as exc:
        log.debug("%s %s: %s", request.method, pings.route_of(request), exc)
        if request.path.startswith("/api/"):
            return api.json_error(503, "storage unavailable: try again")
        return web.Response(status=503, text="storage unavailable: try again\n")


class _Sent(web.StreamResponse):
    """Handed back to aiohttp for an answer already sent (and logged with its status): nothing to send."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _only(method: str, handler: Handler) -> Handler:
    """Heartfly's own handler for one method of a path it shares with Healthchecks' API; the JSON 405 for others."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.method != method:
            allow = f"{method}, HEAD" if method == "GET" else method
            if not (method == "GET" and request.method == "HEAD"):
                return api.json_error(405, f"use {allow}", Allow=allow)
        return await handler(request)

    return dispatch


async def _database(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    server = rt.config.server
    rt.load_keys(rt.config)
    store = await backend.open_backend(server)
    try:
        store.writer.start()
        rt.writer, rt.reader = store.writer, store.reader
        await stored.load(rt)
        yield
    finally:
        await store.close()


async def _engine(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    assert rt.writer is not None and rt.reader is not None
    if isinstance(rt.config.server.database, PostgresDatabase):
        async with _cluster(app):
            yield
        return
    engine = Engine(rt.config, rt.clock, rt.writer)
    engine.read_after = rt.answering
    await engine.load(rt.reader)
    rt._engine = engine
    tasks = [
        watched(engine.run_timer(), "heartfly-timer", rt.task_died),
        watched(housekeeping.run(engine, reader=rt.reader), "heartfly-housekeeping", rt.task_died),
    ]
    yield
    await _cancel(tasks)
    await housekeeping.mark_stopped(engine, clean=rt.died is None)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the long-lived tasks and wait for them; one that ended with an error has been logged
    (tasks.watched) and is not raised again here, which would fail the stop's commit."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    assert rt.writer is not None and rt.reader is not None
    if rt.cluster is not None:  # the leader's dispatcher is the cluster's, one per term
        yield
        return
    async with _session() as session:
        dispatcher = Dispatcher(
            rt.config, rt.clock, rt.writer, rt.reader, session, names=rt.engine.name_of, outcomes=rt.alert_outcomes
        )
        rt.dispatcher = dispatcher
        rt.engine.on_alerts = dispatcher.wake
        tasks = [
            watched(dispatcher.run(), "heartfly-dispatcher", rt.task_died),
            watched(heartbeat.run(lambda: rt.config, lambda: rt.engine, session), "heartfly-heartbeat", rt.task_died),
            watched(
                selfwatch.run(lambda: rt.config, lambda: rt.engine, session, rt.clock),
                "heartfly-selfwatch",
                rt.task_died,
            ),
        ]
        yield
        await _cancel(tasks)
        await dispatcher.stop(STOP_GRACE)


def _session() -> aiohttp.ClientSession:
    """The alert channels' HTTP client."""
    # No connection cap in the pool (aiohttp's default is 100, shared by every channel, so hung
    # webhooks could take every connection). Each channel's semaphore ([alerts] concurrency)
    # bounds its own requests, so the total stays at most channels x concurrency; a per-host cap
    # would let one hung channel starve another on the same host (two Slack webhooks).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    proxy.with_schemes()
    # HTTP(S)_PROXY and NO_PROXY are read per request (notify.proxy), not by trust_env: that one
    # also sends the user's ~/.netrc logins to every webhook. No cookie jar: a cookie one receiver
    # sets (a tenant's session, a CDN's) went with every later request to its host, another
    # channel's (another tenant's) and the heartbeat URL's too.
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": f"heartfly/{__version__}"}
    )


@contextlib.asynccontextmanager
async def _cluster(app: web.Application) -> AsyncIterator[None]:
    """A PostgreSQL database: this node leads or stands by (server/cluster.py), and the engine
    and dispatcher the handlers see are the ones of its current role."""
    from heartfly.server.cluster import Node  # the PostgreSQL driver: only for a postgresql:// database

    rt = app[RUNTIME]
    assert rt.writer is not None and rt.reader is not None

    def publish(engine: Engine, dispatcher: Dispatcher | None) -> None:
        rt._engine, rt.dispatcher = engine, dispatcher

    async with _session() as session:
        node = Node(
            lambda: rt.config,
            rt.clock,
            rt.reader,
            rt.writer,
            session,
            publish,
            lambda: control.rearm(app),
            rt.task_died,
            rt.alert_outcomes,
        )
        await node.start()
        rt.cluster = node
        tasks = [
            watched(node.run(), "heartfly-cluster", rt.task_died),
            watched(stored.follow(app), "heartfly-stored-checks", rt.task_died),
        ]
        try:
            yield
        finally:
            await node.stop_sending(STOP_GRACE)
            await _cancel(tasks)
            await node.stop(clean=rt.died is None)
