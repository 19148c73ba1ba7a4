"""`heartfly pause`, `resume`, `reload` and `test-alert`: ask the running server through its API
(stdlib only)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from heartfly.cli.admin import AdminError, call, local_url
from heartfly.core.units import UnitError, parse_duration

if TYPE_CHECKING:
    from heartfly.core.config import Config


# What a check or channel the file has and the running server does not needs (status says it too).
NOT_LOADED_HINT = "heartfly reload, or systemctl status heartfly for why a reload was refused"
# In a cluster the leader's file decides what is watched: a standby's reload changes nothing of it.
CLUSTER_HINT = "give every node the same file and reload each, as the leader's decides what is watched"


def not_loaded(config: Config) -> tuple[str, str]:
    """Who has not loaded a check the file has, for what the database holds (status, history), and
    what to do: the server, or a cluster's leader, whatever this node's own reload would change."""
    if isinstance(config.server.database, Path):
        return "the server", NOT_LOADED_HINT
    return "the cluster's leader", CLUSTER_HINT


class ReloadError(AdminError):
    """The server kept its config because the file has errors; `problems` lists them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the config file has errors; the server still runs the previous config")
        self.problems = problems


class UnknownChannel(AdminError):
    """The config has no such channel: a usage error, found before the server is asked."""


def until_param(text: str) -> str:
    """A pause's end for the API: a duration as given, or a time (local to this shell unless it says)."""
    text = text.strip()
    try:
        parse_duration(text)
        return text
    except UnitError as exc:
        if str(exc).startswith("at most "):  # a duration past any bound ("99999d"): the server's limit says so
            return text
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))  # as the server reads it
    except ValueError:
        example = '"2h", "1d", "2026-11-24 08:00" or "2026-11-24T08:00Z"'
        raise AdminError(f'--until: expected a duration or a time ({example}), got "{text}"') from None
    if when.tzinfo is None:
        try:
            when = when.astimezone()  # what the operator's clock says
        except (ValueError, OverflowError):  # year 1 east of UTC, 9999 west of it: out of a date's years
            raise AdminError(f'--until: "{text}" is out of range (a pause lasts at most a year)') from None
    return when.isoformat()


def _ask(
    config: Config, path: str, fields: tuple[str, ...], timeout: float = 60.0, in_file: bool = False
) -> dict[str, Any]:
    """The server's answer, which has `fields`; AdminError if it refused or is not Heartfly.
    `in_file`: the check or channel asked about is in the file, so a 404 means it is not loaded yet."""
    status, body = call(config, "POST", path, timeout)
    if status == 200:
        return _heartflys(config, body, fields)
    refused = _refused(status, body)
    if status == 404 and in_file:  # added to the file, not reloaded (or its reload refused)
        raise AdminError(f"{refused}: it is in {config.path}, but the server has not loaded it ({NOT_LOADED_HINT})")
    raise refused


def _refused(status: int, body: Any) -> AdminError:
    why = body.get("error") if isinstance(body, dict) else None
    if why or body is not None:
        return AdminError(f"the server answered {status}: {why or body}")
    # Only a 5xx comes back without JSON (admin.call): an error Heartfly did not expect, said in its log.
    return AdminError(
        f"the server answered {status} without a reason (an internal error): its log says what failed"
        " (journalctl -u heartfly)"
    )


