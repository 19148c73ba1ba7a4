"""The log channel: an alert as one WARNING line in Heartfly's own log (the journal under systemd).

It works on any machine with nothing to set up, so the quick start and `heartfly init` use it.
Everything a ping sent is untrusted: the line is escaped so that no newline, escape sequence or
other control character from a ping body reaches the terminal or the journal, and a body can
never forge a second log line.
"""

from __future__ import annotations

import logging
import unicodedata

from heartfly.core.config_alerts import ChannelConfig
from heartfly.notify.message import Alert, subject

log = logging.getLogger("heartfly.alert")

# Control (Cc), format (Cf: bidi overrides, zero-width), line and paragraph separators (Zl, Zp),
# unassigned and surrogates: shown as escapes, never written as they are.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs", "Co"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str, keep: str = "") -> str:
    """`text` on one line, printable: control and invisible characters as backslash escapes
    (but those in `keep`, written as they are)."""
    out = []
    for char in text:
        if char in keep:
            out.append(char)
        elif char in _SHORT:
            out.append(_SHORT[char])
        elif unicodedata.category(char) in _UNSAFE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def escape_lines(text: str) -> str:
    """`text` with its lines, tabs and backslashes as they are, and every other control or invisible
    character (an escape sequence, a bell, a lone carriage return, a bidi override) as escape()
    writes it: a plain text that a person may read in a terminal (an email's text part)."""
    return escape(text.replace("\r\n", "\n"), keep="\n\t\\")


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
