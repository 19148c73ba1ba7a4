"""`heartfly ping`, `heartfly run` and `heartfly flush`: their click face (options, help texts,
usage errors). What they do is heartfly.client.jobside, which their usual invocations reach without
click (heartfly.entry).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from heartfly.client.jobside import UsageProblem, courier, run_job, send_ping
from heartfly.client.transport import END_BUDGET, MAX_BODY, RETRIES, START_BUDGET

F = TypeVar("F", bound=Callable[..., Any])


def config_option(purpose: str, *, strict: bool = True) -> Callable[[F], F]:
    """-c/--config (HEARTFLY_CONFIG) as `config_path`: one definition for every command, the
    operator's (heartfly.cli.main) and the job side's; `purpose` is its help text. The job side's
    is not `strict`: a folder there is an address it cannot find, and `run` still runs the command."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        # Not click's readable check: its usage error is three lines, not at the journal's error
        # priority; the loader's own is one line that says why ("cannot read: Permission denied").
        type=click.Path(dir_okay=not strict, readable=False, path_type=Path),
        envvar="HEARTFLY_CONFIG",
        help=purpose,
    )


def common_options(func: F) -> F:
    options = [
        config_option("Config file to look check names up in [env: HEARTFLY_CONFIG].", strict=False),
        click.option(
            "--spool",
            "spool_dir",
            type=click.Path(path_type=Path),  # a file there loses a ping, with a warning; the job still runs
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


def budget_option(what: str) -> Callable[[F], F]:
    """--ping-budget / HEARTFLY_PING_BUDGET, for the commands that send pings."""
    return click.option(
        "--ping-budget",
        metavar="DURATION",
        envvar="HEARTFLY_PING_BUDGET",
        help=f"{what} [env: HEARTFLY_PING_BUDGET; default {END_BUDGET:g}s].",
    )


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
) -> NoReturn:
    """Send one ping to a check (a success unless told otherwise).

    NAME is looked up through HEARTFLY_URL and HEARTFLY_PING_KEY, or the config file; a URL is a
    check's full ping URL (Heartfly's or a Healthchecks server's). Exits 0 when the ping was
    delivered or spooled for later, 1 when the server refused it or it was lost, 2 on bad usage.
    """
    try:
        send_ping(
            target, start=start, fail=fail, log=log, progress=progress, exit_code=exit_code, message=message,
            from_stdin=from_stdin, rid=rid, metrics=metrics, ping_budget=ping_budget, config_path=config_path,
            spool_dir=spool_dir, retries=retries,
        )  # fmt: skip
    except UsageProblem as exc:
        raise click.UsageError(str(exc)) from None


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
) -> NoReturn:
    """Run COMMAND (no shell) and report it: a start ping, then success or its exit status with
    the tail of its output and its duration (metric "duration", seconds).

    Use `--` before COMMAND. Output passes through unchanged and signals (TERM, INT, HUP, QUIT,
    USR1, USR2) reach the command. Always exits with the command's own exit status (127 if it
    does not exist, 128+N if signal N ended it), whatever happens to the pings.
    """
    try:
        run_job(
            target, command, timeout=timeout, kill_after=kill_after, rid=rid, tail_size=tail_size,
            ping_budget=ping_budget, config_path=config_path, spool_dir=spool_dir, retries=retries,
        )  # fmt: skip
    except UsageProblem as exc:
        raise click.UsageError(str(exc)) from None


@click.command("flush")
@common_options
@click.option(
    "-q", "--quiet", is_flag=True, help="Print the count only when a ping was sent or dropped (for a crontab line)."
)
def flush_command(config_path: Path | None, spool_dir: Path | None, retries: str | None, quiet: bool) -> None:
    """Send the pings waiting in the spool, oldest first, with their true times.

    Exits 0 when the spool is empty afterwards, 1 when pings remain (server still unreachable).
    """
    sender = courier(spool_dir, retries)
    report = sender.flush()
    assert sender.spool is not None
    if not quiet or report.sent or report.dropped:  # cron mails what a job prints: news only
        click.echo(f"sent {report.sent}, dropped {report.dropped}, still waiting {report.kept} ({sender.spool.folder})")
    sys.exit(1 if report.kept else 0)
