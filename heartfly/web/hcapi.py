"""Healthchecks' Management API under /api/v1/, /api/v2/ and /api/v3/, beside Heartfly's own.

Its routes end in a slash or address a check by uuid (or a read-only key's unique_key); Heartfly's
own /api/v1/ routes have no trailing slash and address a check by name. The few paths both could
mean (`/api/v1/checks`, `/api/v1/checks/<x>` and its /pause, /resume, /pings, /flips) go to this
API when the request carries `X-Api-Key`, or when <x> is a uuid that no check is named (see
`wants_healthchecks`).

Keys: `[server] hc_api_key_file` (read-write) and `hc_api_key_readonly_file`, 32 characters, as
Healthchecks requires. Status codes, JSON errors and CORS are Healthchecks' (hc/api/decorators.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from heartfly.core import hcshape
from heartfly.core.config import CheckConfig, ConfigError
from heartfly.core.hcshape import Shown, SpecError
from heartfly.core.patterns import UUID_RE
from heartfly.core.states import Status
from heartfly.core.stored_checks import StoredCheck, check_uuid, new_key
from heartfly.server.engine import Check
from heartfly.store.api import StoreError, StoreFault
from heartfly.web import api, auth, badges, control, hcfind, stored
from heartfly.web.pings import read_body
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

KEY_LENGTH = 32
BODY_CAP = 1024 * 1024  # bytes of a request body: what aiohttp allowed before the body had a time limit
PINGS_SHOWN = 100  # Healthchecks' default ping log limit
FLIPS_SHOWN = 1000  # flips answered at most


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    version: int
    readonly: bool
    data: dict[str, Any]  # the JSON body of a POST ({} for none)


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _cors(resp: web.StreamResponse, methods: tuple[str, ...]) -> web.StreamResponse:
    if not resp.prepared:  # a streamed list was sent with them
        resp.headers.update(_cors_headers(methods))
    return resp


def _cors_headers(methods: tuple[str, ...]) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "X-Api-Key",
        "Access-Control-Allow-Methods": ", ".join((*methods, "OPTIONS")),
        "Access-Control-Max-Age": "600",
    }


def _version(request: web.Request) -> int:
    return int(request.path[len("/api/v")])  # the routes are /api/v1/, /api/v2/, /api/v3/ only


def view(
    *methods: str, read: bool = False
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A Healthchecks API view: CORS on every answer, OPTIONS answered, the key checked. `read`:
    a read-only key may GET it (a read takes the key from the X-Api-Key header only; a write also
    from the JSON body's `api_key`, and needs the read-write key)."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            answer = await api.not_stored(_call(request, handler, methods, read and request.method == "GET"))
            return _cors(answer, methods)

        return wrapper

    return wrap


async def _call(request: web.Request, handler: Handler, methods: tuple[str, ...], read: bool) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204)
    if request.method not in methods:
        return web.Response(status=405)
    data: dict[str, Any] = {}
    if request.method == "POST":
        try:  # as a ping's body: bounded in time, a client gone or a body that cannot be read a 4xx
            raw, _ = await read_body(request, BODY_CAP, BODY_CAP)
        except web.HTTPException as exc:
            return _error(exc.status, (exc.text or exc.reason).strip())
        if raw:
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
                return _error(400, "could not parse request body")
            if not isinstance(parsed, dict):
                return _error(400, "json validation error: value is not an object")
            data = parsed
    if "X-Api-Key" in request.headers:
        key = request.headers["X-Api-Key"]
    else:
        key = "" if read else str(data.get("api_key", ""))
    if len(key) != KEY_LENGTH:
        return _error(401, "missing api key")
    rt = request.app[RUNTIME]
    given = key.encode("utf-8", "surrogatepass")
    if rt.hc_key is not None and hmac.compare_digest(given, rt.hc_key.encode()):
        readonly = False
    elif read and rt.hc_readonly_key is not None and hmac.compare_digest(given, rt.hc_readonly_key.encode()):
        readonly = True
    else:
        return _error(401, "wrong api key")  # a read-only key on a write too, as Healthchecks words it
    try:
        return await handler(request, Call(_version(request), readonly, data))
    except StoreFault:  # a statement the database refused, not an outage: a 500, as app._store_unavailable lets it
        raise
    except StoreError:
        return _error(503, "storage unavailable: try again")


def wants_healthchecks(request: web.Request) -> bool:
    """Whether a path both APIs have (/api/v1/checks[/<x>[/pause|/resume|/pings|/flips]]) is meant for this one."""
    if "X-Api-Key" in request.headers:
        return True
    if auth.bearer(request) is not None or auth.SESSION_COOKIE in request.cookies:
        return False  # Heartfly's own token or the dashboard's session (not a proxy's Basic login)
    info = request.match_info
    code = info.get("code", info.get("name"))
    if request.method in ("OPTIONS", "DELETE") or (
        request.method == "POST" and not request.path.endswith(("/pause", "/resume"))
    ):
        return True  # Heartfly's own API has no delete or update (the key may be in the body)
    if code is None:
        return False  # Heartfly's own list of checks (Healthchecks' is asked with X-Api-Key)
    looks = UUID_RE.fullmatch(code) or hcshape.UNIQUE_KEY_RE.fullmatch(code)
    return bool(looks) and request.app[RUNTIME].engine.lookup_name(code) is None


# ---- finding checks: heartfly.web.hcfind -------------------------------------------------------


def _title(request: web.Request, cfg: CheckConfig) -> str:
    found = request.app[RUNTIME].stored.get(cfg.name)
    return found.title if found is not None and found.title else cfg.name


def _shown(
    request: web.Request, call: Call, check: Check, n_pings: int, readonly: bool | None = None
) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    public_url = rt.config.server.public_url
    shown = Shown(
        public_url=public_url,
        version=call.version,
        readonly=call.readonly if readonly is None else readonly,
        display_name=_title(request, check.config),
        n_pings=n_pings,
        badge_url=f"{public_url}/badge/{badges.badge_key(check.config.key)}.svg",
        now=rt.clock.now(),
    )
    return hcshape.check_json(check.config, check.state, shown)


async def _counts(request: web.Request, check: Check | None = None) -> dict[int, int]:
    """The pings each check (or `check`) keeps; what a view shows is settled first."""
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    await rt.settled()
    return await rt.reader.count_pings(None if check is None else check.id)


async def _one(request: web.Request, call: Call, check: Check, status: int = 200) -> web.Response:
    counts = await _counts(request, check)
    return _json(_shown(request, call, check, counts.get(check.id, 0), readonly=False), status)


def _file_only(request: web.Request, check: Check) -> web.Response | None:
    """The operator's file is never written: its checks are read-only here (but pause and resume)."""
    if check.config.origin != "file":
        return None
    path = request.app[RUNTIME].config.path
    return _error(403, f"check {check.name} is defined in {path}; change it there (pause and resume work here)")


