"""The proxy HTTP(S)_PROXY names for a URL, except NO_PROXY's hosts: for webhooks and the heartbeat
URL, as apprise's channels (requests) and `heartfly run` (urllib) read them.

Not aiohttp's trust_env, which also takes the user's ~/.netrc (or $NETRC) for every request: with a
`default` entry there, its login and password went to every webhook (Slack, Discord, ntfy), and a
webhook with its own Authorization header failed for ever ("Cannot combine AUTHORIZATION header")."""

from __future__ import annotations

import functools
import os
from collections.abc import MutableMapping
from typing import Any
from urllib.request import getproxies, proxy_bypass

import aiohttp
from aiohttp.helpers import strip_auth_from_url
from yarl import URL

NAMES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def proxy_for(url: str) -> dict[str, Any]:
    """The `proxy` and `proxy_auth` of a request to `url` (an https:// proxy's too: aiohttp speaks
    TLS to it): none for a url yarl cannot read (the request then says what is wrong with it), a
    host NO_PROXY names, or no proxy set. Raises
    aiohttp.InvalidURL for a proxy aiohttp cannot use."""
    # Read once per URL and environment: urllib reads every variable of the environment, twice, at
    # each call, a sixth of the event loop's time in a storm of webhook alerts.
    return dict(_proxy_for(url, _proxy_environment()))


def _proxy_environment() -> tuple[tuple[tuple[str, str], ...], bool]:
    """What urllib's answer depends on: every *_proxy variable, its name in any case (it lowers
    them: Https_Proxy and No_Proxy count), in the environment's order (of two spellings of one name,
    the later wins), and whether REQUEST_METHOD is set (a CGI process ignores HTTP_PROXY, httpoxy).
    Only those names' values are read: a fraction of urllib's reading."""
    env = os.environ
    return tuple((name, env[name]) for name in env if name[-6:].lower() == "_proxy"), "REQUEST_METHOD" in env


@functools.lru_cache(maxsize=256)
def _proxy_for(url: str, _env: tuple[tuple[tuple[str, str], ...], bool]) -> dict[str, Any]:
    """proxy_for, for one state of the environment: `_env` is its key in the cache."""
    try:
        parsed = URL(url)
    except ValueError:
        return {}
    # Not aiohttp's get_env_proxy_for_url: it reads ~/.netrc ($NETRC) at every call, and a
    # `default` entry's login and password went to the proxy as Proxy-Authorization.
    if parsed.host is not None and proxy_bypass(parsed.host):
        return {}
    text = getproxies().get(parsed.scheme)
    if not text:
        return {}
    try:
        proxy, auth = strip_auth_from_url(URL(text))
    except ValueError:  # one yarl cannot read ("http://[proxy"): its text may hold its password
        raise aiohttp.InvalidURL("HTTP(S)_PROXY") from None
    # An https:// proxy is spoken to over TLS, as curl and requests do: aiohttp's own reading of the
    # environment leaves one out (from the days it could not), which sent every request past it.
    return {"proxy": proxy, "proxy_auth": auth}


def with_schemes(env: MutableMapping[str, str] = os.environ) -> None:
    """HTTP(S)_PROXY=proxy:3128 as http://proxy:3128, as curl, requests and urllib take it: aiohttp
    refuses a proxy without its scheme as an invalid URL."""
    for name in NAMES:
        value = env.get(name, "").strip()
        if value and "://" not in value:
            env[name] = f"http://{value}"
