"""The daemon as a real process: start, pings over a real socket, signals, crashes and restarts."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sqlite3
import threading
import time
import tomllib
import urllib.request
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_faults import damage


def write(path: Path, checks: str, server: str = "") -> Path:
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n' + server + "\n" + checks
    )
    return path


def get(url: str) -> tuple[int, str]:
    async def fetch() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status, await resp.text()

    return asyncio.run(fetch())


def test_serve_answers_pings_and_status_json_reports_them(tmp_path: Path) -> None:
    key = new_key()
    config = write(
        tmp_path / "hb.toml",
        f'[checks.nightly]\nkey = "{key}"\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
        f'[checks.never]\nkey = "{new_key()}"\nevery = "1h"\n',
    )
    with Server(config) as server:
        assert get(f"{server.url}/ping/{key}/fail") == (200, "OK")
        result = heartfly("status", "--json", "-c", str(config))
        assert result.returncode == 0, result.stderr
        items = {i["name"]: i for i in json.loads(result.stdout)}
        assert (items["nightly"]["state"], items["nightly"]["reason"]) == ("down", "failed")
        assert items["nightly"]["due_at"].endswith(":00:00.000Z")  # a cron tick, in UTC
        assert items["never"]["state"] == "new" and items["never"]["reason"] is None
        assert items["never"]["last_ping_at"] is None
        table = heartfly("status", env={"HEARTFLY_CONFIG": str(config)})
        assert "nightly" in table.stdout and "down (failed)" in table.stdout
        assert server.stop() == 0
    assert "stopped cleanly" in server.log()
    assert not (tmp_path / "hb.db-wal").exists()  # a clean stop leaves no WAL to recover
    assert key not in server.log()  # ping keys are secrets: never logged


def test_sighup_reloads_and_a_broken_file_keeps_the_running_config(tmp_path: Path) -> None:
    key_a, key_b = new_key(), new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n')
    with Server(config) as server:
        write(config, f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("reloaded")
        assert get(f"{server.url}/ping/{key_b}") == (200, "OK")
        config.write_text("[checks.a\nbroken")
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("reload failed, still running the previous config")
        assert get(f"{server.url}/ping/{key_b}") == (200, "OK")
        assert server.stop() == 0


def test_an_unwritable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = write(tmp_path / "hb.toml", "", server="")
    config.write_text(config.read_text().replace('database = "hb.db"', f'database = "{blocker}/sub/hb.db"'))
    result = heartfly("serve", "-c", str(config))
    assert result.returncode == 2  # systemd's RestartPreventExitStatus: a restart cannot fix it
    assert "error: cannot open database" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("user_version", [0, 2, 99], ids=["unset", "set-low", "set-high"])
def test_another_programs_sqlite_database_is_refused_at_the_start_and_left_as_it_was(
    tmp_path: Path, user_version: int
) -> None:
    # A `database` naming another program's file: Heartfly's tables were added to it, its journal
    # mode made WAL and its user_version, which that program's own migrations read, set to 9.
    # Many programs number their own schema in user_version too: one at 2 was given Heartfly's
    # migration 3 (outbox, alert_attempts) before migration 4 failed on its missing `pings`.
    other = tmp_path / "grafana.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE dashboard (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute(f"PRAGMA user_version = {user_version}")
    before = other.read_bytes()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    config.write_text(config.read_text().replace('database = "hb.db"', f'database = "{other}"'))
    result = heartfly("serve", "-c", str(config), "--listen", "127.0.0.1:0", timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(
        f"error: cannot use database {other}: it holds tables that are not Heartfly's (dashboard):"
        " is it another program's?\n"
    )
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grafana.db", "hb.toml", "token"]  # no -wal, no .lock


def test_a_sqlite_database_a_newer_heartfly_migrated_is_refused_at_the_start_naming_the_file(tmp_path: Path) -> None:
    # A rollback onto a migrated database: "the database has schema version 10, ..." named no file,
    # where install.md promises one line naming it (PostgreSQL's names its URL).
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.stop() == 0
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    result = heartfly("serve", "-c", str(config), "--listen", "127.0.0.1:0", timeout=30)
    assert result.returncode == 2, result.stderr
    assert (
        f"error: the database {tmp_path / 'hb.db'} has schema version 999, newer than this Heartfly (" in result.stderr
    )


def test_a_second_serve_on_the_same_sqlite_database_is_refused_naming_it_and_the_first_carries_on(
    tmp_path: Path,
) -> None:
    # Both would run: ids from two counters (UNIQUE failures, 503s), every deadline and alert twice.
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as first:
        second = heartfly("serve", "-c", str(config), "--listen", "127.0.0.1:0", timeout=30)
        assert second.returncode == 2, second.stderr
        assert f"error: the database {tmp_path / 'hb.db'} is in use by another heartfly serve" in second.stderr
        assert "Traceback" not in second.stderr
        assert get(f"{first.url}/ping/{key}") == (200, "OK")
        status = heartfly("status", "-c", str(config))  # reading commands do not take the lock
        assert status.returncode == 0, status.stderr
        assert first.stop() == 0
    assert not (tmp_path / "hb.db.lock").exists()  # nothing is left beside a stopped server's database
    with Server(config) as again:  # the lock went with the first server
        assert get(f"{again.url}/ping/{key}") == (200, "OK")


def test_a_database_file_the_service_user_cannot_write_is_one_line_naming_it_and_exit_2() -> None:
    # A restore copied as root: it was a traceback and exit 1 (a restart loop), naming no file.
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the server as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        folder = Path(where)
        os.chmod(folder, 0o777)
        config = write(folder / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        os.chmod(config, 0o644)

        def serve() -> tuple[int, str]:
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            proc = subprocess.Popen([*nobody, sys.executable, "-m", "heartfly", "serve", "-c", str(config)],
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=folder)  # fmt: skip
            try:
                deadline = time.monotonic() + 5  # a start that fails ends well within it
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            return proc.returncode, err

        code, err = serve()  # the database made by the service user; stopped by SIGTERM
        assert code == 0, err
        os.chmod(folder / "hb.db", 0o444)
        code, err = serve()
    assert "Traceback" not in err, err[-1500:]
    assert code == 2, err[-1500:]
    assert f"error: cannot use database {folder / 'hb.db'}: attempt to write a readonly database" in err, err


def test_a_database_found_damaged_by_a_starts_reads_exits_2_in_one_line_and_is_left_as_it_was(tmp_path: Path) -> None:
    # It was a 70-line traceback and exit 1: systemd started it again every 2 s, for ever.
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        for _ in range(3):
            assert get(f"{server.url}/ping/{key}")[0] == 200
        server.kill()  # its pings are replayed by the next start
    database = tmp_path / "hb.db"
    with closing(sqlite3.connect(database)) as db:  # the WAL into the file, so that the damage is read
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(database, "pings")
    before = database.read_bytes()
    result = heartfly("serve", "-c", str(config))
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    assert result.returncode == 2, result.stderr[-1500:]
    assert f"error: cannot read database {database}: database disk image is malformed" in result.stderr
    page = int.from_bytes(before[16:18], "big")  # the first page's header counts the start's own commits
    assert database.read_bytes()[page:] == before[page:]


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = write(tmp_path / "hb.toml", "")
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        result = heartfly("serve", "-c", str(config))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr


def test_broken_toml_stops_serve_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "hb.toml"
    config.write_text("[server\n")
    result = heartfly("serve", "-c", str(config))
    assert result.returncode == 2 and "invalid TOML" in result.stderr


def test_every_acknowledged_ping_survives_kill_9_mid_load(tmp_path: Path) -> None:
    keys = [new_key() for _ in range(20)]
    config = write(
        tmp_path / "hb.toml", "".join(f'[checks.c{i}]\nkey = "{k}"\nevery = "1h"\n' for i, k in enumerate(keys))
    )
    acked: list[str] = []
    server = Server(config).start()

    async def worker(session: aiohttp.ClientSession, n: int, stop: float) -> None:
        i = 0
        while time.monotonic() < stop:
            body = f"w{n}-{i}"
            i += 1
            try:
                async with session.post(f"{server.url}/ping/{keys[n % len(keys)]}/log", data=body) as resp:
                    if resp.status == 200 and await resp.text() == "OK":
                        acked.append(body)
            except (aiohttp.ClientError, OSError):
                return

    async def load() -> None:
        stop = time.monotonic() + 5
        async with aiohttp.ClientSession() as session:
            workers = [asyncio.create_task(worker(session, n, stop)) for n in range(16)]
            while len(acked) < 300 and time.monotonic() < stop:
                await asyncio.sleep(0.01)
            server.kill()  # SIGKILL in the middle of the burst
            await asyncio.gather(*workers)

    try:
        asyncio.run(load())
    finally:
        server.kill()
    assert len(acked) >= 300
    with sqlite3.connect(tmp_path / "hb.db") as db:
        bodies = {row[0] for row in db.execute("SELECT body FROM pings")}
    missing = [b for b in acked if b not in bodies]
    assert missing == []


def test_a_restart_extends_deadlines_that_fell_in_the_downtime_and_records_it(tmp_path: Path) -> None:
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "2s"\ngrace = "1s"\n')
    with Server(config) as server:
        assert get(f"{server.url}/ping/{key}") == (200, "OK")  # due 2 s from now, down 1 s later
        pinged = time.time()
        assert server.stop() == 0
    time.sleep(max(0.0, pinged + 3.5 - time.time()))  # the due time and the grace pass while stopped
    with Server(config) as server:
        items = json.loads(heartfly("status", "--json", "-c", str(config)).stdout)
        assert items[0]["state"] == "up", server.log()
        assert "were extended by it" in server.log()
        # Extended by the downtime, and on to 1 s plus the downtime after the restart (a ping sent
        # meanwhile may still be retried into it); the grace counts from there.
        assert server.wait_for_log("check a: up -> late", timeout=20), server.log()
        assert server.wait_for_log("check a: late -> down (missed)", timeout=10)
    with sqlite3.connect(tmp_path / "hb.db") as db:
        ((count, clean),) = db.execute("SELECT COUNT(*), MIN(clean) FROM downtimes")
    assert (count, clean) == (1, 1)
    shown = heartfly("status", "-c", str(config)).stdout  # the downtime is visible, not just logged
    assert "Heartfly was last not running for" in shown and "(a clean stop)" in shown


@pytest.mark.parametrize("args", [["init"], ["init", "sub.toml"], ["init", "-c", "sub.toml"]])
def test_init_writes_a_valid_config_with_fresh_keys_and_never_overwrites(tmp_path: Path, args: list[str]) -> None:
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        first = heartfly(*args)
        assert first.returncode == 0, first.stderr
        path = tmp_path / (args[-1] if len(args) > 1 else "heartfly.toml")
        assert "/ping/" in first.stdout and "start (start_key)" in first.stdout
        again = heartfly(*args)
        assert again.returncode == 1 and "not overwriting" in again.stderr
        assert heartfly("check-config", "-c", str(path)).returncode == 0
        other = tmp_path / "other.toml"
        heartfly("init", str(other))
        assert path.read_text() != other.read_text()  # fresh random keys each time
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    finally:
        os.chdir(cwd)


def test_init_writes_where_heartfly_config_points_like_every_other_command(tmp_path: Path) -> None:
    import os

    target = tmp_path / "from-env.toml"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = heartfly("init", env={"HEARTFLY_CONFIG": str(target)})
    finally:
        os.chdir(cwd)
    assert result.returncode == 0, result.stderr
    assert target.exists() and not (tmp_path / "heartfly.toml").exists()
    # A PATH given wins over the environment (the package's postinst passes one).
    named = heartfly("init", str(tmp_path / "named.toml"), env={"HEARTFLY_CONFIG": str(target)})
    assert named.returncode == 0 and (tmp_path / "named.toml").exists(), named.stderr
    both = heartfly("init", "-c", str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))
    assert both.returncode == 2 and "two places" in both.stderr


def test_init_makes_a_missing_folder_as_the_source_install_does_for_etc_heartfly(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "heartfly" / "heartfly.toml"  # as `heartfly init /etc/heartfly/heartfly.toml`
    result = heartfly("init", str(target))
    assert result.returncode == 0, result.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert heartfly("check-config", "-c", str(target)).returncode == 0


# Port 0: the server listened on a random port, and every ping URL printed (and alert link) said :0.
@pytest.mark.parametrize(
    "url",
    ["notaurl", "ftp://hb.example.com", 'http://hb.example.com/" x', "http://h:99999", "http://h:0", "https://h:0"],
)
def test_init_with_a_bad_url_says_so_and_writes_nothing(tmp_path: Path, url: str) -> None:
    target = tmp_path / "etc" / "hb.toml"
    result = heartfly("init", "--url", url, str(target))
    assert result.returncode == 2 and "--url" in result.stderr and "Traceback" not in result.stderr
    assert not target.parent.exists()


@pytest.mark.parametrize(
    ("url", "listen"),
    [
        ("http://127.0.0.1:9100", "127.0.0.1:9100"),  # reached directly: listen where the URL points
        ("http://localhost:9100/hb", "127.0.0.1:9100"),
        ("http://[::1]:9100", "[::1]:9100"),
        ("http://hb.internal:9100", "127.0.0.1:9100"),  # a name: the port, and loopback until told otherwise
        ("https://hb.example.com", "127.0.0.1:8765"),  # behind a TLS proxy: the default stays
        ("http://hb.example.com", "127.0.0.1:8765"),
    ],
)
def test_init_listens_on_the_port_of_a_plain_http_url_with_one(tmp_path: Path, url: str, listen: str) -> None:
    target = tmp_path / "hb.toml"
    result = heartfly("init", "--url", url, str(target))
    assert result.returncode == 0, result.stderr
    server = tomllib.loads(target.read_text())["server"]
    assert (server["listen"], server["public_url"]) == (listen, url)


def test_init_with_a_url_on_every_address_warns_that_its_alert_links_open_nowhere(tmp_path: Path) -> None:
    # `--url http://0.0.0.0:9000`, to listen on every interface, wrote public_url 0.0.0.0 and said
    # "OK": every alert's link and the URLs it printed pointed where no browser goes, which
    # check-config of the same file warns of.
    target = tmp_path / "hb.toml"
    result = heartfly("init", "--url", "http://0.0.0.0:9000", str(target))
    assert result.returncode == 0, result.stderr
    assert "warning: server.public_url: alert links point to http://0.0.0.0:9000" in result.stderr
    assert tomllib.loads(target.read_text())["server"]["listen"] == "0.0.0.0:9000"


def test_a_new_database_and_its_wal_are_the_owners_alone_whatever_the_umask(tmp_path: Path) -> None:
    # They were made 0644 outside the packaged unit (UMask=0077): a source install's or a
    # zipapp's database, with every ping body and the ping keys of checks made through the API,
    # was readable by every local user, while `heartfly backup` writes its copy 0600 for that reason.
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    umask = os.umask(0o022)
    try:
        with Server(config) as server:
            with urllib.request.urlopen(f"{server.url}/ping/{key}", data=b"secret output", timeout=10):
                pass
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.glob("hb.db*") if p.suffix != ".lock"}
    finally:
        os.umask(umask)
    assert modes == {"hb.db": "0o600", "hb.db-wal": "0o600", "hb.db-shm": "0o600"}


def test_a_port_in_use_fails_the_start_before_the_database_is_touched(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        result = heartfly("serve", "-c", str(config))
    assert result.returncode == 1 and "address already in use" in result.stderr
    assert not (tmp_path / "hb.db").exists()  # no downtime row, no alive mark from a start that never served


def test_a_sighup_reload_goes_through_the_shared_serialized_reload_path(tmp_path: Path) -> None:
    key_b = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(config) as server:
        write(config, f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
        server.signal(signal.SIGHUP)
        assert server.wait_for_log(f"reloaded {config}: 2 checks (asked by SIGHUP)")
        assert get(f"{server.url}/ping/{key_b}") == (200, "OK")
        assert server.stop() == 0


def test_running_out_of_file_descriptors_is_one_log_line_not_a_traceback_per_connection(tmp_path: Path) -> None:
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        assert server.proc is not None
        url = URL(server.url)
        in_use = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        limits = resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (in_use + 4, limits[1]))
        held = [socket.create_connection((url.host, url.port), timeout=5) for _ in range(30)]
        try:
            assert server.wait_for_log("open files")
            time.sleep(0.2)  # the rest of that accept round, had it been logged line by line
            lines = [line for line in server.lines if "accept" in line]
            assert len(lines) == 1 and "Traceback" not in server.log(), server.log()[-2000:]
        finally:
            for sock in held:
                sock.close()
            resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, limits)
        assert get(f"{server.url}/ping/{key}") == (200, "OK")  # accepting again (asyncio retries each second)
        assert server.stop() == 0


def post_json(url: str, body: object) -> tuple[int, str]:
    async def send() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
            return resp.status, await resp.text()

    return asyncio.run(send())


def test_a_real_server_refuses_unknown_heartbeat_fields_and_empty_run_ids_and_stores_nothing(tmp_path: Path) -> None:
    key = new_key()
    config = write(tmp_path / "hb.toml", f'[checks.etl]\nkey = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        status, text = post_json(f"{server.url}/api/v1/heartbeat/{key}", {"statsu": "start"})
        assert status == 400 and 'unknown field "statsu" (did you mean "status"?)' in text
        status, text = post_json(f"{server.url}/ping/{key}/batch", {"pings": [{"status": "start"}, {"mesage": "x"}]})
        results = json.loads(text)["results"]
        assert status == 400 and results[0]["status"] == "refused"
        assert 'unknown field "mesage" (did you mean "message"?)' in results[1]["error"]
        assert post_json(f"{server.url}/api/v1/heartbeat/{key}", {"run_id": ""})[0] == 400
        assert get(f"{server.url}/ping/{key}/start?rid=") == (
            400,
            "rid must be 1 to 128 printable ASCII characters without spaces\n",
        )
        assert post_json(f"{server.url}/api/v1/heartbeat/{key}", {"status": "start", "run_id": "r1"}) == (200, "OK")
    with sqlite3.connect(tmp_path / "hb.db") as db:
        assert db.execute("SELECT count(*) FROM pings").fetchone() == (1,)  # only the well-formed one


def test_a_missing_api_token_file_that_cannot_be_made_is_one_line_naming_the_setting_and_exit_2(
    tmp_path: Path,
) -> None:
    # The packaged unit's user cannot write /etc/heartfly: it was "[Errno 13] Permission denied:
    # '/etc/heartfly/.api-token.x1y2z3'" and exit 1, so systemd restarted it in a loop. (Nobody
    # makes a file in /proc, root included.)
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    config.write_text(config.read_text().replace('api_token_file = "token"', 'api_token_file = "/proc/hb-token"'))
    result = heartfly("serve", "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert lines == [
        "error: server.api_token_file: /proc/hb-token is missing and cannot be made here (No such file or"
        " directory): write the key into it yourself, or let the server's user write /proc"
    ], result.stderr


@pytest.mark.parametrize("command", [["serve"], ["check-config"], ["status"]])
def test_a_config_file_this_user_may_not_read_is_one_error_line_and_exit_2(command: list[str]) -> None:
    # The installed unit's user and a file left 0600 root: click's three-line usage error ("Invalid
    # value for '-c' / '--config': File ... is not readable"), not at the journal's error priority.
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        folder = Path(where)
        os.chmod(folder, 0o755)
        config = write(folder / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        os.chmod(config, 0o600)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        args = [*nobody, sys.executable, "-m", "heartfly", *command, "-c", str(config)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, cwd=folder)
    assert done.returncode == 2
    assert done.stderr == f"error: {config}: cannot read: Permission denied\n"


@pytest.mark.parametrize("command", [["serve"], ["check-config"], ["status"]])
def test_a_config_file_in_a_folder_this_user_may_not_enter_is_not_called_missing(command: list[str]) -> None:
    # /etc/heartfly left 0700 root: "cannot read a config file: none at /etc/heartfly/heartfly.toml",
    # as if there were no file there, while the file is there and only permission is missing.
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        folder = Path(where) / "etc"
        folder.mkdir()
        config = write(folder / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
        os.chmod(config, 0o644)
        os.chmod(folder, 0o700)
        os.chmod(where, 0o755)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        args = [*nobody, sys.executable, "-m", "heartfly", *command, "-c", str(config)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, cwd=where)
    assert done.returncode == 2
    assert done.stderr == f"error: {config}: cannot read: Permission denied\n"


BREAK_AND_SERVE = """
import sys
from heartfly import entry
from heartfly.server import engine, heartbeat

