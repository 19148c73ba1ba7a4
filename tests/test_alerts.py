"""Alerts over real sockets, on both stores: a real SMTP server (aiosmtpd), real webhooks (aiohttp), apprise.

Heartfly runs in-process through create_app (every cleanup context: database, engine, dispatcher)
or, for the crash test, as a real `heartfly serve` subprocess. Retries are made fast by [alerts];
every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import html
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unicodedata
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient, AiohttpServer

from heartfly.core.config import Config, ConfigError
from heartfly.notify import DeliveryError
from heartfly.notify import email as smtp_channel
from heartfly.notify.message import Alert
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key, past_validation
from tests.proc import Server
from tests.storeutil import query

pytestmark = pytest.mark.both_stores

T = TypeVar("T")
Client = TestClient[web.Request, web.Application]

PUBLIC = "https://hb.example.org"
SECRET = "XyZsecretTOKEN0123456789"  # a webhook URL's token
SERVER = f'public_url = "{PUBLIC}"'
FAST = """
[alerts]
retry_initial = "100ms"
retry_max = "500ms"
timeout = "1s"
expire_after = "{expire}"
"""


def fast(expire: str = "5s") -> str:
    return FAST.format(expire=expire)


async def until(probe: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.02)


def unused_port_socket() -> socket.socket:
    """A socket bound to a free port but not listening: connections to it are refused until it listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# ---- a real SMTP server ---------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        self.received.append((envelope, email.message_from_bytes(content, policy=email.policy.default)))
        return "250 OK"


class BoundController(Controller):
    """aiosmtpd's threaded Controller, serving on a socket bound beforehand.

    Controller needs a real port up front (it connects to it once started, so port 0 will not do);
    binding the socket first reserves a free port with no race, and until start() it refuses
    connections like a server that is down.
    """

    def __init__(self, handler: Inbox, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname="mail.test")
        self.sock = sock

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self.sock)


