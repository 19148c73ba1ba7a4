"""An operator's upgrade and move, end to end: a database an older Heartfly wrote, started by this
one, and a backup restored onto a new machine, with real `heartfly serve` subprocesses on real
SQLite files."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

from heartfly.store.schema import MIGRATIONS
from tests.conftest import new_key
from tests.proc import Server, heartfly


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


def _shell(line: str, root: Path) -> None:
    """A line of docs/install.md run as written, on a machine whose / is `root` (no sudo)."""
    line = line.removeprefix("sudo ").replace("-C /", f"-C {root}").replace("/var/backups", str(root / "backups"))
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (line, done.stderr)


def test_the_docs_backup_and_restore_onto_a_new_machine_keep_the_checks_and_their_ping_keys(tmp_path: Path) -> None:
    # docs/install.md's backup and restore covered the database alone: the file's checks, with
    # their ping keys, are in /etc/heartfly, which no database copy holds. Restored onto a new
    # machine, under the config its package wrote (new keys), every job's ping answered 404 and
    # the restored checks were watched by nothing.
    text = (Path(__file__).resolve().parent.parent / "docs" / "install.md").read_text(encoding="utf-8")
    section = text.split("### Backup and restore", 1)[1].split("\n### ", 1)[0]
    (keep,) = [ln for ln in section.splitlines() if "tar -C / -czf" in ln and "etc/heartfly" in ln]
    old, new, key = tmp_path / "old", tmp_path / "new", new_key()
    for machine, job_key in ((old, key), (new, new_key())):  # the new one: the package's own config
        (machine / "etc" / "heartfly").mkdir(parents=True)
        (machine / "backups").mkdir()
        (machine / "etc" / "heartfly" / "heartfly.toml").write_text(
            '[server]\nlisten = "127.0.0.1:0"\ndatabase = "../../var/lib/heartfly/heartfly.db"\n'
            f'[checks.job]\nkey = "{job_key}"\nevery = "1h"\n'
        )
    config = old / "etc" / "heartfly" / "heartfly.toml"
    with Server(config) as server:
        with urllib.request.urlopen(f"{server.url}/ping/{key}/fail", data=b"", timeout=10) as resp:
            assert resp.status == 200
        done = heartfly("backup", "-c", str(config), str(old / "backups" / "heartfly.db"))
        assert done.returncode == 0, done.stderr
        assert server.stop() == 0
    _shell(keep, old)
    (archive,) = (old / "backups").glob("heartfly-etc-*.tar.gz")
    assert archive.stat().st_mode & 0o077 == 0, oct(archive.stat().st_mode)  # it holds the keys

    # The new machine: the folder back first, as the docs say, then the database.
    with tarfile.open(archive) as tar:
        tar.extractall(new, filter="data")
    (new / "var" / "lib" / "heartfly").mkdir(parents=True)
    shutil.copyfile(old / "backups" / "heartfly.db", new / "var" / "lib" / "heartfly" / "heartfly.db")
    with Server(new / "etc" / "heartfly" / "heartfly.toml") as server:
        with urllib.request.urlopen(f"{server.url}/ping/{key}", data=b"", timeout=10) as resp:
            assert resp.status == 200
        assert server.wait_for_log("check job: down -> up"), server.log()
        assert server.stop() == 0
