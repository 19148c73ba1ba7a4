"""The dashboard: server-rendered pages (jinja2, autoescaped), a login form, and form actions.

Everything a ping body, a check's description or an error contains reaches the page through
autoescaping, and the Content-Security-Policy allows no inline script at all, so a message
holding markup is shown as text and can never run.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from heartfly import __version__
from heartfly.core import localtime
from heartfly.core.assertions import Assertion
from heartfly.core.config import CheckConfig
from heartfly.core.states import Status
from heartfly.core.units import decimal, human_duration, metric_words
from heartfly.core.urls import crontab_lines, ping_urls, run_target
from heartfly.core.views import check_summary
from heartfly.server.engine import Check
from heartfly.store.api import StoreError
from heartfly.web import auth, badges, charts, control, metrics, paths, pings, record
from heartfly.web.runtime import RUNTIME
from heartfly.web.words import iso_z, percent, relative, schedule_words, utc

if TYPE_CHECKING:
    import jinja2

PAGE_SIZE = 100
PINGS_PER_PAGE = 25
# Characters of a ping's message on the check page: its start and its end, the rest said in
# numbers (the API has it all). A page of 25 messages of 100 kB was 6 MB of escaped HTML, rendered
# in the event loop every 10 s for every open tab; of 16 MiB (body_limit's most), a gigabyte.
MESSAGE_SHOWN = 10_000
# An alert's attempts shown on its check's page, the newest: a dead webhook is retried for a day
# (some 130 attempts), and the card is fetched again every 10 s. The rest are counted.
ATTEMPTS_SHOWN = 3
# Worst first: what an operator must look at comes to the top.
SEVERITY = {Status.DOWN: 0, Status.LATE: 1, Status.RUNNING: 2, Status.NEW: 3, Status.UP: 4, Status.PAUSED: 5}
ICONS = {"up": "●", "running": "▶", "late": "◷", "down": "✖", "new": "○", "paused": "❚❚"}
PAUSE_CHOICES = (
    ("", "until resumed"),
    ("1h", "for 1 hour"),
    ("8h", "for 8 hours"),
    ("1d", "for 1 day"),
    ("7d", "for 7 days"),
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@functools.cache
def _env() -> jinja2.Environment:
    import jinja2  # at the first page, not at every start (bench/start_instructions.py: imports -3.5 %)

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("heartfly.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        utc=utc, iso=iso_z, dur=human_duration, metric=metric_words, percent=percent, icons=ICONS, version=__version__
    )
    return env


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    rt = request.app[RUNTIME]
    now = rt.clock.now()
    level = auth.access(request)
    context.setdefault("title", "Heartfly")
    template = _env().get_template(name)
    tz = display_zone(request)
    html = template.render(
        now=now,
        rel=lambda ts: relative(ts, now),
        lasted=lambda ts: human_duration(max(0, round(now - ts))),  # "down for 2 min": to the second
        stamp=lambda ts: localtime.stamp(ts, now, tz),
        utc=lambda ts: localtime.full(ts, tz),  # the name the templates know: the time in the page's zone
        zone_name=localtime.name_of(tz),
        browser_zone=request.cookies.get(TZ_COOKIE) is not None,
        maintenance=_maintenance(request, now),
        level_shows=level is not auth.Access.NONE,
        admin=level is auth.Access.ADMIN,
        signed_in=auth.session_of(request) is not None,
        public=rt.config.server.public,
        cluster=rt.cluster_status(),
        csrf=auth.csrf_token(request),
        csrf_field=auth.CSRF_FIELD,
        root=paths.root(request),
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)


TZ_COOKIE = "hf_tz"  # a browser's own zone, set by its "use my time zone" link (heartfly.js)


def display_zone(request: web.Request) -> tzinfo:
    """The zone a page shows times in: the browser's own if it asked (and this system knows it),
    else [server] display_timezone."""
    asked = request.cookies.get(TZ_COOKIE)
    if asked and localtime.known(asked):
        return localtime.zone(asked)
    return localtime.zone(request.app[RUNTIME].config.server.display_timezone)


def _maintenance(request: web.Request, now: float) -> list[dict[str, Any]]:
    """The maintenance windows under way: each one's end and how many checks it silences."""
    rt = request.app[RUNTIME]
    shown = []
    for window in rt.config.maintenance:
        span = window.active(now)
        if span is not None:
            count = sum(1 for c in rt.config.checks.values() if window.covers(c))
            every = not window.checks and not window.tags
            shown.append({"name": window.name, "end": span[1], "alerts": window.alerts, "count": count, "every": every})
    return shown


