"""The 10 minutes an email's DATA gets (RFC 5321) are for the server's answer to the message it has
taken, not for a server that never invites the message (no 354 to DATA): that one has nothing and
is cut off at the attempt's time limit, as before the recipients."""

from __future__ import annotations

import asyncio
import time

from heartfly.core.config_alerts import ChannelConfig, SmtpConfig
from heartfly.notify import email
from heartfly.notify.message import Alert


async def _smtp(never_354: bool) -> tuple[asyncio.AbstractServer, int, list[bytes]]:
    """A bare SMTP server: takes the recipients, then never answers DATA (or, if not never_354,
    invites the message and never answers it)."""
    seen: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        try:
            while line := await reader.readline():
                seen.append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-test\r\n250 8BITMIME\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    writer.write(b"250 OK\r\n")
                elif verb == b"DATA" and not never_354:
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    seen.append(b"<message>")
                    await asyncio.sleep(3600)  # a filter that never answers
                elif verb == b"DATA":
                    await asyncio.sleep(3600)  # the message never invited
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


ALERT = Alert(key="flip-1", event="down", payload={"check": "job", "reason": "failed", "at": 0.0},
              last_ping=None, link="http://127.0.0.1/checks/job")  # fmt: skip


async def _attempt(port: int, limit_s: float) -> float:
    smtp = SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5.0)
    channel = ChannelConfig("ops", "email", to=("ops@example.org",))
    started = time.monotonic()
    try:
        async with asyncio.timeout(6):  # the test's own bound, far below 10 minutes
            try:
                async with asyncio.timeout(limit_s) as limit:
                    await email.send(smtp, channel, ALERT, set(), limit)
            except TimeoutError:
                pass
    except TimeoutError:
        pass
    return time.monotonic() - started


async def test_a_server_that_never_answers_the_data_command_is_cut_off_at_the_attempts_limit() -> None:
    server, port, seen = await _smtp(never_354=True)
    try:
        took = await _attempt(port, 1.0)
    finally:
        server.close()
    assert any(line.upper().startswith(b"DATA") for line in seen)
    assert took < 3.0, f"held {took:.1f} s: the message was never sent, the 10 minutes are not its"


async def test_a_message_taken_gets_longer_than_the_attempts_limit_for_its_answer() -> None:
    server, port, seen = await _smtp(never_354=False)
    try:
        took = await _attempt(port, 1.0)
    finally:
        server.close()
    assert b"<message>" in seen
    assert took >= 5.0  # still waiting for the answer when the test gave up (6 s)