# ---- the views --------------------------------------------------------------------------------


@view("GET", "POST", read=True)
async def checks(request: web.Request, call: Call) -> web.StreamResponse:
    if request.method == "POST":
        async with request.app[control.CONTROL].api_writes:
            made = await _create(request, call)
        return await _answer(request, call, made)
    rt = request.app[RUNTIME]
    tags = request.query.getall("tag", [])
    slug = request.query.get("slug") or None  # an empty one filters nothing, as in Healthchecks
    counts = await _counts(request)
    await rt.engine.all_read()
    items = []
    # 100k checks are seconds of Python and 95 MB of JSON: made a part at a time, pings answered between.
    for n, c in enumerate(list(rt.engine.checks.values()), 1):
        if set(tags) <= set(c.config.tags) and (slug is None or c.name == slug):
            items.append(_shown(request, call, c, counts.get(c.id, 0)))
        if n % api.SUMMARIES_AT_A_TIME == 0:
            await asyncio.sleep(0)
    return await api.json_array(request, items, _cors_headers(("GET", "POST")), (b'{"checks": ', b"}"))


# What a change decided under Control.api_writes: an answer, or the check to show (and its status),
# shown once the lock is let go (counting its pings waits for the writer).
Decided = web.Response | tuple[Check, int]


async def _answer(request: web.Request, call: Call, decided: Decided) -> web.Response:
    return await _one(request, call, *decided) if isinstance(decided, tuple) else decided