def _viewer(request: web.Request) -> auth.Access:
    """Who is looking; a visitor who may not is sent to the login form (or told why not)."""
    level = auth.access(request)
    if level is auth.Access.NONE:
        if request.app[RUNTIME].token is None:
            raise _stop(
                render(
                    request,
                    "message.html",
                    403,
                    heading="The dashboard is disabled",
                    text="Set server.api_token_file in the config (or public = true) and reload.",
                )
            )
        raise auth.login_redirect(request)
    return level


def _stop(response: web.Response) -> web.HTTPException:
    """Return a rendered page from deep inside a handler."""
    exc = web.HTTPException(text=response.text, content_type="text/html", headers=SECURITY_HEADERS)
    exc.set_status(response.status)
    return exc


def _row(app: web.Application, check: Check) -> dict[str, Any]:
    s = check_summary(check.config, check.state)
    st = check.state
    return {
        "name": check.name,
        "description": check.config.description,
        "state": s["state"],
        "reason": (s["reason"] or "").replace("_", " "),
        "since": st.changed_at,
        "last_ping_at": st.last_ping_at,
        "last_ping_kind": s["last_ping_kind"],
        "due_at": None if st.status in (Status.PAUSED, Status.DOWN) else _due(check),
        "schedule": schedule_words(check.config),
        "paused_until": control.paused_until(app, check),
        "last_duration": st.last_duration,
        "open_runs": s["open_runs"],
        "after": check.config.after,
        "after_trigger": check.config.after_trigger,  # the upstream's event that arms it: "start" or "success"
        "tags": check.config.tags,
    }


def _due(check: Check) -> float | None:
    """The next run's due time; a pipeline step has none of its own until its upstream starts.
    Either with the downtime a restart extended it by (the slack), as it fires."""
    st = check.state
    due = st.next_due()
    return due if due is not None else None if st.step_due is None else st.step_due + st.slack


def _open_starts(check: Check) -> list[float]:
    return [run.started_at for run in check.state.runs.values()]


def _judged_by(check: Check) -> tuple[Assertion, ...]:
    """The assertions a lone success ping is shown against; a fan-in's are judged per run, not per ping."""
    return () if check.config.expect is not None else check.config.assertions


async def _events(request: web.Request, check: Check, runs: int) -> list[dict[str, Any]]:
    reader = request.app[RUNTIME].reader
    assert reader is not None
    return charts.events(
        await reader.read_runs(check.id, runs),
        _lone_ends(check, await reader.read_end_pings(check.id, runs, metrics=bool(_judged_by(check)))),
        await reader.read_misses(check.id, runs),
        _open_starts(check),
        request.app[RUNTIME].clock.now(),
        _judged_by(check),
    )


