"""The webhook channel: a JSON POST (documented schema, Idempotency-Key), or a chat-tool preset."""

from __future__ import annotations

import html
import json
import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import aiohttp
from yarl import URL

from heartfly import __version__
from heartfly.core.config_alerts import ChannelConfig
from heartfly.notify import DeliveryError, PermanentError
from heartfly.notify.message import Alert, discord_json, ntfy_request, slack_json, webhook_json
from heartfly.notify.proxy import proxy_for

EXCERPT = 4096  # bytes of an error response's body read for the attempt's error


def request_for(channel: ChannelConfig, alert: Alert) -> tuple[bytes, dict[str, str]]:
    """The body and headers this channel's format sends."""
    headers = {"User-Agent": f"heartfly/{__version__}"}
    if channel.format == "ntfy":
        body, extra = ntfy_request(alert)
        headers.update(extra)
        headers["Content-Type"] = "text/plain; charset=utf-8"
    else:
        render = {"slack": slack_json, "discord": discord_json}.get(channel.format, webhook_json)
        body = json.dumps(render(alert)).encode("utf-8")
        headers["Content-Type"] = "application/json"
    headers.update(dict(channel.headers))
    headers["Idempotency-Key"] = alert.key  # the config refuses one of its own; a receiver dedupes by it
    return body, headers


async def send(session: aiohttp.ClientSession, channel: ChannelConfig, alert: Alert) -> None:
    assert channel.url is not None
    body, headers = request_for(channel, alert)
    try:
        via = proxy_for(channel.url)
        async with session.post(channel.url, data=body, headers=headers, allow_redirects=False, **via) as resp:
            if 200 <= resp.status < 300:
                return
            if 300 <= resp.status < 400:  # its page only repeats Location, which may hold the token
                where = _origin(resp.headers.get("Location"), channel.url)
                raise PermanentError(f"HTTP {resp.status} (redirected to {where}: update the channel's url)")
            # Hidden before it is cut: a page may quote the path it refused ("Cannot POST /services/…").
            page = _hidden((await _excerpt(resp.content)).decode("utf-8", "replace"), channel.url)
            reply = page[:200].strip()
            error = f"HTTP {resp.status}" + (f": {reply}" if reply else "")
            if resp.status in (408, 429) or resp.status >= 500:
                raise DeliveryError(error, retry_after=retry_after(resp.headers.get("Retry-After")))
            raise PermanentError(error)
    except aiohttp.InvalidURL as exc:  # its text is the URL: a token, and no retry will help
        if _not_the_channels(exc, channel.url):  # the proxy's (it may hold a password: not said)
            raise PermanentError(
                "aiohttp cannot use the proxy HTTP_PROXY / HTTPS_PROXY names for this url (invalid)"
            ) from None
        why = exc.description or str(exc.__cause__ or "")
        why = why if why and channel.url not in why else "invalid"
        raise PermanentError(f"aiohttp cannot use the webhook's url ({why})") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(
            f"cannot reach the webhook: {exc.__class__.__name__}: {_without_url(exc, channel.url)}"
        ) from None


def _not_the_channels(exc: aiohttp.InvalidURL, url: str) -> bool:
    try:
        return str(exc.url) not in (url, str(URL(url)))
    except ValueError:  # the channel's url is one yarl cannot read: it is the one refused
        return False


def retry_after(value: str | None) -> float | None:
    """Seconds an answer's Retry-After asks to wait: a number of seconds or an HTTP date; None for
    none, or one that cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²", which isdigit() takes and float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo is not None else None


def _without_url(exc: aiohttp.ClientError, url: str) -> str:
    """What went wrong, without the URL's path and query: chat tools put their token there
    (Slack's, Discord's), and this text is logged and stored. aiohttp names the URL in some errors
    (a reply that is not HTTP, say), in its own spelling or in ours."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{exc.status}, message={exc.message!r}"
    return _hidden(str(exc), url)


def _hidden(text: str, url: str) -> str:
    """`text` with every spelling of `url`, and of its path with or without its query, as its
    origin and `/…`."""
    try:
        parsed = URL(url)
        hidden = f"{parsed.origin()}/…" if parsed.absolute else "…"  # origin(): no user or password either
        spellings = {url, str(parsed), parsed.raw_path_qs, parsed.path_qs, parsed.raw_path, parsed.path}
        spellings |= {parsed.raw_query_string, parsed.query_string}  # the token's place, quoted alone
    except ValueError:  # not one yarl can read (aiohttp's InvalidURL, handled before): say nothing of it
        return "(a URL it cannot use)"
    # As an HTML page quotes it (Django's debug 404: "&amp;" between query parameters), or
    # percent-encoded (a page naming the path it refused), its slashes too or not; %2f as %2F below.
    # As a JSON body quotes it: "/" as "\/" (PHP's json_encode: Symfony's, Laravel's errors), "&" as
    # "\u0026" (Go's encoding/json), or both.
    spellings |= (
        {html.escape(s) for s in spellings}
        | {quote(s, safe=safe) for s in spellings for safe in ("", "/")}
        | {j for s in spellings for j in _json_spellings(s)}
    )
    # One pass, the longest spelling first at each place: the origin written in is not searched
    # again. A path is not one right after a scheme's "x:/": "/local" is in "http://localhost", in
    # the origin of the URL or of a link the page gives, and hiding it there garbled the origin
    # (so too "\/local" after "x:\/", in JSON).
    found = "|".join(
        _not_after_scheme(s) + re.escape(s)
        for s in sorted(spellings, key=len, reverse=True)
        if len(s) > 1 and s != "\\/"  # not a bare "/"
    )
    return re.sub(found, lambda _: hidden, text, flags=re.IGNORECASE) if found else text


def _json_spellings(text: str) -> tuple[str, str, str]:
    slashes = text.replace("/", "\\/")
    return slashes, text.replace("&", "\\u0026"), slashes.replace("&", "\\u0026")


def _not_after_scheme(spelling: str) -> str:
    """The lookbehind that keeps a path's spelling from matching right after a scheme's "x:/"
    (in JSON "x:\\/", or "x:\\/\\" before the second slash)."""
    if spelling.startswith("/"):
        return r"(?<!:/)(?<!:\\/\\)"
    return r"(?<!:\\/)" if spelling.startswith("\\/") else ""


def _origin(location: str | None, url: str) -> str:
    """Where a redirect points, as its origin and `/…`: an http URL sent on to https keeps its path
    and query, the token of Slack's and Discord's webhooks."""
    if not location:
        return "?"
    try:
        target = URL(url).join(URL(location))
        return f"{target.origin()}/…" if target.absolute else "?"
    except ValueError:  # not one yarl can read
        return "?"


async def _excerpt(content: aiohttp.StreamReader) -> bytes:
    """The start of an error's body. Bounded: the body may be huge or endless (the connection is
    then closed with the rest unread, not drained)."""
    data = b""
    while len(data) < EXCERPT and (chunk := await content.read(EXCERPT - len(data))):
        data += chunk
    return data
