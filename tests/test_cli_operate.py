"""`heartfly pause`, `resume` and `reload` as real subprocesses against a real server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_key
from tests.pgserver import PgServer
from tests.proc import Server, heartfly
from tests.test_faults import damage


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    with Server(path) as server:
        # The commands find the server through the config: point it at the port it really got.
        port = server.url.rsplit(":", 1)[1]
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        yield server, path


def api(server: Server, path: str) -> Any:
    token = (server.config.parent / "token").read_text().strip()
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_pause_with_an_end_and_resume_change_the_running_servers_state(running: tuple[Server, Path]) -> None:
    server, path = running
    paused = heartfly("pause", "nightly", "--until", "2h", "-c", str(path))
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("paused nightly until ")
    check = api(server, "/api/v1/checks/nightly")
    assert check["state"] == "paused" and check["paused_until"] is not None
    resumed = heartfly("resume", "nightly", "-c", str(path))
    assert resumed.returncode == 0 and "resumed nightly" in resumed.stdout
    assert api(server, "/api/v1/checks/nightly")["state"] == "new"


def test_pause_without_an_end_says_how_to_resume(running: tuple[Server, Path]) -> None:
    _, path = running
    result = heartfly("pause", "nightly", "-c", str(path))
    assert result.returncode == 0 and "`heartfly resume nightly`" in result.stdout


def test_pause_until_a_local_time_is_sent_with_this_machines_offset(running: tuple[Server, Path]) -> None:
    server, path = running
    result = heartfly("pause", "nightly", "--until", "2099-01-01 08:00", "-c", str(path), env={"TZ": "UTC"})
    assert result.returncode == 1 and "at most a year" in result.stderr  # the server's own limit, passed on
    assert api(server, "/api/v1/checks/nightly")["state"] == "new"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "nope"], "404: no such check"),
        (["pause", "nightly", "--until", "soon"], "--until: expected a duration or a time"),
        (["pause", "nightly", "--until", "99999d"], "at most a year"),  # a duration, past any bound
        (["resume", "nope"], "404: no such check"),
    ],
)
def test_a_refused_request_exits_1_with_the_reason(running: tuple[Server, Path], args: list[str], message: str) -> None:
    _, path = running
    result = heartfly(*args, "-c", str(path))
    assert result.returncode == 1 and message in result.stderr


def test_the_commands_go_to_the_local_server_directly_never_through_an_http_proxy(
    running: tuple[Server, Path],
) -> None:
    # A proxy set for the shell (a company's, for downloads) must not get the API token, nor stand
    # between the command and the server on this host, which it cannot reach as 127.0.0.1 anyway.
    import http.server

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(f"{self.path} {self.headers.get('Authorization')}")
            self.send_error(502)

        def log_message(self, *args: object) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        # no_proxy emptied: one that names 127.0.0.1 (as many shells and CI runners set) would
        # bypass the proxy for urllib itself, and this test could not fail.
        env = {"http_proxy": url, "HTTP_PROXY": url, "all_proxy": url, "no_proxy": "", "NO_PROXY": ""}
        _, path = running
        for args in (["pause", "nightly"], ["resume", "nightly"], ["reload"]):
            result = heartfly(*args, "-c", str(path), env=env)
            assert result.returncode == 0, result.stderr
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert seen == []


def test_reload_makes_the_running_server_read_its_file_again(running: tuple[Server, Path]) -> None:
    server, path = running
    path.write_text(path.read_text() + f'[checks.added]\nkey = "{new_key()}"\nevery = "5m"\n')
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": 2 checks")
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly", "added"]


def test_reload_warns_of_an_apprise_url_apprise_cannot_read_as_check_config_does(running: tuple[Server, Path]) -> None:
    # `heartfly reload` says what check-config says of the file: it said all but this, so a typo in
    # a service's scheme reloaded without a word, and every alert failed there for good.
    pytest.importorskip("apprise")
    _, path = running
    channel = '[channels.chat]\ntype = "apprise"\nurls = ["json://localhost/hook", "slakc://T000/B000/XyZsecret"]\n'
    path.write_text(path.read_text().replace("[checks.nightly]", channel + '[checks.nightly]\nchannels = ["chat"]'))
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: channels.chat.urls: apprise does not understand URL 2 of 2 (not shown: it may hold a token),"
        " so each alert fails there for good\n"
    )


def test_a_replaced_token_file_takes_effect_with_heartfly_reload_and_the_old_token_stops(
    running: tuple[Server, Path],
) -> None:
    import urllib.error

    server, path = running
    token_file = server.config.parent / "token"
    old = token_file.read_text().strip()
    token_file.write_text(new_key() + new_key() + "\n")
    with pytest.raises(urllib.error.HTTPError) as early:  # only reload takes the file's new token
        api(server, "/api/v1/checks")
    assert early.value.code == 401
    result = heartfly("reload", "-c", str(path))  # sends the new token, which the server lacks so far
    assert result.returncode == 0, result.stderr
    assert api(server, "/api/v1/checks")[0]["name"] == "nightly"  # the new token works
    request = urllib.request.Request(server.url + "/api/v1/checks", headers={"Authorization": f"Bearer {old}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_reload_refuses_a_token_that_is_neither_the_servers_nor_the_files(running: tuple[Server, Path]) -> None:
    import urllib.error

    server, _ = running
    request = urllib.request.Request(
        server.url + "/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {new_key()}{new_key()}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_reload_of_a_broken_file_exits_2_and_changes_nothing(running: tuple[Server, Path]) -> None:
    server, path = running
    path.write_text(path.read_text() + "[checks.broken]\nevery = 5\n")
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 2 and "error: checks.broken" in result.stderr
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly"]


def test_a_reload_of_an_empty_or_comment_only_file_is_refused_and_the_checks_and_token_are_kept(
    running: tuple[Server, Path],
) -> None:
    import urllib.error

    # A file truncated by accident (`> heartfly.toml`) removed every check and api_token_file:
    # monitoring stopped silently, and the API (so `heartfly reload`) was off until a restart.
    server, path = running
    kept = path.read_text()
    token = (server.config.parent / "token").read_text().strip()
    path.write_text("# heartfly\n\n   # nothing here yet\n")
    request = urllib.request.Request(
        server.url + "/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    [problem] = json.loads(refused.value.read())["problems"]
    assert problem == (
        f"{path}: the file is empty or holds only comments; reloading it would stop watching"
        " every check and turn the API off (restart the server to start on an empty file)"
    )
    path.write_text("")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10  # the API's refusal is logged already: wait for the SIGHUP's
    while server.log().count(f"reload failed, still running the previous config: {path}") < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly"]  # the token works still
    path.write_text(kept)
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 0, result.stderr


def test_a_reload_of_an_empty_file_is_refused_while_checks_made_by_pings_are_watched_without_a_token(
    tmp_path: Path,
) -> None:
    # A server whose checks are all made by `?create=1` pings (runitor's -create), with no
    # api_token_file: the empty file was reloaded, ping_key went, every slug ping answered 404
    # and the checks' channels were gone: monitoring stopped silently.
    path, ping_key = tmp_path / "hb.toml", new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n'
        f'ping_key = "{ping_key}"\nauto_provision = true\n'
        '[channels.ops]\ntype = "log"\n[defaults]\nchannels = ["ops"]\n'
    )
    with Server(path) as server:
        with urllib.request.urlopen(f"{server.url}/ping/{ping_key}/backup?create=1", timeout=10) as made:
            assert made.status == 201
        path.write_text("")
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload failed" not in server.log() and "reloaded " not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.02)
        assert f"reload failed, still running the previous config: {path}: the file is empty" in server.log()
        with urllib.request.urlopen(f"{server.url}/ping/{ping_key}/backup", timeout=10) as pinged:
            assert pinged.status == 200


def test_heartfly_reload_of_an_empty_file_exits_2_saying_so_not_that_the_api_is_disabled(
    running: tuple[Server, Path],
) -> None:
    # The README says such a reload is refused with exit 2; `heartfly reload` read the truncated
    # file for the server's address and token, found none, and said "the API is disabled" (exit 1)
    # of a server whose API was on.
    server, path = running
    path.write_text("# heartfly\n")
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 2, result.stderr
    assert f"error: {path}: the file is empty or holds only comments" in result.stderr
    assert "disabled" not in result.stderr
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly"]


def test_reload_after_a_listen_change_says_the_new_address_needs_a_restart(running: tuple[Server, Path]) -> None:
    server, path = running
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]  # nothing listens there once the socket closes
    old = server.url.rsplit(":", 1)[1]
    path.write_text(path.read_text().replace(f"127.0.0.1:{old}", f"127.0.0.1:{free}"))
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "server.listen" in result.stderr and "restart" in result.stderr
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly"]  # still running, on its old port


def test_the_commands_say_when_no_server_is_running(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:9"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    (tmp_path / "token").write_text("x" * 32)
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 1 and "is `heartfly serve` running?" in result.stderr


def test_a_server_not_found_at_the_files_address_may_have_been_started_with_listen_and_the_command_says_how(
    tmp_path: Path,
) -> None:
    # install.md: port 8765 taken, serve with --listen 127.0.0.1:9000 (./dev.sh run passes it on).
    # The commands then asked the file's address and said only that a listen change needs a restart.
    path = tmp_path / "hb.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:9"\ndatabase = "hb.db"\napi_token_file = "token"\n')
    (tmp_path / "token").write_text("x" * 32)
    result = heartfly("reload", "-c", str(path))  # the tests' environment sets no HEARTFLY_LISTEN
    hint = "if it was started with --listen, give this command the same address: HEARTFLY_LISTEN=HOST:PORT heartfly"
    assert result.returncode == 1 and hint in result.stderr, result.stderr
    told = heartfly("reload", "-c", str(path), env={"HEARTFLY_LISTEN": "127.0.0.1:9"})
    assert told.returncode == 1 and "at http://127.0.0.1:9 " in told.stderr and "--listen" not in told.stderr


def test_resume_of_a_check_that_is_not_paused_says_so_and_exits_1(running: tuple[Server, Path]) -> None:
    server, path = running
    result = heartfly("resume", "nightly", "-c", str(path))
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == "error: nightly is not paused (it is new): nothing to resume"
    assert result.stdout == ""
    assert api(server, "/api/v1/checks/nightly")["state"] == "new"


def test_the_resume_api_says_whether_the_check_was_paused(running: tuple[Server, Path]) -> None:
    server, path = running
    token = (server.config.parent / "token").read_text().strip()

    def resume() -> Any:
        request = urllib.request.Request(
            server.url + "/api/v1/checks/nightly/resume", method="POST", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    assert resume()["was_paused"] is False
    assert heartfly("pause", "nightly", "-c", str(path)).returncode == 0
    answer = resume()
    assert answer["was_paused"] is True and answer["state"] == "new"


def test_status_shows_when_a_pause_ends_and_json_gives_it_as_paused_until(running: tuple[Server, Path]) -> None:
    server, path = running
    assert heartfly("pause", "nightly", "--until", "2h", "-c", str(path)).returncode == 0
    until = api(server, "/api/v1/checks/nightly")["paused_until"]
    shown = until.replace("T", " ")[:19] + "Z"
    table = heartfly("status", "-c", str(path))
    assert table.returncode == 0, table.stderr
    assert f"paused until {shown}" in table.stdout
    (item,) = json.loads(heartfly("status", "--json", "-c", str(path)).stdout)
    assert item["state"] == "paused" and item["paused_until"] == until
    assert heartfly("pause", "nightly", "-c", str(path)).returncode == 0  # now without an end
    assert "paused until" not in heartfly("status", "-c", str(path)).stdout


WAITS_FOR_FLIP_1 = r"pending: waits for the older alert flip-1-\d+ here \(a check's alerts go out in order\)"


def _refused_hook(tmp_path: Path) -> tuple[Path, str]:
    """A config whose check nightly alerts a webhook on a port that refuses connections (its
    alerts stay pending), and nightly's key."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    key = new_key()
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{closed}/hook"\n'
        f'[checks.nightly]\nkey = "{key}"\nevery = "1h"\nchannels = ["hook"]\n'
    )
    return path, key


