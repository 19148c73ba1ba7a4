"""A large config file's parsed TOML, kept between starts of the server.

tomli reads some 5 MB a second: a file of 100k checks costs 1.2 s at every start, though a restart
nearly always reads the file it read the last time. What tomli made of it is kept in the cache
directory systemd gives the service (CacheDirectory=, as $CACHE_DIRECTORY), with marshal: the same
dicts, lists, strings and numbers, read back ten times faster. Nothing after tomli changes: the
checks are validated from that document as from a fresh parse, and the files it names (secrets,
the API token) are read every time.

A kept parse is used only for the very bytes it was made from, by the same tomli and Python (the
key is a SHA-256 of them), and only whole: its own SHA-256 is checked before marshal reads it, so a
torn or damaged file is parsed again, not trusted. Files under CACHED_FROM are not kept (tomli
reads them in under 50 ms), nor documents with TOML dates and times (marshal has no type for them).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import tomli

CACHED_FROM = 256 * 1024  # bytes of config file
FORMAT = b"heartfly-parsed-toml 1"


def directory(environ: Mapping[str, str]) -> Path | None:
    """The cache directory systemd made for the service (the first of $CACHE_DIRECTORY's), or None."""
    first = environ.get("CACHE_DIRECTORY", "").split(":", 1)[0]
    return Path(first) if os.path.isabs(first) else None


def parse(raw: bytes, path: Path, cache_dir: Path | None) -> dict[str, Any]:
    """tomli's reading of `raw` (the file at `path`), from the cache when it was kept there.

    Raises what tomli raises (UnicodeDecodeError, tomli.TOMLDecodeError, RecursionError).
    """
    if cache_dir is None or len(raw) < CACHED_FROM:
        return _parse(raw)
    kept = cache_dir / f"config-{hashlib.sha256(os.fsencode(path.absolute())).hexdigest()[:16]}.marshal"
    key = _key(raw)
    data = _read(kept, key)
    if data is None:
        data = _parse(raw)
        _write(kept, key, data)
    return data


def _parse(raw: bytes) -> dict[str, Any]:
    return tomli.loads(raw.decode("utf-8-sig"))  # -sig: a byte order mark some editors write


def _key(raw: bytes) -> bytes:
    digest = hashlib.sha256(_salt())
    digest.update(raw)
    return digest.hexdigest().encode()


@cache
def _salt() -> bytes:
    # Another tomli could read the same bytes otherwise (a fix), another Python marshals otherwise.
    made_by = f"tomli {tomli.__version__}, Python {sys.version}, marshal {marshal.version}\n"
    return FORMAT + b"\n" + made_by.encode()


def _read(kept: Path, key: bytes) -> dict[str, Any] | None:
    try:
        blob = kept.read_bytes()
    except OSError:  # none kept yet, or no longer readable: parse
        return None
    header, _, payload = blob.partition(b"\n")
    if header != b" ".join((FORMAT, key, hashlib.sha256(payload).hexdigest().encode())):
        return None  # made from other bytes, or damaged since
    try:
        # Our own file, in a directory only the service's user may write, whole by its SHA-256.
        data = marshal.loads(payload)  # noqa: S302
    except (EOFError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _write(kept: Path, key: bytes, data: dict[str, Any]) -> None:
    """Keep `data` for the next start; a cache that cannot be written only costs that start the parse."""
    try:
        payload = marshal.dumps(data)
    except ValueError:  # a TOML date or time: no marshal type for it
        return
    blob = b" ".join((FORMAT, key, hashlib.sha256(payload).hexdigest().encode())) + b"\n" + payload
    try:
        fd, temp = tempfile.mkstemp(dir=kept.parent, prefix=".config-", suffix=".tmp")  # mode 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
        os.replace(temp, kept)  # whole or not at all, for a reader in another process too
    except OSError:  # a full disk, a read-only directory
        Path(temp).unlink(missing_ok=True)
