"""`heartfly ping`, `run` and `flush` as real processes against a real `heartfly serve`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_key
from tests.proc import Server

PY = sys.executable


class Setup:
    """A server config with one check, `job`, addressed by name through its ping_key."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.key = new_key()
        self.ping_key = new_key()
        self.config = tmp_path / "hb.toml"
        self.write("127.0.0.1:0")
        self.server = Server(self.config)
        self.spool = tmp_path / "spool"

    def write(self, listen: str) -> None:
        self.config.write_text(
            f'[server]\nlisten = "{listen}"\ndatabase = "hb.db"\napi_token_file = "token"\n'
            f'ping_key = "{self.ping_key}"\n\n[checks.job]\nkey = "{self.key}"\nevery = "1h"\n'
        )

    @property
    def url(self) -> str:
        return f"{self.server.url}/ping/{self.key}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
        env.update(
            HEARTFLY_URL=self.server.url,
            HEARTFLY_PING_KEY=self.ping_key,
            HEARTFLY_SPOOL=str(self.spool),
            HEARTFLY_RETRIES="0",
        )
        env.update(extra)
        return env

    def cli(self, *args: str, input: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [PY, "-m", "heartfly", *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env=self.env(**env),
            cwd=self.tmp,
        )

    def api(self, path: str) -> Any:
        token = (self.tmp / "token").read_text().strip()
        request = urllib.request.Request(
            f"{self.server.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def pings(self, name: str = "job") -> list[dict[str, Any]]:
        """The check's pings, oldest first."""
        return list(reversed(self.api(f"/checks/{name}/pings?limit=100")))

    def spooled(self) -> list[Path]:
        return sorted(self.spool.glob("*.ping")) if self.spool.exists() else []


@pytest.fixture
def hf(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path)
    setup.server.start()
    yield setup
    setup.server.kill()


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode("utf-8", "replace")


# --- heartfly ping -----------------------------------------------------------------------------


def test_ping_sends_every_kind_of_event_with_its_message_run_id_and_metrics(hf: Setup) -> None:
    assert hf.cli("ping", "job").returncode == 0
    assert hf.cli("ping", "job", "--start", "--rid", "run-1").returncode == 0
    assert hf.cli("ping", "job", "--progress", "--rid", "run-1", "--metric", "rows=1200").returncode == 0
    assert hf.cli("ping", "job", "--log", "--stdin", input=b"line one\nline two\n").returncode == 0
    assert (
        hf.cli("ping", "job", "--exit-code", "0", "--rid", "run-1", "-m", "done", "--metric", "bytes=0").returncode == 0
    )
    assert hf.cli("ping", "job", "--fail", "-m", "disk full").returncode == 0
    assert hf.cli("ping", "job", "--exit-code", "3").returncode == 0
    got = [(p["kind"], p["exit_status"], p["run_id"], p["body"], p["metrics"]) for p in hf.pings()]
    assert got == [
        ("success", None, None, "", {}),
        ("start", None, "run-1", "", {}),
        ("progress", None, "run-1", "", {"rows": 1200}),
        ("log", None, None, "line one\nline two\n", {}),
        ("success", 0, "run-1", "done", {"bytes": 0}),
        ("fail", None, None, "disk full", {}),
        ("fail", 3, None, "", {}),
    ]
    assert hf.api("/checks/job")["state"] == "down"


def test_ping_takes_a_full_url_as_healthchecks_clients_do(hf: Setup) -> None:
    assert hf.cli("ping", hf.url, "--start").returncode == 0
    assert hf.cli("ping", hf.url + "/", "-m", "trailing slash is fine").returncode == 0
    assert [(p["kind"], p["body"]) for p in hf.pings()] == [("start", ""), ("success", "trailing slash is fine")]


def test_ping_resolves_a_name_through_a_local_config_file(hf: Setup, tmp_path: Path) -> None:
    client = tmp_path / "client.toml"
    client.write_text(f'[server]\npublic_url = "{hf.server.url}"\n[checks.job]\nkey = "{hf.key}"\nevery = "1h"\n')
    assert hf.cli("ping", "job", "-c", str(client), "-m", "via -c", HEARTFLY_URL="").returncode == 0
    assert hf.cli("ping", "job", "-m", "via env", HEARTFLY_URL="", HEARTFLY_CONFIG=str(client)).returncode == 0
    assert [p["body"] for p in hf.pings()] == ["via -c", "via env"]
    missing = hf.cli("ping", "other", "-c", str(client), HEARTFLY_URL="", HEARTFLY_PING_KEY="")
    assert missing.returncode == 2 and 'no check "other"' in err(missing)


def test_a_name_without_any_way_to_resolve_it_is_a_clear_error(hf: Setup) -> None:
    result = hf.cli("ping", "job", HEARTFLY_URL="", HEARTFLY_CONFIG=str(hf.tmp / "absent.toml"))
    assert result.returncode == 2
    assert "cannot read" in err(result) and "HEARTFLY_URL and HEARTFLY_PING_KEY" in err(result)
    no_key = hf.cli("ping", "job", HEARTFLY_PING_KEY="")
    assert no_key.returncode == 2 and "HEARTFLY_PING_KEY is not" in err(no_key)


def test_a_wrong_key_says_so_clearly_and_is_not_spooled(hf: Setup) -> None:
    result = hf.cli("ping", f"{hf.server.url}/ping/{new_key()}", "--fail")
    assert result.returncode == 1
    assert "answered 404: no check has this key or name" in err(result) and "not retried" in err(result)
    by_name = hf.cli("ping", "no-such-check")
    assert by_name.returncode == 1 and "404" in err(by_name)
    # By name, the server answers a wrong ping_key as it answers an unknown name: both are named
    assert 'no check "no-such-check"' in err(by_name) and "HEARTFLY_PING_KEY" in err(by_name)
    wrong_ping_key = hf.cli("ping", "job", HEARTFLY_PING_KEY=new_key())
    assert wrong_ping_key.returncode == 1 and "answered 404" in err(wrong_ping_key)
    assert 'no check "job"' in err(wrong_ping_key) and "ping_key (HEARTFLY_PING_KEY" in err(wrong_ping_key)
    assert hf.spooled() == [] and hf.pings() == []


def test_a_url_without_a_scheme_is_a_clear_error(hf: Setup) -> None:
    result = hf.cli("ping", hf.url.removeprefix("http://"))
    assert result.returncode == 2 and "looks like a URL without a scheme" in err(result)
    assert hf.key not in err(result)  # keys are secrets: messages shorten them


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--start", "--fail"], "choose one event"),
        (["--exit-code", "3", "--log"], "choose one event"),
        (["-m", "x", "--stdin"], "not both"),
        (["--metric", "rows"], "name=number"),
        (["--exit-code", "256"], "256"),
        (["--rid", "has space"], "run id"),
    ],
)
def test_ping_refuses_contradictory_or_malformed_options(hf: Setup, args: list[str], complaint: str) -> None:
    result = hf.cli("ping", "job", *args)
    assert result.returncode == 2 and complaint in err(result)
    assert hf.pings() == []


