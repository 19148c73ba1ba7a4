"""Alerts that go somewhere out of the box: the log channel, check-config's warnings, the starter
config and the example config, and test alerts that expire soon. Real subprocesses throughout."""

from __future__ import annotations

import re
import signal
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from heartfly.core.config_alerts import AlertsConfig
from heartfly.core.printable import escape
from heartfly.notify import outbox
from tests.conftest import new_key
from tests.proc import Server, heartfly

EXAMPLE = Path(__file__).parent.parent / "heartfly.example.toml"
SERVER = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
# A ping body that tries to forge a log line of its own, colour the terminal, reorder the text
# and end the line by Unicode's own separator.
HOSTILE = "disk full\n2026-01-01 00:00:00 ERROR heartfly: forged\r\x1b[31mred\x1b[0m \u202eevil\u2028next\x00end"


def with_port(path: Path, url: str) -> Path:
    """The same config, listening where the running server actually listens."""
    port = url.rsplit(":", 1)[1]
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    return path


def log_config(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "hb.toml"
    path.write_text(
        SERVER + '[defaults]\nchannels = ["journal"]\n[channels.journal]\ntype = "log"\n'
        f'[checks.nightly]\nkey = "{key}"\nevery = "1h"\ndescription = "the nightly job"\n'
    )
    return path


def test_a_log_channel_alert_is_one_escaped_warning_line_in_the_servers_log_and_recorded_as_sent(
    tmp_path: Path,
) -> None:
    key = new_key()
    path = log_config(tmp_path, key)
    with Server(path) as server:
        request = urllib.request.Request(f"{server.url}/ping/{key}/fail", data=HOSTILE.encode())
        with urllib.request.urlopen(request) as resp:
            assert resp.status == 200
        assert server.wait_for_log("(down of check nightly) via journal: sent after 1 attempt(s)")
        assert re.search(r"alert flip-1-\d+ \(down of check nightly\)", server.log())
        assert server.stop() == 0
    lines = [line for line in server.lines if "[DOWN] nightly failed" in line]
    assert len(lines) == 1, server.log()
    alert = lines[0]
    assert " WARNING heartfly.alert: [DOWN] nightly failed | Check: nightly | Description: the nightly job" in alert
    assert "State: down (failed)" in alert and "Link: http://127.0.0.1:0/checks/nightly" in alert
    assert "disk full\\n2026-01-01 00:00:00 ERROR heartfly: forged\\r\\x1b[31mred\\x1b[0m \\u202eevil" in alert
    assert "\\u2028next\ufffdend" in alert  # a NUL is stored as U+FFFD (PostgreSQL keeps no NUL in text)
    log = server.log()
    assert not any(line.startswith("2026-01-01") for line in server.lines)  # no forged line
    assert not any(c in log for c in "\x1b\r\x00\u202e\u2028")
    history = heartfly("history", "nightly", "-c", str(path))
    assert re.search(r"down via journal: sent after 1 attempt\(s\)  \[flip-1-\d+\]", history.stdout), history.stderr


def test_a_test_alert_through_a_log_channel_is_sent_and_logged(tmp_path: Path) -> None:
    path = log_config(tmp_path, new_key())
    with Server(path) as server:
        result = heartfly("test-alert", "journal", "-c", str(with_port(path, server.url)))
        assert result.returncode == 0, result.stderr
        assert "test alert via journal: sent" in result.stdout
        assert server.wait_for_log("WARNING heartfly.alert: [TEST] Heartfly test alert for channel journal")


def test_a_test_alert_that_cannot_be_delivered_expires_after_five_minutes_not_a_day(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        SERVER + '[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/nothing-listens"\n'
        f'[checks.nightly]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["hook"]\n'
    )
    with Server(path) as server:
        result = heartfly("test-alert", "hook", "-c", str(with_port(path, server.url)))
        assert result.returncode == 1 and "test alert via hook: pending" in result.stdout
        server.stop()
    with sqlite3.connect(tmp_path / "hb.db") as db:
        rows = db.execute("SELECT expires_at - created_at FROM outbox WHERE event = 'test'").fetchall()
    assert rows == [(300.0,)]


def test_a_test_alert_expires_by_expire_after_when_that_is_sooner_than_five_minutes() -> None:
    assert outbox.TEST_EXPIRE_AFTER == 300.0
    row = outbox.test_row(7, "hook", 1000.0, AlertsConfig(expire_after=120.0))
    assert (row[6], row[7]) == (1000.0, 1120.0)  # created_at, expires_at
    assert outbox.test_row(8, "hook", 1000.0, AlertsConfig())[7] == 1300.0


def test_check_config_warns_on_stderr_about_checks_no_channel_reaches_and_still_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        SERVER + '[channels.journal]\ntype = "log"\n'
        f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
        f'[checks.quiet]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK, 2 check(s)" in result.stdout and "warning" not in result.stdout
    assert result.stderr.startswith("warning: 1 check(s) have no channel, so nobody is told when it goes down (quiet)")
    assert 'type = "log"' in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_channel_no_check_in_the_file_uses_is_a_warning_of_check_config_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        SERVER + '[channels.journal]\ntype = "log"\n[channels.spare]\ntype = "log"\n'
        f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == (
        "warning: channels.spare: no check in the file uses it (list it in [defaults] or a check's channels;"
        " checks made through the API may name it)\n"
    )


def test_check_config_warns_when_email_would_go_out_from_heartfly_at_localhost(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    check = f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["ops"]\n'
    path.write_text(SERVER + '[smtp]\nhost = "127.0.0.1"\n' + channel + check)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr.startswith('warning: smtp.from: "heartfly@localhost" has no domain name')
    path.write_text(SERVER + '[smtp]\nhost = "127.0.0.1"\nfrom = "heartfly@example.org"\n' + channel + check)
    assert heartfly("check-config", "-c", str(path)).stderr == ""


def test_check_config_warns_when_smtp_timeout_is_longer_than_the_attempts_limit_that_cuts_it_off(
    tmp_path: Path,
) -> None:
    # An email attempt's limit is [alerts] timeout: a slow relay's 30 s set in [smtp] was never
    # waited for, each attempt cut off at 10 s ("no answer within 10 s") and retried.
    path = tmp_path / "hb.toml"
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    check = f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["ops"]\n'
    smtp = '[smtp]\nhost = "127.0.0.1"\nfrom = "heartfly@example.org"\ntimeout = "30s"\n'
    path.write_text(SERVER + smtp + channel + check)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == (
        "warning: smtp.timeout: 30 s, longer than an email attempt's limit, [alerts] timeout (10 s), which"
        " cuts the attempt off first: set [alerts] timeout at least as long\n"
    )
    path.write_text(SERVER + smtp + '[alerts]\ntimeout = "45s"\n' + channel + check)
    assert heartfly("check-config", "-c", str(path)).stderr == ""


def test_check_config_warns_of_an_apprise_url_apprise_cannot_read_by_its_place_not_its_token(tmp_path: Path) -> None:
    # A typo in a service's scheme: the file was "OK", and every alert failed there for good.
    pytest.importorskip("apprise")
    path = tmp_path / "hb.toml"
    channel = '[channels.chat]\ntype = "apprise"\nurls = ["json://localhost/hook", "slakc://T000/B000/XyZsecret"]\n'
    path.write_text(SERVER + channel + f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["chat"]\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == (
        "warning: channels.chat.urls: apprise does not understand URL 2 of 2 (not shown: it may hold a token),"
        " so each alert fails there for good\n"
    )
    path.write_text(path.read_text().replace("slakc://", "slack://"))
    assert heartfly("check-config", "-c", str(path)).stderr == ""


SLACK_HOOK = "https://hooks.slack.com/services/T0/B0/XyZsecret"
DISCORD_HOOK = "https://discord.com/api/webhooks/1/XyZsecret"


@pytest.mark.parametrize(
    ("url", "fmt", "warned"),
    [
        (SLACK_HOOK, "json", 'hooks.slack.com is a Slack webhook, which takes format = "slack"'),
        (DISCORD_HOOK, "slack", 'discord.com is a Discord webhook, which takes format = "discord"'),
        (f"{DISCORD_HOOK}/slack", "discord",
         'discord.com is a Slack-compatible Discord webhook, which takes format = "slack"'),
        (f"{DISCORD_HOOK.replace('/api/', '/api/v10/')}/slack", "json",
         'discord.com is a Slack-compatible Discord webhook, which takes format = "slack"'),
        (SLACK_HOOK, "slack", None),
        (f"{DISCORD_HOOK}/slack", "slack", None),
        ("https://incidents.example.org/hook", "json", None),
        # A Slack workflow's webhook takes the variables its workflow defines, not Slack's message body
        ("https://hooks.slack.com/workflows/T0/A0/1/XyZsecret", "json", None),
        ("https://hooks.slack.com/triggers/T0/1/XyZsecret", "json", None),
        ("https://mattermost.example.org/hooks/XyZsecret", "slack", None),
    ],
)  # fmt: skip
def test_check_config_warns_of_a_chat_webhook_whose_format_is_not_the_one_its_service_takes(
    tmp_path: Path, url: str, fmt: str, warned: str | None
) -> None:
    # Slack's webhook answers a JSON body of another shape 400 (invalid_payload): every alert failed for good.
    path = tmp_path / "hb.toml"
    channel = f'[channels.chat]\ntype = "webhook"\nurl = "{url}"\nformat = "{fmt}"\n'
    path.write_text(SERVER + channel + f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["chat"]\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "XyZsecret" not in result.stderr, result.stderr
    if warned is None:
        assert result.stderr == ""
    else:
        assert result.stderr == f'warning: channels.chat.format: "{fmt}", but {warned}: every alert would fail there\n'


def test_check_config_says_an_ntfy_topic_shows_another_formats_body_raw_not_that_it_fails(tmp_path: Path) -> None:
    # ntfy takes any body as the message's text: a JSON body is shown as it is, not refused.
    path = tmp_path / "hb.toml"
    channel = '[channels.chat]\ntype = "webhook"\nurl = "https://ntfy.sh/my-topic"\nformat = "json"\n'
    path.write_text(SERVER + channel + f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["chat"]\n')
    assert heartfly("check-config", "-c", str(path)).stderr == (
        'warning: channels.chat.format: "json", but ntfy.sh is a ntfy webhook, which takes format = "ntfy": ntfy'
        " would show each alert as the raw body, with no title or priority\n"
    )


def test_check_config_and_serve_warn_when_the_smtp_password_would_cross_the_network_in_clear(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("s3cret\n")
    (tmp_path / "smtp-password").chmod(0o600)
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    check = f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["ops"]\n'
    login = 'from = "heartfly@example.org"\nusername = "heartfly"\npassword_file = "smtp-password"\n'

    def smtp(host: str, security: str) -> Path:
        path = tmp_path / "hb.toml"
        path.write_text(SERVER + f'[smtp]\nhost = "{host}"\nsecurity = "{security}"\n' + login + channel + check)
        return path

    warning = (
        'warning: smtp: security = "none" sends the username and password to mail.example.org unencrypted:'
        ' set security = "starttls" (port 587) or "tls" (465)\n'
    )
    result = heartfly("check-config", "-c", str(smtp("mail.example.org", "none")))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == warning
    with Server(smtp("mail.example.org", "none")) as server:
        assert server.wait_for_log(warning.removeprefix("warning: ").rstrip())
        assert "s3cret" not in server.log()
    # Encrypted, or to a relay on this machine: nothing crosses the network in clear.
    assert heartfly("check-config", "-c", str(smtp("mail.example.org", "starttls"))).stderr == ""
    assert heartfly("check-config", "-c", str(smtp("localhost", "none"))).stderr == ""
    assert heartfly("check-config", "-c", str(smtp("127.0.0.1", "none"))).stderr == ""


@pytest.mark.parametrize(
    ("server", "shown"),
    [
        ('listen = "0.0.0.0:8765"\n', "http://0.0.0.0:8765"),
        ('listen = "[::]:8765"\n', "http://[::]:8765"),
        ('listen = "0.0.0.0:8765"\npublic_url = "https://hb.example.org"\n', None),
        ('listen = "127.0.0.1:8765"\n', None),
    ],
)
def test_check_config_warns_when_alert_links_would_point_to_every_address(
    tmp_path: Path, server: str, shown: str | None
) -> None:
    # listen = "0.0.0.0:PORT" without public_url: every alert linked to http://0.0.0.0:PORT/checks/X,
    # which no browser can open, and nothing said so.
    path = tmp_path / "hb.toml"
    path.write_text(
        f'[server]\n{server}database = "hb.db"\n[channels.log]\ntype = "log"\n'
        f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["log"]\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    host = None if shown is None else shown.removeprefix("http://").rpartition(":")[0].strip("[]")
    assert result.stderr == (
        ""
        if shown is None
        else f"warning: server.public_url: alert links point to {shown}, which nobody can open ({host} means every"
        " address of this machine): set public_url to the address people reach Heartfly at, e.g."
        ' "https://hb.example.com"\n'
    )


def test_serve_warns_at_its_start_when_alert_links_would_point_to_every_address(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"  # listening on loopback; its public_url names 0.0.0.0 as one derived from it would
    path.write_text(
        SERVER + 'public_url = "http://0.0.0.0:8765"\n[channels.log]\ntype = "log"\n'
        f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["log"]\n'
    )
    with Server(path) as server:
        assert server.wait_for_log("server.public_url: alert links point to http://0.0.0.0:8765, which nobody can open")


@pytest.mark.parametrize("public_url", ["https://ops.example.com/heartfly", "https://ops.example.com/heartfly/"])
def test_check_config_says_nothing_of_a_public_url_with_a_path(tmp_path: Path, public_url: str) -> None:
    # It warned that the dashboard broke below a path; its links are relative now
    # (tests/test_dashboard_below_a_path.py), and a warning nothing calls for is noise.
    path = tmp_path / "hb.toml"
    path.write_text(
        SERVER + f'public_url = "{public_url}"\n[channels.log]\ntype = "log"\n'
        f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["log"]\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == ""


def test_serve_warns_at_its_start_and_each_reload_of_cron_checks_whose_grace_is_zero(tmp_path: Path) -> None:
    # check-config warned of it, serve did not: every run on time was told down and then up, and
    # whoever those alerts woke, not having run check-config, found nothing in the log saying why.
    path = tmp_path / "hb.toml"
    checks = '[channels.log]\ntype = "log"\n[defaults]\nchannels = ["log"]\n'
    checks += f'[checks.nightly]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ngrace = "0s"\n'
    path.write_text(SERVER + checks)
    warning = (
        "cron check(s) have grace 0s ({}): a job pings after the tick it runs at, which is its deadline,"
        " so every run is told down and then up; give them a grace (how late a run may be)"
    )
    with Server(path) as server:
        assert server.wait_for_log("1 " + warning.format("nightly")), server.log()
        path.write_text(SERVER + checks + f'[checks.hourly]\nkey = "{new_key()}"\ncron = "0 * * * *"\ngrace = "0s"\n')
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("2 " + warning.format("nightly, hourly")), server.log()
        assert "reload failed" not in server.log()


@pytest.mark.parametrize(
    ("smtp", "warning"),
    [
        ("port = 465\n", 'warning: smtp.port: 465 takes TLS from the first byte (security = "tls"), not security'),
        ('port = 465\nsecurity = "none"\n', "warning: smtp.port: 465 takes TLS from the first byte"),
        ('port = 587\nsecurity = "tls"\n', 'warning: smtp.security: "tls" begins with TLS, which port 587 does not'),
        ('port = 25\nsecurity = "tls"\n', 'warning: smtp.security: "tls" begins with TLS, which port 25 does not'),
        ('port = 465\nsecurity = "tls"\n', None),
        ('port = 2525\nsecurity = "tls"\n', None),
        ("port = 587\n", None),
    ],
)
def test_check_config_warns_of_a_port_that_speaks_tls_otherwise_than_security_says(
    tmp_path: Path, smtp: str, warning: str | None
) -> None:
    # Port 465 with the default security = "starttls": each side waited for the other to speak,
    # and every email timed out, retried for a day, with no word of why.
    path = tmp_path / "hb.toml"
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    check = f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["ops"]\n'
    path.write_text(SERVER + f'[smtp]\nhost = "mail.example.org"\nfrom = "hb@example.org"\n{smtp}' + channel + check)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    if warning is None:
        assert result.stderr == ""
    else:
        assert result.stderr.startswith(warning) and result.stderr.count("\n") == 1, result.stderr


def test_check_config_warns_of_a_port_that_speaks_tls_otherwise_even_when_the_files_checks_are_all_the_apis(
    tmp_path: Path,
) -> None:
    # A file with no [checks] (all made through the API) was told only "no checks", and every email
    # to port 465 went on timing out.
    path = tmp_path / "hb.toml"
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    path.write_text(SERVER + '[smtp]\nhost = "mail.example.org"\nfrom = "hb@example.org"\nport = 465\n' + channel)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 0 check(s)" in result.stdout, result.stderr
    assert result.stderr.splitlines() == [
        'warning: smtp.port: 465 takes TLS from the first byte (security = "tls"), not security = "starttls":'
        " every email would wait for a greeting that never comes",
        "warning: no checks: nothing is watched (add a [checks.NAME] table)",
    ]


def test_check_config_warns_of_every_smtp_setting_that_fails_email_even_when_the_files_checks_are_all_the_apis(
    tmp_path: Path,
) -> None:
    # The sender without a domain (the default heartfly@localhost: relays refuse it for good) and a
    # login in clear are server settings too, as the port/security mismatch: a file with no
    # [checks] (all made through the API) was told only "no checks" of them.
    (tmp_path / "smtp-password").write_text("s3cret\n")
    (tmp_path / "smtp-password").chmod(0o600)
    path = tmp_path / "hb.toml"
    channel = '[channels.ops]\ntype = "email"\nto = ["ops@example.org"]\n'
    login = 'security = "none"\nusername = "heartfly"\npassword_file = "smtp-password"\n'
    path.write_text(SERVER + '[smtp]\nhost = "mail.example.org"\n' + login + channel)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 0 check(s)" in result.stdout, result.stderr
    assert result.stderr.splitlines() == [
        'warning: smtp.from: "heartfly@localhost" has no domain name that mail servers accept, and many refuse'
        ' its email for good: set from = "heartfly@your.domain"',
        'warning: smtp: security = "none" sends the username and password to mail.example.org unencrypted:'
        ' set security = "starttls" (port 587) or "tls" (465)',
        "warning: no checks: nothing is watched (add a [checks.NAME] table)",
    ]


def test_check_config_warns_about_a_maintenance_window_whose_occurrences_overlap(tmp_path: Path) -> None:
    # Hourly for 90 minutes: the 09:00 occurrence ends at 10:30, inside the 10:00 one, and what it
    # held is told then.
    path = tmp_path / "hb.toml"
    check = f'[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
    check += '[channels.journal]\ntype = "log"\n'
    window = '[[maintenance]]\nname = "patching"\ncron = "0 * * * *"\nduration = "{}"\n'
    path.write_text(SERVER + check + window.format("90m"))
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == (
        "warning: maintenance window patching: its duration (1 h 30 min) is longer than the 1 h between two of"
        " its starts, so the alerts one occurrence holds are told when it ends, inside the next: make duration"
        " shorter than 1 h\n"
    )
    path.write_text(SERVER + check + window.format("45m"))
    assert heartfly("check-config", "-c", str(path)).stderr == ""


def test_check_config_warns_of_a_stall_limit_that_max_runtime_always_comes_before(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    journal = '[channels.journal]\ntype = "log"\n[defaults]\nchannels = ["journal"]\n'
    check = f'[checks.drain]\nkey = "{new_key()}"\nevery = "1h"\nmax_runtime = "10m"\nstall = "{{}}"\n'
    path.write_text(SERVER + journal + check.format("10m"))
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and "OK, 1 check(s)" in result.stdout, result.stderr
    assert result.stderr == (
        "warning: 1 check(s) have a stall limit no shorter than max_runtime (drain): a run overruns before it"
        " can stall, so the stall limit never fires; make it shorter\n"
    )
    path.write_text(SERVER + journal + check.format("5m"))
    assert heartfly("check-config", "-c", str(path)).stderr == ""


def test_check_config_warns_when_no_check_has_a_channel_naming_at_most_ten(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(SERVER + "".join(f'[checks.c{i:02}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(12)))
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0
    assert "warning: every check has no channel" in result.stderr
    assert "(c00, c01, c02, c03, c04, c05, c06, c07, c08, c09 and 2 more)" in result.stderr


def test_check_config_warns_about_a_config_with_no_checks(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(SERVER)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0
    assert result.stderr == "warning: no checks: nothing is watched (add a [checks.NAME] table)\n"


def test_the_starter_config_alerts_through_a_log_channel_and_passes_check_config_without_a_warning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hb.toml"
    assert heartfly("init", str(path)).returncode == 0
    assert '[channels.journal]\ntype = "log"' in path.read_text()
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and result.stderr == ""


def test_the_example_config_sends_every_check_to_the_log_channel_and_passes_check_config_without_a_warning() -> None:
    from heartfly.core.config import load_config

    config = load_config(EXAMPLE)
    assert {c.type for c in config.channels.values()} == {"log"}  # nothing that is not there to answer
    assert all(check.channels == ("journal",) for check in config.checks.values())
    result = heartfly("check-config", "-c", str(EXAMPLE))
    assert result.returncode == 0 and result.stderr == ""


def test_escape_keeps_a_line_one_printable_line() -> None:
    assert escape("a\nb\r\tc\\d") == "a\\nb\\r\\tc\\\\d"
    assert escape("\x00\x07\x1b\x7f\x85\x9b") == "\\x00\\x07\\x1b\\x7f\\x85\\x9b"
    assert escape("\u200b\u202e\u2028\u2029\ufeff") == "\\u200b\\u202e\\u2028\\u2029\\ufeff"
    assert escape("Auth → Profile, ünïcödé, 日本") == "Auth → Profile, ünïcödé, 日本"


def test_check_config_and_serve_warn_of_a_token_file_any_user_may_read(tmp_path: Path) -> None:
    # A token written by hand (echo ... > api-token, umask 022) is 0644: any user of the machine
    # may read it and use the whole API, and neither check-config nor the server said so
    path = tmp_path / "hb.toml"
    (tmp_path / "token").write_text("t" * 43 + "\n")
    (tmp_path / "token").chmod(0o644)
    path.write_text(
        SERVER + f'[channels.log]\ntype = "log"\n[checks.told]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["log"]\n'
    )
    warning = f"server.api_token_file: any user of this machine may read {tmp_path / 'token'} (mode 0644)"
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0 and warning in result.stderr, result.stderr
    with Server(path) as server:
        assert server.wait_for_log(warning), server.log()
    (tmp_path / "token").chmod(0o640)
    assert heartfly("check-config", "-c", str(path)).stderr == ""
