"""The checks validated from a large config file are kept beside its parse, and a restart of the same
file by the same code reads them instead of validating them again; anything else validates afresh."""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from heartfly.core import config as config_module
from heartfly.core import config_values, kept_checks, toml_cache
from heartfly.core.assertions import Assertion
from heartfly.core.config import ConfigError, load_config
from tests.conftest import new_key

SHAPES = [
    'every = "1h"\ngrace = "5m"',
    'cron = "0 3 * * *"\ntimezone = "Europe/Berlin"\nmax_runtime = "2h"\nmin_runtime = "1m"',
    'every = "1d"\nassert = ["rows > 0", "duration < 1h"]\ndescription = "nightly <b>load</b>"',
    'every = "15m"\nstart_key = "{}"\nfail_key = "{}"\ntags = ["db", "prod"]',
    'every = "1h"\nchannels = ["ops"]\nrepeat = "2h"\nstall = "10m"\nfailures_before_alert = 3',
    'every = "1h"\nexpect = 2\nmembers = ["w1", "w2"]',
]


def write(path: Path, extra: str = "") -> Path:
    lines = ['[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n', '[channels.ops]\ntype = "log"\n']
    for i in range(60):
        shape = SHAPES[i % len(SHAPES)].format(new_key(), new_key())  # keys of its own
        lines.append(f'[checks.c{i:03d}]\nkey = "{new_key()}"\n{shape}\n')
    lines.append(f'[checks.step]\nkey = "{new_key()}"\nafter = "c000"\nwithin = "1h"\n')
    path.write_text("\n".join(lines) + extra)
    return path


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toml_cache, "CACHED_FROM", 1000)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "cache"
    cache.mkdir()
    return write(tmp_path / "hb.toml"), cache


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the checks validated (by the quick reader or the full one)."""
    names: list[str] = []
    real = config_module._Reader.check

    def counted(self: Any, name: str, raw: Any, defaults: Any) -> Any:
        names.append(name)
        return real(self, name, raw, defaults)

    monkeypatch.setattr(config_module._Reader, "check", counted)
    return names


def beside(cache: Path, config: Path) -> Path:
    return toml_cache.beside_path(cache, config)


def test_a_restart_reads_the_checks_as_validated_then_without_validating_them_again(
    files: tuple[Path, Path], validated: list[str]
) -> None:
    config, cache = files
    first = load_config(config, cache)
    assert len(validated) == 61 and beside(cache, config).is_file() and first.kept_checks is None
    again = load_config(config, cache)
    assert len(validated) == 61 and again.kept_checks == beside(cache, config)  # read, not validated
    assert again == first == load_config(config) and list(again.checks) == list(first.checks)


def test_checks_of_every_shape_come_back_exactly_as_validated(files: tuple[Path, Path]) -> None:
    config, cache = files
    load_config(config, cache)
    kept = load_config(config, cache)
    fresh = load_config(config)
    assert kept.kept_checks
    for name, check in fresh.checks.items():
        assert kept.checks[name] == check and type(kept.checks[name]) is type(check)
        assert all(type(a) is Assertion for a in kept.checks[name].assertions)
    assert kept.checks["c002"].assertions and kept.checks["step"].after == "c000"
    assert kept.checks["c005"].members == ("w1", "w2")


def test_other_code_validates_the_checks_again_and_keeps_them_anew(
    files: tuple[Path, Path], validated: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, cache = files
    first = load_config(config, cache)
    monkeypatch.setattr(kept_checks, "_made_by", lambda: b"checkconfig.py 0123 (changed since)")
    assert load_config(config, cache) == first and len(validated) == 122
    assert load_config(config, cache).kept_checks and len(validated) == 122  # kept for that code


def test_a_changed_file_validates_its_checks_again(files: tuple[Path, Path], validated: list[str]) -> None:
    config, cache = files
    load_config(config, cache)
    config.write_text(config.read_text().replace('grace = "5m"', 'grace = "7m"', 1))
    changed = load_config(config, cache)
    assert not changed.kept_checks and len(validated) == 122 and changed.checks["c000"].grace == 420


def test_a_time_zone_the_database_no_longer_has_is_worded_as_a_fresh_validation_words_it(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, cache = files
    load_config(config, cache)
    real = zoneinfo.ZoneInfo

    def without_berlin(key: str) -> zoneinfo.ZoneInfo:
        if key == "Europe/Berlin":
            raise zoneinfo.ZoneInfoNotFoundError(key)
        return real(key)

    monkeypatch.setattr(config_values, "ZoneInfo", without_berlin)
    with pytest.raises(ConfigError, match=re.escape('checks.c001.timezone: unknown time zone "Europe/Berlin"')):
        load_config(config, cache)


def test_a_file_whose_checks_do_not_validate_keeps_none(tmp_path: Path, files: tuple[Path, Path]) -> None:
    _, cache = files
    config = write(tmp_path / "bad.toml", f'\n[checks.fast]\nkey = "{new_key()}"\nevery = "0.5s"\n')
    with pytest.raises(ConfigError, match=re.escape("checks.fast.every")):
        load_config(config, cache)
    assert not beside(cache, config).exists()


@pytest.mark.parametrize("damage", ["cut short", "a byte changed", "another shape"])
def test_damaged_kept_checks_are_validated_again_and_rewritten(
    files: tuple[Path, Path], validated: list[str], damage: str
) -> None:
    config, cache = files
    first = load_config(config, cache)
    kept = beside(cache, config)
    blob = kept.read_bytes()
    if damage == "cut short":
        kept.write_bytes(blob[: len(blob) // 2])
    elif damage == "a byte changed":
        kept.write_bytes(blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:])
    else:  # whole and trusted, but not checks: what a bug of an older version could have kept
        kept.unlink()
        toml_cache.keep_beside(cache, config, config.read_bytes(), kept_checks._made_by() or b"", {"c000": (1, 2)},
                               os.stat(config))  # fmt: skip
    assert load_config(config, cache) == first and len(validated) == 122
    assert load_config(config, cache).kept_checks and len(validated) == 122


def test_a_process_that_is_not_the_files_owner_reads_kept_checks_but_never_keeps_them(
    files: tuple[Path, Path], validated: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, cache = files
    owner = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # the installed service: heartfly, the file root's
    first = load_config(config, cache)
    assert not beside(cache, config).exists()
    monkeypatch.setattr(os, "geteuid", lambda: owner)  # root, keep-parse
    config_module.keep_parse(config, cache)
    assert beside(cache, config).is_file() and len(validated) == 122
    made = beside(cache, config).stat().st_mtime_ns
    config_module.keep_parse(config, cache)  # kept already: not validated again, nor written
    assert len(validated) == 122 and beside(cache, config).stat().st_mtime_ns == made
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    again = load_config(config, cache)
    assert again == first and again.kept_checks and len(validated) == 122


def test_kept_checks_that_are_not_all_of_the_documents_are_not_used(
    files: tuple[Path, Path], validated: list[str]
) -> None:
    # Whole and trusted, yet naming a check the file lacks (or lacking one): only a bug or the
    # file's owner could have kept them, and the start goes on with the checks validated afresh.
    config, cache = files
    first = load_config(config, cache)
    plain = {name: tuple(check) for name, check in first.checks.items() if not check.assertions}
    raw = config.read_bytes()
    for kept in ({**plain, "ghost": (*plain["c000"][:1], "ghost", *plain["c000"][2:])}, dict(list(plain.items())[1:])):
        toml_cache.keep_beside(cache, config, raw, kept_checks._made_by() or b"", kept, os.stat(config))
        assert load_config(config, cache) == first
    assert len(validated) == 61 * 3


def test_a_file_whose_parse_is_not_kept_still_has_its_checks_kept_and_says_so(tmp_path: Path) -> None:
    window = '[[maintenance]]\nname = "move"\nstart = 2026-12-24T08:00:00Z\nduration = "30m"\n'
    config, cache = write(tmp_path / "hb.toml", window), tmp_path / "cache"  # a TOML date: no kept parse
    cache.mkdir()
    load_config(config, cache)
    again = load_config(config, cache)
    assert again.kept_parse is None and again.kept_checks == beside(cache, config)
