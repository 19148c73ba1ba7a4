"""The `heartfly` command: parse arguments, call a function elsewhere, print, exit."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from heartfly import __version__
from heartfly.client import transport as client
from heartfly.client.cli import config_option as _config_option
from heartfly.client.cli import flush_command, ping_command, run_command

if TYPE_CHECKING:
    from heartfly.core.config import Config
    from heartfly.core.dburl import Database

# asyncio, logging and heartfly.core.config are imported where they are used: `heartfly ping` and
# `heartfly run` start on every cron tick and should not pay for them.

config_option = _config_option(
    "Config file [env: HEARTFLY_CONFIG; default: ./heartfly.toml, then /etc/heartfly/heartfly.toml]."
)


def _resolve(path: Path | None) -> Path:
    """The config file to read; exits 2 naming every place looked in when there is none."""
    missing = client.missing_config(path, os.environ)
    if missing is not None:
        _fail([missing], 2)
    return client.config_path(path)


def _load(path: Path | None, cache_dir: Path | None = None) -> Config:
    from heartfly.core.config import ConfigError, load_config

    try:
        return load_config(_resolve(path), cache_dir)
    except ConfigError as exc:
        _fail(exc.problems, 2)


def _load_to_ask(path: Path | None) -> Config:
    """The config for a request to the running server that reads no check of the file (pause,
    resume): a problem outside [server] (a check being edited) is counted in a warning, not in the
    way of pausing a check that alerts, as it is not in the way of a backup. A file that cannot be
    parsed, whose [server] has a problem, or with a table it does not know (a mistyped "[sever]",
    which holds the server's address and token) exits 2 with every problem of the file."""
    return _load_server(path, "asking the server")[0]


def _load_server(path: Path | None, doing: str) -> tuple[Config, bool]:
    """_load_to_ask's config, and whether it is the whole file's (False: its [server] alone, the
    warning said `doing` goes on all the same)."""
    import tomllib

    from heartfly.core.config import ConfigError, load_config, parse_config
    from heartfly.core.config_keys import TOP_KEYS

    file = _resolve(path)
    try:
        return load_config(file), True
    except ConfigError as exc:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
            if not data.keys() <= TOP_KEYS:  # else told "no server.api_token_file", or asks the default address
                _fail(exc.problems, 2)
            config = parse_config({"server": data.get("server", {})}, file)  # the token is read when asking
        except (OSError, ValueError, ConfigError):
            _fail(exc.problems, 2)
        click.echo(f"warning: {file} has {len(exc.problems)} problem(s), which `heartfly check-config` lists;"
                   f" {doing} all the same", err=True)  # fmt: skip
        return config, False


def _fail(problems: list[str], code: int) -> NoReturn:
    """Print one `error:` line per problem and exit; under journald, at error priority."""
    from heartfly.server.systemd import prefixed, stderr_is_journal

    journal = stderr_is_journal()  # journalctl -p err must find a failed start: each line of it
    for problem in problems:
        click.echo(prefixed(3, f"error: {problem}") if journal else f"error: {problem}", err=True)
    sys.exit(code)


def _setup_logging(level: str) -> None:
    import logging

    # journald stamps every line itself; elsewhere a timestamp helps.
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr)
    from heartfly.server import logfilter

    logfilter.install()
    from heartfly.server.systemd import JournalFormatter, log_uncaught, stderr_is_journal

    if stderr_is_journal():  # journald takes each line's priority from a "<N>" prefix
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournalFormatter(fmt))
        log_uncaught()


@click.group()
@click.version_option(__version__, prog_name="heartfly")
def main() -> None:
    """Heartfly: heartbeat monitoring for scheduled and background jobs."""


