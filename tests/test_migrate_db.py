"""`heartfly migrate-db FROM TO`: a real server's SQLite database into PostgreSQL and back, every
table equal; refusals for a non-empty target and a source still in use. Real processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from heartfly.store.migrate import TABLES
from tests import pgserver
from tests.conftest import new_key
from tests.proc import Server, heartfly

KEY, START = new_key(), new_key()


def write(tmp_path: Path, database: str | Path) -> Path:
    path = tmp_path / f"heartfly-{abs(hash(str(database)))}.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "{database}"\n'
        '[channels.journal]\ntype = "log"\n'
        f'[checks.job]\nkey = "{KEY}"\nevery = "1h"\nchannels = ["journal"]\n'
        f'[checks.other]\nkey = "{START}"\ncron = "0 3 * * *"\n'
    )
    return path


def rows(database: str | Path, table: str) -> list[tuple[Any, ...]]:
    order = "key" if table == "meta" else "id"
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    if isinstance(database, Path):
        with sqlite3.connect(database) as conn:
            return [tuple(r) for r in conn.execute(sql)]
    import psycopg

    with psycopg.connect(database) as conn:
        return [tuple(r) for r in conn.execute(sql)]


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A SQLite database a real server filled: pings, a run, a failure, its flip and its alert."""
    import urllib.request

    db = tmp_path / "first.db"
    with Server(write(tmp_path, db)) as server:
        for path in (f"/ping/{KEY}/start?rid=r1", f"/ping/{KEY}?rid=r1", f"/ping/{KEY}/fail", f"/ping/{START}"):
            with urllib.request.urlopen(urllib.request.Request(server.url + path, data=b"body")) as resp:
                assert resp.status == 200
        assert server.wait_for_log("via journal: sent")
        assert server.stop() == 0
    return db


def test_a_sqlite_database_goes_to_postgresql_and_back_with_every_table_equal(
    tmp_path: Path, filled: Path, pg_server: pgserver.PgServer
) -> None:
    url = pg_server.database()
    result = heartfly("migrate-db", str(filled), url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "counts checked" in result.stdout
    for table in ("checks", "pings", "flips", "runs", "outbox", "alert_attempts", "downtimes", "meta"):
        assert len(rows(url, table)) == len(rows(filled, table)), table
    assert len(rows(url, "pings")) == 4 and len(rows(url, "runs")) == 1 and rows(url, "outbox")
    # A server on the copy carries on where the first stopped: the failure is still down.
    config = write(tmp_path, url)
    with Server(config) as server:
        status = heartfly("status", "-c", str(config))
        assert server.stop() == 0
    job = next(line for line in status.stdout.splitlines() if line.startswith("job"))
    assert "down (failed)" in job, status.stdout
    back = tmp_path / "back.db"
    result = heartfly("migrate-db", url, str(back), timeout=60)
    assert result.returncode == 0, result.stderr
    for table in TABLES:
        assert rows(back, table) == rows(url, table), table


def test_a_target_that_is_not_empty_is_refused_and_left_alone(
    tmp_path: Path, filled: Path, pg_server: pgserver.PgServer
) -> None:
    url = pg_server.database()
    assert heartfly("migrate-db", str(filled), url, timeout=60).returncode == 0
    before = {table: rows(url, table) for table in TABLES}
    result = heartfly("migrate-db", str(filled), url, timeout=60)
    assert result.returncode == 1
    assert "is not empty (2 checks, 4 pings" in result.stderr, result.stderr
    assert {table: rows(url, table) for table in TABLES} == before


def test_nul_bytes_an_older_version_stored_in_sqlite_are_replaced_on_the_way_to_postgresql_and_counted(
    tmp_path: Path, filled: Path, pg_server: pgserver.PgServer
) -> None:
    # Pings now store NUL as U+FFFD (pingparse.storable); a database from before holds it as sent.
    with sqlite3.connect(filled) as conn:
        first = "(SELECT MIN(id) FROM pings)"
        conn.execute(f"UPDATE pings SET body = 'rows: 12' || char(0) || char(0) || ' tail' WHERE id = {first}")
    url = pg_server.database()
    result = heartfly("migrate-db", str(filled), url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pings: 4 rows (1 text values had NUL bytes" in result.stdout, result.stdout
    assert "rows: 12\ufffd\ufffd tail" in [r[7] for r in rows(url, "pings")]


def test_a_source_a_server_is_using_is_refused(tmp_path: Path, filled: Path) -> None:
    with Server(write(tmp_path, filled)):
        result = heartfly("migrate-db", str(filled), str(tmp_path / "copy.db"), timeout=60)
    assert result.returncode == 1
    assert "a server is using" in result.stderr and "stop it first" in result.stderr, result.stderr
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("by_env", [False, True])
def test_without_from_the_configs_own_database_is_copied(tmp_path: Path, filled: Path, by_env: bool) -> None:
    config, copied = write(tmp_path, filled.name), tmp_path / "copy.db"  # relative: to the config file
    if by_env:
        result = heartfly("migrate-db", str(copied), env={"HEARTFLY_CONFIG": str(config)}, timeout=60)
    else:
        result = heartfly("migrate-db", "-c", str(config), str(copied), timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"from {filled} to {copied}" in result.stdout
    for table in TABLES:
        assert rows(copied, table) == rows(filled, table), table


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("a.db", "b.db", "c.db"), "at most FROM and TO, got 3"),
        (("--from-password-file", "pw", "b.db"), "--from-password-file goes with FROM"),
    ],
)
def test_migrate_db_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], error: str) -> None:
    result = heartfly("migrate-db", *args, timeout=60)
    assert result.returncode == 2 and error in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("same.db", "same.db"), "FROM and TO are the same database"),
        (("missing.db", "copy.db"), "no database at"),
        (("postgresql://x:hunter2@127.0.0.1:1/db", "copy.db"), "cannot open postgresql://x:***@127.0.0.1:1/db"),
    ],
)
def test_bad_arguments_are_one_clear_line(tmp_path: Path, args: tuple[str, str], error: str) -> None:
    (tmp_path / "same.db").touch()
    result = heartfly("migrate-db", *(str(tmp_path / a) if "://" not in a else a for a in args), timeout=60)
    assert result.returncode == 1, result.stdout
    assert error in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "hunter2" not in result.stderr
    assert not (tmp_path / "copy.db").exists()  # a FROM refused leaves no empty TO behind


