"""Reading a parsed TOML document: every problem is collected with its key path."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from heartfly.core.config_secrets import SecretFile
from heartfly.core.proxies import Networks, parse_networks
from heartfly.core.units import UnitError, parse_duration

T = TypeVar("T")


class ConfigError(Exception):
    """A file that cannot be used; `problems` holds one "key.path: what is wrong" line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Reader:
    """Collects problems instead of stopping at the first, so one run reports them all."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[str] = []
        self.secrets: list[SecretFile] = []  # named here, read after the parse (config_secrets)

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def known(self, table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                self.fail(join(where, key), f"unknown key{did_you_mean(key, allowed)}")

    def table(self, parent: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.fail(join(where, key), f"expected a table, got {kind_of(value)}")
            return {}
        return value

    def value(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        kind: type[T],
        convert: Callable[[T], Any] | None = None,
    ) -> Any:
        """`table[key]` checked to be of `kind` and converted; None (and a problem) when it is not."""
        if key not in table:
            return None
        raw = table[key]
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            self.fail(
                join(where, key), f"expected {_name(kind)}, got {kind_of(raw)}{_as_seconds(key, raw, kind, convert)}"
            )
            return None
        if convert is None:
            return raw
        try:
            return convert(raw)
        except (UnitError, ValueError) as exc:
            self.fail(join(where, key), str(exc))
            return None

    def strings(self, table: Mapping[str, Any], where: str, key: str) -> tuple[str, ...] | None:
        """An array of strings."""
        items = self.value(table, where, key, list)
        if items is None:
            return None
        if not all(isinstance(i, str) and i for i in items):
            self.fail(join(where, key), "expected an array of non-empty strings")
            return None
        return tuple(items)

    def networks(self, table: Mapping[str, Any], where: str, key: str) -> Networks | None:
        """An array of IP addresses or networks."""
        items = self.strings(table, where, key)
        if items is None:
            return None
        try:
            return parse_networks(items)
        except ValueError as exc:
            self.fail(join(where, key), str(exc))
            return None

    def secret(self, where: str, path: Path | None) -> Path | None:
        """Note a secret file for the loader's second step; its problems are listed here, in order."""
        if path is not None:
            self.secrets.append(SecretFile(where, path, len(self.problems)))
        return path

    def path(self, text: str) -> Path:
        """A path from the file, relative to the file's folder."""
        if not text:
            raise ValueError("must not be empty")
        try:
            return (self.base_dir / Path(text).expanduser()).resolve()
        except (RuntimeError, OSError) as exc:  # "~nosuchuser", a symlink loop
            raise ValueError(f'cannot use "{text}": {exc}') from None


def _as_seconds(key: str, raw: Any, kind: type, convert: Callable[[Any], Any] | None) -> str:
    """The fix for a duration written as a bare number (`every = 60`), when the key's reader is a
    duration's (it takes the number as seconds in quotes and refuses a word: a path's takes both); else ""."""
    if kind is not str or convert is None or type(raw) not in (int, float):
        return ""
    if not _takes(convert, f"{raw}s") or _takes(convert, "x"):
        return ""
    return f': a duration is a string with its unit, like {key} = "{raw}s"'


def _takes(convert: Callable[[Any], Any], text: str) -> bool:
    try:
        convert(text)
    except (UnitError, ValueError):
        return False
    return True


# Healthchecks' names (its API, `heartfly export`'s source) for what a check here calls otherwise
# (docs/healthchecks.md).
ELSEWHERE = {"timeout": "every", "tz": "timezone", "schedule": "cron", "desc": "description"}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the known name closest to a misspelt one, or "" when none is close.
    Shared by the config file and the JSON heartbeat, so both word a typo alike. A name as
    Healthchecks' API spells a check's setting (`tz`), or in other capitals (`[SMTP]`), names ours."""
    known = sorted(known)
    lower = word.lower()
    if lower in known:
        hint = [lower]
    elif lower in ELSEWHERE:  # ours, or none where the table has no such key: not the closest spelling
        hint = [ELSEWHERE[lower]] if ELSEWHERE[lower] in known else []  # ("timeout" is no "timezone")
    else:
        hint = difflib.get_close_matches(word, known, n=1)
    return f' (did you mean "{hint[0]}"?)' if hint else ""


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def kind_of(value: Any) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        dict: "a table",
        list: "an array",
    }
    return names.get(type(value), type(value).__name__)


def _name(kind: type) -> str:
    return {"str": "a string", "int": "an integer", "bool": "true/false", "list": "an array", "dict": "a table"}.get(
        kind.__name__, kind.__name__
    )


def positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be positive")
    return value


def positive_at_most(limit: int, what: str) -> Callable[[int], int]:
    """A count's reader that refuses one past `limit` (what it counts, in the words): a count the
    store puts in a statement (a LIMIT, an OFFSET) must fit its 64-bit integers."""

    def read(value: int) -> int:
        if positive(value) > limit:
            raise ValueError(f"must be at most {limit} ({what})")
        return value

    return read


def positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def at_least(minimum: float, shown: str) -> Callable[[str], float]:
    """A duration's reader that refuses one shorter than `minimum` (a deadline or reminder that
    close would busy the timer or flood a channel)."""

    def read(text: str) -> float:
        seconds = parse_duration(text)
        if seconds < minimum:
            raise ValueError(f"must be at least {shown}")
        return seconds

    return read


def grace_duration(text: str) -> float:
    seconds = parse_duration(text)
    if 0 < seconds < 1:
        raise ValueError("must be 0s (no late state) or at least 1s")
    return seconds
