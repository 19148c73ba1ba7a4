"""Checks kept in the database (made through the Management API or by auto-provisioning), and
every check's uuid.

A stored check is the same table of keys a `[checks.NAME]` table in the file takes, kept as JSON
in the meta table under `check:NAME` (so every node of a cluster reads the same ones), and read
by config.with_stored_checks as the file's are (but for the bound a grace puts on a run: as_read).
The operator's file is never written.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from heartfly.core.checkconfig import CheckConfig, Origin, key_uuid
from heartfly.core.pingparse import storable
from heartfly.core.units import parse_duration

META_PREFIX = "check:"
_NAMESPACE = uuid.UUID("5b0d3b8e-4a8f-4d6e-9a51-1f2e0c6a7d30")  # Heartfly's, for uuid5 of a name


@dataclass(frozen=True, slots=True)
class StoredCheck:
    name: str
    origin: Origin  # "api" or "auto"
    table: Mapping[str, Any]  # the keys of a [checks.NAME] table
    created_at: float
    title: str = ""  # Healthchecks' free-text `name`, when it is not the check's name

    def encode(self) -> str:
        data = {"origin": self.origin, "created_at": self.created_at, "check": self.table, "title": self.title}
        return json.dumps(data, sort_keys=True)


def decode(name: str, text: str) -> StoredCheck:
    """A stored check from its meta row; ValueError if the row is not one (written by a newer version?)."""
    data = json.loads(text)
    if (
        not isinstance(data, dict)
        or data.get("origin") not in ("api", "auto")
        or not isinstance(data.get("check"), dict)
    ):
        raise ValueError(f"meta row {META_PREFIX}{name} is not a stored check")
    origin = cast(Origin, data["origin"])
    # Lone surrogates out of text a version before the API's replaced them kept (a "\ud800" in a
    # desc): every page that showed it failed.
    table = _storable(data["check"])
    return StoredCheck(name, origin, table, float(data.get("created_at", 0.0)), storable(str(data.get("title", ""))))


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def decode_all(rows: Mapping[str, str]) -> tuple[dict[str, StoredCheck], list[str]]:
    """The meta table's `check:` rows as stored checks, and a problem for each that is not one."""
    found: dict[str, StoredCheck] = {}
    problems: list[str] = []
    for key, text in rows.items():
        name = key[len(META_PREFIX) :]
        try:
            found[name] = decode(name, text)
        except (ValueError, TypeError) as exc:
            problems.append(str(exc))
    return found, problems


def check_uuid(check: CheckConfig) -> str:
    """The check's uuid, as Healthchecks' API names checks. A key that is a UUID is the uuid (as in
    Healthchecks, where the ping URL ends in it, and so a check copied from there keeps its uuid);
    otherwise one derived from the name, the same on every node and after every restart."""
    return _uuid(check.name, check.key)


def table_uuid(name: str, table: Mapping[str, Any]) -> str:
    """check_uuid of a stored check from its table, whether or not it validates."""
    return _uuid(name, str(table.get("key", "")))


def _uuid(name: str, key: str) -> str:
    return key_uuid(key) or str(uuid.uuid5(_NAMESPACE, name))


def new_key() -> str:
    """A stored check's ping key: a random UUID, which is also its uuid."""
    return str(uuid.uuid4())


def to_toml(name: str, table: Mapping[str, Any], title: str = "") -> str:
    """A stored check as a `[checks.NAME]` table to paste into the operator's file."""
    lines = [f"# made through the API as {_toml_string(title)}"] if title and title != name else []
    lines.append(f"[checks.{_toml_key(name)}]")
    for key in sorted(table, key=lambda k: (k != "key", k)):  # the key first, as the example file has it
        lines.append(f"{key} = {_toml_value(table[key])}")
    return "\n".join(lines) + "\n"


def _toml_key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() and name.isascii() else _toml_string(name)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(str(value))


# Control and invisible characters (DEL, C1, bidi overrides, line separators...): TOML forbids DEL
# raw, and the others would reach the operator's terminal as they are. Written as TOML's escapes.
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn"})


def _toml_string(text: str) -> str:
    """`text` as a TOML basic string: a JSON string, which escapes `"`, `\\` and C0 the way TOML
    does, with what JSON leaves raw and a terminal would act on escaped too."""
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(_toml_escape(c) if unicodedata.category(c) in _ESCAPED else c for c in quoted)


def _toml_escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _identity(check: StoredCheck) -> tuple[float, Any]:
    """One check, maybe changed or renamed, has one: the instant it was made, and its key."""
    return check.created_at, check.table.get("key")


def changes(before: Mapping[str, StoredCheck], after: Mapping[str, StoredCheck]) -> tuple[dict[str, str], set[str]]:
    """What went from `before` to `after`, for the engine, which knows checks by name: the renamed
    ({new name: old name}), and the names of checks made (or deleted and made again under one
    name), which start afresh: the history another check left under the name is not theirs. A
    deleted check's history stays with its name, for the file to take over (`heartfly export`)."""
    gone = {n for n, c in before.items() if n not in after or _identity(c) != _identity(after[n])}
    was_named = {_identity(before[n]): n for n in gone}
    renamed: dict[str, str] = {}
    fresh: set[str] = set()
    for name, check in after.items():
        if name in before and name not in gone:
            continue
        old = was_named.get(_identity(check))
        if old is not None:
            renamed[name] = old
        else:
            fresh.add(name)
    return renamed, fresh


# ---- a check made the way Healthchecks makes one: its grace bounds a run ----------------------


def bound_runs(table: dict[str, Any], inherited: Mapping[str, Any]) -> dict[str, Any]:
    """`table` with Healthchecks' rule on a started run: down once it is older than the grace
    (get_status: last_start + grace), not at the next due time plus grace (a nightly job's: a day
    later); its grace is its max_runtime where bounds_a_run allows."""
    if "grace" in table:
        if bounds_a_run(parse_duration(table["grace"]), inherited):
            table["max_runtime"] = table["grace"]
        else:
            table.pop("max_runtime", None)
    return table


def bounds_a_run(grace: float, inherited: Mapping[str, Any]) -> bool:
    """Whether a grace can be a run's max_runtime: above 0s, and above the min_runtime [defaults]
    may give every check (else the check is made without the bound, not refused for a min_runtime
    its request never gave). Not where [defaults] gives a max_runtime: the operator's bound on
    every run stays this check's too (a [defaults] grace of minutes would otherwise take down the
    runs it allows hours)."""
    floor = inherited.get("min_runtime")
    return "max_runtime" not in inherited and grace > 0 and (floor is None or grace > floor)


def as_read(table: Any, inherited: Mapping[str, Any]) -> Any:
    """A stored table as the config reads it: the max_runtime bound_runs gave it (its grace) stands
    while bounds_a_run allows it under [defaults] as they are now. A [defaults] max_runtime, or a
    min_runtime no shorter than the grace, set after the check was made lifts it, as it would have
    kept it from being set: it does not refuse the reload, nor leave the check out at a start."""
    if not isinstance(table, Mapping) or "max_runtime" not in table or "grace" not in table:
        return table
    try:
        grace = parse_duration(str(table["grace"]))
    except ValueError:
        return table  # the reader says what is wrong with it
    return table if bounds_a_run(grace, inherited) else {k: v for k, v in table.items() if k != "max_runtime"}
