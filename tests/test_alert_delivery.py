"""Alert delivery under faults: a full disk, endless error bodies, greylisting, outages and backlogs.

Real sockets throughout: aiohttp webhook receivers, an aiosmtpd SMTP server, a tmpfs that fills
up. The fixtures and helpers are those of tests/test_alerts.py.
"""

# ruff: noqa: F811 - the fixtures imported below are named again as test parameters, as pytest wants

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from pytest_aiohttp import AiohttpServer

from tests.conftest import ConfigWriter, new_key
from tests.test_alerts import (
    SERVER,
    Inbox,
    Mailbox,
    Receivers,
    Start,
    check,
    fast,
    mailbox,  # noqa: F401 - a fixture
    outcomes,
    receivers,  # noqa: F401 - a fixture
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_faults import tiny_disk  # noqa: F401 - a fixture

# ---- a full disk --------------------------------------------------------------------------


def fill(disk: Path) -> Path:
    """Fill the filesystem to its last block; deleting the returned file gives the space back."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


async def test_an_alert_delivered_while_the_disk_is_full_is_sent_once_and_recorded_when_space_returns(
    start: Start, receivers: Receivers, write_config: ConfigWriter, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook = await receivers(hanging=True)
    key = new_key()
    config = write_config(
        webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("60s"),
        server=f'{SERVER}\ndatabase = "{tiny_disk / "hb.db"}"',
    )
    hf = await start(config)
    kept = "kept in memory until the database can be written"
    refused = 0

    async def log_ping() -> None:  # big pings use up the WAL's spare pages, and a batch fails as a whole
        nonlocal refused
        async with hf.client.post(f"/ping/{key}/log", data=b"x" * 50_000) as resp:
            refused += resp.status == 503

    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the down alert's request")  # held until the disk is full
    filler = fill(tiny_disk)
    try:
        while not refused:
            await log_ping()
        hook.hanging = False
        hook.release.set()  # delivered now, while its attempt cannot be written
        while kept not in caplog.text and len(hook.hits) < 2:
            await log_ping()
        before = refused
        while refused < before + 2:  # two more failed commits: time for a repeat delivery to show up
            await log_ping()
        assert len(hook.hits) == 1
        assert "Task exception was never retrieved" not in caplog.text
    finally:
        filler.unlink()
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["sent"])
    assert len(hook.hits) == 1
    assert caplog.text.count(kept) == 1


# ---- a receiver's endless error body ------------------------------------------------------


async def test_a_webhook_answering_500_with_an_endless_body_is_retried_with_the_status_and_a_short_excerpt(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    requests = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        if requests > 1:
            return web.Response(text="ok")
        resp = web.StreamResponse(status=500)
        await resp.prepare(request)
        await resp.write(b"overloaded: ")
        deadline = time.monotonic() + 10  # bounded, should the client never hang up
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline:
                await resp.write(b"x" * 65536)
        return resp

    receiver = web.Application()
    receiver.router.add_post("/hook", endless)
    server = await aiohttp_server(receiver)
    key = new_key()
    config = write_config(webhook("hook", str(server.make_url("/hook"))) + check("job", key, ["hook"]) + fast())
    hf = await start(config)
    await hf.ping(key, "/fail")
    [alert] = await hf.settled("job", 1)
    assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"])
    error = alert["attempt_log"][0]["error"]
    assert error.startswith("HTTP 500: overloaded: xxx") and len(error) < 300


# ---- SMTP greylisting -----------------------------------------------------------------------


class Greylisting(Inbox):
    """Refuses each grey* recipient with 450 the first time, as greylisting does; accepts later."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("grey") and address not in self.refused:
            self.refused.add(address)
            return "450 4.2.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_recipient_greylisted_with_smtp_450_is_retried_and_only_that_recipient_gets_the_retry(
    start: Start, mailbox: Mailbox, write_config: ConfigWriter
) -> None:
    mailbox.inbox = Greylisting()
    await mailbox.start()
    key = new_key()
    config = write_config(
        mailbox.toml()
        + '[channels.pair]\ntype = "email"\nto = ["ops@example.org", "grey1@example.org"]\n'
        + '[channels.solo]\ntype = "email"\nto = ["grey2@example.org"]\n'
        + check("job", key, ["pair", "solo"])
        + fast(),
        server=SERVER,
    )
    hf = await start(config)
    await hf.ping(key, "/fail")
    alerts = await hf.settled("job", 2)
    for alert in alerts:
        assert (alert["status"], outcomes(alert)) == ("sent", ["retry", "sent"]), alert
        assert "450" in alert["attempt_log"][0]["error"]
    assert sorted(envelope.rcpt_tos for envelope, _ in mailbox.received) == [
        ["grey1@example.org"],
        ["grey2@example.org"],
        ["ops@example.org"],
    ]
