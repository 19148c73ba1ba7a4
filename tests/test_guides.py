"""docs/guides.md: each guide's real job code, run against a real Heartfly over loopback.

The jobs live in tests/guides/ and the doc quotes them verbatim, so what users copy is what ran
here. Each job gets Heartfly's URL and the keys from the doc's own config through its environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.proc import Server, heartfly

GUIDES = Path(__file__).resolve().parent / "guides"
DOC = Path(__file__).resolve().parent.parent / "docs" / "guides.md"
pytestmark = pytest.mark.both_stores  # the guides run on SQLite and on PostgreSQL
SERVER = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n\n'


def guide(name: str) -> str:
    return (GUIDES / name).read_text(encoding="utf-8")


def tweak(snippet: str, **settings: str) -> str:
    """The doc's check table with some settings made test-sized, e.g. max_runtime="1s"."""
    for name, value in settings.items():
        snippet, count = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{value}"', snippet, flags=re.MULTILINE)
        assert count == 1, f"{name} is not set exactly once in the snippet"
    return snippet


def keys(snippet: str) -> dict[str, str]:
    """The check's key, start_key and fail_key, as the doc's config gives them."""
    ((_, table),) = tomllib.loads(snippet)["checks"].items()
    return {k: v for k, v in table.items() if k in ("key", "start_key", "fail_key")}


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class Heartfly:
    server: Server
    config: Path
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def check(self, name: str) -> dict[str, Any]:
        item: dict[str, Any] = self.api(f"/api/v1/checks/{name}")
        return item

    def pings(self, name: str) -> list[dict[str, Any]]:
        """Oldest first."""
        return list(reversed(self.api(f"/api/v1/checks/{name}/pings")))

    def flips(self, name: str) -> list[dict[str, Any]]:
        """Every change, up <-> running too; oldest first."""
        return list(reversed(self.api(f"/api/v1/checks/{name}/flips?all=1")))

    def status(self, name: str) -> dict[str, Any]:
        """One check as `heartfly status --json` prints it."""
        result = heartfly("status", "--json", "-c", str(self.config))
        assert result.returncode == 0, result.stderr
        (item,) = [i for i in json.loads(result.stdout) if i["name"] == name]
        return dict(item)

    def wait_for(self, name: str, state: str, reason: str | None = None, timeout: float = 8.0) -> dict[str, Any]:
        """Polls the check until it is in `state` (and `reason`) and the flip into it is stored (the
        state changes in memory at once, its flip row a commit later); fails with the server log if not."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.check(name)
            matches = item["state"] == state and (reason is None or item["reason"] == reason)
            if matches and self._flip_stored(name, state):
                return item
            if time.monotonic() > deadline:
                pytest.fail(f"{name} is {item['state']} ({item['reason']}), not {state}:\n{self.server.log()}")
            time.sleep(0.05)

    def _flip_stored(self, name: str, state: str) -> bool:
        if state == "new":  # where every check starts, without a flip
            return True
        newest = self.api(f"/api/v1/checks/{name}/flips?limit=1")
        return bool(newest) and newest[0]["new"] == state

    def ping(self, key: str, body: dict[str, Any] | None = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/heartbeat/{key}", data=data)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


StartHeartfly = Callable[..., Heartfly]


def server_table(store_backend: str) -> str:
    """SERVER with the test's store: the SQLite file, or (both_stores) a fresh PostgreSQL database."""
    return SERVER.replace('database = "hb.db"', f"database = {store_backend}")


@pytest.fixture
def start_heartfly(tmp_path: Path, store_backend: str) -> Iterator[StartHeartfly]:
    """Serves the given check tables (from the doc) on loopback, on a port the OS picks."""
    servers: list[Server] = []

    def start(*snippets: str) -> Heartfly:
        config = tmp_path / "heartfly.toml"
        config.write_text(server_table(store_backend) + "\n".join(snippets), encoding="utf-8")
        server = Server(config)
        servers.append(server)
        server.start()
        token = (tmp_path / "token").read_text(encoding="utf-8").strip()
        return Heartfly(server, config, token)

    yield start
    for server in servers:
        server.kill()


