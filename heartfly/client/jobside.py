"""What `heartfly ping` and `heartfly run` do, without click: a cron tick pays for neither click
nor the config parser (heartfly.client.quickargs reads their usual arguments; cli_client is their click
face, for help texts, usage errors and anything unusual).

heartfly.core.config (and croniter with it) is imported only when heartfly.client.lookup cannot vouch
for a check name's address in a local config file (one that does not parse, a malformed value);
a full URL or HEARTFLY_URL + HEARTFLY_PING_KEY never reads a file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence

from heartfly.client import transport as client
from heartfly.client.spool import DEFAULT_MAX_BYTES, Courier, Result, Spool, default_folder
from heartfly.client.transport import (
    END_BUDGET,
    MAX_BODY,
    RETRIES,
    START_BUDGET,
    AddressError,
    Ping,
    Transport,
    check_run_id,
    check_url,
    config_url,
    event_for,
    name_url,
    parse_metric,
    target_url,
)
from heartfly.core.addresses import KEY_RE
from heartfly.core.units import UnitError, parse_duration, parse_size

TYPE_CHECKING = False  # pathlib and typing cost a cron tick ~15 ms; mypy reads this name as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import NoReturn


def random_uuid() -> str:
    """A random (version 4) UUID, as str(uuid.uuid4()), without importing uuid (and platform)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class UsageProblem(ValueError):
    """Bad arguments: reported as a usage error (exit 2), before anything is sent or run."""


def warn(text: str) -> None:
    """A note on stderr, which may be closed (`2>&-`) or a broken pipe (`2>&1 | head`): a note
    that cannot be written is dropped, never an error that stops the job or loses its ping."""
    try:
        sys.stderr.write(f"heartfly: {text}\n")
        sys.stderr.flush()
    except BlockingIOError:
        pass  # a full non-blocking pipe: this note is dropped, the next may fit
    except (AttributeError, OSError, ValueError):
        sys.stderr = None  # else the exit flushes it again, and fails again: exit status 120


def retries_of(text: str | None) -> int:
    # Lenient on purpose: a typo in a crontab's environment must not stop `heartfly run` running the job.
    if text is None:
        return RETRIES
    if text.strip().isascii() and text.strip().isdigit() and int(text) <= 10:  # isdigit() alone takes "²"
        return int(text)
    warn(f'warning: --retries/HEARTFLY_RETRIES wants a number from 0 to 10, not "{text}"; using {RETRIES}')
    return RETRIES


def budget_of(text: str | None) -> float:
    # Lenient like _retries: a typo must not stop the job.
    if text is None:
        return END_BUDGET
    try:
        budget = parse_duration(text)
    except UnitError:
        budget = 0.0
    if budget > 0:
        return budget
    warn(f'warning: --ping-budget/HEARTFLY_PING_BUDGET wants a duration over zero, not "{text}"; using {END_BUDGET:g}s')
    return END_BUDGET


def courier(spool_dir: Path | None, retries: str | None) -> Courier:
    env = os.environ
    limit = DEFAULT_MAX_BYTES
    if env.get("HEARTFLY_SPOOL_MAX"):
        try:
            limit = parse_size(env["HEARTFLY_SPOOL_MAX"])
        except UnitError as exc:
            warn(f"warning: HEARTFLY_SPOOL_MAX: {exc}; using {DEFAULT_MAX_BYTES} bytes")
    folder = spool_dir or default_folder(env)
    return Courier(Transport(retries=retries_of(retries)), Spool(folder, limit), warn)


