"""PostgreSQL's bad days through a real `heartfly serve`: a wrong password, no server, a database a
newer Heartfly wrote, `heartfly backup`, the core install without the driver, and a restart of
PostgreSQL under a running server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from tests import pgserver
from tests.conftest import new_key
from tests.proc import Server, heartfly


def write(tmp_path: Path, database: str, *extra: str, key: str | None = None) -> Path:
    path = tmp_path / "heartfly.toml"
    server = ['listen = "127.0.0.1:0"', f'database = "{database}"', 'api_token_file = "api-token"', *extra]
    checks = f'[checks.job]\nkey = "{key or new_key()}"\nevery = "1h"\n'
    path.write_text("[server]\n" + "\n".join(server) + "\n" + checks)
    return path


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def serve_fails(config: Path) -> subprocess.CompletedProcess[str]:
    """`heartfly serve` that must not start: its result, after checking it said why in one line."""
    result = heartfly("serve", "-c", str(config), timeout=60)
    assert result.returncode == 2, result.stderr  # no restart loop under systemd (RestartPreventExitStatus=2)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors(result.stderr)) == 1, result.stderr
    return result


def test_a_wrong_password_is_one_line_naming_the_database_without_any_password(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    name = pg_server.database().rsplit("/", 1)[1]
    (tmp_path / "db-password").write_text("not the password\n")
    url = pg_server.url(name, user="secretive")
    config = write(tmp_path, url, 'database_password_file = "db-password"')
    result = serve_fails(config)
    [line] = errors(result.stderr)
    assert url in line and "password authentication failed" in line, line
    assert "not the password" not in result.stderr


def test_a_wrong_password_in_the_url_is_shown_as_stars(tmp_path: Path, pg_server: pgserver.PgServer) -> None:
    name = pg_server.database().rsplit("/", 1)[1]
    url = f"postgresql://secretive:hunter2wrong@127.0.0.1:{pg_server.port}/{name}"
    result = serve_fails(write(tmp_path, url))
    [line] = errors(result.stderr)
    assert f"postgresql://secretive:***@127.0.0.1:{pg_server.port}/{name}" in line, line
    assert "hunter2wrong" not in result.stderr


def test_the_right_password_from_the_file_lets_it_start(tmp_path: Path, pg_server: pgserver.PgServer) -> None:
    name = pg_server.database().rsplit("/", 1)[1]
    (tmp_path / "db-password").write_text(pgserver.PASSWORD + "\n")
    config = write(tmp_path, pg_server.url(name, user="secretive"), 'database_password_file = "db-password"')
    with Server(config) as server:
        assert server.stop() == 0
    assert pgserver.PASSWORD not in server.log()


def test_no_server_at_the_address_is_one_line_and_exit_1_so_that_systemd_tries_again(tmp_path: Path) -> None:
    # It exited 2, which systemd does not restart: a node that started while PostgreSQL was
    # down (a reboot, an upgrade restarting both, a failover) stayed down once it was back.
    url = f"postgresql://heartfly@127.0.0.1:{pgserver._free_port()}/heartfly"  # nothing listens there
    result = heartfly("serve", "-c", str(write(tmp_path, url)), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = errors(result.stderr)
    assert url in line and "refused" in line and "systemd starts it again" in line, line


def _message(kind: bytes, body: bytes) -> bytes:
    """One message of PostgreSQL's wire protocol."""
    return kind + struct.pack("!i", 4 + len(body)) + body