@pytest.mark.parametrize(
    "command",
    [["ping", "{url}"], ["run", "{url}", "--", "true"], ["run", "-c", "{client}", "job", "--", "true"]],
    ids=["ping", "run", "run-a-name-from-a-file"],
)
def test_the_client_path_imports_neither_the_config_parser_nor_the_server_nor_click_nor_urllib(
    hf: Setup, command: list[str]
) -> None:
    client = hf.tmp / "client.toml"  # a name looked up in a file reads it with the TOML parser alone
    client.write_text(f'[server]\npublic_url = "{hf.server.url}"\n[checks.job]\nkey = "{hf.key}"\nevery = "1h"\n')
    result = subprocess.run(
        [PY, "-X", "importtime", "-m", "heartfly", *(arg.format(url=hf.url, client=client) for arg in command)],
        capture_output=True,
        text=True,
        timeout=30,
        env=hf.env(),
    )
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "heartfly.client.transport" in imported
    heavy = {
        "heartfly.core.config",
        "croniter",
        "aiohttp",
        "aiosqlite",
        "asyncio",
        "click",
        "http.client",
        "urllib.request",
    }
    assert not imported & heavy
    assert ("heartfly.client.runner" in imported) == (command[0] == "run")
    assert len(hf.pings()) == (2 if command[0] == "run" else 1)


# --- heartfly run ------------------------------------------------------------------------------


def test_run_passes_output_through_and_reports_success_with_duration_and_a_run_id(hf: Setup) -> None:
    script = "import sys,time; print('to stdout'); print('to stderr', file=sys.stderr); time.sleep(0.2)"
    result = hf.cli("run", "job", "--", PY, "-c", script)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"to stdout\n", b"to stderr\n")
    start, end = hf.pings()
    assert start["kind"] == "start" and end["kind"] == "success" and end["exit_status"] == 0
    assert start["run_id"] == end["run_id"] and uuid.UUID(start["run_id"])  # Healthchecks wants a UUID
    assert end["body"] == "to stdout\nto stderr\n"
    assert 0.2 <= end["metrics"]["duration"] < 5