async def _create(request: web.Request, call: Call) -> Decided:
    rt = request.app[RUNTIME]
    try:
        spec = hcshape.read_spec(call.data)
    except SpecError as exc:
        return _error(400, str(exc))
    for check in rt.engine.checks.values():
        if hcshape.matches(check.config, _title(request, check.config), spec):
            try:
                unchanged = not hcshape.changes(
                    check.config, _title(request, check.config), spec, _channel_names(request)
                )
            except SpecError as exc:
                return _error(400, str(exc))
            if unchanged:  # also a file's check: found as it is, nothing to write
                return check, 200
            return await _update(request, call, check, spec)
    if (left := hcfind.left_out_match(request, spec)) is not None:  # its update: it may fit afterwards
        return await _update_stored(request, call, left, spec)
    key = new_key()
    name = hcshape.new_name(spec, call.version, fallback=f"check-{key[:8]}")
    if stored.taken(rt, name):
        return _error(400, f"json validation error: slug {name!r} is taken by another check")
    return await _save(request, call, None, name, hcshape.new_table(key, rt.config.inherited), spec, status=201)


def _channel_names(request: web.Request) -> dict[str, str]:
    names = request.app[RUNTIME].config.channels
    return {**{hcshape.channel_id(n): n for n in names}, **{n: n for n in names}}


async def _save(
    request: web.Request,
    call: Call,
    old: str | None,
    name: str,
    table: dict[str, Any],
    spec: hcshape.Spec,
    status: int,
) -> Decided:
    """Store a made check (`old` None) or a changed one (`old` its name before)."""
    rt = request.app[RUNTIME]
    try:
        hcshape.check_name(name)
        table = hcshape.apply(table, spec, _channel_names(request), rt.config.inherited)
    except SpecError as exc:
        return _error(400, str(exc))
    before = rt.stored.get(old) if old is not None else None
    renamed = old is not None and old != name
    title = spec.fields.get("name", before.title if before else "")
    made = StoredCheck(
        name, before.origin if before else "api", table, before.created_at if before else rt.clock.now(), title
    )
    try:
        if old is not None and renamed:
            outcome = await stored.rename(request.app, old, made)
        else:
            outcome = await stored.put(request.app, made, new=old is None)
    except ConfigError as exc:
        return _error(400, "json validation error: " + "; ".join(exc.problems))
    if outcome == "exists":  # another request took the name first
        return _error(400, f"json validation error: slug {name!r} is taken by another check")
    check = rt.engine.lookup_name(name)
    if outcome == "gone" or check is None:  # deleted meanwhile
        raise web.HTTPNotFound(text="not found")
    if old is None:
        log.info("check %s: made through the API", name)
    return check, status


async def _update(request: web.Request, call: Call, check: Check, spec: hcshape.Spec) -> Decided:
    if (refused := _file_only(request, check)) is not None:
        return refused
    return await _update_stored(request, call, check.name, spec)


async def _update_stored(request: web.Request, call: Call, old: str, spec: hcshape.Spec) -> Decided:
    """A stored check's change; `old`, its name, may be one left out (an update may make it fit)."""
    found = request.app[RUNTIME].stored[old]
    name = old
    if call.version < 3 and "name" in spec.fields and "slug" not in spec.fields:
        name = old  # Heartfly keeps the name a check was made with: a new title does not rename it
    elif spec.fields.get("slug"):
        name = spec.fields["slug"]
        if name != old and stored.taken(request.app[RUNTIME], name):
            return _error(400, f"json validation error: slug {name!r} is taken by another check")
    return await _save(request, call, old, name, dict(found.table), spec, status=200)


@view("GET", "POST", "DELETE", read=True)
async def single(request: web.Request, call: Call) -> web.StreamResponse:
    code = hcfind.code(request)
    if request.method == "GET":
        check = hcfind.find(request, unique_key_too=True)
        counts = await _counts(request, check)
        return _json(_shown(request, call, check, counts.get(check.id, 0)))
    if hcshape.UNIQUE_KEY_RE.fullmatch(code) and not UUID_RE.fullmatch(code):
        return web.Response(status=405)
    async with request.app[control.CONTROL].api_writes:
        changed = await _change(request, call)
    return await _answer(request, call, changed)


