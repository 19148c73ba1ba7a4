"""The checks validated from a large config file, kept beside its parse (toml_cache) between starts.

Validating 100,000 checks costs about a second of every start, though a restart nearly always
validates the very file it validated the last time. The checks it made are kept with marshal, as
plain tuples, and made CheckConfigs again in a third of the time. They are used only for the same
bytes of the file, validated by the same code (_made_by: every module of heartfly.core, croniter
and dateutil, by their source) and the same Python; only if every time zone they name is still in
the time zone database; and only if they are exactly the document's [checks], in its order.
Otherwise the file's checks are validated afresh, and their problems worded as ever. The rules of
trust are the parse's.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from heartfly.core import toml_cache
from heartfly.core.assertions import Assertion
from heartfly.core.checkconfig import CheckConfig
from heartfly.core.config_values import parse_zone

_ASSERTIONS = CheckConfig._fields.index("assertions")


def read(cache_dir: Path, path: Path, raw: bytes, file: os.stat_result, table: object) -> dict[str, CheckConfig] | None:
    """The checks kept for the config file at `path` holding `raw` (its os.fstat: `file`), or None.
    `table`: the document's [checks], whose names they must be, in its order (what keep() writes)."""
    made_by = _made_by()
    if made_by is None or len(raw) < toml_cache.CACHED_FROM:
        return None
    kept = toml_cache.read_beside(cache_dir, path, raw, made_by, file.st_uid)
    if not isinstance(kept, dict):
        return None
    checks: dict[str, CheckConfig] = {}
    new, size = tuple.__new__, len(CheckConfig._fields)
    try:
        for name, fields in kept.items():  # one loop, no call but tuple's own: 100k checks
            if type(fields) is not tuple or len(fields) != size:
                return None  # not what keep() writes
            if fields[_ASSERTIONS]:
                fields = _with_assertions(fields)
            checks[name] = new(CheckConfig, fields)
        for zone in {check.timezone for check in checks.values()}:
            parse_zone(zone)  # raises for a zone the database no longer has: its checks are worded afresh
    except (TypeError, ValueError):
        return None
    if list(checks) != (list(table) if isinstance(table, dict) else []):
        return None  # not this document's: a valid file's checks are all of its [checks], in order
    return checks


def keep(cache_dir: Path, path: Path, raw: bytes, file: os.stat_result, checks: Mapping[str, CheckConfig]) -> None:
    """Keep the checks validated from `raw` for the next start (by the file's owner only, toml_cache)."""
    made_by = _made_by()
    if made_by is not None and toml_cache.may_keep(raw, file):  # before the checks are made plain
        plain = {name: tuple(c) if not c.assertions else _plain(c) for name, c in checks.items()}
        toml_cache.keep_beside(cache_dir, path, raw, made_by, plain, file)


def is_kept(cache_dir: Path, path: Path, raw: bytes, file: os.stat_result) -> bool:
    made_by = _made_by()
    return made_by is not None and toml_cache.is_beside(cache_dir, path, raw, made_by, file.st_uid)


@functools.cache
def _made_by() -> bytes | None:
    """The code that validates a check, by its source: Heartfly's config modules (every module of
    heartfly.core) and the libraries that judge a cron expression (croniter, and dateutil, which it
    computes dates with). None if some of it has no source to read."""
    core = sorted(Path(__file__).parent.glob("*.py"))
    loaded = {name.rpartition(".")[2] for name in sys.modules if name.startswith("heartfly.core.")}
    if not loaded <= {source.stem for source in core}:
        return None  # installed without its source: not known
    try:
        libraries = [Path(importlib.import_module(name).__file__ or "").parent for name in ("croniter", "dateutil")]
        hashed = [(source.name, source.read_bytes()) for source in core]
        for library in libraries:  # every module of theirs: the same in every process, whatever it imported
            hashed += [
                (str(source.relative_to(library.parent)), source.read_bytes())
                for source in sorted(library.rglob("*.py"))
            ]
    except (ImportError, OSError, ValueError):
        return None
    return b"\n".join(name.encode() + b" " + toml_cache.digest(source) for name, source in hashed)


def _plain(check: CheckConfig) -> tuple[Any, ...]:
    """A check as marshal's types: its assertions (NamedTuples too) as plain tuples."""
    fields = tuple(check)
    return (*fields[:_ASSERTIONS], tuple(tuple(a) for a in check.assertions), *fields[_ASSERTIONS + 1 :])


def _with_assertions(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """_plain undone. Raises TypeError or ValueError for what keep() does not write."""
    assertions = tuple(Assertion._make(a) for a in fields[_ASSERTIONS])
    return (*fields[:_ASSERTIONS], assertions, *fields[_ASSERTIONS + 1 :])
