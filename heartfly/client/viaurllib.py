"""The job side's HTTP through urllib, for what heartfly.client.http1 leaves to it: a proxy from the
environment (urllib's ProxyHandler, with no_proxy). Imported only then:
urllib.request and http.client are the slowest part of a client's start-up.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from types import FrameType
from typing import IO

from heartfly.client.http1 import BadAnswer, Response


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would turn the POST into a GET and drop the body: report it instead.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None


def _opener(read_timeout: float) -> urllib.request.OpenerDirector:
    """urllib with one timeout for connecting (TCP + TLS) and another for waiting on the answer."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            self.sock.settimeout(read_timeout)

    class TLSConn(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            self.sock.settimeout(read_timeout)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Conn, req)

    class TLSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(TLSConn, req)

    return urllib.request.build_opener(Handler, TLSHandler, _NoRedirects)


def post(
    url: str, body: bytes, headers: dict[str, str], connect_timeout: float, read_timeout: float, limit: int
) -> Response:
    """As http1.post, through urllib (redirects are answers, never followed: a POST must not turn
    into a GET that drops its body)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - check_url: http(s) only
    with _overall(max(connect_timeout, read_timeout)):  # each is within the ping's budget: so is the whole
        try:
            with _opener(read_timeout).open(request, timeout=connect_timeout) as response:
                return Response(response.status, response.reason, _lower(response.headers), response.read(limit))
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read(limit)
            except (OSError, http.client.HTTPException):
                raw = b""
            return Response(exc.code, str(exc.reason or ""), _lower(exc.headers), raw)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise reason from None  # as http1 raises it: the transport does not retry it
            raise OSError(reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)) from None
        except http.client.HTTPException as exc:
            raise BadAnswer(str(exc) or type(exc).__name__) from None


def _lower(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@contextlib.contextmanager
def _overall(seconds: float) -> Iterator[None]:
    """A bound on the whole exchange, as http1.post keeps one: http.client's timeouts bound each
    read, and a server that sends a byte a second would hold the job back for hours. SIGALRM, in
    the main thread (the job side's only one); elsewhere each read's timeout is what bounds it."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the server's answer took too long")

    began = time.monotonic()
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    if left and left <= seconds:  # the caller's alarm (`alarm(N); exec heartfly run`) comes first: its own
        yield
        return
    try:
        saved = signal.signal(signal.SIGALRM, expired)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved)
        if left:  # the caller's, with the time it has left
            signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - began), 0.001))