def resolve(target: str, config_path: Path | None, env: Mapping[str, str]) -> str:
    """A full URL as given; a name via HEARTFLY_URL + HEARTFLY_PING_KEY, else via the config file."""
    url = target_url(target)
    if url is not None:
        return url
    base, ping_key = env.get("HEARTFLY_URL"), env.get("HEARTFLY_PING_KEY")
    if base:
        check_url(base, "HEARTFLY_URL")  # its problem first, whatever a config file's may be
    if ping_key and not KEY_RE.fullmatch(ping_key):  # the server's could never be this: say so, without it
        raise AddressError("HEARTFLY_PING_KEY is not a ping key (22 to 128 letters, digits, '-' and '_')")
    if config_path is None and base:
        if not ping_key:
            raise AddressError(
                "HEARTFLY_URL is set but HEARTFLY_PING_KEY is not: set it to the server's ping_key"
                f' to address "{target}" by name, or pass the check\'s full ping URL'
            )
        return name_url(base, ping_key, target)
    advice = (
        f'\n  to address "{target}" without a readable config, pass its full ping URL'
        " or set HEARTFLY_URL and HEARTFLY_PING_KEY"
    )
    missing = client.missing_config(config_path, env)
    if missing is not None:
        raise AddressError(missing + advice)
    from heartfly.client.lookup import url_in_file

    path = client.config_path(config_path)
    quick = url_in_file(path, target, base, ping_key)
    if quick is not None:
        return quick
    from heartfly.core.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise AddressError("; ".join(exc.problems) + advice) from None
    return config_url(config, target, base, ping_key)


def die(text: str, code: int = 2) -> NoReturn:
    warn(f"error: {text}")
    sys.exit(code)


def send_ping(
    target: str,
    *,
    start: bool = False,
    fail: bool = False,
    log: bool = False,
    progress: bool = False,
    exit_code: int | None = None,
    message: str | None = None,
    from_stdin: bool = False,
    rid: str | None = None,
    metrics: Sequence[str] = (),
    ping_budget: str | None = None,
    config_path: Path | None = None,
    spool_dir: Path | None = None,
    retries: str | None = None,
) -> NoReturn:
    """`heartfly ping`: exits 0 when the ping was delivered or spooled, 1 when it was refused or
    lost, 2 on bad usage (UsageProblem, raised before anything is read or sent)."""
    try:
        event = event_for(start=start, fail=fail, log=log, progress=progress, exit_code=exit_code)
        pairs = dict(parse_metric(m) for m in metrics)
        run_id = check_run_id(rid) if rid is not None else None
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if message is not None and from_stdin:
        raise UsageProblem("give the message with -m or --stdin, not both")
    # UTF-8, and argv's own bytes where they are not (surrogate escapes): never a crash
    body = message.encode("utf-8", "surrogateescape")[:MAX_BODY] if message is not None else b""
    if from_stdin:
        body = _read_stdin()
    try:
        url = resolve(target, config_path, os.environ)
    except AddressError as exc:
        die(str(exc))
    deadline = time.monotonic() + budget_of(ping_budget)  # a hung server must not hold the job that pings
    result = courier(spool_dir, retries).deliver(Ping(url, event, body, run_id, pairs), deadline)
    sys.exit(0 if result in (Result.SENT, Result.SPOOLED) else 1)


def _read_stdin() -> bytes:
    """The first MAX_BODY bytes of stdin, read to its end so the writer does not die of a broken pipe."""
    if sys.stdin is None:  # closed (`<&-`): the ping still goes, with nothing to say
        warn("warning: --stdin: stdin is closed; sending the ping without a message")
        return b""
    fd = sys.stdin.fileno()
    body = bytearray()
    while chunk := _read_some(fd):
        body += chunk[: MAX_BODY - len(body)]
    return bytes(body)


def _read_some(fd: int) -> bytes:
    """os.read, also of a pipe that a parent left non-blocking (O_NONBLOCK is shared with it)."""
    while True:
        try:
            return os.read(fd, 1 << 16)
        except BlockingIOError:
            import select

            select.select([fd], [], [])
        except OSError as exc:  # a terminal that hung up (EIO), say: send what came
            warn(f"warning: --stdin: reading stopped: {exc.strerror or exc}; sending what was read")
            return b""