async def _change(request: web.Request, call: Call) -> Decided:
    """An update (POST) or a delete of a check, under Control.api_writes."""
    try:
        check = hcfind.find(request)
    except hcfind.LeftOut as out:  # not served, but the API's to update until it fits, or to delete
        return await _change_left_out(request, call, out.name)
    if request.method == "DELETE":
        # A file's check under the uuid of a stored one it left out (`heartfly export` appended
        # under another name: its key clashes): the uuid deletes the API's copy, the only way
        # left, as the start's log line says, to clear it.
        if check.config.origin == "file" and (left := hcfind.left_out(request)) is not None:
            return await _change_left_out(request, call, left)
        if (refused := _file_only(request, check)) is not None:
            return refused
        shown = _shown(request, call, check, (await _counts(request, check)).get(check.id, 0), readonly=False)
        if not await stored.delete(request.app, check.name):
            raise web.HTTPNotFound(text="not found")  # deleted meanwhile
        return _json({**shown, "channels": ""})
    try:
        spec = hcshape.read_spec(call.data)
    except SpecError as exc:
        return _error(400, str(exc))
    return await _update(request, call, check, spec)


async def _change_left_out(request: web.Request, call: Call, name: str) -> Decided:
    if request.method == "DELETE":
        if not await stored.delete(request.app, name):
            raise web.HTTPNotFound(text="not found")  # deleted meanwhile
        return _json(
            {"slug": name, "uuid": hcfind.code(request), "channels": ""}
        )  # all it has to show: it was not served
    try:
        spec = hcshape.read_spec(call.data)
    except SpecError as exc:
        return _error(400, str(exc))
    return await _update_stored(request, call, name, spec)


@view("POST")
async def pause(request: web.Request, call: Call) -> web.StreamResponse:
    check = hcfind.find(request)
    # Healthchecks' pause has no end: one paused until a time (Heartfly's own API) loses its end
    if check.state.status is not Status.PAUSED or control.paused_until(request.app, check) is not None:
        await control.pause(request.app, check, None)
    return await _one(request, call, check)


@view("POST")
async def resume(request: web.Request, call: Call) -> web.StreamResponse:
    check = hcfind.find(request)
    if check.state.status is not Status.PAUSED:
        return web.Response(status=409, text="check is not paused")
    await control.resume(request.app, check)
    return await _one(request, call, check)


_PING_TYPES = {"success": "success", "start": "start", "fail": "fail", "log": "log", "progress": "log"}


@view("GET")
async def pings(request: web.Request, call: Call) -> web.StreamResponse:
    check = hcfind.find(request)
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    await rt.settled()
    base = f"{rt.config.server.public_url}/api/v{call.version}/checks/{check_uuid(check.config)}/pings"
    rows = await rt.reader.read_hc_pings(check.id, PINGS_SHOWN)
    items = [
        {
            "type": _PING_TYPES.get(row["kind"], "success"),
            "date": hcshape.iso(row["at"], micro=True),
            "n": row["id"],
            "scheme": "http",
            "remote_addr": row["source"],
            "method": row["method"],
            "ua": row["user_agent"],
            "rid": row["run_id"],
            "exit_status": row["exit_status"],
            "body_url": f"{base}/{row['id']}/body" if row["has_body"] else None,
            **({} if row["duration"] is None else {"duration": row["duration"]}),  # as Healthchecks: if timed
        }
        for row in rows
    ]
    return _json({"pings": items})


@view("GET")
async def ping_body(request: web.Request, call: Call) -> web.StreamResponse:
    check = hcfind.find(request)
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    row = await rt.reader.read_ping(int(request.match_info["n"]))
    if row is None or row["check_id"] != check.id or not row["body"]:
        raise web.HTTPNotFound(text="not found")
    # With its charset, as Healthchecks answers: text/plain without one is ISO-8859-1 to HTTP clients
    return web.Response(text=str(row["body"]), content_type="text/plain", charset="utf-8")


_UP = frozenset(hcshape.UP_STATES)


