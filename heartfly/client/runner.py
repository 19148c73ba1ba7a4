"""`heartfly run`'s job: run a command without a shell, pass its output through, keep the tail.

The command's stdout and stderr go to ours byte for byte while the last bytes of both (in arrival
order) are kept for the end ping. Signals sent to us are passed on to the command; a timeout sends
TERM, then KILL, to the command's process group. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing costs every cron tick ~5 ms; mypy reads this name as True
if TYPE_CHECKING:
    from types import FrameType
    from typing import NamedTuple

STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # to the command's group
FORWARDED = (*STOPS, signal.SIGUSR1, signal.SIGUSR2)  # USR1 and USR2 ask the command alone
CHUNK = 65536
POLL = 0.25  # while output is open, how often to notice that the command itself has exited
DRAIN_AFTER_EXIT = 1.0  # then how long background children that hold its output may keep it
DEFAULT_TAIL = 10 * 1024


class Tail:
    """The last `size` bytes written, and how many came before them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.total = 0
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data
        if len(self._buf) > 2 * self.size + CHUNK:  # trim in batches, not on every chunk
            del self._buf[: len(self._buf) - self.size]

    def value(self, fit: int | None = None) -> bytes:
        """The last bytes, after a line saying how many came before them; at most `fit` bytes in
        all when given (a server keeps the first bytes of a body: the end must be within them)."""
        keep = self.size if fit is None else max(0, min(self.size, fit))
        while True:
            data = self._last(keep)
            if len(data) == self.total:
                return data
            out = f"[heartfly: {self.total - len(data)} earlier bytes of output not shown]\n".encode() + data
            if fit is None or len(out) <= fit or not data:
                return out
            keep -= len(out) - fit

    def _last(self, size: int) -> bytes:
        data = bytes(self._buf[-size:]) if size > 0 else b""
        skip = 0
        while len(data) < self.total and skip < 3 and skip < len(data) and 0x80 <= data[skip] < 0xC0:
            skip += 1  # do not start inside a UTF-8 character
        return data[skip:]


if TYPE_CHECKING:

    class _Outcome(NamedTuple):
        exit_code: int  # what `heartfly run` exits with: the command's own, 128+N if signal N ended it
        duration: float
        output: bytes  # the tail of stdout and stderr
        note: str = ""  # heartfly's own words when something beyond the exit code happened
        timed_out: bool = False  # --timeout struck: a failure, whatever status the command then ended with

else:  # the same tuple without typing; not a dataclass either (dataclasses and inspect cost ~10 ms)
    _Outcome = namedtuple("_Outcome", "exit_code duration output note timed_out", defaults=("", False))