def run_job(
    target: str,
    command: Sequence[str],
    *,
    timeout: str | None = None,
    kill_after: str = "10s",
    rid: str | None = None,
    tail_size: str = "10KiB",
    ping_budget: str | None = None,
    config_path: Path | None = None,
    spool_dir: Path | None = None,
    retries: str | None = None,
) -> NoReturn:
    """`heartfly run`: exits with the command's own status, whatever happens to the pings
    (UsageProblem, raised before the command runs, on bad usage)."""
    from heartfly.client.runner import Runner

    if not command:
        raise UsageProblem("no command to run: heartfly run NAME|URL -- COMMAND [ARGS]...")
    try:
        limit = parse_duration(timeout) if timeout is not None else None
        grace = parse_duration(kill_after)
        size = min(parse_size(tail_size), MAX_BODY)  # the most a ping body carries
        run_id = check_run_id(rid) if rid is not None else random_uuid()
    except (UnitError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None
    if limit is not None and limit <= 0:  # would kill the command the moment it starts
        raise UsageProblem(f'--timeout must be longer than zero, got "{timeout}"')
    sender: Courier | None = None
    try:
        url = resolve(target, config_path, os.environ)
        sender = courier(spool_dir, retries)
    except AddressError as exc:
        warn(f"error: {exc}\nheartfly: running the command without reporting it")
    except Exception as exc:  # noqa: BLE001 - a job's wrapper must never be why the job did not run
        warn(f"error: cannot address {client.redact(target)}: {type(exc).__name__}: {exc}")
        warn("running the command without reporting it")
    budget = budget_of(ping_budget)
    env = {**_given_environment(), "HEARTFLY_RUN_ID": run_id}
    with Runner(tuple(command), timeout=limit, kill_after=grace, tail_size=size, env=env) as runner:
        if sender is not None:  # a hung server must not hold the job back: what is not sent is spooled
            # Other servers' spooled pings wait for the end ping: they must not delay the command.
            start = Ping(url, "start", run_id=run_id)
            _deliver(sender, start, time.monotonic() + min(START_BUDGET, budget), others=False)
            runner.body_limit = sender.body_limit  # its answer says how much of the report it keeps
        outcome = runner.run()
        if outcome.note:
            warn(outcome.note)
        if sender is not None:
            metrics = {"duration": round(outcome.duration, 3)}
            end = Ping(url, outcome.event(), outcome.body(), run_id, metrics)
            _deliver(sender, end, time.monotonic() + budget)
    sys.exit(outcome.exit_code)


def _given_environment() -> dict[str, str]:
    """Our environment as we were started with it: Python, started in the C or POSIX locale (cron's
    usual environment), sets LC_CTYPE=C.UTF-8 in it (PEP 538's locale coercion), which the command
    must not inherit (its sort, tr and grep would work on characters, not bytes). Linux keeps the
    environment we were given in /proc/self/environ; without it (a chroot or sandbox that has no
    /proc), UTF-8 mode, which Python turns on by itself exactly where it coerces, tells that the
    locale we were given was C, and LC_CTYPE=C gives the command that again."""
    env = dict(os.environ)
    if "LC_CTYPE" not in env:
        return env
    try:
        with open("/proc/self/environ", "rb") as handle:
            given = handle.read().split(b"\0")
    except OSError:
        asked = "PYTHONUTF8" in env or "utf8" in sys._xoptions  # UTF-8 mode asked for: it tells nothing
        if sys.flags.utf8_mode and not asked and env["LC_CTYPE"] in ("C.UTF-8", "C.utf8", "UTF-8"):
            env["LC_CTYPE"] = "C"
        return env
    was = next((item[len(b"LC_CTYPE=") :] for item in given if item.startswith(b"LC_CTYPE=")), None)
    if was is None:
        del env["LC_CTYPE"]
    else:
        env["LC_CTYPE"] = os.fsdecode(was)
    return env


def _deliver(sender: Courier, ping: Ping, deadline: float, *, others: bool = True) -> None:
    """A ping of `heartfly run`'s: whatever goes wrong in sending it (a spool of odd files, say),
    the command still runs and its exit status is kept; the ping is then lost, and says so."""
    try:
        sender.deliver(ping, deadline, others=others)
    except Exception as exc:  # noqa: BLE001 - a job's wrapper must never be why the job did not run
        warn(f"error: the {ping.event} ping is lost: {type(exc).__name__}: {exc}")
