"""Who may see and do what: the API token as a Bearer header or as a signed session cookie.

The cookie holds no secret: it is `<issued>.<HMAC(token, issued)>`, so changing the token file
(and reloading) signs everyone out, and nothing server-side needs storing. Requests that change
state and arrive with the cookie must also carry a CSRF token derived from that cookie (a form
field or the X-CSRF-Token header) and must not come from another site; Bearer requests need
neither, since browsers never attach that header on their own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from enum import IntEnum
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web
from yarl import URL

from heartfly.core.config_secrets import MIN_TOKEN
from heartfly.core.proxies import trusted_peer
from heartfly.core.units import is_decimal
from heartfly.web import paths
from heartfly.web.runtime import RUNTIME

SESSION_COOKIE = "heartfly_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 30 * 86400.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Access(IntEnum):
    NONE = 0
    READ = 1  # `public = true`: reads without the token
    ADMIN = 2  # the token: everything


def _mac(token: str, purpose: str, value: str) -> str:
    digest = hmac.new(token.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(token: str, now: float) -> str:
    issued = str(int(now))
    return f"{issued}.{_mac(token, 'session', issued)}"


def session_ok(token: str, value: str, now: float) -> bool:
    issued, _, mac = value.partition(".")
    if not is_decimal(issued) or not hmac.compare_digest(_raw(mac), _mac(token, "session", issued).encode()):
        return False
    return now - SESSION_TTL < int(issued) <= now + 300


def csrf_for(token: str, session: str) -> str:
    return _mac(token, "csrf", session)


def bearer(request: web.Request) -> str | None:
    """The Bearer token the request carries; None without one. Another scheme is not ours: a
    reverse proxy that asks for Basic auth passes the browser's login on with every request, which
    must neither shadow the session cookie nor count as a wrong token."""
    given = request.headers.get("Authorization")
    if given is None:
        return None
    scheme, _, value = given.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _raw(given: str) -> bytes:
    """Client text as bytes for a comparison: aiohttp hands bytes that are not UTF-8 over as lone
    surrogates, which a plain encode() refuses (a 500, where a wrong token is a 401)."""
    return given.encode("utf-8", "surrogatepass")


def _token_matches(token: str, given: str) -> bool:
    return hmac.compare_digest(_raw(given), token.encode())


def session_of(request: web.Request) -> str | None:
    """The request's valid session cookie, if any."""
    rt = request.app[RUNTIME]
    value = request.cookies.get(SESSION_COOKIE)
    if rt.token is None or value is None or not session_ok(rt.token, value, rt.clock.now()):
        return None
    return value


def access(request: web.Request) -> Access:
    rt = request.app[RUNTIME]
    given = bearer(request)
    if rt.token is not None and given is not None and _token_matches(rt.token, given):
        return Access.ADMIN
    if given is None and session_of(request) is not None:
        return Access.ADMIN
    return Access.READ if rt.config.server.public else Access.NONE


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request came from another site (defence in depth)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    return origin is None or _ours(request, origin)


def _ours(request: web.Request, url: str) -> bool:
    """Whether a URL the browser sent (Origin, Referer) names this server; a malformed one does not."""
    given = _site(url)
    if given is None:
        return False
    # The Host read with the URL's scheme: a proxy may pass on "hb.example.com:443" (nginx's
    # `Host $host:$server_port`), which is https://hb.example.com and not http://hb.example.com.
    scheme = urlsplit(url).scheme
    host = _site(f"{scheme}://{request.host}" if scheme else f"//{request.host}")
    return given in (host, _site(request.app[RUNTIME].config.server.public_url))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _site(url: str) -> str | None:
    """A URL's host and port as a browser's Origin says them: the host in lower case, an IDN in
    punycode and an IPv6 address in its shortest form (public_url may say "https://bücher.example"
    or "http://[0:0:0:0:0:0:0:1]:8765"), the port left out if it is its scheme's own (or
    "https://HB.example.com:443"); None for a malformed URL (e.g. "http://[::1": urlsplit refuses
    an unclosed IPv6 bracket) or one without a host."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    with contextlib.suppress(ValueError):  # (a host yarl cannot spell is compared as given)
        host = URL.build(scheme="http", host=host).raw_host or host  # as browsers: UTS 46, RFC 5952
    host = f"[{host}]" if ":" in host else host
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def csrf_ok(request: web.Request, given: str | None) -> bool:
    """A cookie-borne write carries the CSRF token of its session and comes from this site."""
    rt = request.app[RUNTIME]
    if bearer(request) is not None:
        return True  # access() already checked it; browsers never send it by themselves
    session = session_of(request)
    if session is None or rt.token is None or not given or not same_origin(request):
        return False
    return hmac.compare_digest(_raw(given), csrf_for(rt.token, session).encode())


def csrf_token(request: web.Request) -> str:
    """The token to embed in this page's forms ("" without a session)."""
    rt = request.app[RUNTIME]
    session = session_of(request)
    return "" if session is None or rt.token is None else csrf_for(rt.token, session)


