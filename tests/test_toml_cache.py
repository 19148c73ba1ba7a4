"""A large config's parsed TOML is kept between starts, used only for the very bytes it was made
from and only whole; the checks are validated from it as from a fresh parse."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import rtoml
import tomli

from heartfly.core import toml_cache
from heartfly.core.config import ConfigError, load_config
from tests.conftest import new_key
from tests.proc import Server, heartfly


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
    """Counts the file's parses (rtoml's, or tomli's where rtoml refuses)."""
    calls: list[int] = []
    real = toml_cache._parse

    def counted(raw: bytes) -> dict[str, Any]:
        calls.append(len(raw))
        return real(raw)

    monkeypatch.setattr(toml_cache, "_parse", counted)
    return calls


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A config of 40 checks (over the small threshold) and an empty cache directory."""
    cache = tmp_path / "cache"
    cache.mkdir()
    return big_config(tmp_path / "hb.toml", 40), cache


def kept_files(cache: Path) -> list[Path]:
    """The cache directory's files but the checks kept beside a parse (tests/test_kept_checks.py)."""
    return sorted(p for p in cache.iterdir() if p.suffix != ".beside")


@pytest.mark.usefixtures("small_threshold")
def test_a_large_file_is_parsed_once_and_then_read_from_the_cache_with_the_same_result(
    files: tuple[Path, Path], parses: list[int]
) -> None:
    config, cache = files
    config.chmod(0o640)
    first = load_config(config, cache)
    assert len(parses) == 1 and len(kept_files(cache)) == 1
    kept = kept_files(cache)[0]
    # It holds what the config holds: the config's owner, group and readers, nobody who may write.
    assert (kept.stat().st_uid, kept.stat().st_gid) == (config.stat().st_uid, config.stat().st_gid)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    again = load_config(config, cache)
    assert len(parses) == 1 and again.kept_parse == kept and first.kept_parse is None  # read, not parsed
    assert again == first and list(again.checks) == list(first.checks)  # the file's order too
    assert load_config(config) == first  # and as without a cache


