"""The TOML file -> immutable records (a check: a NamedTuple); every problem is reported with its key path.

parse_config is pure: it reads none of the files the config names (only the time zone database,
to know a zone). The secret files (the API token file, smtp.password_file,
server.database_password_file) are read in a second step (config_secrets) that load_config and
parse_and_read_secrets run after it; paths are resolved against the config's folder.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import tomli

from heartfly.core import config_errors, kept_checks, toml_cache
from heartfly.core.addresses import DEFAULT_PORT, parse_key, parse_listen, parse_public_url, url_of
from heartfly.core.assertions import parse_assertion
from heartfly.core.checkconfig import CheckConfig, Origin, common_check
from heartfly.core.config_alerts import (
    AlertsConfig,
    ChannelConfig,
    SmtpConfig,
    check_routing,
    parse_alerts,
    parse_channels,
    parse_smtp,
)
from heartfly.core.config_keys import CHECK_KEYS, DEFAULT_KEYS, MAINTENANCE_KEYS, SERVER_KEYS, TOP_KEYS
from heartfly.core.config_reader import ConfigError, Reader, join, kind_of, positive, positive_duration
from heartfly.core.config_secrets import read_secrets
from heartfly.core.config_values import (
    AT_LEAST_1S,
    BODY_HARD_CAP,
    INHERITED,
    KEEP_HISTORY_MIN,
    TAG_RE,
    Synchronous,
    keep_pings,
    parse_cron,
    parse_heartbeat_url,
    parse_mode,
    parse_node_id,
    parse_sync,
    parse_window_name,
    parse_zone,
)
from heartfly.core.dburl import Database, PostgresDatabase, has_password, is_postgres, parse_postgres_url
from heartfly.core.keyclash import Owner, key_clashes, key_id, key_owners, owner_text
from heartfly.core.maintenance import Window
from heartfly.core.patterns import NAME_RE
from heartfly.core.pipeline import ONE_UPSTREAM, parse_after, pipeline_problems
from heartfly.core.proxies import LOOPBACK, Networks
from heartfly.core.stored_checks import as_read
from heartfly.core.units import parse_size

__all__ = [
    "CheckConfig",
    "Config",
    "ConfigError",
    "ServerConfig",
    "load_config",
    "parse_and_read_secrets",
    "parse_config",
    "with_stored_checks",
]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_url: str = f"http://127.0.0.1:{DEFAULT_PORT}"
    database: Database = Path("heartfly.db")  # a SQLite file, or PostgreSQL (dburl)
    ping_key: str | None = None
    api_token_file: Path | None = None
    body_limit: int = 100_000
    body_limit_capped: bool = False  # the file asked for more than BODY_HARD_CAP (config_advice warns)
    keep_pings: int = 1000
    keep_history: float = 400 * 86400.0  # runs, flips, finished alerts, downtimes: a year's record and more
    max_ping_age: float = 7 * 86400.0
    synchronous: Synchronous = "normal"
    public: bool = False  # reads (dashboard, API GETs, metrics) open without the token
    node_id: str | None = None  # a cluster node's name (PostgreSQL); None: host name and port
    lease: float = 5.0  # a cluster leader's lease, seconds (PostgreSQL)
    heartbeat_url: str | None = None  # pinged while healthy, so another monitor notices our outage
    heartbeat_every: float = 60.0
    display_timezone: str = "UTC"  # the zone pages, the CLI and alert texts show times in
    hc_api_key_file: Path | None = None  # Healthchecks' Management API: its read-write key...
    hc_api_key_readonly_file: Path | None = None  # ...and its read-only key
    auto_provision: bool = False  # /ping/<ping_key>/<slug>?create=1 makes a missing check
    auto_provision_max: int = 1000  # at most this many checks made that way
    trusted_proxies: Networks = LOOPBACK  # whose X-Forwarded-For (a ping's source) and -Proto (a sign-in's) count


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerConfig
    checks: Mapping[str, CheckConfig] = field(default_factory=dict)
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    smtp: SmtpConfig | None = None
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    maintenance: tuple[Window, ...] = ()
    inherited: Mapping[str, Any] = field(default_factory=dict)  # [defaults], parsed: checks made later inherit it
    # Checks made through the API that the file no longer fits (left out at a start): not served, not gone
    left_out: tuple[str, ...] = field(default=(), compare=False)
    kept_parse: Path | None = field(default=None, compare=False)  # the file's parse was read from here (toml_cache)
    kept_checks: Path | None = field(default=None, compare=False)  # its checks as validated were read from here
    blank: bool = field(default=False, compare=False)  # the file was empty or held only comments

    def file_checks(self) -> Mapping[str, CheckConfig]:
        return {name: c for name, c in self.checks.items() if c.origin == "file"}


def load_config(path: Path, cache_dir: Path | None = None) -> Config:
    """Read and validate the file at `path`; raises ConfigError listing every problem.

    `cache_dir`: where the server keeps a large file's parsed TOML between starts (toml_cache).
    """
    raw, stat, data, kept = _document(path, cache_dir)
    if cache_dir is None:
        return dataclasses.replace(parse_and_read_secrets(data, path), blank=not data)
    checks = kept_checks.read(cache_dir, path, raw, stat, data.get("checks"))
    config = parse_and_read_secrets(data, path, checks)
    if checks is None:
        kept_checks.keep(cache_dir, path, raw, stat, config.checks)
    beside = None if checks is None else toml_cache.beside_path(cache_dir, path)
    return dataclasses.replace(config, kept_parse=kept, kept_checks=beside, blank=not data)


def load_database(path: Path) -> Database:
    """Only the file's server.database (a PostgreSQL password file is not read): what `heartfly
    backup` needs, so a problem elsewhere in the file (a check being edited, a secret file this
    user may not read) does not keep the database from being copied. ConfigError lists the problems
    of the file's TOML and of that key."""
    data = _document(path, None)[2]
    reader = _Reader(base_dir=path.parent)
    database = reader.database(reader.table(data, "server"))
    if reader.problems:
        raise ConfigError(reader.problems)
    return database or reader.path(str(ServerConfig().database))


def _document(path: Path, cache_dir: Path | None) -> tuple[bytes, os.stat_result, dict[str, Any], Path | None]:
    """The file's bytes, os.fstat, parse and kept parse (toml_cache.parse); ConfigError says why not."""
    try:
        raw, stat = toml_cache.read_file(path)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data, kept = toml_cache.parse(raw, path, cache_dir, stat)
    except UnicodeDecodeError as exc:
        raise ConfigError([config_errors.not_utf8(path, raw, exc)]) from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}{config_errors.fix_for(exc)}"]) from None
    except RecursionError:  # tomli recurses once per level of nested arrays and tables
        raise ConfigError([f"{path}: invalid TOML: arrays or tables nested too deeply"]) from None
    except ValueError:  # tomli's int() of an integer past Python's limit of digits, not a TOMLDecodeError
        raise ConfigError([config_errors.long_integer(path, raw)]) from None
    return raw, stat, data, kept


def keep_parse(path: Path, cache_dir: Path) -> None:
    """Keep the file's parse (toml_cache.keep) and the checks validated from it for the server's
    next start (`heartfly keep-parse`). A file that cannot be read, parsed or validated is left
    alone: the server words why."""
    try:
        raw, stat = toml_cache.read_file(path)
        if not toml_cache.may_keep(raw, stat):
            return
        toml_cache.keep(raw, stat, path, cache_dir)
        if not kept_checks.is_kept(cache_dir, path, raw, stat):  # kept already: not validated again
            data, _ = toml_cache.parse(raw, path, cache_dir, stat)
            kept_checks.keep(cache_dir, path, raw, stat, parse_config(data, path).checks)
    except (OSError, ValueError, RecursionError, ConfigError):  # ValueError: also an integer past
        return  # Python's limit of digits (load_config), besides UnicodeDecodeError and TOMLDecodeError


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """The parsed TOML document as a Config; reads no files (smtp.password stays None)."""
    config, reader = _parse(data, path, None)
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


def parse_and_read_secrets(
    data: Mapping[str, Any], path: Path, checks: Mapping[str, CheckConfig] | None = None
) -> Config:
    """parse_config, then the secret files it names read; the problems of both in the file's order.
    `checks`: the document's checks as validated before (kept_checks), not validated again."""
    config, reader = _parse(data, path, checks)
    secrets = read_secrets(reader.secrets, reader.problems)
    if secrets.problems:
        raise ConfigError(secrets.problems)
    if config.smtp is not None and secrets.password is not None:
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, password=secrets.password))
    database = config.server.database
    if isinstance(database, PostgresDatabase) and secrets.database_password is not None:
        database = dataclasses.replace(database, password=secrets.database_password)
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, database=database))
    return config


def _parse(data: Mapping[str, Any], path: Path, kept: Mapping[str, CheckConfig] | None) -> tuple[Config, _Reader]:
    reader = _Reader(base_dir=path.parent)
    reader.known(data, "", TOP_KEYS)
    server = reader.server(reader.table(data, "server"))
    defaults = reader.table(data, "defaults")
    reader.known(defaults, "defaults", DEFAULT_KEYS)
    inherited = reader.defaults(defaults)  # read once: a bad default is one problem, not one per check
    checks_table = reader.table(data, "checks")
    checks: dict[str, CheckConfig] = {}
    if kept is not None:
        checks.update(kept)
    else:
        for name, raw in checks_table.items():
            check = reader.check(name, raw, inherited)
            if check is not None:
                checks[check.name] = check  # the check's own copy of its name (checkconfig._own)
    reader.unique_keys(server, checks)
    reader.pipelines(checks)
    smtp = parse_smtp(reader, data)
    channels = parse_channels(reader, data, smtp)
    alerts = parse_alerts(reader, data, channels)
    used = {
        f"checks.{c.name}.channels" if "channels" in checks_table[c.name] else "defaults.channels": c.channels
        for c in checks.values()
    }
    if "channels" in defaults and not checks:
        used["defaults.channels"] = inherited.get("channels") or ()
    declared = set(data["channels"]) if isinstance(data.get("channels"), dict) else set()
    check_routing(reader, channels, used, declared)
    maintenance = reader.maintenance(data, checks)
    config = Config(path=path, server=server, checks=checks, channels=channels, smtp=smtp, alerts=alerts,
                    maintenance=maintenance, inherited=inherited)  # fmt: skip
    return config, reader


def with_stored_checks(
    config: Config, tables: Mapping[str, tuple[Origin, Mapping[str, Any]]], left_out: list[str] | None = None
) -> Config:
    """`config` (the operator's file) plus the checks kept in the database, each a table of the
    same keys a [checks.NAME] table takes and read the same way (but for as_read). Raises ConfigError naming every
    problem: a name in both places is one, never a silent override (the file's table with the stored check's key is
    heartfly export's: it takes the check over). With `left_out`, a stored check that does not validate (its channel
    gone from the file, say) is left out and its problems appended there instead; a name in both places still raises."""
    reader = _Reader(base_dir=config.path.parent)
    checks = dict(config.file_checks())
    owners = key_owners(config.server.ping_key, checks) if tables else {}  # 100k checks: a fifth of a second
    for name in sorted(tables):
        origin, raw = tables[name]
        if name in checks:
            if checks[name].key != raw.get("key"):  # the same key: heartfly export's table, taken over
                reader.fail(
                    f"checks.{name}",
                    f"is defined in {config.path} and was also made through the API, with another key; give the"
                    f" file's the API's key to take the check over (heartfly export {name} prints it), or delete one",
                )
            continue
        before = len(reader.problems)
        check = reader.check(name, as_read(raw, config.inherited), config.inherited)
        own: dict[str, Owner] = {}  # its keys: a start_key or fail_key may not repeat its own key either
        if check is not None:
            if unknown := [c for c in check.channels if c not in config.channels]:
                reader.fail(f"checks.{name}.channels", f"no channel {', '.join(unknown)} in {config.path}")
            for attr, key in (("key", check.key), ("start_key", check.start_key), ("fail_key", check.fail_key)):
                if key is not None and (owner := owners.get(key_id(key)) or own.get(key_id(key))) is not None:
                    reader.fail(f"checks.{name}.{attr}", f"the same key is already used by {owner_text(owner)}")
                elif key is not None:
                    own[key_id(key)] = (name, attr)
        if len(reader.problems) > before or check is None:
            found, reader.problems[before:] = reader.problems[before:], []
            # Left out (the start logs why), or a refusal: which says the check is not in the file
            (left_out if left_out is not None else reader.problems).extend(
                found if left_out is not None else [f"{p} ({config_errors.stored_origin(name, origin)})" for p in found]
            )
            continue
        checks[name] = check._replace(origin=origin)
        owners.update(own)
    reader.pipelines(checks)
    if reader.problems:
        raise ConfigError(reader.problems)
    return dataclasses.replace(config, checks=checks)


def read_stored_check(config: Config, name: str, table: Mapping[str, Any]) -> CheckConfig | None:
    """A stored check's table read as with_stored_checks reads it, without what ties it to the
    file (its channels there, its keys unused): a check left out can still be matched. None if
    the table itself does not read."""
    reader = _Reader(base_dir=config.path.parent)
    check = reader.check(name, as_read(table, config.inherited), config.inherited)
    return None if check is None or reader.problems else check


class _Reader(Reader):
    def server(self, table: Mapping[str, Any]) -> ServerConfig:
        self.known(table, "server", SERVER_KEYS)
        d = ServerConfig()
        host, port = d.host, d.port
        listen = self.value(table, "server", "listen", str, parse_listen)
        if listen is not None:
            host, port = listen
        public_url = self.value(table, "server", "public_url", str, parse_public_url)
        if public_url is None:
            public_url = url_of(host, port)
        database = self.database(table)
        token_file = self.secret("server.api_token_file", self.value(table, "server", "api_token_file", str, self.path))
        ping_key = self.value(table, "server", "ping_key", str, parse_key)
        # Sent as Ping-Body-Limit, by which clients (runitor) size what they send: a larger one is used
        # as BODY_HARD_CAP, with check-config's warning, not an error that would stop an install
        # upgraded from a release that took it at its next start.
        body_limit = self.value(table, "server", "body_limit", str, parse_size)
        keep = self.value(table, "server", "keep_pings", int, keep_pings)
        keep_history = self.value(table, "server", "keep_history", str, KEEP_HISTORY_MIN)
        max_age = self.value(table, "server", "max_ping_age", str, positive_duration)
        sync = self.value(table, "server", "synchronous", str, parse_sync)
        if sync is not None and isinstance(database, PostgresDatabase):
            self.fail("server.synchronous", "is SQLite's; PostgreSQL's durability is its own (synchronous_commit)")
        public = self.value(table, "server", "public", bool)
        node_id = self.value(table, "server", "node_id", str, parse_node_id)
        lease = self.value(table, "server", "lease", str, AT_LEAST_1S)
        display_timezone = self.value(table, "server", "display_timezone", str, parse_zone)
        heartbeat_url = self.value(table, "server", "heartbeat_url", str, parse_heartbeat_url)
        heartbeat_every = self.value(table, "server", "heartbeat_every", str, AT_LEAST_1S)
        hc_key = self.secret("server.hc_api_key_file", self.value(table, "server", "hc_api_key_file", str, self.path))
        hc_readonly = self.secret(
            "server.hc_api_key_readonly_file", self.value(table, "server", "hc_api_key_readonly_file", str, self.path)
        )
        auto_provision = self.value(table, "server", "auto_provision", bool)
        auto_provision_max = self.value(table, "server", "auto_provision_max", int, positive)
        proxies = self.networks(table, "server", "trusted_proxies")
        if auto_provision and ping_key is None and "ping_key" not in table:
            self.fail("server.auto_provision", "needs ping_key (checks are made by /ping/<ping_key>/<slug>?create=1)")
        if heartbeat_every is not None and heartbeat_url is None and "heartbeat_url" not in table:
            self.fail("server.heartbeat_every", "needs heartbeat_url (where to send the heartbeats)")
        for key, given in (("node_id", node_id), ("lease", lease)):
            raw_database = table.get("database")
            if given is not None and not (isinstance(raw_database, str) and is_postgres(raw_database)):
                self.fail(f"server.{key}", 'only applies to a "postgresql://" database (a cluster)')
        return ServerConfig(
            host=host,
            port=port,
            public_url=public_url,
            database=database or self.path(str(d.database)),
            ping_key=ping_key,
            api_token_file=token_file,
            body_limit=d.body_limit if body_limit is None else min(body_limit, BODY_HARD_CAP),
            body_limit_capped=body_limit is not None and body_limit > BODY_HARD_CAP,
            keep_pings=keep or d.keep_pings,
            keep_history=keep_history or d.keep_history,
            max_ping_age=max_age or d.max_ping_age,
            synchronous=sync or d.synchronous,
            public=bool(public),
            node_id=node_id,
            lease=lease or d.lease,
            heartbeat_url=heartbeat_url,
            heartbeat_every=heartbeat_every or d.heartbeat_every,
            display_timezone=display_timezone or d.display_timezone,
            hc_api_key_file=hc_key,
            hc_api_key_readonly_file=hc_readonly,
            auto_provision=bool(auto_provision),
            auto_provision_max=auto_provision_max or d.auto_provision_max,
            trusted_proxies=d.trusted_proxies if proxies is None else proxies,
        )

    def database(self, table: Mapping[str, Any]) -> Database | None:
        """A path (SQLite) or a postgresql:// URL, and the password file that goes with a URL."""
        text = self.value(table, "server", "database", str)
        password_file = self.value(table, "server", "database_password_file", str, self.path)
        if text is not None and is_postgres(text):
            url = self.value(table, "server", "database", str, parse_postgres_url)
            if url is not None and password_file is not None and has_password(url):
                self.fail("server.database", "has a password and database_password_file names one: give it once")
            else:
                self.secret("server.database_password_file", password_file)
            return None if url is None else PostgresDatabase(url, password_file)
        if password_file is not None:
            self.fail("server.database_password_file", 'only applies to a "postgresql://" database')
        return None if text is None else self.value(table, "server", "database", str, self.path)

    def defaults(self, table: Mapping[str, Any]) -> dict[str, Any]:
        """The [defaults] a check inherits, each read (and its problem reported) once; bad ones left out."""
        read = {key: self.inherit(table, "defaults", key, {}) for key in table if key in DEFAULT_KEYS}
        return {key: value for key, value in read.items() if value is not None}

    def inherit(self, raw: Mapping[str, Any], where: str, key: str, defaults: Mapping[str, Any]) -> Any:
        """A check's own `key`, else its default."""
        if key not in raw:
            return defaults.get(key)
        if key == "channels":
            return self.strings(raw, where, key)
        kind, convert = INHERITED[key]
        return self.value(raw, where, key, kind, convert)

    def check(self, name: str, raw: Any, defaults: Mapping[str, Any]) -> CheckConfig | None:
        if (common := common_check(name, raw, defaults)) is not None:
            return common
        where = f"checks.{name}"
        before = len(self.problems)
        if not NAME_RE.fullmatch(name):
            self.fail(where, "a check name uses letters, digits, '_', '.', '-' (at most 100, starting alnum)")
        if not isinstance(raw, dict):
            self.fail(where, f"expected a table, got {kind_of(raw)}")
            return None
        self.known(raw, where, CHECK_KEYS)
        key = self.value(raw, where, "key", str, parse_key)
        if "key" not in raw:
            self.fail(join(where, "key"), "missing (a secret: a UUID or at least 22 url-safe characters)")
        every = self.value(raw, where, "every", str, AT_LEAST_1S)
        cron = self.value(raw, where, "cron", str, parse_cron)
        if sum(k in raw for k in ("every", "cron", "after")) != 1:
            self.fail(where, 'needs exactly one of "every", "cron" and "after" (a pipeline step)')
        if isinstance(raw.get("after"), list):  # a join: not "expected a string", but why
            self.fail(join(where, "after"), ONE_UPSTREAM)
            after = None
        else:
            after = self.value(raw, where, "after", str, parse_after)
        within = self.value(raw, where, "within", str, AT_LEAST_1S)
        if ("after" in raw) != ("within" in raw):
            self.fail(where, '"after" and "within" go together: a step must succeed within `within` of its upstream')
        timezone = self.inherit(raw, where, "timezone", defaults)
        if "timezone" in raw and "cron" not in raw:
            self.fail(join(where, "timezone"), 'only applies to "cron" schedules')
        grace = self.inherit(raw, where, "grace", defaults)
        max_rt = self.inherit(raw, where, "max_runtime", defaults)
        min_rt = self.inherit(raw, where, "min_runtime", defaults)
        if max_rt is not None and min_rt is not None and min_rt >= max_rt:
            self.fail(join(where, "min_runtime"), "must be shorter than max_runtime")
        description = self.value(raw, where, "description", str) or ""
        start_key = self.value(raw, where, "start_key", str, parse_key)
        fail_key = self.value(raw, where, "fail_key", str, parse_key)
        channels = self.inherit(raw, where, "channels", defaults) or ()
        repeat = self.inherit(raw, where, "repeat", defaults)
        stall = self.inherit(raw, where, "stall", defaults)
        expect = self.value(raw, where, "expect", int, positive)
        members = self.strings(raw, where, "members") or ()
        if len(set(members)) != len(members):
            self.fail(join(where, "members"), "lists a member twice")
        if members and expect is not None and expect != len(members):
            self.fail(join(where, "expect"), f"is {expect} but members lists {len(members)}")
        if members and expect is None:
            expect = len(members)
        if expect is not None and max_rt is None and grace == 0:
            # A batch must complete within max_runtime of its first ping, else within grace: 0 s
            # would take the check down at its first worker's success.
            self.fail(join(where, "expect"), 'a fan-in batch without max_runtime must complete within grace, which '
                      'is 0s here: set max_runtime (how long a batch may take) or a grace above 0s')  # fmt: skip
        texts = self.strings(raw, where, "assert") or ()
        assertions = []
        for text in texts:
            try:
                assertions.append(parse_assertion(text))
            except ValueError as exc:
                self.fail(join(where, "assert"), str(exc))
        failures_before_alert = self.inherit(raw, where, "failures_before_alert", defaults) or 1
        if len(self.problems) > before:
            return None
        return CheckConfig(
            name=name,
            key=key,
            every=every,
            cron=cron,
            timezone=timezone or "UTC",
            grace=300.0 if grace is None else grace,
            max_runtime=max_rt,
            min_runtime=min_rt,
            description=description,
            start_key=start_key,
            fail_key=fail_key,
            channels=channels,
            repeat=repeat,
            stall=stall,
            after=after.check if after else None,
            after_trigger=after.trigger if after else "start",
            within=within,
            expect=expect,
            members=members,
            assertions=tuple(assertions),
            failures_before_alert=failures_before_alert,
            tags=self.tags(raw, where),
            resume_on_ping=self.value(raw, where, "resume_on_ping", bool) or False,
        )

    def tags(self, raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
        tags = self.strings(raw, where, "tags") or ()
        for tag in tags:
            if not TAG_RE.fullmatch(tag):
                self.fail(join(where, "tags"), f'"{tag}" is not a tag: 1 to 50 characters, no spaces')
        return tags

    def maintenance(self, data: Mapping[str, Any], checks: Mapping[str, CheckConfig]) -> tuple[Window, ...]:
        """`[[maintenance]]`: each a name, a `cron` (with `timezone`) or a one-off `start`, a
        `duration`, what it covers (`checks` names or patterns, `tags`; neither: every check) and
        whether alerts are held for a summary or dropped."""
        raw = data.get("maintenance", [])
        if not isinstance(raw, list):
            self.fail("maintenance", "expected an array of tables: [[maintenance]]")
            return ()
        windows: list[Window] = []
        for n, item in enumerate(raw):
            where = f"maintenance[{n}]"
            if not isinstance(item, dict):
                self.fail(where, f"expected a table, got {kind_of(item)}")
                continue
            before = len(self.problems)
            self.known(item, where, MAINTENANCE_KEYS)
            name = self.value(item, where, "name", str, parse_window_name)
            if name is not None and any(w.name == name for w in windows):
                self.fail(join(where, "name"), f'"{name}" names another window too')
            if ("cron" in item) == ("start" in item):
                self.fail(where, 'needs exactly one of "cron" (recurring) and "start" (one-off)')
            cron = self.value(item, where, "cron", str, parse_cron)
            timezone = self.value(item, where, "timezone", str, parse_zone)
            start = self._instant(item, where, "start", timezone)
            duration = self.value(item, where, "duration", str, AT_LEAST_1S)
            if "duration" not in item:
                self.fail(join(where, "duration"), 'missing (how long each occurrence lasts, e.g. "2h")')
            if "name" not in item:
                name = _window_name(cron, start, timezone or "UTC", duration)
                if any(w.name == name for w in windows):
                    taken = f'missing, and another window has the same schedule (and so the name "{name}"): name them'
                    self.fail(join(where, "name"), taken)
            patterns = self.strings(item, where, "checks") or ()
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(c, pattern) for c in checks):
                    self.fail(join(where, "checks"), f'"{pattern}" matches no check')
            alerts = self.value(item, where, "alerts", str, parse_mode)
            if len(self.problems) > before or name is None or duration is None:
                continue
            windows.append(Window(name, duration, cron, timezone or "UTC", start, patterns,
                                  self.tags(item, where), alerts or "hold"))  # fmt: skip
        return tuple(windows)

    def _instant(self, item: Mapping[str, Any], where: str, key: str, timezone: str | None) -> float | None:
        """A moment: a TOML date-time (start = 2026-12-24T08:00:00Z) or the same as a string
        ("2026-12-24 18:00"); one without an offset is in the table's `timezone` (else UTC), and
        one with an offset takes no `timezone`."""
        value = item.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                self.fail(join(where, key), f'expected a date and time like "2026-12-24 18:00" or'
                          f' "2026-12-24T08:00:00Z", got "{value}"')  # fmt: skip
                return None
        if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date: from its midnight
            value = datetime.combine(value, datetime.min.time())
        if not isinstance(value, datetime):
            self.fail(join(where, key), f'expected a date and time like "2026-12-24 18:00", got {kind_of(value)}')
            return None
        if value.tzinfo is not None and "timezone" in item:
            self.fail(join(where, "timezone"), f'"{key}" gives its own offset: drop one of the two')
            return None
        zone = ZoneInfo(timezone or "UTC")
        local = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        try:  # (year 1 east of UTC, 9999 west of it: a year Python's dates do not hold)
            back = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        except OverflowError:
            self.fail(join(where, key), f"out of range: {local.isoformat(' ')} is not in years 1 to 9999 in UTC")
            return None
        if value.tzinfo is None and back != value:
            self.fail(join(where, key), f"{value:%Y-%m-%d %H:%M} does not exist in {zone.key}: its clocks skip it")
            return None
        return local.timestamp()

    def pipelines(self, checks: Mapping[str, CheckConfig]) -> None:
        for where, problem in pipeline_problems(checks):
            self.fail(where, problem)

    def unique_keys(self, server: ServerConfig, checks: Mapping[str, CheckConfig]) -> None:
        for where, problem in key_clashes(server.ping_key, checks):
            self.fail(where, problem)


def _window_name(cron: str | None, start: float | None, timezone: str, duration: float | None) -> str:
    """An unnamed window's name, from its schedule as read (so "2h" and "120m", or a start as a
    TOML date-time and as a string, are one): the same wherever it stands in the file, so the
    marks of what was summarized (kept by name) stay with it when windows move or are added."""
    # Milliseconds, rounded: "1.1h" reads as 3960.0000000000005 s, "66m" as 3960.0.
    ms = [None if x is None else round(x * 1000) for x in (start, duration)]
    schedule = f"{cron}|{ms[0]}|{timezone if cron else ''}|{ms[1]}"
    return "maintenance-" + hashlib.sha256(schedule.encode()).hexdigest()[:8]
