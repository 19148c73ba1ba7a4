"""Text from outside (a ping's body, a server's reason) made safe to print in a terminal: control
and invisible characters as backslash escapes, never obeyed. The server's log, alerts and CLI use
it, and the job side too (a server's reason on the job's stderr): it imports nothing at its import.
"""

from __future__ import annotations

# Control (Cc), format (Cf: bidi overrides, zero-width), line and paragraph separators (Zl, Zp),
# unassigned and surrogates: shown as escapes, never written as they are.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs", "Co"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Invisible, yet text that a terminal shows as such and never obeys: the joiners of emoji sequences
# (a woman, U+200D, a laptop) and of scripts that need them (Persian, Indic), the tag characters of
# a subdivision's flag (England's), and code points this Python's Unicode tables do not know yet (an
# emoji newer than them). Kept by escape's `as_text`: a person reads it as the job or config wrote it.
_TEXT = frozenset({"Cn"})
_JOINERS = frozenset("\u200c\u200d")


def _is_text(char: str, category: str) -> bool:
    return category in _TEXT or char in _JOINERS or "\U000e0020" <= char <= "\U000e007f"


def escaped(code: int) -> str:
    """A character as a backslash escape, in full (\\U0001fae8, never \\u1fae8: U+1FAE, then an 8)."""
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str, keep: str = "", *, as_text: bool = False) -> str:
    """`text` on one line, printable: control and invisible characters as backslash escapes
    (but those in `keep`, written as they are, and with `as_text` those _is_text keeps)."""
    import unicodedata  # here, not at the import: the job side imports this module on every run

    out = []
    for char in text:
        if char in keep:
            out.append(char)
        elif char in _SHORT:
            out.append(_SHORT[char])
        elif (category := unicodedata.category(char)) in _UNSAFE and not (as_text and _is_text(char, category)):
            out.append(escaped(ord(char)))
        else:
            out.append(char)
    return "".join(out)


def escape_lines(text: str) -> str:
    """`text` with its lines, tabs and backslashes as they are, and every other control or invisible
    character (an escape sequence, a bell, a lone carriage return, a bidi override) as escape()
    writes it: a plain text that a person may read in a terminal (an email's text part, an ntfy message)."""
    return escape(text.replace("\r\n", "\n"), keep="\n\t\\", as_text=True)
