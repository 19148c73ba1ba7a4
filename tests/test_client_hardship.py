"""The job side (`heartfly run`, `ping`, `flush`, the spool) on a bad day: broken stderr, odd paths,
bytes that are not UTF-8, a spool record of the wrong shape, a server that dribbles, a killed group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli_client import Setup, err, hf  # noqa: F401  (hf: the real-server fixture)
from tests.test_http1 import read_request

PY = sys.executable
ROOT = str(Path(__file__).resolve().parent.parent)
KEY = "k" * 24


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A job's environment: its check addressed by name on a server that is down."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
    env.update(
        PYTHONPATH=ROOT,
        HEARTFLY_URL=closed_port_url(),
        HEARTFLY_PING_KEY=KEY,
        HEARTFLY_SPOOL=str(tmp_path / "spool"),
        HEARTFLY_RETRIES="0",
    )
    env.update(extra)
    return env


def marker_job(tmp_path: Path, code: int = 3) -> list[str]:
    """A command that leaves a marker file (proof that it ran) and exits with `code`."""
    return ["sh", "-c", f'echo ran > "{tmp_path}/ran"; exit {code}']


@pytest.mark.parametrize("variable", ["HEARTFLY_SPOOL", "HEARTFLY_CONFIG"])
def test_a_spool_path_that_is_a_file_still_runs_the_job_and_keeps_its_exit_code(tmp_path: Path, variable: str) -> None:
    # docs/client.md: "If the spool cannot be written (a read-only home, a path that is a file, a full
    # disk), heartfly prints a warning saying that the ping is lost. It never crashes, and
    # `heartfly run` still exits with the command's status." And for a config it cannot use: "the
    # address is wrong (no scheme, unknown name, no config): the command still runs, unreported".
    (tmp_path / "spoolfile").write_text("")
    if variable == "HEARTFLY_SPOOL":
        env = client_env(tmp_path, HEARTFLY_SPOOL=str(tmp_path / "spoolfile"))
    else:  # a config "file" that is a folder, and no HEARTFLY_URL: the address cannot be resolved
        env = client_env(tmp_path, HEARTFLY_CONFIG=str(tmp_path))
        del env["HEARTFLY_URL"], env["HEARTFLY_PING_KEY"]
    done = subprocess.run(
        [PY, "-m", "heartfly", "run", "job", "--", *marker_job(tmp_path)],
        env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (tmp_path / "ran").exists(), f"the job never ran: rc={done.returncode} {done.stderr.decode()}"
    assert done.returncode == 3


def test_a_closed_stderr_does_not_stop_the_job_when_the_server_is_down(tmp_path: Path) -> None:
    env = client_env(tmp_path)
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", PY, "-m", "heartfly", "run", "job", "--", *marker_job(tmp_path)],
        env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (tmp_path / "ran").exists(), f"the job never ran: rc={done.returncode}"
    assert done.returncode == 3


@pytest.mark.parametrize(
    "odd",
    [{"metrics": None}, {"metrics": {"rows": 10**400}}, {"url": f"http://[::1/ping/{KEY}"}],
    ids=["metrics-null", "a-number-too-big-for-a-float", "a-url-that-cannot-be-parsed"],
)
def test_a_spool_record_with_malformed_fields_is_dropped_not_a_crash_that_skips_the_job(
    tmp_path: Path, odd: dict[str, object]
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    record = {"v": 1, "url": f"{closed_port_url()}/ping/{KEY}", "event": "start", "run_id": None,
              "metrics": {}, "at": time.time() - 60, "body": "", "uid": "ab" * 12, **odd}  # fmt: skip
    (spool / f"{round(float(str(record['at'])) * 1e6):020d}-1-1.ping").write_text(json.dumps(record))
    env = client_env(tmp_path)
    for _ in range(2):  # not just once: the record stays, so every later run fails the same way
        (tmp_path / "ran").unlink(missing_ok=True)
        done = subprocess.run(
            [PY, "-m", "heartfly", "run", "job", "--", *marker_job(tmp_path)],
            env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert "Traceback" not in done.stderr.decode(), done.stderr.decode()[-600:]
        assert (tmp_path / "ran").exists() and done.returncode == 3


def test_run_piped_into_head_with_stderr_exits_141_and_reports_it(hf: Setup) -> None:  # noqa: F811
    # docs/client.md: "If heartfly's own stdout goes away (`heartfly run … | head -1`), the command's
    # pipe is closed too, so the command sees the same broken pipe" and the table: SIGPIPE -> 141;
    # "It exits with the command's exit status, whatever happened to the pings."
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "run", "job", "--", "sh", "-c", "echo first; sleep 1; exec yes"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**hf.env(), "PYTHONPATH": ROOT}, cwd=hf.tmp,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        proc.stdout.close()  # `| head -1` is done
        code = proc.wait(60)
    finally:
        proc.kill()
    ends = [p["exit_status"] for p in hf.pings() if p["kind"] != "start"]
    assert (code, ends) == (141, [141])  # got: exit 1 (BrokenPipeError in warn), and no end ping


def test_ping_with_a_message_that_is_not_utf8_is_sent_not_a_crash(hf: Setup) -> None:  # noqa: F811
    message = b"cannot read caf\xe9.txt"  # a Latin-1 file name in a job's own words
    done = subprocess.run(
        [PY.encode(), b"-m", b"heartfly", b"ping", b"job", b"--fail", b"-m", message],
        env={**hf.env(), "PYTHONPATH": ROOT}, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in err(done), err(done)[-400:]
    assert done.returncode == 0
    assert [p["kind"] for p in hf.pings()] == ["fail"]


def test_ping_stdin_left_non_blocking_by_a_parent_is_read_to_its_end(hf: Setup) -> None:  # noqa: F811
    # O_NONBLOCK belongs to the open pipe, which a parent (Node.js, say) may have set and passed on.
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "ping", "job", "--log", "--stdin"],
        env={**hf.env(), "PYTHONPATH": ROOT}, stdin=read_end, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(read_end)
    try:
        time.sleep(0.5)  # the client is up and finds nothing to read yet
        os.write(write_end, b"first line\n")
        time.sleep(0.2)
        os.write(write_end, b"second line\n")  # got: BrokenPipeError, the client had died
        os.close(write_end)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert b"Traceback" not in stderr, stderr[-400:]
    assert proc.returncode == 0
    assert [(p["kind"], p["body"]) for p in hf.pings()] == [("log", "first line\nsecond line\n")]


def test_ping_stdin_with_stdin_closed_sends_an_empty_message_not_a_traceback(hf: Setup) -> None:  # noqa: F811
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", PY, "-m", "heartfly", "ping", "job", "--log", "--stdin"],
        env={**hf.env(), "PYTHONPATH": ROOT}, capture_output=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in err(done), err(done)[-400:]
    assert done.returncode == 0 and "stdin is closed" in err(done)
    assert [(p["kind"], p["body"]) for p in hf.pings()] == [("log", "")]


def test_run_of_a_missing_command_whose_name_is_not_utf8_exits_127_and_reports_it(hf: Setup) -> None:  # noqa: F811
    done = subprocess.run(
        [PY.encode(), b"-m", b"heartfly", b"run", b"job", b"--", b"caf\xe9"],
        env={**hf.env(), "PYTHONPATH": ROOT}, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    ends = [p["exit_status"] for p in hf.pings() if p["kind"] != "start"]
    assert (done.returncode, ends) == (127, [127]), err(done)[-300:]


class Dribbler:
    """Accepts, reads the request, then sends the start of an answer (`head`) and one byte a second,
    forever: a header that never ends, or an error's body that never ends."""

    head = b"HTTP/1.1 200 OK\r\nX-Slow: "

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/ping/{KEY}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(self.head)
                while not self.stop.wait(1.0):
                    conn.sendall(b"a")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def dribbler() -> Iterator[Dribbler]:
    server = Dribbler()
    yield server
    server.close()