@view("GET", read=True)
async def flips(request: web.Request, call: Call) -> web.StreamResponse:
    check = hcfind.find(request, unique_key_too=True)
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    bounds: dict[str, int] = {}
    for key, top in (("seconds", 31_536_000), ("start", 10_000_000_000), ("end", 10_000_000_000)):
        if request.query.get(key):  # empty: not given, as Healthchecks' form reads it (not required)
            text = request.query[key]
            # isdecimal, not isdigit: "²" is a digit int() refuses; "١" is a number to Healthchecks'
            # form too. A length bound: int() refuses 4,300 digits and more.
            if not text.isdecimal() or len(text) > 11 or int(text) > top:
                return web.Response(status=400)
            bounds[key] = int(text)
    await rt.settled()
    now = rt.clock.now()
    since = max(bounds.get("start", 0), now - bounds["seconds"] if bounds.get("seconds") else 0)
    # Filtered by the query: the changes Healthchecks has no flip for (up <-> late, a routinely
    # late job's two a run) must not crowd its downs out, nor be read a page at a time.
    rows = await rt.reader.read_hc_flips(check.id, since, bounds.get("end", 1 << 62), FLIPS_SHOWN + 1)
    if len(rows) > FLIPS_SHOWN and (cut := math.floor(rows.pop()["at"])) == math.floor(rows[-1]["at"]):
        # Cut within a second, which the next ?end= (the oldest shown, whole seconds) would leave
        # out: that second's flips are left to it, whole (unless the thousand are all of it)
        rows = [row for row in rows if row["at"] >= cut + 1] or rows
    items = [{"timestamp": hcshape.iso(row["at"]), "up": int(row["new"] in _UP)} for row in rows]
    return _json({"flips": items})


@view("GET")
async def channels(request: web.Request, call: Call) -> web.StreamResponse:
    config = request.app[RUNTIME].config
    items = [{"id": hcshape.channel_id(name), "name": name, "kind": ch.type} for name, ch in config.channels.items()]
    return _json({"channels": items})


@view("GET", read=True)
async def badges_list(request: web.Request, call: Call) -> web.StreamResponse:
    """Heartfly's badges are per check, not per tag: each tag's entry is the badge of the first
    check with it (by name), and "*" the first check's; no check, no badges."""
    rt = request.app[RUNTIME]
    public_url = rt.config.server.public_url
    first: dict[str, CheckConfig] = {}
    for name in sorted(rt.engine.checks):
        cfg = rt.engine.checks[name].config
        for tag in ("*", *cfg.tags):
            first.setdefault(tag, cfg)
    result = {}
    for tag, cfg in first.items():
        key = badges.badge_key(cfg.key)
        result[tag] = {  # the 2-state badges show up or down, the 3-state ones late too
            f"{fmt}{suffix}": f"{public_url}/b/{states}/{key}.{fmt}"
            for fmt in ("svg", "json", "shields")
            for states, suffix in ((2, ""), (3, "3"))
        }
    return _json({"badges": result})


async def status(request: web.Request) -> web.Response:
    """Healthchecks' own health endpoint: OK while the database answers."""
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    try:
        await rt.reader.max_id("pings")
    except StoreError:
        return web.Response(status=500, text="database unavailable")
    return web.Response(text="OK")


# Healthchecks' routes below /api/vN. Each is served without its final slash too: Django redirects
# such a path to the one with the slash, and clients rely on that (the Ansible collection asks for
# `checks`, `channels`, `badges`, `checks/<uuid>/pings` and `checks/<uuid>/flips`).
_ROUTES: tuple[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]], ...] = (
    ("/checks/", checks),
    ("/checks/{code}", single),
    ("/checks/{code}/pause", pause),
    ("/checks/{code}/resume", resume),
    ("/checks/{code}/pings/", pings),
    ("/checks/{code}/pings/{n:[0-9]{1,18}}/body", ping_body),
    ("/checks/{code}/flips/", flips),
    ("/channels/", channels),
    ("/badges/", badges_list),
)


def add_routes(
    router: web.UrlDispatcher, own: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
) -> None:
    """Every version's routes. `own`: Heartfly's handlers for the paths both APIs have under /api/v1/
    (below it, a check named `{name}`: "/checks", "/checks/{name}/pings", ...)."""
    for v in (1, 2, 3):
        base = f"/api/v{v}"
        router.add_get(f"{base}/status/", status)
        router.add_get(f"{base}/status", status)
        for path, handler in _ROUTES:
            for each in dict.fromkeys((path, path.rstrip("/"))):
                shared = each.replace("{code}", "{name}")  # Heartfly's own handlers read {name}
                if v == 1 and shared in own:
                    router.add_route("*", base + shared, _either(handler, own[shared]))
                else:
                    router.add_route("*", base + each, handler)


def _either(
    theirs: Callable[[web.Request], Awaitable[web.StreamResponse]],
    mine: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await (theirs if wants_healthchecks(request) else mine)(request)

    return handler
