"""The alert channels' HTTP client, as the server makes it, against a real receiver on loopback."""

from __future__ import annotations

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from heartfly.core.config_alerts import ChannelConfig
from heartfly.notify import webhook
from heartfly.notify.message import Alert
from heartfly.web.app import _session

ALERT = Alert(key="flip-1-1", event="down", payload={"check": "backup", "reason": "missed"}, last_ping=None,
              link="https://hb.example.org/checks/backup")  # fmt: skip


async def test_a_cookie_one_webhook_receiver_sets_is_sent_to_no_channel(aiohttp_server: AiohttpServer) -> None:
    # Two tenants of one incident tool (or a chat tool behind a CDN that sets cookies) share a host:
    # kept in the session's jar, tenant a's cookie went with every later alert, tenant b's too.
    cookies: list[str | None] = []

    async def receive(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.Response(text="ok")
        response.set_cookie("session", f"tenant-{request.match_info['tenant']}", path="/")
        return response

    app = web.Application()
    app.router.add_post("/{tenant}", receive)
    server = await aiohttp_server(app)
    # By a host's name: aiohttp keeps no cookie of an IP address's.
    a = ChannelConfig("a", "webhook", url=f"http://localhost:{server.port}/a")
    b = ChannelConfig("b", "webhook", url=f"http://localhost:{server.port}/b")
    async with _session() as session:
        for channel in (a, b, a):
            await webhook.send(session, channel, ALERT)
    assert cookies == [None, None, None]
