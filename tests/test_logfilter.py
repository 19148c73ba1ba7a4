"""Malformed requests are answered 400 without a traceback (or a ping key) in the log."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable

import pytest

from heartfly.server import logfilter
from tests.conftest import new_key
from tests.proc import Server


def test_a_parser_rejection_is_dropped_and_counted_but_other_errors_pass() -> None:
    from aiohttp.http_exceptions import LineTooLong

    rejected = logfilter.RejectedRequests()

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), (type(exc), exc, None)
        )

    assert rejected.filter(record(LineTooLong("x", "8190"))) is False and rejected.dropped == 1
    assert rejected.filter(record(RuntimeError("a real bug"))) is True


def test_a_summary_line_replaces_the_tracebacks_once_a_minute() -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    now = [100.0]
    rejected = logfilter.RejectedRequests(clock=lambda: now[0])
    exc = BadHttpMessage("bad")
    rec = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "x", (), (type(exc), exc, None))
    assert rejected.filter(rec) is False
    now[0] += 61
    assert rejected.filter(rec) is True
    assert rec.levelname == "WARNING" and rec.exc_info is None
    assert rec.getMessage().startswith("2 malformed HTTP request(s) answered 400")


def test_accept_errors_for_want_of_descriptors_are_one_line_then_one_every_ten_seconds() -> None:
    import errno

    now = [100.0]
    accept = logfilter.AcceptErrors(clock=lambda: now[0])
    exc = OSError(errno.EMFILE, "Too many open files")

    def record(message: str, error: BaseException) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, (), (type(error), error, None))

    first = record("socket.accept() out of system resource", exc)
    assert accept.filter(first) is True and first.exc_info is None
    assert first.getMessage().startswith("cannot accept new connections: Too many open files; retrying")
    assert accept.filter(record("socket.accept() out of system resource", exc)) is False and accept.held == 1
    assert accept.filter(record("Task exception was never retrieved", exc)) is True  # not an accept()
    now[0] += 10
    later = record("socket.accept() out of system resource", exc)
    assert accept.filter(later) is True and "(1 more since the last line)" in later.getMessage()


def test_the_daemon_logs_no_traceback_and_no_key_for_malformed_requests(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    key = new_key()
    config = folder / "hb.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n[checks.a]\nkey = "{key}"\nevery = "1h"\n'
    )
    with Server(config) as server:
        port = int(server.url.rsplit(":", 1)[1])

        async def send(data: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            head = await reader.read(40)
            writer.close()
            return head

        async def hostile() -> list[bytes]:
            return [
                await send(f"GET /ping/{key}/\x7f\xe2\x82\xac HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
                await send(b"GET /ping/x HTTP/1.1\r\nX-Big: " + b"v" * 20000 + b"\r\n\r\n"),
                # a 404 path reads no body; aiohttp drains it after answering, and fails
                await send(
                    b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\n\r\nnot gzip"
                ),
            ]

        answers = asyncio.run(hostile())
        assert all(a.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")) for a in answers[:2])
        assert answers[2].startswith(b"HTTP/1.1 404")
        assert server.stop() == 0
    assert "Traceback" not in server.log() and key not in server.log()


def test_apprise_logs_no_token_of_a_url_it_cannot_read_nor_of_its_requests_at_debug_level(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    key = new_key()
    config = folder / "hb.toml"
    urls = '["tgrams://111111:BOTSECRET/123", "json://127.0.0.1:9/PATHSECRET"]'  # a typo'd scheme; a closed port
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n[channels.chat]\ntype = "apprise"\nurls = {urls}\n'
        f'timeout = "5s"\n[checks.a]\nkey = "{key}"\nevery = "1h"\nchannels = ["chat"]\n'
    )
    with Server(config, args=("--log-level", "debug")) as server:
        with urllib.request.urlopen(f"{server.url}/ping/{key}/fail", timeout=10) as resp:
            assert resp.status == 200
        assert server.wait_for_log("apprise reported a failed delivery to URL 2 of 2", timeout=30), server.log()
        assert server.stop() == 0
    assert "BOTSECRET" not in server.log() and "PATHSECRET" not in server.log()
    assert "Unparseable URL: not shown" in server.log()


def _apprise_log(caplog: pytest.LogCaptureFixture, action: Callable[[], object]) -> str:
    """What reaches Heartfly's handlers while `action` runs at debug level, with the filters
    `logfilter.install()` puts on every logger (taken off again afterwards)."""

    def loggers() -> list[logging.Logger]:
        named = logging.Logger.manager.loggerDict.values()
        return [logging.getLogger(), *(lg for lg in named if isinstance(lg, logging.Logger))]

    before = {id(f) for lg in loggers() for f in lg.filters}
    logfilter.install()
    try:
        with caplog.at_level(logging.DEBUG):
            action()
    finally:
        for lg in loggers():
            for added in [f for f in lg.filters if id(f) not in before]:
                lg.removeFilter(added)
    return caplog.text


def test_apprise_logs_no_token_of_a_url_a_service_cannot_read(caplog: pytest.LogCaptureFixture) -> None:
    import apprise

    # apprise names the service in these: "Unparseable Telegram URL tgram://…", "Could not load Discord URL: …"
    urls = ["tgram://BOTSECRET", "discord://WEBHOOKSECRET", "tgrams://111111:TYPOSECRET/123"]
    text = _apprise_log(caplog, lambda: [apprise.Apprise().add(url) for url in urls])
    assert "SECRET" not in text, text
    assert "Unparseable Telegram URL: not shown" in text and "Could not load Discord URL: not shown" in text, text
    assert "Unparseable URL: not shown" in text, text


def test_apprise_requests_do_not_put_their_url_path_in_the_log_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import apprise

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        notifier = apprise.Apprise()
        assert notifier.add(f"json://127.0.0.1:{server.server_port}/PATHSECRET")
        sent: list[bool] = []
        text = _apprise_log(caplog, lambda: sent.append(bool(notifier.notify(body="b", title="t"))))
    finally:
        server.shutdown()
        server.server_close()
    assert sent == [True]
    assert "PATHSECRET" not in text, text  # urllib3 (under apprise's requests) logs each request line at debug
    assert "Sent JSON POST notification" in text, text  # apprise's own info lines still pass


def test_apprise_does_not_log_a_token_it_finds_invalid(caplog: pytest.LogCaptureFixture) -> None:
    import apprise

    # A typo in a token ("!"): apprise warns, quoting the token, which is the real one but for a character
    urls = ["tgram://123456:ab!SECRET/789", "slack://T1/B1/C!SECRET"]
    text = _apprise_log(caplog, lambda: [apprise.Apprise().add(url) for url in urls])
    assert "SECRET" not in text, text
    assert "The Telegram Bot Token specified (not shown) is invalid" in text, text
    assert "An invalid Slack (third) Token (not shown) was specified" in text, text
