"""sd_notify over $NOTIFY_SOCKET: READY, RELOADING, STOPPING, STATUS and the watchdog.

The protocol is one datagram of newline-separated `KEY=value` lines to the AF_UNIX socket named
in $NOTIFY_SOCKET (a leading '@' means Linux's abstract namespace). Implemented here on the
standard library so the service needs no libsystemd binding. Outside systemd every call is a
cheap no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

log = logging.getLogger(__name__)


def _address() -> str | None:
    value = os.environ.get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, or a kind we do not speak (vsock:…)


def enabled() -> bool:
    return _address() is not None


# The one socket every message goes out by: out of file descriptors (clients holding every one), a
# socket per message could not be opened, WATCHDOG=1 stopped, and systemd aborted a server that was
# otherwise working. Opened by open_socket() at the start, before the port is bound: opened at the
# first message, READY=1, it came after the port began to serve, whose queued clients (a flood met
# by a restart) could take every descriptor first, and READY=1 never went out.
_sock: socket.socket | None = None


def open_socket() -> None:
    """Open the socket now, under systemd, so that no message needs a descriptor of its own later;
    a failure is logged at debug level and the first message tries again."""
    if _address() is not None:
        _socket()


def _socket() -> socket.socket | None:
    global _sock
    if _sock is None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError as exc:
            log.debug("sd_notify: cannot open a socket: %s", exc)
            return None
        sock.setblocking(False)
        _sock = sock
    return _sock


def notify(*fields: str) -> bool:
    """Send `fields` (e.g. "READY=1", "STATUS=…") as one message; True if it was sent.

    Never blocks the event loop and never raises: a full or vanished socket must not take the
    service down, so failures are logged at debug level and reported as False.
    """
    address = _address()
    if address is None:
        return False
    message = "\n".join(field.replace("\n", " ") for field in fields).encode()
    sock = _socket()
    if sock is None:
        return False
    try:
        sock.sendto(message, address)
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    # MONOTONIC_USEC lets systemd (253+, Type=notify-reload) match this RELOADING to its request.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def stopping(status: str) -> bool:
    return notify("STOPPING=1", f"STATUS={status}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


# Start time asked for at a time while a long step of the start runs (EXTEND_TIMEOUT_USEC), again
# every EXTEND_EVERY seconds: a third of it, so that one late message costs nothing.
EXTEND = 30.0
EXTEND_EVERY = EXTEND / 3


@contextlib.contextmanager
def extending_start(status: str) -> Iterator[None]:
    """Under systemd, while the body runs (a migration: minutes on a large database), ask for
    EXTEND more seconds of start time every EXTEND_EVERY, from a thread of its own (the body may
    hold the event loop): past TimeoutStartSec the start was killed, and every restart began the
    same step again, never done. Said in STATUS= too (`systemctl status`)."""
    if not enabled():
        yield
        return
    done = threading.Event()

    def extend() -> None:
        while True:
            notify(f"EXTEND_TIMEOUT_USEC={int(EXTEND * 1_000_000)}", f"STATUS={status}")
            if done.wait(EXTEND_EVERY):
                return

    thread = threading.Thread(target=extend, name="heartfly-extend-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None if no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or not enabled():
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    return int(usec) / 2e6


async def run_watchdog(healthy: Callable[[], str | None], interval: float) -> None:
    """Ping the watchdog every `interval` seconds while `healthy()` returns None.

    `healthy` returns what is wrong, if anything. Running in the event loop, this task also
    proves the loop itself turns; a frozen loop, or a deadline timer that stopped waking, stops
    the pings and systemd restarts the service after WatchdogSec.
    """
    reported: str | None = None
    while True:
        problem = healthy()
        if problem is None:
            notify("WATCHDOG=1")
            if reported is not None:
                log.warning("feeding the systemd watchdog again")
        elif problem != reported:
            log.error("not feeding the systemd watchdog: %s", problem)
        reported = problem
        await asyncio.sleep(interval)


# Syslog priorities for journald's "<N>" line prefix (SyslogLevelPrefix=, on by default).
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def prefixed(priority: int, text: str) -> str:
    """`text` with every line prefixed "<priority>": journald makes each line an entry of its own,
    at its own prefix's priority (else info)."""
    return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


def stderr_is_journal() -> bool:
    """True if stderr is connected to journald ($JOURNAL_STREAM names its device and inode)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def log_uncaught() -> None:
    """Log an exception nothing caught (a bug), with its traceback, at critical priority.

    The interpreter would print it to stderr with no "<N>" prefix, which journald takes for info:
    `journalctl -p warning` showed systemd's "Failed with result 'exit-code'" and nothing of why.
    """
    fallback = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            fallback(kind, value, tb)
            return
        log.critical("stopped by an unexpected error", exc_info=(kind, value, tb))

    sys.excepthook = hook


class JournalFormatter(logging.Formatter):
    """Prefixes each line with its syslog priority, so `journalctl -p err` and colours work.

    Every line of the record: journald makes each line an entry of its own, at the priority of
    its own prefix (else info), so a traceback's lines would otherwise fall below `-p err`, and
    a line of a message that began with "<0>" would be taken for an emergency.
    """

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return prefixed(priority, super().format(record))
