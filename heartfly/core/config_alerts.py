"""The alert settings of the TOML file: [smtp], [channels.NAME] and [alerts]."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from heartfly.core.addresses import url_fault
from heartfly.core.config_reader import Reader, at_least, join, positive_at_most, positive_duration
from heartfly.core.dburl import is_postgres
from heartfly.core.patterns import NAME_RE

ChannelType = Literal["email", "webhook", "apprise", "log"]
WebhookFormat = Literal["json", "slack", "discord", "ntfy"]
Security = Literal["starttls", "tls", "none"]
CHANNEL_TYPES: tuple[ChannelType, ...] = get_args(ChannelType)
WEBHOOK_FORMATS: tuple[WebhookFormat, ...] = get_args(WebhookFormat)
_EMAIL_RE = re.compile(r"[^@\s<>]+@[^@\s<>]+")
_URL_RE = re.compile(r"https?://[^\s/?#]+([/?#]\S*)?")
# An attempt's time limit and the retries' delays: shorter ones (1ms) retried a dead channel about
# 150 times a second, each attempt a database row and a log line.
AT_LEAST_100MS = at_least(0.1, "100ms")
# [alerts] concurrency: the outbox read's LIMIT per channel; past 64 bits every read failed and no alert went out.
CONCURRENCY_MAX = 10_000

_SMTP_KEYS = {"host", "port", "security", "username", "password_file", "from", "timeout"}
_ALERT_KEYS = {"expire_after", "timeout", "retry_initial", "retry_max", "concurrency", "trouble_channels"}
_CHANNEL_KEYS = {
    "email": {"type", "to", "recovery"},
    "webhook": {"type", "url", "headers", "format", "recovery", "timeout"},
    "apprise": {"type", "urls", "recovery", "timeout"},
    "log": {"type", "recovery"},
}


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = None  # password_file's content, read by the loader (config_secrets); never logged
    password_file: Path | None = None
    sender: str = "heartfly@localhost"
    timeout: float = 10.0

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    type: ChannelType
    to: tuple[str, ...] = ()
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    format: WebhookFormat = "json"
    urls: tuple[str, ...] = ()
    recovery: bool = True  # also tell this channel when a check recovers
    timeout: float | None = None  # per attempt; [alerts] timeout when unset

    def __repr__(self) -> str:  # URLs and headers may hold tokens
        return f"ChannelConfig(name={self.name!r}, type={self.type!r})"


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    expire_after: float = 86400.0  # an alert not delivered by then is given up (and logged)
    timeout: float = 10.0  # per attempt
    retry_initial: float = 5.0  # the first retry; doubling up to retry_max, with jitter
    retry_max: float = 900.0
    concurrency: int = 8  # attempts in flight per channel
    trouble_channels: tuple[str, ...] = ()  # told when Heartfly's own database cannot be written (selfwatch)


_concurrency = positive_at_most(CONCURRENCY_MAX, "attempts in flight per channel")


def parse_smtp(reader: Reader, data: Mapping[str, Any]) -> SmtpConfig | None:
    if "smtp" not in data:
        return None
    table = reader.table(data, "smtp")
    reader.known(table, "smtp", _SMTP_KEYS)
    host = reader.value(table, "smtp", "host", str, _host)
    if "host" not in table:
        reader.fail("smtp.host", "missing")
    security: Security = reader.value(table, "smtp", "security", str, _security) or "starttls"
    default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
    port = reader.value(table, "smtp", "port", int, _port) or default_port
    sender = reader.value(table, "smtp", "from", str, _address) or "heartfly@localhost"
    password_file = reader.secret("smtp.password_file", reader.value(table, "smtp", "password_file", str, reader.path))
    username = reader.value(table, "smtp", "username", str)
    if (username is None) != ("password_file" not in table):
        reader.fail("smtp", "username and password_file go together")
    timeout = reader.value(table, "smtp", "timeout", str, AT_LEAST_100MS) or 10.0
    return SmtpConfig(
        host=host or "",
        port=port,
        security=security,
        username=username,
        password_file=password_file,
        sender=sender,
        timeout=timeout,
    )


def parse_alerts(reader: Reader, data: Mapping[str, Any], channels: Mapping[str, ChannelConfig]) -> AlertsConfig:
    table = reader.table(data, "alerts")
    reader.known(table, "alerts", _ALERT_KEYS)
    d = AlertsConfig()
    initial = reader.value(table, "alerts", "retry_initial", str, AT_LEAST_100MS) or d.retry_initial
    most = reader.value(table, "alerts", "retry_max", str, AT_LEAST_100MS) or d.retry_max
    if initial > most:
        reader.fail("alerts.retry_initial", "must not be longer than retry_max")
    trouble = reader.strings(table, "alerts", "trouble_channels") or ()
    declared = set(data["channels"]) if isinstance(data.get("channels"), dict) else set()
    check_routing(reader, channels, {"alerts.trouble_channels": trouble}, declared)
    server = data.get("server")
    database = server.get("database") if isinstance(server, dict) else None
    if trouble and isinstance(database, str) and is_postgres(database):  # not a silent no-op
        reader.fail("alerts.trouble_channels", "is for one server on SQLite: a cluster's nodes are watched by "
                    "[server] heartbeat_url (docs/cluster.md)")  # fmt: skip
    return AlertsConfig(
        expire_after=reader.value(table, "alerts", "expire_after", str, positive_duration) or d.expire_after,
        timeout=reader.value(table, "alerts", "timeout", str, AT_LEAST_100MS) or d.timeout,
        retry_initial=initial,
        retry_max=most,
        concurrency=reader.value(table, "alerts", "concurrency", int, _concurrency) or d.concurrency,
        trouble_channels=tuple(dict.fromkeys(trouble)),
    )


def parse_channels(reader: Reader, data: Mapping[str, Any], smtp: SmtpConfig | None) -> dict[str, ChannelConfig]:
    channels: dict[str, ChannelConfig] = {}
    for name, raw in reader.table(data, "channels").items():
        where = f"channels.{name}"
        if not NAME_RE.fullmatch(name):
            reader.fail(where, "a channel name uses letters, digits, '_', '.', '-' (at most 100, starting alnum)")
        if not isinstance(raw, dict):
            reader.fail(where, "expected a table")
            continue
        kind = reader.value(raw, where, "type", str)
        if "type" not in raw:  # a misspelt "tpye" is named too, with its fix
            reader.known(raw, where, set().union(*_CHANNEL_KEYS.values()))
        if kind not in CHANNEL_TYPES:
            shown = "missing" if kind is None else f'unknown type "{kind}"'
            reader.fail(join(where, "type"), f"{shown}: use {', '.join(CHANNEL_TYPES)}")
            continue
        reader.known(raw, where, _CHANNEL_KEYS[kind])
        before = len(reader.problems)
        channel = _channel(reader, where, name, cast(ChannelType, kind), raw, smtp)
        if len(reader.problems) == before:
            channels[name] = channel
    return channels


def _channel(
    reader: Reader, where: str, name: str, kind: ChannelType, raw: Mapping[str, Any], smtp: SmtpConfig | None
) -> ChannelConfig:
    recovery = reader.value(raw, where, "recovery", bool)
    timeout = reader.value(raw, where, "timeout", str, AT_LEAST_100MS)
    common: dict[str, Any] = {"name": name, "type": kind, "recovery": True if recovery is None else recovery}
    if kind == "email":
        if smtp is None:
            reader.fail(where, "an email channel needs an [smtp] section")
        to = reader.strings(raw, where, "to") or ()
        if not to:
            reader.fail(join(where, "to"), "needs at least one address")
        for address in to:
            if not _EMAIL_RE.fullmatch(address):
                reader.fail(join(where, "to"), f'"{address}" is not an email address')
        # Each address once, as apprise's urls: listed twice, it was given to the server twice. In
        # any case: a domain's is none of the address's, and mail servers take the local part's as
        # none either (RFC 5321 discourages telling mailboxes apart by it), so "Ops@Example.org"
        # beside "ops@example.org" (two lists merged by hand) delivered every alert twice too.
        once: dict[str, str] = {}
        for address in to:
            once.setdefault(address.casefold(), address)
        return ChannelConfig(to=tuple(once.values()), **common)
    if kind == "webhook":
        url = reader.value(raw, where, "url", str, _url)
        if "url" not in raw:
            reader.fail(join(where, "url"), "missing")
        headers = reader.value(raw, where, "headers", dict, _headers) or ()
        fmt: WebhookFormat = reader.value(raw, where, "format", str, _format) or "json"
        if url is not None and _has_user(url) and any(k.lower() == "authorization" for k, _ in headers):
            # aiohttp refuses to send both (a ValueError): every alert would fail, config and all valid
            reader.fail(where, "the url has a user name (Basic auth) and headers an Authorization: keep one")
        return ChannelConfig(url=url, headers=headers, format=fmt, timeout=timeout, **common)
    if kind == "log":  # Heartfly's own log: nothing to configure, nothing that can be down
        return ChannelConfig(**common)
    if importlib.util.find_spec("apprise") is None:
        reader.fail(join(where, "type"), "needs the apprise library: pip install 'heartfly[apprise]'")
    urls = reader.strings(raw, where, "urls") or ()
    if not urls:
        reader.fail(join(where, "urls"), "needs at least one apprise URL (e.g. tgram://bottoken/ChatID)")
    return ChannelConfig(urls=urls, timeout=timeout, **common)


def check_routing(
    reader: Reader, channels: Mapping[str, ChannelConfig], used: Mapping[str, tuple[str, ...]], declared: set[str]
) -> None:
    """Every name a check lists is a channel. (A channel no check in the file lists is not an error:
    checks made through the API may use it; check-config warns of it, config_advice.)

    `declared` holds every channel in the file, also those refused above: a check naming one of
    those gets no second, false "no channel" error.
    """
    for where, names in used.items():
        for name in names:
            if name not in channels and name not in declared:
                known = ", ".join(sorted(channels)) or "none are defined"
                reader.fail(where, f'no channel "{name}" (channels: {known})')


def _security(text: str) -> Security:
    if text not in get_args(Security):
        raise ValueError('expected "starttls", "tls" or "none"')
    return cast(Security, text)


def _host(text: str) -> str:
    """A host name or address alone: a URL's scheme, a port or an IPv6 address's brackets written in
    it were looked up as a name, and every email failed "cannot reach SMTP server" for a day of
    retries. The error says what to write instead."""
    if not text.strip():
        raise ValueError("missing")
    instead = _host_instead(text)
    if instead is not None:
        raise ValueError(f'"{text}" is not a host name or address alone: {instead}')
    if any(c.isspace() or c in "/@[]" for c in text):
        raise ValueError(f'"{text}" is not a host name or address: give the name alone (host = "mail.example.com")')
    return text


def _host_instead(text: str) -> str | None:
    """What to write for a host given as a URL, with a port, in brackets or as a socket's path."""
    if text.startswith("/"):  # a local relay's socket: SMTP here goes over TCP
        return 'a socket path is not taken: give the TCP address of the relay (host = "localhost" for one here)'
    scheme, sep, rest = text.partition("://")
    if sep:
        parts = urlsplit(f"//{rest}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname:
            return 'give the name alone (host = "mail.example.com")'
        return _name_and_port(parts.hostname, port, tls=scheme.lower() == "smtps")
    if text.startswith("["):  # an IPv6 address as a URL writes it
        address, bracket, after = text[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else None
        if bracket and ":" in address and (after == "" or (port_text is not None and port_text.isdigit())):
            return _name_and_port(address, int(port_text) if port_text else None)
        return None
    name, colon, port_text = text.rpartition(":")
    if colon and ":" not in name and (port_text.isdigit() or not port_text):  # IPv6's colons are its own
        return _name_and_port(name, int(port_text) if port_text else None)
    return None


def _name_and_port(name: str, port: int | None, tls: bool = False) -> str:
    settings = [f'host = "{name}"']
    if port is not None:
        settings.append(f"port = {port}")
    if tls:
        settings.append('security = "tls"')
    return "set " + (f"{', '.join(settings[:-1])} and {settings[-1]}" if len(settings) > 1 else settings[0])


def _port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError("expected a port from 1 to 65535")
    return value


def _address(text: str) -> str:
    if not _EMAIL_RE.fullmatch(text):
        raise ValueError(f'"{text}" is not an email address')
    return text


def _url(text: str) -> str:
    # The URL is not repeated in the error: it may hold a token (a Slack webhook's path, a password),
    # and the error reaches the journal when a reload is refused.
    if not _URL_RE.fullmatch(text):
        raise ValueError('expected an http(s) URL, like "https://example.com/hook" (not shown: it may hold a token)')
    why = url_fault(text)  # what the regex lets through but no client can use: port 99999, "http://[::1/x"
    if why == "":
        raise ValueError("expected an http(s) URL with a host and port")
    if why is not None:
        raise ValueError(f"expected an http(s) URL ({why})")
    return text


def _has_user(url: str) -> bool:
    return "@" in urlsplit(url).netloc  # user or user:password, which aiohttp sends as Basic auth


def _format(text: str) -> WebhookFormat:
    if text not in WEBHOOK_FORMATS:
        raise ValueError(f"expected one of {', '.join(WEBHOOK_FORMATS)}")
    return text


def _headers(table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    for key, value in table.items():
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9-]+", key):
            raise ValueError("headers maps header names to single-line strings")
        if key.lower() == "idempotency-key":  # one key for every alert: a receiver that drops repeats drops them all
            raise ValueError("Heartfly sends its own Idempotency-Key, a new one per alert; remove this header")
        # aiohttp refuses CR, LF and NUL only when sending, so every alert would fail; the value
        # may be a credential, so the error names the header, never its content.
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError(f"the value of {key} holds a control character (a tab, newline, CR, ...)")
    return tuple(table.items())
