"""A real PostgreSQL for the tests: one cluster per session (Debian's initdb and pg_ctl, run as
the `postgres` user when the tests run as root, for PostgreSQL refuses root), a fresh database
per test. Trust on 127.0.0.1 for the superuser; the role `secretive` needs its password (the
password tests). Without the binaries or the driver, the tests that need it skip, saying why.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "correct horse battery staple"  # the role `secretive`'s
_counter = itertools.count(1)
_made: list[str] = []  # the databases made for tests, not dropped yet


@dataclass(frozen=True)
class PgServer:
    port: int
    data: Path | None = None  # the cluster's folder, for stop and start
    options: str = ""  # what pg_ctl passes on to the server
    as_user: tuple[str, ...] = ()

    def stop(self) -> None:
        """Stop the server as an operator's restart does: connections are cut (`-m fast`)."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-l", str(self._folder() / "log"), "-o", self.options, "-w", "-t", "60", "start")

    def _folder(self) -> Path:
        assert self.data is not None, "a PgServer made without its folder"
        return self.data.parent

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = _binary("pg_ctl")
        assert pg_ctl is not None and self.data is not None
        subprocess.run([*self.as_user, pg_ctl, "-D", str(self.data), *args], check=True, capture_output=True)

    def url(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def database(self) -> str:
        """A new, empty database for one test: its URL. The earlier tests' are dropped now, not at
        their end: an app's cleanup may run after the fixture that made its database (pytest
        tears fixtures down in the order they were set up, reversed), and must find it there."""
        for old in _made:
            self.admin(f"DROP DATABASE IF EXISTS {old} WITH (FORCE)")
        _made.clear()
        name = f"t{os.getpid()}_{next(_counter)}"
        self.admin(f"CREATE DATABASE {name}")
        _made.append(name)
        return self.url(name)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def why_not() -> str | None:
    """Why no PostgreSQL can run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install heartfly[postgres])"
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cluster() -> Iterator[PgServer]:
    """initdb, start, yield, stop and remove everything."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb is not None and pg_ctl is not None
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="heartfly-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    data, log = folder / "data", folder / "log"
    port = _free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync", "--auth=trust"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        # Loopback only: trust for the test superuser, a password for `secretive`.
        (data / "pg_hba.conf").write_text(
            "host all secretive 127.0.0.1/32 scram-sha-256\nhost all postgres 127.0.0.1/32 trust\n"
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        server = PgServer(port, data, options, tuple(as_user))
        server.admin(f"CREATE ROLE secretive LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        try:
            yield server
        finally:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], check=False, capture_output=True
            )
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{tail}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
