"""Helpers shared by the benchmark scripts in this folder (not a benchmark itself).

Subprocesses write their output to files (never to pipes nobody drains), are started in their own
session so a Ctrl-C reaches only the benchmark, and are stopped with SIGTERM, then SIGKILL, by pid.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"

LISTENING_RE = re.compile(r"Heartfly listening on http://(?:\[[^\]]+\]|[^:/\s]+):(\d+) with (\d+) checks")


def python_exe() -> str:
    """The project's virtualenv python if there is one, else the interpreter running this script."""
    candidate = VENV_BIN / "python"
    return str(candidate) if candidate.exists() else sys.executable


def heartfly_cmd() -> list[str]:
    """The `heartfly` console script of the virtualenv, else `python -m heartfly`."""
    for folder in (VENV_BIN, Path(sys.executable).parent):
        script = folder / "heartfly"
        if script.exists():
            return [str(script)]
    return [python_exe(), "-m", "heartfly"]


def make_key() -> str:
    """A fresh ping key: 24 url-safe characters (Heartfly wants at least 22)."""
    return secrets.token_urlsafe(18)


def format_ms(total_ms: int) -> str:
    """Milliseconds as a Heartfly duration string, largest unit first: 3250 -> "3s250ms"."""
    if total_ms <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    key: str
    every: str
    grace: str | None = None
    cron: str | None = None  # instead of `every`


def write_heartfly_config(
    folder: Path,
    checks: Sequence[CheckSpec],
    *,
    keep_pings: int | None = None,
    database: str | None = None,
    server: Sequence[str] = (),
    name: str = "heartfly.toml",
) -> Path:
    """A config listening on an OS-picked port, with its database in `folder` (or `database`, a
    postgresql:// URL) and more `server` lines; returns its path."""
    lines = [
        "[server]",
        'listen = "127.0.0.1:0"',
        f"database = {json.dumps(database or str(folder / 'heartfly.db'))}",  # JSON strings are TOML strings
        *server,
    ]
    if keep_pings is not None:
        lines.append(f"keep_pings = {keep_pings}")
    for check in checks:
        schedule = f'cron = "{check.cron}"' if check.cron is not None else f'every = "{check.every}"'
        lines += ["", f"[checks.{check.name}]", f'key = "{check.key}"', schedule]
        if check.grace is not None:
            lines.append(f'grace = "{check.grace}"')
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def installed_env() -> dict[str, str]:
    """The environment for a measured Heartfly process: bytecode may be cached, as in a deployed
    install (pip compiles it at install time). An environment that forbids writing it (this VM's
    sets PYTHONDONTWRITEBYTECODE) would make every start compile Heartfly's hundred modules, some
    0.15 s that no installed server pays."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_heartfly() -> None:
    """Compile Heartfly's modules before anything is timed, as an install does: otherwise the
    first start after a source change pays for it and the later ones do not."""
    import heartfly

    package = Path(heartfly.__file__).parent
    subprocess.run([python_exe(), "-m", "compileall", "-q", str(package)], env=installed_env(), check=True)


def start_process(cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `cmd` with stdout and stderr going to `log_path`, in a session of its own (`env`: added
    to installed_env())."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**installed_env(), **(env or {})},
        )


def wait_for_match(
    proc: subprocess.Popen[bytes], log_path: Path, pattern: re.Pattern[str], timeout: float
) -> re.Match[str]:
    """Poll `log_path` until `pattern` matches; raises if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        match = pattern.search(text)
        if match is not None:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with status {proc.returncode} before it was ready:\n{tail(text)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r} not ready after {timeout:.0f} s:\n{tail(text)}")
        time.sleep(0.02)


def start_heartfly(
    config: Path, log: Path, cache_dir: Path | None = None
) -> tuple[subprocess.Popen[bytes], re.Match[str], float]:
    """`heartfly serve -c config`, waited for until it listens: the process, its listening line,
    and the seconds from launch to that line (a start's time). `cache_dir`: given to it as systemd
    gives the installed unit's CacheDirectory= (a large config's parse is kept there)."""
    env = {"CACHE_DIRECTORY": str(cache_dir)} if cache_dir is not None else {}
    began = time.monotonic()
    proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log, env)
    try:
        match = wait_for_match(proc, log, LISTENING_RE, timeout=600)
    except BaseException:
        stop_process(proc)  # one that never listened is not left behind
        raise
    return proc, match, time.monotonic() - began


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> int | None:
    """SIGTERM the process (only it, by pid), wait up to `timeout`, then SIGKILL; returns its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"warning: pid {proc.pid} ignored SIGTERM for {timeout:.0f} s; killing it", file=sys.stderr)
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def sqlite_ro_uri(path: Path) -> str:
    return f"file:{path}?mode=ro"


def exit_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so `finally` blocks stop the servers and remove the temporary folder."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_in_tempdir(prefix: str, keep: bool, run: Callable[[Path], int]) -> NoReturn:
    """Run a bench in a fresh temporary folder, removed afterwards (unless `keep`); exit with its status."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        status = run(folder)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        status = 130
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status)


def rss_mib(pid: int) -> float:
    """A process's resident memory in MiB, from /proc."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by a process's main thread and by its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        used = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if int(task.name) == pid:
            main += used
        else:
            others += used
    return main, others


def children_cpu() -> float:
    """CPU seconds used so far by this process's finished children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
