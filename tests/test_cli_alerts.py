"""`heartfly test-alert` and `heartfly history` as real subprocesses against a real server."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import new_key
from tests.proc import Server, heartfly


class Receiver:
    """A webhook receiver on a real socket: records every body, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def config(tmp_path: Path, hook_url: str, key: str) -> Path:
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        '[alerts]\nretry_initial = "100ms"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook_url}"\n'
        f'[checks.nightly]\nkey = "{key}"\nevery = "1h"\nchannels = ["hook"]\n'
    )
    return path


def with_port(path: Path, url: str) -> Path:
    """The same config, listening where the running server actually listens."""
    port = url.rsplit(":", 1)[1]
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    return path


def test_test_alert_sends_a_marked_test_through_the_server_and_reports_it(tmp_path: Path, receiver: Receiver) -> None:
    path = config(tmp_path, receiver.url, new_key())
    with Server(path) as server:
        result = heartfly("test-alert", "hook", "-c", str(with_port(path, server.url)))
    assert result.returncode == 0, result.stderr
    assert "test alert via hook: sent" in result.stdout
    assert [b["event"] for b in receiver.bodies] == ["test"]
    assert "delivery works" in str(receiver.bodies[0]["summary"])


@pytest.mark.parametrize(("zone", "shown"), [("UTC", r"\d\d:\d\d:\d\dZ"), ("Europe/Berlin", r"\d\d:\d\d:\d\d CES?T")])
def test_test_alert_shows_its_attempts_time_as_history_does_in_display_timezone(
    tmp_path: Path, receiver: Receiver, zone: str, shown: str
) -> None:
    path = config(tmp_path, receiver.url, new_key())
    path.write_text(path.read_text().replace("[server]\n", f'[server]\ndisplay_timezone = "{zone}"\n'))
    with Server(path) as server:
        result = heartfly("test-alert", "hook", "-c", str(with_port(path, server.url)))
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^  \d{{4}}-\d\d-\d\d {shown}  sent \(", result.stdout, re.MULTILINE), result.stdout


def test_test_alert_reports_a_failed_delivery_with_exit_1(tmp_path: Path) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/nothing-listens", new_key())
    with Server(path) as server:
        result = heartfly("test-alert", "hook", "-c", str(with_port(path, server.url)))
    assert result.returncode == 1
    assert "test alert via hook: pending" in result.stdout and "cannot reach the webhook" in result.stdout


def test_a_test_alert_still_pending_names_its_key_which_the_servers_log_tells_its_later_attempts_by(
    tmp_path: Path,
) -> None:
    # A test alert is no check's: `heartfly history` and the alerts API, which docs/alerts.md named
    # for its later outcome, list a check's alerts only. Its retries are told in the server's log.
    path = config(tmp_path, "http://127.0.0.1:9/nothing-listens", new_key())
    with Server(path) as server:
        result = heartfly("test-alert", "hook", "-c", str(with_port(path, server.url)))
        key = re.search(r"\btest-\d+-\d+\b", result.stdout)
        assert key is not None and "server's log" in result.stdout, result.stdout
        assert server.wait_for_log(f"alert {key[0]} (test) via hook: failed after 2 attempt(s)")


def test_test_alert_says_clearly_when_the_server_is_not_running_or_the_channel_is_unknown(tmp_path: Path) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/x", new_key())
    path.write_text(path.read_text().replace("127.0.0.1:0", "127.0.0.1:9"))
    (tmp_path / "token").write_text("t" * 40)
    down = heartfly("test-alert", "hook", "-c", str(path))
    assert down.returncode == 1 and "is `heartfly serve` running?" in down.stderr
    unknown = heartfly("test-alert", "nope", "-c", str(path))
    assert unknown.returncode == 2 and 'no channel "nope"' in unknown.stderr


def test_history_shows_state_changes_alerts_with_every_attempt_and_pings(tmp_path: Path, receiver: Receiver) -> None:
    key = new_key()
    path = config(tmp_path, receiver.url, key)
    with Server(path) as server:
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", data=b"disk full")):
            pass
        deadline = time.monotonic() + 10
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.wait_for_log("via hook: sent")
        server.stop()
    result = heartfly("history", "nightly", "-c", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nightly: down (failed)" in out
    assert "new -> down (failed): failed" in out
    assert re.search(r"down via hook: sent after 1 attempt\(s\)  \[flip-1-\d+\]", out)
    assert re.search(r"Z  sent \(\d+ ms\)", out)
    assert "fail  127.0.0.1  disk full" in out
    missing = heartfly("history", "nope", "-c", str(path))
    assert missing.returncode == 1 and 'no check "nope"' in missing.stderr


class Revocable:
    """A webhook receiver on a real socket that answers `status` (404: the webhook was revoked)."""

    def __init__(self) -> None:
        self.status = 404
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def revocable() -> Iterator[Revocable]:
    r = Revocable()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_status_says_which_channels_gave_up_alerts_as_a_revoked_webhook_fails_each_for_good(
    tmp_path: Path, revocable: Revocable
) -> None:
    # A chat webhook revoked (404), a token refused (401), a recipient unknown (550): each alert
    # fails for good at once, so none waits, and status, which counted only those waiting, said
    # nothing: a down nobody was told of was shown as if told.
    key = new_key()
    path = config(tmp_path, revocable.url, key)
    with Server(path) as server:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", method="POST"), timeout=10)
        assert server.wait_for_log("via hook: failed after 1 attempt(s): HTTP 404")
        result = heartfly("status", "-c", str(with_port(path, server.url)))
    assert result.returncode == 0, result.stderr
    assert "1 alert(s) given up in the last 24 h (failed or expired): 1 via hook" in result.stdout, result.stdout


def test_the_dashboard_says_a_channel_gave_up_its_last_alert_until_one_is_sent_there(
    tmp_path: Path, revocable: Revocable
) -> None:
    # Its banner counted only the alerts waiting: a revoked webhook's, failed at once, waited none.
    key = new_key()
    path = config(tmp_path, revocable.url, key)
    with Server(path) as server:
        token = (tmp_path / "token").read_text().strip()

        def page() -> str:
            asked = urllib.request.Request(f"{server.url}/", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(asked, timeout=10) as answer:
                return str(answer.read().decode())

        assert "gave up" not in page()
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", method="POST"), timeout=10)
        assert server.wait_for_log("via hook: failed after 1 attempt(s): HTTP 404")
        assert "Channel hook gave up its last alert" in page()
        revocable.status = 200  # the channel fixed: a test alert says so, and the banner goes
        assert heartfly("test-alert", "hook", "-c", str(with_port(path, server.url))).returncode == 0
        assert "gave up" not in page()


def test_an_attempt_to_be_retried_reads_as_a_failure_and_its_duration_not_as_a_retry_delay() -> None:
    from heartfly.cli.report import format_attempts

    out = format_attempts([{"at": 1795420800.0, "outcome": "retry", "duration": 0.007, "error": "cannot reach"}])
    assert out == "  2026-11-23 08:00:00Z  failed, will retry (7 ms): cannot reach"


@pytest.mark.parametrize("limit", ["99999999999999999999", "0", "-1", "100001"])
def test_history_refuses_a_limit_out_of_range_with_a_usage_error(tmp_path: Path, limit: str) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/x", new_key())
    with Server(path) as server:
        server.stop()  # leaves the database behind, with the check in it
    result = heartfly("history", "nightly", "--limit", limit, "-c", str(path))
    assert result.returncode == 2 and "Invalid value for '--limit'" in result.stderr
    assert "Traceback" not in result.stderr


def test_test_alert_waits_as_long_as_the_server_does_for_a_channel_with_a_long_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server waits for the first attempt up to the channel's timeout + 5 s; a command that gave
    # up at 60 s said "cannot reach the server ... is `heartfly serve` running?" while it was.
    from heartfly.cli import operate
    from heartfly.core.config import load_config

    path = config(tmp_path, "http://127.0.0.1:9/hook", new_key())
    hook = 'url = "http://127.0.0.1:9/hook"\n'
    path.write_text(path.read_text().replace(hook, hook + 'timeout = "90s"\n'))
    asked: list[float] = []

    def fake_call(cfg: object, method: str, url_path: str, timeout: float = 60.0) -> tuple[int, object]:
        asked.append(timeout)
        return 200, {"status": "sent", "attempt_log": []}

    monkeypatch.setattr(operate, "call", fake_call)
    operate.test_alert(load_config(path), "hook")
    assert asked and asked[0] > 95.0
