"""Keep hostile or broken HTTP clients from filling the journal (and from putting ping keys in it).

aiohttp logs every request its parser rejects (bad request line, header too long, bad chunking)
at ERROR with a traceback and the raw request line, which may hold a ping key. Those requests
were already answered 400; this filter drops the records and logs one counted summary a minute.
So too for a body that does not decode (`Content-Encoding: gzip` on plain text) sent where no
handler reads it: aiohttp fails draining it after the answer and logs that as unhandled.

Out of file descriptors, asyncio logs each failed accept() with a traceback, thousands a second:
the first becomes one line that says what to do, and then one line every ACCEPT_ERROR_EVERY.
"""

from __future__ import annotations

import errno
import logging
import math
import re
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

SUMMARY_EVERY = 60.0
ACCEPT_ERROR_EVERY = 10.0
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class RejectedRequests(logging.Filter):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.dropped = 0
        self._clock = clock
        self._since = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
            exc = exc.__cause__
        if not isinstance(exc, HttpProcessingError):
            return True
        self.dropped += 1
        now = self._clock()
        if now - self._since >= SUMMARY_EVERY:
            record.msg, record.args, record.exc_info, record.exc_text = (
                "%d malformed HTTP request(s) answered 400 in the last %.0f s (last: %s)",
                (self.dropped, now - self._since, exc.__class__.__name__),
                None,
                None,
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            self.dropped, self._since = 0, now
            return True
        return False


class AcceptErrors(logging.Filter):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.held = 0  # since the last line
        self._clock = clock
        self._next_at = -math.inf

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES and "accept" in record.getMessage()):
            return True
        now = self._clock()
        if now < self._next_at:
            self.held += 1
            return False
        more = f" ({self.held} more since the last line)" if self.held else ""
        record.msg, record.args, record.exc_info, record.exc_text = (
            "cannot accept new connections: %s%s; retrying every second. If this recurs, raise the"
            " open file limit (LimitNOFILE in the systemd unit)",
            (exc.strerror, more),
            None,
            None,
        )
        self.held, self._next_at = 0, now + ACCEPT_ERROR_EVERY
        return True


class AppriseSecrets(logging.Filter):
    """apprise logs the URL it cannot read whole ("Unparseable URL tgrams://<bot token>/...",
    "Unparseable Telegram URL tgram://<bot token>", "Could not load Discord URL: discord://..."), and
    at debug level every request's URL (Telegram's bot token, a Slack webhook's path): the first is
    logged without it (Heartfly's error names the URL by its place), as is a token it finds invalid,
    and the others are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        message = record.getMessage()
        words = _APPRISE_URL_ERROR.match(message)
        if words:
            record.msg, record.args = f"{words[0]}: not shown, it may hold a token", ()
        elif "(" in message:
            shown = _APPRISE_GIVEN_VALUE.sub("(not shown)", message)
            if shown != message:
                record.msg, record.args = shown, ()
        return True


# "Unsupported URL", "Unparseable URL", and with a service's name between: "Unparseable Telegram URL",
# "Could not load Microsoft Teams URL"
_APPRISE_URL_ERROR = re.compile(r"(?:Unparseable|Unsupported|Could not load)(?: [^:/]*?)? URL\b")
# A value its plugin refuses, quoted: "The Telegram Bot Token specified (<token>) is invalid.", "An
# invalid Slack (third) Token (<token>) was specified." A token with a typo is the token but for it.
_APPRISE_GIVEN_VALUE = re.compile(r"\([^()]*\)(?= (?:is|are|was|were)\b)|(?<=specified )\([^()]*\)")


# apprise's own, and urllib3's under its requests, whose debug lines quote each request's path and
# query ('http://host "POST /bot<token>/sendMessage HTTP/1.1" 200'). A logger's filter does not
# reach its children, so each is named. Heartfly itself sends with aiohttp and urllib, not urllib3.
APPRISE_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry")


def install() -> RejectedRequests:
    rejected = RejectedRequests()
    logging.getLogger("aiohttp.server").addFilter(rejected)
    logging.getLogger("asyncio").addFilter(AcceptErrors())
    secrets = AppriseSecrets()
    for name in APPRISE_LOGGERS:
        logging.getLogger(name).addFilter(secrets)
    return rejected