@pytest.mark.parametrize("answer", ["its header", "an error's body"])
@pytest.mark.parametrize("through", ["http1", "a proxy (urllib)"])
def test_a_server_dribbling_its_answer_does_not_hold_the_job_back_past_the_start_budget(
    tmp_path: Path, dribbler: Dribbler, through: str, answer: str
) -> None:
    if answer != "its header":
        dribbler.head = b"HTTP/1.1 503 Busy\r\nContent-Length: 100000\r\n\r\n"
    # docs/client.md: "A server that is down or hangs never holds the job back by more than 3 s".
    stamp = tmp_path / "started"
    env = client_env(tmp_path)
    if through != "http1":  # the dribbler as the proxy: urllib sends it the request instead
        env.update(http_proxy=dribbler.url.split("/ping/")[0], no_proxy="", NO_PROXY="")
    began = time.time()
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "run", dribbler.url, "--ping-budget", "3s", "--",
         "sh", "-c", f'date +%s.%N > "{stamp}.part" && mv "{stamp}.part" "{stamp}"'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 12
        while not stamp.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(10)
    assert stamp.exists(), "the job had not started 12 s after `heartfly run` began (budget: 3 s)"
    assert float(stamp.read_text()) - began < 6


def test_a_big_tail_is_capped_so_the_end_ping_still_arrives(hf: Setup) -> None:  # noqa: F811
    # A tail is capped at transport.MAX_BODY (1 MiB), as `heartfly ping` caps -m and --stdin: the
    # server refuses a body over 16 MiB (413), and keeps 1 MiB of one.
    writer = "import sys; sys.stdout.buffer.write(b'x' * (17 << 20))"
    done = hf.cli("run", "job", "--tail", "20MiB", "--", PY, "-c", writer)
    assert done.returncode == 0
    assert [p["kind"] for p in hf.pings()] == ["start", "success"], err(done)[-400:]


