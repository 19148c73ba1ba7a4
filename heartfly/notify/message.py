"""What an alert says, rendered for each medium. Pure: every fact comes from the outbox payload."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from heartfly.core import localtime
from heartfly.core.printable import escape_lines
from heartfly.core.statetypes import AlertEvent
from heartfly.core.units import human_duration
from heartfly.core.views import iso

SCHEMA_VERSION = 1
TAIL = 500  # characters of the last ping's message quoted in an alert
# Bytes from which ntfy takes a body for a file attachment (message-size-limit), which it refuses
# (400, "attachments not allowed") where attachments are off, as they are by default.
NTFY_LIMIT = 4096

_REASONS = {
    "missed": "did not run: no ping arrived by its deadline",
    "failed": "failed",
    "overrun": "ran too long: still running past its max_runtime",
    "too_fast": "finished too fast: sooner than its min_runtime",
    "stalled": "stalled: no progress during its run",
    "assertion": "succeeded but broke an assertion",
    "incomplete": "is incomplete: too few workers reported",
    "step_missed": "did not follow its upstream step in time",
}


@dataclass(frozen=True, slots=True)
class Alert:
    key: str  # idempotency key: the same for every attempt of this message
    # An AlertEvent's value. Declared str: it comes back from the outbox (as Flip.event gave it) as a
    # plain string, and an unknown one still renders (as a down alert) rather than failing to send.
    event: str
    payload: dict[str, Any]
    last_ping: dict[str, Any] | None
    link: str
    zone: str = "UTC"  # [server] display_timezone: the texts' times are in it, with its name

    @property
    def check(self) -> str:
        return str(self.payload.get("check", ""))

    @property
    def resumed(self) -> bool:
        """A recovery told at the resume of a check paused while down: its job is not seen up again
        (a resume makes a check `up` whose job has not run since it failed), it is watched again."""
        return self.event == AlertEvent.RECOVERY and self.payload.get("previous_state") == "paused"

    def headline(self) -> str:
        p = self.payload
        if self.event == AlertEvent.TEST:
            return f"Heartfly test alert for channel {p.get('channel', '')}: delivery works"
        if self.event == AlertEvent.MAINTENANCE:
            down = p.get("down") or []
            names = ", ".join(str(d.get("check")) for d in down[:5]) + (" and more" if len(down) > 5 else "")
            return f"Maintenance {p.get('window')} ended: {len(down)} check(s) still down ({names})"
        if self.resumed:
            return f"{self.check} is watched again: resumed while down"
        if self.event == AlertEvent.RECOVERY:
            return f"{self.check} is back {p.get('state', 'up')}"
        if self.event == AlertEvent.TROUBLE:
            return f"Heartfly cannot do its job: {p.get('problem')}"
        if self.event == AlertEvent.TROUBLE_OVER:
            return f"Heartfly works again after {human_duration(float(p.get('lasted') or 0))}"
        words = _REASONS.get(str(p.get("reason")), "is down")
        if p.get("reason") == "missed" and p.get("running_since") is not None:
            words = "started but did not finish by its deadline"
        if p.get("reason") == "failed" and p.get("exit_status") not in (None, 0):
            words = f"failed with exit status {p['exit_status']}"
        prefix = "Still down: " if self.event == AlertEvent.REMINDER else ""
        return f"{prefix}{self.check} {words}"

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) lines, in the order a person reads them."""
        p = self.payload
        if self.event == AlertEvent.TEST:
            return [("Sent", self._when(p.get("at"))), ("Channel", str(p.get("channel", "")))]
        if self.event == AlertEvent.MAINTENANCE:
            lines = [
                ("Window", f"{p.get('window')}, {self._when(p.get('started_at'))} to {self._when(p.get('ended_at'))}")
            ]
            for d in p.get("down") or []:
                reason = f" ({d['reason']})" if d.get("reason") else ""
                lines.append((str(d.get("check")), f"down{reason} since {self._when(d.get('since'))}"))
            lines.append(("Link", self.link))
            return lines
        if self.event in (AlertEvent.TROUBLE, AlertEvent.TROUBLE_OVER):
            return self._trouble_facts()
        lines = [("Check", self.check)]
        if p.get("pipeline"):
            lines.append(("Pipeline", " → ".join(p["pipeline"]) + f" (this step: {p.get('step')})"))
        if p.get("description"):
            lines.append(("Description", str(p["description"])))
        lines.append(("Schedule", str(p.get("schedule", ""))))
        learned = p.get("learned_at")
        if self.event == AlertEvent.RECOVERY:
            lines.append(("Resumed at" if self.resumed else "Recovered at", self._when(p.get("at"))))
            if p.get("detail"):
                lines.append(("What happened", str(p["detail"])))
            if p.get("down_for") is not None:
                lines.append(("Was down for", human_duration(float(p["down_for"]))))
        else:
            lines.append(("State", f"{p.get('state')} ({p.get('reason')})" if p.get("reason") else str(p.get("state"))))
            if p.get("detail"):
                lines.append(("What happened", str(p["detail"])))
            if p.get("running_since") is not None:
                lines.append(("Running since", self._when(p.get("running_since"))))
            lines.append(("Happened at" if learned is not None else "Noticed at", self._when(p.get("at"))))
        if learned is not None:  # a late ping's news: when it happened above, when it was learned here
            lines.append(("Reported late, at", self._when(learned)))
        if self.event != AlertEvent.RECOVERY:
            if p.get("due_at") is not None:
                lines.append(("Was due", self._when(p.get("due_at"))))
            if p.get("down_since") is not None and self.event == AlertEvent.REMINDER:
                lines.append(("Down since", self._when(p.get("down_since"))))
        if p.get("duration") is not None:
            lines.append(("Run duration", human_duration(float(p["duration"]))))
        ping = self.last_ping
        if ping is None:
            lines.append(("Last ping", "none yet" if p.get("last_ping_id") is None else "no longer stored"))
        else:
            source = f" from {ping['source']}" if ping.get("source") else ""
            lines.append(("Last ping", f"{ping['kind']} at {self._when(ping['at'])}{source}"))
        lines.append(("Link", self.link))
        return lines

    def _trouble_facts(self) -> list[tuple[str, str]]:
        p = self.payload
        lines = [("Problem", str(p.get("problem"))), ("Since", self._when(p.get("since")))]
        if self.event == AlertEvent.TROUBLE:
            lines.append(("Meanwhile", str(p.get("meanwhile"))))  # what the problem means (server.selfwatch)
        else:
            lines += [("Over at", self._when(p.get("ended_at"))), ("Next", str(p.get("next")))]
        return [*lines, ("Server", self.link)]

    def _when(self, ts: Any) -> str:
        return _when(ts, self.zone)

    def message_tail(self) -> str:
        body = str((self.last_ping or {}).get("body") or "")
        return body if len(body) <= TAIL else "…" + body[-TAIL:]