def test_run_exits_with_the_commands_own_status_and_reports_it_with_the_output(hf: Setup) -> None:
    result = hf.cli(
        "run", "--rid", "nightly-42", "job", "--", "sh", "-c", "echo 'pg_dump: connection refused' >&2; exit 3"
    )
    assert result.returncode == 3
    end = hf.pings()[-1]
    assert (end["kind"], end["exit_status"], end["run_id"]) == ("fail", 3, "nightly-42")
    assert end["body"] == "pg_dump: connection refused\n"
    assert hf.api("/checks/job")["state"] == "down"


def test_run_tells_the_command_its_run_id(hf: Setup) -> None:
    result = hf.cli("run", "job", "--rid", "r-7", "--", "sh", "-c", 'echo "$HEARTFLY_RUN_ID"')
    assert result.stdout == b"r-7\n"


@pytest.mark.parametrize("given", [None, "C", "POSIX"])
def test_the_command_gets_the_locale_it_would_have_had_without_heartfly(hf: Setup, given: str | None) -> None:
    # Cron's environment has no locale (or C): Python, started there, sets LC_CTYPE=C.UTF-8 in its
    # own environment (PEP 538). The command must not inherit that: its sort, tr and grep would
    # then work on characters, not bytes, as they do without heartfly.
    env = {k: v for k, v in hf.env().items() if not k.startswith(("LANG", "LC_"))}
    if given is not None:
        env["LC_CTYPE"] = given
    result = subprocess.run(
        [PY, "-m", "heartfly", "run", "job", "--", "sh", "-c", 'echo "${LC_CTYPE-unset} ${LC_ALL-unset}"'],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env, cwd=hf.tmp,
    )  # fmt: skip
    assert result.returncode == 0, err(result)
    assert result.stdout.decode() == f"{given or 'unset'} unset\n"


@pytest.mark.parametrize("given", [None, "C", "POSIX"])
def test_the_command_gets_the_c_locale_it_would_have_had_where_there_is_no_proc(hf: Setup, given: str | None) -> None:
    # A chroot or a sandbox without /proc: heartfly cannot read the environment it was given there,
    # and passed the command the LC_CTYPE=C.UTF-8 of Python's locale coercion. The locale it was
    # given was C (that is when Python coerces): LC_CTYPE=C gives the command that again.
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding /proc needs root and unshare")
    env = {k: v for k, v in hf.env().items() if not k.startswith(("LANG", "LC_", "PYTHONUTF8"))}
    if given is not None:
        env["LC_CTYPE"] = given
    no_proc = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /proc && exec "$@"', "sh"]
    show = ["sh", "-c", 'echo "${LC_CTYPE-unset} ${LC_ALL-unset}"']
    result = subprocess.run(
        [*no_proc, PY, "-m", "heartfly", "run", "job", "--", *show],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env, cwd=hf.tmp,
    )  # fmt: skip
    if result.returncode != 0 and b"mount" in result.stderr:
        pytest.skip(f"cannot hide /proc here: {result.stderr.decode().strip()}")
    assert result.returncode == 0, err(result)
    assert result.stdout.decode() == "C unset\n"


def test_a_command_that_does_not_exist_exits_127_and_is_reported_as_a_failure(hf: Setup) -> None:
    result = hf.cli("run", "job", "--", "no-such-command-here", "--flag")
    assert result.returncode == 127
    assert 'cannot run "no-such-command-here": command not found' in err(result)
    end = hf.pings()[-1]
    assert (end["kind"], end["exit_status"]) == ("fail", 127) and "command not found" in end["body"]


def test_a_script_without_a_shebang_runs_with_sh_as_it_does_from_cron_without_heartfly(hf: Setup) -> None:
    bin_dir = hf.tmp / "bin"
    bin_dir.mkdir()
    script = bin_dir / "backup.sh"
    script.write_text('echo "backing up $1 with $0"\nexit 3\n')
    script.chmod(0o755)
    by_path = hf.cli("run", "job", "--", str(script), "home")
    assert (by_path.returncode, by_path.stdout) == (3, f"backing up home with {script}\n".encode())
    by_name = hf.cli("run", "job", "--", "backup.sh", "etc", PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert (by_name.returncode, by_name.stdout) == (3, f"backing up etc with {script}\n".encode())
    assert [(p["exit_status"], p["body"]) for p in hf.pings() if p["kind"] != "start"] == [
        (3, f"backing up home with {script}\n"),
        (3, f"backing up etc with {script}\n"),
    ]


def test_a_binary_that_cannot_be_executed_exits_126_and_is_not_fed_to_sh(hf: Setup) -> None:
    program = hf.tmp / "other-arch"
    program.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(200))
    program.chmod(0o755)
    result = hf.cli("run", "job", "--", str(program))
    assert result.returncode == 126 and "Exec format error" in err(result)


