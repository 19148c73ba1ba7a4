"""SQLite through aiosqlite: schema migrations, one writer with group commit, and the read connection
(open_reader; its queries are in queries.py).

Writes go through `Writer`: callers queue rows and await a future that resolves once the rows are
committed, in batches (groupcommit.GroupCommitter).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import itertools
import logging
import os
import queue
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from heartfly.store import api, wal
from heartfly.store.api import DiskFull, Locked
from heartfly.store.api import StoreError as StoreError  # re-exported: raised here, caught by callers
from heartfly.store.groupcommit import GroupCommitter, gather, runs_of
from heartfly.store.reader import SqliteReader
from heartfly.store.rows import INSERT_FLIP, INSERT_OUTBOX, INSERT_PING, INSERT_RUN, PingRow, Write, encode_state
from heartfly.store.schema import MIGRATIONS

log = logging.getLogger(__name__)


def file_uri(path: Path | str, mode: str) -> str:
    """SQLite's URI for a file, opened in `mode` ("ro", "rw"): its path quoted, so that a "?" or
    "#" in a name is the name's, not the URI's (else another file is opened)."""
    return f"file:{urllib.parse.quote(str(path))}?mode={mode}"


def read_uri(path: Path) -> str:
    """The URI a read opens: read-only, and on a read-only file system (a disk the kernel remounted
    so after errors, a snapshot) with no WAL file beside the database, immutable as well, for
    SQLite would make its -shm file there (and fails to) before any read. With no WAL every commit
    is in the file, and nothing can write one there: it is exact. A WAL file left there (a crash)
    is read through as anywhere."""
    uri = file_uri(path, "ro")
    try:
        read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY) and not os.path.lexists(f"{path}-wal")
    except OSError:  # the open says what is wrong
        return uri
    return f"{uri}&immutable=1" if read_only else uri


async def open_reader(path: Path) -> SqliteReader:
    """The read side (api.Reader) over a read-only connection of its own. StoreError says what failed."""
    return SqliteReader(await connect(path))


def other_schema(path: Path) -> str | None:
    """Why this version's queries cannot read the database, if its schema is another version's: a
    file the server of an older Heartfly has not migrated yet (its restart after a package upgrade
    does), or one a newer Heartfly migrated (a rollback). A query would fail on a missing column."""
    conn = sqlite3.connect(read_uri(path), uri=True)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    if version < len(MIGRATIONS) and version:  # 0: not Heartfly's, told by the queries' own error
        return (
            f"the database {path} has schema version {version}, older than this Heartfly ({len(MIGRATIONS)}):"
            " `heartfly serve` of this version migrates it at its start (systemctl restart heartfly)"
        )
    if version > len(MIGRATIONS):
        return _newer(path, version)
    return None


def _newer(path: Path, version: int) -> str:
    """A database a newer Heartfly migrated (a rollback): the one line names the file, as every start error does."""
    return f"the database {path} has schema version {version}, newer than this Heartfly ({len(MIGRATIONS)})"


async def connect(path: Path, *, readonly: bool = True) -> aiosqlite.Connection:
    """A connection for reads (API, CLI, start-up). StoreError says what failed."""
    pending = (
        aiosqlite.connect(read_uri(path), uri=True, isolation_level=None)
        if readonly
        else aiosqlite.connect(path, isolation_level=None)
    )
    try:
        db = await pending
    except (OSError, sqlite3.Error) as exc:
        # aiosqlite stops its worker thread on a failed open without waiting for it, and the thread
        # then answers a loop that the command line's asyncio.run may have closed: a traceback
        # ("Event loop is closed") under the one-line error. Wait for it (a private attribute: if
        # aiosqlite drops it, the wait is skipped).
        thread = getattr(pending, "_thread", None)
        if isinstance(thread, threading.Thread):
            await asyncio.to_thread(thread.join, 5)
        raise _error(f"cannot open database {path}", exc) from None
    try:
        await db.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        await db.close()
        raise StoreError(f"cannot use database {path}: {exc}") from None
    return db


# Made by Heartfly's first migration, with user_version 1, in one transaction; kept by every version
# since (only these two: a newer version's file, a rollback, must still be told apart as newer).
_OWN_TABLES = frozenset({"checks", "meta"})


def foreign_tables(conn: sqlite3.Connection) -> str:
    """The tables, listed, of another program's database: tables, but not those Heartfly's first
    migration made (with user_version, in one transaction), or no user_version. Other programs
    number their schema in user_version too: one at 2 would be given Heartfly's migrations from 3
    on. Empty for a new or Heartfly's file."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if not names or (int(conn.execute("PRAGMA user_version").fetchone()[0]) and set(names) >= _OWN_TABLES):
        return ""
    return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")


