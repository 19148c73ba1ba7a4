"""What a config file that does not read as TOML is told: where it stops being UTF-8, the line of
an integer too long for Python, the fix for a duration or size written without quotes, and a key
given twice; and what a file refused for a check kept in the database is told of it. Pure."""

from __future__ import annotations

import codecs
import re
import sys
from pathlib import Path

import tomli


def not_utf8(path: Path, raw: bytes, exc: UnicodeDecodeError) -> str:
    """Where the file stops being UTF-8: a "café" saved as Latin-1 is one byte in a file of thousands."""
    body = raw.removeprefix(codecs.BOM_UTF8)  # the decoder counts from after a byte order mark
    where = f"line {line_of(body, exc.start)}: byte 0x{body[exc.start]:02x}"
    return f"{path}: not UTF-8 text ({where}); save the file as UTF-8"


def long_integer(path: Path, raw: bytes) -> str:
    """An integer too long for Python to read (sys.get_int_max_str_digits), located where it can be."""
    limit = sys.get_int_max_str_digits()
    body = raw.removeprefix(codecs.BOM_UTF8)
    found = re.search(rb"[0-9_]{%d,}" % (limit + 1), body)
    where = "" if found is None else f" (line {line_of(body, found.start())})"
    return f"{path}: invalid TOML: an integer of more than {limit} digits{where}"


# A line `every = 15m` or `body_limit = 100KB`: a duration or size left unquoted, which TOML reads as
# a number followed by stray letters ("Expected newline or end of document after a statement").
_BARE_UNIT = re.compile(
    r"\s*([A-Za-z0-9_-]+)\s*=\s*((?:[0-9]+(?:\.[0-9]+)?\s*(?:ms|d|h|m|s))+|[0-9]+\s*(?i:b|kb|kib|mb|mib))\s*(?:#.*)?"
)  # a duration's units in small letters only, as parse_duration reads them ("15M" is no duration); a size's in either


def fix_for(exc: tomli.TOMLDecodeError) -> str:
    """What a TOML error is told besides tomli's words: a duration left unquoted, a key set twice."""
    return unquoted(exc) or twice(exc)


def unquoted(exc: tomli.TOMLDecodeError) -> str:
    """The fix for a TOML error on a line that holds a duration or size without its quotes, or ""."""
    lines = exc.doc.splitlines()
    if not 0 < exc.lineno <= len(lines) or (bare := _BARE_UNIT.fullmatch(lines[exc.lineno - 1])) is None:
        return ""
    return f': durations and sizes are strings, in quotes: {bare[1]} = "{bare[2]}"'


_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")
_TRIED = 4  # lines that read as the key's first setting, tried before saying nothing: each costs a parse


def twice(exc: tomli.TOMLDecodeError) -> str:
    """What a key set twice in one table is told ("Cannot overwrite a value": a key copied from
    heartfly.example.toml, which has it already), naming it and its first line, or ""."""
    lines = exc.doc.split("\n")  # as tomli counts them (splitlines breaks at U+2028 and U+0085 too)
    if not exc.msg.startswith("Cannot overwrite") or not 0 < exc.lineno <= len(lines):
        return ""
    if (key := _KEY.match(lines[exc.lineno - 1])) is None:
        return ""
    tried = 0
    for number in range(exc.lineno - 1, 0, -1):  # back to the table's header
        line = lines[number - 1]
        if line.lstrip().startswith("[") or tried == _TRIED:
            break
        if (first := _KEY.match(line)) is None or first[1] != key[1]:
            continue
        # Both lines must begin a statement, not lie in a multi-line string or array ("grace = 1"
        # in a description): the text before the first, and from it to the second, reads as TOML.
        tried += 1
        if _reads(lines[: number - 1]) and _reads(lines[number - 1 : exc.lineno - 1]):
            return f": {key[1]} is set twice in this table, on lines {number} and {exc.lineno}: keep one"
    return ""


def _reads(lines: list[str]) -> bool:
    try:
        tomli.loads("\n".join(lines))
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
        return False
    return True


def line_of(body: bytes, offset: int) -> int:
    """The line, from 1, of byte `offset` of the file's text (after a byte order mark)."""
    return body.count(b"\n", 0, offset) + 1


def stored_origin(name: str, origin: str) -> str:
    """What a refused reload adds to a problem of a check kept in the database: the operator looks
    for its [checks.NAME] table in the file, which has none."""
    made = "made through the API" if origin == "api" else "made by a ?create=1 ping"
    return f"{name} was {made}, not in the file: fix the file, or change or delete it through the API"