@contextlib.contextmanager
def fake_postgres(answer: bytes) -> Iterator[str]:
    """A server on a free loopback port that answers every startup message with `answer` (it
    turns TLS and GSS down first): its address, host:port."""

    def speak(listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                while len(head := conn.recv(8)) == 8 and struct.unpack("!ii", head)[1] in (80877103, 80877104):
                    conn.sendall(b"N")  # no TLS, no GSS: the startup message comes next
                conn.recv(65536)
                conn.sendall(answer)
                conn.recv(65536)  # the client's Terminate, or its end

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        threading.Thread(target=speak, args=(listener,), daemon=True).start()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_still_starting_up_is_exit_1_too(tmp_path: Path) -> None:
    # PostgreSQL answers 57P03 while it replays its WAL after a crash, which can take minutes.
    starting = _message(b"E", b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0")
    with fake_postgres(starting) as address:
        result = heartfly("serve", "-c", str(write(tmp_path, f"postgresql://heartfly@{address}/heartfly")), timeout=60)
    assert result.returncode == 1, result.stderr
    [line] = errors(result.stderr)
    assert "starting up" in line and "systemd starts it again" in line, line


def test_only_standbys_for_a_read_write_url_is_exit_1_too(tmp_path: Path) -> None:
    # A failover under way, with the URL cluster.md gives (target_session_attrs=read-write): the
    # server answers, as a standby, and libpq turns it down itself. PQping counts that as
    # answering, as a wrong password: exit 2, and the node stayed down once a primary was back.
    settings = ((b"server_version", b"16.0"), (b"in_hot_standby", b"on"), (b"default_transaction_read_only", b"on"))
    standby = (
        _message(b"R", struct.pack("!i", 0))  # AuthenticationOk
        + b"".join(_message(b"S", name + b"\0" + value + b"\0") for name, value in settings)
        + _message(b"K", struct.pack("!ii", 1, 2))
        + _message(b"Z", b"I")
    )
    with fake_postgres(standby) as address:
        url = f"postgresql://heartfly@{address}/heartfly?target_session_attrs=read-write"
        result = heartfly("serve", "-c", str(write(tmp_path, url)), timeout=60)
    assert result.returncode == 1, result.stderr
    [line] = errors(result.stderr)
    assert "target_session_attrs" in line and "systemd starts it again" in line, line


def test_a_database_a_newer_heartfly_wrote_is_refused_by_serve_and_status(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    url = pg_server.database()
    config = write(tmp_path, url)
    with Server(config) as server:  # a schema of today's version
        assert server.stop() == 0
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO heartfly_schema (version) VALUES (999)")
    result = serve_fails(config)
    [line] = errors(result.stderr)
    assert url in line and "schema version 999, newer than this Heartfly" in line, line
    status = heartfly("status", "-c", str(config))
    assert status.returncode != 0 and "newer than this Heartfly" in status.stderr, status.stderr


def test_a_role_that_may_not_write_the_tables_is_refused_at_start_naming_what_it_lacks(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    # It started and said it was ready, then answered every ping 503 (here, once a prune came
    # round; with SELECT alone, all of them) while no deadline fired: SQLite's unwritable file is
    # refused at start, exit 2.
    url = pg_server.database()
    with Server(write(tmp_path, url)) as server:  # the tables, made by their owner
        assert server.stop() == 0
    role = f"hf_no_delete_{os.getpid()}"  # roles are the cluster's: one per session
    pg_server.admin(f"CREATE ROLE {role} NOLOGIN")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    as_role = f"{url}?options=-crole%3D{role}"  # the superuser's login, with the role's rights
    [line] = errors(serve_fails(write(tmp_path, as_role)).stderr)
    assert f"role {role} may not" in line and "DELETE on pings" in line and "inbox" in line, line
    assert "on checks" not in line, line  # a check row is never deleted: DELETE is not asked for


def test_a_read_the_database_refuses_is_a_500_in_the_log_not_a_silent_503(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    # Every StoreError of a read answered 503 "try again" and was logged at DEBUG: a SELECT taken
    # away from the role (or a query's mistake) left the API answering 503 for ever, nothing in
    # the log. An outage passes; that does not: it is the 500 and traceback it was.
    import urllib.error
    import urllib.request

    import psycopg

    url = pg_server.database()
    with Server(write(tmp_path, url)) as server:  # the tables, made by their owner
        assert server.stop() == 0
    role = f"hf_loses_select_{os.getpid()}"
    pg_server.admin(f"CREATE ROLE {role} NOLOGIN")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    with Server(write(tmp_path, f"{url}?options=-crole%3D{role}")) as server:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"REVOKE SELECT ON pings FROM {role}")
        request = urllib.request.Request(f"{server.url}/api/v1/checks/job/pings", headers=_token(tmp_path))
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 500, status
        assert server.wait_for_log("permission denied for table pings"), server.log()
        assert server.stop() == 0


def test_backup_of_a_postgresql_database_points_at_pg_dump(tmp_path: Path, pg_server: pgserver.PgServer) -> None:
    name = pg_server.database().rsplit("/", 1)[1]
    url = f"postgresql://secretive:{pgserver.PASSWORD.replace(' ', '%20')}@127.0.0.1:{pg_server.port}/{name}"
    result = heartfly("backup", "-c", str(write(tmp_path, url)), str(tmp_path / "copy.db"))
    assert result.returncode != 0 and "pg_dump" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "horse" not in result.stderr
    assert not (tmp_path / "copy.db").exists()


def test_the_core_install_never_imports_the_postgresql_driver_on_a_sqlite_config(tmp_path: Path) -> None:
    config = write(tmp_path, "heartfly.db")
    script = (
        "import asyncio, sys\n"
        "import heartfly.server.daemon, heartfly.cli.main\n"
        "from heartfly.core.config import load_config\n"
        "from heartfly.store.backend import open_backend\n"
        "async def main():\n"
        f"    backend = await open_backend(load_config(__import__('pathlib').Path({str(config)!r})).server)\n"
        "    await backend.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "heartfly.db").exists()  # it did open the SQLite store
    assert "psycopg" not in result.stderr  # -X importtime lists every module imported


# ---- PostgreSQL restarted under a running server --------------------------------------------


async def test_pings_answer_503_while_postgresql_restarts_and_200_after_and_none_acknowledged_is_lost(
    tmp_path: Path, own_cluster: pgserver.PgServer
) -> None:
    url = own_cluster.database()
    key = new_key()
    server = Server(write(tmp_path, url, key=key))
    await asyncio.to_thread(server.start)
    answers: list[tuple[str, int]] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def ping(body: str) -> int:
                async with session.post(f"{server.url}/ping/{key}/log", data=body) as resp:
                    answers.append((body, resp.status))
                    return resp.status

            async def readiness() -> int:
                async with session.get(f"{server.url}/readyz") as resp:
                    return resp.status

            assert await ping("before") == 200
            await asyncio.to_thread(own_cluster.stop)
            assert await ping("while stopped") == 503
            assert await readiness() == 503
            starting = asyncio.create_task(asyncio.to_thread(own_cluster.start))
            n = 0
            while not starting.done():  # pings all through the start: each 200 or 503, no other answer
                n += 1
                await ping(f"during {n}")
                await asyncio.sleep(0.05)
            await starting
            deadline = time.monotonic() + 15
            n = 0
            while (status := await ping(f"after {n}")) != 200:
                assert status == 503 and time.monotonic() < deadline, status
                n += 1
                await asyncio.sleep(0.1)
            assert await readiness() == 200
            for i in range(5):
                assert await ping(f"then {i}") == 200
            async with session.get(f"{server.url}/api/v1/checks/job/pings?limit=1000", headers=_token(tmp_path)) as r:
                assert r.status == 200  # the reader works again too
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        server.kill()
    assert {status for _, status in answers} <= {200, 503}, answers
    import psycopg

    with psycopg.connect(url) as conn:
        stored = {body for (body,) in conn.execute("SELECT body FROM pings")}
    acknowledged = {body for body, status in answers if status == 200}
    assert acknowledged <= stored, acknowledged - stored
    assert "while stopped" not in stored
    assert "Traceback" not in server.log(), server.log()[-3000:]


async def test_the_api_and_the_dashboard_answer_503_not_500_while_postgresql_is_down(
    tmp_path: Path, own_cluster: pgserver.PgServer
) -> None:
    # Their reads failed with StoreError: a 500 and a traceback in the log for every request, where
    # Healthchecks' API and the ping URLs say 503 (try again).
    server = Server(write(tmp_path, own_cluster.database()))
    await asyncio.to_thread(server.start)
    pages = ("pings", "runs", "flips", "alerts", "record")
    try:
        async with aiohttp.ClientSession(headers=_token(tmp_path)) as session:
            await asyncio.to_thread(own_cluster.stop)
            for path in ("/api/v1/downtimes", *(f"/api/v1/checks/job/{page}" for page in pages)):
                async with session.get(server.url + path) as resp:
                    assert resp.status == 503, (path, resp.status)
                    assert (await resp.json()) == {"error": "storage unavailable: try again"}, path
            for path in ("/", "/checks/job"):
                async with session.get(server.url + path) as resp:
                    assert resp.status == 503, (path, resp.status)
                    assert "storage unavailable" in await resp.text(), path
            await asyncio.to_thread(own_cluster.start)
            deadline = time.monotonic() + 15
            while True:  # and as it was once PostgreSQL is back
                async with session.get(f"{server.url}/api/v1/checks/job/pings") as resp:
                    if resp.status == 200:
                        break
                assert resp.status == 503 and time.monotonic() < deadline, resp.status
                await asyncio.sleep(0.1)
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        server.kill()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_a_database_that_ends_idle_sessions_ends_none_of_heartflys(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    # idle_session_timeout (PostgreSQL 14+), which some DBAs and services set to reap leaked
    # sessions, ended the connection that waits for the inbox's notifications whenever it had
    # waited that long: an ERROR in the log each time ("cannot listen to the inbox"), for ever.
    import urllib.request

    url = pg_server.database()
    pg_server.admin(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET idle_session_timeout = '2s'")
    key = new_key()
    with Server(write(tmp_path, url, key=key)) as server:
        time.sleep(5)  # longer than it: every session of the server has had its chance to idle
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}", data=b""), timeout=10) as r:
            assert r.status == 200
        assert server.stop() == 0
    assert " ERROR " not in server.log() and "WARNING" not in server.log(), server.log()


def _token(tmp_path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {(tmp_path / 'api-token').read_text().strip()}"}


async def test_connections_are_made_to_notice_a_silent_server_in_seconds_unless_the_url_says_otherwise(
    pg_server: pgserver.PgServer,
) -> None:
    # What the kernel then does (keepalive probes, unacknowledged data) needs a network that drops
    # packets to show; here: every connection asks for it, and a URL's own setting wins.
    from heartfly.core.dburl import PostgresDatabase
    from heartfly.store.pgconn import connect

    url = pg_server.database()
    for given, idle in ((url, "10"), (url + "?keepalives_idle=3", "3")):
        conn = await connect(PostgresDatabase(given))
        try:
            params = conn.info.get_parameters()
        finally:
            await conn.close()
        assert params["keepalives"] == "1" and params["keepalives_idle"] == idle, params
        assert params["tcp_user_timeout"] == "20000" and params["keepalives_count"] == "2", params


def test_a_ping_with_a_nul_byte_is_taken_and_stops_no_other_checks_pings(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    # PostgreSQL text cannot hold NUL: stored as sent, it failed the whole group commit (503 for
    # every check's pings in it, and the client retried it for ever).
    import urllib.request

    key, other, url = new_key(), new_key(), pg_server.database()
    config = tmp_path / "hb.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "{url}"\n'
        f'[checks.a]\nkey = "{key}"\nevery = "1h"\n[checks.b]\nkey = "{other}"\nevery = "1h"\n'
    )

    def ping(url: str, body: bytes) -> int:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as resp:
            return int(resp.status)

    with Server(config) as server:
        assert ping(f"{server.url}/ping/{key}", b"rows: 12\x00 trailing binary") == 200
        assert ping(f"{server.url}/ping/{other}", b"fine") == 200
        assert server.stop() == 0
    import psycopg

    with psycopg.connect(url) as conn:
        bodies = {r[0] for r in conn.execute("SELECT body FROM pings")}
    assert bodies == {"rows: 12\ufffd trailing binary", "fine"}
