"""sd_notify on real AF_UNIX datagram sockets, and `heartfly serve` talking to one as systemd would."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from heartfly.core.clock import FakeClock
from heartfly.server import systemd
from heartfly.server.daemon import _health
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.proc import Server


class Listener:
    """Plays systemd's side of $NOTIFY_SOCKET: collects every message, with its arrival time."""

    def __init__(self, address: str, on_ready: Callable[[str], None] | None = None) -> None:
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self.on_ready = on_ready
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            message = data.decode()
            if "READY=1" in message.split("\n") and self.on_ready is not None:
                self.on_ready(message)  # runs before the next message is read, as systemd would
            self.messages.append(message)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages[after:]:
                if predicate(message):
                    return message
            time.sleep(0.01)
        raise AssertionError(f"no matching message in {self.messages[after:]!r}")

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    sock = Listener(str(tmp_path / "notify"))
    yield sock
    sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write(path: Path, checks: str, listen: str = "127.0.0.1:0") -> Path:
    path.write_text(f'[server]\nlisten = "{listen}"\ndatabase = "hb.db"\napi_token_file = "token"\n\n{checks}')
    return path


# ---- the protocol ----------------------------------------------------------------------------


def test_notify_sends_one_datagram_of_lines_to_a_socket_path(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    assert systemd.notify("READY=1", "STATUS=listening on http://127.0.0.1:1\nand more")
    assert listener.wait_for(lambda m: True) == "READY=1\nSTATUS=listening on http://127.0.0.1:1 and more"


def test_notify_reaches_an_abstract_socket_named_with_an_at_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    sock = Listener(f"@heartfly-test/{secrets.token_hex(8)}")
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", sock.env_value)
        assert systemd.stopping("stopping: finishing in-flight pings")
        assert sock.wait_for(lambda m: True) == "STOPPING=1\nSTATUS=stopping: finishing in-flight pings"
    finally:
        sock.close()


def test_reloading_carries_the_monotonic_clock_in_microseconds(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    systemd.reloading()
    sent = fields(listener.wait_for(lambda m: True))
    assert sent["RELOADING"] == "1"
    assert before <= int(sent["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_notify_without_a_socket_or_with_a_dead_one_is_a_quiet_no(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # a kind we do not speak
    assert not systemd.enabled() and not systemd.notify("READY=1")


def test_a_long_step_of_the_start_asks_for_more_time_again_until_it_ends(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    # One step of a migration (an index over every ping) can outlast one extension: asked for
    # again, from a thread of its own (SQLite's step holds the writer's thread, PostgreSQL's the
    # event loop), until the step ends, and no more after.
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    monkeypatch.setattr(systemd, "EXTEND_EVERY", 0.01)
    with systemd.extending_start("migrating the database"):
        deadline = time.monotonic() + 10
        while len(listener.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(listener.messages) >= 3, listener.messages
    assert set(listener.messages) == {"EXTEND_TIMEOUT_USEC=30000000\nSTATUS=migrating the database"}
    assert "heartfly-extend-start" not in [thread.name for thread in threading.enumerate()]


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert systemd.watchdog_interval() is None


async def test_watchdog_is_fed_only_while_healthy_and_says_why_it_stopped(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    problem: list[str | None] = [None]
    task = asyncio.create_task(systemd.run_watchdog(lambda: problem[0], 0.01))
    try:
        await _until(lambda: listener.messages.count("WATCHDOG=1") >= 3)
        problem[0] = "the deadline timer last ran 9.0 s ago"
        await asyncio.sleep(0.03)  # let a ping already sent arrive
        fed = len(listener.messages)
        await asyncio.sleep(0.1)  # ten intervals
        assert len(listener.messages) == fed
        problem[0] = None
        await _until(lambda: len(listener.messages) > fed)
    finally:
        task.cancel()
    logged = [r.getMessage() for r in caplog.records]
    assert logged.count("not feeding the systemd watchdog: the deadline timer last ran 9.0 s ago") == 1
    assert "feeding the systemd watchdog again" in logged


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_watchdog_health_check_fails_once_the_deadline_timer_stops_waking(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    clock = FakeClock()
    app = create_app(write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'), clock=clock)
    await aiohttp_client(app)
    health, engine = _health(app), app[RUNTIME].engine
    await _until(lambda: health() is None)
    # No await between setting the mark and asking, so the running timer cannot move it.
    engine.timer_alive.mark(clock.now() - 4.0)  # the timer beats every second; a few missed beats pass
    assert health() is None
    engine.timer_alive.mark(clock.now() - 6.0)
    assert health() == "the deadline timer last ran 6 s ago"


def test_journal_lines_carry_their_syslog_priority() -> None:
    formatter = systemd.JournalFormatter("%(levelname)s %(name)s: %(message)s")

    def line(level: int) -> str:
        return formatter.format(logging.LogRecord("heartfly.server.daemon", level, __file__, 1, "msg", None, None))

    assert line(logging.INFO) == "<6>INFO heartfly.server.daemon: msg"
    assert line(logging.WARNING) == "<4>WARNING heartfly.server.daemon: msg"
    assert line(logging.ERROR) == "<3>ERROR heartfly.server.daemon: msg"


def test_every_line_of_a_traceback_or_a_message_of_several_lines_carries_the_records_priority() -> None:
    # journald makes each line of the stream an entry of its own, with the priority of its own "<N>"
    # prefix, else info: a failure's traceback went at info, and `journalctl -p err` (or -p warning,
    # as docs/install.md suggests) showed the error line without the traceback that explains it.
    formatter = systemd.JournalFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("bad\nworse")
    except ValueError:
        record = logging.LogRecord("heartfly.web.control", logging.ERROR, __file__, 1, "applying failed", None, None)
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).split("\n")
    assert lines[0] == "<3>ERROR heartfly.web.control: applying failed"
    assert "<3>Traceback (most recent call last):" in lines and lines[-1] == "<3>worse"
    assert [line for line in lines if not line.startswith("<3>")] == []
    warning = logging.LogRecord("heartfly.alert", logging.WARNING, __file__, 1, "line one\n<0>line two", None, None)
    assert formatter.format(warning) == "<4>WARNING heartfly.alert: line one\n<4><0>line two"  # no emergency


def test_a_crash_of_serve_reaches_the_journal_at_critical_priority_with_its_traceback(tmp_path: Path) -> None:
    # An exception serve does not expect (a bug) went to the interpreter, which printed its
    # traceback with no priority: journald took every line for info, and `journalctl -p warning`
    # showed systemd's "Failed with result 'exit-code'" and nothing of why. Here serve is made to
    # raise, by a sitecustomize, in a real process whose stderr is its pretend journal stream.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import heartfly.server.daemon as daemon\n\n"
        "async def serve(*args, **kwargs):\n    raise RuntimeError('a bug')\n\n"
        "daemon.serve = serve\n"
    )
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    journal = tmp_path / "journal"
    with journal.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = {
            **os.environ,
            "PYTHONPATH": f"{site}:{Path(__file__).parent.parent}",
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
        }
        args = [sys.executable, "-m", "heartfly", "serve", "-c", str(config)]
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=stream, env=env, timeout=60)
    lines = journal.read_text().splitlines()
    assert done.returncode == 1, lines
    crash = [line for line in lines if line.startswith("<2>")]
    assert "<2>Traceback (most recent call last):" in crash and crash[-1] == "<2>RuntimeError: a bug", lines
    assert [line for line in lines if not re.match(r"<[0-7]>", line)] == []


def test_each_line_of_a_start_refused_for_several_problems_reaches_the_journal_at_error_priority(
    tmp_path: Path,
) -> None:
    # Two checks of the file named as two made through the API: the start is refused (exit 2) with
    # both problems, one error of two lines. Only its first line carried "<3>"; journald took the
    # second for info, so `journalctl -p err` showed one of the two problems.
    config = write(tmp_path / "hb.toml", 'hc_api_key_file = "hc-key"\n')  # still in [server]
    with Server(config) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        for slug in ("one", "two"):
            data = json.dumps({"slug": slug, "timeout": 3600}).encode()
            request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=data, headers={"X-Api-Key": key})
            assert urllib.request.urlopen(request).status == 201
        assert server.stop() == 0
    with config.open("a") as file:
        for name in ("one", "two"):
            file.write(f'[checks.{name}]\nkey = "{new_key()}"\nevery = "1h"\n')
    journal = tmp_path / "journal"
    with journal.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        args = [sys.executable, "-m", "heartfly", "serve", "-c", str(config)]
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=stream, env=env, timeout=60)
    lines = journal.read_text().splitlines()
    assert done.returncode == 2, lines
    refused = [line for line in lines if "checks.one" in line or "checks.two" in line]
    assert len(refused) == 2 and all(line.startswith("<3>") for line in refused), lines


def test_stderr_counts_as_the_journal_only_when_journal_stream_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert systemd.stderr_is_journal()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")  # stderr was redirected
    assert not systemd.stderr_is_journal()


# ---- `heartfly serve` under a pretend systemd -------------------------------------------------


def test_serve_says_ready_only_once_the_port_answers(tmp_path: Path, listener: Listener) -> None:
    port = free_port()
    probes: list[tuple[int, str]] = []

    def probe(message: str) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            probes.append((resp.status, resp.read().decode()))

    listener.on_ready = probe
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', f"127.0.0.1:{port}")
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:
        ready = fields(listener.wait_for(lambda m: "READY=1" in m))
        assert ready["STATUS"] == f"listening on http://127.0.0.1:{port} with 1 checks"
        assert probes == [(200, "OK")]  # database open, timer running, port bound: at READY already
        assert (tmp_path / "hb.db").exists()
        assert server.stop() == 0


def test_the_ready_status_and_the_log_count_the_checks_made_through_the_api_too(
    tmp_path: Path, listener: Listener
) -> None:
    # A start said "with 1 checks" while two were watched (a reload counted both).
    config = tmp_path / "hb.toml"
    config.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\nping_key = "pk-for-slugs-0123456789"\n'
        f'auto_provision = true\n\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    with Server(config) as server:
        made = urllib.request.Request(f"{server.url}/ping/pk-for-slugs-0123456789/made?create=1", data=b"")
        with urllib.request.urlopen(made, timeout=10) as resp:
            assert resp.status in (200, 201)
        assert server.stop() == 0
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:
        ready = fields(listener.wait_for(lambda m: "READY=1" in m))
        assert ready["STATUS"].endswith(" with 2 checks"), ready["STATUS"]
        assert re.search(r"Heartfly listening on http://\S+ with 2 checks", server.log()), server.log()
        assert server.stop() == 0


@pytest.mark.both_stores
def test_a_start_that_migrates_the_database_asks_systemd_for_more_time_first(
    tmp_path: Path, listener: Listener, store_backend: str
) -> None:
    # A migration (an index built over every ping, after an upgrade) can take minutes on a large
    # database: past systemd's start timeout (90 s by default) the start was killed, the
    # migration's step rolled back, and every restart began it again, never done. A start with
    # steps to apply asks for more time (EXTEND_TIMEOUT_USEC) before the first; one with none asks
    # for none.
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    config.write_text(config.read_text().replace('database = "hb.db"', f"database = {store_backend}"))
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:  # a new database: every step
        listener.wait_for(lambda m: "READY=1" in m)
        assert server.stop() == 0
    first = list(listener.messages)
    ready = next(i for i, m in enumerate(first) if "READY=1" in m.split("\n"))
    asked = [fields(m) for m in first[:ready] if "EXTEND_TIMEOUT_USEC" in fields(m)]
    assert asked and int(asked[0]["EXTEND_TIMEOUT_USEC"]) >= 30_000_000, first
    assert asked[0]["STATUS"] == "migrating the database", first
    after = len(listener.messages)
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:  # migrated: nothing to ask for
        listener.wait_for(lambda m: "READY=1" in m, after=after)
        assert server.stop() == 0
    assert [m for m in listener.messages[after:] if "EXTEND_TIMEOUT_USEC" in m] == []


def test_serve_never_says_ready_when_it_cannot_start(tmp_path: Path, listener: Listener) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write(tmp_path / "hb.toml", "", f"127.0.0.1:{taken.getsockname()[1]}")
        server = Server(config, env={"NOTIFY_SOCKET": listener.env_value})
        with pytest.raises(RuntimeError, match="address already in use"):
            server.start()
    assert server.proc is not None and server.proc.wait(10) == 1
    assert not any("READY=1" in m for m in listener.messages)


def test_sighup_is_reloading_then_ready_and_a_bad_file_says_why_in_status(tmp_path: Path, listener: Listener) -> None:
    key_a, key_b = new_key(), new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n')
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:
        listener.wait_for(lambda m: "READY=1" in m)
        seen = len(listener.messages)
        write(config, f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
        server.signal(signal.SIGHUP)
        ready = fields(listener.wait_for(lambda m: "READY=1" in m, after=seen))
        assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+ with 2 checks \(reloaded\)", ready["STATUS"])
        reloading = [m for m in listener.messages[seen:] if m.startswith("RELOADING=1\nMONOTONIC_USEC=")]
        assert len(reloading) == 1 and listener.messages.index(reloading[0]) < len(listener.messages) - 1

        seen = len(listener.messages)
        write(config, f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\ngrase = "5m"\n[checks.b]\nevery = "1h"\n')
        server.signal(signal.SIGHUP)
        ready = fields(listener.wait_for(lambda m: "READY=1" in m, after=seen))
        assert ready["STATUS"] == (
            "reload failed, still running the previous config: "
            'checks.a.grase: unknown key (did you mean "grace"?) (and 1 more)'
        )
        assert any(m.startswith("RELOADING=1") for m in listener.messages[seen:])
        assert server.wait_for_log("reload failed, still running the previous config: checks.b")
        assert server.stop() == 0


def test_watchdog_pings_arrive_every_half_watchdog_usec(tmp_path: Path, listener: Listener) -> None:
    config = write(tmp_path / "hb.toml", "")
    env = {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": ""}
    with Server(config, env=env) as server:
        listener.wait_for(lambda m: "READY=1" in m)
        start = time.monotonic()
        listener.wait_for(lambda m: listener.messages.count("WATCHDOG=1") >= 4)
        assert time.monotonic() - start < 2.0
        assert server.stop() == 0


def test_no_watchdog_pings_when_systemd_asked_for_none(tmp_path: Path, listener: Listener) -> None:
    config = write(tmp_path / "hb.toml", "")
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": ""}) as server:
        listener.wait_for(lambda m: "READY=1" in m)
        assert server.stop() == 0
    assert "WATCHDOG=1" not in listener.messages


def test_sigterm_says_stopping_and_exits_cleanly(tmp_path: Path, listener: Listener) -> None:
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config, env={"NOTIFY_SOCKET": listener.env_value}) as server:
        listener.wait_for(lambda m: "READY=1" in m)
        assert server.stop() == 0
    stopping = fields(listener.wait_for(lambda m: "STOPPING=1" in m))
    assert stopping["STATUS"] == "stopping: finishing in-flight pings"
    assert "stopped cleanly" in server.log()
    assert not (tmp_path / "hb.db-wal").exists()


def test_the_watchdog_is_still_fed_while_clients_hold_every_file_descriptor(tmp_path: Path, listener: Listener) -> None:
    # Each WATCHDOG=1 opened a socket of its own: with every descriptor held by connections (a
    # flood, or clients that keep theirs open), none could be opened, the pings stopped, and
    # systemd aborted a server that was otherwise answering (WatchdogSec later), again and again.
    import resource

    config = write(tmp_path / "hb.toml", "")
    env = {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": ""}
    with Server(config, env=env) as server:
        listener.wait_for(lambda m: "READY=1" in m)
        assert server.proc is not None
        held = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (held + 5, held + 5))
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        clients = []
        try:
            for _ in range(20):  # more than the server can take: it runs out of descriptors
                clients.append(socket.create_connection((host, int(port))))
            assert server.wait_for_log("cannot accept new connections: Too many open files"), server.log()
            seen = len(listener.messages)
            listener.wait_for(lambda m: listener.messages[seen:].count("WATCHDOG=1") >= 3, after=seen)
        finally:
            for client in clients:
                client.close()
        assert server.stop() == 0


async def test_ready_is_sent_even_when_the_descriptors_ran_out_as_the_port_began_to_serve(
    write_config: ConfigWriter, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restart during a flood of connections: the port, bound and listening since the start,
    # accepted the queued clients as soon as it served, taking every descriptor left, and only then
    # was READY=1 sent, through a socket opened at that first message: none could be, READY=1 never
    # went out, and systemd killed the start after TimeoutStartSec, again at each restart.
    import types

    from aiohttp import web

    from heartfly.server import daemon

    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    monkeypatch.setattr(systemd, "_sock", None)  # as in a new process: no message sent yet
    serving = web.SockSite.start

    def no_descriptor(*args: Any) -> socket.socket:
        raise OSError(24, "Too many open files")

    async def start_then_run_out(site: web.SockSite) -> None:
        await serving(site)
        fake = types.SimpleNamespace(
            AF_UNIX=socket.AF_UNIX, SOCK_DGRAM=socket.SOCK_DGRAM, SOCK_CLOEXEC=socket.SOCK_CLOEXEC, socket=no_descriptor
        )
        monkeypatch.setattr(systemd, "socket", fake)

    monkeypatch.setattr(web.SockSite, "start", start_then_run_out)
    app = create_app(write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'))
    stop = asyncio.Event()
    run = asyncio.create_task(daemon._run(app, stop, asyncio.Queue()))
    try:
        ready = await asyncio.to_thread(listener.wait_for, lambda m: "READY=1" in m.split("\n"), 10.0)
    finally:
        stop.set()
        await run
        if systemd._sock is not None:
            systemd._sock.close()
    assert fields(ready)["STATUS"].startswith("listening on http://127.0.0.1:")