def run(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"`{tool}` is not on PATH, so this guide's code cannot run here (install {tool} to run it)")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- the doc and the files ---------------------------------------------------------------------


def test_the_doc_quotes_every_guide_file_verbatim() -> None:
    doc = DOC.read_text(encoding="utf-8")
    files = sorted(p.name for p in GUIDES.iterdir() if p.is_file())
    assert len(files) == 10
    for name in files:
        assert guide(name) in doc, f"docs/guides.md does not quote tests/guides/{name} as it is"
        assert f"tests/guides/{name}" in doc


def test_the_docs_check_tables_together_pass_check_config(tmp_path: Path) -> None:
    config = tmp_path / "heartfly.toml"
    tables = [guide(p.name) for p in sorted(GUIDES.glob("*.toml"))]
    config.write_text(SERVER + "\n".join(tables), encoding="utf-8")
    result = heartfly("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK, 5 check(s)" in result.stdout
    assert "guide-backup-start-key-00001" in result.stdout  # each event's URL is listed


# ---- 1. shell: backup.sh ---------------------------------------------------------------------


def backup_env(hb: Heartfly, snippet: str, src: Path, dest: Path) -> dict[str, str]:
    need("curl")
    k = keys(snippet)
    return {
        "HB": hb.url,
        "START_KEY": k["start_key"],
        "SUCCESS_KEY": k["key"],
        "FAIL_KEY": k["fail_key"],
        "BACKUP_SRC": str(src),
        "BACKUP_DEST": str(dest),
    }


def test_a_backup_that_succeeds_is_up_with_its_duration_recorded(start_heartfly: StartHeartfly, tmp_path: Path) -> None:
    snippet = guide("backup.toml")
    hb = start_heartfly(snippet)
    src = tmp_path / "data"
    src.mkdir()
    (src / "db.sql").write_text("-- dump\n" * 1000)
    began = time.monotonic()
    result = run(["sh", str(GUIDES / "backup.sh")], backup_env(hb, snippet, src, tmp_path / "backup.tgz"))
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "backup.tgz") as archive:
        assert "./db.sql" in archive.getnames()
    status = hb.status("nightly-backup")
    assert (status["state"], status["reason"]) == ("up", None)
    assert 0 < status["last_duration_seconds"] < took
    assert [p["kind"] for p in hb.pings("nightly-backup")] == ["start", "success"]
    assert [(f["old"], f["new"]) for f in hb.flips("nightly-backup")] == [("new", "running"), ("running", "up")]


def test_a_backup_that_fails_is_down_failed_at_once(start_heartfly: StartHeartfly, tmp_path: Path) -> None:
    snippet = guide("backup.toml")
    hb = start_heartfly(snippet)
    result = run(["sh", str(GUIDES / "backup.sh")], backup_env(hb, snippet, tmp_path / "missing", tmp_path / "b.tgz"))
    assert result.returncode == 2  # tar's own exit status, passed on to cron
    status = hb.status("nightly-backup")
    assert (status["state"], status["reason"]) == ("down", "failed")
    assert status["last_duration_seconds"] is not None
    assert [p["kind"] for p in hb.pings("nightly-backup")] == ["start", "fail"]
    assert hb.flips("nightly-backup")[-1]["detail"] == "failed"