def api_denial(request: web.Request) -> web.Response | None:
    """Why an API request may not proceed (a JSON error), or None if it may."""
    rt = request.app[RUNTIME]
    write = request.method not in SAFE_METHODS
    level = access(request)
    if level is Access.ADMIN:
        if write and not csrf_ok(request, request.headers.get(CSRF_HEADER)):
            return _json(403, f"a request made with the session cookie needs the {CSRF_HEADER} header")
        return None
    if level is Access.READ and not write and bearer(request) is None:
        return None
    if rt.token is None:
        return _json(403, "the API is disabled: set server.api_token_file in the config")
    return _json(401, "missing or wrong API token", **{"WWW-Authenticate": 'Bearer realm="heartfly"'})


def bearer_is_new_token(request: web.Request) -> bool:
    """Whether the bearer token is what the token file holds now, though the server still has the
    old one: the file was replaced and not yet reloaded. Only a reload may take it (that is how a
    rotation is finished with `heartfly reload`): whoever can read the new file could send SIGHUP."""
    path = request.app[RUNTIME].config.server.api_token_file
    given = bearer(request)
    if path is None or given is None:
        return False
    try:
        current = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return len(current) >= MIN_TOKEN and _token_matches(current, given)


def _json(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def safe_next(target: str | None) -> str:
    """Only a path on this server: never an open redirect to somewhere else. Browsers drop tabs
    and newlines from a URL (so `/\t/evil.example` is `//evil.example`), and a control character
    cannot go into a Location header: any whitespace or control character sends the visitor home.
    So does a dot segment ("..", or "%2e%2e" as a browser reads it): the Location is relative to
    the page (web.paths), and below a proxy's path "./../other" leads to another application."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(c.isspace() or not c.isprintable() for c in target):
        return "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        return "/"
    return target


def login_redirect(request: web.Request, back: str = "/") -> web.HTTPSeeOther:
    """To the login form, then back here; a form post cannot be replayed by a GET after signing in,
    so it returns to the page the form was on: a same-site Referer, else `back`."""
    target = request.raw_path if request.method in SAFE_METHODS else _referer(request) or back
    return web.HTTPSeeOther(paths.here(request, f"/login?next={quote(safe_next(target), safe='')}"))


def _referer(request: web.Request) -> str | None:
    referer = request.headers.get("Referer")
    if referer is None or not _ours(request, referer):
        return None
    parts = urlsplit(referer)
    path = paths.app_path(parts.path, request.app[RUNTIME].config.server.public_url)
    return path + (f"?{parts.query}" if parts.query else "")


# No Path: the browser's default, the folder of the page that set it (the sign-in form's and the
# sign-out's, both at the app's root): "/" straight at the listen address, "/heartfly" below a
# proxy's path, where "/" sent the session to every application on the host name and a second
# Heartfly below another path replaced it (each sign-in signing the other out).
SESSION_PATH = ""


def set_session(request: web.Request, response: web.StreamResponse) -> None:
    rt = request.app[RUNTIME]
    assert rt.token is not None
    response.set_cookie(
        SESSION_COOKIE,
        new_session(rt.token, rt.clock.now()),
        max_age=int(SESSION_TTL),
        path=SESSION_PATH,
        httponly=True,
        # Lax: an alert's link from a mail client opens the page signed in; a cross-site POST
        # never carries the cookie (and would lack the CSRF token anyway).
        samesite="Lax",
        secure=rt.config.server.public_url.startswith("https://") or _over_https(request),
    )


def _over_https(request: web.Request) -> bool:
    """Whether the browser signing in reached this server over https, behind a proxy that ends TLS
    with public_url still http (as the package writes it): the Origin of its form says so (a
    sign-in from another site is refused before this), else a trusted proxy's X-Forwarded-Proto.
    Secure keeps the cookie off any plain http:// request to the same host; a plain-http sign-in
    gets none, which its browser would drop."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return urlsplit(origin).scheme == "https"
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    trusted = request.app[RUNTIME].config.server.trusted_proxies
    return forwarded == "https" and trusted_peer(request.remote or "", trusted)


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=SESSION_PATH)


def token_matches(request: web.Request, given: str) -> bool:
    token = request.app[RUNTIME].token
    return token is not None and _token_matches(token, given.strip())