def test_a_script_whose_interpreter_is_missing_says_so_rather_than_command_not_found(hf: Setup) -> None:
    moved = hf.tmp / "report.py"
    moved.write_text("#!/usr/bin/python9 -u\nprint('hi')\n")
    windows = hf.tmp / "backup.sh"
    windows.write_bytes(b"#!/bin/sh\r\necho hi\r\n")  # saved with Windows line endings
    for script in (moved, windows):
        script.chmod(0o755)
    first = hf.cli("run", "job", "--", str(moved))
    assert first.returncode == 127
    assert f'cannot run "{moved}": the interpreter on its #! line, "/usr/bin/python9", was not found' in err(first)
    second = hf.cli("run", "job", "--", str(windows))
    assert second.returncode == 127
    assert '"/bin/sh\\r", was not found (Windows line endings?)' in err(second)
    ends = [(p["exit_status"], p["body"]) for p in hf.pings() if p["kind"] != "start"]
    assert [code for code, _ in ends] == [127, 127] and all("interpreter" in body for _, body in ends)


def test_run_streams_megabytes_of_binary_output_unchanged_and_sends_only_the_tail(hf: Setup) -> None:
    script = (
        "import random,sys; data = random.Random(7).randbytes(3_000_000)\n"
        "for i in range(0, len(data), 4096):\n"
        "    sys.stdout.buffer.write(data[i:i+4096]); sys.stdout.flush()\n"
        "    if i % 65536 == 0: sys.stderr.buffer.write(data[i:i+100]); sys.stderr.flush()\n"
    )
    result = hf.cli("run", "job", "--", PY, "-c", script)
    data = random.Random(7).randbytes(3_000_000)
    assert result.returncode == 0
    assert result.stdout == data
    assert result.stderr == b"".join(data[i : i + 100] for i in range(0, len(data), 65536))
    end = hf.pings()[-1]
    assert end["body"].startswith("[heartfly: ") and "earlier bytes of output not shown]" in end["body"]
    assert len(end["body"].encode()) < 40_000  # ~10 KiB of bytes; U+FFFD takes 3 bytes in UTF-8


def test_run_sends_the_last_lines_of_a_long_text_output(hf: Setup) -> None:
    result = hf.cli("run", "job", "--tail", "1KB", "--", PY, "-c", "for i in range(100000): print(i)")
    assert result.returncode == 0 and result.stdout.endswith(b"99998\n99999\n")
    body = hf.pings()[-1]["body"]
    assert body.endswith("\n99998\n99999\n") and len(body) < 1100
    assert re.match(r"\[heartfly: \d+ earlier bytes of output not shown\]\n", body)


def test_run_fits_the_tail_to_what_the_server_keeps_so_the_last_lines_are_not_cut(tmp_path: Path) -> None:
    # The server keeps the first body_limit bytes of a body and says how many (Ping-Body-Limit, as
    # a self-hosted Healthchecks does: 10,000 bytes by default, less than the 10 KiB tail).
    hf = Setup(tmp_path)
    hf.config.write_text(hf.config.read_text().replace("[server]\n", '[server]\nbody_limit = "2KB"\n'))
    with hf.server:
        script = "import sys\nfor i in range(100000): print(i)\nprint('FATAL: disk full'); sys.exit(4)"
        result = hf.cli("run", "job", "--", PY, "-c", script)
        assert result.returncode == 4
        end = hf.pings()[-1]
    assert end["body"].endswith("\n99999\nFATAL: disk full\n") and not end["truncated"]
    assert re.match(r"\[heartfly: \d+ earlier bytes of output not shown\]\n", end["body"])
    assert 1900 < len(end["body"].encode()) <= 2000


def test_a_timeout_sends_term_then_kill_and_reports_a_failure_that_says_so(hf: Setup) -> None:
    stubborn = (
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('working', flush=True); time.sleep(30)"
    )
    began = time.monotonic()
    result = hf.cli("run", "job", "--timeout", "500ms", "--kill-after", "200ms", "--", PY, "-c", stubborn)
    assert result.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - began < 10
    end = hf.pings()[-1]
    assert (end["kind"], end["exit_status"]) == ("fail", 137)
    assert end["body"] == (
        "working\n[heartfly] timed out after 500 ms: sent SIGTERM, then SIGKILL 200 ms later;"
        " the command ended with SIGKILL\n"
    )
    assert "timed out after 500 ms" in err(result)


@pytest.mark.parametrize("timeout", ["0s", "0ms", "0h0m"])
def test_a_timeout_of_zero_is_a_usage_error_and_nothing_runs(hf: Setup, timeout: str) -> None:
    marker = hf.tmp / "ran"
    result = hf.cli("run", "job", "--timeout", timeout, "--", "touch", str(marker))
    assert result.returncode == 2 and "--timeout" in err(result) and "longer than zero" in err(result)
    assert not marker.exists() and hf.pings() == []