@dataclass
class Mailbox:
    sock: socket.socket = field(default_factory=unused_port_socket)
    inbox: Inbox = field(default_factory=Inbox)
    controller: BoundController | None = None

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def received(self) -> list[tuple[Envelope, EmailMessage]]:
        return self.inbox.received

    async def start(self) -> None:
        self.controller = BoundController(self.inbox, self.sock)
        await asyncio.to_thread(self.controller.start)

    def toml(self) -> str:
        return f'[smtp]\nhost = "127.0.0.1"\nport = {self.port}\nsecurity = "none"\nfrom = "heartfly@example.org"\n'


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on a reserved port, not started: tests call start() when it should be up."""
    box = Mailbox()
    try:
        yield box
    finally:
        if box.controller is not None:
            box.controller.stop()
        box.sock.close()


# ---- real webhook receivers -----------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]


@dataclass
class Receiver:
    """Answers POSTs with the queued statuses in order, then with `status`; records every request."""

    statuses: list[int] = field(default_factory=list)
    status: int = 200
    hanging: bool = False  # while set, requests get no answer until `release`
    hits: list[Hit] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(Hit(request.path, CIMultiDict(request.headers), await request.read()))
        if self.hanging:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else self.status
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": "https://elsewhere.example/hook"})
        return web.Response(status=status, text="thanks" if status < 300 else f"nope {status}")

    def events(self) -> list[str]:
        return [h.json()["event"] for h in self.hits]


Receivers = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def receivers(aiohttp_server: AiohttpServer) -> AsyncIterator[Receivers]:
    """Makes webhook receivers, each a real aiohttp server on 127.0.0.1 with an OS-picked port."""
    made: list[Receiver] = []

    async def make(*statuses: int, status: int = 200, hanging: bool = False, path: str = "/hook") -> Receiver:
        receiver = Receiver(statuses=list(statuses), status=status, hanging=hanging)
        server = await aiohttp_server(receiver.app())
        receiver.url = str(server.make_url(path))
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.release.set()


def webhook(name: str, url: str, *extra: str) -> str:
    return "\n".join([f"[channels.{name}]", 'type = "webhook"', f'url = "{url}"', *extra]) + "\n"


def check(name: str, key: str, channels: list[str], *extra: str) -> str:
    lines = [f"[checks.{name}]", f'key = "{key}"', f"channels = {json.dumps(channels)}"]
    return "\n".join([*lines, *(extra or ('every = "1h"',))]) + "\n"


# ---- Heartfly in-process --------------------------------------------------------------------


class Heartfly:
    def __init__(self, client: Client, config: Config) -> None:
        self.client = client
        self.config = config
        assert config.server.api_token_file is not None
        token = config.server.api_token_file.read_text().strip()
        self.auth = {"Authorization": f"Bearer {token}"}

    async def ping(self, key: str, suffix: str = "", body: str = "") -> None:
        async with self.client.post(f"/ping/{key}{suffix}", data=body.encode()) as resp:
            assert resp.status == 200, await resp.text()

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        """The check's alerts, oldest first."""
        async with self.client.get(f"/api/v1/checks/{name}/alerts", headers=self.auth) as resp:
            assert resp.status == 200, await resp.text()
            items: list[dict[str, Any]] = await resp.json()
        return items[::-1]

    async def settled(self, name: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the check has `count` alerts and none is pending; oldest first."""
        latest: list[dict[str, Any]] = []

        async def probe() -> bool:
            nonlocal latest
            latest = await self.alerts(name)
            return len(latest) >= count and all(a["status"] != "pending" for a in latest)

        deadline = time.monotonic() + timeout
        while not await probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"alerts of {name} did not settle: {json.dumps(latest, indent=1)}")
            await asyncio.sleep(0.02)
        return latest

    async def alert(self, name: str, channel: str, event: str) -> dict[str, Any] | None:
        return next((a for a in await self.alerts(name) if (a["channel"], a["event"]) == (channel, event)), None)

    async def wait_alert(
        self, name: str, channel: str, event: str, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.alert(name, channel, event)
            if found is not None and done(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel} {event} alert of {name} not as wanted: {found}")
            await asyncio.sleep(0.02)


Start = Callable[[Config], Awaitable[Heartfly]]


@pytest.fixture
def start(receivers: Receivers, aiohttp_client: AiohttpClient) -> Start:
    """Starts Heartfly on a real socket; it stops before the receivers (set up earlier) do."""

    async def run(config: Config) -> Heartfly:
        client = await aiohttp_client(create_app(config))
        return Heartfly(client, config)

    return run


def outcomes(alert: dict[str, Any]) -> list[str]:
    return [a["outcome"] for a in alert["attempt_log"]]


# ---- delivery with the right content --------------------------------------------------------


async def test_an_email_alert_has_plain_and_html_parts_naming_the_check_and_what_happened(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org", "oncall@example.org"]\n'
        + check("backup", key, ["ops"], 'every = "1h"', 'description = "Nightly tar of /srv"')
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/start")
    await hf.ping(key, "/3", body="tar: /srv: No space left on device\n<script>alert(1)</script>")
    [(envelope, msg)] = await until(lambda: mailbox.received, "the email")

    assert envelope.mail_from == "heartfly@example.org"
    assert sorted(envelope.rcpt_tos) == ["oncall@example.org", "ops@example.org"]
    assert msg["Subject"] == "[DOWN] backup failed with exit status 3"
    assert msg["To"] == "ops@example.org, oncall@example.org"
    assert msg["From"] == "heartfly@example.org"
    plain_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain_part is not None and html_part is not None
    plain, page = (part.get_content().replace("\r\n", "\n") for part in (plain_part, html_part))  # SMTP sends CRLF
    assert plain.startswith("backup failed with exit status 3\n")
    for line in (
        "Check: backup",
        "Description: Nightly tar of /srv",
        "State: down (failed)",
        "What happened: failed with exit status 3",
        f"Link: {PUBLIC}/checks/backup",
    ):
        assert line in plain.splitlines()
    assert "Run duration: " in plain and "Was due: " not in plain  # a failure is not late
    assert "Last ping: fail at " in plain and " from 127.0.0.1" in plain
    assert plain.endswith("tar: /srv: No space left on device\n<script>alert(1)</script>\n")
    assert "<h2>backup failed with exit status 3</h2>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert f"<a href='{PUBLIC}/checks/backup'>Open backup</a>" in page

    [alert] = await hf.settled("backup", 1)
    assert (alert["channel"], alert["event"], alert["status"], outcomes(alert)) == ("ops", "down", "sent", ["sent"])
    assert msg["X-Heartfly-Alert"] == alert["key"]


@pytest.mark.parametrize("again", ["ops@example.org", "Ops@Example.ORG"])
async def test_an_email_channel_naming_a_recipient_twice_asks_the_server_to_deliver_to_it_once(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, again: str
) -> None:
    # As apprise's urls: an address listed twice (two lists merged by hand) was given to the server
    # twice, and a server that does not drop duplicate recipients delivered the alert twice. In
    # another case too: a domain has no case, and mail servers give a local part none.
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml()
        + f'[channels.ops]\ntype = "email"\nto = ["ops@example.org", "oncall@example.org", "{again}"]\n'
        + check("backup", key, ["ops"], 'every = "1h"')
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    [(envelope, msg)] = await until(lambda: mailbox.received, "the email")
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert msg["To"] == "ops@example.org, oncall@example.org"


class Refusing(BoundController):
    """A relay that refuses every login (535), and counts the logins tried."""

    def __init__(self, handler: Inbox, sock: socket.socket) -> None:
        super().__init__(handler, sock)
        self.logins = 0
        self.SMTP_kwargs.update(authenticator=self.refuse, auth_require_tls=False)

    def refuse(self, *args: object) -> AuthResult:
        self.logins += 1
        return AuthResult(success=False, handled=False)


async def test_a_login_the_smtp_server_refuses_makes_the_channel_wait_rather_than_retry_each_alert_at_once(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, tmp_path: Path
) -> None:
    # A storm of downs to a relay whose password changed: each alert retried the wrong login on its
    # own backoff from 5 s on, hundreds in minutes, which gets the account locked or the address
    # banned (fail2ban), so that the fixed password failed too. The channel waits instead, as a
    # webhook's 429 makes it, and each alert tries again only once more, a second before it expires.
    relay = Refusing(mailbox.inbox, mailbox.sock)
    mailbox.controller = relay
    await asyncio.to_thread(relay.start)
    (tmp_path / "smtp-password").write_text("old\n")
    (tmp_path / "smtp-password").chmod(0o600)
    login = f'username = "heartfly"\npassword_file = "{tmp_path / "smtp-password"}"\n'
    keys = {name: new_key() for name in ("a", "b", "c")}
    config = write_config(
        mailbox.toml()
        + login
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + "".join(check(name, key, ["ops"]) for name, key in keys.items())
        + '[alerts]\nretry_initial = "100ms"\nretry_max = "1h"\ntimeout = "2s"\nexpire_after = "4s"\n',
        server=SERVER,
    )
    hf = await start(config)
    for key in keys.values():
        await hf.ping(key, "/fail")
    for name in keys:
        [alert] = await hf.settled(name, 1, timeout=20)
        assert alert["status"] == "expired" and "SMTP login failed (535" in alert["error"], alert
        assert outcomes(alert) == ["retry", "expired"], alert  # its first try, and its last
    # One login each: the relay offers PLAIN and LOGIN, and a password refused in one is not sent in the other
    assert relay.logins == 6


class NoPlain(SMTP):
    """A relay that offers AUTH PLAIN but does not serve it (504), as aiosmtplib tries every method for."""

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        await self.push("504 5.5.4 Mechanism not served")
        return AuthResult(success=False, handled=True)


async def test_a_relay_that_offers_plain_but_does_not_serve_it_still_takes_the_login_by_the_next_method(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, tmp_path: Path
) -> None:
    # A password refused (535) in PLAIN is not sent again in LOGIN; a method not served (504) is passed over.
    methods: list[str] = []

    def login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        methods.append(mechanism)
        return AuthResult(success=data.password == b"s3cret", handled=False)

    relay = BoundController(mailbox.inbox, mailbox.sock)
    relay.SMTP_kwargs.update(authenticator=login, auth_require_tls=False)
    relay.factory = lambda: NoPlain(relay.handler, **relay.SMTP_kwargs)  # type: ignore[method-assign]
    mailbox.controller = relay
    await asyncio.to_thread(relay.start)
    (tmp_path / "smtp-password").write_text("s3cret\n")
    (tmp_path / "smtp-password").chmod(0o600)
    key = new_key()
    config = write_config(
        mailbox.toml()
        + f'username = "heartfly"\npassword_file = "{tmp_path / "smtp-password"}"\n'
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("backup", key, ["ops"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: mailbox.received, "the email, logged in by LOGIN")
    assert methods == ["LOGIN"]


async def test_a_reload_with_the_smtp_password_fixed_ends_the_login_wait_so_a_test_alert_goes_at_once(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, tmp_path: Path
) -> None:
    # After a refused login the channel waits a minute (at most retry_max). The operator fixes the
    # password file and reloads: the test alert that is to say the login works now waited that
    # minute out, and was reported pending.
    def login(*args: Any) -> AuthResult:
        return AuthResult(success=args[-1].password == b"fixed", handled=False)

    relay = BoundController(mailbox.inbox, mailbox.sock)
    relay.SMTP_kwargs.update(authenticator=login, auth_require_tls=False)
    mailbox.controller = relay
    await asyncio.to_thread(relay.start)
    password = tmp_path / "smtp-password"
    password.write_text("old\n")
    password.chmod(0o600)
    key = new_key()
    config = write_config(
        mailbox.toml()
        + f'username = "heartfly"\npassword_file = "{password}"\n'
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("backup", key, ["ops"])
        + '[alerts]\nretry_max = "1h"\nexpire_after = "1h"\n',
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    refused = await hf.wait_alert("backup", "ops", "down", lambda a: a["attempts"] >= 1)
    assert "SMTP login failed (535" in refused["error"], refused
    password.write_text("fixed\n")
    async with hf.client.post("/api/v1/reload", headers=hf.auth) as resp:
        assert resp.status == 200, await resp.text()
    status, result = await post_test(hf, "ops")
    assert (status, reported(result)) == (200, "sent"), result
    [(_, msg)] = mailbox.received
    assert msg["X-Heartfly-Alert"] == result["key"]


async def test_an_email_goes_through_a_relay_asking_starttls_and_a_login_its_certificate_from_ssl_cert_file(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ops team's relay: STARTTLS required before AUTH, a certificate of their own authority,
    # which the system's store lacks (every email: CERTIFICATE_VERIFY_FAILED) until SSL_CERT_FILE names it.
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    key, cert = tmp_path / "relay.key", tmp_path / "relay.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def login(*args: Any) -> AuthResult:
        logins.append((args[-1].login, args[-1].password))
        return AuthResult(success=args[-1].password == b"s3cret", handled=False)

    relay = BoundController(mailbox.inbox, mailbox.sock)
    relay.SMTP_kwargs.update(tls_context=context, require_starttls=True, auth_required=True, authenticator=login)
    mailbox.controller = relay
    await asyncio.to_thread(relay.start)
    (tmp_path / "smtp-password").write_text("s3cret\n")
    (tmp_path / "smtp-password").chmod(0o600)
    smtp = mailbox.toml().replace('security = "none"', 'security = "starttls"')
    key_ = new_key()
    config = write_config(
        smtp
        + f'username = "heartfly"\npassword_file = "{tmp_path / "smtp-password"}"\n'
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("backup", key_, ["ops"])
        + fast(),
        server=SERVER,
    )
    # Untrusted without it: the test cannot pass with the certificate unchecked
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert config.smtp is not None
    alert = Alert(key="test-1", event="test", payload={}, last_ping=None, link=PUBLIC)
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await smtp_channel.send(config.smtp, config.channels["ops"], alert, set())
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    hf = await start(config)
    await hf.ping(key_, "/fail")
    [(envelope, msg)] = await until(lambda: mailbox.received, "the email, through STARTTLS and the login")
    assert logins == [(b"heartfly", b"s3cret")] and envelope.rcpt_tos == ["ops@example.org"]
    assert msg["Subject"] == "[DOWN] backup failed"


async def test_an_email_alerts_plain_text_shows_a_pings_escape_sequences_as_text_not_to_the_terminal(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # Read with mail(1) or cat in a terminal, the text part's raw ESC, BEL and OSC sequences from
    # a ping cleared the screen, set the window's title and coloured what followed
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("backup", key, ["ops"], 'every = "1h"') + fast(),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail", body="disk full\x1b[2J\x1b]0;pwned\x07\tline two \u202eevil\nlast line")
    [(_, msg)] = await until(lambda: mailbox.received, "the email")
    plain_part = msg.get_body(("plain",))
    assert plain_part is not None
    plain = plain_part.get_content().replace("\r\n", "\n")
    assert plain.endswith("disk full\\x1b[2J\\x1b]0;pwned\\x07\tline two \\u202eevil\nlast line\n")
    assert not [c for c in plain if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")]


async def test_an_email_alert_is_marked_auto_generated_so_vacation_responders_do_not_answer_it(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # Unmarked, each alert to an on-call person away drew an out-of-office reply to `from` (a team
    # mailbox, often), one per alert and reminder: RFC 3834's responders skip Auto-Submitted mail,
    # and Exchange's skip mail that asks so in X-Auto-Response-Suppress.
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n' + check("job", key, ["ops"])
        + fast(),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    [(_, msg)] = await until(lambda: mailbox.received, "the email")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"


async def test_a_webhook_alert_posts_the_documented_json_with_its_idempotency_key_and_custom_headers(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers()
    key = new_key()
    config = write_config(
        webhook("hook", hook.url, 'headers = { Authorization = "Bearer hook-secret", X-Team = "ops" }')
        + check("quick", key, ["hook"], 'every = "1s"', 'grace = "0s"')
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    [down] = await until(lambda: hook.hits, "the down alert (no ping within 1s)")
    body = down.json()
    assert down.path == "/hook"
    assert down.headers["Authorization"] == "Bearer hook-secret" and down.headers["X-Team"] == "ops"
    assert down.headers["Content-Type"] == "application/json"
    assert down.headers["User-Agent"].startswith("heartfly/")
    assert down.key == body["id"]
    assert {k: body[k] for k in ("version", "event", "state", "previous_state", "reason", "detail")} == {
        "version": 1,
        "event": "down",
        "state": "down",
        "previous_state": "new",
        "reason": "missed",
        "detail": "no ping arrived by the deadline",
    }
    assert body["summary"] == "quick did not run: no ping arrived by its deadline"
    assert {k: body["check"][k] for k in ("name", "description", "url")} == {
        "name": "quick",
        "description": "",
        "url": f"{PUBLIC}/checks/quick",
    }
    assert body["due_at"] <= body["at"] == body["down_since"] and body["at"].endswith("Z")
    assert body["last_ping"] is None and body["down_for_seconds"] is None

    await hf.ping(key, body="back again")
    await until(lambda: len(hook.hits) == 2, "the recovery alert")
    up = hook.hits[1].json()
    assert hook.hits[1].key == up["id"] != body["id"]
    assert (up["event"], up["state"], up["previous_state"], up["reason"]) == ("recovery", "up", "down", None)
    assert up["summary"] == "quick is back up"
    assert up["down_for_seconds"] > 0
    assert up["last_ping"]["kind"] == "success" and up["last_ping"]["source"] == "127.0.0.1"
    assert up["last_ping"]["message_tail"] == "back again"
    alerts = await hf.settled("quick", 2)
    assert [(a["key"], a["event"], a["status"]) for a in alerts] == [
        (body["id"], "down", "sent"),
        (up["id"], "recovery", "sent"),
    ]


async def down_through(proxy: Receiver, start: Start, write_config: ConfigWriter) -> Hit:
    """A webhook to a host that does not resolve, whose down alert can arrive only through `proxy`
    (the receiver standing in for the proxy the environment names): that alert."""
    config = write_config(
        webhook("hook", "http://hooks.invalid/alerts")
        + check("quick", new_key(), ["hook"], 'every = "1s"', 'grace = "0s"')
        + fast(),
        server=SERVER,
    )
    await start(config)
    [down] = await until(lambda: proxy.hits, "the down alert, through the proxy")
    assert down.path == "/alerts" and down.headers["Host"] == "hooks.invalid"
    return down


async def test_a_webhook_alert_goes_through_the_proxy_the_environment_names(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host whose only way out is a proxy: the receiver stands in for it, and the hook's own host
    # does not resolve, so only a request through the proxy can arrive.
    proxy = await receivers()
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hook"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    down = await down_through(proxy, start, write_config)
    assert down.json()["event"] == "down"


async def test_a_proxy_named_without_its_scheme_is_used_as_curl_requests_and_urllib_use_it(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HTTP_PROXY=proxy:3128, as many hosts spell it (curl, requests and `heartfly run`'s urllib take
    # it as http://proxy:3128): aiohttp refused it as an invalid URL, and every webhook alert
    # failed for good as "aiohttp cannot use the webhook's url (invalid)", blaming a good url.
    proxy = await receivers()
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hook").removeprefix("http://"))
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    await down_through(proxy, start, write_config)


async def test_a_proxy_the_environment_names_with_https_is_reached_over_tls(
    aiohttp_server: AiohttpServer, write_config: ConfigWriter, tmp_path: Path
) -> None:
    # HTTP(S)_PROXY=https://proxy:3129, a proxy spoken to over TLS (aiohttp takes one from Python
    # 3.11 on, requests does for apprise's channels): it was left out without a word and every
    # webhook went straight to its host, which a host whose only way out is the proxy cannot reach.
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    key, cert = tmp_path / "proxy.key", tmp_path / "proxy.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    proxy = Receiver()
    server = await aiohttp_server(proxy.app(), ssl=context)
    config = write_config(
        webhook("hook", "http://hooks.invalid/alerts")
        + check("quick", new_key(), ["hook"], 'every = "1s"', 'grace = "0s"')
        + fast(),
        server=SERVER,
    )
    assert config.path is not None
    # The proxy's certificate is the one the server trusts (SSL_CERT_FILE, as OpenSSL reads it).
    proxied = {"HTTP_PROXY": f"https://127.0.0.1:{server.port}", "SSL_CERT_FILE": str(cert)}
    hf = Server(config.path, env={**proxied, "http_proxy": "", "NO_PROXY": "", "no_proxy": ""})
    try:
        await asyncio.to_thread(hf.start)
        [down] = await until(lambda: proxy.hits, "the down alert, through the proxy")
    finally:
        hf.kill()
    assert down.path == "/alerts" and down.headers["Host"] == "hooks.invalid"
    assert down.json()["event"] == "down"


async def test_a_netrc_file_neither_blocks_a_webhooks_own_authorization_nor_reaches_another_host(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The proxy's environment (3ee142e) is read, not the user's ~/.netrc for every request:
    # aiohttp's trust_env takes both. With a `default` entry (root's, for curl or git), a webhook with its own
    # Authorization header failed for ever ("Cannot combine AUTHORIZATION header"), and any other
    # got the netrc's login and password, sent to Slack, Discord or ntfy.
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password s3cret-from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    own, bare = await receivers(), await receivers()
    config = write_config(
        webhook("own", own.url, 'headers = { Authorization = "Bearer the-hooks-own" }')
        + webhook("bare", bare.url)
        + check("quick", new_key(), ["own", "bare"], 'every = "1s"', 'grace = "0s"')
        + fast(),
        server=SERVER,
    )
    await start(config)
    [mine] = await until(lambda: own.hits, "the down alert, with the webhook's own Authorization")
    [theirs] = await until(lambda: bare.hits, "the down alert, without one")
    assert mine.headers["Authorization"] == "Bearer the-hooks-own"
    assert "Authorization" not in theirs.headers, "the netrc's password went to the webhook"


async def test_the_chat_presets_reach_their_receivers_in_their_own_shapes(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    slack, discord, ntfy = await receivers(), await receivers(), await receivers()
    key = new_key()
    config = write_config(
        webhook("slack", slack.url, 'format = "slack"')
        + webhook("discord", discord.url, 'format = "discord"')
        + webhook("ntfy", ntfy.url, 'format = "ntfy"')
        + check("job", key, ["slack", "discord", "ntfy"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail", body="<b>boom</b>")
    await hf.settled("job", 3)
    assert slack.hits[0].json()["text"].startswith("job failed\n")
    assert "&lt;b&gt;boom&lt;/b&gt;" in slack.hits[0].json()["text"]
    assert set(discord.hits[0].json()) == {"content", "allowed_mentions"}
    assert discord.hits[0].json()["content"].startswith("job failed\n")
    hit = ntfy.hits[0]
    assert hit.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (hit.headers["Title"], hit.headers["Priority"], hit.headers["Tags"]) == (
        "[DOWN] job failed",
        "high",
        "rotating_light",
    )
    assert hit.headers["Click"] == f"{PUBLIC}/checks/job"
    assert hit.body.decode().startswith("job failed\n")
    assert len({slack.hits[0].key, discord.hits[0].key, hit.key}) == 1  # one transition, one key


# ---- retries --------------------------------------------------------------------------------


class StuckAtRcpt(Inbox):
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(30)  # a recipient never answered: a stuck lookup, before any message is sent
        return "250 OK"


class SlowFilter(Inbox):
    """Queues each message at once, then answers its DATA after a content filter's 2.5 s."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(2.5)
        return "250 OK"


class StuckAtQuit(Inbox):
    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(30)
        return "221 Bye"


async def test_an_email_attempt_to_a_server_that_hangs_keeps_to_its_time_limit(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # aiosmtplib.send, cancelled, still sent QUIT and waited [smtp] timeout for it: 5 s, not 1.
    mailbox.inbox = StuckAtRcpt()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + 'timeout = "4s"\n[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("job", key, ["ops"])
        + '[alerts]\ntimeout = "1s"\nretry_initial = "30s"\nretry_max = "30s"\nexpire_after = "60s"\n',
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    alert = await hf.wait_alert("job", "ops", "down", lambda a: len(a["attempt_log"]) >= 1, timeout=15)
    attempt = alert["attempt_log"][0]
    assert (attempt["outcome"], attempt["error"]) == ("retry", "no answer within 1 s")
    assert attempt["duration"] < 1.5


async def test_an_email_the_server_answers_slower_than_the_time_limit_once_it_has_the_message_is_sent_once(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    # Cut off at 1 s, each attempt was queued all the same: the same alert again with every retry.
    mailbox.inbox = SlowFilter()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml() + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n' + check("job", key, ["ops"])
        + '[alerts]\ntimeout = "1s"\nretry_initial = "100ms"\nretry_max = "100ms"\nexpire_after = "60s"\n',
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["sent"])
    assert len(mailbox.received) == 1


async def test_an_email_the_server_took_is_sent_once_though_it_never_answers_quit(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    mailbox.inbox = StuckAtQuit()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("job", key, ["ops"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["sent"])
    assert len(mailbox.received) == 1


@pytest.mark.parametrize(
    ("security", "to", "failed"),
    [
        ("starttls", "ops@example.org", "SMTP STARTTLS extension not supported by server."),
        ("none", "opé@example.org", "SMTPUTF8 is not supported by this server"),
        ("tls", "ops@example.org", "SSL"),  # port 465's TLS asked of a server that speaks plain SMTP
    ],
    ids=["starttls", "smtputf8", "tls-handshake"],
)
async def test_an_smtp_server_that_was_reached_but_lacks_what_the_email_needs_is_not_told_unreachable(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter, security: str, to: str, failed: str
) -> None:
    # The server answered, but has no STARTTLS (or no SMTPUTF8 for a non-ASCII address, or speaks
    # plain SMTP where security = "tls" expects TLS from the first byte: its handshake fails inside
    # aiosmtplib's connect): the error said "cannot reach SMTP server", and the operator went
    # looking at the network.
    mailbox.controller = BoundController(mailbox.inbox, mailbox.sock)
    mailbox.controller.SMTP_kwargs["enable_SMTPUTF8"] = False  # as many servers (aiosmtpd's own default)
    await asyncio.to_thread(mailbox.controller.start)
    key = new_key()
    smtp = mailbox.toml().replace('security = "none"', f'security = "{security}"')
    channel = f'[channels.ops]\ntype = "email"\nto = ["{to}"]\n'
    hf = await start(write_config(smtp + channel + check("job", key, ["ops"]) + fast("1s"), server=SERVER))
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    error = alert["attempt_log"][0]["error"]
    assert error.startswith(f"SMTP server 127.0.0.1:{mailbox.port} answered, then failed: "), error
    assert failed in error and "cannot reach" not in error
    assert mailbox.received == []


async def test_an_smtp_server_that_takes_the_connection_but_never_greets_is_not_told_unreachable(
    start: Start, write_config: ConfigWriter
) -> None:
    # Port 465 with security = "starttls" or "none": the server waits for a TLS handshake, the client
    # for its greeting. The error said "cannot reach SMTP server", and the operator went looking at
    # the network, where the fix is security = "tls".
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with silent:
        smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "starttls"\nfrom = "hb@example.org"\n'
        smtp += 'timeout = "300ms"\n'  # the greeting's wait, within the attempt's 1 s
        channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        key = new_key()
        hf = await start(write_config(smtp + channel + check("job", key, ["ops"]) + fast("2s"), server=SERVER))
        await hf.ping(key, "/fail")
        alert = await hf.wait_alert("job", "ops", "down", lambda a: len(a["attempt_log"]) >= 1)
    error = alert["attempt_log"][0]["error"]
    assert error.startswith(f"SMTP server 127.0.0.1:{port} took the connection but sent no greeting"), error
    assert 'security = "tls"' in error and "cannot reach" not in error


async def test_an_email_is_sent_exactly_once_after_the_smtp_server_comes_back(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + check("job", key, ["ops"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    await hf.wait_alert("job", "ops", "down", lambda a: len(a["attempt_log"]) >= 2)  # SMTP still down
    assert mailbox.received == []
    await mailbox.start()
    [alert] = await hf.settled("job", 1)
    assert alert["status"] == "sent"
    *failed, last = alert["attempt_log"]
    assert len(failed) >= 2 and all(a["outcome"] == "retry" for a in failed)
    assert all(f"cannot reach SMTP server 127.0.0.1:{mailbox.port}" in a["error"] for a in failed)
    assert (last["outcome"], last["error"]) == ("sent", None)
    assert alert["attempts"] == len(alert["attempt_log"])
    assert len(mailbox.received) == 1
    assert mailbox.received[0][1]["Subject"] == "[DOWN] job failed"


async def test_a_webhook_failing_twice_then_succeeding_is_delivered_on_the_third_attempt_under_one_key(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers(500, 500)
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast(), server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], alert["attempts"], outcomes(alert)) == ("sent", 3, ["retry", "retry", "sent"])
    assert [a["error"] for a in alert["attempt_log"]] == ["HTTP 500: nope 500", "HTTP 500: nope 500", None]
    assert len(hook.hits) == 3
    assert {h.key for h in hook.hits} == {alert["key"]}
    assert {h.json()["id"] for h in hook.hits} == {alert["key"]}


async def test_the_largest_concurrency_taken_still_delivers_alerts(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # 2**63 was taken, and every read of the outbox failed (its per-channel LIMIT is no 64-bit
    # integer): no alert was ever sent, with one log line to say so.
    hook = await receivers(200)
    key = new_key()
    alerts = fast().replace("[alerts]\n", "[alerts]\nconcurrency = 10000\n")
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + alerts, server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["sent"])


async def test_a_webhook_answering_4xx_or_a_redirect_fails_at_once_while_429_and_5xx_are_retried(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    permanent = {"bad": 400, "gone": 410, "moved": 301}
    passing = {"busy": 429, "slow": 408, "down": 503}
    hooks = {name: await receivers(status) for name, status in {**permanent, **passing}.items()}
    key = new_key()
    config = write_config(
        "".join(webhook(name, r.url) for name, r in hooks.items()) + check("job", key, list(hooks)) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    alerts = {a["channel"]: a for a in await hf.settled("job", len(hooks))}
    for name, status in permanent.items():
        alert = alerts[name]
        assert (alert["status"], alert["attempts"], outcomes(alert)) == ("failed", 1, ["failed"]), name
        assert alert["error"].startswith(f"HTTP {status}")
        assert len(hooks[name].hits) == 1
    assert "update the channel's url" in alerts["moved"]["error"]
    for name, status in passing.items():
        alert = alerts[name]
        assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"]), name
        assert alert["attempt_log"][0]["error"].startswith(f"HTTP {status}")
        assert len(hooks[name].hits) == 2


async def test_a_webhook_answering_429_with_retry_after_is_tried_again_no_sooner_than_it_asked(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    answered: list[float] = []

    async def limited(request: web.Request) -> web.Response:
        answered.append(time.monotonic())
        if len(answered) == 1:  # as Slack and Discord say it: how many seconds to wait
            return web.Response(status=429, text="rate limited", headers={"Retry-After": "2"})
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", limited)
    server = await aiohttp_server(receiver)
    key = new_key()
    alerts = '[alerts]\nretry_initial = "100ms"\nretry_max = "5s"\ntimeout = "1s"\nexpire_after = "30s"\n'
    config = write_config(webhook("hook", str(server.make_url("/hook"))) + check("job", key, ["hook"]) + alerts)
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"])
    assert alert["attempt_log"][0]["error"] == "HTTP 429: rate limited"
    assert answered[1] - answered[0] >= 2.0  # the backoff alone would have tried again after 50-100 ms


async def test_a_hung_webhook_does_not_delay_email(
    start: Start, mailbox: Mailbox, receivers: Receivers, write_config: ConfigWriter
) -> None:
    await mailbox.start()
    hook = await receivers(hanging=True)
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + webhook("hook", hook.url, 'timeout = "3s"')
        + check("job", key, ["hook", "ops"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    began = time.monotonic()
    await hf.ping(key, "/fail")
    await until(lambda: mailbox.received, "the email", timeout=2.5)
    mailed_after = time.monotonic() - began
    webhook_alert = await hf.alert("job", "hook", "down")
    assert webhook_alert is not None and webhook_alert["attempt_log"] == []  # its first attempt is still hanging
    assert len(hook.hits) == 1 and mailed_after < 2.5
    email_alert = await hf.wait_alert("job", "ops", "down", lambda a: a["status"] == "sent")
    assert outcomes(email_alert) == ["sent"]

    hook.hanging = False  # later requests are answered; the hung one stays hung and times out
    done = await hf.wait_alert("job", "hook", "down", lambda a: a["status"] != "pending")
    assert (done["status"], outcomes(done)) == ("sent", ["retry", "sent"])
    assert done["attempt_log"][0]["error"] == "no answer within 3 s"
    assert done["attempt_log"][0]["duration"] >= 2.9
    assert [h.key for h in hook.hits] == [done["key"]] * 2


async def test_an_alert_failing_past_expire_after_is_expired_and_blocks_nothing(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    dead, live = await receivers(status=503), await receivers()
    key = new_key()
    config = write_config(
        webhook("dead", dead.url) + webhook("live", live.url) + check("job", key, ["dead", "live"]) + fast("1s"),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    sent = await hf.wait_alert("job", "live", "down", lambda a: a["status"] == "sent")
    retrying = await hf.alert("job", "dead", "down")
    assert retrying is not None and retrying["status"] == "pending"  # live did not wait for it
    assert outcomes(sent) == ["sent"]

    gave_up = await hf.wait_alert("job", "dead", "down", lambda a: a["status"] != "pending", timeout=5)
    assert gave_up["status"] == "expired"
    *tries, last = outcomes(gave_up)
    assert len(tries) >= 2 and set(tries) == {"retry"} and last == "expired"
    # An attempt that starts after expires_at gives up without a request; any other was a real, failed one.
    requests = len(tries) + (gave_up["error"] != "expired before it could be sent")
    assert len(dead.hits) == requests

    dead.status = 200  # the channel works again: later alerts on it go through
    await hf.ping(key)
    alerts = await hf.settled("job", 4)
    recovered = {a["channel"]: a for a in alerts if a["event"] == "recovery"}
    assert recovered["dead"]["status"] == recovered["live"]["status"] == "sent"
    assert dead.events()[-1] == "recovery"
    assert dead.hits[-1].key == recovered["dead"]["key"] != gave_up["key"]
    assert len(dead.hits) == requests + 1  # the expired alert was never tried again


async def test_an_alert_given_up_is_logged_with_the_name_of_the_check_nobody_was_told_of(
    start: Start, receivers: Receivers, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # The log said "alert flip-1 (down) via gone: failed after 1 attempt(s): HTTP 404": the one
    # trace of a down nobody was told of did not say which check is down.
    gone, dead = await receivers(status=404), await receivers(status=503)
    key = new_key()
    config = write_config(
        webhook("gone", gone.url) + webhook("dead", dead.url) + check("backup-db", key, ["gone", "dead"])
        + fast("1s"),
        server=SERVER,
    )  # fmt: skip
    hf = await start(config)
    await hf.ping(key, "/fail")
    alerts = await hf.settled("backup-db", 2)
    assert sorted((a["channel"], a["status"]) for a in alerts) == [("dead", "expired"), ("gone", "failed")]
    told = [r.getMessage() for r in caplog.records if re.match(r"alert flip-1-\d+ ", r.getMessage())]
    assert all(re.match(r"alert flip-1-\d+ \(down of check backup-db\) via ", line) for line in told), told
    assert any(line.endswith("via gone: failed after 1 attempt(s): HTTP 404: nope 404") for line in told), told
    assert any(" via dead: expired after " in line for line in told), told


async def test_a_webhook_urls_token_is_kept_out_of_the_log_and_the_attempt_log(
    start: Start, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # Slack's and Discord's webhook URLs hold their token; aiohttp names the URL in some errors.
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"this is not http\r\n\r\n")  # a wrong port, a misconfigured proxy
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = new_key()
    try:
        url = f"http://127.0.0.1:{port}/services/T000/B000/{SECRET}?token={SECRET}"
        hf = await start(write_config(webhook("hook", url) + check("job", key, ["hook"]) + fast("2s"), server=SERVER))
        await hf.ping(key, "/fail")
        [alert] = await hf.settled("job", 1)
    finally:
        server.close()
        await server.wait_closed()
    errors = [a["error"] for a in alert["attempt_log"]]
    assert errors[0].startswith("cannot reach the webhook: ClientResponseError: 400")
    assert not [e for e in errors if SECRET in e]
    assert not [r for r in caplog.records if SECRET in r.getMessage()]


async def test_a_webhook_redirected_to_https_or_refused_by_a_page_quoting_its_path_keeps_the_token_out_of_the_error(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # An http:// URL where the service wants https gets a redirect to the same path, token and all,
    # in Location and in the page (as Express says it); a 404 page may quote the path it refused.
    async def moved(request: web.Request) -> web.Response:
        await request.read()
        there = str(request.url.with_scheme("https"))
        return web.Response(status=301, text=f"Moved Permanently. Redirecting to {there}", headers={"Location": there})

    async def gone(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=404, text=f"Cannot POST {request.path}")

    app = web.Application()
    app.router.add_post("/moved/{tail:.*}", moved)
    app.router.add_post("/gone/{tail:.*}", gone)
    server = await aiohttp_server(app)
    hooks = {name: str(server.make_url(f"/{name}/services/T000/B000/{SECRET}")) for name in ("moved", "gone")}
    key = new_key()
    channels = "".join(webhook(name, url) for name, url in hooks.items())
    hf = await start(write_config(channels + check("job", key, list(hooks)) + fast(), server=SERVER))
    await hf.ping(key, "/fail")
    errors = {a["channel"]: a["error"] for a in await hf.settled("job", 2)}
    assert errors["moved"] == (f"HTTP 301 (redirected to https://127.0.0.1:{server.port}/…: update the channel's url)")
    assert errors["gone"].startswith("HTTP 404: Cannot POST ")
    assert not [e for e in errors.values() if SECRET in e]
    assert not [r for r in caplog.records if SECRET in r.getMessage()]


@pytest.mark.parametrize(
    ("page", "told"),
    [
        ("No webhook at {url}", "No webhook at http://localhost:{port}/…"),
        ("No webhook here; see http://localhost:{port}/ for the list", None),
    ],
    ids=["quoting-its-url", "naming-its-origin"],
)
async def test_a_webhook_error_page_is_told_with_its_url_as_its_origin_once_not_garbled(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter, page: str, told: str | None
) -> None:
    # The path is hidden too, as a spelling of its own: replaced after the whole URL, it was found
    # again in the origin just written ("/local" in "//localhost:…"), and the error read
    # "http:/http://localhost:…/…host:…/…"; so too in a page that names the site, not the URL asked.
    async def gone(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=404, text=page.format(url=request.url, port=request.url.port))

    app = web.Application()
    app.router.add_post("/local", gone)
    server = await aiohttp_server(app)
    key = new_key()
    url = f"http://localhost:{server.port}/local?token={SECRET}"
    hf = await start(write_config(webhook("hook", url) + check("job", key, ["hook"]) + fast(), server=SERVER))
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert alert["error"] == "HTTP 404: " + (told or page).format(port=server.port), alert


async def test_a_webhook_error_page_quoting_its_url_html_escaped_or_percent_encoded_keeps_the_token_out(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # Django's debug 404 page quotes the URL HTML-escaped ("&amp;" between query parameters); a
    # proxy may quote it percent-encoded. Either spelling showed the token in the attempt's error.
    async def gone(request: web.Request) -> web.Response:
        await request.read()
        escaped, encoded = html.escape(str(request.url)), urllib.parse.quote(request.path_qs, safe="")
        path = urllib.parse.quote(request.path_qs, safe="/").lower()  # "/hook%3fchannel%3dops%26token…"
        return web.Response(status=404, text=f"Not found: {escaped} ({encoded}, {path})")

    app = web.Application()
    app.router.add_post("/hook", gone)
    server = await aiohttp_server(app)
    key = new_key()
    url = f"http://127.0.0.1:{server.port}/hook?channel=ops&token={SECRET}"
    hf = await start(write_config(webhook("hook", url) + check("job", key, ["hook"]) + fast(), server=SERVER))
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    origin = f"http://127.0.0.1:{server.port}"
    assert alert["error"] == f"HTTP 404: Not found: {origin}/… ({origin}/…, {origin}/…)", alert


async def test_a_webhook_error_body_quoting_its_url_json_escaped_keeps_the_token_out(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # A JSON error body escapes the URL it quotes: PHP's json_encode (Symfony's and Laravel's JSON
    # errors) writes each "/" as "\/", Go's encoding/json each "&" as "\u0026". Either showed
    # the token, in the path (Slack's, Discord's) or the query, in the attempt's error.
    async def gone(request: web.Request) -> web.Response:
        await request.read()
        php = str(request.url).replace("/", "\\/")
        go = request.path_qs.replace("&", "\\u0026")
        return web.Response(status=404, text=f'{{"error": "no route {php}", "path": "{go}"}}')

    app = web.Application()
    app.router.add_post("/services/T000/{token}", gone)
    server = await aiohttp_server(app)
    key = new_key()
    url = f"http://127.0.0.1:{server.port}/services/T000/{SECRET}?channel=ops&token={SECRET}"
    hf = await start(write_config(webhook("hook", url) + check("job", key, ["hook"]) + fast(), server=SERVER))
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    origin = f"http://127.0.0.1:{server.port}"
    assert alert["error"] == f'HTTP 404: {{"error": "no route {origin}/…", "path": "{origin}/…"}}', alert


async def test_a_receivers_error_page_is_logged_and_stored_on_one_printable_line(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy's 502 page, or anything the far end sends: its line breaks would forge log lines.
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=502, text="<html>\r\nCRITICAL heartfly: forged line\x1b[2J\r\n</html>")

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = await aiohttp_server(app)
    key = new_key()
    config = write_config(webhook("hook", str(server.make_url("/hook"))) + check("job", key, ["hook"]) + fast("1s"))
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    escaped = "HTTP 502: <html>\\r\\nCRITICAL heartfly: forged line\\x1b[2J\\r\\n</html>"
    assert alert["attempt_log"][0]["error"] == escaped
    told = [r.getMessage() for r in caplog.records if r.name == "heartfly.notify.dispatcher"]
    assert told and not [m for m in told if "\n" in m or "\x1b" in m]


# ---- reminders and recovery -----------------------------------------------------------------


async def test_a_down_check_with_repeat_sends_reminders_until_it_recovers(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook, quiet = await receivers(), await receivers()
    key = new_key()
    config = write_config(
        webhook("hook", hook.url)
        + webhook("quiet", quiet.url, "recovery = false")
        + check("job", key, ["hook", "quiet"], 'every = "1h"', 'repeat = "1m"')
        + fast(),
        server=SERVER,
    )
    config = past_validation(config, "job", repeat=0.3)
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: hook.events().count("reminder") >= 2, "two reminders")
    await hf.ping(key)
    await until(lambda: "recovery" in hook.events(), "the recovery alert")
    recovered_at = time.monotonic()
    await hf.settled("job", 1)

    # Quiet for two more `repeat`s: no reminder after the recovery.
    while time.monotonic() < recovered_at + 0.7:
        await asyncio.sleep(0.05)
    events = hook.events()
    assert events[0] == "down" and events[-1] == "recovery"
    assert set(events[1:-1]) == {"reminder"} and len(events) >= 4
    reminders = [h.json() for h in hook.hits if h.json()["event"] == "reminder"]
    assert all(r["summary"] == "Still down: job failed" and r["state"] == "down" for r in reminders)
    assert all(r["id"].startswith("reminder-") for r in reminders)
    assert len({r["id"] for r in reminders}) == len(reminders)
    assert hook.hits[0].json()["id"].startswith("flip-")

    assert quiet.events()[0] == "down" and "recovery" not in quiet.events()
    assert set(quiet.events()[1:]) <= {"reminder"}
    alerts = await hf.alerts("job")
    assert [a["channel"] for a in alerts if a["event"] == "recovery"] == ["hook"]
    assert all(a["status"] == "sent" for a in alerts)


async def test_a_recovery_gives_its_runs_duration_and_one_by_an_end_without_a_start_gives_none(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    hook = await receivers()
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast(), server=SERVER)
    hf = await start(config)

    async def alert_after(*suffixes: str) -> dict[str, Any]:
        count = len(hook.hits) + 1
        for suffix in suffixes:
            await hf.ping(key, suffix)
        await until(lambda: len(hook.hits) == count, f"alert {count}")
        body: dict[str, Any] = hook.hits[-1].json()
        return body

    async def last_duration() -> float | None:
        async with hf.client.get("/api/v1/checks/job", headers=hf.auth) as resp:
            value: float | None = (await resp.json())["last_duration_seconds"]
            return value

    assert (await alert_after("/fail"))["event"] == "down"
    timed = await alert_after("/start", "")
    duration = await last_duration()
    assert timed["event"] == "recovery" and duration is not None and timed["run_duration_seconds"] == duration >= 0
    # Ends without a start: the status keeps the last run's duration, their alerts do not claim it.
    down, up = await alert_after("/fail"), await alert_after("")
    assert (down["event"], down["run_duration_seconds"]) == ("down", None)
    assert (up["event"], up["run_duration_seconds"]) == ("recovery", None)
    assert await last_duration() == duration


async def test_the_dashboard_names_a_channel_that_gave_up_its_last_alert_after_a_restart_too_until_one_is_sent(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # Kept in the dispatcher's memory, the banner went with a restart while the down was still told
    # to nobody (and `heartfly status` still counted it), and no node of a cluster ever showed it.
    hook, fine = await receivers(status=404), await receivers()
    key = new_key()
    config = write_config(
        webhook("hook", hook.url) + webhook("fine", fine.url) + check("job", key, ["hook", "fine"]) + fast(),
        server=SERVER,
    )

    async def banner(hf: Heartfly) -> str:
        async with hf.client.get("/", headers=hf.auth) as resp:
            assert resp.status == 200
            page = await resp.text()
        return page.partition('id="outbox"')[2].partition("</section>")[0]

    hf = await start(config)
    assert "gave up" not in await banner(hf)
    await hf.ping(key, "/fail")
    await hf.settled("job", 2)
    said = await banner(hf)
    assert "Channel hook gave up its last alert" in said and "Channel fine" not in said, said
    await hf.client.close()
    hf = await start(config)  # a restart: nothing of it in memory
    assert "Channel hook gave up its last alert" in await banner(hf)
    hook.status = 200  # the channel fixed: a test alert sent there says so
    assert (await post_test(hf, "hook"))[1]["status"] == "sent"
    assert "gave up" not in await banner(hf)


async def test_an_alert_dropped_as_its_check_left_the_config_is_not_counted_as_given_up_by_its_channel(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # `heartfly status` counted it "given up ... via hook" for a day, as if hook told nobody, and
    # `heartfly history NAME`, which it points to, knows no such check; the dashboard named no channel.
    hook = await receivers(503, 503)
    key = new_key()
    kept = check("kept", new_key(), ["hook"])
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + kept + fast("60s"), server=SERVER)
    hf = await start(config)
    await hf.ping(key, "/fail")
    await hf.wait_alert("job", "hook", "down", lambda a: len(a["attempt_log"]) >= 1)
    write_config(webhook("hook", hook.url) + kept + fast("60s"), server=SERVER)
    async with hf.client.post("/api/v1/reload", headers=hf.auth) as resp:
        assert resp.status == 200, await resp.text()

    def dropped() -> list[tuple[object, ...]]:
        return query(config, "SELECT status FROM outbox WHERE status != 'pending'")

    assert await until(dropped, "the removed check's alert to be dropped", timeout=5) == [("failed",)]
    reader = hf.client.app[RUNTIME].reader
    assert reader is not None
    assert await reader.count_given_up_alerts(0.0) == {}
    assert await reader.read_given_up_channels(["hook"]) == {}


# ---- test alerts ----------------------------------------------------------------------------


async def post_test(hf: Heartfly, channel: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    url = f"/api/v1/channels/{channel}/test"
    async with hf.client.post(url, headers=hf.auth if headers is None else headers) as resp:
        return resp.status, await resp.json()


def reported(result: dict[str, Any]) -> str:
    """A test alert's status, which always agrees with its attempt log (one read, one snapshot)."""
    return str(result["status"])


def channels_for_tests_toml(mailbox: Mailbox, hook: Receiver, broken: Receiver) -> str:
    return (
        mailbox.toml()
        + '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
        + webhook("hook", hook.url)
        + webhook("broken", broken.url)
        + check("job", new_key(), ["ops", "hook", "broken"])
        + fast()
    )


async def test_a_channel_test_goes_through_the_outbox_and_reports_its_attempt(
    start: Start, mailbox: Mailbox, receivers: Receivers, write_config: ConfigWriter
) -> None:
    await mailbox.start()
    hook, broken = await receivers(), await receivers(status=400)
    hf = await start(write_config(channels_for_tests_toml(mailbox, hook, broken), server=SERVER))

    status, result = await post_test(hf, "hook")
    assert status == 200
    assert (result["channel"], result["event"], reported(result)) == ("hook", "test", "sent")
    assert result["key"].startswith("test-") and outcomes(result) == ["sent"]
    [hit] = hook.hits
    assert hit.key == hit.json()["id"] == result["key"]
    assert hit.json()["event"] == "test"
    assert hit.json()["summary"] == "Heartfly test alert for channel hook: delivery works"

    status, result = await post_test(hf, "ops")
    assert (status, reported(result), outcomes(result)) == (200, "sent", ["sent"])
    [(_, msg)] = mailbox.received
    assert msg["Subject"] == "[TEST] Heartfly test alert for channel ops: delivery works"

    status, result = await post_test(hf, "broken")
    assert (status, reported(result), outcomes(result)) == (200, "failed", ["failed"])
    assert result["attempt_log"][0]["error"] == "HTTP 400: nope 400"

    assert await post_test(hf, "nope") == (404, {"error": 'no channel "nope"'})
    assert (await post_test(hf, "hook", headers={}))[0] == 401
    assert len(hook.hits) == 1
    assert await hf.alerts("job") == []  # test alerts belong to no check


async def test_a_channel_test_reports_an_attempt_that_takes_longer_than_alerts_timeout_within_the_channels_own(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(6.5)  # past [alerts] timeout (1 s) and the 5 s more the test waited
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", slow)
    server = await aiohttp_server(receiver)
    hook = webhook("hook", str(server.make_url("/hook")), 'timeout = "10s"')
    hf = await start(write_config(hook + fast(), server=SERVER))
    status, result = await post_test(hf, "hook")
    assert (status, reported(result), outcomes(result)) == (200, "sent", ["sent"])


# ---- apprise --------------------------------------------------------------------------------


async def test_an_apprise_channel_delivers_through_apprises_json_target_and_retries(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    target = await receivers(500, path="/apprise")
    assert target.url.startswith("http://127.0.0.1:")
    url = "json://" + target.url.removeprefix("http://")
    key = new_key()
    config = write_config(
        # timeout: the first send imports apprise and loads its plugins, which can take a second under load
        f'[channels.chat]\ntype = "apprise"\nurls = ["{url}"]\ntimeout = "5s"\n' + check("job", key, ["chat"]) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/2", body="exit 2: it broke")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"])
    assert "apprise reported a failed delivery" in alert["attempt_log"][0]["error"]
    assert [h.path for h in target.hits] == ["/apprise", "/apprise"]
    body = target.hits[-1].json()
    assert body["title"] == "[DOWN] job failed with exit status 2"
    assert body["message"].startswith("job failed with exit status 2\n")
    assert "exit 2: it broke" in body["message"] and f"Link: {PUBLIC}/checks/job" in body["message"]


@pytest.mark.parametrize(
    ("fmt", "message", "quoted"),
    [
        (
            "html",
            '<a href="https://evil.example/">fix it here</a> when n < 5',
            "&lt;a&nbsp;href=&quot;https://evil.example/&quot;&gt;fix&nbsp;it&nbsp;here&lt;/a&gt;&nbsp;when&nbsp;n&nbsp;&lt;&nbsp;5",
        ),
        ("markdown", "[fix it here](https://evil.example/)", r"\[fix it here\]\(https://evil\.example/\)"),
    ],
    ids=["html", "markdown"],
)
async def test_a_ping_message_reaches_an_apprise_service_that_renders_markup_as_text(
    start: Start, receivers: Receivers, write_config: ConfigWriter, fmt: str, message: str, quoted: str
) -> None:
    # apprise was not told the alert is plain text, so it passed the ping's message as it was to a
    # service that renders HTML (Telegram's default, Teams, apprise's own email) or Markdown: a
    # job's output drew a link of its own in the alert, and a "<" in it (n < 5, "Usage: cp <src>")
    # made Telegram refuse the message ("can't parse entities") on every retry, until it expired.
    target = await receivers(path="/apprise")
    url = "json://" + target.url.removeprefix("http://") + f"?format={fmt}"  # a service of that markup
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = ["{url}"]\ntimeout = "5s"\n' + check("job", key, ["chat"]) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail", body=message)
    [alert] = await hf.settled("job", 1)
    assert alert["status"] == "sent"
    body = target.hits[-1].json()["message"]
    assert quoted in body, body
    assert message not in body


async def test_an_apprise_down_alert_is_a_failure_and_a_recovery_a_success_for_the_services_that_act_on_it(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # PagerDuty (action=map) resolves on a success and raises on the rest, with an info severity for
    # an info; Opsgenie (action=map) only adds a note for an info: the type decides what they do.
    target = await receivers(path="/apprise")
    url = "json://" + target.url.removeprefix("http://")
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = ["{url}"]\ntimeout = "5s"\n' + check("job", key, ["chat"]) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    await hf.settled("job", 1)
    await hf.ping(key)
    await hf.settled("job", 2)
    assert [(h.json()["title"].split("]")[0], h.json()["type"]) for h in target.hits] == [
        ("[DOWN", "failure"),
        ("[UP", "success"),
    ]


async def test_an_apprise_service_that_hangs_past_the_time_limit_does_not_have_the_others_notified_again(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # The attempt's time limit cut the whole gather off: the services that had taken it were not
    # remembered, and every retry told them again.
    up = await receivers(path="/up")
    hung = await receivers(hanging=True, path="/hung")
    urls = ", ".join(f'"json://{r.url.removeprefix("http://")}"' for r in (up, hung))
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = [{urls}]\ntimeout = "1s"\n'
        + check("job", key, ["chat"])
        + fast("6s"),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    await until(lambda: len(hung.hits) >= 3, "three tries of the hung service", 15)
    assert len(up.hits) == 1


async def test_an_apprise_url_listed_twice_is_told_once(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    target = await receivers(path="/twice")
    url = "json://" + target.url.removeprefix("http://")
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = ["{url}", "{url}"]\ntimeout = "5s"\n'
        + check("job", key, ["chat"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], len(target.hits)) == ("sent", 1)


async def test_an_apprise_retry_for_one_service_that_is_down_does_not_notify_the_others_again(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    up = await receivers(path="/up")
    down = await receivers(500, 500, path="/down")  # down for two tries, then up
    urls = ", ".join(f'"json://{r.url.removeprefix("http://")}"' for r in (up, down))
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = [{urls}]\ntimeout = "5s"\n' + check("job", key, ["chat"]) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "retry", "sent"])
    assert "failed delivery to URL 2 of 2" in alert["attempt_log"][0]["error"]
    assert (len(up.hits), len(down.hits)) == (1, 3)  # the service that was up heard of it once


async def test_an_apprise_url_that_makes_apprise_raise_fails_alone_and_the_others_are_notified(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # apprise's Telegram plugin raises a TypeError on this one (a "?" after a port-like token): it
    # was an "unexpected error" with a traceback at every try, and the other URL never heard of it
    target = await receivers(path="/other")
    urls = f'"tgram://123456789:AAAA/1?", "json://{target.url.removeprefix("http://")}"'
    key = new_key()
    config = write_config(
        f'[channels.chat]\ntype = "apprise"\nurls = [{urls}]\ntimeout = "5s"\n' + check("job", key, ["chat"]) + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("failed", ["failed"]), alert
    assert alert["attempt_log"][0]["error"] == "apprise does not understand URL 1 of 2"
    assert [h.path for h in target.hits] == ["/other"]


# ---- a crash between commit and delivery ----------------------------------------------------


async def test_an_alert_committed_before_a_kill_9_is_delivered_once_after_restart(
    write_config: ConfigWriter,
) -> None:
    sock = unused_port_socket()  # the receiver's port: refused until it listens
    port = sock.getsockname()[1]
    receiver = Receiver()
    runner = web.AppRunner(receiver.app())
    key = new_key()
    db = write_config(webhook("hook", f"http://127.0.0.1:{port}/hook") + check("job", key, ["hook"]) + fast("60s"))
    first, second = Server(db.path), Server(db.path)
    try:
        await asyncio.to_thread(first.start)
        async with aiohttp.ClientSession() as session, session.get(f"{first.url}/ping/{key}/fail") as resp:
            assert resp.status == 200
        await until(lambda: len(query(db, "SELECT id FROM alert_attempts")) >= 2, "two failed attempts")
        first.signal(signal.SIGKILL)
        assert first.proc is not None and await asyncio.to_thread(first.proc.wait, 10) == -signal.SIGKILL

        [(alert_key, status, attempts)] = query(db, "SELECT key, status, attempts FROM outbox")
        assert status == "pending" and attempts >= 2
        assert {o for (o,) in query(db, "SELECT outcome FROM alert_attempts")} == {"retry"}
        assert query(db, "SELECT old, new, reason FROM flips") == [("new", "down", "failed")]

        await runner.setup()
        await web.SockSite(runner, sock).start()  # the receiver is up now
        await asyncio.to_thread(second.start)
        await until(lambda: query(db, "SELECT status FROM outbox") == [("sent",)], "delivery after the restart")

        assert len({h.key for h in receiver.hits}) == 1  # exactly once, deduplicated by Idempotency-Key
        assert len(receiver.hits) == 1  # and in fact one request: nothing reached it before the kill
        hit = receiver.hits[0]
        assert hit.key == hit.json()["id"] == alert_key
        assert (hit.json()["event"], hit.json()["reason"]) == ("down", "failed")
        assert query(db, "SELECT outcome FROM alert_attempts ORDER BY id")[-1] == ("sent",)
        assert len(query(db, "SELECT id FROM outbox")) == 1  # the restart made no second alert
        assert await asyncio.to_thread(second.stop) == 0
    finally:
        first.kill()
        second.kill()
        await runner.cleanup()
        sock.close()


# ---- config errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(
            check("x", new_key(), ["nope"]),
            'checks.x.channels: no channel "nope" (channels: none are defined)',
            id="check names a missing channel",
        ),
        pytest.param(
            '[defaults]\nchannels = ["nope"]\n' + '[checks.x]\nkey = "' + new_key() + '"\nevery = "1h"\n',
            'defaults.channels: no channel "nope"',
            id="defaults name a missing channel",
        ),
        pytest.param(
            '[channels.mail]\ntype = "email"\nto = ["ops@example.org"]\n' + check("x", new_key(), ["mail"]),
            "channels.mail: an email channel needs an [smtp] section",
            id="email without smtp",
        ),
        pytest.param(
            '[channels.pd]\ntype = "pagerduty"\n' + check("x", new_key(), ["pd"]),
            'channels.pd.type: unknown type "pagerduty": use email, webhook, apprise',
            id="unknown channel type",
        ),
        pytest.param(
            '[channels.ops]\ntpye = "log"\n' + check("x", new_key(), ["ops"]),
            'channels.ops.tpye: unknown key (did you mean "type"?)',
            id="misspelt channel type key",
        ),
        pytest.param(
            '[channels.tg]\ntype = "apprise"\n' + check("x", new_key(), ["tg"]),
            "channels.tg.urls: needs at least one apprise URL",
            id="apprise without urls",
        ),
        pytest.param(
            webhook("h", "ftp://example.org/x") + check("x", new_key(), ["h"]),
            "channels.h.url: expected an http(s) URL",
            id="webhook url not http",
        ),
        pytest.param(
            webhook("h", "http://127.0.0.1:99999/hook") + check("x", new_key(), ["h"]),
            "channels.h.url: expected an http(s) URL (its port is no number from 1 to 65535)",
            id="webhook url with no port there can be",
        ),
        pytest.param(
            webhook("h", "http://[::1/hook") + check("x", new_key(), ["h"]),
            "channels.h.url: expected an http(s) URL (its host cannot be read)",
            id="webhook url with a broken address",
        ),
        pytest.param(
            webhook("h", "https://user:pw@hooks.example.org/x", 'headers = { authorization = "Bearer t" }')
            + check("x", new_key(), ["h"]),
            "channels.h: the url has a user name (Basic auth) and headers an Authorization: keep one",
            id="webhook url with credentials and an authorization header",
        ),
        pytest.param(
            webhook("h", "http://:80/hook") + check("x", new_key(), ["h"]),
            "channels.h.url: expected an http(s) URL with a host and port",
            id="webhook url without a host",
        ),
        # 1ms was taken: a dead webhook was retried about 150 times a second, each attempt a row and a log line.
        *(
            pytest.param(
                f'[alerts]\n{key} = "1ms"\n', f"alerts.{key}: must be at least 100ms", id=f"alerts {key} of 1ms"
            )
            for key in ("retry_initial", "retry_max", "timeout")
        ),
        pytest.param(
            "[alerts]\nconcurrency = 9223372036854775808\n",
            "alerts.concurrency: must be at most 10000 (attempts in flight per channel)",
            id="alerts concurrency past 64 bits",
        ),
        pytest.param(
            webhook("h", "http://127.0.0.1:9/hook", 'timeout = "1ms"') + check("x", new_key(), ["h"]),
            "channels.h.timeout: must be at least 100ms",
            id="a channel's timeout of 1ms",
        ),
        pytest.param(
            '[smtp]\nhost = "127.0.0.1"\ntimeout = "1ms"\n',
            "smtp.timeout: must be at least 100ms",
            id="smtp timeout of 1ms",
        ),
    ],
)
def test_a_config_error_in_alert_settings_names_the_key_path(
    write_config: ConfigWriter, body: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        write_config(body)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems
    if problem.startswith("channels."):  # a broken channel is one error, not a second "no channel" too
        assert not any("no channel" in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    "url",
    [
        "hooks.slack.com/services/T000/B000/SLACKSECRET",  # the scheme left out
        "https://user:SECRET@hooks.example.com:99999/x?token=SECRET",
        "https://hooks.example.com/x?token=SECRET bad",
        "https://[::1/x?token=SECRET",
        "https://user:SECRET/word@hooks.example.com/x",  # a "/" in the password: urlsplit reads a port
    ],
)
def test_a_webhook_url_the_config_refuses_is_not_repeated_in_the_error_for_it_may_hold_a_token(
    write_config: ConfigWriter, url: str
) -> None:
    # The error reaches check-config's output and, on a refused reload, the journal and the API's answer.
    with pytest.raises(ConfigError) as info:
        write_config(webhook("h", url) + check("x", new_key(), ["h"]))
    problems = info.value.problems
    assert any(p.startswith("channels.h.url: expected an http(s) URL") for p in problems), problems
    assert not any("SECRET" in p for p in problems), problems
