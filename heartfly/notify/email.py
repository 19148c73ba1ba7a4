"""The email channel: aiosmtplib with the [smtp] settings; plain-text and HTML parts."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import yarl

from heartfly.core.config_alerts import ChannelConfig, SmtpConfig
from heartfly.core.printable import escape_lines
from heartfly.notify import DeliveryError, PermanentError
from heartfly.notify.message import Alert, html_body, subject, text

QUIT_WAIT = 0.25  # seconds for the answer to QUIT, once the message is taken (a server answers in ms)
# Seconds for the answer to a message's DATA: RFC 5321's 10 minutes (4.5.3.2.6), as Postfix waits. A
# server answers once it has queued the message, after its content filters: one slower than the
# attempt's time limit, cut off, had queued it all the same and got it again with every retry.
DATA_WAIT = 600.0

# Seconds a channel waits after the server refused its login (as after a webhook's Retry-After), up to
# [alerts] retry_max: each alert of a storm retried the wrong password on its own backoff, hundreds
# of logins in minutes, which gets the account locked or the address banned (fail2ban), and then
# the fixed password fails too.
LOGIN_WAIT = 60.0

# 5xx replies that a fixed config or a recovered server may still turn into a success.
_RETRYABLE_5XX = {530, 534, 535, 538}  # authentication: the operator may fix the password file


def build(smtp: SmtpConfig, channel: ChannelConfig, alert: Alert) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(alert)
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=alert.key.replace("-", "."), domain=_id_domain(smtp.sender))
    msg["X-Heartfly-Alert"] = alert.key
    # Sent by a program: vacation and out-of-office responders answer none of it (RFC 3834;
    # Exchange's own header), or each alert to someone away drew a reply to `from`.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    # Read with mail(1), or cat, in a terminal: a ping's escape sequences are shown, not obeyed
    msg.set_content(escape_lines(text(alert)))
    msg.add_alternative(html_body(alert), subtype="html")
    return msg


# RFC 5322's id-right: a dot-atom (a domain name) or a domain literal ("[192.0.2.1]")
_ID_RIGHT = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*|\[[!-Z^-~]*\]", re.ASCII)


def _id_domain(sender: str) -> str:
    """The Message-ID's domain: the sender's ("@heartfly", no domain name, is what spam filters
    score), in ASCII, as a header must be: an IDN's punycode as DNS has it (IDNA 2008, as a webhook's
    host: Python's own codec made "straße.de" the other domain "strasse.de"), without a root's
    trailing dot (no msg-id's). "heartfly" if it has none a msg-id can hold."""
    domain = sender.rpartition("@")[2].rstrip(".")
    if not domain.isascii():
        try:
            domain = yarl.URL.build(scheme="http", host=domain).raw_host or ""
        except (UnicodeError, ValueError):
            domain = ""
    return domain if _ID_RIGHT.fullmatch(domain) else "heartfly"


class _Client(aiosmtplib.SMTP):
    """An SMTP client that, once the server has invited the message (354) and it is written, gives
    the server's answer to it DATA_WAIT, moving the attempt's time limit (`limit`) on as far. The
    answer to DATA itself keeps the limit: a server that never invites the message has not got it,
    and is cut off (and retried) as one hung before the recipients is."""

    def __init__(self, limit: asyncio.Timeout | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit
        self.refused: aiosmtplib.SMTPAuthenticationError | None = None  # the password, refused in PLAIN

    # aiosmtplib tries each AUTH method the server offers until one works. PLAIN and LOGIN send the
    # same password: refused (535) in one, it is in the other, and the second failed login of each
    # attempt doubled the failures that get an account locked or an address banned (fail2ban). Not
    # after another answer (504: a method offered but not served), nor after CRAM-MD5's refusal.
    async def auth_plain(
        self, username: str | bytes, password: str | bytes, /, **kwargs: Any
    ) -> aiosmtplib.SMTPResponse:
        try:
            return await super().auth_plain(username, password, **kwargs)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code == 535:
                self.refused = exc
            raise

    async def auth_login(
        self, username: str | bytes, password: str | bytes, /, **kwargs: Any
    ) -> aiosmtplib.SMTPResponse:
        if self.refused is not None:
            raise self.refused
        return await super().auth_login(username, password, **kwargs)

    async def data(
        self,
        message: str | bytes,
        /,
        *,
        timeout: Any = None,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> aiosmtplib.SMTPResponse:
        protocol, limit = self.protocol, self.limit
        read: Callable[..., Awaitable[aiosmtplib.SMTPResponse]] | None = getattr(protocol, "read_response", None)
        if protocol is None or read is None:  # not connected: aiosmtplib's own error
            return await super().data(message, timeout=DATA_WAIT)
        replies = 0

        async def read_response(timeout: float | None = None) -> aiosmtplib.SMTPResponse:  # noqa: ASYNC109
            nonlocal replies
            replies += 1
            if replies == 1:  # the answer to DATA: nothing sent yet
                return await read(timeout=timeout)
            # The message is written: the server queues it before it answers.
            if limit is not None and (when := limit.when()) is not None:
                limit.reschedule(max(when, asyncio.get_running_loop().time() + DATA_WAIT))
            return await read(timeout=DATA_WAIT)

        protocol.read_response = read_response  # type: ignore[method-assign]
        try:
            return await super().data(message)  # the answer to DATA: [smtp] timeout, within the limit
        finally:
            protocol.__dict__.pop("read_response", None)


async def send(
    smtp: SmtpConfig, channel: ChannelConfig, alert: Alert, reached: set[str], limit: asyncio.Timeout | None = None
) -> None:
    """Send to the channel's recipients not in `reached` (those an earlier attempt reached), and add
    the ones this attempt reaches: a retry after a refusal for now (greylisting) goes to the rest.

    Not aiosmtplib.send: cancelled by the attempt's time limit, it still sends QUIT and waits up to
    `[smtp] timeout` for the answer, so a server that hangs held the attempt twice as long. Here the
    connection is closed at once, and QUIT, once the message is taken, waits QUIT_WAIT at most: its
    answer cannot turn a delivered message into a retry (nor would the retry send it again: every
    recipient is in `reached` by then)."""
    recipients = [r for r in channel.to if r not in reached]
    if not recipients:  # all reached by an attempt cut off in its QUIT
        return
    client = _Client(
        limit,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        timeout=smtp.timeout,
    )
    try:
        await client.connect()
        errors, _ = await client.send_message(build(smtp, channel, alert), recipients=recipients)
        reached.update(r for r in recipients if r not in errors)
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            async with asyncio.timeout(QUIT_WAIT):
                await client.quit()
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise _refused(f"every recipient was refused: {_refusals(exc.recipients)}", codes) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"SMTP login failed ({exc.code} {exc.message}): check smtp.username/password_file",
            retry_after=LOGIN_WAIT,
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        error = f"SMTP server said {exc.code} {exc.message}"
        if 500 <= exc.code < 600 and exc.code not in _RETRYABLE_5XX:
            raise PermanentError(error) from None
        raise DeliveryError(error) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as exc:  # aiosmtplib's for no connection
        if isinstance(exc.__cause__, ssl.SSLError):  # security = "tls": connected, its TLS handshake failed
            raise DeliveryError(
                f"SMTP server {smtp.host}:{smtp.port} answered, then failed: TLS handshake: {exc.__cause__}"
            ) from None
        if isinstance(exc.__cause__, aiosmtplib.SMTPException):  # connected: no greeting came, or it hung up
            raise DeliveryError(
                f"SMTP server {smtp.host}:{smtp.port} took the connection but sent no greeting ({exc}); a port"
                ' that expects TLS from the first byte (465) needs security = "tls"'
            ) from None
        raise DeliveryError(f"cannot reach SMTP server {smtp.host}:{smtp.port}: {exc}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Connected: no STARTTLS or AUTH, no SMTPUTF8 for a non-ASCII address, a TLS handshake that
        # failed, a connection dropped mid-way. Not "cannot reach": the network is not what to check.
        raise DeliveryError(f"SMTP server {smtp.host}:{smtp.port} answered, then failed: {exc}") from None
    finally:
        client.close()
    if errors:  # some recipients took it, some refused
        refusals = ", ".join(f"{r} ({e.code} {e.message})" for r, e in errors.items())
        raise _refused(f"delivered, but refused for: {refusals}", [e.code for e in errors.values()])


def _refused(error: str, codes: list[int]) -> DeliveryError:
    """A refusal for now (4xx: greylisting, a full mailbox) is retried; one of only 5xx is final."""
    if any(400 <= code < 500 for code in codes):
        return DeliveryError(error)
    return PermanentError(error)


def _refusals(recipients: list[aiosmtplib.SMTPRecipientRefused]) -> str:
    return ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in recipients)