# Keyed by str, not AlertEvent: Alert.event is a plain string (a member hashes as its value). A
# maintenance summary is the down alert of the checks it lists (the only one they get): told as one.
_TAGS: dict[str, str] = {
    AlertEvent.DOWN: "DOWN",
    AlertEvent.RECOVERY: "UP",
    AlertEvent.REMINDER: "DOWN",
    AlertEvent.TEST: "TEST",
    AlertEvent.MAINTENANCE: "DOWN",
    AlertEvent.TROUBLE: "HEARTFLY DOWN",
    AlertEvent.TROUBLE_OVER: "HEARTFLY UP",
}
_PRIORITIES: dict[str, str] = {
    AlertEvent.DOWN: "high",
    AlertEvent.REMINDER: "high",
    AlertEvent.RECOVERY: "default",
    AlertEvent.TEST: "low",
    AlertEvent.MAINTENANCE: "high",
    AlertEvent.TROUBLE: "high",
}
_NTFY_TAGS: dict[str, str] = {
    AlertEvent.DOWN: "rotating_light",
    AlertEvent.REMINDER: "rotating_light",
    AlertEvent.RECOVERY: "white_check_mark",
    AlertEvent.MAINTENANCE: "rotating_light",
    AlertEvent.TROUBLE: "rotating_light",
    AlertEvent.TROUBLE_OVER: "white_check_mark",
}


def subject(alert: Alert) -> str:
    tag = _TAGS.get(alert.event, alert.event)
    return f"[{tag}] {alert.headline()}"


# Facts whose words may come from a ping: an incomplete fan-in's missing workers, named by their pings.
_PINGED_FACTS = frozenset({"What happened"})


def text(alert: Alert, quote: Callable[[str], str] = str, inline: Callable[[str], str] = str) -> str:
    """The alert as plain text; `quote` renders the last ping's message, and `inline` the facts a
    ping may have worded (_PINGED_FACTS), for a chat tool's markup."""
    lines = [alert.headline(), ""]
    lines += [f"{label}: {inline(value) if label in _PINGED_FACTS else value}" for label, value in alert.facts()]
    tail = alert.message_tail()
    if tail:
        lines += ["", "Last ping's message (tail):", quote(tail)]
    return "\n".join(lines) + "\n"


def html_body(alert: Alert) -> str:
    """Everything from a ping is escaped: a message is data, never markup."""
    e = html.escape
    # The link is the button below; a maintenance summary's facts are labelled by check names, one
    # of which may be "Link" too: only the fact that is the link is left out.
    facts = [(k, v) for k, v in alert.facts() if (k, v) != ("Link", alert.link)]
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    tail = alert.message_tail()
    quoted = f"<p>Last ping's message (tail):</p><pre>{e(tail)}</pre>" if tail else ""
    return (
        f"<html><body><h2>{e(alert.headline())}</h2><table>{rows}</table>{quoted}"
        f"<p><a href='{e(alert.link, quote=True)}'>Open {e(alert.check or 'Heartfly')}</a></p></body></html>"
    )