def _heartflys(config: Config, body: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """`body` if it has Heartfly's `fields`: another JSON API on the port must not read as done."""
    if isinstance(body, dict) and all(name in body for name in fields):
        return body
    raise AdminError(f"{local_url(config)} answered JSON without Heartfly's fields ({', '.join(fields)}):"
                     " is another program listening there?")  # fmt: skip


def pause(config: Config, name: str, until: str | None) -> str:
    path = f"/api/v1/checks/{quote(name, safe='')}/pause"
    if until is not None:  # `--until ""` (an unset variable in a script) is refused, not a pause for ever
        path += "?until=" + quote(until_param(until), safe="")
    body = _ask(config, path, ("name", "state"), in_file=name in config.checks)
    if body.get("applied") is False:  # a standby: its answer shows the check before the leader applies it
        ends = " and ends it as asked" if until is not None else ""
        return f"pause of {name} passed to the leader (this server stands by), which applies it within seconds{ends}"
    if body.get("state", "paused") != "paused":  # a ping ended it as it was given (resume_on_ping)
        return f"paused {name}, and a ping resumed it meanwhile (resume_on_ping): it is watched"
    check = config.checks.get(name)  # the file's; an older server does not say resume_on_ping
    on_ping = body.get("resume_on_ping", check is not None and check.resume_on_ping)
    by_ping = " or its next start, success or failure ping (resume_on_ping)" if on_ping else ""
    if body.get("paused_until"):
        from heartfly.core.localtime import api_time, zone

        end = api_time(body["paused_until"], zone(config.server.display_timezone))  # as `heartfly status` shows it
        return f"paused {name} until {end}{by_ping}; it is watched again then"
    return f"paused {name}: no deadlines and no alerts until `heartfly resume {name}`{by_ping} (pings are still stored)"


def resume(config: Config, name: str) -> str:
    path = f"/api/v1/checks/{quote(name, safe='')}/resume"
    body = _ask(config, path, ("name", "state"), in_file=name in config.checks)
    if body.get("applied") is False:  # a standby: its answer (was_paused too) shows its picture, maybe
        # a second old (a pause given a moment ago not in it yet), and the leader resumes it anyway
        if body.get("was_paused") is False:
            return (f"resume of {name} passed to the leader (this server stands by, and shows it {body['state']}):"
                    " the leader resumes it if it has it paused")  # fmt: skip
        return f"resume of {name} passed to the leader (this server stands by): watched again from then"
    if body.get("was_paused") is False:  # an older server does not say: take it as resumed
        raise AdminError(f"{name} is not paused (it is {body['state']}): nothing to resume")
    return f"resumed {name}: {body['state']}, watched again from now"


def reload(config: Config, watched: list[int] | None = None) -> str:
    """What a reload says; `watched` is given the number of checks the server watches now (the
    file's and those made through the API)."""
    if config.blank:  # truncated by accident: it names neither the server's address nor its token
        raise ReloadError([
            f"{config.path}: the file is empty or holds only comments, so it names no server to ask (nor its"
            " api_token_file); the running server was not asked (restart it to start on an empty file)"
        ])  # fmt: skip
    status, body = call(config, "POST", "/api/v1/reload")
    if status == 400 and isinstance(body, dict) and body.get("problems"):
        raise ReloadError([str(p) for p in body["problems"]])
    if status != 200:
        raise _refused(status, body)
    body = _heartflys(config, body, ("config", "checks"))
    text = f"reloaded {body['config']}: {body['checks']} checks"
    if watched is not None and isinstance(body["checks"], int):
        watched.append(body["checks"])
    for setting in body.get("restart_needed") or []:  # an older server does not say
        text += f"\nnote: {setting} changed; it takes effect only after a restart (systemctl restart heartfly)"
    return text


def served_checks(config: Config) -> list[dict[str, Any]]:
    """Every check as the running server serves it (GET /api/v1/checks), for `heartfly status`
    with a file that does not load; AdminError if it cannot be asked or refused."""
    status, body = call(config, "GET", "/api/v1/checks")
    if status != 200:
        raise _refused(status, body)
    if not isinstance(body, list) or not all(isinstance(i, dict) and {"name", "state"} <= i.keys() for i in body):
        raise AdminError(
            f"{local_url(config)} answered without Heartfly's list of checks: is another program listening there?"
        )
    return body


def test_alert(config: Config, channel: str) -> tuple[str, bool]:
    """The test alert's outcome with every delivery attempt, and whether it was sent."""
    from heartfly.cli.report import format_attempts  # report needs the database modules; pause does not
    from heartfly.core.localtime import zone

    if channel not in config.channels:
        known = ", ".join(config.channels) or "none"
        raise UnknownChannel(f'no channel "{channel}" in {config.path} (channels: {known})')
    # The server waits for the first attempt up to its time limit and 5 s more (web/api.test_channel):
    # a channel's own timeout may be longer than this command's 60 s.
    limit = config.channels[channel].timeout or config.alerts.timeout
    body = _ask(
        config,
        f"/api/v1/channels/{quote(channel, safe='')}/test",
        ("status", "attempt_log"),
        max(60.0, limit + 15),
        in_file=True,  # checked above
    )
    attempts = format_attempts(body["attempt_log"], tz=zone(config.server.display_timezone))
    text = f"test alert via {channel}: {body['status']}\n{attempts}"
    if body["status"] == "pending":  # no check's: history and the alerts API list a check's alerts only
        text += (
            f"\nits next attempts (for 5 minutes at most) are told in the server's log, as alert {body.get('key')}"
            " (journalctl -u heartfly)"
        )
    return text, body["status"] == "sent"
