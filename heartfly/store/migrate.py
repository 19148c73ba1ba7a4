"""`heartfly migrate-db FROM TO`: copy a Heartfly database between SQLite and PostgreSQL (either
way, or between two of a kind), every table, with counts checked, into an empty target.

The source is read in one snapshot (a read transaction), and refused while a server is using it:
pings it took after the snapshot would be lost. The target is made and migrated as `heartfly
serve` would, then filled in one transaction: all of it, or nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from heartfly.core.dburl import Database, PostgresDatabase
from heartfly.store import postgres_schema, schema
from heartfly.store.api import StoreError
from heartfly.store.rows import ALIVE_AT, CLEAN_STOP
from heartfly.store.sqlite import file_uri, foreign_tables, in_use

# In an order the foreign keys accept; each table's rows by its key.
TABLES = ("checks", "pings", "flips", "runs", "outbox", "alert_attempts", "downtimes", "meta")
_ORDER = {"meta": "key"}
# Numbered by the database: PostgreSQL's counters must move past the ids copied in.
_IDENTITY = ("runs", "alert_attempts", "downtimes")
_SETVAL = (
    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(COALESCE(MAX(id), 0), 1),"
    " COALESCE(MAX(id), 0) > 0) FROM {table}"
)
BATCH = 2000
RUNNING = 15.0  # a PostgreSQL source marked alive this recently, and not stopped cleanly, has a server on it


class MigrateError(Exception):
    """The copy was refused or failed; nothing was written to the target."""


class _Cursor(Protocol):
    description: Any

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, rows: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchmany(self, size: int, /) -> list[Any]: ...
    def fetchall(self) -> list[Any]: ...


@dataclass
class _Side:
    """One database through DB-API: sqlite3 or psycopg's synchronous connection."""

    database: Database
    conn: Any
    mark: str  # the placeholder: "?" or "%s"

    @property
    def postgres(self) -> bool:
        return isinstance(self.database, PostgresDatabase)

    def cursor(self) -> _Cursor:
        cursor: _Cursor = self.conn.cursor()
        return cursor

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur = self.cursor()
        cur.execute(sql.replace("?", self.mark), params)
        row = cur.fetchone()
        return None if row is None else row[0]

    def version(self) -> int:
        if not self.postgres:
            return int(self.scalar("PRAGMA user_version"))
        if not self.scalar("SELECT to_regclass('heartfly_schema') IS NOT NULL"):
            return 0
        return int(self.scalar("SELECT COALESCE(MAX(version), 0) FROM heartfly_schema"))

    def latest(self) -> int:
        return len(postgres_schema.MIGRATIONS if self.postgres else schema.MIGRATIONS)


def copy(
    source: Database, target: Database, now: float | None = None, say: Callable[[str], None] = print
) -> dict[str, int]:
    """Copy every table of `source` into the empty, current-schema `target` (made by the caller
    with backend.create); the rows per table. MigrateError says why not."""
    if source == target:
        raise MigrateError("FROM and TO are the same database")
    now = time.time() if now is None else now
    with _open(source) as src, _open(target) as dst:
        _begin(src, snapshot=True)
        _check_source(src, now)
        _begin(dst, snapshot=False)
        if dst.version() != dst.latest():
            raise MigrateError(f"{target} has schema version {dst.version()}, not {dst.latest()}")
        _refuse_filled(target, _rows(dst, TABLES))
        counts: dict[str, int] = {}
        for table in TABLES:
            counts[table], replaced = _copy_table(src, dst, table)
            expected = int(src.scalar(f"SELECT count(*) FROM {table}"))  # noqa: S608 - our own table names
            landed = int(dst.scalar(f"SELECT count(*) FROM {table}"))  # noqa: S608
            if not counts[table] == expected == landed:
                raise MigrateError(f"{table}: {expected} rows in {source}, {counts[table]} read, {landed} written")
            nul = f" ({replaced} text values had NUL bytes, which PostgreSQL cannot hold: replaced by U+FFFD)"
            say(f"{table}: {landed} rows" + (nul if replaced else ""))
        if dst.postgres:
            for table in _IDENTITY:  # the next id after the copied ones (1 for an empty table)
                dst.scalar(_SETVAL.format(table=table))
        dst.conn.commit() if dst.postgres else dst.conn.execute("COMMIT")
        return counts


