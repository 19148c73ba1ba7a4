"""`heartfly backup PATH`: a consistent copy of the live database, taken while the server runs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from heartfly.core.dburl import Database, PostgresDatabase


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
    never overwrites anything.
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
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"{target} exists; not overwriting it") from None
    except OSError as exc:
        raise BackupError(f"cannot create {target}: {exc.strerror}") from None
    os.close(fd)  # VACUUM INTO accepts an empty file, so the mode we chose sticks
    try:
        # mode=rw, not ro: a read-only connection would leave -wal and -shm files behind next
        # to a stopped server's database (rw never creates the file; VACUUM INTO only reads it;
        # query_only would refuse VACUUM INTO).
        conn = sqlite3.connect(f"file:{database}?mode=rw", uri=True, isolation_level=None, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (str(target),))
        finally:
            conn.close()
        copy = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        try:
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"the copy in {target} failed its integrity check")
            checks = copy.execute("SELECT count(*) FROM checks").fetchone()[0]
            pings = copy.execute("SELECT count(*) FROM pings").fetchone()[0]
        finally:
            copy.close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        if isinstance(exc, sqlite3.Error):
            raise BackupError(f"cannot back up {database}: {exc}") from None
        raise
    return BackupInfo(target, target.stat().st_size, int(checks), int(pings))
