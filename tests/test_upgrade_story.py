"""An operator's upgrade, end to end: a database an older Heartfly wrote, started by this one as a
real `heartfly serve` subprocess on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from heartfly.store.schema import MIGRATIONS
from tests.conftest import new_key
from tests.proc import Server


def _version_1_database(path: Path, now: float) -> None:
    """A file as schema version 1 left it, its text as that version wrote it: check `job` pinged a
    success, then a failure, an hour ago, and down since. A state row was written with every
    ping, in the ping's commit: it included them all (there was no state_ping_id to say so)."""
    ok, failed = now - 3600, now - 3599
    state = {
        "status": "down", "reason": "failed", "changed_at": failed, "watched_from": ok - 60, "anchor": failed,
        "due_at": failed + 7200, "due_since": failed + 7200, "slack": 0.0, "last_ping_at": failed,
        "last_ping_kind": "fail", "last_success_at": ok, "last_start_at": None, "last_duration": None,
        "last_exit_status": None, "failures": 1, "runs": {},
    }  # fmt: skip
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.executescript(f"{MIGRATIONS[0]}; PRAGMA user_version = 1;")
        conn.execute("INSERT INTO checks VALUES (1, 'job', ?, NULL, ?)", (ok - 60, json.dumps(state)))
        for number, (at, kind) in enumerate([(ok, "success"), (failed, "fail")], start=1):
            conn.execute(
                "INSERT INTO pings (id, check_id, at, received_at, kind, method, source)"
                " VALUES (?, 1, ?, ?, ?, 'GET', '::1')",
                (number, at, at, kind),
            )
        conn.executemany(
            "INSERT INTO flips (id, check_id, at, old, new, reason, deadline) VALUES (?, 1, ?, ?, ?, ?, NULL)",
            [(1, ok, "new", "up", None), (2, failed, "up", "down", "failed")],
        )
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("alive_at", str(now - 60)), ("clean_stop", "1")])
    conn.close()


def _flips(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        rows = [(r[0], r[1]) for r in conn.execute("SELECT old, new FROM flips ORDER BY id")]
    conn.close()
    return rows


def test_a_version_1_database_is_upgraded_without_replaying_the_pings_its_states_hold(tmp_path: Path) -> None:
    # Migration 2 gave every state row state_ping_id 0, "includes no ping": the first start of a
    # newer Heartfly replayed a check's whole ping log over a state that held it already, so a
    # check down since its last failure was recorded recovering and failing again, and each of
    # those changes was alerted: a recovery and a down nobody's job had made.
    config = tmp_path / "hb.toml"
    config.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n\n[channels.journal]\ntype = "log"\n\n'
        f'[checks.job]\nkey = "{new_key()}"\nevery = "2h"\nchannels = ["journal"]\n'
    )
    _version_1_database(tmp_path / "hb.db", time.time())
    before = _flips(tmp_path / "hb.db")
    with Server(config) as server:
        assert server.wait_for_log("deadline(s) that fell in that time"), server.log()  # every state read
        assert server.stop() == 0
    assert "database migrated to schema version 2" in server.log()
    assert _flips(tmp_path / "hb.db") == before, server.log()
    assert "[UP]" not in server.log() and "[DOWN]" not in server.log(), server.log()
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    conn.close()