@pytest.mark.parametrize("user_version", [0, 2], ids=["unset", "its-own"])
def test_a_sqlite_target_of_another_program_is_refused_and_left_alone(
    tmp_path: Path, filled: Path, user_version: int
) -> None:
    # A mistyped TO naming another program's database: Heartfly's tables were added to it, its
    # journal mode made WAL and its user_version (that program's own migrations read it) set.
    # One numbering its own schema in user_version (2) was given Heartfly's migrations from 3 on.
    other = tmp_path / "grafana.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE dashboard (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("INSERT INTO dashboard (title) VALUES ('ops')")
        conn.execute(f"PRAGMA user_version = {user_version}")
    before = other.read_bytes()
    result = heartfly("migrate-db", str(filled), str(other), timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {other} holds tables that are not Heartfly's (dashboard): migrate-db copies only into a new or"
        " empty database\n"
    )
    assert other.read_bytes() == before


def test_a_backup_taken_from_a_running_server_is_copied_at_once_not_called_in_use(tmp_path: Path, filled: Path) -> None:
    # The copy carries the live server's "alive" mark: for 15 s migrate-db refused it, saying a
    # server was using the backup file. A server holds its database's lock file; a copy has none.
    copy = tmp_path / "backup.db"
    with Server(write(tmp_path, filled)):
        assert heartfly("backup", str(copy), "-c", str(write(tmp_path, filled))).returncode == 0
        result = heartfly("migrate-db", str(copy), str(tmp_path / "moved.db"), timeout=60)
        assert result.returncode == 0, result.stderr
        in_use = heartfly("migrate-db", str(filled), str(tmp_path / "other.db"), timeout=60)
    assert in_use.returncode == 1 and "a server is using" in in_use.stderr, in_use.stderr
    assert rows(tmp_path / "moved.db", "pings") == rows(copy, "pings")


def test_a_sqlite_target_holding_an_older_heartflys_data_is_refused_before_it_is_migrated(
    tmp_path: Path, filled: Path
) -> None:
    # TO mistyped as the copy an upgrade kept (before-upgrade.db, an older schema with rows): it was
    # migrated to this version's schema, then refused as not empty. The older version, the one the
    # copy is there for, then refused it as newer: the way back was gone.
    from heartfly.store.schema import MIGRATIONS

    old = tmp_path / "before-upgrade.db"
    with sqlite3.connect(old) as conn:
        conn.executescript("".join(f"{m};" for m in MIGRATIONS[:6]) + "PRAGMA user_version = 6;")
        conn.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'job', 0, '{}')")
    before = old.read_bytes()
    result = heartfly("migrate-db", str(filled), str(old), timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"error: {old} is not empty (1 checks): migrate-db copies only into an empty database\n"
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob("before-upgrade.db*")) == ["before-upgrade.db"]


def test_a_postgresql_target_holding_an_older_heartflys_data_is_refused_before_it_is_migrated(
    tmp_path: Path, filled: Path, pg_server: pgserver.PgServer
) -> None:
    # As for SQLite: a wrong TO URL naming an older cluster's database had its schema migrated.
    import psycopg

    from heartfly.store.postgres_schema import MIGRATIONS

    url = pg_server.database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE heartfly_schema (version INTEGER PRIMARY KEY)")
        for number, migration in enumerate(MIGRATIONS[:3], start=1):
            conn.execute(migration.encode())
            conn.execute("INSERT INTO heartfly_schema (version) VALUES (%s)", (number,))
        conn.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'job', 0, '{}')")
    result = heartfly("migrate-db", str(filled), url, timeout=60)
    assert result.returncode == 1
    assert "is not empty (1 checks): migrate-db copies only into an empty database" in result.stderr, result.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT MAX(version) FROM heartfly_schema").fetchone() == (3,)