def _listen_param(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from heartfly.core.addresses import parse_listen

    if value is not None:
        try:
            parse_listen(value)
        except ValueError as exc:
            from_env = ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.ENVIRONMENT
            raise click.BadParameter(f"{exc}{' (from HEARTFLY_LISTEN)' if from_env else ''}") from None
    return value


@main.command()
@config_option
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    envvar="HEARTFLY_LISTEN",
    callback=_listen_param,
    help='Listen here instead of [server] listen ("127.0.0.1:9000", "[::1]:9000") [env: HEARTFLY_LISTEN].',
)
def serve(config_path: Path | None, log_level: str, listen: str | None) -> None:
    """Run the server in the foreground."""
    import asyncio

    from heartfly.core import toml_cache
    from heartfly.core.listen import with_listen
    from heartfly.server import longlived
    from heartfly.server.daemon import StartError, keep_early_sighup
    from heartfly.server.daemon import serve as run_server

    keep_early_sighup()  # reading a big file takes seconds
    _setup_logging(log_level)
    longlived.tune()
    with longlived.building():
        # Config errors: exit 2 before anything starts. Under systemd a large file's parse is kept.
        config = _load(config_path, toml_cache.directory(os.environ))
    if listen is not None:
        config = with_listen(config, listen)
    try:
        asyncio.run(run_server(config, listen))
    except StartError as exc:
        _fail([str(exc)], exc.code)