def check_source(source: Database, target: Database, now: float | None = None) -> None:
    """What copy() checks of FROM, before TO is made (or an older TO migrated): a FROM that is
    missing, not Heartfly's, in use or the same as TO leaves TO as it was. MigrateError says why."""
    if source == target:
        raise MigrateError("FROM and TO are the same database")
    with _open(source) as src:
        _begin(src, snapshot=True)
        _check_source(src, time.time() if now is None else now)


def check_target(target: Database) -> None:
    """Refuse a SQLite TO that another program's tables are in (a mistyped path): making it
    Heartfly's would add tables to that program's file and set its PRAGMA user_version, which
    its own migrations read. Refuse a TO holding Heartfly's rows too: making it would migrate an
    older version's database (a copy kept for a rollback) before copy() refused it as not empty.
    Called before TO is made; MigrateError says why."""
    if isinstance(target, PostgresDatabase):
        counts = _postgres_rows(target)
    elif not Path(target).is_file():
        return
    else:
        try:
            with contextlib.closing(sqlite3.connect(file_uri(target, "ro"), uri=True)) as conn:
                if foreign := foreign_tables(conn):
                    raise MigrateError(f"{target} holds tables that are not Heartfly's ({foreign}): migrate-db"
                                       " copies only into a new or empty database")  # fmt: skip
                present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                counts = _rows(_Side(target, conn, "?"), [t for t in TABLES if t in present])
        except sqlite3.Error:
            return  # not a database: the create's error names the file
    _refuse_filled(target, counts)


def _rows(side: _Side, tables: Iterable[str]) -> list[tuple[str, int]]:
    """Each table's count of rows."""
    return [(t, int(side.scalar(f"SELECT count(*) FROM {t}"))) for t in tables]  # noqa: S608 - our own table names


def _refuse_filled(target: Database, counts: Iterable[tuple[str, int]]) -> None:
    """check_target's refusal before TO is made, and copy()'s after: one message."""
    if filled := ", ".join(f"{n} {t}" for t, n in counts if n):
        raise MigrateError(f"{target} is not empty ({filled}): migrate-db copies only into an empty database")


def _postgres_rows(target: PostgresDatabase) -> list[tuple[str, int]]:
    """The rows of each of Heartfly's tables that TO has; none if it cannot be reached (the create's
    error says why)."""
    try:
        with _open(target) as dst:
            present = [t for t in TABLES if dst.scalar("SELECT to_regclass(?::text) IS NOT NULL", (t,))]
            return _rows(dst, present)
    except MigrateError:
        return []