def test_a_backup_that_starts_and_hangs_is_down_overrun_once_max_runtime_passes(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    snippet = tweak(guide("backup.toml"), max_runtime="1s")
    hb = start_heartfly(snippet)
    src = tmp_path / "data"
    src.mkdir()
    (src / "db.sql").write_text("-- dump\n")
    stalled = tmp_path / "stalled-mount.tgz"
    os.mkfifo(stalled)  # nothing ever reads it: tar blocks opening it, like a hung network mount
    env = {**os.environ, **backup_env(hb, snippet, src, stalled)}
    job = subprocess.Popen(["sh", str(GUIDES / "backup.sh")], env=env, start_new_session=True)
    try:
        hb.wait_for("nightly-backup", "running")
        hb.wait_for("nightly-backup", "down", "overrun", timeout=5)
        assert job.poll() is None  # the job never completed: Heartfly decided on its own
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(10)
    (start,) = hb.pings("nightly-backup")
    flip = hb.flips("nightly-backup")[-1]
    assert (flip["new"], flip["reason"]) == ("down", "overrun")
    assert re.fullmatch(r"still running after 1(\.\d)? s \(max_runtime 1 s\)", flip["detail"]), flip
    assert 0.999 <= at(flip["at"]) - at(start["at"]) < 1.5
    assert hb.status("nightly-backup")["reason"] == "overrun"


# ---- 2. Python ETL: send_heartbeat.py ----------------------------------------------------------


def etl_env(url: str, snippet: str, tmp_path: Path, csv: str) -> dict[str, str]:
    k = keys(snippet)
    (tmp_path / "sales.csv").write_text(csv, encoding="utf-8")
    return {
        "HEARTFLY_URL": url,
        "ETL_KEY": k["key"],
        "ETL_FAIL_KEY": k["fail_key"],
        "ETL_SOURCE": str(tmp_path / "sales.csv"),
        "ETL_TARGET": str(tmp_path / "totals.json"),
    }


def test_the_etl_stores_its_messages_with_its_pings(start_heartfly: StartHeartfly, tmp_path: Path) -> None:
    snippet = guide("etl.toml")
    hb = start_heartfly(snippet)
    env = etl_env(hb.url, snippet, tmp_path, "customer,amount\nacme,10\nglobex,2.5\nacme,5\n")
    result = run([sys.executable, str(GUIDES / "send_heartbeat.py")], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # every heartbeat was recorded
    assert json.loads((tmp_path / "totals.json").read_text()) == {"acme": 15.0, "globex": 2.5}
    pings = hb.pings("etl")
    assert [(p["kind"], p["body"]) for p in pings] == [
        ("start", "ETL process initiated"),
        ("success", "ETL loaded totals for 2 customers"),
    ]
    assert all(p["method"] == "POST" for p in pings)
    check = hb.check("etl")
    assert (check["state"], check["reason"]) == ("up", None)
    assert check["last_duration_seconds"] > 0


def test_an_etl_that_fails_posts_its_error_to_the_fail_key_and_is_down_failed(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    snippet = guide("etl.toml")
    hb = start_heartfly(snippet)
    env = etl_env(hb.url, snippet, tmp_path, "customer,amount\nacme,10\nglobex,n/a\n")
    result = run([sys.executable, str(GUIDES / "send_heartbeat.py")], env)
    assert result.returncode == 1
    assert "ValueError: line 3: amount 'n/a' is not a number" in result.stderr  # re-raised for the scheduler
    assert [(p["kind"], p["body"]) for p in hb.pings("etl")] == [
        ("start", "ETL process initiated"),
        ("fail", "ETL failed: line 3: amount 'n/a' is not a number"),
    ]
    check = hb.wait_for("etl", "down", "failed", timeout=0)
    assert check["last_duration_seconds"] is not None
    assert hb.status("etl")["reason"] == "failed"


@pytest.mark.parametrize("where", ["nothing listens", "unknown keys"])
def test_an_etl_whose_heartbeats_are_not_recorded_still_does_its_work(
    start_heartfly: StartHeartfly, tmp_path: Path, where: str
) -> None:
    snippet = guide("etl.toml")
    if where == "nothing listens":
        url = f"http://127.0.0.1:{closed_port()}"
    else:
        url = start_heartfly(guide("backup.toml")).url  # a Heartfly that does not know the ETL's keys
    result = run(
        [sys.executable, str(GUIDES / "send_heartbeat.py")],
        etl_env(url, snippet, tmp_path, "customer,amount\nacme,1\n"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "totals.json").read_text()) == {"acme": 1.0}
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: heartbeat") for w in warnings)
    if where == "unknown keys":
        assert "HTTP Error 404" in warnings[0]


# ---- 3. Go service: heartbeat.go -----------------------------------------------------------------


def go_env(hb: Heartfly, snippet: str, spool: Path, tmp_path: Path) -> dict[str, str]:
    k = keys(snippet)
    # `go run` needs a build cache: its default lives under $HOME, which a bare CI may not set.
    cache = {} if {"GOCACHE", "HOME", "XDG_CACHE_HOME"} & set(os.environ) else {"GOCACHE": str(tmp_path / "gocache")}
    return {
        **cache,
        "HEARTFLY_URL": hb.url,
        "CLEANUP_START_KEY": k["start_key"],
        "CLEANUP_KEY": k["key"],
        "CLEANUP_FAIL_KEY": k["fail_key"],
        "SPOOL_DIR": str(spool),
        "MAX_AGE": "1h",
        "INTERVAL": "100ms",
        "RUNS": "2",
    }


def test_the_go_service_pings_a_start_and_a_completion_for_each_run(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    go = need("go")
    snippet = guide("cleanup.toml")
    hb = start_heartfly(snippet)
    spool = tmp_path / "spool"
    spool.mkdir()
    for name, age in (("old-1", 7200), ("old-2", 86400), ("fresh", 0)):
        (spool / name).write_text("x")
        os.utime(spool / name, (time.time() - age, time.time() - age))
    result = run([go, "run", str(GUIDES / "heartbeat.go")], go_env(hb, snippet, spool, tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "run 1: removed 2 file(s)\nrun 2: removed 0 file(s)\n"
    assert sorted(p.name for p in spool.iterdir()) == ["fresh"]
    assert [p["kind"] for p in hb.pings("spool-cleanup")] == ["start", "success", "start", "success"]
    check = hb.check("spool-cleanup")
    assert (check["state"], check["reason"]) == ("up", None) and check["last_duration_seconds"] is not None


def test_the_go_service_pings_its_fail_url_when_a_run_fails(start_heartfly: StartHeartfly, tmp_path: Path) -> None:
    go = need("go")
    snippet = guide("cleanup.toml")
    hb = start_heartfly(snippet)
    env = {**go_env(hb, snippet, tmp_path / "no-such-spool", tmp_path), "RUNS": "1"}
    result = run([go, "run", str(GUIDES / "heartbeat.go")], env, timeout=300)
    assert result.returncode == 0, result.stderr  # a service logs the failure and carries on
    assert "cleanup failed" in result.stderr
    assert [p["kind"] for p in hb.pings("spool-cleanup")] == ["start", "fail"]
    hb.wait_for("spool-cleanup", "down", "failed", timeout=0)


# ---- 4. Rails/Sidekiq job: sidekiq_job.rb ------------------------------------------------------


def ruby_env(hb: Heartfly, snippet: str, tmp_path: Path, invoices: str) -> dict[str, str]:
    k = keys(snippet)
    (tmp_path / "invoices.csv").write_text(invoices, encoding="utf-8")
    (tmp_path / "outbox").mkdir()
    return {
        "HEARTFLY_URL": hb.url,
        "REMINDERS_START_KEY": k["start_key"],
        "REMINDERS_KEY": k["key"],
        "REMINDERS_FAIL_KEY": k["fail_key"],
        "INVOICES_FILE": str(tmp_path / "invoices.csv"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }


def test_the_sidekiq_job_pings_its_start_then_its_success_with_a_message(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    ruby = need("ruby")
    snippet = guide("reminders.toml")
    hb = start_heartfly(snippet)
    env = ruby_env(hb, snippet, tmp_path, "a@example.com,12.00 EUR\nb@example.com,3.50 EUR\n")
    result = run([ruby, str(GUIDES / "sidekiq_job.rb")], env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["a@example.com.txt", "b@example.com.txt"]
    assert [(p["kind"], p["body"]) for p in hb.pings("invoice-reminders")] == [
        ("start", ""),
        ("success", "sent 2 reminders"),
    ]
    status = hb.status("invoice-reminders")
    assert (status["state"], status["reason"]) == ("up", None)
    assert status["last_duration_seconds"] is not None


def test_a_sidekiq_job_that_raises_pings_its_fail_key_and_re_raises(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    ruby = need("ruby")
    snippet = guide("reminders.toml")
    hb = start_heartfly(snippet)
    env = ruby_env(hb, snippet, tmp_path, "a@example.com,12.00 EUR\nbogus,1 EUR\n")
    result = run([ruby, str(GUIDES / "sidekiq_job.rb")], env)
    assert result.returncode == 1
    assert "no email address" in result.stderr and "ArgumentError" in result.stderr  # Sidekiq would retry
    assert [(p["kind"], p["body"]) for p in hb.pings("invoice-reminders")] == [
        ("start", ""),
        ("fail", 'ArgumentError: line 2: no email address in "bogus,1 EUR"'),
    ]
    status = hb.status("invoice-reminders")
    assert (status["state"], status["reason"]) == ("down", "failed")


# ---- 5. data sync: data_sync.py --------------------------------------------------------------------


def sync_env(url: str, snippet: str, tmp_path: Path, records: list[dict[str, Any]], **env: str) -> dict[str, str]:
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "profiles").mkdir()
    return {
        "HEARTFLY_URL": url,
        "SYNC_KEY": keys(snippet)["key"],
        "SYNC_SOURCE": str(source),
        "SYNC_TARGET": str(tmp_path / "profiles"),
        **env,
    }


def test_a_sync_that_keeps_pinging_stays_up_then_goes_late_and_down_once_it_stops(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    snippet = tweak(guide("data_sync.toml"), every="2s", grace="1s")
    hb = start_heartfly(snippet)
    users = [{"id": i, "email": f"user{i}@example.com"} for i in range(12)]
    env = sync_env(hb.url, snippet, tmp_path, users, SYNC_PING="operation", SYNC_BATCH="2", SYNC_PAUSE="0.5")
    job = subprocess.Popen([sys.executable, str(GUIDES / "data_sync.py")], env={**os.environ, **env})
    seen: set[str] = set()
    try:
        while job.poll() is None:
            seen.add(hb.check("user-sync")["state"])
            time.sleep(0.05)
    finally:
        job.kill()
        job.wait(10)
    assert job.returncode == 0
    assert seen <= {"new", "up"}, seen  # never late while the operations kept succeeding
    pings = hb.pings("user-sync")
    assert len(pings) == 12 and {p["kind"] for p in pings} == {"success"}
    first, last = at(pings[0]["at"]), at(pings[-1]["at"])
    assert last - first > 2.0  # the sync ran for longer than `every`, and pinging kept it up
    late = hb.wait_for("user-sync", "late", timeout=5)
    assert abs(at(late["due_at"]) - (last + 2.0)) < 0.01
    hb.wait_for("user-sync", "down", "missed", timeout=5)
    flips = [(f["new"], f["reason"], at(f["at"]) - last) for f in hb.flips("user-sync")]
    assert [f[:2] for f in flips] == [("up", None), ("late", None), ("down", "missed")]
    assert 1.999 <= flips[1][2] < 2.5  # `every` after the last ping
    assert 2.999 <= flips[2][2] < 3.5  # and `grace` after that
    assert len(list((tmp_path / "profiles").iterdir())) == 12


def test_a_batch_sync_pings_once_per_batch_with_its_counts_as_metrics(
    start_heartfly: StartHeartfly, tmp_path: Path
) -> None:
    snippet = guide("data_sync.toml")
    hb = start_heartfly(snippet)
    users: list[dict[str, Any]] = [{"id": i, "email": f"user{i}@example.com"} for i in range(7)]
    users[4]["email"] = "not an address"
    env = sync_env(hb.url, snippet, tmp_path, users, SYNC_PING="batch", SYNC_BATCH="3", SYNC_PAUSE="0.05")
    result = run([sys.executable, str(GUIDES / "data_sync.py")], env)
    assert result.returncode == 0, result.stderr
    assert "skipped a record: user 4: no valid email" in result.stderr
    pings = hb.pings("user-sync")
    assert [p["metrics"] for p in pings] == [
        {"processed": 3, "failed": 0},
        {"processed": 2, "failed": 1},
        {"processed": 1, "failed": 0},
    ]
    assert {p["kind"] for p in pings} == {"success"}
    assert hb.check("user-sync")["state"] == "up"


# ---- bad input -----------------------------------------------------------------------------------


def test_a_start_key_reused_as_another_checks_key_is_a_config_error_naming_both_places(tmp_path: Path) -> None:
    shared = "reused-key-000000000000000001"
    config = tmp_path / "heartfly.toml"
    config.write_text(
        SERVER
        + f'[checks.a]\nkey = "a-key-00000000000000000001"\nstart_key = "{shared}"\nevery = "1h"\n'
        + f'[checks.b]\nkey = "{shared}"\nevery = "1h"\n'
    )
    for command in ("check-config", "serve"):
        result = heartfly(command, "-c", str(config))
        assert result.returncode == 2
        assert result.stderr == "error: checks.b.key: the same key is already used by checks.a.start_key\n"


@pytest.mark.parametrize("field", ["key", "start_key", "fail_key"])
def test_an_empty_key_is_a_clear_config_error(tmp_path: Path, field: str) -> None:
    table = {"key": '"a-key-00000000000000000001"', field: '""'}
    config = tmp_path / "heartfly.toml"
    config.write_text(SERVER + "[checks.a]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()) + 'every = "1h"\n')
    result = heartfly("check-config", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: checks.a.{field}: a key is a UUID or 22 to 128 url-safe characters (letters, digits, '-', '_')\n"
    )


@pytest.mark.parametrize(
    ("which", "body", "kind", "state"),
    [
        ("fail_key", {"status": "success"}, "fail", "down"),
        ("fail_key", {"exit_code": 0, "message": "all good"}, "fail", "down"),
        ("start_key", {"status": "fail"}, "start", "running"),
    ],
)
def test_the_key_decides_the_event_whatever_the_json_says(
    start_heartfly: StartHeartfly, which: str, body: dict[str, Any], kind: str, state: str
) -> None:
    snippet = guide("backup.toml")
    hb = start_heartfly(snippet)
    assert hb.ping(keys(snippet)[which], body) == 200
    (ping,) = hb.pings("nightly-backup")
    assert ping["kind"] == kind
    check = hb.check("nightly-backup")
    assert check["state"] == state
    assert check["reason"] == ("failed" if state == "down" else None)


def test_a_plain_text_log_posted_to_the_fail_keys_ping_url_records_the_failure_with_the_log(
    start_heartfly: StartHeartfly,
) -> None:
    snippet = guide("backup.toml")
    hb = start_heartfly(snippet)
    log = b"tar: /srv/data: Cannot open: No such file or directory\n"
    request = urllib.request.Request(f"{hb.url}/ping/{keys(snippet)['fail_key']}", data=log)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert [(p["kind"], p["body"]) for p in hb.pings("nightly-backup")] == [("fail", log.decode())]
    hb.wait_for("nightly-backup", "down", "failed", timeout=0)


def test_a_plain_text_log_posted_to_the_fail_keys_json_url_still_records_the_failure(
    start_heartfly: StartHeartfly,
) -> None:
    snippet = guide("backup.toml")
    hb = start_heartfly(snippet)
    request = urllib.request.Request(
        f"{hb.url}/api/v1/heartbeat/{keys(snippet)['fail_key']}", data=b"tar: /srv/data: Cannot open\n"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 200
    hb.wait_for("nightly-backup", "down", "failed", timeout=0)