@main.command("keep-parse")
@config_option
def keep_parse(config_path: Path | None) -> None:
    """Keep a large config's parse, and the checks validated from it, in $CACHE_DIRECTORY for the server's next start.

    The installed unit runs this as root once the server is ready (ExecStartPost): the service,
    running as heartfly, reads what root keeps but never writes it. Prints nothing; a missing,
    unreadable or broken file is left to the server to word.
    """
    from heartfly.core import config, toml_cache

    cache_dir = toml_cache.directory(os.environ)
    if cache_dir is None:
        _fail(["$CACHE_DIRECTORY is not an absolute path (the unit sets it from CacheDirectory=): nothing kept"], 1)
    config.keep_parse(client.config_path(config_path), cache_dir)


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate the config; list each check with its schedule, next due time and ping URLs."""
    import asyncio

    from heartfly.cli.report import describe_checks, stored_problems
    from heartfly.core.config_advice import warnings
    from heartfly.store.api import StoreError

    config = _load(config_path)
    if config.blank:  # as a reload refuses it (web.control._emptied): "OK" must not be followed by a refusal
        _fail([
            f"{config.path}: the file is empty or holds only comments; a running server refuses to reload it"
            " (it would stop watching every check and turn the API off), and a start on it watches nothing"
            " (heartfly init writes a starter config)"
        ], 2)  # fmt: skip
    # The checks made through the API can refuse a file too (a reload, and a start for a name in
    # both places): "OK" must not be followed by a refused reload or a failed start (the package's
    # upgrade restarts on "OK").
    unread = []
    try:
        if refused := asyncio.run(stored_problems(config)):
            _fail(refused, 2)
    except StoreError as exc:
        unread = [f"the checks made through the API were not compared with the file: {exc}"]
    click.echo(describe_checks(config, time.time()))
    # Valid, so exit 0; on stderr: scripts reading stdout are unaffected
    for warning in [*warnings(config), *_unreadable_services(config), *unread]:
        click.echo(f"warning: {warning}", err=True)


def _unreadable_services(config: Config) -> list[str]:
    """The apprise URLs apprise cannot read, which check-config and reload warn of: apprise is
    imported only for a file that names it (never by the client's commands, ping and run)."""
    if not any(c.type == "apprise" for c in config.channels.values()):
        return []
    from heartfly.notify.apprise_channel import unreadable

    return unreadable(config.channels.values())


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per check.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Show every check's state as the server last recorded it."""
    import asyncio

    from heartfly.cli.report import format_status, read_cluster, read_status
    from heartfly.core.config_advice import named
    from heartfly.store.api import StoreError

    config, whole = _load_server(config_path, "asking the server")
    if not whole:  # a check mid-edit: what the server watches still matters, most of all then
        _status_asked(config, as_json)
        return
    left_out: list[str] = []
    gone: list[str] = []
    try:
        items, alive_at, downtime, outbox = asyncio.run(read_status(config, left_out, gone))
        cluster = None if as_json else asyncio.run(read_cluster(config))
    except StoreError as exc:
        _fail([str(exc)], 1)
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        from heartfly.core.localtime import zone

        shown = zone(config.server.display_timezone)
        words = format_status(
            items, alive_at, time.time(), downtime, shown, cluster is not None, outbox.pending, outbox.given_up
        )
        click.echo(words)
        if cluster is not None:
            click.echo(f"\n{cluster}")
    # A check the file has and the server does not (no reload since it was added, or a refused
    # one) is watched by nobody: said, never left out silently. On stderr: --json stays a list.
    listed = {item["name"] for item in items}
    from heartfly.cli.operate import CLUSTER_HINT, not_loaded

    if unwatched := [name for name in config.checks if name not in listed]:
        who, hint = not_loaded(config)  # in a cluster, this node's reload alone changes nothing of it
        how = "the server yet, as it has" if who == "the server" else f"{who}, which has"
        note = f"note: not watched by {how} not loaded them ({hint}): {named(unwatched)}"
        click.echo(note, err=True)
    if gone:  # the other way round: watched, and alerted for, with nothing in the file to say so
        if isinstance(config.server.database, Path):
            why = "heartfly reload to stop watching them, or systemctl status heartfly for why a reload was refused"
            click.echo(f"note: still watched by the server, no longer in the file ({why}): {named(gone)}", err=True)
        else:  # a cluster: the leader's file decides, and this node's reload alone changes nothing of it
            where = "not in this node's file"
            note = f"note: still watched by the cluster's leader, {where} ({CLUSTER_HINT}): {named(gone)}"
            click.echo(note, err=True)
    if left_out:  # made through the API, left out by the server as the file no longer fits them
        why = "fix the file, or update or delete the check through the API"
        # Ten named, the rest counted, as above: one channel renamed can leave thousands out.
        click.echo(
            f"note: made through the API, not watched by the server ({why}): {named(left_out, sep='; ')}", err=True
        )


def _status_asked(config: Config, as_json: bool) -> None:
    """`status` of a file that does not load: the checks as the running server serves them, asked
    through its API (the file's checks cannot be compared with them); exit 1 if it cannot be asked."""
    import asyncio

    from heartfly.cli.admin import AdminError
    from heartfly.cli.operate import served_checks
    from heartfly.cli.report import Outbox, format_status, read_pending
    from heartfly.core.localtime import zone
    from heartfly.store.api import StoreError

    try:
        items = served_checks(config)
    except AdminError as exc:
        _fail([f"{exc} (with the file's problems, status shows what the running server serves)"], 1)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    # From the database, as when the file loads: the server's checks alone left a storm's
    # undelivered alerts unsaid. Left out if the database cannot be read (the table still shown).
    try:
        outbox = asyncio.run(read_pending(config.server.database))
    except StoreError:
        outbox = Outbox()
    shown = zone(config.server.display_timezone)
    click.echo(format_status(items, None, time.time(), tz=shown, pending=outbox.pending, given_up=outbox.given_up))


@main.command("test-alert")
@config_option
@click.argument("channel")
def test_alert(config_path: Path | None, channel: str) -> None:
    """Send a clearly marked test alert through CHANNEL via the running server, and report it."""
    from heartfly.cli import operate

    _operate(lambda: operate.test_alert(_load(config_path), channel))


@main.command()
@config_option
@click.argument("name")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100_000),  # SQLite's LIMIT takes 64 bits and reads a negative one as "all"
    help="How many of each kind of entry to show (1 to 100000).",
)
@click.option("--all", "routine", is_flag=True, help="Also the up <-> running changes of every healthy run.")
def history(config_path: Path | None, name: str, limit: int, routine: bool) -> None:
    """A check's state changes, alerts (with every delivery attempt) and latest pings."""
    import asyncio

    from heartfly.cli.report import read_history
    from heartfly.store.api import StoreError

    # A check mid-edit: the database's story of this one is still there to read.
    config, loads = _load_server(config_path, "reading its database")
    try:
        text = asyncio.run(read_history(config, name, limit, routine, file_loads=loads))
    except StoreError as exc:
        _fail([str(exc)], 1)
    except KeyError:
        from heartfly.cli.operate import not_loaded

        # Added to the file, not reloaded (or its reload refused): said, as status and pause say it.
        who, hint = not_loaded(config)
        why = f": it is in {config.path}, but {who} has not loaded it ({hint})"
        _fail([f'no check "{name}" in the database' + (why if name in config.checks else "")], 1)
    click.echo(text)