def _create_private(path: Path) -> None:
    """A new database file, readable by its owner alone whatever the umask: it holds every ping's
    body and the keys of checks made through the API. SQLite gives its -wal and -shm files the
    database file's mode. An existing file is left as it is (the operator's to set)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def _open_for_writing(path: Path, synchronous: str) -> sqlite3.Connection:
    if sqlite3.sqlite_version_info < (3, 33):  # UPDATE ... FROM
        raise StoreError(f"Heartfly needs SQLite 3.33 or newer; this Python has {sqlite3.sqlite_version}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise _error(f"cannot open database {path}", exc) from None
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        if foreign := foreign_tables(conn):  # before WAL mode and the migrations change the file
            raise StoreError(f"cannot use database {path}: it holds tables that are not Heartfly's ({foreign}):"
                             " is it another program's?")  # fmt: skip
        # A new file only (an existing one keeps its size). Pings land on index pages scattered
        # over the file, and a commit writes each page it touched whole: 1 KiB pages write a
        # quarter of the bytes of the default 4 KiB (bench: about 40 % less writer CPU per ping).
        conn.execute("PRAGMA page_size = 1024")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {wal.WRITER_LIMIT}")  # see wal.py
        # A long reader (a backup's VACUUM INTO) lets the WAL grow past that bound; without a
        # limit its file keeps the high-water size for as long as the server runs.
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA journal_size_limit = {wal.WRITER_LIMIT * page_size}")
        _migrate(conn, path)
        # A write now, not at the first ping: a file this user cannot write (a restore copied as
        # root) fails the start naming the file, instead of every commit after it.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.executescript(f"BEGIN IMMEDIATE; PRAGMA user_version = {version}; COMMIT;")
    except (OSError, sqlite3.Error, StoreError) as exc:
        conn.close()
        if isinstance(exc, StoreError):
            raise
        raise _error(f"cannot use database {path}", exc) from None
    return conn


_SQLITE_ERROR, _SQLITE_FULL = 1, 13
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


# What a read raises on a file damaged past the pages its open read (the store speaks SQL: callers
# outside it catch this name, not sqlite3's).
ReadError = sqlite3.Error


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite found the file's own bytes damaged: no retry or restart mends that."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def is_unknown_name(exc: sqlite3.Error) -> bool:
    """Whether a query named a column or table the file lacks (`no such column`): SQLite's generic
    error, the one a file of another schema version gives, never the disk's or a lock's."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_ERROR


def _error(what: str, exc: OSError | sqlite3.Error) -> StoreError:
    """StoreError saying `what` failed and why; DiskFull where the disk or the quota is full,
    told by the error itself (the space a failed write took back may be free again by now);
    Locked where another program held the file's lock past busy_timeout."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF if isinstance(exc, sqlite3.Error) else 0
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or code == _SQLITE_FULL:
        return DiskFull(f"{what}: {exc}")
    return (Locked if code in (_SQLITE_BUSY, _SQLITE_LOCKED) else StoreError)(f"{what}: {exc}")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations this file has not seen yet."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(_newer(path, version))
    if version == len(MIGRATIONS):
        return
    with api.migrating():
        for number in range(version + 1, len(MIGRATIONS) + 1):
            conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]}; PRAGMA user_version = {number}; COMMIT;")
            if version:  # an upgrade says each step; a new file is one line, not a list of every version
                log.info("database migrated to schema version %d", number)
    if not version:
        log.info("database %s created (schema version %d)", path, len(MIGRATIONS))


class FileWatch:
    """Whether the database file and its WAL are still the ones the connections have open.

    Removed or replaced under a running server, SQLite goes on writing to the old file, which
    nobody can open again: every acknowledged ping would be lost (the WAL's at a crash, as it
    holds the commits not yet copied into the database file). A descriptor of our own tells that
    file apart from whatever is at the path now (even a new file on a reused inode number).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wal = Path(f"{path}-wal")
        self._fd = os.open(path, os.O_RDONLY)
        try:  # the writer has read the database, so SQLite has made and opened its WAL
            self._wal_fd = os.open(self._wal, os.O_RDONLY)
        except OSError:
            os.close(self._fd)
            raise

    def problem(self) -> str | None:
        if not _same(self._fd, self.path):
            return (
                f"the database file {self.path} was removed or replaced while in use; a restart starts an empty"
                " database"
            )
        if not _same(self._wal_fd, self._wal):
            return (
                f"the database's WAL file {self._wal} was removed or replaced while in use; the pings it holds"
                " are lost if the server stops or crashes before it is back"
            )
        return None

    def close(self) -> None:
        """Only once SQLite's connections are closed: closing any descriptor of a file drops the
        process's POSIX locks on it, SQLite's included."""
        os.close(self._wal_fd)
        os.close(self._fd)


