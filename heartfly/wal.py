"""SQLite's WAL checkpoints (copying the log into the database file), run by a thread of their own.

Left to SQLite, a checkpoint runs inside the commit that takes the WAL past 1,000 pages, and every
ping in that commit waits for it. With 100k checks, pings and state rows land on pages scattered
over the file, so that checkpoint copied a thousand scattered pages and synced twice: the p99 of
a ping was that commit. Here a thread copies the WAL every CHECKPOINT_EVERY seconds, concurrently
with the writer (a PASSIVE checkpoint never blocks it), and the writer's own automatic checkpoint
is kept only as a bound on the WAL's size in case this thread falls behind: by the time the
writer's would run, nearly everything is copied already.

(Not to be confused with the engine's state checkpoints, which are rows, not pages.)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.1  # seconds
WRITER_LIMIT = 20_000  # pages (80 MiB): the writer checkpoints itself only past this


class WalCheckpointer:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartfly-wal", daemon=True)
        self.runs = 0

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
        failing = False
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a full disk, say: the writer reports that loudly
                    if not failing:
                        log.warning("WAL checkpoint failed (will retry): %s", exc)
                    failing = True
                else:
                    failing = False
                    self.runs += 1
        finally:
            conn.close()