def test_history_says_why_an_alert_is_still_pending_and_lists_pings_by_event_time(tmp_path: Path) -> None:
    path, key = _refused_hook(tmp_path)
    with Server(path) as server:
        now = int(time.time())
        for url in (f"/ping/{key}/fail", f"/ping/{key}/log?ts={now - 600}"):  # the second happened earlier
            data = b"spooled" if "ts=" in url else b"now"
            with urllib.request.urlopen(urllib.request.Request(server.url + url, data=data), timeout=10) as resp:
                assert resp.status == 200
        deadline = time.monotonic() + 15
        while "last error:" not in (text := heartfly("history", "nightly", "-c", str(path)).stdout):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    alert = text.split("Alerts (newest first):\n", 1)[1]
    assert re.search(r"down via hook: pending after \d+ attempt\(s\)", alert), alert
    assert re.search(r"pending: next attempt \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ; last error: \S", alert), alert
    pings = text.split("Pings (newest first):\n", 1)[1].splitlines()
    assert "fail" in pings[0] and "now" in pings[0]
    assert "log" in pings[1] and "spooled" in pings[1] and "(reported " in pings[1]


def test_history_says_an_alert_waits_for_an_older_one_of_its_check_on_its_channel(tmp_path: Path) -> None:
    # The recovery behind an undelivered down alert said "not tried yet, next attempt" at a time
    # long passed, as if the dispatcher were stuck.
    path, key = _refused_hook(tmp_path)
    with Server(path) as server:
        for url in (f"/ping/{key}/fail", f"/ping/{key}"):
            with urllib.request.urlopen(urllib.request.Request(server.url + url, data=b""), timeout=10) as resp:
                assert resp.status == 200
        deadline = time.monotonic() + 15
        while "recovery via hook" not in (text := heartfly("history", "nightly", "-c", str(path)).stdout):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    recovery, down = text.split("Alerts (newest first):\n", 1)[1].split("Pings (newest first)")[0].split("  down via")
    assert re.search(r"recovery via hook: pending after 0 attempt\(s\)  \[flip-2-\d+\]", recovery), text
    assert re.search(WAITS_FOR_FLIP_1, recovery), text
    assert "waits for" not in down, text