def test_a_timeout_ends_the_whole_process_group_of_the_command(hf: Setup) -> None:
    began = time.monotonic()
    result = hf.cli("run", "job", "--timeout", "300ms", "--", "sh", "-c", "sleep 30 & sleep 30; echo never")
    assert result.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - began < 10  # the background sleep held the output pipe: it went too
    assert "sent SIGTERM; the command ended with SIGTERM" in hf.pings()[-1]["body"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_sent_to_run_reach_the_command(hf: Setup, sig: signal.Signals) -> None:
    script = (
        "import signal,sys,time\n"
        "def bye(n, f):\n"
        "    print('got', signal.Signals(n).name, flush=True); sys.exit(40 + n)\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(s, bye)\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "run", "job", "--", PY, "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=hf.env(),
        # As cron or a shell would start it: a test run started with nohup or in the background
        # passes SIGHUP or SIGINT down ignored, and `heartfly run` leaves an ignored signal alone.
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGHUP, signal.SIGINT)],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 40 + sig
    assert out == f"got {sig.name}\n".encode()
    end = hf.pings()[-1]
    assert (end["kind"], end["exit_status"]) == ("fail", 40 + sig)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie that no init reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_runs_group_ends_the_commands_children_as_it_would_without_heartfly(
    hf: Setup, sig: signal.Signals
) -> None:
    # `timeout 1h heartfly run …`, `kill -TERM -PGID`: without heartfly the whole group, the
    # command's children included, would get the signal; the command now has a group of its own.
    pidfile = hf.tmp / "child.pid"
    script = (
        "import subprocess,sys\n"
        "child = subprocess.Popen(['sleep', '30']); open(sys.argv[1], 'w').write(str(child.pid))\n"
        "print('ready', flush=True); child.wait()\n"
    )
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "run", "job", "--", PY, "-c", script, str(pidfile)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=hf.env(),
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    child = 0
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        child = int(pidfile.read_text())
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=20)
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)  # got: `sleep 30` ran on, orphaned
    finally:
        proc.kill()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
    assert proc.returncode == 128 + sig


def test_run_keeps_the_exit_code_when_the_address_is_bad(hf: Setup) -> None:
    result = hf.cli("run", hf.url.removeprefix("http://"), "--", "sh", "-c", "echo still runs; exit 4")
    assert (result.returncode, result.stdout) == (4, b"still runs\n")
    assert "without a scheme" in err(result) and "running the command without reporting it" in err(result)


def test_run_keeps_the_exit_code_when_the_key_is_wrong(hf: Setup) -> None:
    result = hf.cli("run", f"{hf.server.url}/ping/{new_key()}", "--", "sh", "-c", "exit 0")
    assert result.returncode == 0
    assert err(result).count("answered 404") == 2 and hf.spooled() == []


