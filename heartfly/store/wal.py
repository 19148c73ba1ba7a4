"""SQLite's WAL checkpoints (copying the log into the database file), run by a thread of their own.

Left to SQLite, a checkpoint runs inside the commit that takes the WAL past 1,000 pages, and every
ping in that commit waits for it. With 100k checks, pings and state rows land on pages scattered
over the file, so that checkpoint copied a thousand scattered pages and synced twice: the p99 of
a ping was that commit. Here a thread copies the WAL every CHECKPOINT_EVERY seconds, concurrently
with the writer (a PASSIVE checkpoint never blocks it). The writer's own automatic checkpoint is
kept, at a higher bound: under a steady load the writer appends while this thread copies, so the
WAL is only restarted from its beginning when the writer's checkpoint runs at that bound, and by
then nearly everything is copied already (measured: the WAL file stays at the bound, 21 MB with
1 KiB pages, under 15k pings/s).

(Not to be confused with the engine's state checkpoints, which are rows, not pages.)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.1  # seconds
WRITER_LIMIT = 20_000  # pages (20 MiB at 1 KiB, 80 MiB at 4 KiB): the writer checkpoints itself past this
# Seconds of failing copies before they are a problem (Writer.watch_file refuses pings): the WAL
# then only grows, and what it holds is in no file that a restore or a backup of the database has.
FAILING_AFTER = 5.0


class WalCheckpointer:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartfly-wal", daemon=True)
        self._failing_since: float | None = None  # time.monotonic() of the first failure of a spell
        self._error = ""

    def problem(self) -> str | None:
        """Why the WAL is not being copied into the database file, once that has lasted FAILING_AFTER."""
        since = self._failing_since  # one read: the copier's thread sets it
        if since is None or time.monotonic() - since < FAILING_AFTER:
            return None
        return f"the WAL of {self._path} cannot be copied into the database file: {self._error}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("cannot open %s for WAL checkpoints, the writer will do them: %s", self._path, exc)
            return
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a full disk, say: problem() makes it the writer's
                    if self._failing_since is None:
                        log.warning("WAL checkpoint failed (will retry): %s", exc)
                        self._error = str(exc)
                        self._failing_since = time.monotonic()
                else:
                    if self._failing_since is not None:
                        log.info("WAL checkpoints work again")
                    self._failing_since = None
        finally:
            conn.close()