def test_history_says_which_alert_one_waits_for_when_limit_leaves_the_older_one_out(tmp_path: Path) -> None:
    # With --limit (20 by default), the head of a long queue on a refusing channel is not listed:
    # the oldest one listed said "not tried yet, next attempt" at a time long passed.
    path, key = _refused_hook(tmp_path)
    with Server(path) as server:
        for url in (f"/ping/{key}/fail", f"/ping/{key}", f"/ping/{key}/fail"):
            with urllib.request.urlopen(urllib.request.Request(server.url + url, data=b""), timeout=10) as resp:
                assert resp.status == 200
        deadline = time.monotonic() + 15
        while (text := heartfly("history", "nightly", "-c", str(path)).stdout).count(" via hook: pending") < 3:
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        listed = heartfly("history", "nightly", "--limit", "2", "-c", str(path)).stdout
    alerts = listed.split("Alerts (newest first):\n", 1)[1].split("Pings (newest first)")[0]
    down, recovery = alerts.split("  recovery via")
    assert re.search(r"\[flip-3-\d+\]", down) and re.search(r"pending: waits for the older alert flip-2-\d+ here", down)
    assert re.search(r"\[flip-2-\d+\]", recovery) and not re.search(r"flip-1-\d+\]", recovery), listed
    assert re.search(WAITS_FOR_FLIP_1, recovery), listed


