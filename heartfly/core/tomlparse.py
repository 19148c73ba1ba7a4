"""The config file's TOML, read as tomli reads it, by rtoml where that is known to be the same.

tomli (compiled) reads some 5 MB a second: 1.2-1.6 s of a start with 100k checks. rtoml (Rust)
reads the same file in a quarter of that, but it does not read every document as tomli does: it
accepts a few that tomli refuses (a stray carriage return before a line break, a line break
inside an inline table, a second byte order mark), keeps a CRLF inside a multi-line string where
tomli gives LF, and puts a table that was made by a header inside it ([a.b]) and defined later
([a]) where it is defined, not where it was made (so `[channels]` could come out in another
order). So rtoml reads only documents of the kind where it is the same: no inline table, no
carriage return but in a CRLF (made LF first), no second byte order mark, every line that opens
with "[" a plain table header, and no table defined after a table inside it. A config of checks
is nearly always of that kind. Any other document, and any rtoml refuses, tomli reads: every
error is tomli's, as the config check has always worded it. One difference is left, harmless: a
date-time with an offset carries rtoml's tzinfo class, not datetime.timezone (equal, the same
instant). tests/test_toml_parse.py holds the two to the same results; a differential fuzz
(1.3M documents mutated from the toml-test suite, against tomli) found no other difference.
"""

from __future__ import annotations

import re
from typing import Any

import rtoml
import tomli

# The headers of the checks' tables, nearly all of a large file's: [checks.NAME], maybe a comment.
_CHECK = r"checks\.[A-Za-z0-9_-]+\][ \t]*(?:#[^\n]*)?(?:\n|$)"
# Every other line that opens with "[" (after a line break: the text is given one first).
_OTHER_OPENING = re.compile(r"\n\[(?!" + _CHECK + r")([^\n]*)")
# What such a line must be: a header of bare keys without spaces ([a.b] or [[a.b]]), maybe a comment.
_HEADER = re.compile(r"(\[?)([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\]\1[ \t]*(?:#.*)?")
_INDENTED = re.compile(r"\n[ \t]+\[")


def loads(raw: bytes) -> dict[str, Any]:
    """The document in `raw` (UTF-8, maybe with a byte order mark). Raises what tomli raises
    (UnicodeDecodeError before it, tomli.TOMLDecodeError, RecursionError)."""
    text = raw.decode("utf-8-sig")  # -sig: a byte order mark some editors write
    lf = text
    if "\r" in text and text.count("\r") == text.count("\r\n"):
        lf = text.replace("\r\n", "\n")  # a carriage return only in CRLFs: the same document
    if read_alike(lf):
        try:
            data: dict[str, Any] = rtoml.loads(lf)
        except ValueError:  # rtoml.TomlParsingError: tomli words it, or reads what rtoml's limits refuse
            pass  # (tables nested past 80 levels, a float like 1e400)
        else:
            return data
    return tomli.loads(text)


def read_alike(text: str) -> bool:
    """Whether `text` is of the kind rtoml reads as tomli does (the module's note)."""
    if "\r" in text or "{" in text or text.startswith("\ufeff"):
        return False
    lines = "\n" + text
    if _INDENTED.search(lines):
        return False  # an indented header, or an array's line: not told apart here
    first_check = lines.find("\n[checks.")
    inside: set[str] = set()  # the tables that headers so far have made by naming a table inside them
    for line in _OTHER_OPENING.finditer(lines):
        header = _HEADER.fullmatch(line[1])
        if header is None:
            return False  # not a plain header: an array's line, a quoted key
        name = header[2]
        if name in inside or name.startswith("checks.") or (name == "checks" and -1 < first_check < line.start()):
            return False  # defined after a table inside it (a check's own table has none)
        while (dot := name.rfind(".")) > 0:
            name = name[:dot]
            if name in inside:
                break  # and so are the tables around it
            inside.add(name)
    return True