def _same(fd: int, path: Path) -> bool:
    """Whether `path` is still the file open as `fd`."""
    opened = os.fstat(fd)
    try:
        now = os.stat(path)
    except OSError:  # gone, or unreachable (a folder on the way replaced, no permission, stale NFS)
        return False
    return bool(opened.st_nlink) and (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def _lock(path: Path) -> int:
    """Hold `<database>.lock` for the writer's life: a second `heartfly serve` on the same file
    would number pings from its own counters and fire every deadline twice. An flock, not SQLite's
    locks (those are per transaction); released by the kernel however the process ends."""
    lock = _lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(f"cannot open database {path}", exc) from None
    while True:
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _error(f"cannot open database {path}: cannot open its lock file {lock}", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreError(f"the database {path} is in use by another heartfly serve (it holds {lock})") from None
            raise StoreError(f"cannot lock database {path} (through {lock}): {exc.strerror}") from None
        if _same(fd, lock):
            return fd
        os.close(fd)  # a server stopping removed it after we opened it: lock the one at the path now


def in_use(path: Path) -> bool:
    """Whether a `heartfly serve` holds the database's lock (_lock) now. A shared lock, tried and
    let go at once: a copy of the file (a backup) has no lock file, a stopped server's is free."""
    try:
        fd = os.open(_lock_path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # and with it the lock
    return False


def _lock_path(path: Path) -> Path:
    return Path(f"{path}.lock")


def _unlock(path: Path, fd: int) -> None:
    """Remove the lock file, then let it go: a server starting meanwhile finds the file it locked
    gone (_lock) and locks a new one, so none is left beside a stopped server's database."""
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(path))
    os.close(fd)


_T = TypeVar("_T")


class WriterThread:
    """A thread that runs the calls handed to it one at a time, in order, each result going back to
    the event loop as an asyncio future.

    Not run_in_executor with a one-thread ThreadPoolExecutor: per call, that takes Python locks and
    a semaphore (ThreadPoolExecutor.submit) and chains two futures (wrap_future), several times the
    event loop's work of this hand-off (one SimpleQueue.put, one call_soon_threadsafe); the writer
    makes one call per commit, and under load commits follow each other without a pause.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._calls: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._calls = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def run(self, call: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue `call(*args)`; the future has its result or its exception."""
        fut: asyncio.Future[_T] = self._loop.create_future()
        self._calls.put((fut, call, args))
        return fut

    def stop(self) -> None:
        """Let the calls queued so far run, then end the thread (blocks until it has)."""
        self._calls.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            fut, call, args = item
            try:
                result, error = call(*args), None
            except BaseException as exc:  # noqa: BLE001 - the waiter gets it, as from an executor
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_settle, fut, result, error)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():  # its waiter was cancelled (GroupCommitter.abandon)
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class Writer(GroupCommitter):
    """The one writer: a thread of its own with one connection, group-committing queued `Write`s.

    A batch is one call into the thread (BEGIN ... COMMIT), so the event loop pays one hand-off
    per batch, not one per statement.
    """

    def __init__(
        self, conn: sqlite3.Connection, thread: WriterThread, copier: wal.WalCheckpointer, watch: FileWatch, lock: int
    ) -> None:
        super().__init__()
        self._lock = lock
        self._conn = conn
        self._thread = thread
        self._wal = copier
        self._watch = watch
        self._damaged: str | None = None  # a commit found the file damaged: for good, as a lost file

    @classmethod
    async def open(cls, path: Path, synchronous: str = "normal") -> Writer:
        """Lock (_lock), open (creating it and its folder), switch to WAL and migrate; StoreError
        says what failed."""
        # SQLite keeps a symlinked database's WAL beside the file the link names: watched and locked there.
        real = Path(os.path.realpath(path))  # noqa: ASYNC240 - once, at start, as _lock's own opening
        lock = _lock(real)
        thread = WriterThread("heartfly-writer")
        try:
            conn = await thread.run(_open_for_writing, path, synchronous)
        except BaseException:
            thread.stop()
            _unlock(real, lock)  # held by us: nothing is left beside a file that could not be used
            raise
        try:
            watch = FileWatch(real)
        except OSError as exc:
            conn.close()
            thread.stop()
            os.close(lock)
            raise StoreError(f"cannot open database {path}: {exc}") from None
        return cls(conn, thread, wal.WalCheckpointer(path), watch, lock)

    def watch_file(self) -> None:
        """Refuse pings while the database file or its WAL is not the one open (FileWatch), or the
        WAL cannot be copied into the database file (wal.WalCheckpointer.problem); logged once a spell."""
        lost = self._damaged or self._watch.problem() or self._wal.problem()
        if lost is not None and lost != self.lost:
            log.error("%s: pings are refused (503) until that is mended", lost)
        elif lost is None and self.lost is not None and self._broken:  # said when a write works ("writes work again")
            log.warning("the database file %s is back and its WAL usable; pings are refused until a write works",
                        self._watch.path)  # fmt: skip
        elif lost is None and self.lost is not None:
            log.warning("the database file %s is back and its WAL usable; pings are taken again", self._watch.path)
        self.lost = lost
        self.failing = self._broken or lost is not None

    def start(self) -> None:
        self._wal.start()
        self._start_task()

    async def close(self) -> None:
        """Commit what is queued, stop, and close the connection (SQLite then removes the WAL)."""
        try:
            await self._stop_task()
        finally:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._wal.stop)
            await self._thread.run(self._conn.close)
            self._thread.stop()
            self._watch.close()
            _unlock(self._watch.path, self._lock)  # last: another server may use the file once all is closed

    async def _commit_batch(self, writes: list[Write]) -> None:
        try:
            await self._thread.run(self._commit, writes)
        except sqlite3.Error as exc:  # says which file: a start that fails on it prints this one line
            if is_damage(exc) and self._damaged is None:
                # Retries of the writes that miss the damaged pages succeed: without this the
                # server looked healthy (readiness, heartbeat) while every ping was refused.
                path = self._watch.path
                # `.recover` prints SQL and leaves the file as it is: what it finds goes into a new file.
                self._damaged = (
                    f"the database file {path} is damaged ({exc}); stop Heartfly and restore it from a backup,"
                    f" or restore what is left of it: `sqlite3 {path} .recover | sqlite3 {path}.recovered`"
                )
                self._failures_told = True
                self.watch_file()
            raise StoreError(f"cannot write database {self._watch.path}: {exc}") from None

    def _commit(self, writes: list[Write]) -> None:
        """Runs in the writer thread."""
        batch = gather(writes)
        assert not batch.inbox and not batch.inbox_done, "the inbox is a cluster's, and a cluster is PostgreSQL's"
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in runs_of(batch.statements):
                conn.executemany(sql, rows)
            if batch.pings:
                _insert_pings(conn, batch.pings)
            if batch.flips:
                conn.executemany(INSERT_FLIP, batch.flips)
            if batch.runs:
                conn.executemany(INSERT_RUN, batch.runs)
            if batch.outbox:
                conn.executemany(INSERT_OUTBOX, batch.outbox)
            for sql, params in batch.amends:
                conn.execute(sql, params)
            if batch.states:
                _update_states(conn, [(r.check_id, encode_state(r.state), r.ping_id) for r in batch.states])
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise


# SQLite binds at most 32,766 parameters per statement; a ping row has 15.
_PINGS_PER_INSERT = 2000
_PING_ROW = "(" + ",".join("?" * 15) + ")"


@functools.lru_cache(maxsize=64)
def _multi_insert(rows: int) -> str:
    return INSERT_PING.split(" VALUES ")[0] + " VALUES " + ",".join([_PING_ROW] * rows)


def _in_chunks(
    conn: sqlite3.Connection, statement: Callable[[int], str], rows: Sequence[tuple[Any, ...]], per_statement: int
) -> None:
    """One multi-row statement per chunk of rows, not executemany.

    The sqlite3 module releases the GIL around each statement step; with executemany that is one
    release per row, and each re-acquisition waits for the busy event loop (the GIL convoy).
    The parameters are flattened in C (itertools.chain, into a tuple): about 2.5 times faster than
    a nested comprehension, with the GIL held that the event loop waits for.
    """
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        conn.execute(statement(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))


def _insert_pings(conn: sqlite3.Connection, pings: list[PingRow]) -> None:
    _in_chunks(conn, _multi_insert, pings, _PINGS_PER_INSERT)


_STATES_PER_UPDATE = 2000  # 3 parameters each


@functools.lru_cache(maxsize=16)
def _multi_update(rows: int) -> str:
    values = ",".join(["(?,?,?)"] * rows)
    return (
        f"UPDATE checks SET state = v.column2, state_ping_id = v.column3 FROM (VALUES {values}) AS v"  # noqa: S608 - placeholders only
        " WHERE checks.id = v.column1"
    )


def _update_states(conn: sqlite3.Connection, rows: list[tuple[int, str, int]]) -> None:
    _in_chunks(conn, _multi_update, rows, _STATES_PER_UPDATE)