def _check_source(src: _Side, now: float) -> None:
    version = src.version()
    if version == 0:
        raise MigrateError(f"{src.database} has no Heartfly tables")
    if version != src.latest():
        newer = "a newer Heartfly" if version > src.latest() else "an older Heartfly"
        raise MigrateError(f"{src.database} has schema version {version}, from {newer}; this one copies version"
                           f" {src.latest()} (run `heartfly serve` of this version on it once, first)")  # fmt: skip
    if not isinstance(src.database, PostgresDatabase):
        # Its lock, not its alive mark: a backup copy carries the live server's mark.
        if in_use(src.database):
            raise MigrateError(f"a server is using {src.database}: stop it first, or pings it takes during the copy"
                               " are lost")  # fmt: skip
        return
    alive = src.scalar("SELECT value FROM meta WHERE key = ?", (ALIVE_AT,))
    clean = src.scalar("SELECT value FROM meta WHERE key = ?", (CLEAN_STOP,))
    if alive is not None and clean != "1" and now - float(alive) < RUNNING:
        raise MigrateError(f"a server is using {src.database} (alive {now - float(alive):.0f} s ago): stop it first,"
                           " or pings it takes during the copy are lost")  # fmt: skip
    read = src.cursor()
    # With whether the database watches the check (a live row, a file's or one made through the
    # API): its pings the next leader applies, and must not be offered for deletion.
    read.execute("SELECT check_name, count(*), EXISTS (SELECT 1 FROM checks WHERE name = check_name AND removed_at"
                 " IS NULL) FROM inbox GROUP BY check_name ORDER BY check_name")  # fmt: skip
    rows = read.fetchall()
    waiting = {str(name): int(count) for name, count, _ in rows}
    if waiting:
        # A leader applies only the pings of the checks its file has: those of a check only a
        # standby's file had wait for ever, and letting a node lead again (as said) changes nothing.
        named = sorted(waiting)[:10]
        listed = ", ".join(f"{name}: {waiting[name]}" for name in named) + (", …" if len(waiting) > 10 else "")
        unwatched = [str(name) for name, _, watched in rows if not watched][:10]
        advice = ""
        if unwatched:
            quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in unwatched)
            which = f"= {quoted}" if len(unwatched) == 1 else f"IN ({quoted})"
            delete = f"DELETE FROM inbox WHERE check_name {which}"  # noqa: S608 - shown, not run
            advice = (f"; those that stay of a check the database does not watch ({', '.join(unwatched)}) no leader"
                      f" applies: if no node's file has it, delete them (psql: {delete})")  # fmt: skip
        raise MigrateError(f"{src.database} holds {sum(waiting.values())} ping(s) a standby took that no leader"
                           f" applied yet ({listed}): start one node and let it lead for a moment first"
                           + advice)  # fmt: skip


def _copy_table(src: _Side, dst: _Side, table: str) -> tuple[int, int]:
    """(rows copied, text values changed). SQLite keeps NUL in text (a ping body before pings'
    NUL were replaced); PostgreSQL refuses it, and with it the whole copy: replaced as a ping's
    text is now (pingparse.storable)."""
    read = src.cursor()
    read.execute(f"SELECT * FROM {table} ORDER BY {_ORDER.get(table, 'id')}")  # noqa: S608
    columns = [d[0] for d in read.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([dst.mark] * len(columns))})"  # noqa: S608
    write = dst.cursor()
    copied = replaced = 0
    while rows := read.fetchmany(BATCH):
        values = [tuple(row) for row in rows]
        if dst.postgres:
            values, changed = _without_nul(values)
            replaced += changed
        write.executemany(insert, values)
        copied += len(rows)
    return copied, replaced


def _without_nul(rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
    changed = 0
    out = []
    for row in rows:
        if any(isinstance(v, str) and "\x00" in v for v in row):
            changed += sum(isinstance(v, str) and "\x00" in v for v in row)
            row = tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)
        out.append(row)
    return out, changed


def _begin(side: _Side, *, snapshot: bool) -> None:
    if side.postgres:
        if snapshot:  # one snapshot for every table
            side.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    else:
        side.conn.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")


@contextmanager
def _open(database: Database) -> Iterator[_Side]:
    try:
        if isinstance(database, PostgresDatabase):
            import psycopg

            from heartfly.store.pgconn import one_line

            extra: dict[str, Any] = {"application_name": "heartfly-migrate-db", "connect_timeout": 10}
            if database.password is not None:
                extra["password"] = database.password
            try:
                conn: Any = psycopg.connect(database.url, **extra)
            except psycopg.Error as exc:
                raise MigrateError(f"cannot open {database}: {one_line(exc, database)}") from None
            side = _Side(database, conn, "%s")
        else:
            if not Path(database).exists():
                raise MigrateError(f"no database at {database}")
            side = _Side(database, sqlite3.connect(database, isolation_level=None), "?")
    except StoreError as exc:
        raise MigrateError(str(exc)) from None
    try:
        yield side
    except MigrateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a driver's error mid-copy: nothing was committed
        raise MigrateError(f"the copy failed, nothing was written: {type(exc).__name__}: {exc}") from None
    finally:
        side.conn.close()
