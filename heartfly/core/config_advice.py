"""Warnings about a valid config that would still let a failure go unnoticed. Pure, but for
exposed_secrets, which looks at the secret files' modes.

Not errors: a config without channels is a legitimate way to try Heartfly out (states, the
dashboard and the API work), but whoever runs `heartfly check-config` should hear that nobody is
ever told. Likewise a channel no check in the file lists: checks made through the API may use it,
but it may as well be the channel some checks were meant to list.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Sequence

from heartfly.core.config import Config
from heartfly.core.config_secrets import open_to_all
from heartfly.core.units import human_duration

NAMED = 10  # checks named in the warning; the rest are counted


def named(names: Sequence[str], most: int = NAMED, sep: str = ", ") -> str:
    """The first `most` names, and how many more: "a, b, c and 7 more"."""
    more = len(names) - most
    return sep.join(names[:most]) + (f" and {more} more" if more > 0 else "")


def _tls_mismatch(port: int, security: str) -> str | None:
    """Port 465 speaks TLS from its first byte; 587 and 25 begin in plain text. The other way round,
    every email timed out (each side waits for the other to speak first) or failed its TLS
    handshake, and was retried until it expired."""
    if port == 465 and security != "tls":
        return (
            f'smtp.port: 465 takes TLS from the first byte (security = "tls"), not security = "{security}":'
            " every email would wait for a greeting that never comes"
        )
    if port in (25, 587) and security == "tls":
        return (
            f'smtp.security: "tls" begins with TLS, which port {port} does not (it takes "starttls" or "none"):'
            " every email would fail its TLS handshake"
        )
    return None


def warnings(config: Config, *, watched: int | None = None) -> list[str]:
    """One line per problem, however many checks share it. `watched`: how many checks a server
    watches on this file, those made through the API too (a reload says it): with some, a file
    without checks of its own is not told that nothing is watched."""
    found = exposed_secrets(config)
    if config.server.body_limit_capped:  # a server setting: said also of a file whose checks are all the API's
        found.append(
            "server.body_limit: more than 16MiB, the most a ping's body may be (a longer one is refused):"
            " 16MiB is used and advertised"
        )
    if (nowhere := unreachable_links(config)) is not None:  # a server setting, as body_limit
        found.append(nowhere)
    # Server settings, as body_limit: said also of a file whose checks are all the API's.
    mail = [*_smtp_warnings(config), *_hook_formats(config)]
    if not config.checks:
        nothing = [] if watched else ["no checks: nothing is watched (add a [checks.NAME] table)"]
        return [*found, *mail, *nothing]
    silent = [name for name, check in config.checks.items() if not check.channels]
    if silent:
        shown = named(silent)
        which = "every check has" if len(silent) == len(config.checks) else f"{len(silent)} check(s) have"
        found.append(
            f"{which} no channel, so nobody is told when it goes down ({shown}): set [defaults] channels"
            " or a check's channels; a [channels.NAME] table with type = \"log\" writes alerts to Heartfly's log"
        )
    found += mail
    unreached = [
        name
        for name, check in config.checks.items()
        if check.stall is not None and check.max_runtime is not None and check.stall >= check.max_runtime
    ]
    if unreached:
        shown = named(unreached)
        found.append(
            f"{len(unreached)} check(s) have a stall limit no shorter than max_runtime ({shown}): a run overruns"
            " before it can stall, so the stall limit never fires; make it shorter"
        )
    if (sudden := graceless_crons(config)) is not None:
        found.append(sudden)
    for window in config.maintenance:
        gap = window.shortest_gap()
        if gap is not None and gap < window.duration:
            # One occurrence's end falls inside the next: what it held is told then, mid-window.
            found.append(
                f"maintenance window {window.name}: its duration ({human_duration(window.duration)}) is longer than"
                f" the {human_duration(gap)} between two of its starts, so the alerts one occurrence holds are told"
                f" when it ends, inside the next: make duration shorter than {human_duration(gap)}"
            )
    found += _untagged_windows(config)
    listed = {name for check in config.checks.values() for name in check.channels}
    listed.update(config.alerts.trouble_channels)  # told of Heartfly's own trouble: used, by no check
    found += [
        f"channels.{name}: no check in the file uses it (list it in [defaults] or a check's channels;"
        " checks made through the API may name it)"
        for name in config.channels
        if name not in listed
    ]
    return found


def _smtp_warnings(config: Config) -> list[str]:
    """The [smtp] settings that fail every email or expose its login, in the order said."""
    smtp = config.smtp
    if smtp is None:
        return []
    found = []
    if "." not in smtp.sender.rpartition("@")[2]:
        # The default heartfly@localhost: relays that check a sender's domain (Postfix's
        # reject_non_fqdn_sender, SES, most providers) refuse it with 5xx, and every email fails for good.
        found.append(
            f'smtp.from: "{smtp.sender}" has no domain name that mail servers accept, and many refuse its'
            ' email for good: set from = "heartfly@your.domain"'
        )
    if (clear := cleartext_login(config)) is not None:
        found.append(clear)
    if (mismatch := _tls_mismatch(smtp.port, smtp.security)) is not None:
        found.append(mismatch)
    limit = config.alerts.timeout  # an email channel has no timeout of its own
    if smtp.timeout > limit and any(c.type == "email" for c in config.channels.values()):
        found.append(
            f"smtp.timeout: {human_duration(smtp.timeout)}, longer than an email attempt's limit, [alerts] timeout"
            f" ({human_duration(limit)}), which cuts the attempt off first: set [alerts] timeout at least as long"
        )
    return found


# The chat services whose webhook URL says which body they take, by host and path (Discord's, ending in
# /slack, takes Slack's body), and what another format gets: Slack and Discord refuse it (Slack: 400
# invalid_payload); ntfy takes any body as the message's text. Slack's workflow webhooks
# (/workflows/, /triggers/) take the variables their workflow defines: any format may fit them.
_REFUSED = "every alert would fail there"
_SLACK = re.compile(r"/services/[^/]+/[^/]+/[^/]+/?")
_DISCORD = re.compile(r"/api(?:/v\d+)?/webhooks/[^/]+/[^/]+(/slack)?/?")
_DISCORD_HOSTS = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}


def _hook_service(host: str, path: str) -> tuple[str, str, str] | None:
    """(the service's name, the format it takes, what another format gets), or None for another URL."""
    if host == "hooks.slack.com" and _SLACK.fullmatch(path):
        return "Slack", "slack", _REFUSED
    if host in _DISCORD_HOSTS and (hook := _DISCORD.fullmatch(path)):
        return ("Slack-compatible Discord", "slack", _REFUSED) if hook[1] else ("Discord", "discord", _REFUSED)
    if host == "ntfy.sh" and path.strip("/") and "/" not in path.strip("/"):  # a topic's URL
        return "ntfy", "ntfy", "ntfy would show each alert as the raw body, with no title or priority"
    return None


def _hook_formats(config: Config) -> list[str]:
    """Webhooks of a known chat service whose `format` is not the one it takes: every alert would
    fail for good, or arrive unreadable. Said by host only (the URL's path holds its token)."""
    found = []
    for name, channel in config.channels.items():
        if channel.type != "webhook" or channel.url is None:
            continue
        parts = urllib.parse.urlsplit(channel.url)
        host = (parts.hostname or "").lower().rstrip(".")
        service = _hook_service(host, parts.path)
        if service is not None and channel.format != service[1]:
            found.append(
                f'channels.{name}.format: "{channel.format}", but {host} is a {service[0]} webhook, which takes'
                f' format = "{service[1]}": {service[2]}'
            )
    return found


def cleartext_login(config: Config) -> str | None:
    """An SMTP login without encryption to a server not on this machine: whoever can see the
    traffic reads the password (aiosmtplib logs in as told). Said by check-config, and by serve
    at its start and each reload, as the file is valid."""
    smtp = config.smtp
    if smtp is None or smtp.security != "none" or smtp.username is None or _loopback(smtp.host):
        return None
    return (
        f'smtp: security = "none" sends the username and password to {smtp.host} unencrypted:'
        ' set security = "starttls" (port 587) or "tls" (465)'
    )


def graceless_crons(config: Config) -> str | None:
    """Cron checks with grace 0s: a job pings after the tick it runs at, which is then its deadline,
    so every run on time is told down (missed) and up again. Said by check-config, and by serve at
    its start and each reload: whoever is woken by those alerts may never run check-config."""
    sudden = [name for name, check in config.checks.items() if check.cron is not None and check.grace == 0]
    if not sudden:
        return None
    return (
        f"{len(sudden)} cron check(s) have grace 0s ({named(sudden)}): a job pings after the tick it runs at,"
        " which is its deadline, so every run is told down and then up; give them a grace (how late a run may be)"
    )


def unreachable_links(config: Config) -> str | None:
    """A public_url on 0.0.0.0 or [::] (the one derived from such a listen when the file sets none):
    every alert's link, and the URLs the API hands out, point where no browser can go. Said by
    check-config, and by serve at its start and each reload."""
    url = config.server.public_url
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        if not ipaddress.ip_address(host).is_unspecified:
            return None
    except ValueError:  # a host name
        return None
    return (
        f"server.public_url: alert links point to {url}, which nobody can open ({host} means every address"
        ' of this machine): set public_url to the address people reach Heartfly at, e.g. "https://hb.example.com"'
    )


def exposed_secrets(config: Config) -> list[str]:
    """The secret files any user of this machine may read or write. Said by check-config, and by
    serve at its start and each reload."""
    server, smtp = config.server, config.smtp
    return open_to_all(
        [
            ("server.api_token_file", server.api_token_file),
            ("server.hc_api_key_file", server.hc_api_key_file),
            ("server.hc_api_key_readonly_file", server.hc_api_key_readonly_file),
            ("smtp.password_file", smtp.password_file if smtp is not None else None),
            ("server.database_password_file", getattr(server.database, "password_file", None)),
        ]
    )


def said_at_start(config: Config) -> list[str]:
    """What serve logs at its start and each reload: the warnings whose harm nobody may see until
    an alert (or a page) goes wrong, for whoever never runs check-config."""
    advice = (cleartext_login(config), unreachable_links(config), graceless_crons(config))
    return [*exposed_secrets(config), *[a for a in advice if a is not None]]


def _loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name
        return False


def _untagged_windows(config: Config) -> list[str]:
    """A window's tag that no check carries: a typo ("bd" for "db") leaves the window covering
    nothing, and its night's alerts go out; a name that matches no check is an error already."""
    carried = {tag for check in config.checks.values() for tag in check.tags}
    return [
        f'maintenance window {window.name}: no check in the file has the tag "{tag}" (checks made through the API'
        " may carry it)"
        for window in config.maintenance
        for tag in window.tags
        if tag not in carried
    ]