@pytest.mark.usefixtures("small_threshold")
def test_a_changed_file_is_parsed_again_and_its_parse_replaces_the_kept_one(
    files: tuple[Path, Path], parses: list[int]
) -> None:
    config, cache = files
    load_config(config, cache)
    config.write_text(config.read_text().replace('grace = "5m"', 'grace = "6m"', 1))
    changed = load_config(config, cache)
    assert len(parses) == 2 and changed.checks["c00000"].grace == 360 and changed.checks["c00001"].grace == 300
    assert load_config(config, cache) == changed and len(parses) == 2
    assert len(kept_files(cache)) == 1  # one kept parse per config file


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "other header"])
def test_a_damaged_cache_file_is_not_trusted_but_parsed_again_and_rewritten(
    files: tuple[Path, Path], parses: list[int], damage: str
) -> None:
    config, cache = files
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
def test_a_broken_large_file_is_refused_as_before_and_nothing_is_kept(files: tuple[Path, Path]) -> None:
    config, cache = files
    good = config.read_text()
    config.write_text(good + "\n[checks.broken\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(config, cache)
    assert kept_files(cache) == []
    config.write_text(good)
    load_config(config, cache)
    (kept,) = kept_files(cache)
    made = kept.read_bytes()
    config.write_text(good + '\n[checks.c00001]\nevery = "2h"\n')  # a table defined twice
    with pytest.raises(ConfigError, match="invalid TOML"):  # tomli's own error, not the kept parse
        load_config(config, cache)
    assert kept.read_bytes() == made


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


@pytest.mark.usefixtures("small_threshold")
def test_a_file_with_a_byte_order_mark_reads_as_without_the_cache(files: tuple[Path, Path], parses: list[int]) -> None:
    config, cache = files
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    first = load_config(config, cache)
    assert load_config(config, cache) == first == load_config(config) and len(parses) == 2


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("parser", [rtoml, tomli])
def test_another_parser_version_does_not_trust_the_parse_an_older_one_kept(
    files: tuple[Path, Path], parses: list[int], monkeypatch: pytest.MonkeyPatch, parser: ModuleType
) -> None:
    config, cache = files
    load_config(config, cache)
    monkeypatch.setattr(parser, "__version__", "99.0.0")
    toml_cache._salt.cache_clear()
    try:
        load_config(config, cache)
        assert len(parses) == 2
    finally:
        toml_cache._salt.cache_clear()


@pytest.mark.usefixtures("small_threshold")
def test_a_process_that_is_not_the_config_files_owner_reads_a_kept_parse_but_never_writes_one(
    files: tuple[Path, Path], parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, cache = files
    owner = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # as the installed service: heartfly, the file root's
    first = load_config(config, cache)
    assert kept_files(cache) == [] and len(parses) == 1
    monkeypatch.setattr(os, "geteuid", lambda: owner)  # as root in the unit's ExecStartPost
    load_config(config, cache)
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    assert load_config(config, cache) == first and len(parses) == 2  # the service reads what root kept


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_kept_parse_that_someone_but_the_config_files_owner_could_have_written_is_not_trusted(
    files: tuple[Path, Path], parses: list[int]
) -> None:
    config, cache = files
    first = load_config(config, cache)
    (kept,) = kept_files(cache)
    os.chown(kept, 65534, -1)  # nobody's: as a file the service's own user (heartfly) put there
    assert load_config(config, cache) == first and len(parses) == 2
    (kept,) = kept_files(cache)
    assert kept.stat().st_uid == os.geteuid()  # replaced by the owner's own
    kept.chmod(0o664)  # a group that may write it
    assert load_config(config, cache) == first and len(parses) == 3


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("when", ["before the write", "between its unlink and its open"])
def test_a_write_goes_through_no_link_put_in_its_place_and_leaves_no_temporary_file(
    tmp_path: Path, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    config, cache = files
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    temp = toml_cache.kept_path(cache, config).with_suffix(".marshal.tmp")
    if when == "before the write":
        temp.symlink_to(target)
    else:  # as another process of the cache directory's owner could, racing the write
        real_open = os.open

        def racing_open(path: Any, *args: Any, **kwargs: Any) -> int:
            if Path(path) == temp and not temp.is_symlink():
                temp.symlink_to(target)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", racing_open)
    load_config(config, cache)
    assert target.read_text() == "keep me"
    if when == "before the write":
        assert [p.name for p in kept_files(cache)] == [toml_cache.kept_path(cache, config).name]


def test_keep_parse_keeps_the_parse_that_the_server_then_reads_and_is_quiet_about_a_broken_file(
    tmp_path: Path,
) -> None:
    config, cache = big_config(tmp_path / "hb.toml", 4000), tmp_path / "cache"
    cache.mkdir()
    env = {"CACHE_DIRECTORY": str(cache)}
    kept = toml_cache.kept_path(cache, config)
    result = heartfly("keep-parse", "-c", str(config), env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    made = kept.stat().st_mtime_ns
    os.utime(kept, ns=(made - 10**9, made - 10**9))
    assert heartfly("keep-parse", "-c", str(config), env=env).returncode == 0
    assert toml_cache.beside_path(cache, config).is_file()  # and the checks validated from it
    with Server(config, env=env) as server:  # as the unit's next start: it reads what root kept
        said = f"read {config} through its parse kept in {kept} (the file has not changed since), and its checks"
        assert said in server.log()
        assert server.stop() == 0
    assert kept.stat().st_mtime_ns == made - 10**9  # checked, read, never written again
    config.write_text(config.read_text() + "\n[checks.broken\n")
    result = heartfly("keep-parse", "-c", str(config), env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # the server words it
    assert kept.stat().st_mtime_ns == made - 10**9


def test_keep_parse_is_quiet_about_a_file_with_an_integer_too_long_for_python(tmp_path: Path) -> None:
    # tomli's int() refuses more than 4300 digits with a bare ValueError, not a TOMLDecodeError:
    # the unit's ExecStartPost printed a traceback where the server words the error.
    config, cache = big_config(tmp_path / "hb.toml", 4000, f"[x]\nn = {'9' * 5000}\n"), tmp_path / "cache"
    cache.mkdir()
    result = heartfly("keep-parse", "-c", str(config), env={"CACHE_DIRECTORY": str(cache)})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not toml_cache.kept_path(cache, config).exists()


def test_keep_parse_without_a_cache_directory_says_so(tmp_path: Path) -> None:
    config = big_config(tmp_path / "hb.toml", 3)
    result = heartfly("keep-parse", "-c", str(config), env={"CACHE_DIRECTORY": ""})
    assert result.returncode == 1 and "$CACHE_DIRECTORY is not an absolute path" in result.stderr


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("planted", ["a link to the kept parse", "a FIFO"])
def test_no_link_or_fifo_in_the_kept_parses_place_is_read(
    tmp_path: Path, files: tuple[Path, Path], parses: list[int], planted: str
) -> None:
    config, cache = files
    first = load_config(config, cache)
    kept = toml_cache.kept_path(cache, config)
    real = tmp_path / "real"
    kept.rename(real)
    if planted == "a FIFO":
        os.mkfifo(kept)  # a read would wait for a writer that never comes
    else:
        kept.symlink_to(real)  # a valid parse, but not the file itself

    def waited(*_: object) -> None:
        pytest.fail("the kept parse's read waited")  # a BaseException: no `except OSError` takes it

    before = signal.signal(signal.SIGALRM, waited)
    signal.alarm(10)  # a read that waits fails this test, not the whole run
    try:
        assert load_config(config, cache) == first
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert len(parses) == 2 and kept.is_file() and not kept.is_symlink()  # replaced by a file of its own


@pytest.mark.usefixtures("small_threshold")
def test_a_kept_parse_of_another_owner_or_one_others_may_write_is_not_trusted(
    files: tuple[Path, Path], parses: list[int]
) -> None:
    config, cache = files
    first = load_config(config, cache)
    raw, real = config.read_bytes(), os.stat(config)
    other = os.stat_result((real.st_mode, *real[1:4], real.st_uid + 1, *real[5:]))  # owned by someone else
    data, kept_from = toml_cache.parse(raw, config, cache, other)
    assert len(parses) == 2 and kept_from is None and data == tomli.loads(raw.decode())
    (kept,) = kept_files(cache)
    kept.chmod(0o664)  # a group that may write it
    assert load_config(config, cache) == first and len(parses) == 3
    kept.chmod(0o640)
    os.link(kept, cache / "another name")  # a hard link: the file has two names
    assert load_config(config, cache) == first and len(parses) == 4


def test_keep_parse_is_quiet_about_a_missing_config(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    result = heartfly("keep-parse", "-c", str(tmp_path / "none.toml"), env={"CACHE_DIRECTORY": str(cache)})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # the server words it