@main.command()
@config_option
@click.argument("names", nargs=-1, metavar="[NAME]...")
def export(config_path: Path | None, names: tuple[str, ...]) -> None:
    """Print checks made through the API or by auto-provisioning as TOML (all, if no NAME given),
    to append to the config file; then reload: each table takes its check over, and the API's copy
    is deleted."""
    import asyncio

    from heartfly.cli.report import read_exports
    from heartfly.store.api import StoreError

    config = _load(config_path)
    try:
        text = asyncio.run(read_exports(config, list(names)))
    except StoreError as exc:
        _fail([str(exc)], 1)
    except KeyError as exc:
        name = exc.args[0]
        if name in config.checks:
            _fail([f'check "{name}" is in {config.path} already: only checks made through the API are exported'], 1)
        _fail([f'no check "{name}" was made through the API or by auto-provisioning'], 1)
    if text:
        click.echo(text, nl=False)


@main.command()
@config_option
@click.argument("name")
@click.option(
    "--until",
    metavar="WHEN",
    help='Resume by itself then: a duration ("2h", "1d") or a time ("2026-11-24 08:00", local unless it says).',
)
def pause(config_path: Path | None, name: str, until: str | None) -> None:
    """Pause a check on the running server: no deadlines, no alerts; its pings are still stored."""
    from heartfly.cli import operate

    _operate(lambda: operate.pause(_load_to_ask(config_path), name, until))


@main.command()
@config_option
@click.argument("name")
def resume(config_path: Path | None, name: str) -> None:
    """Watch a paused check again, from now."""
    from heartfly.cli import operate

    _operate(lambda: operate.resume(_load_to_ask(config_path), name))


@main.command()
@config_option
def reload(config_path: Path | None) -> None:
    """Make the running server re-read its config file (as SIGHUP does); a broken file is refused."""
    from heartfly.cli import operate
    from heartfly.core.config_advice import warnings
    from heartfly.core.listen import ENV, with_listen

    config = _load(config_path)
    watched: list[int] = []
    _operate(lambda: operate.reload(config, watched))
    # The file as the server runs it: one started with --listen is asked with HEARTFLY_LISTEN
    # (admin.local_url, which refused a wrong one), and its links follow that address.
    running = with_listen(config, listen) if (listen := os.environ.get(ENV)) else config
    said = warnings(running, watched=watched[0] if watched else None)
    for warning in [*said, *_unreadable_services(config)]:  # on stderr: reloaded, so exit 0
        click.echo(f"warning: {warning}", err=True)


def _operate(action: Callable[[], str | tuple[str, bool]]) -> None:
    """Print what an action on the running server says; exit 1 if it says it failed (a test alert
    not sent) or the server could not be asked, 2 for a usage error or a refused reload."""
    from heartfly.cli.admin import AdminError
    from heartfly.cli.operate import ReloadError, UnknownChannel

    try:
        result = action()
    except ReloadError as exc:
        _fail([*exc.problems, str(exc)], 2)
    except UnknownChannel as exc:
        _fail([str(exc)], 2)
    except AdminError as exc:
        _fail([str(exc)], 1)
    text, ok = (result, True) if isinstance(result, str) else result
    click.echo(text)
    if not ok:
        sys.exit(1)


@main.command()
@config_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--url", default="http://127.0.0.1:8765", show_default=True, help="The server's public URL.")
def init(config_path: Path | None, path: Path | None, url: str) -> None:
    """Write a starter config with fresh random keys to PATH, -c or ./heartfly.toml (never overwrites).

    A plain http --url with a port (http://10.0.0.5:9000) also sets where the server listens."""
    import tomllib

    from heartfly.cli.report import describe_checks
    from heartfly.cli.starter import starter_config, starter_listen
    from heartfly.core.config import ConfigError, parse_and_read_secrets
    from heartfly.core.config_advice import warnings as config_warnings

    given = click.get_current_context().get_parameter_source("config_path") is click.core.ParameterSource.COMMANDLINE
    if path is not None and config_path is not None and given and path.resolve() != config_path.resolve():
        _fail([f"two places to write to: {path} and -c {config_path}"], 2)
    path = path or config_path or Path("heartfly.toml")  # PATH wins over HEARTFLY_CONFIG
    if path.exists():
        _fail([f"{path} exists; not overwriting it"], 1)
    try:  # checked before anything is written: a bad --url leaves no file behind
        text = starter_config(client.check_url(url, "--url"), starter_listen(url))
        config = parse_and_read_secrets(tomllib.loads(text), path)
    except client.AddressError as exc:
        _fail([str(exc)], 2)
    except ValueError as exc:  # a port out of range
        _fail([f'--url "{url}": {exc}'], 2)
    except ConfigError as exc:
        _fail([f"--url: {problem}" for problem in exc.problems], 2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # a source install's /etc/heartfly does not exist yet
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        _fail([f"cannot write {path}: {exc.strerror}"], 1)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"wrote {path}\n")
    click.echo(describe_checks(config, time.time()))
    for warning in config_warnings(config):  # what check-config of this file would warn of (an --url on 0.0.0.0)
        click.echo(f"warning: {warning}", err=True)