def _lone_ends(check: Check, ends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The end pings a chart may draw as runs of their own: a fan-in's successes are its members'
    reports (its batches are its runs), not one run each; its failures stay."""
    return ends if check.config.expect is None else [e for e in ends if e["kind"] != "success"]


async def _timelines(request: web.Request, checks: list[Check]) -> list[charts.Chart]:
    """The index's strips, one per check, from one batched read (not three queries per row)."""
    rt = request.app[RUNTIME]
    assert rt.reader is not None
    judged = {c.id for c in checks if _judged_by(c)}  # the others' end pings are read without their metrics
    recent = await rt.reader.read_recent([c.id for c in checks], charts.TIMELINE_SLOTS, judged)
    now = rt.clock.now()
    tz = display_zone(request)
    strips = []
    for c in checks:
        r = recent[c.id]
        events = charts.events(r.runs, _lone_ends(c, r.ends), r.misses, _open_starts(c), now, _judged_by(c))
        strips.append(charts.timeline(events, tz=tz))
    return strips


async def index(request: web.Request) -> web.Response:
    _viewer(request)
    engine = request.app[RUNTIME].engine
    wanted = request.query.get("state", "")
    if wanted and wanted not in {s.value for s in SEVERITY}:
        known = ", ".join(s.value for s in SEVERITY)
        return render(request, "message.html", 400, heading="No such state", text=f"Filter by one of: {known}.")
    q = request.query.get("q", "").strip()
    tag = request.query.get("tag", "")
    await engine.all_read()
    everything = list(engine.checks.values())
    needle = q.lower()
    found = [
        c
        for c in everything
        if (not needle or needle in c.name.lower() or needle in c.config.description.lower())
        and (not tag or tag in c.config.tags)
    ]
    counts = {s.value: 0 for s in SEVERITY}  # of the checks searched for: a chip's count is what it shows
    for c in found:
        counts[c.state.status.value] += 1
    shown = [c for c in found if not wanted or c.state.status.value == wanted]
    shown.sort(key=lambda c: (SEVERITY[c.state.status], c.name))
    page = max(1, decimal(request.query.get("page", "1"), digits=9) or 1)
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(page, pages)
    on_page = shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [
        _row(request.app, c) | {"timeline": t} for c, t in zip(on_page, await _timelines(request, on_page), strict=True)
    ]

    def link(**changes: Any) -> str:
        params = {"state": wanted, "q": q, "tag": tag, "page": page} | changes
        query = urlencode({k: v for k, v in params.items() if v not in ("", None, 1)})
        return paths.here(request, "/" + (f"?{query}" if query else ""))

    return render(
        request,
        "index.html",
        pending=await _pending(request),
        given_up=await _given_up(request),
        rows=rows,
        counts=counts,
        total=len(everything),
        found=len(found),
        matching=len(shown),
        state=wanted,
        q=q,
        tag=tag,
        page=page,
        pages=pages,
        link=link,
        states=list(counts),
    )


async def _given_up(request: web.Request) -> list[tuple[str, float]]:
    """The channels (in the file) whose last alert was given up, failed for good (a revoked
    webhook: 404) or expired, and none sent there since, with when: none of it waits, so `pending`
    does not say it. From the outbox: the same after a restart and on every node of a cluster.
    Left out when it cannot be read now, as `pending` is."""
    rt = request.app[RUNTIME]
    if rt.reader is None:
        return []
    try:
        found = await metrics.bounded(rt.reader.read_given_up_channels(sorted(rt.config.channels)))
    except (StoreError, TimeoutError):
        return []
    return sorted(found.items())


async def _pending(request: web.Request) -> int | None:
    """The alerts waiting to be delivered: a dead channel's downs are told to nobody, which the
    states alone do not show. None when the count cannot be read now (the page goes without it)."""
    reader = request.app[RUNTIME].reader
    if reader is None:
        return None
    try:
        return await metrics.bounded(reader.count_pending_alerts())
    except (StoreError, TimeoutError):
        return None


def _find(request: web.Request) -> Check:
    check = request.app[RUNTIME].engine.lookup_name(request.match_info["name"])
    if check is None:
        raise _stop(
            render(
                request,
                "message.html",
                404,
                heading="No such check",
                text=f'There is no check named "{request.match_info["name"]}" in the config.',
            )
        )
    return check


def _cursor(request: web.Request, name: str) -> int | None:
    value = decimal(request.query.get(name, ""))
    return value if value is not None and 0 < value < 2**62 else None


async def check_page(request: web.Request) -> web.Response:
    level = _viewer(request)
    rt = request.app[RUNTIME]
    reader = rt.reader
    assert reader is not None
    name = request.match_info["name"]
    if rt.engine.lookup_name(name) is None and await reader.read_check_ids([name]):
        # Removed from the file (or renamed): its alerts' links lead here, and its history is kept.
        text = f"{name} is no longer in the config; its history is kept, and"
        command = (f"heartfly history {name}", "shows it.")
        raise _stop(render(request, "message.html", 404, heading="No such check", text=text, command=command))
    check = _find(request)
    cfg = check.config
    row = _row(request.app, check)
    pings_before = _cursor(request, "pings_before")
    await rt.settled()
    # One more than a page: is there an older page?
    pings = await reader.read_pings(check.id, PINGS_PER_PAGE + 1, pings_before, MESSAGE_SHOWN)
    older = len(pings) > PINGS_PER_PAGE
    pings = pings[:PINGS_PER_PAGE]
    all_flips = request.query.get("flips") == "all"  # else without the up <-> running of healthy runs
    flips = await reader.read_flips(check.id, 15, routine=all_flips)
    alerts = [_last_attempts(a) for a in await reader.read_alerts(check.id, 10)]
    items = await _events(request, check, 60)
    windows = await record.read(rt, check)
    upstream_name = cfg.after
    upstream = rt.engine.lookup_name(upstream_name) if upstream_name else None
    downstream = [c for c in rt.engine.checks.values() if c.config.after == check.name]
    key = badges.badge_key(cfg.key)
    base = rt.config.server.public_url
    return render(
        request,
        "check.html",
        title=f"{check.name} · Heartfly",
        check=row,
        cfg=cfg,
        limits=_limits(cfg),
        chart=charts.durations(items, cfg.max_runtime, tz=display_zone(request)),
        runs=list(reversed(items))[:8],
        timed=cfg.expect is not None or charts.timed(items),  # a fan-in's batches are its runs, started or not
        outcomes=charts.OUTCOMES,
        pings=pings,
        older_pings=f"?pings_before={pings[-1]['id']}{'&flips=all' if all_flips else ''}" if older else None,
        newest_pings=pings_before is not None,
        flips=flips,
        record=windows,
        all_flips=all_flips,
        alerts=alerts,
        upstream=_row(request.app, upstream) if upstream else None,
        upstream_name=upstream_name,
        downstream=[_row(request.app, c) for c in downstream],
        badge_svg=f"{base}/badge/{key}.svg",
        badge_json=f"{base}/badge/{key}.json",
        badge_path=paths.here(request, f"/badge/{key}.svg"),
        check_url=f"{base}/checks/{check.name}",
        urls=ping_urls(rt.config, cfg) if level is auth.Access.ADMIN else [],
        crontab=crontab_lines(rt.config, cfg) if level is auth.Access.ADMIN else [],
        run_by_url=run_target(rt.config, cfg) != cfg.name,
        pause_choices=PAUSE_CHOICES,
        passed=request.query.get("passed") if request.query.get("passed") in ("pause", "resume") else None,
    )


def _last_attempts(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert with its newest attempts only, and how many came before them (`earlier`)."""
    log = alert["attempt_log"]
    return alert | {"attempt_log": log[-ATTEMPTS_SHOWN:], "earlier": max(0, len(log) - ATTEMPTS_SHOWN)}


def _limits(cfg: CheckConfig) -> list[tuple[str, str]]:
    """The check's rules in words, for the summary card."""
    out = [("Grace", human_duration(cfg.grace) if cfg.grace else "none")] if cfg.graced() else []
    for value, label in (
        (cfg.max_runtime, "Max runtime"),
        (cfg.min_runtime, "Min runtime"),
        (cfg.stall, "Stalls after"),
        (cfg.repeat, "Reminds every"),
    ):
        if value:
            out.append((label, human_duration(value)))
    if cfg.expect:
        out.append(("Fan-in", f"{cfg.expect} successes per run"))
    if cfg.channels:
        out.append(("Alerts to", ", ".join(cfg.channels)))
    if cfg.origin != "file":  # kept in the database: `heartfly export` moves it into the file
        out.append(("Defined", "by a ping (auto-provisioned)" if cfg.origin == "auto" else "through the API"))
    return out


async def _posted(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    try:
        if request.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise ValueError("a compressed form")  # no browser sends one; aiohttp no longer inflates it
        async with asyncio.timeout(pings.BODY_TIMEOUT):
            return await request.post()
    except TimeoutError:  # a client dribbling its form: answered, not an open connection for ever
        raise pings.body_timeout() from None
    except ConnectionResetError:
        raise pings.went_away(request) from None
    # A Content-Encoding the body does not match; bytes not in its charset, or no such charset;
    # multipart without a boundary.
    except (web.RequestPayloadError, ValueError, LookupError):
        raise _stop(
            render(request, "message.html", 400, heading="Bad request", text="The form could not be read.")
        ) from None


async def _form_action(request: web.Request) -> tuple[Check, dict[str, str]]:
    """A dashboard form post: signed in, with this session's CSRF token, from this site."""
    form = {k: str(v) for k, v in (await _posted(request)).items()}
    if auth.access(request) is not auth.Access.ADMIN or auth.session_of(request) is None:
        raise auth.login_redirect(request, back=f"/checks/{quote(request.match_info['name'], safe='')}")
    if not auth.csrf_ok(request, form.get(auth.CSRF_FIELD)):
        raise _stop(
            render(
                request,
                "message.html",
                403,
                heading="Request refused",
                text="The form was stale or came from another site. Reload the page and try again.",
            )
        )
    return _find(request), form


async def pause(request: web.Request) -> web.Response:
    check, form = await _form_action(request)
    until = None
    if form.get("until"):
        try:
            until = control.parse_until(form["until"], request.app[RUNTIME].clock.now())
        except ValueError as exc:
            raise _stop(render(request, "message.html", 400, heading="Cannot pause", text=str(exc))) from None
    passed = _passed(request, "pause")
    await control.pause(request.app, check, until)
    return _redirect(request, f"/checks/{check.name}{passed}")


async def resume(request: web.Request) -> web.Response:
    check, _ = await _form_action(request)
    passed = _passed(request, "resume")
    await control.resume(request.app, check)
    return _redirect(request, f"/checks/{check.name}{passed}")


def _passed(request: web.Request, action: str) -> str:
    """The check page's query after a pause or resume given to a cluster's standby, which passes it
    to the leader: its page shows the check as it was till then, and says so (else the operator,
    seeing it up with its Pause button, takes the pause for lost)."""
    return f"?passed={action}" if control.passed_on(request.app) else ""


async def login_form(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return render(
        request, "login.html", next=auth.safe_next(request.query.get("next")), error=None, disabled=rt.token is None
    )


async def login(request: web.Request) -> web.Response:
    form = await _posted(request)
    target = auth.safe_next(str(form.get("next", "/")))
    given = str(form.get("token", ""))
    disabled = request.app[RUNTIME].token is None
    if not auth.same_origin(request):
        error = "Sign-in refused: the form was sent from another site (its Origin is not this server)."
        return render(request, "login.html", 403, next=target, error=error, disabled=disabled)
    if not auth.token_matches(request, given):
        return render(request, "login.html", 401, next=target, error="That is not the API token.", disabled=disabled)
    response = _redirect(request, target)
    auth.set_session(request, response)
    return response


async def logout(request: web.Request) -> web.Response:
    form = await _posted(request)
    # Another site's form comes without the (SameSite) cookie, but the browser would still take the
    # answer's deletion of it: checked apart from the CSRF token, which only a session's form has.
    if not auth.same_origin(request) or (
        auth.session_of(request) is not None and not auth.csrf_ok(request, str(form.get(auth.CSRF_FIELD, "")))
    ):
        raise _stop(render(request, "message.html", 403, heading="Request refused", text="Reload and try again."))
    response = _redirect(request, "/login")
    auth.clear_session(response)
    return response


def _redirect(request: web.Request, target: str) -> web.Response:
    """To an app path, relative to this request's (paths): right below a proxy's path as well."""
    return web.Response(status=303, headers={"Location": paths.here(request, target), **SECURITY_HEADERS})
