"""The dashboard behind a real reverse proxy that serves it below a path and strips the path on
its way in (nginx's `location /heartfly/ { proxy_pass http://127.0.0.1:8765/; }`): every link,
form, redirect and static file stays below the path, and the same pages work straight at the
listen address (tests/test_web_dashboard.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from heartfly.core.config import Config
from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key
from tests.webutil import csrf_in, token_of

PREFIX = "/heartfly"
CHECKS = f"""
[checks.backup]
key = "{new_key()}"
tags = ["prod"]
after = "extract"
within = "1h"
[checks.extract]
key = "{new_key()}"
every = "1d"
"""
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class Links(HTMLParser):
    """Every URL a page makes the browser load or go to: hrefs, srcs and form actions."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None and not value.startswith("#"):
                self.found.append(value)


def links_of(page: URL, html: str) -> list[URL]:
    parser = Links()
    parser.feed(html)
    return [page.join(URL(link)) for link in parser.found]


async def proxy_in_front(aiohttp_server: Any, upstream: aiohttp.ClientSession, backends: dict[str, TestServer]) -> URL:
    """The root of a proxy that serves each backend below its path, stripping the path on its way in."""

    def forwarder(backend: TestServer) -> Any:
        async def forward(request: web.Request) -> web.Response:
            target = backend.make_url("/" + request.match_info["tail"]).with_query(request.query)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            async with upstream.request(
                request.method, target, headers=headers, data=await request.read(), allow_redirects=False
            ) as answer:
                kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
                response = web.Response(status=answer.status, body=await answer.read())
                for k, v in kept:
                    response.headers.add(k, v)
                return response

        return forward

    proxy = web.Application()
    for prefix, backend in backends.items():
        proxy.router.add_route("*", prefix + "/{tail:.*}", forwarder(backend))
    front: TestServer = await aiohttp_server(proxy)
    return front.make_url("/")


@pytest.fixture
async def proxied(aiohttp_server: Any, write_config: ConfigWriter) -> AsyncIterator[tuple[URL, Config]]:
    """A Heartfly server, and the root of a proxy in front of it at PREFIX."""
    config = write_config(CHECKS, server='public_url = "http://ops.example.com/heartfly"')
    backend: TestServer = await aiohttp_server(create_app(config))
    async with aiohttp.ClientSession(auto_decompress=False) as upstream:
        front = await proxy_in_front(aiohttp_server, upstream, {PREFIX: backend})
        yield front.join(URL(PREFIX + "/")), config