def webhook_json(alert: Alert) -> dict[str, Any]:
    """The documented webhook body (docs/alerts.md), version 1."""
    p = alert.payload
    ping = alert.last_ping
    return {
        "version": SCHEMA_VERSION,
        "id": alert.key,
        "event": alert.event,
        "summary": alert.headline(),
        "check": {"name": alert.check, "description": p.get("description", ""), "url": alert.link},
        "state": p.get("state"),
        "previous_state": p.get("previous_state"),
        "reason": p.get("reason"),
        "detail": p.get("detail"),
        "at": iso(p.get("at")),
        "learned_at": iso(p.get("learned_at")),
        "due_at": iso(p.get("due_at")),
        "down_since": iso(p.get("down_since")),
        "down_for_seconds": p.get("down_for"),
        "run_duration_seconds": p.get("duration"),
        "exit_status": p.get("exit_status"),
        "pipeline": p.get("pipeline"),
        "step": p.get("step"),
        "maintenance": None
        if alert.event != AlertEvent.MAINTENANCE
        else {
            "window": p.get("window"),
            "started_at": iso(p.get("started_at")),
            "ended_at": iso(p.get("ended_at")),
            "still_down": [
                {"check": d.get("check"), "reason": d.get("reason"), "since": iso(d.get("since"))}
                for d in p.get("down") or []
            ],
        },
        "trouble": None
        if alert.event not in (AlertEvent.TROUBLE, AlertEvent.TROUBLE_OVER)
        else {"problem": p.get("problem"), "since": iso(p.get("since")), "ended_at": iso(p.get("ended_at"))},
        "last_ping": None
        if ping is None
        else {
            "at": iso(ping["at"]),
            "kind": ping["kind"],
            "source": ping.get("source"),
            "exit_status": ping.get("exit_status"),
            "run_id": ping.get("run_id"),
            "message_tail": alert.message_tail(),
        },
    }


# Mattermost notifies a whole channel for a bare @here, @channel or @all in a webhook's text.
BROADCAST = re.compile(r"(?<!\w)@(here|channel|everyone|all)\b", re.IGNORECASE)


# Mattermost and Rocket.Chat render markdown in a Slack-style webhook's text: a "]" that "(", "["
# or ":" follows, in a ping's message, would make a link, an image or a link's definition.
_LINK = re.compile(r"\](?=[(\[:])")


def _unlinked(message: str) -> str:
    """A ping's message with a zero-width space after each such "]" (Slack shows it unchanged)."""
    return _LINK.sub("]\u200b", message)


def slack_json(alert: Alert) -> dict[str, Any]:
    # Slack and Mattermost read "text"; mrkdwn needs &, < and > escaped (so no <!here> either),
    # and a zero-width space after the @ keeps a ping's message from paging a whole channel.
    body = text(alert, _unlinked, _unlinked).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"text": BROADCAST.sub("@\u200b\\1", body)}


FENCE = "```"
DISCORD_MAX = 1990  # characters of content (Discord takes 2000)
_BACKTICKS = re.compile(r"`(?=``)")  # a backtick that two more follow


def fenced(message: str) -> str:
    """A ping's message as a code block, in which Discord renders no markdown: no masked link
    ("[the dashboard](https://elsewhere)"), heading or mention. A run of backticks in it is broken
    by zero-width spaces, so it cannot close the block."""
    broken = _BACKTICKS.sub("`\u200b", message)
    return f"{FENCE}\n{broken}\n{FENCE}"


def discord_json(alert: Alert) -> dict[str, Any]:
    body = text(alert, fenced, _unlinked)  # a masked link is Discord's too
    if len(body) > DISCORD_MAX:
        body = body[:DISCORD_MAX]
        if body.count(FENCE) % 2:  # the cut left the message's block open: closed, within the limit
            body = body[: DISCORD_MAX - len(FENCE) - 1]
            body += f"\n{FENCE}" if body.count(FENCE) % 2 else ""
    return {"content": body, "allowed_mentions": {"parse": []}}


def ntfy_request(alert: Alert) -> tuple[bytes, dict[str, str]]:
    priority = _PRIORITIES.get(alert.event, "default")
    tags = _NTFY_TAGS.get(alert.event, "")
    headers = {"Title": _header(subject(alert)), "Priority": priority, "Click": alert.link}
    if tags:
        headers["Tags"] = tags
    # `ntfy subscribe` prints it in a terminal: a ping's escape sequences are shown, not obeyed
    return _cut(escape_lines(text(alert)), NTFY_LIMIT - 1), headers


def _cut(body: str, most: int) -> bytes:
    """`body` in UTF-8, in at most `most` bytes: cut at a character, ending in "…" when cut."""
    data = body.encode("utf-8")
    if len(data) <= most:
        return data
    mark = "…\n".encode()
    return data[: most - len(mark)].decode("utf-8", "ignore").encode("utf-8") + mark


def _header(value: str) -> str:
    return value.encode("ascii", "replace").decode("ascii")[:250]


def _when(ts: Any, zone: str = "UTC") -> str:
    """An alert text's time: ISO 8601 in UTC ("2026-11-23T06:20:01Z"), else the zone's own
    ("2026-11-23 07:20:01 CET")."""
    if ts is None:
        return "-"
    if zone == "UTC":
        return iso(float(ts)) or "-"
    return localtime.full(float(ts), localtime.zone(zone))
