"""Status badges: /badge/<badge-key>.svg and .json (a shields.io endpoint), no token needed; and
/b/<2|3>/<badge-key>.<svg|json|shields> in Healthchecks' shapes.

A badge key is derived one-way from the check's secret ping key (HMAC-SHA256), so publishing a
badge in a README reveals the state and the name, never a key that could send pings.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from html import escape

from aiohttp import web

from heartfly.core.config import CheckConfig
from heartfly.core.states import Status
from heartfly.server.engine import Check, Engine
from heartfly.web.runtime import RUNTIME

COLORS = {
    Status.UP: ("#3fb950", "brightgreen"),
    Status.RUNNING: ("#2f81f7", "blue"),
    Status.LATE: ("#d29922", "yellow"),
    Status.DOWN: ("#e5534b", "red"),
    Status.NEW: ("#8b949e", "lightgrey"),
    Status.PAUSED: ("#8b949e", "lightgrey"),
}
HEADERS = {"Cache-Control": "no-cache, max-age=0", "X-Content-Type-Options": "nosniff"}


def badge_key(check_key: str) -> str:
    digest = hmac.new(check_key.encode(), b"heartfly badge v1", hashlib.sha256).hexdigest()
    return digest[:24]


class CheckIndex:
    """A derived key (a badge key, a uuid) -> check name, rebuilt when a reload replaces the
    engine's check map: a lookup costs a dict access, not a derivation per check."""

    def __init__(self, derive: Callable[[CheckConfig], str]) -> None:
        self.derive = derive
        self.source: dict[str, Check] | None = None  # held, so its id cannot be reused
        self.keys: dict[str, str] = {}

    def lookup(self, engine: Engine, key: str) -> Check | None:
        if self.source is not engine.checks:
            self.keys = {self.derive(c.config): name for name, c in engine.checks.items()}
            self.source = engine.checks
        name = self.keys.get(key)
        return None if name is None else engine.checks.get(name)


def badge_of(check: CheckConfig) -> str:
    return badge_key(check.key)


INDEX = web.AppKey("badge_index", CheckIndex)  # set by create_app


def _find(request: web.Request) -> Check | None:
    app = request.app
    return app[INDEX].lookup(app[RUNTIME].engine, request.match_info["key"])


def message(check: Check) -> str:
    st = check.state
    if st.status is Status.DOWN and st.reason is not None:
        return f"down ({st.reason.value.replace('_', ' ')})"
    return st.status.value


async def svg(request: web.Request) -> web.Response:
    check = _find(request)
    if check is None:
        return web.Response(status=404, text="not found\n", headers=HEADERS)
    color = COLORS[check.state.status][0]
    return web.Response(body=render(check.name, message(check), color), content_type="image/svg+xml", headers=HEADERS)


async def shields(request: web.Request) -> web.Response:
    check = _find(request)
    if check is None:
        return web.json_response({"error": "no such badge"}, status=404, headers=HEADERS)
    body = {
        "schemaVersion": 1,
        "label": check.name,
        "message": message(check),
        "color": COLORS[check.state.status][1],
        "isError": check.state.status is Status.DOWN,
        "cacheSeconds": 60,
    }
    return web.json_response(body, headers=HEADERS)


# Healthchecks' badge words and shields.io colours (hc/api/views.py): a 2-state badge shows up or
# down, a 3-state one late too; new, running and paused are up.
_HC_COLORS = {"up": "success", "late": "important", "down": "critical"}
# Healthchecks serves its badges with CORS open (@cors("GET")): a status page's script may read the
# json one from another origin. The badge key shows the status to anyone already.
_HC_HEADERS = {**HEADERS, "Access-Control-Allow-Origin": "*"}


def _hc_status(check: Check, states: int) -> str:
    status = check.state.status
    if status is Status.DOWN:
        return "down"
    return "late" if status is Status.LATE and states == 3 else "up"


async def healthchecks(request: web.Request) -> web.Response:
    """`/b/<2|3>/<badge-key>.<svg|json|shields>`: a check's badge in Healthchecks' shapes, which
    the Healthchecks API's badge list points to (its clients read `json` as status and counts)."""
    check = _find(request)
    if check is None:
        return web.Response(status=404, text="not found\n", headers=_HC_HEADERS)
    status = _hc_status(check, int(request.match_info["states"]))
    fmt = request.match_info["fmt"]
    if fmt == "json":
        late, down = check.state.status is Status.LATE, status == "down"
        body = {"status": status, "total": 1, "grace": int(late), "down": int(down)}
        return web.json_response(body, headers=_HC_HEADERS)
    if fmt == "shields":
        body = {"schemaVersion": 1, "label": check.name, "message": status, "color": _HC_COLORS[status]}
        return web.json_response(body, headers=_HC_HEADERS)
    color = COLORS[{"up": Status.UP, "late": Status.LATE, "down": Status.DOWN}[status]][0]
    return web.Response(body=render(check.name, status, color), content_type="image/svg+xml", headers=_HC_HEADERS)


def _width(text: str) -> float:
    """Approximate Verdana 11px advance widths: enough to size the boxes."""
    total = 0.0
    for ch in text:
        if ch in "il.,:;|!'()[]j ":
            total += 3.6
        elif ch in "mwMW":
            total += 9.8
        elif ch.isupper() or ch in "_-":
            total += 7.4 if ch.isupper() else 5.6
        else:
            total += 6.6
    return total


def render(label: str, text: str, color: str) -> bytes:
    lw = round(_width(label) + 12)
    mw = round(_width(text) + 12)
    w = lw + mw
    lab, msg = escape(label), escape(text)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{lab}: {msg}">'
        f"<title>{lab}: {msg}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lw / 2}" y="15" fill="#010101" fill-opacity=".3">{lab}</text>'
        f'<text x="{lw / 2}" y="14">{lab}</text>'
        f'<text x="{lw + mw / 2}" y="15" fill="#010101" fill-opacity=".3">{msg}</text>'
        f'<text x="{lw + mw / 2}" y="14">{msg}</text></g></svg>'
    )
    return svg.encode()
