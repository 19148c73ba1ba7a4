"""`heartfly ping`, `heartfly run` and `heartfly flush`: the job side, standard library plus click.

heartfly.config (and croniter with it) is imported only when a check name must be looked up in a
local config file; a full URL or HEARTFLY_URL + HEARTFLY_PING_KEY never pays for it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from heartfly import client
from heartfly.client import (
    END_BUDGET,
    MAX_BODY,
    RETRIES,
    START_BUDGET,
    AddressError,
    Ping,
    Transport,
    check_run_id,
    config_url,
    event_for,
    name_url,
    parse_metric,
    target_url,
)
from heartfly.spool import DEFAULT_MAX_BYTES, Courier, Result, Spool, default_folder
from heartfly.units import UnitError, parse_duration, parse_size

F = TypeVar("F", bound=Callable[..., Any])


def warn(text: str) -> None:
    click.echo(f"heartfly: {text}", err=True)


def common_options(func: F) -> F:
    options = [
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="HEARTFLY_CONFIG",
            help="Config file to look check names up in [env: HEARTFLY_CONFIG].",
        ),
        click.option(
            "--spool",
            "spool_dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="HEARTFLY_SPOOL",
            help="Where undeliverable pings wait [env: HEARTFLY_SPOOL; default: $XDG_STATE_HOME/heartfly/spool].",
        ),
        click.option(
            "--retries",
            metavar="N",
            envvar="HEARTFLY_RETRIES",
            help=f"Retries (0-10) on network errors and 5xx, then spool [env: HEARTFLY_RETRIES; default {RETRIES}].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _retries(text: str | None) -> int:
    # Lenient on purpose: a typo in a crontab's environment must not stop `heartfly run` running the job.
    if text is None:
        return RETRIES
    if text.strip().isdigit() and int(text) <= 10:
        return int(text)
    warn(f'warning: --retries/HEARTFLY_RETRIES wants a number from 0 to 10, not "{text}"; using {RETRIES}')
    return RETRIES


def _budget(text: str | None) -> float:
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


def budget_option(what: str) -> Callable[[F], F]:
    """--ping-budget / HEARTFLY_PING_BUDGET, for the commands that send pings."""
    return click.option(
        "--ping-budget",
        metavar="DURATION",
        envvar="HEARTFLY_PING_BUDGET",
        help=f"{what} [env: HEARTFLY_PING_BUDGET; default {END_BUDGET:g}s].",
    )


def _courier(spool_dir: Path | None, retries: str | None) -> Courier:
    env = os.environ
    limit = DEFAULT_MAX_BYTES
    if env.get("HEARTFLY_SPOOL_MAX"):
        try:
            limit = parse_size(env["HEARTFLY_SPOOL_MAX"])
        except UnitError as exc:
            warn(f"warning: HEARTFLY_SPOOL_MAX: {exc}; using {DEFAULT_MAX_BYTES} bytes")
    folder = spool_dir or default_folder(env)
    return Courier(Transport(retries=_retries(retries)), Spool(folder, limit), warn)


def resolve(target: str, config_path: Path | None, env: Mapping[str, str]) -> str:
    """A full URL as given; a name via HEARTFLY_URL + HEARTFLY_PING_KEY, else via the config file."""
    url = target_url(target)
    if url is not None:
        return url
    base, ping_key = env.get("HEARTFLY_URL"), env.get("HEARTFLY_PING_KEY")
    if config_path is None and base:
        if not ping_key:
            raise AddressError(
                "HEARTFLY_URL is set but HEARTFLY_PING_KEY is not: set it to the server's ping_key"
                f' to address "{target}" by name, or pass the check\'s full ping URL'
            )
        return name_url(base, ping_key, target)
    from heartfly.config import ConfigError, load_config

    path = client.config_path(config_path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise AddressError(
            "; ".join(exc.problems) + f'\n  to address "{target}" without a readable config, pass its full ping URL'
            " or set HEARTFLY_URL and HEARTFLY_PING_KEY"
        ) from None
    return config_url(config, target, base, ping_key)


def _fail(text: str, code: int = 2) -> NoReturn:
    warn(f"error: {text}")
    sys.exit(code)


@click.command("ping")
@click.argument("target", metavar="NAME|URL")
@click.option("--start", is_flag=True, help="A run started.")
@click.option("--fail", is_flag=True, help="A failure: down at once.")
@click.option("--log", is_flag=True, help="A log message: stored, the state does not change.")
@click.option("--progress", is_flag=True, help="Progress inside a run: pushes the stall deadline back.")
@click.option("--exit-code", type=click.IntRange(0, 255), metavar="N", help="An exit status: 0 success, other failure.")
@click.option("-m", "--message", metavar="MSG", help="The ping's message (its body).")
@click.option("--stdin", "from_stdin", is_flag=True, help=f"Read the message from stdin (the first {MAX_BODY} bytes).")
@click.option("--rid", metavar="ID", help="Run id: pairs a start with its end.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME=VALUE", help="A number to store (repeatable).")
@budget_option("Most time the ping may take, retries included; then it is spooled")
@common_options
def ping_command(
    target: str,
    start: bool,
    fail: bool,
    log: bool,
    progress: bool,
    exit_code: int | None,
    message: str | None,
    from_stdin: bool,
    rid: str | None,
    metrics: tuple[str, ...],
    ping_budget: str | None,
    config_path: Path | None,
    spool_dir: Path | None,
    retries: str | None,
) -> None:
    """Send one ping to a check (a success unless told otherwise).

    NAME is looked up through HEARTFLY_URL and HEARTFLY_PING_KEY, or the config file; a URL is a
    check's full ping URL (Heartfly's or a Healthchecks server's). Exits 0 when the ping was
    delivered or spooled for later, 1 when the server refused it or it was lost, 2 on bad usage.
    """
    try:
        event = event_for(start=start, fail=fail, log=log, progress=progress, exit_code=exit_code)
        pairs = dict(parse_metric(m) for m in metrics)
        run_id = check_run_id(rid) if rid is not None else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if message is not None and from_stdin:
        raise click.UsageError("give the message with -m or --stdin, not both")
    body = message.encode("utf-8")[:MAX_BODY] if message is not None else b""
    if from_stdin:
        body = _read_stdin()
    try:
        url = resolve(target, config_path, os.environ)
    except AddressError as exc:
        _fail(str(exc))
    deadline = time.monotonic() + _budget(ping_budget)  # a hung server must not hold the job that pings
    result = _courier(spool_dir, retries).deliver(Ping(url, event, body, run_id, pairs), deadline)
    sys.exit(0 if result in (Result.SENT, Result.SPOOLED) else 1)


def _read_stdin() -> bytes:
    stream = sys.stdin.buffer
    body = stream.read(MAX_BODY)
    while stream.read(1 << 16):
        pass  # read to the end, so the writer does not die of a broken pipe
    return body


class _RunCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            hint = "put -- before the command: heartfly run NAME -- COMMAND ARGS..."
            raise click.UsageError(f"{exc.message} ({hint})", ctx) from None


@click.command("run", cls=_RunCommand)
@click.argument("target", metavar="NAME|URL")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--timeout",
    metavar="DURATION",
    help='Kill the command after this long ("90s", "15m", "1h30m") and report a failure.',
)
@click.option(
    "--kill-after",
    metavar="DURATION",
    default="10s",
    show_default=True,
    help="After the timeout's SIGTERM, SIGKILL this later.",
)
@click.option("--rid", metavar="ID", help="Run id for the start and end pings [default: a fresh UUID].")
@click.option(
    "--tail",
    "tail_size",
    metavar="SIZE",
    default="10KiB",
    show_default=True,
    help="How much of the output's end to send.",
)
@budget_option(
    f"Most time the end ping may take, retries included; the start ping gets at most {START_BUDGET:g}s of it"
)
@common_options
def run_command(
    target: str,
    command: tuple[str, ...],
    timeout: str | None,
    kill_after: str,
    rid: str | None,
    tail_size: str,
    ping_budget: str | None,
    config_path: Path | None,
    spool_dir: Path | None,
    retries: str | None,
) -> None:
    """Run COMMAND (no shell) and report it: a start ping, then success or its exit status with
    the tail of its output and its duration (metric "duration", seconds).

    Use `--` before COMMAND. Output passes through unchanged and signals (TERM, INT, HUP, QUIT,
    USR1, USR2) reach the command. Always exits with the command's own exit status (127 if it
    does not exist, 128+N if signal N ended it), whatever happens to the pings.
    """
    from heartfly.runner import Runner

    if not command:
        raise click.UsageError("no command to run: heartfly run NAME|URL -- COMMAND [ARGS]...")
    try:
        limit = parse_duration(timeout) if timeout is not None else None
        grace = parse_duration(kill_after)
        size = parse_size(tail_size)
        run_id = check_run_id(rid) if rid is not None else str(uuid.uuid4())
    except (UnitError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if limit is not None and limit <= 0:  # would kill the command the moment it starts
        raise click.UsageError(f'--timeout must be longer than zero, got "{timeout}"')
    courier: Courier | None = None
    try:
        url = resolve(target, config_path, os.environ)
        courier = _courier(spool_dir, retries)
    except AddressError as exc:
        warn(f"error: {exc}\nheartfly: running the command without reporting it")
    budget = _budget(ping_budget)
    env = {**os.environ, "HEARTFLY_RUN_ID": run_id}
    with Runner(command, timeout=limit, kill_after=grace, tail_size=size, env=env) as runner:
        if courier is not None:  # a hung server must not hold the job back: what is not sent is spooled
            courier.deliver(Ping(url, "start", run_id=run_id), time.monotonic() + min(START_BUDGET, budget))
        outcome = runner.run()
        if outcome.note:
            warn(outcome.note)
        if courier is not None:
            metrics = {"duration": round(outcome.duration, 3)}
            end = Ping(url, str(outcome.exit_code), outcome.body(), run_id, metrics)
            courier.deliver(end, time.monotonic() + budget)
    sys.exit(outcome.exit_code)


@click.command("flush")
@common_options
def flush_command(config_path: Path | None, spool_dir: Path | None, retries: str | None) -> None:
    """Send the pings waiting in the spool, oldest first, with their true times.

    Exits 0 when the spool is empty afterwards, 1 when pings remain (server still unreachable).
    """
    courier = _courier(spool_dir, retries)
    report = courier.flush()
    assert courier.spool is not None
    click.echo(f"sent {report.sent}, dropped {report.dropped}, still waiting {report.kept} ({courier.spool.folder})")
    sys.exit(1 if report.kept else 0)
