"""`heartfly serve` as a real subprocess, its port read from its own log line; other subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

LISTENING = re.compile(r"Heartfly listening on (http://\S+) with")


class Server:
    def __init__(self, config: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.env = env or {}  # added to (or, with value "", removed from) the inherited environment
        self.args = args  # more options for `heartfly serve`
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self._ready = threading.Event()

    def start(self, timeout: float = 20.0) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env = {k: v for k, v in env.items() if v or k not in self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "heartfly", "serve", "-c", str(self.config), *self.args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.kill()
            raise RuntimeError("server did not start:\n" + self.log())
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.02)
        return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def heartfly(*args: str, timeout: float = 30.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartfly", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_python(code: str) -> str:
    """`code` (dedented) in a fresh interpreter, for what is process-wide; its stripped output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()