@main.command()
@config_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup(config_path: Path | None, path: Path) -> None:
    """Write a consistent copy of the database to PATH (safe while the server runs)."""
    from heartfly.core.config import ConfigError, load_config, load_database
    from heartfly.store.backup import BackupError, backup_database

    # Only the database line must be right: a problem elsewhere (a check mid-edit) must not stop
    # the nightly copy, nor the one a package upgrade takes before it migrates (preinst).
    file = _resolve(config_path)
    try:
        database = load_config(file).server.database
    except ConfigError as exc:
        try:
            database = load_database(file)
        except ConfigError as own:
            _fail(own.problems, 2)
        click.echo(f"warning: {file} has {len(exc.problems)} problem(s), which `heartfly check-config` lists;"
                   " backing up its database all the same", err=True)  # fmt: skip
    try:
        info = backup_database(database, path)
    except BackupError as exc:
        _fail([str(exc)], 1)
    click.echo(f"wrote {info.path}: {info.size} bytes, {info.checks} checks, {info.pings} pings")


@main.command("migrate-db")
@config_option
@click.argument("databases", metavar="[FROM] TO", nargs=-1, required=True)
@click.option("--from-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="FROM's PostgreSQL password (else the URL, PGPASSWORD or PGPASSFILE).")  # fmt: skip
@click.option("--to-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="TO's PostgreSQL password (else the URL, PGPASSWORD or PGPASSFILE).")  # fmt: skip
def migrate_db(
    config_path: Path | None, databases: tuple[str, ...], from_password_file: Path | None, to_password_file: Path | None
) -> None:
    """Copy a stopped server's database FROM (a SQLite file or a postgresql:// URL) into the empty
    database TO (made if missing), every table, with the counts checked. Then point [server]
    database at TO. Without FROM, the config's [server] database (and its password file)."""
    import asyncio

    from heartfly.store import backend
    from heartfly.store.api import StoreError
    from heartfly.store.migrate import MigrateError, check_source, check_target, copy

    if len(databases) > 2:
        raise click.UsageError(f"at most FROM and TO, got {len(databases)} databases")
    if len(databases) == 1 and from_password_file is not None:
        raise click.UsageError("--from-password-file goes with FROM; the config's database has its own")
    try:
        if len(databases) == 1:  # from the config's database, read as `serve` reads it
            origin: Database = _load(config_path).server.database
        else:
            origin = _database_argument("FROM", databases[0], from_password_file)
        destination = _database_argument("TO", databases[-1], to_password_file)
        check_source(origin, destination)  # before TO is made: a wrong FROM leaves no empty TO behind
        check_target(destination)
        asyncio.run(backend.create(destination))
        counts = copy(origin, destination, say=lambda line: click.echo(f"  {line}"))
    except (MigrateError, StoreError) as exc:
        _fail([str(exc)], 1)
    click.echo(f"copied {sum(counts.values())} rows from {origin} to {destination}; counts checked")


def _database_argument(name: str, text: str, password_file: Path | None) -> Database:
    """A path (SQLite) or a postgresql:// URL, as [server] database takes it; MigrateError if not usable."""
    from heartfly.core.dburl import PostgresDatabase, is_postgres, parse_postgres_url
    from heartfly.store.migrate import MigrateError

    if not is_postgres(text):
        if password_file is not None:
            raise MigrateError(f"--{name.lower()}-password-file applies only to a postgresql:// URL")
        return Path(text).resolve()
    try:
        url = parse_postgres_url(text)
    except ValueError as exc:
        raise MigrateError(f"{name}: {exc}") from None
    password = None
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MigrateError(f"--{name.lower()}-password-file: {exc.strerror}: {password_file}") from None
    return PostgresDatabase(url, password_file, password)


main.add_command(ping_command)
main.add_command(run_command)
main.add_command(flush_command)