def test_history_says_an_alert_waits_for_the_maintenance_summary_that_lists_its_check(tmp_path: Path) -> None:
    # A summary is the down alert of the checks it lists: their alerts made after it wait for it on
    # its channel, and the recovery behind it said "not tried yet, next attempt" long passed.
    path, key = _refused_hook(tmp_path)
    config = path.read_text()
    begun = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    path.write_text(config + f'[[maintenance]]\nname = "patching"\nstart = "{begun}"\nduration = "1d"\n')
    with Server(path) as server:

        def ping(suffix: str) -> None:
            with urllib.request.urlopen(urllib.request.Request(server.url + suffix, data=b""), timeout=10) as resp:
                assert resp.status == 200

        ping(f"/ping/{key}/fail")  # held for the window's summary
        # The window is gone: its summary now. (The commands find the server through the config.)
        path.write_text(config.replace("127.0.0.1:0", server.url.removeprefix("http://")))
        result = heartfly("reload", "-c", str(path))
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 15
        while (
            not sqlite3.connect(tmp_path / "hb.db")
            .execute("SELECT 1 FROM outbox WHERE event = 'maintenance'")
            .fetchall()
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ping(f"/ping/{key}")  # the recovery, behind the summary on the channel
        while "recovery via hook" not in (text := heartfly("history", "nightly", "-c", str(path)).stdout):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    alerts = text.split("Alerts (newest first):\n", 1)[1].split("Pings (newest first)")[0]
    assert "recovery via hook: pending after 0 attempt(s)" in alerts, text
    assert re.search(r"pending: waits for the maintenance summary maintenance-patching-\d+ here", alerts), text


@pytest.mark.parametrize("kind", ["not-sqlite", "another-programs"])
@pytest.mark.parametrize("command", [["status"], ["history", "a"], ["export"]])
def test_a_database_that_is_not_heartflys_is_a_one_line_error(tmp_path: Path, kind: str, command: list[str]) -> None:
    # A wrong `[server] database`: it was a traceback ending in "file is not a database" or "no such table".
    config = tmp_path / "heartfly.toml"
    config.write_text(f'[server]\ndatabase = "hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    database = tmp_path / "hf.db"
    if kind == "not-sqlite":
        database.write_text("garbage\n")
    else:
        with sqlite3.connect(database) as conn:
            conn.execute("CREATE TABLE foo (x)")
    done = heartfly(*command, "-c", str(config))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot use database {database}: not Heartfly's, or damaged (")
    assert "Traceback" not in done.stderr


def test_history_of_a_database_damaged_past_its_first_pages_is_a_one_line_error(tmp_path: Path) -> None:
    # The file opens and its meta table reads: the damage is found by a later read, and that was a traceback.
    key = new_key()
    config = tmp_path / "heartfly.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "hf.db"\n[checks.a]\nkey = "{key}"\nevery = "1h"\n'
    )
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}", timeout=10).read()
        assert server.stop() == 0
    damage(tmp_path / "hf.db", "pings")
    done = heartfly("history", "a", "-c", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"error: cannot read database {tmp_path / 'hf.db'}: database disk image is malformed\n"


HTML_PAGE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<h1>nginx</h1>"
NOT_FOUND_PAGE = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<h1>nginx</h1>"
# A web server's bare 404 (Caddy's `respond 404`, a Go handler's WriteHeader): "the server answered 404: None".
EMPTY_404 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
# Another JSON API: pause said "paused nightly" (exit 0); the others were a traceback (KeyError).
JSON_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


def asked_of_another_program(
    tmp_path: Path, answer: bytes, command: list[str]
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """`heartfly COMMAND` of a config whose listen address a stand-in answers with `answer` (to
    each of up to two connections: urllib may try again once on a closed one): its port, and the
    command's result."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        path = tmp_path / "hb.toml"
        path.write_text(
            f'[server]\nlisten = "127.0.0.1:{port}"\ndatabase = "hb.db"\napi_token_file = "token"\n'
            f'[channels.log]\ntype = "log"\n[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
        )
        (tmp_path / "token").write_text("x" * 32)
        return port, heartfly(*command, "-c", str(path))


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", HTML_PAGE, NOT_FOUND_PAGE, EMPTY_404, JSON_ANSWER],
    # the 404s: "the server answered 404: None"
    ids=["not-http", "an-html-page", "an-html-404", "an-empty-404", "another-json-api"],
)
@pytest.mark.parametrize("command", [["reload"], ["pause", "nightly"], ["resume", "nightly"], ["test-alert", "log"]])
def test_another_program_at_the_servers_address_is_a_one_line_error(
    tmp_path: Path, answer: bytes, command: list[str]
) -> None:
    # A listen address another service answers on: both were a traceback (BadStatusLine, JSONDecodeError).
    port, result = asked_of_another_program(tmp_path, answer, command)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: http://127.0.0.1:{port} ") and result.stderr.count("\n") == 1
    assert "is another program listening there?" in result.stderr


@pytest.mark.parametrize("redirect", [301, 302, 303])
def test_a_redirect_at_the_servers_address_is_not_followed_and_the_api_token_goes_nowhere_else(
    tmp_path: Path, redirect: int
) -> None:
    # Another web server on the port (nginx's `return 301 https://...`): urllib followed it, as a GET
    # with the Authorization header, so the API token went to whatever host Location named.
    import http.server

    seen: list[str] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers.get('Authorization')}")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"name": "nightly", "state": "paused", "config": "x", "checks": 1}')

        def do_POST(self) -> None:
            self.send_response(redirect)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_address[1]}/stolen")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "hb.toml"
        path.write_text(
            f'[server]\nlisten = "127.0.0.1:{elsewhere.server_address[1]}"\ndatabase = "hb.db"\n'
            f'api_token_file = "token"\n[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
        )
        (tmp_path / "token").write_text("t" * 32)
        results = [heartfly(*args, "-c", str(path)) for args in (["pause", "nightly"], ["reload"])]
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    assert seen == []
    for result in results:
        assert result.returncode == 1, result.stdout
        assert f"answered {redirect} without Heartfly's JSON: is another program listening there?" in result.stderr


def test_reload_with_a_new_key_file_that_cannot_be_made_is_refused_naming_the_setting(
    running: tuple[Server, Path],
) -> None:
    # It was refused as "[Errno 2] No such file or directory: '/proc/.hc-key.x1y2z3'", naming no setting.
    server, path = running
    path.write_text(
        path.read_text().replace(
            'api_token_file = "token"\n', 'api_token_file = "token"\nhc_api_key_file = "/proc/hc-key"\n'
        )
    )
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: server.hc_api_key_file: /proc/hc-key is missing and cannot be made here")
    assert "still runs the previous config" in result.stderr
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly"]  # the API token still works


@pytest.mark.parametrize("command", [["status"], ["history", "a"], ["export"]])
def test_a_database_path_that_is_a_folder_is_one_line_without_a_thread_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    # The line came, then aiosqlite's worker thread's "Exception in thread ... Event loop is closed".
    config = tmp_path / "heartfly.toml"
    config.write_text(f'[server]\ndatabase = "hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    (tmp_path / "hf.db").mkdir()
    done = heartfly(*command, "-c", str(config))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot open database {tmp_path / 'hf.db'}: ")
    assert done.stderr.count("\n") == 1, done.stderr


def as_nobody(folder_mode: int, command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` as another user, against a WAL database root left in a folder of `folder_mode`."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        top = Path(where)
        os.chmod(top, 0o777)
        config = top / "heartfly.toml"
        config.write_text(f'[server]\ndatabase = "lib/hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        os.chmod(config, 0o644)
        (top / "lib").mkdir()
        database = top / "lib" / "hf.db"
        conn = sqlite3.connect(database)  # a WAL database, as the server leaves it at a clean stop
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.close()  # and with it its -wal and -shm files
        os.chmod(database, 0o644)
        os.chmod(top / "lib", folder_mode)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        args = [*nobody, sys.executable, "-m", "heartfly", *command, "-c", str(config)]
        return subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, cwd=top)


@pytest.mark.parametrize("folder_mode", [0o700, 0o755], ids=["folder-closed", "folder-read-only"])
@pytest.mark.parametrize("command", [["status"], ["history", "a"], ["export"]])
def test_a_database_this_user_may_not_read_says_so_in_one_line(folder_mode: int, command: list[str]) -> None:
    # /var/lib/heartfly is the service's own: a folder this user may not enter was a PermissionError
    # traceback; one it may read but not write (SQLite writes heartfly.db-shm to read a WAL
    # database) was "not Heartfly's, or damaged (attempt to write a readonly database)".
    done = as_nobody(folder_mode, command)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(("error: cannot open database ", "error: cannot read database ")), done.stderr
    assert "run this as root or as the server's user" in done.stderr


def test_backup_of_a_database_in_a_folder_this_user_may_not_enter_is_one_line() -> None:
    done = as_nobody(0o700, ["backup", "/tmp/never-made.db"])  # it was a PermissionError traceback
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.endswith("permission denied; run this as root or as the server's user\n")
    assert not Path("/tmp/never-made.db").exists()


def test_reload_says_on_stderr_what_check_config_would_warn_of(running: tuple[Server, Path]) -> None:
    # A newcomer adds a cron job with grace 0s and reloads: "reloaded ...", and nothing of the
    # warning check-config gives (every run on time told down, then up: false alarms), said only
    # in the server's journal; nor of a check no channel tells of.
    server, path = running
    path.write_text(path.read_text() + f'[checks.hourly]\nkey = "{new_key()}"\ncron = "0 * * * *"\ngrace = "0s"\n')
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 0 and result.stdout.startswith("reloaded "), result.stderr
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("have grace 0s (hourly)" in line for line in warned), result.stderr
    assert any("no channel, so nobody is told" in line for line in warned), result.stderr
    assert [c["name"] for c in api(server, "/api/v1/checks")] == ["nightly", "hourly"]


def test_reload_of_a_file_without_checks_while_the_api_made_some_does_not_warn_that_nothing_is_watched(
    tmp_path: Path,
) -> None:
    # Checks made by auto-provisioning (or Healthchecks' API), the file holding [server] alone:
    # "reloaded ...: 1 checks", then "warning: no checks: nothing is watched" of the same server.
    # A refused reload warns of nothing: the running config was kept, not this file's.
    path = tmp_path / "hb.toml"
    ping_key = "reload-ping-key-0123456789"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'ping_key = "{ping_key}"\nauto_provision = true\n'
    )
    with Server(path) as server:
        path.write_text(path.read_text().replace("127.0.0.1:0", server.url.rsplit("/", 1)[1]))
        with urllib.request.urlopen(f"{server.url}/ping/{ping_key}/made-by-job?create=1", timeout=10) as resp:
            assert resp.status == 201
        result = heartfly("reload", "-c", str(path))
        assert result.returncode == 0 and result.stdout.startswith("reloaded ") and ": 1 checks" in result.stdout
        assert "nothing is watched" not in result.stderr, result.stderr
        # The file then names the check the job made (the server refuses it: check-config would
        # say so) with grace 0s: the refusal alone, no warning of a file that is not running.
        job = f'[checks.made-by-job]\nkey = "{new_key()}"\ncron = "0 * * * *"\ngrace = "0s"\n'
        path.write_text(path.read_text() + job)
        refused = heartfly("reload", "-c", str(path))
        assert refused.returncode == 2 and "warning:" not in refused.stderr, refused.stderr


def test_reload_warns_of_the_address_the_server_was_started_on_not_the_files(tmp_path: Path) -> None:
    # install.md: port taken, serve --listen; the commands are given the same HEARTFLY_LISTEN. The
    # file's listen on 0.0.0.0 (no public_url: links derived from it) is not what the server runs:
    # its links follow --listen, and it warns of none; the reload warned of links nobody can open.
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "0.0.0.0:9"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[defaults]\nchannels = ["journal"]\n[channels.journal]\ntype = "log"\n'
        f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    with Server(path, args=("--listen", "127.0.0.1:0")) as server:
        listen = server.url.rsplit("/", 1)[1]
        result = heartfly("reload", "-c", str(path), env={"HEARTFLY_LISTEN": listen})
        assert result.returncode == 0 and result.stdout.startswith("reloaded "), result.stderr
        assert result.stderr == "", result.stderr
        assert "0.0.0.0" not in server.log()  # the server's own journal: no such warning


def test_reload_says_which_changed_settings_wait_for_a_restart(running: tuple[Server, Path]) -> None:
    # "reloaded ...: 1 checks" alone, while the server kept its database: the next restart (a
    # reboot, weeks later) opened the new, empty one. The journal's warning was all there was.
    server, path = running
    original = path.read_text()
    path.write_text(original.replace('database = "hb.db"', 'database = "moved.db"'))
    note = "note: server.database changed; it takes effect only after a restart (systemctl restart heartfly)"
    for _ in range(2):  # still true at the next reload: the server has not restarted
        result = heartfly("reload", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[1:] == [note], result.stdout
    path.write_text(original)
    result = heartfly("reload", "-c", str(path))
    assert result.returncode == 0 and "note:" not in result.stdout
    assert not (server.config.parent / "moved.db").exists()


def test_reload_says_a_clusters_node_id_and_lease_wait_for_a_restart(tmp_path: Path, pg_server: PgServer) -> None:
    # The lease and the node's name are taken once, at the start: a reload changing them said
    # "reloaded" and nothing else, and the cluster went on with the old lease.
    path = tmp_path / "hb.toml"
    server_table = f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "{pg_server.database()}"\napi_token_file = "token"\n'
    path.write_text(server_table + f'lease = "5s"\n[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(path) as server:
        started = path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{server.url.rsplit(':', 1)[1]}")
        path.write_text(started.replace('lease = "5s"', 'lease = "3s"\nnode_id = "hb-1"'))
        result = heartfly("reload", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert [line.split(";")[0] for line in result.stdout.splitlines()[1:]] == [
            "note: server.node_id changed",
            "note: server.lease changed",
        ], result.stdout
        path.write_text(started)
        assert "note:" not in heartfly("reload", "-c", str(path)).stdout


def test_history_shows_escape_sequences_in_a_ping_body_escaped_never_raw(running: tuple[Server, Path]) -> None:
    # They reached the terminal as they were: a body could set its title, clear the screen or
    # draw over the lines above (a failure hidden behind an "up").
    server, path = running
    key = re.search(r'key = "([^"]+)"', path.read_text())
    assert key is not None
    body = (
        b"done \x1b]0;owned\x07 \x1b[2J\x1b[1A\x1b[8mhidden\x1b[0m \xc2\x9b1A"  # the last: U+009B, CSI in one character
    )
    request = urllib.request.Request(f"{server.url}/ping/{key.group(1)}/log", data=body)
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    result = heartfly("history", "nightly", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\x9b" not in result.stdout
    assert "done \\x1b]0;owned\\x07 \\x1b[2J\\x1b[1A\\x1b[8mhidden" in result.stdout, result.stdout


def test_status_names_the_files_checks_the_server_has_not_loaded(running: tuple[Server, Path]) -> None:
    # Added to the file, not reloaded (or its reload refused): the check was simply not listed, and
    # nothing said it was watched by nobody.
    _, path = running
    path.write_text(path.read_text() + f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    for args in (["status"], ["status", "--json"]):
        result = heartfly(*args, "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith("note: not watched by the server yet") and result.stderr.endswith(": weekly\n")
    assert json.loads(result.stdout)[0]["name"] == "nightly"  # --json's output stays the list
    assert heartfly("reload", "-c", str(path)).returncode == 0
    result = heartfly("status", "-c", str(path))
    assert "weekly" in result.stdout and result.stderr == ""


def test_status_names_a_check_put_back_in_the_file_after_a_reload_took_it_out(running: tuple[Server, Path]) -> None:
    # Taken out of the file by a reload, its row stays (history kept, removed_at set). Put back
    # without a reload, it was listed with its last state, "up", and no note, though nobody watches it.
    _, path = running
    weekly = f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n'
    original = path.read_text()
    path.write_text(original + weekly)
    assert heartfly("reload", "-c", str(path)).returncode == 0
    assert heartfly("ping", "weekly", "-c", str(path)).returncode == 0
    path.write_text(original)
    assert heartfly("reload", "-c", str(path)).returncode == 0
    path.write_text(original + weekly)  # back in the file, not reloaded
    for args in (["status"], ["status", "--json"]):
        result = heartfly(*args, "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith("note: not watched by the server yet") and result.stderr.endswith(": weekly\n")
    assert [item["name"] for item in json.loads(result.stdout)] == ["nightly"]
    assert heartfly("reload", "-c", str(path)).returncode == 0
    result = heartfly("status", "-c", str(path))
    assert "weekly" in result.stdout and result.stderr == "", result.stderr


@pytest.mark.parametrize(("version", "says"), [(5, "older"), (99, "newer")])
def test_history_of_a_database_of_another_schema_version_is_one_line_naming_it_not_a_traceback(
    tmp_path: Path, version: int, says: str
) -> None:
    # After a package upgrade, before the server is restarted (and migrates the file), or after a
    # rollback: `heartfly history` failed with a traceback, "no such column: learned_at".
    from heartfly.store.schema import MIGRATIONS

    config = tmp_path / "heartfly.toml"
    config.write_text(f'[server]\ndatabase = "hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    conn = sqlite3.connect(tmp_path / "hf.db")
    conn.executescript("".join(MIGRATIONS[: min(version, len(MIGRATIONS))]) + f"PRAGMA user_version = {version};")
    conn.close()
    done = heartfly("history", "a", "-c", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"error: the database {tmp_path / 'hf.db'} has schema version {version}, {says} than this Heartfly"
        f" ({len(MIGRATIONS)})"
    )
    assert done.stderr.count("\n") == 1, done.stderr
    assert heartfly("status", "-c", str(config)).returncode == 0  # reads what every version has


@pytest.mark.parametrize("version", [1, 2, 3])
def test_status_of_a_database_older_than_what_it_reads_names_its_schema_version_and_what_migrates_it(
    tmp_path: Path, version: int
) -> None:
    # Status reads what schema version 4 on has (a state's ping id, a ping's member): on an older
    # file it said only "no such column: state_ping_id", as if the file were damaged.
    from heartfly.store.schema import MIGRATIONS

    config = tmp_path / "heartfly.toml"
    config.write_text(f'[server]\ndatabase = "hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    conn = sqlite3.connect(tmp_path / "hf.db")
    conn.executescript("".join(MIGRATIONS[:version]) + f"PRAGMA user_version = {version};")
    conn.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'a', 1, '{}')")
    conn.execute("INSERT INTO pings (check_id, at, received_at, kind, method) VALUES (1, 1, 1, 'success', 'GET')")
    conn.commit()
    conn.close()
    done = heartfly("status", "-c", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"error: the database {tmp_path / 'hf.db'} has schema version {version}, older than this Heartfly"
        f" ({len(MIGRATIONS)}): `heartfly serve` of this version migrates it at its start (systemctl restart"
        " heartfly)\n"
    )


async def test_status_of_a_file_a_version_behind_that_fails_to_read_for_another_reason_says_that_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between a package upgrade and the restart that migrates the file, status reads it as every
    # version since 4 has it: a read failing then for another reason (a failing disk's I/O error)
    # was told as the file's older schema version, which the restart migrates, and the real
    # reason was not said.
    from heartfly.cli import report
    from heartfly.core.config import load_config
    from heartfly.store.api import StoreError
    from heartfly.store.reader import SqliteReader
    from heartfly.store.schema import MIGRATIONS

    path = tmp_path / "heartfly.toml"
    path.write_text(f'[server]\ndatabase = "hf.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with contextlib.closing(sqlite3.connect(tmp_path / "hf.db")) as conn:
        conn.executescript("".join(MIGRATIONS[:-1]) + f"PRAGMA user_version = {len(MIGRATIONS) - 1};")

    async def failing(self: SqliteReader, configs: object) -> list[object]:  # the disk, not the schema
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteReader, "read_current_checks", failing)
    with pytest.raises(StoreError) as info:
        await report.read_status(load_config(path))
    assert str(info.value) == f"cannot read database {tmp_path / 'hf.db'}: disk I/O error"


def test_status_shows_an_armed_pipeline_steps_deadline_as_its_due_time(tmp_path: Path) -> None:
    path, key = tmp_path / "hb.toml", new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.extract]\nkey = "{key}"\nevery = "1h"\n'
        f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "2h"\n'
    )
    with Server(path) as server:
        assert heartfly("status", "-c", str(path)).stdout.splitlines()[2].endswith("-")  # not armed: no due time
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/start", method="POST"), timeout=10)
        due = api(server, "/api/v1/checks/transform")["step_due_at"]
        table = heartfly("status", "-c", str(path))
    row = table.stdout.splitlines()[2]
    assert row.startswith("transform") and row.endswith(due.replace("T", " ")[:19] + "Z"), table.stdout


def test_status_shows_no_due_time_for_a_paused_pipeline_step_as_for_any_paused_check(tmp_path: Path) -> None:
    # Nothing is due while paused, and a resume drops what the upstream armed: the dashboard shows none.
    path, key = tmp_path / "hb.toml", new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.extract]\nkey = "{key}"\nevery = "1h"\n'
        f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "2h"\n'
    )
    with Server(path) as server:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/start", method="POST"), timeout=10)
        token = (tmp_path / "token").read_text().strip()
        pause = f"{server.url}/api/v1/checks/transform/pause"
        auth = {"Authorization": f"Bearer {token}"}
        urllib.request.urlopen(urllib.request.Request(pause, method="POST", headers=auth), timeout=10)
        shown = api(server, "/api/v1/checks/transform")
        assert shown["state"] == "paused" and shown["step_due_at"] is not None  # armed before the pause
        table = heartfly("status", "-c", str(path))
    row = table.stdout.splitlines()[2]
    assert row.startswith("transform") and row.endswith("-"), table.stdout


def test_a_pauses_end_is_printed_in_the_display_timezone_as_status_shows_it(tmp_path: Path) -> None:
    # The end was printed in this shell's zone (UTC on most servers) while `heartfly status`, on
    # the next line of the same terminal, shows it in display_timezone: two clocks for one pause.
    path = tmp_path / "hb.toml"
    server_part = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
    zone = 'display_timezone = "Asia/Tokyo"\n'
    path.write_text(f'{server_part}{zone}[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(path) as server:
        port = server.url.rsplit(":", 1)[1]
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        paused = heartfly("pause", "nightly", "--until", "2h", "-c", str(path), env={"TZ": "UTC"})
        assert paused.returncode == 0, paused.stderr
        status = heartfly("status", "-c", str(path), env={"TZ": "UTC"})
    shown = re.search(r"paused until (\S+ \S+ JST)", status.stdout)
    assert shown is not None, status.stdout
    assert paused.stdout.startswith(f"paused nightly until {shown.group(1)};"), paused.stdout


def test_pause_until_an_empty_time_is_refused_and_does_not_pause_for_ever(running: tuple[Server, Path]) -> None:
    # `--until "$END"` with $END unset in a script paused the check with no end, silently.
    server, path = running
    result = heartfly("pause", "nightly", "--until", "", "-c", str(path))
    assert result.returncode == 1 and "--until: expected a duration or a time" in result.stderr, result
    assert api(server, "/api/v1/checks/nightly")["state"] == "new"


def test_status_names_the_checks_the_server_still_watches_that_the_file_no_longer_has(
    running: tuple[Server, Path],
) -> None:
    # Taken out of the file, not reloaded (or its reload refused): the server still watches the
    # check and alerts for it, and status left it out with nothing said.
    _, path = running
    original = path.read_text()
    path.write_text(original + f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    assert heartfly("reload", "-c", str(path)).returncode == 0
    path.write_text(original)
    for args in (["status"], ["status", "--json"]):
        result = heartfly(*args, "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith("note: still watched by the server, no longer in the file"), result.stderr
        assert result.stderr.endswith(": weekly\n"), result.stderr
    assert [c["name"] for c in json.loads(result.stdout)] == ["nightly"]  # --json's output stays the list
    assert heartfly("reload", "-c", str(path)).returncode == 0
    result = heartfly("status", "-c", str(path))
    assert "weekly" not in result.stdout and result.stderr == ""


# aiohttp's page for an error Heartfly's code did not expect (a bug, a full disk): text, not JSON.
AIOHTTP_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 55\r\n\r\n"
    b"500 Internal Server Error\n\nServer got itself in trouble"
)


@pytest.mark.parametrize("command", [["reload"], ["pause", "nightly"], ["resume", "nightly"], ["test-alert", "log"]])
def test_a_server_error_without_a_reason_says_where_the_reason_is_not_none(tmp_path: Path, command: list[str]) -> None:
    # It said "error: the server answered 500: None", naming neither what failed nor where to look.
    _, result = asked_of_another_program(tmp_path, AIOHTTP_500, command)
    assert result.returncode == 1, result.stderr
    assert "None" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: the server answered 500 without a reason"), result.stderr
    assert "its log" in result.stderr


def test_a_check_or_channel_the_server_has_not_loaded_yet_is_said_so_not_just_404(
    running: tuple[Server, Path],
) -> None:
    # Added to the file, not reloaded: "the server answered 404: no such check" of a check the
    # operator can see in the file, with nothing to say the server has not read it yet.
    _, path = running
    path.write_text(path.read_text() + f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    path.write_text(path.read_text() + '[channels.ops]\ntype = "log"\n')
    for args in (["pause", "weekly"], ["resume", "weekly"], ["test-alert", "ops"]):
        result = heartfly(*args, "-c", str(path))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: the server answered 404: "), result.stderr
        assert f"in {path}, but the server has not loaded it (heartfly reload" in result.stderr, result.stderr
    unknown = heartfly("pause", "nope", "-c", str(path))  # in neither: the server's words alone
    assert unknown.stderr == "error: the server answered 404: no such check\n"


def test_status_does_not_say_a_stopped_server_still_watches_a_check_taken_out_of_the_file(tmp_path: Path) -> None:
    # The note "still watched by the server, no longer in the file (heartfly reload ...)" was said
    # of a server stopped cleanly: nothing watches the check, the next start drops it (as it is not
    # in the file), and the reload it asks for finds no server to answer.
    path = tmp_path / "hb.toml"
    server_part = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
    nightly = f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
    path.write_text(f'{server_part}{nightly}[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    with Server(path) as server:
        assert server.stop() == 0
    path.write_text(server_part + nightly)
    for args in (["status"], ["status", "--json"]):
        result = heartfly(*args, "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert "still watched" not in result.stderr and "weekly" not in result.stderr, result.stderr


def test_status_does_not_say_a_crashed_server_still_watches_a_check_taken_out_of_the_file(tmp_path: Path) -> None:
    # Killed (or crashed) an hour ago, not restarted: status says its states may be stale, and
    # went on to say it "still watched" (and alerted for) a check taken out of the file since.
    path = tmp_path / "hb.toml"
    server_part = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
    nightly = f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\n'
    path.write_text(f'{server_part}{nightly}[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    with Server(path) as server:
        server.kill()
    with sqlite3.connect(tmp_path / "hb.db") as conn:  # its last sign of life, an hour ago
        conn.execute("UPDATE meta SET value = ? WHERE key = 'alive_at'", (repr(time.time() - 3600),))
    conn.close()
    path.write_text(server_part + nightly)
    result = heartfly("status", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "may be stale" in result.stdout, result.stdout
    assert "still watched" not in result.stderr and "weekly" not in result.stderr, result.stderr


# `heartfly history` in a fresh interpreter whose Python allocations are traced from once its
# modules are imported: its peak, in bytes, is printed on the last line of stderr.
_TRACED_HISTORY = """
import sys, tracemalloc
import heartfly.cli.main, heartfly.cli.report, heartfly.core.config, heartfly.store.backend
tracemalloc.start()
try:
    heartfly.cli.main.main()
finally:
    print(tracemalloc.get_traced_memory()[1], file=sys.stderr)
"""


def test_history_reads_only_the_start_of_each_long_ping_body_it_shows(tmp_path: Path) -> None:
    # It read every listed body whole and escaped it character by character to show 60 of them:
    # a job logging a few MiB a run made `heartfly history` take a minute and hundreds of MB.
    path = tmp_path / "hb.toml"
    key = new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\nbody_limit = "16MiB"\n'
        f'[checks.nightly]\nkey = "{key}"\nevery = "1h"\n'
    )
    size = 4 << 20
    with Server(path) as server:
        for n in range(2):
            body = f"run {n} \x1b[2J\n".encode() + b"x" * size
            with urllib.request.urlopen(f"{server.url}/ping/{key}", data=body, timeout=30) as resp:
                assert resp.status == 200
    done = subprocess.run(
        [sys.executable, "-c", _TRACED_HISTORY, "history", "nightly", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    pings = done.stdout.split("Pings (newest first):\n")[1].splitlines()
    assert [line.split("127.0.0.1  ", 1)[1] for line in pings] == [
        f"run {n} \\x1b[2J " + "x" * 45 + "…" for n in (1, 0)
    ], done.stdout
    assert int(done.stderr.splitlines()[-1]) < size, "the bodies were read whole"


def test_history_shows_a_short_ping_body_whole_and_a_long_one_cut(running: tuple[Server, Path]) -> None:
    server, path = running
    key = re.search(r'key = "([^"]+)"', path.read_text())
    assert key is not None
    for body in (b"short and sweet", b"  spaced \n\n  out  " + b"y" * 300 + b" end"):
        with urllib.request.urlopen(f"{server.url}/ping/{key.group(1)}/log", data=body, timeout=10) as resp:
            assert resp.status == 200
    result = heartfly("history", "nightly", "-c", str(path))
    assert result.returncode == 0, result.stderr
    pings = result.stdout.split("Pings (newest first):\n")[1].splitlines()
    shown = [line.split("127.0.0.1  ", 1)[1] for line in pings]
    assert shown == ["spaced out " + "y" * 48 + "…", "short and sweet"], pings


def test_history_shows_each_pings_run_id_and_member_as_the_dashboard_does(running: tuple[Server, Path]) -> None:
    # A batch's workers, a run's start and end: history listed "success  127.0.0.1" for each, so
    # which batch or worker a ping was, shown on the check page, could not be told from it.
    server, path = running
    key = re.search(r'key = "([^"]+)"', path.read_text())
    assert key is not None
    for query in ("/start?rid=night-7", "?rid=night-7&member=w3", "/log"):
        with urllib.request.urlopen(f"{server.url}/ping/{key.group(1)}{query}", data=b"", timeout=10) as resp:
            assert resp.status == 200
    result = heartfly("history", "nightly", "-c", str(path))
    assert result.returncode == 0, result.stderr
    pings = result.stdout.split("Pings (newest first):\n")[1].splitlines()
    shown = [line.split("Z  ", 1)[1] for line in pings]
    assert shown == ["log  127.0.0.1", "success rid=night-7 member=w3  127.0.0.1", "start rid=night-7  127.0.0.1"]


def test_a_server_that_takes_a_request_and_does_not_answer_is_not_called_unreachable(
    running: tuple[Server, Path],
) -> None:
    # A hung server (stopped here) still takes connections: the wait's timeout was told as "cannot
    # reach the server ... is `heartfly serve` running?" with a hint at a changed listen address,
    # while the request it took may yet be carried out.
    from heartfly.cli import admin
    from heartfly.core.config import load_config

    server, path = running
    config = load_config(path)
    server.signal(signal.SIGSTOP)
    try:
        with pytest.raises(admin.AdminError) as refused:
            admin.call(config, "POST", "/api/v1/reload", timeout=0.5)
    finally:
        server.signal(signal.SIGCONT)
    said = str(refused.value)
    assert "is `heartfly serve` running?" not in said and "listen" not in said, said
    assert said.startswith(f"{server.url} took the request and gave no answer within 0.5 s"), said


def test_history_of_a_check_the_server_has_not_loaded_yet_says_so(running: tuple[Server, Path]) -> None:
    # Added to the file, not reloaded (or its reload refused): "no check in the database" and
    # nothing on why, where status and pause name it as not loaded and say what loads it.
    _, path = running
    path.write_text(path.read_text() + f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7d"\n')
    result = heartfly("history", "weekly", "-c", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f'error: no check "weekly" in the database: it is in {path}, but the server')
    assert "heartfly reload" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    unknown = heartfly("history", "nope", "-c", str(path))
    assert unknown.returncode == 1 and unknown.stderr == 'error: no check "nope" in the database\n'


def test_pause_and_resume_work_while_a_check_elsewhere_in_the_file_is_mid_edit(running: tuple[Server, Path]) -> None:
    # The running server does not read the file for them: a typo in a check being added kept the
    # operator from pausing a check that alerted (exit 2, the file's problems), as it keeps no backup.
    server, path = running
    path.write_text(path.read_text() + f'[checks.weekly]\nkey = "{new_key()}"\nevery = "7 lightyears"\n')
    paused = heartfly("pause", "nightly", "-c", str(path))
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("paused nightly") and "check-config" in paused.stderr
    assert api(server, "/api/v1/checks/nightly")["state"] == "paused"
    resumed = heartfly("resume", "nightly", "-c", str(path))
    assert resumed.returncode == 0 and "resumed nightly" in resumed.stdout, resumed.stderr
    # A [server] table that cannot be read is still refused: it says where the server is.
    path.write_text(path.read_text().replace("[server]\n", '[server]\nbody_limit = "lots"\n'))
    refused = heartfly("pause", "nightly", "-c", str(path))
    assert refused.returncode == 2 and "server.body_limit" in refused.stderr, refused.stderr
    assert api(server, "/api/v1/checks/nightly")["state"] != "paused"


def test_pause_refuses_a_file_whose_server_table_is_mistyped(running: tuple[Server, Path]) -> None:
    # "[sever]" was a problem outside [server], so counted in a warning: the server's address and
    # token were left out, and pause said "the API is disabled" (exit 1), not what is wrong.
    server, path = running
    path.write_text(path.read_text().replace("[server]\n", "[sever]\n"))
    refused = heartfly("pause", "nightly", "-c", str(path))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: sever: unknown key") and "warning" not in refused.stderr, refused.stderr
    assert api(server, "/api/v1/checks/nightly")["state"] != "paused"


def test_a_server_that_takes_no_more_connections_is_not_called_unreachable(tmp_path: Path) -> None:
    # A hung server whose backlog the jobs' pings have filled leaves a connect unanswered: that
    # timeout (a URLError) was still told as "is `heartfly serve` running?" with the listen hint.
    from heartfly.cli import admin
    from heartfly.core.config import load_config

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(0)  # never accepted: one connection fills its queue
        port = hung.getsockname()[1]
        path = tmp_path / "hb.toml"
        path.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\napi_token_file = "token"\n')
        (tmp_path / "token").write_text("t" * 32)
        filling: list[socket.socket] = []
        try:
            with contextlib.suppress(TimeoutError):
                for _ in range(8):  # the queue's length is the kernel's to round up
                    filling.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
            with pytest.raises(admin.AdminError) as refused:
                admin.call(load_config(path), "POST", "/api/v1/reload", timeout=0.5)
        finally:
            for each in filling:
                each.close()
    said = str(refused.value)
    assert "is `heartfly serve` running?" not in said and "listen" not in said, said
    assert said == (
        f"http://127.0.0.1:{port} took no connection within 0.5 s: the server may be hung or overloaded"
        " (journalctl -u heartfly); nothing was asked of it"
    )


def test_status_of_a_file_with_a_check_mid_edit_shows_what_the_running_server_watches(
    running: tuple[Server, Path],
) -> None:
    # It exited 2 with the file's problems: the one moment the states matter most (the server
    # refused the reload of this very file and goes on watching the old checks), they were hidden.
    server, path = running
    assert heartfly("pause", "nightly", "-c", str(path)).returncode == 0
    path.write_text(path.read_text() + '[checks.half-done]\nkey = "short"\nevery = "1h"\n')
    table = heartfly("status", "-c", str(path))
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("NAME") and re.search(r"^nightly\s+paused", table.stdout, re.M)
    assert "half-done" not in table.stdout and "has 1 problem(s)" in table.stderr
    (item,) = json.loads(heartfly("status", "--json", "-c", str(path)).stdout)
    assert item == api(server, "/api/v1/checks/nightly")


def test_status_of_a_file_that_does_not_load_with_no_server_running_exits_1_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    (tmp_path / "token").write_text("t" * 40)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{closed}"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        '[checks.half-done]\nkey = "short"\nevery = "1h"\n'
    )
    result = heartfly("status", "-c", str(path))
    assert result.returncode == 1 and "status shows what the running server serves" in result.stderr


def test_history_of_a_file_with_a_check_mid_edit_reads_the_database_all_the_same(
    running: tuple[Server, Path],
) -> None:
    # It exited 2 with the file's problems: an operator looking into why a check alerted could not,
    # while a colleague's edit of another check was half done.
    _, path = running
    assert heartfly("pause", "nightly", "-c", str(path)).returncode == 0
    path.write_text(path.read_text() + '[checks.half-done]\nkey = "short"\nevery = "1h"\n')
    story = heartfly("history", "nightly", "-c", str(path))
    assert story.returncode == 0, story.stderr
    assert story.stdout.startswith("nightly: paused\n  (its schedule is not shown: the config file does not load)")
    assert "new -> paused" in story.stdout and "has 1 problem(s)" in story.stderr
    assert "reading its database all the same" in story.stderr
    gone = heartfly("history", "no-such-check", "-c", str(path))
    assert gone.returncode == 1 and 'no check "no-such-check" in the database' in gone.stderr
