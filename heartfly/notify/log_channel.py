"""The log channel: an alert as one WARNING line in Heartfly's own log (the journal under systemd).

It works on any machine with nothing to set up, so the quick start and `heartfly init` use it.
Everything a ping sent is untrusted: the line is escaped so that no newline, escape sequence or
other control character from a ping body reaches the terminal or the journal, and a body can
never forge a second log line.
"""

from __future__ import annotations

import logging

from heartfly.core.config_alerts import ChannelConfig
from heartfly.core.printable import escape
from heartfly.notify.message import Alert, subject

log = logging.getLogger("heartfly.alert")


def line(alert: Alert) -> str:
    """The alert's subject and facts, then the last ping's message tail, as one escaped line."""
    parts = [subject(alert)]
    parts += [f"{label}: {value}" for label, value in alert.facts()]
    tail = alert.message_tail()
    if tail:
        parts.append(f'Last ping\'s message (tail): "{tail}"')
    return escape(" | ".join(parts))


async def send(channel: ChannelConfig, alert: Alert) -> None:
    log.warning("%s", line(alert))