def test_a_kill_of_the_wrappers_process_group_also_ends_the_job(tmp_path: Path) -> None:
    # `timeout -k`, `kill -9 -PGID` and supervisors kill the job's process group. Without heartfly the
    # job is in that group; under `heartfly run` (non-interactive) it has a group of its own.
    pidfile = tmp_path / "pid"
    env = client_env(tmp_path)
    proc = subprocess.Popen(
        [PY, "-m", "heartfly", "run", "job", "--", "sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 30'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    job = None
    try:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        job = int(pidfile.read_text())
        os.killpg(proc.pid, signal.SIGKILL)  # what `timeout -k` / a supervisor does to the job's group
        proc.wait(10)
        time.sleep(0.5)
        assert not running(job), "the job runs on, orphaned, after SIGKILL to the group it was started in"
    finally:
        if job is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job, signal.SIGKILL)
        proc.kill()


def running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, nor a zombie its new parent has not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class LosingProxy:
    """Forwards each request to `upstream`; swallows the answer to the first batch request."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lost = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head, body = read_request(conn)
                with socket.create_connection(self.upstream, timeout=10) as up:
                    up.sendall(head + b"\r\n\r\n" + body)
                    answer = b""
                    while chunk := up.recv(65536):
                        answer += chunk
                if b"/batch" in head.split(b"\r\n")[0] and not self.lost:
                    self.lost += 1
                    continue  # the server committed; the client never hears of it
                conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def test_a_batch_whose_answer_was_lost_is_resent_and_counted_once(hf: Setup) -> None:  # noqa: F811
    from heartfly.client.spool import Spool
    from heartfly.client.transport import Ping

    proxy = LosingProxy(hf.server.url)
    try:
        spool = Spool(hf.spool)
        url = f"{proxy.url}/ping/{hf.key}"
        now = time.time()
        spool.put(Ping(url, "start", run_id="r1", at=now - 30))
        spool.put(Ping(url, "0", b"done", run_id="r1", at=now - 10))
        first = hf.cli("flush")
        assert proxy.lost == 1 and first.returncode == 1 and len(hf.spooled()) == 2
        second = hf.cli("flush")
        assert second.returncode == 0 and b"sent 2" in second.stdout and hf.spooled() == []
        assert [p["kind"] for p in hf.pings()] == ["start", "success"]
    finally:
        proxy.close()


def test_a_callers_alarm_still_ends_a_run_whose_pings_go_through_a_proxy(tmp_path: Path) -> None:
    # `alarm(2); exec heartfly run …`, the shell's timeout idiom: the bound heartfly keeps on an
    # exchange through urllib (a proxy) must not replace the caller's timer.
    env = client_env(tmp_path, http_proxy=closed_port_url(), no_proxy="", NO_PROXY="")
    began = time.monotonic()
    done = subprocess.run(
        [PY, "-c", "import os, signal, sys; signal.alarm(2); os.execvp(sys.argv[1], sys.argv[1:])",
         PY, "-m", "heartfly", "run", "job", "--", "sleep", "6"],
        env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == -signal.SIGALRM and time.monotonic() - began < 5, err(done)[-300:]


def test_a_job_started_in_a_deleted_working_directory_still_runs_and_keeps_its_exit_code(tmp_path: Path) -> None:
    # A deploy that replaced the folder a long-running shell loop sits in: looking for ./heartfly.toml
    # asked for the working directory's name, which no longer exists, and the traceback stopped
    # `heartfly run` before it ran the job.
    env = client_env(tmp_path)
    del env["HEARTFLY_URL"], env["HEARTFLY_PING_KEY"]  # the name is looked up in ./heartfly.toml
    gone = tmp_path / "release-1"
    gone.mkdir()
    in_gone = ["sh", "-c", 'cd "$0" && rmdir "$0" && exec "$@"', str(gone), PY, "-m", "heartfly"]
    done = subprocess.run(
        [*in_gone, "run", "job", "--", *marker_job(tmp_path)],
        env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in done.stderr.decode(), done.stderr.decode()[-600:]
    assert (tmp_path / "ran").exists() and done.returncode == 3
    assert "running the command without reporting it" in done.stderr.decode()
    assert "the working folder no longer exists" in done.stderr.decode(), done.stderr.decode()[-600:]
    gone.mkdir()  # the run above removed it: without it again, `cd` fails and heartfly never starts
    pinged = subprocess.run([*in_gone, "ping", "job"], env=env, capture_output=True, timeout=60)
    assert not gone.exists()  # heartfly ran, in the folder it was started in, deleted
    assert (pinged.returncode, "Traceback" in pinged.stderr.decode()) == (2, False), pinged.stderr.decode()
    assert "the working folder no longer exists" in pinged.stderr.decode(), pinged.stderr.decode()


def test_a_spooled_ping_this_user_may_not_read_is_left_for_its_owner_not_deleted() -> None:
    # `sudo heartfly run …` where sudo keeps HOME: root spools into the user's own spool a ping
    # file only root may read. The user's next flush took the permission error for a damaged file
    # and deleted it (the user owns the folder): root's ping was lost, never sent by anyone.
    import shutil
    import tempfile

    from heartfly.client.spool import Spool
    from heartfly.client.transport import Ping

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the flush as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        top = Path(where)
        os.chmod(top, 0o777)
        spool = top / "spool"
        spool.mkdir(mode=0o700)
        os.chown(spool, 65534, 65534)
        Spool(spool).put(Ping(f"{closed_port_url()}/ping/{KEY}", "start", at=time.time() - 60))  # root's, 0600
        [path] = Spool(spool).pending()
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = subprocess.run(
            [*nobody, PY, "-m", "heartfly", "flush", "--spool", str(spool)],
            env={**os.environ, "PYTHONPATH": ROOT, "HEARTFLY_RETRIES": "0"}, capture_output=True, text=True,
            timeout=60, cwd=top, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert path.exists(), done.stderr
        assert done.returncode == 1 and "still waiting 1" in done.stdout, done.stdout + done.stderr
        assert f"cannot read {path}" in done.stderr and "left in the spool" in done.stderr


def test_a_lock_file_root_left_in_a_users_spool_does_not_stop_its_replays_for_good(hf: Setup) -> None:  # noqa: F811
    # `sudo heartfly run …` where sudo keeps HOME replays the user's spool as root and leaves its
    # lock file there, root's own, 0600. The user could never take the lock again: each of its pings
    # to a server with pings waiting was held back behind them, spooled, and never sent.
    import shutil
    import tempfile

    from heartfly.client.spool import Spool, origin
    from heartfly.client.transport import Ping

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to ping as another user")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's alone
        top = Path(where)
        os.chmod(top, 0o777)
        spool = top / "spool"
        spool.mkdir(mode=0o700)
        Spool(spool).put(Ping(hf.url, "start", at=time.time() - 60))  # the user's, from an outage
        for path in [spool, *spool.iterdir()]:
            os.chown(path, 65534, 65534)
        with Spool(spool).lock(server=origin(hf.url)) as held:  # root's replay, whose lock file stays
            assert held
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = subprocess.run(
            [*nobody, PY, "-m", "heartfly", "ping", hf.url, "-m", "later", "--spool", str(spool)],
            env={**os.environ, "PYTHONPATH": ROOT, "HEARTFLY_RETRIES": "0"}, capture_output=True, text=True,
            timeout=60, cwd=top, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert [(p["kind"], p["body"]) for p in hf.pings()] == [("start", ""), ("success", "later")], done.stderr
        assert Spool(spool).pending() == []


def test_a_lock_file_planted_as_a_link_in_the_spool_does_not_change_the_file_it_points_to(tmp_path: Path) -> None:
    # A spool others may write (HEARTFLY_SPOOL=/tmp/heartfly, made by whoever came first): a link
    # named as its lock file made a replay chmod the file it points to 0644 (root's: /etc/shadow)
    from heartfly.client.spool import Spool, lock_name, origin
    from heartfly.client.transport import Ping

    url = closed_port_url()
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o777)
    Spool(spool).put(Ping(f"{url}/ping/{KEY}", "start", at=time.time() - 60))
    secrets: list[Path] = []
    for name in (".lock", lock_name(origin(url))):
        secret = tmp_path / f"secret{len(secrets)}"
        secret.write_text("not the world's\n")
        secret.chmod(0o600)
        (spool / name).symlink_to(secret)
        secrets.append(secret)
    done = subprocess.run(
        [PY, "-m", "heartfly", "flush", "--spool", str(spool)],
        env=client_env(tmp_path, HEARTFLY_SPOOL=str(spool)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert [oct(path.stat().st_mode & 0o777) for path in secrets] == ["0o600", "0o600"], done.stdout + done.stderr
    assert [path.read_text() for path in secrets] == ["not the world's\n"] * 2


class Listener:
    """A TCP listener on loopback that counts the connections made to it (a planted config's server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.heads: list[bytes] = []
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self.heads.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("command", ["pause", "ping"])
def test_a_heartfly_toml_any_user_may_write_in_the_working_folder_is_not_read(tmp_path: Path, command: str) -> None:
    # `sudo heartfly pause backup` run in a folder where another user put a heartfly.toml (a shared
    # checkout, /tmp) sent the API token read from the real token file to that file's listen
    # address; a job's `heartfly ping NAME` sent HEARTFLY_PING_KEY (every check's) to its public_url
    listener = Listener()
    try:
        token = tmp_path / "api-token"
        token.write_text("t" * 43 + "\n")
        token.chmod(0o600)
        here = tmp_path / "shared"
        here.mkdir()
        planted = here / "heartfly.toml"
        planted.write_text(
            f'[server]\nlisten = "127.0.0.1:{listener.port}"\npublic_url = "http://127.0.0.1:{listener.port}"\n'
            f'api_token_file = "{token}"\n'
        )
        planted.chmod(0o666)  # anyone's to write
        args = ["pause", "backup"] if command == "pause" else ["ping", "backup"]
        env = client_env(tmp_path, HEARTFLY_PING_KEY="p" * 24)
        del env["HEARTFLY_URL"]
        done = subprocess.run(
            [PY, "-m", "heartfly", *args], cwd=here, env=env, capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert listener.heads == [], done.stderr
        assert "heartfly.toml" in done.stderr and "may be written by any user" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    finally:
        listener.close()


@pytest.mark.parametrize("mode", [0o777, 0o700])  # a spool anyone may write; a user's own, replayed by root
def test_a_ping_another_user_put_in_the_spool_is_left_there_not_sent(tmp_path: Path, mode: int) -> None:
    # A spool others may write: a file planted there, in the spool's own format, was sent by the
    # next replay of whoever ran heartfly (root's too): its URL and body anywhere the planter chose
    from heartfly.client.spool import Spool
    from heartfly.client.transport import Ping

    if os.geteuid() != 0:
        pytest.skip("needs root to give the planted ping to another user")
    listener = Listener()
    try:
        spool = tmp_path / "spool"
        spool.mkdir()
        spool.chmod(mode)
        Spool(spool).put(Ping(f"http://127.0.0.1:{listener.port}/ping/{KEY}", "fail", at=time.time() - 60))
        [planted] = Spool(spool).pending()
        os.chown(planted, 65534, 65534)
        done = subprocess.run(
            [PY, "-m", "heartfly", "flush", "--spool", str(spool)],
            env=client_env(tmp_path, HEARTFLY_SPOOL=str(spool)), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listener.heads == [], done.stderr
        assert planted.exists() and "left in the spool" in done.stderr, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    finally:
        listener.close()


# `heartfly` with its filesystem uid set to nobody's and its euid still root: the files it makes
# are nobody's, as root's are on NFS with root_squash (and every file of a vfat mount is its uid=).
# What it imports is imported first: nobody may not read this Python's own files.
AS_SQUASHED_ROOT = (
    "import base64, ctypes, http.client, json, socket, ssl, sys, unicodedata, urllib.request;"
    " import heartfly.cli.main, heartfly.client.http1, heartfly.client.spool, heartfly.client.viaurllib;"
    " from heartfly.entry import main;"
    " ctypes.CDLL(None).setfsuid(65534); sys.argv = ['heartfly', *sys.argv[1:]]; main()"
)


def test_a_spool_where_this_users_own_files_are_nobodys_is_still_replayed(tmp_path: Path) -> None:
    # root's spool on NFS with root_squash: its own pings, nobody's there, were left with a warning
    # at every run and never sent, as another user's are (until the spool's cap dropped them)
    import shutil
    import tempfile

    from heartfly.client.spool import Spool
    from heartfly.client.transport import Ping

    if os.geteuid() != 0:
        pytest.skip("needs root, to take nobody's filesystem uid")
    listener = Listener()
    outer = Path(tempfile.mkdtemp(prefix="heartfly-squash-"))  # a path nobody may walk (pytest's is not)
    try:
        outer.chmod(0o711)
        spool = outer / "spool"
        spool.mkdir(mode=0o700)
        Spool(spool).put(Ping(f"http://127.0.0.1:{listener.port}/ping/{KEY}", "fail", at=time.time() - 60))
        [own] = Spool(spool).pending()
        for path in (spool, own):
            os.chown(path, 65534, 65534)  # as root's process made them, squashed
        done = subprocess.run(
            [PY, "-c", AS_SQUASHED_ROOT, "flush", "--spool", str(spool)],
            env=client_env(tmp_path, HEARTFLY_SPOOL=str(spool)), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert len(listener.heads) == 1 and not own.exists(), done.stdout + done.stderr
        assert "left in the spool" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    finally:
        listener.close()
        shutil.rmtree(outer)
