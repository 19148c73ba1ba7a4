"""A large config's parsed TOML is kept between starts, used only for the very bytes it was made
from and only whole; the checks are validated from it as from a fresh parse."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli

from heartfly.core import toml_cache
from heartfly.core.config import ConfigError, load_config
from tests.conftest import new_key
from tests.proc import Server


def big_config(path: Path, checks: int, extra: str = "") -> Path:
    lines = ['[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n', extra]
    lines += [f'[checks.c{i:05d}]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "5m"\n' for i in range(checks)]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toml_cache, "CACHED_FROM", 1000)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts tomli's parses."""
    calls: list[int] = []
    real = tomli.loads

    def counted(text: str, **kw: Any) -> dict[str, Any]:
        calls.append(len(text))
        return real(text, **kw)

    monkeypatch.setattr(tomli, "loads", counted)
    return calls


def kept_files(cache: Path) -> list[Path]:
    return sorted(cache.iterdir())


@pytest.mark.usefixtures("small_threshold")
def test_a_large_file_is_parsed_once_and_then_read_from_the_cache_with_the_same_result(
    tmp_path: Path, parses: list[int]
) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 40), tmp_path / "cache"
    cache.mkdir()
    first = load_config(config, cache)
    assert len(parses) == 1 and len(kept_files(cache)) == 1
    kept = kept_files(cache)[0]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # it holds what the file holds
    again = load_config(config, cache)
    assert len(parses) == 1  # not parsed again
    assert again == first and list(again.checks) == list(first.checks)  # the file's order too
    assert load_config(config) == first  # and as without a cache


@pytest.mark.usefixtures("small_threshold")
def test_a_changed_file_is_parsed_again_and_its_parse_replaces_the_kept_one(tmp_path: Path, parses: list[int]) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 40), tmp_path / "cache"
    cache.mkdir()
    load_config(config, cache)
    config.write_text(config.read_text().replace('grace = "5m"', 'grace = "6m"', 1))
    changed = load_config(config, cache)
    assert len(parses) == 2 and changed.checks["c00000"].grace == 360 and changed.checks["c00001"].grace == 300
    assert load_config(config, cache) == changed and len(parses) == 2
    assert len(kept_files(cache)) == 1  # one kept parse per config file


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "other header"])
def test_a_damaged_cache_file_is_not_trusted_but_parsed_again_and_rewritten(
    tmp_path: Path, parses: list[int], damage: str
) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 40), tmp_path / "cache"
    cache.mkdir()
    first = load_config(config, cache)
    kept = kept_files(cache)[0]
    blob = kept.read_bytes()
    header, _, payload = blob.partition(b"\n")
    if damage == "flip a byte":
        at = len(payload) // 2
        blob = header + b"\n" + payload[:at] + bytes([payload[at] ^ 1]) + payload[at + 1 :]
    elif damage == "truncate":
        blob = blob[: len(blob) - 10]
    elif damage == "empty":
        blob = b""
    else:
        blob = b"heartfly-parsed-toml 0" + blob[len(toml_cache.FORMAT) :]
    kept.write_bytes(blob)
    assert load_config(config, cache) == first
    assert len(parses) == 2
    assert load_config(config, cache) == first and len(parses) == 2  # rewritten whole


@pytest.mark.usefixtures("small_threshold")
def test_a_cache_that_cannot_be_written_only_costs_the_parse(tmp_path: Path, parses: list[int]) -> None:
    config = big_config(tmp_path / "hb.toml", 40)
    missing = tmp_path / "no such directory"
    assert load_config(config, missing) == load_config(config)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "x").write_text("")  # a directory that cannot be written, even by root: a file in its place
    assert load_config(config, blocked / "x") == load_config(config)
    assert len(parses) == 4


def test_a_small_file_is_not_kept(tmp_path: Path, parses: list[int]) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 3), tmp_path / "cache"
    cache.mkdir()
    load_config(config, cache)
    load_config(config, cache)
    assert len(parses) == 2 and kept_files(cache) == []


@pytest.mark.usefixtures("small_threshold")
def test_a_file_with_toml_dates_is_read_each_time_and_not_kept(tmp_path: Path, parses: list[int]) -> None:
    window = '[[maintenance]]\nname = "move"\nstart = 2026-12-24T08:00:00Z\nduration = "30m"\n'
    config, cache = big_config(tmp_path / "hb.toml", 40, extra=window), tmp_path / "cache"
    cache.mkdir()
    first = load_config(config, cache)
    assert first.maintenance and load_config(config, cache) == first
    assert len(parses) == 2 and kept_files(cache) == []


@pytest.mark.usefixtures("small_threshold")
def test_a_broken_large_file_is_refused_as_before_and_nothing_is_kept(tmp_path: Path) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 40), tmp_path / "cache"
    cache.mkdir()
    config.write_text(config.read_text() + "\n[checks.broken\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(config, cache)
    assert kept_files(cache) == []
    config.write_text(config.read_text().replace("[checks.broken\n", '[checks.c00001]\nevery = "2h"\n'))
    with pytest.raises(ConfigError, match="invalid TOML"):  # tomli's own error, never a kept parse's
        load_config(config, cache)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/var/cache/heartfly", "/var/cache/heartfly"), ("/var/cache/a:/var/cache/b", "/var/cache/a"), ("", None),
     ("relative/path", None)],
)  # fmt: skip
def test_the_cache_directory_is_the_first_one_systemd_names(value: str, expected: str | None) -> None:
    found = toml_cache.directory({"CACHE_DIRECTORY": value})
    assert (str(found) if found else None) == expected
    assert toml_cache.directory({}) is None


def test_a_restarted_server_reads_its_unchanged_large_config_from_systemds_cache_directory(tmp_path: Path) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 4000), tmp_path / "cache"
    cache.mkdir()
    assert config.stat().st_size >= toml_cache.CACHED_FROM  # as large as a kept parse must be
    env = {"CACHE_DIRECTORY": str(cache)}
    with Server(config, env=env) as server:
        assert server.stop() == 0
    (kept,) = kept_files(cache)
    made = kept.stat().st_mtime_ns
    os.utime(kept, ns=(made - 10**9, made - 10**9))
    with Server(config, env=env) as server:  # unchanged: read, not written again
        assert server.stop() == 0
    assert kept.stat().st_mtime_ns == made - 10**9
    config.write_text(config.read_text() + f'\n[checks.added]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config, env=env) as server:  # changed: the new check is served, its parse kept
        assert "check added is new" in server.log()
        assert kept.stat().st_mtime_ns != made - 10**9 and kept_files(cache) == [kept]
        kept_now = kept.read_bytes()
        config.write_text(config.read_text() + f'\n[checks.reloaded]\nkey = "{new_key()}"\nevery = "1h"\n')
        server.signal(signal.SIGHUP)  # a reload keeps the new file's parse too
        assert server.wait_for_log("reloaded"), server.log()
        assert kept.read_bytes() != kept_now and kept_files(cache) == [kept]
        assert server.stop() == 0
