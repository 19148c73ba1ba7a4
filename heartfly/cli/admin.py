"""The command line talking to a running server through its API (stdlib only)."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from typing import Any

from heartfly.core.addresses import parse_listen
from heartfly.core.config import Config
from heartfly.core.listen import ENV


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Heartfly's API never redirects; urllib would follow another program's (nginx's `return 301`)
    as a GET with the Authorization header, to whatever host Location names. The 3xx is the answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# The server is on this host: a proxy from the environment (http_proxy, a company's, for downloads)
# would get the API token and cannot reach our 127.0.0.1 anyway.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


class AdminError(Exception):
    """The server could not be asked; the message says why and what to do."""


def local_url(config: Config) -> str:
    """The server's own address as seen from this host (a wildcard listen means loopback).
    HEARTFLY_LISTEN, as `heartfly serve` takes it, outranks the file here too."""
    host, port = config.server.host, config.server.port
    if listen := os.environ.get(ENV):
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise AdminError(f"{ENV}: {exc}") from None
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away from
    host = wildcards.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def call(config: Config, method: str, path: str, timeout: float = 60.0) -> tuple[int, Any]:
    """(status, decoded JSON) of an API request made with the config's API token."""
    token_file = config.server.api_token_file
    if token_file is None:
        raise AdminError("the config has no server.api_token_file, so the API is disabled")
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AdminError(f"cannot read the API token from {token_file}: {exc.strerror}") from None
    url = local_url(config) + path
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - always http://
    try:
        with _DIRECT.open(request, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:  # not JSON, or nothing: Heartfly's own refusals always say why
            if exc.code >= 500:  # Heartfly's own failure (aiohttp's page for an unexpected error)
                return exc.code, None
            # Heartfly's API words every refusal in JSON: a web server's error page, say
            raise _not_heartfly(config, exc.code) from None
        return exc.code, body
    except http.client.HTTPException as exc:  # not HTTP at all (another service on the port), or cut off
        # (Its text is whatever came back, a banner with its own line breaks: the class says enough.)
        raise AdminError(f"{local_url(config)} did not answer in HTTP as Heartfly does ({type(exc).__name__}):"
                         " is another program listening there?") from None  # fmt: skip
    except TimeoutError:  # connected and asked (a refused or failed connect is a URLError): no answer
        # A hung or overloaded server, not a missing one; what it took may yet be done (a reload).
        raise AdminError(
            f"{local_url(config)} took the request and gave no answer within {timeout:g} s: the server may be"
            " hung or overloaded (journalctl -u heartfly), and may still carry the request out"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):  # on this host a missing server refuses at once: one that
            # accepts no more (hung, its backlog filled by the jobs' pings) leaves the connect unanswered
            raise AdminError(
                f"{local_url(config)} took no connection within {timeout:g} s: the server may be hung or"
                " overloaded (journalctl -u heartfly); nothing was asked of it"
            ) from None
        # The address comes from the file, which may have changed since the server started, or
        # which `serve --listen` (docs/install.md: port 8765 taken) outranked.
        elsewhere = ""
        if not os.environ.get(ENV):
            same = "give this command the same address: HEARTFLY_LISTEN=HOST:PORT heartfly ..."
            elsewhere = f"\n  if it was started with --listen, {same}"
        raise AdminError(
            f"cannot reach the server at {local_url(config)} ({reason}): is `heartfly serve` running?\n"
            f"  if server.listen in {config.path} changed since it started, the server still listens on its"
            f" old address: a listen change needs a restart (systemctl restart heartfly), not a reload{elsewhere}"
        ) from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:  # an HTML page, say: whatever answered is not Heartfly's API
        raise _not_heartfly(config, status) from None


def _not_heartfly(config: Config, status: int) -> AdminError:
    return AdminError(f"{local_url(config)} answered {status} without Heartfly's JSON:"
                      " is another program listening there?")  # fmt: skip
