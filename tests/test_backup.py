"""`heartfly backup PATH`: a consistent copy of the live database while pings keep arriving."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_faults import a_tmpfs


def write(path: Path, checks: str) -> Path:
    path.write_text(f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n\n{checks}')
    return path


def test_backup_during_a_stream_of_pings_holds_every_ping_acknowledged_before_it(tmp_path: Path) -> None:
    keys = [new_key() for _ in range(4)]
    config = write(
        tmp_path / "hb.toml", "".join(f'[checks.c{i}]\nkey = "{k}"\nevery = "1h"\n' for i, k in enumerate(keys))
    )
    acked = 0
    stop = threading.Event()

    with Server(config) as server:

        async def pinger() -> None:
            nonlocal acked
            async with aiohttp.ClientSession() as session:
                i = 0
                while not stop.is_set():
                    i += 1
                    async with session.post(f"{server.url}/ping/{keys[i % 4]}/log", data=f"line {i}") as resp:
                        assert (resp.status, await resp.text()) == (200, "OK")
                    acked += 1

        thread = threading.Thread(target=asyncio.run, args=(pinger(),), daemon=True)
        thread.start()
        try:
            while acked < 50:  # the backup runs while the writer is busy
                threading.Event().wait(0.01)
            before = acked
            result = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
            after = acked
        finally:
            stop.set()
            thread.join(10)
        assert result.returncode == 0, result.stderr
        assert server.stop() == 0

    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        pings = copy.execute("SELECT count(*) FROM pings").fetchone()[0]
        assert copy.execute("SELECT count(*) FROM checks").fetchone()[0] == 4
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
    assert before <= pings <= after  # "200 means recorded" holds for the copy too
    assert result.stdout.strip().endswith(f"4 checks, {pings} pings")
    with sqlite3.connect(tmp_path / "hb.db") as live:
        assert live.execute("SELECT count(*) FROM pings").fetchone()[0] == acked
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600  # ping bodies are not for everyone


def test_backup_never_overwrites_and_leaves_no_wal_next_to_a_stopped_servers_database(tmp_path: Path) -> None:
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    first = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
    assert first.returncode == 0, first.stderr
    assert "1 checks, 0 pings" in first.stdout
    assert sorted(p.name for p in tmp_path.glob("hb.db*")) == ["hb.db"]
    again = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: {tmp_path / 'copy.db'} exists; not overwriting it"
    long_name = tmp_path / ("b" * 250 + ".db")  # a valid name: the partial file's beside it must be too
    long = heartfly("backup", "-c", str(config), str(long_name))
    assert long.returncode == 0 and long_name.exists(), long.stderr
    wide_name = tmp_path / ("字" * 83 + ".db")  # 252 bytes, valid: the cut is in bytes, not characters
    wide = heartfly("backup", "-c", str(config), str(wide_name))
    assert wide.returncode == 0 and wide_name.exists(), wide.stderr


def test_a_database_and_a_backup_named_with_a_question_mark_or_a_hash_are_those_files(tmp_path: Path) -> None:
    # SQLite reads "file:a?b.db?mode=ro" as the file "a" with a query: the names must be quoted.
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    config.write_text(config.read_text().replace("hb.db", "hb#1?.db"))
    with Server(config) as server:
        assert server.stop() == 0
    status = heartfly("status", "-c", str(config))
    assert status.returncode == 0 and "a" in status.stdout, status.stderr
    result = heartfly("backup", "-c", str(config), str(tmp_path / "copy?#.db"))
    assert result.returncode == 0, result.stderr
    assert "1 checks" in result.stdout and (tmp_path / "copy?#.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy?#.db"]


def test_backup_without_a_database_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    config = write(tmp_path / "hb.toml", "")
    result = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no database at {tmp_path / 'hb.db'}"
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "hb.db").exists()


def test_a_backup_killed_midway_leaves_no_file_at_its_path_and_the_next_one_writes_it(tmp_path: Path) -> None:
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    with sqlite3.connect(tmp_path / "hb.db") as db:  # some 20 MB: the copy takes a while
        db.execute(
            "INSERT INTO pings (check_id, at, received_at, kind, body, truncated, method, source)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)"
            " SELECT 1, i, i, 'log', printf('%0500d', i), 0, 'POST', '127.0.0.1' FROM n"
        )
    copy = tmp_path / "copy.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heartfly", "backup", "-c", str(config), str(copy)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None and not copy.exists():
        time.sleep(0.001)
    proc.kill()  # as a timer's timeout or the OOM killer would, the moment PATH shows up
    proc.wait(10)
    if copy.exists():  # only ever the finished copy
        with sqlite3.connect(copy) as db:
            assert db.execute("SELECT count(*) FROM pings").fetchone() == (40000,)
        copy.unlink()
    result = heartfly("backup", "-c", str(config), str(copy))
    assert result.returncode == 0, result.stderr
    assert "1 checks, 40000 pings" in result.stdout


def test_a_path_that_cannot_be_looked_at_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    # Its check for an existing file stat()ed PATH: a name too long (or, not as root, a directory
    # that may not be entered) raised out of it, a traceback where the create's error was one line.
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    target = tmp_path / ("x" * 300 + ".db")
    result = heartfly("backup", "-c", str(config), str(target))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot create {target}: File name too long"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hb.db", "hb.toml", "token"]


def test_a_backup_that_runs_out_of_room_is_an_error_and_leaves_nothing_beside_its_path(tmp_path: Path) -> None:
    # A full disk (here a file size limit: writes past 1 MiB fail) failed the copy: its partial
    # file was removed, but SQLite's rollback journal for it, `.NAME.*.partial-journal`, was left.
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    with sqlite3.connect(tmp_path / "hb.db") as db:  # some 5 MB, past the limit
        db.execute(
            "INSERT INTO pings (check_id, at, received_at, kind, body, truncated, method, source)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)"
            " SELECT 1, i, i, 'log', printf('%0500d', i), 0, 'POST', '127.0.0.1' FROM n"
        )
    (tmp_path / "out").mkdir()

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, as on a full disk, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    result = subprocess.run(
        [sys.executable, "-m", "heartfly", "backup", "-c", str(config), str(tmp_path / "out" / "copy.db")],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=60,
    )
    assert result.returncode == 1 and result.stderr.startswith("error: cannot back up"), result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_a_config_with_an_error_outside_its_database_line_still_backs_the_database_up(tmp_path: Path) -> None:
    # A check being edited (or a secret file this user may not read) must not stop the nightly
    # backup, nor the copy a package upgrade takes before it migrates the database (preinst).
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    config.write_text(config.read_text() + 'grace = "5 lightyears"\n[smtp]\npassword_file = "nowhere"\n')
    result = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
    assert result.returncode == 0, result.stderr
    assert "1 checks, 0 pings" in result.stdout
    assert "check-config" in result.stderr  # the problems are not hidden, only not in the way
    broken = tmp_path / "broken.toml"  # a database line that cannot be read is still refused
    broken.write_text("[server]\ndatabase = 5\n")
    refused = heartfly("backup", "-c", str(broken), str(tmp_path / "other.db"))
    assert refused.returncode == 2 and "server.database" in refused.stderr
    assert not (tmp_path / "other.db").exists()


def test_a_backups_name_is_synced_to_disk_after_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The copy's data was synced, but not the folder after the link that names it: a power cut
    # right after "wrote ..." could leave no file at the path the operator was told of.
    from heartfly.store import backup

    database = tmp_path / "hb.db"
    with sqlite3.connect(database) as conn:
        conn.executescript("CREATE TABLE checks (id INTEGER); CREATE TABLE pings (id INTEGER);")
    conn.close()
    (tmp_path / "copies").mkdir()
    target = tmp_path / "copies" / "copy.db"
    calls: list[str] = []
    real_open, real_fsync, real_link = os.open, os.fsync, os.link

    def opened(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_DIRECTORY:
            calls.append(f"open {path} as {fd}")
        return fd

    def synced(fd: int) -> None:
        calls.append(f"fsync {fd}")
        real_fsync(fd)

    def linked(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(f"link {Path(dst).name}")
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "link", linked)
    backup.backup_database(database, target)
    assert target.exists() and "link copy.db" in calls
    after = calls[calls.index("link copy.db") + 1 :]
    opens = [c for c in after if c.startswith(f"open {target.parent} as ")]
    assert opens and f"fsync {opens[0].rsplit(' ', 1)[1]}" in after


def test_a_database_on_a_read_only_file_system_is_still_read_and_backed_up(tmp_path: Path) -> None:
    # A disk the kernel remounted read-only after errors (errors=remount-ro), a snapshot mounted to
    # look at: there SQLite opens a WAL database with no -wal file beside it (a clean stop removes
    # it) only as immutable. Status and history said "reading it writes hb.db-shm beside it; run
    # this as root", as root too, and backup "unable to open database file": the copy wanted off
    # the failing disk could not be made.
    key = new_key()
    with a_tmpfs(tmp_path, "8m") as disk:
        config = write(disk / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
        (disk / "token").write_text("t" * 32)
        with Server(config) as server:
            urllib.request.urlopen(f"{server.url}/ping/{key}", timeout=10).read()
            assert server.stop() == 0
        assert not (disk / "hb.db-wal").exists()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        status = heartfly("status", "-c", str(config))
        history = heartfly("history", "a", "-c", str(config))
        backup = heartfly("backup", "-c", str(config), str(tmp_path / "copy.db"))
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1].split()[:2] == ["a", "up"], status.stdout
    assert history.returncode == 0, history.stderr
    assert backup.returncode == 0, backup.stderr
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("SELECT count(*) FROM pings").fetchone() == (1,)


def test_a_backup_that_fails_under_a_systemd_timer_is_logged_at_error_priority(tmp_path: Path) -> None:
    # `journalctl -p err` found a config error of the nightly backup's service (main._fail) but
    # not the copy's own failure (a full disk, no database), which went to the journal as info.
    config = write(tmp_path / "hb.toml", "")
    log = tmp_path / "journal"
    with log.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        result = subprocess.run(
            [sys.executable, "-m", "heartfly", "backup", "-c", str(config), str(tmp_path / "copy.db")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=30,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
    assert result.returncode == 1
    assert log.read_text() == f"<3>error: no database at {tmp_path / 'hb.db'}\n"


@pytest.mark.parametrize("command", [["status"], ["history", "a"], ["pause", "a"]])
def test_the_other_commands_errors_under_systemd_are_logged_at_error_priority_too(
    tmp_path: Path, command: list[str]
) -> None:
    config = write(tmp_path / "hb.toml", "")
    config.write_text(config.read_text().replace("127.0.0.1:0", "127.0.0.1:9"))  # no server there
    (tmp_path / "token").write_text("t" * 32)
    log = tmp_path / "journal"
    with log.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        result = subprocess.run(
            [sys.executable, "-m", "heartfly", *command, "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=30,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
    assert result.returncode == 1
    lines = log.read_text().splitlines()
    assert lines[0].startswith("<3>error: "), lines
    # pause's refused connection has its hints on lines of their own (is it running; was it started
    # with --listen): journald reads each apart
    assert len(lines) == (3 if command[0] == "pause" else 1), lines
    assert all(line.startswith("<3>") for line in lines), lines


def as_cron_runs(entry: str) -> str:
    """The command of an /etc/cron.d entry (minute hour day month weekday user command), as cron
    hands it to sh: `\\%` is a `%`, and the first other `%` ends the command (cron sends the rest
    to its stdin), so a `date +%F` written as in a shell would cut the line there."""
    command = entry.split(None, 6)[6]
    out: list[str] = []
    i = 0
    while i < len(command) and command[i] != "%":
        escaped = command.startswith("\\%", i)
        out.append("%" if escaped else command[i])
        i += 2 if escaped else 1
    return "".join(out)


def test_as_cron_runs_unescapes_and_cuts_at_a_bare_percent_sign() -> None:
    assert as_cron_runs("0 4 * * *  root  date +\\%F && echo ok") == "date +%F && echo ok"
    assert as_cron_runs("0 4 * * *  root  date +%F && echo ok") == "date +"


@pytest.mark.parametrize("linked", [False, True], ids=["folder", "link"])
def test_the_docs_nightly_backup_line_keeps_two_weeks_of_copies_not_every_copy_for_ever(
    tmp_path: Path, linked: bool
) -> None:
    # docs/install.md's crontab line wrote a full copy every night and deleted none: a year of
    # service kept 365 copies in /var/backups, on /var with the live database, until the disk
    # filled and the server answered pings 503. The line now deletes the copies past two weeks,
    # and nothing else in /var/backups (Debian keeps its own copies there), run as cron runs it
    # (its % signs) while the server serves. Also where /var/backups is a link to a bigger disk:
    # find does not follow a link named on its command line, and the line deleted nothing there.
    text = (Path(__file__).resolve().parent.parent / "docs" / "install.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("0 4 * * *") and "heartfly backup" in ln]
    assert line.split()[5] == "root", line
    backups = tmp_path / "backups"
    (tmp_path / "disk" / "old").mkdir(parents=True)
    if linked:
        backups.symlink_to(tmp_path / "disk", target_is_directory=True)
    else:
        (tmp_path / "disk").rename(backups)
    now = time.time()
    others = [backups / name for name in ("dpkg.status.0", "heartfly-2025-01-01.db.gz", "old/heartfly-2025-01-01.db")]

    def aged(path: Path, days: int) -> None:
        path.write_bytes(b"a copy")
        os.utime(path, (now - days * 86400 - 3600, now - days * 86400 - 3600))

    for age in range(1, 31):
        aged(backups / f"heartfly-{time.strftime('%F', time.localtime(now - age * 86400))}.db", age)
    for other in others:
        aged(other, 400)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "heartfly").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m heartfly "$@"\n')
    (bin_dir / "curl").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/pinged\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HEARTFLY_CONFIG": str(config)}
    with Server(config) as server:
        command = as_cron_runs(line).replace("/var/backups", str(backups))
        done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
        assert server.stop() == 0
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pinged").read_text().split()[-1] == "http://127.0.0.1:8765/ping/KEY"
    kept = sorted(path.name for path in backups.glob("heartfly-*.db"))
    assert len(kept) == 14 and f"heartfly-{time.strftime('%F')}.db" in kept, kept  # today's and 13 before it
    assert all(other.exists() for other in others) and (tmp_path / "hb.db").exists()