where = sys.argv[1]

def broken(*args, **kwargs):
    raise RuntimeError("a fault injected into " + where)

if where == "the timer":
    engine.Engine.fire_due = broken
else:
    heartbeat.problem = broken
sys.argv = ["heartfly", "serve", "-c", sys.argv[2]]
entry.main()
"""


@pytest.mark.parametrize("task", ["the timer", "the heartbeat"])
def test_a_long_lived_task_that_fails_is_logged_and_ends_the_process_with_exit_1(tmp_path: Path, task: str) -> None:
    # Not a half-alive server: pings answered 200 with no deadline ever fired (or no heartbeat
    # sent), nothing in the log saying why, until a watchdog (if any) killed it without a word.
    import subprocess
    import sys

    heartbeat = 'heartbeat_url = "http://127.0.0.1:9/beat"\nheartbeat_every = "1s"\n'
    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', heartbeat)
    args = [sys.executable, "-c", BREAK_AND_SERVE, task, str(config)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        _, log = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, log = proc.communicate()
    assert proc.returncode == 1, log
    assert f"RuntimeError: a fault injected into {task}" in log  # its traceback, to find the cause by
    assert "Traceback" in log
    assert log.rstrip().splitlines()[-1].startswith("error: "), log  # one line saying why it exits
    # Not recorded as a clean stop: the next start says "(unclean stop)", as a crash's does.
    with closing(sqlite3.connect(tmp_path / "hb.db")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'clean_stop'").fetchall() == [("0",)]


HUP_WHILE_READING = """
import os, signal, sys
from heartfly import entry
from heartfly.core import config

read = config.load_config

def read_and_be_asked_to_reload(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGHUP)  # as `kill -HUP` while a big file is read
    return read(*args, **kwargs)

config.load_config = read_and_be_asked_to_reload
sys.argv = ["heartfly", "serve", "-c", sys.argv[1]]
entry.main()
"""


def test_a_sighup_while_the_config_is_read_at_the_start_is_a_reload_once_serving_not_the_end_of_it(
    tmp_path: Path,
) -> None:
    # Reading 100k checks takes seconds, before any handler was installed: SIGHUP's default
    # action ended the process then, without a line in the log.
    import subprocess
    import sys

    config = write(tmp_path / "hb.toml", f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    args = [sys.executable, "-c", HUP_WHILE_READING, str(config)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    lines: list[str] = []
    # A SIGHUP kept but never acted on left the loop below reading for ever: the test hung.
    give_up = threading.Timer(30, proc.kill)
    give_up.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "(asked by SIGHUP)" in line:
                break
        else:  # the process ended first
            raise AssertionError(f"exit {proc.wait(10)}:\n{''.join(lines)}")
        assert any("Heartfly listening on" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        give_up.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