def browsing() -> aiohttp.ClientSession:
    """A browser's session: it keeps cookies, those of an IP address too."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def followed(session: aiohttp.ClientSession, url: URL, **kw: Any) -> aiohttp.ClientResponse:
    async with session.request(kw.pop("method", "GET"), url, **kw) as resp:
        await resp.read()
        return resp


async def test_below_a_proxys_path_every_link_form_and_redirect_stays_below_it(proxied: tuple[URL, Config]) -> None:
    root, config = proxied
    async with browsing() as browser:
        first = await followed(browser, root)  # not signed in: to the login form, below the path
        assert first.status == 200 and first.url.path == PREFIX + "/login", first.url
        form = await first.text()
        assert all(link.path.startswith(PREFIX + "/") for link in links_of(first.url, form))
        for link in links_of(first.url, form):
            if "/static/" in link.path:
                assert (await followed(browser, link)).status == 200, link
        action = next(link for link in links_of(first.url, form) if link.path == PREFIX + "/login")
        signed = await followed(
            browser, action, method="POST", data={"token": token_of(config), "next": first.url.query["next"]}
        )
        assert signed.status == 200 and signed.url.path == PREFIX + "/", signed.url
        index = await signed.text()
        assert 'href="./checks/backup"' in index

        pages = [signed.url]
        for page in pages:  # every page the index links to, and every page those link to
            resp = await followed(browser, page)
            assert resp.status == 200, page
            for link in links_of(page, await resp.text()):
                assert link.path.startswith(PREFIX + "/"), (page, link)
                if link.path.startswith(PREFIX + "/checks/") and not link.path.endswith(("/pause", "/resume")):
                    if link.with_query(None) not in {p.with_query(None) for p in pages}:
                        pages.append(link)
                elif "/static/" in link.path or "/badge/" in link.path or "/api/" in link.path:
                    assert (await followed(browser, link)).status == 200, link
        assert {p.path for p in pages} >= {PREFIX + "/checks/backup", PREFIX + "/checks/extract"}

        check = await followed(browser, root.join(URL("checks/backup")))
        html = await check.text()
        pause = next(link for link in links_of(check.url, html) if link.path.endswith("/pause"))
        paused = await followed(browser, pause, method="POST", data={"csrf": csrf_in(html)})
        assert paused.status == 200 and paused.url.path == PREFIX + "/checks/backup"
        assert re.search(r"paused", await paused.text())
        out = next(link for link in links_of(paused.url, await paused.text()) if link.path.endswith("/logout"))
        gone = await followed(browser, out, method="POST", data={"csrf": csrf_in(await paused.text())})
        assert gone.status == 200 and gone.url.path == PREFIX + "/login"


async def test_a_form_sent_after_signing_out_returns_below_the_path_after_signing_in_again(
    proxied: tuple[URL, Config],
) -> None:
    root, config = proxied
    page = root.join(URL("checks/backup"))
    async with browsing() as browser:
        # The referring page is the browser's, below the path: the login form sends it back there.
        resume = page.join(URL("backup/resume"))
        refused = await followed(browser, resume, method="POST", headers={"Referer": str(page)})
        assert refused.url.path == PREFIX + "/login" and refused.url.query["next"] == "/checks/backup"
        back = await followed(
            browser, refused.url, method="POST", data={"token": token_of(config), "next": refused.url.query["next"]}
        )
        assert back.status == 200 and back.url == page


@pytest.mark.parametrize(
    "target", ["/../outside", "/checks/../../outside", "/%2e%2E/outside", "/.%2e/outside", "/./../outside", "/../?x=1"]
)
async def test_a_next_target_never_leads_out_of_the_proxys_path(proxied: tuple[URL, Config], target: str) -> None:
    # The sign-in's Location is relative to the page ("./" + the target): a target with a dot
    # segment ("..", or as a browser reads "%2e%2e") led to another application on the host.
    root, config = proxied
    async with browsing() as browser:
        login = root.join(URL("login"))
        resp = await browser.post(login, data={"token": token_of(config), "next": target}, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "./", resp.headers["Location"]


async def test_two_servers_below_two_paths_of_one_host_each_keep_their_own_session(
    aiohttp_server: Any, write_config: ConfigWriter
) -> None:
    # The session cookie's path was "/": signing in to one (staging, say) replaced the other's
    # cookie, signing that one out, and every application on the host name was sent it.
    prod = write_config(CHECKS, server='public_url = "http://ops.example.com/prod"')
    staging = write_config(
        CHECKS,
        server='public_url = "http://ops.example.com/staging"\ndatabase = "staging.db"\napi_token_file = "token2"',
        name="staging.toml",
    )
    backends = {"/prod": await aiohttp_server(create_app(prod)), "/staging": await aiohttp_server(create_app(staging))}
    async with aiohttp.ClientSession(auto_decompress=False) as upstream, browsing() as browser:
        front = await proxy_in_front(aiohttp_server, upstream, backends)
        for prefix, config in (("/prod", prod), ("/staging", staging)):
            signed = await followed(
                browser,
                front.join(URL(prefix + "/login")),
                method="POST",
                data={"token": token_of(config), "next": "/"},
            )
            assert signed.status == 200 and signed.url.path == prefix + "/", signed.url
        for prefix in ("/prod", "/staging"):
            page = await followed(browser, front.join(URL(prefix + "/checks/backup")))
            assert page.status == 200 and page.url.path == prefix + "/checks/backup", page.url  # not the login form
        other = await followed(browser, front.join(URL("/prod/")))
        out = next(link for link in links_of(other.url, await other.text()) if link.path.endswith("/logout"))
        gone = await followed(browser, out, method="POST", data={"csrf": csrf_in(await other.text())})
        assert gone.url.path == "/prod/login"
        assert (await followed(browser, front.join(URL("/prod/")))).url.path == "/prod/login"  # signed out there
        assert (await followed(browser, front.join(URL("/staging/")))).url.path == "/staging/"  # and still in here
