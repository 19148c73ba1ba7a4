"""A large config file's parsed TOML, kept between starts of the server.

A file of 100k checks costs 0.4 s to parse (tomlparse) at every start, though a restart nearly
always reads the file it read the last time. What the parse made of it is kept in the cache
directory systemd gives the service (CacheDirectory=, as $CACHE_DIRECTORY), with marshal: the same
dicts, lists, strings and numbers, read back three times faster. Nothing after the parse changes:
the config is validated from that document as from a fresh parse (its checks maybe as validated
before, kept beside it: kept_checks), and the files it names (secrets, the API token) are read
every time.

A kept parse is used only for the very bytes it was made from, by the same parsers and Python (the
key is a SHA-256 of them), and only whole: its own SHA-256 is checked before marshal reads it, so a
torn or damaged file is parsed again. It is trusted as the config file is, no more: it is read only
from a file that the config file's owner owns and nobody else may write, and written only by a
process of that owner. The installed unit's service runs as heartfly and cannot write its root-owned
config; root keeps the parse once the service is ready (ExecStartPost, `heartfly keep-parse`), so a
process running as heartfly cannot change the config the next start reads. Files under CACHED_FROM
are not kept (read in under 20 ms), nor documents with TOML dates and times (marshal
has no type for them).
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import rtoml
import tomli

from heartfly.core import tomlparse

CACHED_FROM = 256 * 1024  # bytes of config file
FORMAT = b"heartfly-parsed-toml 3"  # a new number whenever _parse reads the same bytes otherwise
BESIDE = b"heartfly-kept-beside 1"  # what config.py keeps beside the parse (the checks it validated)


def directory(environ: Mapping[str, str]) -> Path | None:
    """The cache directory systemd made for the service (the first of $CACHE_DIRECTORY's), or None."""
    first = environ.get("CACHE_DIRECTORY", "").split(":", 1)[0]
    return Path(first) if os.path.isabs(first) else None


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The config file's bytes, and its os.fstat (who may keep their parse). Raises OSError."""
    with path.open("rb") as file:
        return file.read(), os.fstat(file.fileno())


def parse(raw: bytes, path: Path, cache_dir: Path | None, file: os.stat_result) -> tuple[dict[str, Any], Path | None]:
    """The parse of `raw` (the file at `path`, whose os.fstat is `file`), and the kept parse
    it was read from (None: parsed); kept when this process runs as the file's owner.

    Raises what tomli raises (UnicodeDecodeError, tomli.TOMLDecodeError, RecursionError, and a bare
    ValueError for an integer past Python's limit of digits).
    """
    if cache_dir is None or len(raw) < CACHED_FROM:
        return _parse(raw), None
    kept = kept_path(cache_dir, path)
    key = _key(raw)
    data = _read(kept, key, file.st_uid)
    if data is not None:
        return data, kept
    data = _parse(raw)
    if may_keep(raw, file):
        _write(kept, key, data, file)
    return data, None


def may_keep(raw: bytes, file: os.stat_result) -> bool:
    """Whether this process keeps what it made of `raw` (the config file whose os.fstat is `file`):
    not for a small file, nor in any process but the file's owner's."""
    return len(raw) >= CACHED_FROM and os.geteuid() == file.st_uid


def keep(raw: bytes, file: os.stat_result, path: Path, cache_dir: Path) -> None:
    """Keep the parse of `raw`, the config file at `path`, for the server's next start (`heartfly
    keep-parse`), if may_keep. Raises what parse raises."""
    if not may_keep(raw, file):
        return
    kept, key = kept_path(cache_dir, path), _key(raw)
    if _payload(kept, key, file.st_uid) is None:  # kept already: only checked, not unmarshalled
        _write(kept, key, _parse(raw), file)


def read_beside(cache_dir: Path, path: Path, raw: bytes, made_by: bytes, owner_uid: int) -> Any | None:
    """What keep_beside kept for the config file at `path` when it held `raw`, made by `made_by`
    (the code that made it, as its caller names it); None if nothing was, under parse's rules."""
    payload = _payload(beside_path(cache_dir, path), _beside_key(raw, made_by), owner_uid, BESIDE)
    if payload is None:
        return None
    try:
        return marshal.loads(payload)  # noqa: S302 - trusted as the config file is (_payload), whole
    except (EOFError, ValueError, TypeError):
        return None


def is_beside(cache_dir: Path, path: Path, raw: bytes, made_by: bytes, owner_uid: int) -> bool:
    """Whether read_beside would find something (checked, not unmarshalled)."""
    return _payload(beside_path(cache_dir, path), _beside_key(raw, made_by), owner_uid, BESIDE) is not None


def keep_beside(cache_dir: Path, path: Path, raw: bytes, made_by: bytes, data: Any, file: os.stat_result) -> None:
    """Keep `data` (marshal's types only), made from `raw` by `made_by`, beside the parse of the
    config file at `path`, in place of what was (its reader found it wanting), if may_keep."""
    if may_keep(raw, file):
        _write(beside_path(cache_dir, path), _beside_key(raw, made_by), data, file, BESIDE)


def kept_path(cache_dir: Path, path: Path) -> Path:
    """Where the parse of the config file at `path` is kept: one file per config file."""
    return cache_dir / f"config-{hashlib.sha256(os.fsencode(path.absolute())).hexdigest()[:16]}.marshal"


def beside_path(cache_dir: Path, path: Path) -> Path:
    """Where keep_beside keeps its data for the config file at `path`."""
    return kept_path(cache_dir, path).with_suffix(".beside")


def _parse(raw: bytes) -> dict[str, Any]:
    return tomlparse.loads(raw)


def _key(raw: bytes) -> bytes:
    hashed = hashlib.sha256(_salt())
    hashed.update(raw)
    return hashed.hexdigest().encode()


def _beside_key(raw: bytes, made_by: bytes) -> bytes:
    return digest(_key(raw) + b"\n" + made_by)  # hashes the file's bytes again: 6 ms for 100k checks'


def digest(data: bytes | memoryview) -> bytes:
    """SHA-256, in hex."""
    return hashlib.sha256(data).hexdigest().encode()


@cache
def _salt() -> bytes:
    # Another parser could read the same bytes otherwise (a fix), another Python marshals otherwise.
    made_by = f"rtoml {rtoml.__version__}, tomli {tomli.__version__}, Python {sys.version}, marshal {marshal.version}\n"
    return FORMAT + b"\n" + made_by.encode()


def _header(key: bytes, payload: bytes | memoryview, form: bytes) -> bytes:
    return b" ".join((form, key, digest(payload)))


def _read(kept: Path, key: bytes, owner_uid: int) -> dict[str, Any] | None:
    payload = _payload(kept, key, owner_uid)
    if payload is None:
        return None
    try:
        # Trusted as the config file is (_payload), and whole by its SHA-256.
        data = marshal.loads(payload)  # noqa: S302
    except (EOFError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _payload(kept: Path, key: bytes, owner_uid: int, form: bytes = FORMAT) -> memoryview | None:
    """The kept parse's marshalled bytes, if it was made from the bytes `key` names, is whole, and
    only the config file's owner could have written it."""
    try:
        # Root reads here too (keep-parse), in a directory the service's user may write: no link is
        # followed, and no FIFO or device is read (one could block the start, or never end).
        fd = os.open(kept, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            st = os.fstat(file.fileno())
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != owner_uid
                or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                or st.st_nlink != 1  # one name: not a hard link put here to another file of the owner's
            ):
                return None  # written by someone the config file does not trust, or writable by them
            blob = file.read()
    except OSError:  # none kept yet, or no longer readable: parse
        return None
    end = blob.find(b"\n")
    if end < 0 or not blob.startswith(b" ".join((form, key, b""))):
        return None  # made from other bytes (known before hashing megabytes)
    payload = memoryview(blob)[end + 1 :]  # a view: the payload is megabytes
    if blob[:end] != _header(key, payload, form):
        return None  # damaged since
    return payload


def _write(kept: Path, key: bytes, data: Any, config: os.stat_result, form: bytes = FORMAT) -> None:
    """Keep `data` for the next start, readable by whom the config file is; a cache that cannot be
    written only costs that start the parse."""
    try:
        payload = marshal.dumps(data)
    except ValueError:  # a TOML date or time: no marshal type for it
        return
    temp = kept.with_name(kept.name + ".tmp")  # one name: a write cut short leaves no more than one
    try:
        temp.unlink(missing_ok=True)
        # O_EXCL and O_NOFOLLOW: never through a file or link someone else put there.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            mode = stat.S_IMODE(config.st_mode) & 0o644  # the config's readers, and none who may write
            try:
                os.fchown(out.fileno(), -1, config.st_gid)
            except OSError:  # a group this process may not give: its owner alone reads it
                mode &= 0o600
            os.fchmod(out.fileno(), mode)
            out.write(_header(key, payload, form) + b"\n" + payload)
        os.replace(temp, kept)  # whole or not at all, for a reader in another process too
    except OSError:  # a full disk, a read-only directory
        with contextlib.suppress(OSError):
            temp.unlink()
