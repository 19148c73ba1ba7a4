"""`heartfly backup PATH`: a consistent copy of the live database, taken while the server runs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from heartfly.core.dburl import Database, PostgresDatabase
from heartfly.core.syncdir import sync_folder
from heartfly.store.sqlite import file_uri, read_uri


class BackupError(Exception):
    """The copy was not made; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size: int
    checks: int
    pings: int


def backup_database(database: Database, target: Path) -> BackupInfo:
    """Copy `database` to `target` with VACUUM INTO, which reads one snapshot (a WAL read
    transaction), so pings committed meanwhile are either wholly in the copy or not at all,
    and the server's writer is never blocked. The copy is a single compact file in rollback
    journal mode, readable by any sqlite3; it is created mode 0600 (it holds ping bodies) and
    never overwrites anything. It is written as a hidden `.NAME.*.partial` next to `target` and
    named `target` once checked, so an interrupted backup never leaves a file at `target`.
    """
    if isinstance(database, PostgresDatabase):
        raise BackupError(
            f"the database is PostgreSQL ({database.shown}): back it up with pg_dump;"
            " `heartfly backup` copies a SQLite file"
        )
    try:
        if not database.exists():
            raise BackupError(f"no database at {database}")
    except PermissionError:  # a folder this user may not look in: Path.exists raises, not False
        raise BackupError(
            f"cannot back up {database}: permission denied; run this as root or as the server's user"
        ) from None
    # Early, before the copy's work; the link below is what makes it sure. lexists, not exists():
    # a PATH that cannot be looked at (a directory that may not be entered, a name too long) is the
    # create's error below, not an OSError out of here.
    if os.path.lexists(target):
        raise BackupError(f"{target} exists; not overwriting it")
    try:
        # The copy is made under another name and linked to `target` once checked: a backup
        # killed on the way (a timer's timeout, the OOM killer) leaves no file at `target` that
        # looks like a backup and would block the next try (SQLite rolls the half-written one back
        # to an empty database that passes its integrity check).
        # Its name cut to 100 bytes: a PATH's of 240-255 (a valid name; the limit is in bytes, and
        # "字" is 3) must not fail for the partial's.
        fd, name = tempfile.mkstemp(prefix=f".{_cut(target.name, 100)}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise BackupError(f"cannot create {target}: {exc.strerror}") from None
    os.close(fd)  # VACUUM INTO accepts an empty file, so the mode mkstemp chose (0600) sticks
    partial = Path(name)
    try:
        checks, pings = _copy(database, partial, target)
        _publish(partial, target)
        sync_folder(target.parent)
    finally:
        # With its rollback journal: a copy that failed (a full disk) leaves SQLite's behind.
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return BackupInfo(target, target.stat().st_size, checks, pings)


def _cut(name: str, size: int) -> str:
    """`name`'s longest start that is at most `size` bytes in the file system's encoding."""
    while len(os.fsencode(name)) > size:
        name = name[:-1]
    return name


def _publish(partial: Path, target: Path) -> None:
    """Give the finished copy its name, never over an existing file."""
    try:
        os.link(partial, target)
        return
    except FileExistsError:
        raise BackupError(f"{target} exists; not overwriting it") from None
    except OSError:  # no hard links there (a FAT stick, some network shares): a rename, checked first
        if os.path.lexists(target):
            raise BackupError(f"{target} exists; not overwriting it") from None
    try:
        os.rename(partial, target)
    except OSError as exc:
        raise BackupError(f"cannot create {target}: {exc.strerror}") from None


def _copy(database: Path, partial: Path, target: Path) -> tuple[int, int]:
    """VACUUM INTO `partial`, checked; its counts of checks and pings."""
    try:
        # mode=rw, not ro: a read-only connection would leave -wal and -shm files behind next
        # to a stopped server's database (rw never creates the file; VACUUM INTO only reads it;
        # query_only would refuse VACUUM INTO). On a read-only file system, where rw cannot open
        # and nothing is left behind, as any read opens it (read_uri).
        uri = read_uri(database)
        uri = uri if uri.endswith("&immutable=1") else file_uri(database, "rw")
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (str(partial),))
        finally:
            conn.close()
        copy = sqlite3.connect(file_uri(partial, "ro"), uri=True)
        try:
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"the copy for {target} failed its integrity check")
            checks = copy.execute("SELECT count(*) FROM checks").fetchone()[0]
            pings = copy.execute("SELECT count(*) FROM pings").fetchone()[0]
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {database}: {exc}") from None
    return int(checks), int(pings)