class RunOutcome(_Outcome):
    __slots__ = ()

    def event(self) -> str:
        """The end ping's event: the exit status, or a failure when the timeout struck (a command
        that shuts down cleanly on SIGTERM exits 0 then, and its run did not finish)."""
        return "fail" if self.timed_out and self.exit_code == 0 else str(self.exit_code)

    def body(self) -> bytes:
        if not self.note:
            return self.output
        sep = b"\n" if self.output and not self.output.endswith(b"\n") else b""
        return self.output + sep + f"[heartfly] {self.note}\n".encode(errors="surrogateescape")


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Runner:
    """Use as a context manager: signal forwarding is on from entry, so a TERM during the start ping
    is not lost (the command is then not started), and stays on until the end ping is sent."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        kill_after: float = 10.0,
        tail_size: int = DEFAULT_TAIL,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.kill_after = kill_after
        self.tail = Tail(tail_size)
        self.env = dict(env) if env is not None else None
        # Interactive use keeps the command in the terminal's process group (so it may read the
        # terminal); under cron and systemd it gets a group of its own, so a timeout kills all of it.
        self.own_group = not _isatty(0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.early_signal: int | None = None
        self.body_limit: int | None = None  # what the server keeps of the report, when it said so
        self._saved: dict[int, object] = {}

    def __enter__(self) -> Runner:
        for sig in FORWARDED:
            if signal.getsignal(sig) == signal.SIG_IGN:
                continue  # ignored by whoever started us (`job &` ignores INT): the command inherits that
            self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.proc is None:
            self.early_signal = signum
        elif self.proc.returncode is not None:
            pass  # reaped: its pid, and so its group's id, may be another process's by now
        elif signum == signal.SIGINT and not self.own_group:
            pass  # the terminal sent Ctrl-C to its whole foreground group: the command has it already
        elif self.own_group and signum in STOPS:
            # To all of the command's group, as a terminal, `timeout` or `kill -- -PGID` would have
            # sent it without us: else what the command started runs on, orphaned, once it has gone.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def run(self) -> RunOutcome:
        if self.early_signal is not None:
            name = signal_name(self.early_signal)
            return RunOutcome(128 + self.early_signal, 0.0, b"", f"received {name} before the command started")
        started = time.monotonic()
        try:
            proc = self._start()
        except OSError as exc:
            # The shell's convention: 127 when there is no such command, 126 when it cannot run.
            missing = isinstance(exc, FileNotFoundError)
            why = _not_found(self.argv[0], self.env) if missing else (exc.strerror or str(exc))
            return RunOutcome(127 if missing else 126, 0.0, b"", f'cannot run "{self.argv[0]}": {why}')
        self.proc = proc
        if self.early_signal is not None:  # arrived while the command was being started
            self._on_signal(self.early_signal, None)
        timed_out, hard_killed = self._pump(proc, started)
        returncode = proc.wait()
        duration = time.monotonic() - started
        code = returncode if returncode >= 0 else 128 - returncode
        note = ""
        if timed_out:
            note = f"timed out after {_seconds(self.timeout or 0.0)}: sent SIGTERM"
            if hard_killed:
                note += f", then SIGKILL {_seconds(self.kill_after)} later"
            note += f"; the command ended with {_status(returncode)}"
        elif returncode < 0:
            note = f"the command was killed by {signal_name(-returncode)}"
        return RunOutcome(code, duration, self.tail.value(self._room(note)), note, timed_out)

    def _room(self, note: str) -> int | None:
        """How much output fits beside heartfly's note in what the server keeps of the report."""
        if self.body_limit is None:
            return None
        note_size = len(RunOutcome(0, 0.0, b"", note).body())  # "[heartfly] …\n", or nothing
        return self.body_limit - note_size - (1 if note else 0)  # and a newline before it

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            return self._spawn(self.argv)
        except OSError as exc:
            script = _script(self.argv[0], self.env) if exc.errno == errno.ENOEXEC else None
            if script is None:
                raise
        # An executable text file without "#!": the shell and execvp(3) (under env, nice, timeout)
        # run it with /bin/sh, and so does the crontab line that names it without heartfly.
        return self._spawn(["/bin/sh", script, *self.argv[1:]])

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - the user's own command, on purpose without a shell
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            # The file descriptors we were given (3>>log, a lock a wrapper holds) are
            # the command's as without us; ours are not inheritable (PEP 446), the pipes' included.
            close_fds=False,
            process_group=0 if self.own_group else None,
            preexec_fn=_dies_with_us() if self.own_group else None,  # see _dies_with_us
        )

    def _pump(self, proc: subprocess.Popen[bytes], started: float) -> tuple[bool, bool]:
        """Copies output until both streams close and the command has exited; enforces the timeout.
        Returns whether the timeout struck, and whether it came to SIGKILL."""
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sinks = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
        streams = {proc.stdout.fileno(): proc.stdout, proc.stderr.fileno(): proc.stderr}
        for fd in sinks:
            sel.register(fd, selectors.EVENT_READ)
        forwarding = {1: True, 2: True}
        deadline = started + self.timeout if self.timeout is not None else None
        kill_at: float | None = None
        timed_out = hard_killed = False
        exited_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                # Only a command still running times out: one that ended in time, whose background
                # children hold its output a while longer, is not cut short (nor reported as a fail).
                if deadline is not None and not timed_out and now >= deadline and proc.poll() is None:
                    timed_out = True
                    self._kill(proc, signal.SIGTERM)
                    kill_at = now + self.kill_after
                if kill_at is not None and proc.poll() is not None and not self._group_left(proc):
                    kill_at = None  # the command and all it started ended on the SIGTERM
                elif kill_at is not None and now >= kill_at:
                    # What is left of the group gets SIGKILL --kill-after after the SIGTERM, as the
                    # command does: a worker that its script's end left cleaning up gets its grace too.
                    hard_killed = proc.poll() is None
                    self._kill(proc, signal.SIGKILL)
                    kill_at = None
                if exited_at is None and sel.get_map() and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at >= DRAIN_AFTER_EXIT and kill_at is None:
                    break  # background children still hold the output: stop waiting for them
                timing = deadline if not timed_out and exited_at is None else None  # else past: no wake-ups
                waits = [t - now for t in (timing, kill_at) if t is not None]
                if exited_at is not None and kill_at is None:
                    waits.append(exited_at + DRAIN_AFTER_EXIT - now)
                wait = max(0.0, min(waits)) if waits else None
                if not sel.get_map():
                    if kill_at is not None and proc.poll() is not None:
                        time.sleep(min(wait or 0.0, POLL))  # the rest of its group may still end
                        continue
                    try:
                        proc.wait(wait)
                    except subprocess.TimeoutExpired:
                        continue
                    if kill_at is None:
                        break
                    continue
                for key, _ in sel.select(min(wait, POLL) if wait is not None else POLL):
                    data = os.read(key.fd, CHUNK)
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    self.tail.add(data)
                    sink = sinks[key.fd]
                    if forwarding[sink] and not _write(sink, data):
                        # Our reader went away (`heartfly run … | head`): close the command's pipe
                        # too, so it sees the same broken pipe it would have seen without us.
                        forwarding[sink] = False
                        sel.unregister(key.fd)
                        streams[key.fd].close()
        finally:
            sel.close()
            for stream in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
        return timed_out, hard_killed

    def _group_left(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether anything is left of the command's own process group (none when it has none)."""
        if not self.own_group:
            return False
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # one of it that changed its user
        return True

    def _kill(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)


def _write(fd: int, data: bytes) -> bool:
    """Writes all of `data`; False when the reader has gone (EPIPE). Other errors drop the copy
    silently (a closed stdout under cron), the tail is still kept."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)  # a non-blocking stdout inherited from our parent
        except OSError as exc:
            return exc.errno != errno.EPIPE
    return True


def _script(name: str, env: Mapping[str, str] | None) -> str | None:
    """The file that `name` runs, if it is text (a binary for another machine is no shell script)."""
    path = _found(name, env)
    head = _head(path)
    return path if head is not None and b"\0" not in head else None


def _not_found(name: str, env: Mapping[str, str] | None) -> str:
    """Why the command `name` was not found: it is not there, or (ENOENT too) its #! interpreter is not."""
    head = _head(_found(name, env)) or b""
    if not head.startswith(b"#!"):
        return "command not found"
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip(" \t")
    interpreter = line.split(" ", 1)[0].split("\t", 1)[0]
    shown = interpreter.replace("\r", "\\r")  # a carriage return, made visible
    why = f'the interpreter on its #! line, "{shown}", was not found'
    return why + (" (Windows line endings?)" if line.endswith("\r") else "")


def _found(name: str, env: Mapping[str, str] | None) -> str | None:
    """The file that the command `name` is, found as the exec call finds it (PATH unless a path)."""
    import shutil

    return name if "/" in name else shutil.which(name, path=os.pathsep.join(os.get_exec_path(env)))


def _head(path: str | None) -> bytes | None:
    try:
        with open(path or "", "rb") as handle:
            return handle.read(256)
    except OSError:
        return None


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _seconds(value: float) -> str:
    from heartfly.core.units import human_duration

    return human_duration(value)


def _status(returncode: int) -> str:
    return f"exit status {returncode}" if returncode >= 0 else signal_name(-returncode)


def _dies_with_us() -> Callable[[], None] | None:
    """For a command in a process group of its own: a hook, run in the child before the command,
    that has Linux kill it when we die. A supervisor that kills our group (`timeout -k`, `kill -9
    -PGID`) then ends the command with us, as it would without us; else it would run on, orphaned.
    None off Linux, or where libc cannot be loaded. Safe after fork: the job side's only other
    thread, a name lookup left behind by http1, holds no lock the hook takes."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # only here: ~2.5 ms

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # we died before the request was made: it will not fire
            os._exit(128 + signal.SIGKILL)

    return hook