@contextlib.contextmanager
def hung_server() -> Iterator[str]:
    """A server that takes every connection (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_hung_server_neither_holds_the_job_back_nor_keeps_run_past_its_ping_budget(hf: Setup) -> None:
    marker = hf.tmp / "job-ran"
    with hung_server() as base:
        env = hf.env(HEARTFLY_RETRIES="3", HEARTFLY_PING_BUDGET="1s")
        command = [PY, "-m", "heartfly", "run", f"{base}/ping/{hf.key}", "--", "sh", "-c", f"touch {marker}; exit 3"]
        # Without a budget each ping would wait out 4 read timeouts of 10 s: this would time out.
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=15, env=env)
    assert result.returncode == 3 and marker.exists()
    assert err(result).count("spooled to") == 2 and len(hf.spooled()) == 2  # start and end wait for a replay


def test_a_ping_to_a_hung_server_is_spooled_once_its_budget_is_spent(hf: Setup) -> None:
    with hung_server() as base:
        env = hf.env(HEARTFLY_RETRIES="3", HEARTFLY_PING_BUDGET="1s")
        command = [PY, "-m", "heartfly", "ping", f"{base}/ping/{hf.key}", "-m", "nightly done"]
        # Without a budget it would wait out 4 read timeouts of 10 s: this would time out.
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=15, env=env)
    assert result.returncode == 0, err(result)  # spooled for later counts as delivered
    assert "spooled to" in err(result) and len(hf.spooled()) == 1


# --- the server is down: spool, then replay -----------------------------------------------------


def restartable(hf: Setup) -> int:
    """Pins the server to the port it got from the OS, so spooled URLs still point at it after a restart."""
    port = int(hf.server.url.rsplit(":", 1)[1])
    hf.server.stop()
    hf.write(f"127.0.0.1:{port}")
    return port


def test_pings_spooled_while_the_server_is_down_are_replayed_in_order_with_their_true_times(hf: Setup) -> None:
    restartable(hf)
    before = time.time()
    result = hf.cli("run", "job", "--", PY, "-c", "import time; print('backup ok'); time.sleep(0.3)")
    assert (result.returncode, result.stdout) == (0, b"backup ok\n")
    assert "spooled to" in err(result)
    assert hf.cli("ping", "job", "--log", "-m", "written while down").returncode == 0
    after = time.time()
    assert len(hf.spooled()) == 3
    hf.server = Server(hf.config).start()
    restarted = time.time()
    assert hf.cli("ping", "job", "-m", "the server is back").returncode == 0  # replays the spool first
    assert hf.spooled() == []
    pings = hf.pings()
    assert [(p["kind"], p["body"]) for p in pings] == [
        ("start", ""),
        ("success", "backup ok\n"),
        ("log", "written while down"),
        ("success", "the server is back"),
    ]
    for ping in pings[:3]:
        assert before - 0.01 <= stamp(ping["at"]) <= after + 0.01 < restarted <= stamp(ping["received_at"]) + 0.01
    start, end = stamp(pings[0]["at"]), stamp(pings[1]["at"])
    assert end - start >= 0.3 and pings[0]["run_id"] == pings[1]["run_id"]
    assert stamp(pings[3]["at"]) >= restarted


def test_flush_replays_the_spool_and_says_what_is_left(hf: Setup) -> None:
    restartable(hf)
    assert hf.cli("ping", "job", "--fail", "-m", "while down").returncode == 0  # spooled counts as handled
    waiting = hf.cli("flush")
    assert waiting.returncode == 1 and b"sent 0, dropped 0, still waiting 1" in waiting.stdout
    hf.server = Server(hf.config).start()
    done = hf.cli("flush")
    assert done.returncode == 0 and b"sent 1, dropped 0, still waiting 0" in done.stdout
    assert [(p["kind"], p["body"]) for p in hf.pings()] == [("fail", "while down")]


def test_flush_quiet_from_a_crontab_says_nothing_until_it_sends_or_drops_a_ping(hf: Setup) -> None:
    # A daily job's ping spooled while the server was down waited for the next day's run, after
    # a missed alert; a crontab line `heartfly flush -q` sends it minutes after the server is back,
    # and cron, which mails whatever a job prints, must not mail every time it finds nothing.
    restartable(hf)
    assert hf.cli("ping", "job", "-m", "while down").returncode == 0
    waiting = hf.cli("flush", "-q")
    assert (waiting.returncode, waiting.stdout) == (1, b"")
    hf.server = Server(hf.config).start()
    done = hf.cli("flush", "--quiet")
    assert done.returncode == 0 and done.stdout.startswith(b"sent 1, dropped 0, still waiting 0")
    assert (hf.cli("flush", "-q").returncode, hf.cli("flush", "-q").stdout) == (0, b"")
    assert [(p["kind"], p["body"]) for p in hf.pings()] == [("success", "while down")]


def test_retries_wait_out_a_short_outage_before_spooling(hf: Setup) -> None:
    restartable(hf)
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "ping", "job", "-m", "retried"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=hf.env(HEARTFLY_RETRIES="4"),  # waits about 0.5 + 1 + 2 + 4 s in all
    )
    hf.server = Server(hf.config).start()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b"spooled" not in stderr
    assert [p["body"] for p in hf.pings()] == ["retried"]


def test_run_retries_its_end_ping_by_default_through_a_server_restart_of_several_seconds(hf: Setup) -> None:
    # Three retries (the old default) gave up about 3.5 s after the end and spooled it until the
    # next run, while the check's deadlines came and went; five wait some 15 s.
    restartable(hf)
    hf.server = Server(hf.config).start()
    env = hf.env()
    del env["HEARTFLY_RETRIES"]
    ended = hf.tmp / "ended"
    job = f"import time; time.sleep(1); open({str(ended)!r}, 'w').close()"
    proc = subprocess.Popen([PY, "-m", "heartfly", "run", "job", "--", PY, "-c", job], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=hf.tmp)  # fmt: skip
    try:
        for _ in range(300):  # the start ping is in before the server stops
            if hf.pings():
                break
            time.sleep(0.02)
        hf.server.stop()
        for _ in range(500):
            if ended.exists():
                break
            time.sleep(0.02)
        time.sleep(4.5)  # past the third retry (at most 0.6 + 1.2 + 2.4 s after the end ping)
        hf.server = Server(hf.config).start()
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and b"spooled" not in stderr, stderr
    assert [p["kind"] for p in hf.pings()] == ["start", "success"] and not hf.spooled()


def test_an_unwritable_spool_is_a_warning_and_never_changes_the_jobs_exit_code(hf: Setup) -> None:
    restartable(hf)
    (hf.tmp / "file").write_text("")
    spool = str(hf.tmp / "file" / "spool")
    result = hf.cli("run", "job", "--", "sh", "-c", "echo work; exit 5", HEARTFLY_SPOOL=spool)
    assert (result.returncode, result.stdout) == (5, b"work\n")
    assert err(result).count("the ping is lost") == 2 and "Traceback" not in err(result)
    ping = hf.cli("ping", "job", HEARTFLY_SPOOL=spool)
    assert ping.returncode == 1 and "cannot spool it to" in err(ping)


# --- Healthchecks-style clients reporting to Heartfly ---------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_healthchecks_style_curl_one_liners_work_unchanged(hf: Setup) -> None:
    rid = str(uuid.uuid4())
    script = f"""
        set -e
        URL={hf.url}
        curl -fsS -m 10 --retry 5 -o /dev/null "$URL/start?rid={rid}"
        curl -fsS -m 10 --retry 5 -o /dev/null --data-raw "rows: 1200" "$URL?rid={rid}"
        false || curl -fsS -m 10 --retry 5 -o /dev/null --data-raw "it broke" "$URL/$?"
        echo "a log line" | curl -fsS -m 10 --retry 5 -o /dev/null --data-binary @- "$URL/log"
        curl -fsS -m 10 --retry 5 -o /dev/null -I "$URL"
        curl -fsS -m 10 --retry 5 -o /dev/null "$URL/fail"
        curl -fsS -m 10 -o /dev/null "{hf.server.url}/ping/{hf.ping_key}/job/0"
    """
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = [(p["kind"], p["exit_status"], p["run_id"], p["body"].strip(), p["method"]) for p in hf.pings()]
    assert got == [
        ("start", None, rid, "", "GET"),
        ("success", None, rid, "rows: 1200", "POST"),
        ("fail", 1, None, "it broke", "POST"),
        ("log", None, None, "a log line", "POST"),
        ("success", None, None, "", "HEAD"),
        ("fail", None, None, "", "GET"),
        ("success", 0, None, "", "GET"),
    ]
    missing = subprocess.run(["curl", "-fsS", "-m", "10", f"{hf.server.url}/ping/{new_key()}"], capture_output=True)
    assert missing.returncode == 22  # curl -f: the HTTP error (404) fails the command


def test_runitor_style_requests_work_unchanged(hf: Setup) -> None:
    """runitor (a Go program, not installable here) POSTs text/plain to <api-url>/<uuid>/<event>?rid=<uuid>,
    or to <api-url>/<ping-key>/<slug>/<event> with -ping-key and -slug; -api-url is Heartfly's /ping."""
    api_url = f"{hf.server.url}/ping"
    rid = str(uuid.uuid4())

    def post(path: str, body: bytes = b"") -> int:
        request = urllib.request.Request(
            f"{api_url}/{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain", "User-Agent": "runitor/v1.4.1 (+https://bdd.fi/x/runitor)"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    assert post(f"{hf.key}/start?rid={rid}") == 200
    assert post(f"{hf.key}/0?rid={rid}", b"backup ok\n") == 200
    assert post(f"{hf.key}/?rid={rid}", b"") == 200  # success with an empty event segment
    assert post(f"{hf.ping_key}/job/start?rid={rid}&create=1") == 200
    assert post(f"{hf.ping_key}/job/2?rid={rid}&create=1", b"exit 2\n") == 200
    assert post(f"{hf.key}/log", b"a log line\n") == 200
    got = [(p["kind"], p["exit_status"], p["body"]) for p in hf.pings()]
    assert got == [
        ("start", None, ""),
        ("success", 0, "backup ok\n"),
        ("success", None, ""),
        ("start", None, ""),
        ("fail", 2, "exit 2\n"),
        ("log", None, "a log line\n"),
    ]


@pytest.mark.parametrize("retries", ["lots", "²"])  # "²" passes isdigit(), and int() refuses it
def test_a_malformed_retries_setting_is_a_warning_and_the_job_still_runs(hf: Setup, retries: str) -> None:
    result = hf.cli("run", "job", "--", "sh", "-c", "exit 6", HEARTFLY_RETRIES=retries)
    assert result.returncode == 6 and f'not "{retries}"; using 5' in err(result), err(result)
    assert [p["kind"] for p in hf.pings()] == ["start", "fail"]


def test_a_malformed_ping_budget_is_a_warning_and_the_job_still_runs(hf: Setup) -> None:
    result = hf.cli("run", "job", "--", "sh", "-c", "exit 6", HEARTFLY_PING_BUDGET="0s")
    assert result.returncode == 6 and 'not "0s"; using 20s' in err(result)
    assert [p["kind"] for p in hf.pings()] == ["start", "fail"]


def test_a_timeout_is_reported_as_a_failure_even_when_the_command_then_exits_zero(hf: Setup) -> None:
    # A command that shuts down cleanly on SIGTERM (a trap, a graceful shutdown) exits 0 after the
    # timeout struck: the run did not finish its work, and must not be reported as a success. The
    # trap is a shell's, set within a millisecond or two of its start: a Python's, set after its
    # start-up (well over the timeout on a busy machine), let the SIGTERM kill it now and then.
    graceful = 'trap "exit 0" TERM; echo working; sleep 30 & wait'
    result = hf.cli("run", "job", "--timeout", "1s", "--", "sh", "-c", graceful)
    assert result.returncode == 0, err(result)  # the command's own status, as always
    end = hf.pings()[-1]
    assert end["kind"] == "fail"
    assert "timed out after 1 s: sent SIGTERM; the command ended with exit status 0" in end["body"]


def test_a_command_that_ended_in_time_is_not_timed_out_while_its_output_drains(hf: Setup) -> None:
    # The command exited 0 in time, but a child it left in the background held its stdout, and
    # heartfly read on for up to 1 s: a --timeout that fell in that second struck a command already
    # ended, SIGTERMed its group and reported the run as a failure that timed out, a false alarm.
    result = hf.cli("run", "job", "--timeout", "700ms", "--", "sh", "-c", "echo done; (sleep 3) & exit 0")
    assert result.returncode == 0, err(result)
    end = hf.pings()[-1]
    assert (end["kind"], "timed out" in end["body"]) == ("success", False), end


def test_a_timeout_gives_what_the_command_started_its_kill_after_grace_too(hf: Setup) -> None:
    # A script's worker, sent SIGTERM with the script by the timeout, cleans up before it exits
    # (a temporary file, a lock it holds). The script dies of the SIGTERM at once; its worker was
    # SIGKILLed that moment, not --kill-after later, and its clean-up never ran. Both are shells,
    # whose traps are set within a millisecond or two of their start (a Python's, after its start-up,
    # could come after the timeout on a busy machine).
    cleaned = hf.tmp / "cleaned"
    worker = hf.tmp / "worker.sh"
    worker.write_text(f'trap "sleep 0.5; echo yes > {cleaned}; exit 1" TERM\necho working\nsleep 30 & wait\n')
    result = hf.cli("run", "job", "--timeout", "1s", "--kill-after", "10s", "--", "sh", "-c", f"sh {worker}; true")
    assert result.returncode == 128 + signal.SIGTERM, err(result)  # the script's own end
    assert cleaned.read_text() == "yes\n"
    assert "timed out after 1 s: sent SIGTERM; the command ended with SIGTERM" in hf.pings()[-1]["body"]


def test_the_command_inherits_the_file_descriptors_heartfly_was_given(hf: Setup) -> None:
    # `heartfly run job -- sh -c 'report >&3' 3>>progress.log`, a lock fd a wrapper opened: without
    # heartfly the command has them; with it, fd 3 was closed ("Bad file descriptor"), the job failed.
    log = hf.tmp / "progress.log"
    with open(log, "ab") as handle:
        fd = handle.fileno()
        result = subprocess.run(
            [PY, "-m", "heartfly", "run", "job", "--", PY, "-c", f"import os; os.write({fd}, b'progress\\n')"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=hf.env(), cwd=hf.tmp, pass_fds=(fd,),
        )  # fmt: skip
    assert result.returncode == 0, err(result)
    assert log.read_text() == "progress\n"


def test_heartflys_own_file_descriptors_stay_out_of_the_command(hf: Setup) -> None:
    # The command inherits what heartfly was given (close_fds=False), never heartfly's own: a pipe's
    # write end that a daemon the job starts kept open would keep heartfly run waiting for it, a
    # spool lock it kept would hold back every later replay. A spooled ping is replayed first, under
    # the spool's locks, over a socket, so each of them has been open before the command starts.
    from heartfly.client.spool import Spool
    from heartfly.client.transport import Ping

    Spool(hf.spool).put(Ping(hf.url, "log", b"from the spool", at=time.time() - 60))
    probe = (
        "import os\nfds = []\nfor fd in range(1024):\n"
        "    try: fds.append(os.fstat(fd) and fd)\n    except OSError: pass\nprint(fds)"
    )
    with open(hf.tmp / "progress.log", "ab") as handle:
        fd = handle.fileno()
        result = subprocess.run(
            [PY, "-m", "heartfly", "run", "job", "--", PY, "-c", probe],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=hf.env(), cwd=hf.tmp, pass_fds=(fd,),
        )  # fmt: skip
    assert result.returncode == 0, err(result)
    assert result.stdout.decode() == f"{[0, 1, 2, fd]}\n"
    assert [p["kind"] for p in hf.pings()] == ["log", "start", "success"]
