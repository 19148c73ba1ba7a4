"""docs/recipes.md: each recipe's real job code, run end-to-end against a real Heartfly over loopback.

The jobs and their configs live in tests/recipes/ and the doc quotes them verbatim. Each test serves
the doc's own check tables (durations shortened by substituting one named setting at a time) with
`heartfly serve`, points the doc's webhook channel at a receiver on 127.0.0.1, runs the job's code
as a real process, and checks the states, reasons, details, metrics, runs and alerts the doc shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.proc import Server, heartfly
from tests.test_guides import SERVER, Heartfly, at, server_table

RECIPES = Path(__file__).resolve().parent / "recipes"
DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
STEPS = ("etl-extract", "etl-transform", "etl-load")
MEMBERS = [f"w{i}" for i in range(1, 9)]

pytestmark = pytest.mark.both_stores  # the recipes run on SQLite and on PostgreSQL


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"`{tool}` is not on PATH, so this recipe's code cannot run here (install {tool} to run it)")
    return path


def recipe(name: str) -> str:
    return (RECIPES / name).read_text(encoding="utf-8")


def tweak(snippet: str, table: str, **settings: str) -> str:
    """The doc's config with settings of one table made test-sized, each substituted exactly once."""
    start = snippet.index(f"[{table}]\n")
    end = snippet.find("\n[", start)
    end = len(snippet) if end < 0 else end + 1
    section = snippet[start:end]
    for name, value in settings.items():
        section, count = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{value}"', section, flags=re.MULTILINE)
        assert count == 1, f"{table}.{name} is not set exactly once in the snippet"
    return snippet[:start] + section + snippet[end:]


def table(snippet: str, name: str) -> dict[str, Any]:
    """One check's settings, as the doc's config gives them."""
    checks: dict[str, dict[str, Any]] = tomllib.loads(snippet)["checks"]
    return checks[name]


def send(url: str, data: bytes | None = None, json_body: bool = False) -> tuple[int, str]:
    """GET (or POST `data`) one URL; the status and the body, for 4xx answers too."""
    headers = {"Content-Type": "application/json"} if json_body else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def runs(hb: Heartfly, name: str) -> list[dict[str, Any]]:
    """The check's finished runs (GET /api/v1/checks/NAME/runs), oldest first."""
    return list(reversed(hb.api(f"/api/v1/checks/{name}/runs")))


def ended(hb: Heartfly, name: str, count: int) -> list[dict[str, Any]]:
    """runs(), once `count` have ended: a check with failures_before_alert 2 or more applies an
    end once the reorder window (5 s) has passed (docs/jobs.md, "Noise control")."""
    deadline = time.monotonic() + 15
    while len(found := runs(hb, name)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def outbox(hb: Heartfly, name: str) -> list[str]:
    """The events of every alert written for the check (whether or not delivered yet), oldest first."""
    return [a["event"] for a in reversed(hb.api(f"/api/v1/checks/{name}/alerts"))]


def last_flip(hb: Heartfly, name: str) -> dict[str, Any]:
    return hb.flips(name)[-1]


def fired_on_time(flip: dict[str, Any], expected: float) -> None:
    """The flip's deadline is `expected` (to the stored millisecond) and it fired promptly after it."""
    assert abs(at(flip["deadline"]) - expected) < 0.002, (flip, expected)
    assert 0 <= at(flip["at"]) - at(flip["deadline"]) < 0.5, flip


class Receiver:
    """The far end of the doc's webhook channel: records every alert Heartfly POSTs to it."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        alerts, lock = self.alerts, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    alerts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/heartfly"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait(self, count: int, timeout: float = 8.0, on_fail: Callable[[], str] = str) -> list[dict[str, Any]]:
        """Polls until `count` alerts have arrived; returns them all, in arrival order. A failure
        shows what `on_fail` returns (a server's log, say)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = list(self.alerts)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"{len(got)} alert(s) arrived, not {count}: {got}\n{on_fail()}")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


Serve = Callable[..., Heartfly]
Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def serve(tmp_path: Path, receiver: Receiver, store_backend: str) -> Iterator[Serve]:
    """Serves the doc's check tables, with its `oncall` webhook pointed at the receiver, on a free port."""
    servers: list[Server] = []

    def start(*snippets: str) -> Heartfly:
        channel = tweak(recipe("oncall.toml"), "channels.oncall", url=receiver.url)
        config = tmp_path / "heartfly.toml"
        config.write_text(server_table(store_backend) + "\n".join([channel, *snippets]), encoding="utf-8")
        server = Server(config)
        servers.append(server)
        server.start()
        token = (tmp_path / "token").read_text(encoding="utf-8").strip()
        return Heartfly(server, config, token)

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts a job as a process of its own group; whatever is still running at the end is killed."""
    procs: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def job(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **env}, cwd=cwd, check=False
    )


def unblock(fifo: Path, text: str) -> None:
    """The job is blocked opening this named pipe for reading: hand it `text` and end the stream."""
    with fifo.open("w", encoding="utf-8") as pipe:
        pipe.write(text)


# ---- the doc and the files ---------------------------------------------------------------------


def test_the_doc_quotes_every_recipe_file_verbatim() -> None:
    doc = DOC.read_text(encoding="utf-8")
    files = sorted(p.name for p in RECIPES.iterdir() if p.is_file())
    assert len(files) == 13
    for name in files:
        assert recipe(name) in doc, f"docs/recipes.md does not quote tests/recipes/{name} as it is"
        assert f"tests/recipes/{name}" in doc


def test_the_doc_calls_a_case_a_known_bug_only_while_a_test_here_expects_it_to_fail() -> None:
    doc = DOC.read_text(encoding="utf-8")
    expected_failures = "pytest.mark." + "xfail" in Path(__file__).read_text(encoding="utf-8")
    assert ("known bug" in doc) == expected_failures, "docs/recipes.md and the tests disagree on known bugs"


def test_the_recipes_configs_together_pass_check_config(tmp_path: Path) -> None:
    config = tmp_path / "heartfly.toml"
    tables = [recipe(p.name) for p in sorted(RECIPES.glob("*.toml"))]
    config.write_text(SERVER + "\n".join(tables), encoding="utf-8")
    result = heartfly("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK, 8 check(s)" in result.stdout
    assert "etl-transform: within 1 h of etl-extract's start" in result.stdout
    assert "etl-load: within 30 min of etl-transform's success" in result.stdout


# ---- 1. the ETL pipeline: etl.sh ---------------------------------------------------------------

CHAIN = "sh etl.sh extract && sh etl.sh transform && sh etl.sh load"  # the crontab line's command
ORDERS = "order_id,customer,amount\n1,acme,10.50\n2,globex,3\n3,acme,4.25\n"


def etl_env(hb: Heartfly, tmp_path: Path, orders: str) -> dict[str, str]:
    need("curl")
    snippet = recipe("etl.toml")
    for folder in ("work", "report"):
        (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / "orders.csv").write_text(orders, encoding="utf-8")
    return {
        "HB": hb.url,
        "EXTRACT_KEY": table(snippet, "etl-extract")["key"],
        "EXTRACT_FAIL_KEY": table(snippet, "etl-extract")["fail_key"],
        "TRANSFORM_KEY": table(snippet, "etl-transform")["key"],
        "LOAD_KEY": table(snippet, "etl-load")["key"],
        "ETL_SOURCE": str(tmp_path / "orders.csv"),
        "ETL_WORK": str(tmp_path / "work"),
        "ETL_TARGET": str(tmp_path / "report"),
    }


def test_an_etl_night_that_works_leaves_all_three_steps_up_each_with_its_run(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(recipe("etl.toml"))
    began = time.monotonic()
    result = job(["sh", "-c", CHAIN], etl_env(hb, tmp_path, ORDERS), cwd=RECIPES)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "totals.csv").read_text() == "acme,14.75\nglobex,3.00\n"
    for name in STEPS:
        check = hb.check(name)
        assert (check["state"], check["reason"], check["step_due_at"]) == ("up", None, None)
        assert [p["kind"] for p in hb.pings(name)] == ["start", "success"]
        (one,) = runs(hb, name)
        assert one["outcome"] == "success" and 0 <= one["duration"] <= took
        assert check["last_duration_seconds"] == pytest.approx(one["duration"], abs=0.002)
        assert outbox(hb, name) == []
    assert receiver.alerts == []


def test_when_transform_never_follows_extract_it_is_down_step_missed_and_the_alert_names_the_pipeline(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(tweak(recipe("etl.toml"), "checks.etl-transform", within="1s"))
    env = etl_env(hb, tmp_path, ORDERS)
    result = job(["sh", "etl.sh", "extract"], env, cwd=RECIPES)  # and then the chain broke (a reboot, say)
    assert result.returncode == 0, result.stderr
    assert hb.check("etl-extract")["state"] == "up"
    started = at(hb.pings("etl-extract")[0]["at"])
    armed = hb.check("etl-transform")
    assert armed["state"] == "new" and abs(at(armed["step_due_at"]) - (started + 1.0)) < 0.002  # from the start
    assert hb.check("etl-load")["step_due_at"] is None  # load waits for transform's success

    hb.wait_for("etl-transform", "down", "step_missed", timeout=5)
    flip = last_flip(hb, "etl-transform")
    assert flip["detail"] == "no success within 1 s of etl-extract's start"
    fired_on_time(flip, started + 1.0)
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["check"]["name"], alert["reason"]) == ("down", "etl-transform", "step_missed")
    assert alert["summary"] == "etl-transform did not follow its upstream step in time"
    assert alert["detail"] == "no success within 1 s of etl-extract's start"
    assert (alert["pipeline"], alert["step"]) == (list(STEPS), "etl-transform")

    result = job(["sh", "-c", "sh etl.sh transform && sh etl.sh load"], env, cwd=RECIPES)  # run by hand
    assert result.returncode == 0, result.stderr
    assert [(a["event"], a["check"]["name"]) for a in receiver.wait(2)] == [
        ("down", "etl-transform"),
        ("recovery", "etl-transform"),
    ]
    assert [hb.check(name)["state"] for name in STEPS] == ["up", "up", "up"]


def test_when_extract_fails_transforms_miss_is_folded_into_extracts_alert(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(tweak(recipe("etl.toml"), "checks.etl-transform", within="1s"))
    env = etl_env(hb, tmp_path, "<html><body>502 Bad Gateway</body></html>\n")  # what the export fetched
    result = job(["sh", "-c", CHAIN], env, cwd=RECIPES)
    assert result.returncode == 1
    assert "is not an order export" in result.stderr
    assert [p["kind"] for p in hb.pings("etl-extract")] == ["start", "fail"]  # the fail_key's ping
    hb.wait_for("etl-extract", "down", "failed", timeout=0)
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["check"]["name"], alert["reason"]) == ("down", "etl-extract", "failed")
    assert (alert["pipeline"], alert["step"]) == (list(STEPS), "etl-extract")

    hb.wait_for("etl-transform", "down", "step_missed", timeout=5)
    assert last_flip(hb, "etl-transform")["detail"] == (
        "no success within 1 s of etl-extract's start (folded into the alert of upstream step etl-extract)"
    )
    assert hb.pings("etl-transform") == []  # cron's && never ran it
    assert outbox(hb, "etl-transform") == []  # no page of its own
    assert hb.check("etl-load")["state"] == "new"

    # The next night's export is fine: extract recovers, and transform's recovery is folded like its miss.
    env = etl_env(hb, tmp_path, ORDERS)
    result = job(["sh", "-c", CHAIN], env, cwd=RECIPES)
    assert result.returncode == 0, result.stderr
    assert [hb.check(name)["state"] for name in STEPS] == ["up", "up", "up"]
    assert (outbox(hb, "etl-extract"), outbox(hb, "etl-transform"), outbox(hb, "etl-load")) == (
        ["down", "recovery"],
        [],
        [],
    )
    assert [(a["event"], a["check"]["name"]) for a in receiver.wait(2)] == [
        ("down", "etl-extract"),
        ("recovery", "etl-extract"),
    ]


# ---- 2. the queue processor: queue_worker.py ------------------------------------------------------


def queue_env(hb: Heartfly, tmp_path: Path, recipients: list[str], batch: int) -> dict[str, str]:
    folders = {name: tmp_path / name.lower() for name in ("QUEUE_DIR", "SENT_DIR", "DEAD_DIR")}
    for folder in folders.values():
        folder.mkdir()
    for number, to in enumerate(recipients, start=1):
        message = {"to": to, "subject": "Your receipt", "body": f"Receipt {number}"}
        (folders["QUEUE_DIR"] / f"{number:04}.json").write_text(json.dumps(message), encoding="utf-8")
    return {
        "HEARTFLY_URL": hb.url,
        "QUEUE_KEY": table(recipe("queue.toml"), "mail-queue")["key"],
        "QUEUE_BATCH": str(batch),
        **{name: str(path) for name, path in folders.items()},
    }


def test_a_queue_pass_pings_progress_with_its_counts_and_is_one_timed_run(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(recipe("queue.toml"))
    recipients = [f"user{i}@example.com" for i in range(1, 8)]
    recipients[4] = "nobody"  # message 5 goes to the dead letters
    env = queue_env(hb, tmp_path, recipients, batch=3)
    began = time.monotonic()
    result = job([sys.executable, str(RECIPES / "queue_worker.py")], env)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sent 6, dead letters 1\n"
    assert [p.name for p in (tmp_path / "dead_dir").iterdir()] == ["0005.json"]
    pings = hb.pings("mail-queue")
    assert [(p["kind"], p["metrics"]) for p in pings] == [
        ("start", {}),
        ("progress", {"processed": 3, "remaining": 4}),
        ("progress", {"processed": 5, "remaining": 1}),
        ("success", {"processed": 6, "dead": 1}),
    ]
    rid = pings[0]["run_id"]
    assert re.fullmatch(r"[0-9a-f]{12}", rid) and {p["run_id"] for p in pings} == {rid}
    (one,) = runs(hb, "mail-queue")
    assert (one["run_id"], one["outcome"]) == (rid, "success") and 0 <= one["duration"] <= took
    check = hb.check("mail-queue")
    assert (check["state"], check["open_runs"]) == ("up", 0)
    assert outbox(hb, "mail-queue") == []


def test_a_queue_pass_stuck_on_one_message_is_down_stalled_after_the_stall_limit(
    serve: Serve, receiver: Receiver, spawn: Spawn, tmp_path: Path
) -> None:
    hb = serve(tweak(recipe("queue.toml"), "checks.mail-queue", stall="1s"))
    env = queue_env(hb, tmp_path, [f"user{i}@example.com" for i in range(1, 7)], batch=2)
    stuck = tmp_path / "queue_dir" / "0005.json"
    stuck.unlink()
    os.mkfifo(stuck)  # reading it blocks, like a message on a hung mount
    worker = spawn([sys.executable, str(RECIPES / "queue_worker.py")], env)

    hb.wait_for("mail-queue", "down", "stalled", timeout=10)
    pings = hb.pings("mail-queue")
    assert [(p["kind"], p["metrics"]) for p in pings] == [
        ("start", {}),
        ("progress", {"processed": 2, "remaining": 4}),
        ("progress", {"processed": 4, "remaining": 2}),
    ]
    flip = last_flip(hb, "mail-queue")
    assert re.fullmatch(r"no progress for 1(\.\d)? s \(stall limit 1 s\)", flip["detail"]), flip
    fired_on_time(flip, at(pings[-1]["at"]) + 1.0)  # the stall limit after the last progress ping
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["reason"], alert["detail"]) == ("down", "stalled", flip["detail"])
    assert alert["summary"] == "mail-queue stalled: no progress during its run"
    assert worker.poll() is None  # still stuck

    unblock(stuck, json.dumps({"to": "user5@example.com", "subject": "Your receipt", "body": "Receipt 5"}))
    out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert out == "sent 6, dead letters 0\n"
    check = hb.wait_for("mail-queue", "up", timeout=0)  # its late success recovers the check...
    assert check["last_duration_seconds"] is None  # ...but times nothing: the run was given up
    assert [a["event"] for a in receiver.wait(2)] == ["down", "recovery"]
    (given_up,) = runs(hb, "mail-queue")
    assert (given_up["run_id"], given_up["outcome"]) == (pings[0]["run_id"], "stalled")
    assert given_up["detail"] == flip["detail"]


def test_a_queue_pass_that_crashes_pings_fail_with_the_error(serve: Serve, tmp_path: Path) -> None:
    hb = serve(recipe("queue.toml"))
    env = queue_env(hb, tmp_path, ["a@example.com"], batch=10)
    (tmp_path / "sent_dir").rmdir()  # the outbox disappeared under the worker
    result = job([sys.executable, str(RECIPES / "queue_worker.py")], env)
    assert result.returncode == 1 and "FileNotFoundError" in result.stderr
    start, fail = hb.pings("mail-queue")
    assert (start["kind"], fail["kind"], fail["metrics"]) == ("start", "fail", {"processed": 0})
    assert fail["body"].startswith("FileNotFoundError: [Errno 2] No such file or directory")
    hb.wait_for("mail-queue", "down", "failed", timeout=0)
    assert [r["outcome"] for r in runs(hb, "mail-queue")] == ["fail"]


# ---- 3. the batch fanned out to 8 workers: shard_worker.py ------------------------------------------

BATCH_ID = "order-batch-20261123t0905"


def shard_env(hb: Heartfly, tmp_path: Path, bad_order: int | None = None) -> dict[str, str]:
    lines = ["order_id,amount"]
    lines += [f"{n},{'n/a' if n == bad_order else f'{n}.25'}" for n in range(1, 41)]  # 5 orders per shard
    (tmp_path / "orders.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    return {
        "HEARTFLY_URL": hb.url,
        "BATCH_KEY": table(recipe("shards.toml"), "order-batch")["key"],
        "BATCH_ID": BATCH_ID,
        "SHARDS": "8",
        "ORDERS": str(tmp_path / "orders.csv"),
        "OUT_DIR": str(tmp_path / "out"),
    }


def fan_out(spawn: Spawn, env: dict[str, str], indexes: list[int]) -> None:
    """The workers of one batch at once, as an Indexed Job starts them; each must exit 0."""
    workers = [spawn([sys.executable, str(RECIPES / "shard_worker.py")], {**env, "JOB_COMPLETION_INDEX": str(i)})
               for i in indexes]  # fmt: skip
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err


def test_a_batch_whose_eight_workers_all_report_is_one_complete_run(
    serve: Serve, receiver: Receiver, spawn: Spawn, tmp_path: Path
) -> None:
    hb = serve(recipe("shards.toml"))
    fan_out(spawn, shard_env(hb, tmp_path), list(range(8)))
    pings = hb.pings("order-batch")
    assert sorted(p["member"] for p in pings) == MEMBERS
    assert {(p["kind"], p["run_id"]) for p in pings} == {("success", BATCH_ID)}
    assert all(p["metrics"] == {"rows": 5} for p in pings)
    (batch,) = runs(hb, "order-batch")
    assert (batch["run_id"], batch["outcome"]) == (BATCH_ID, "success")
    assert batch["members"] == [p["member"] for p in pings]  # in the order they reported
    assert abs(batch["duration"] - (at(pings[-1]["at"]) - at(pings[0]["at"]))) < 0.002  # first to last
    assert hb.check("order-batch")["state"] == "up"
    parts = [json.loads(p.read_text()) for p in (tmp_path / "out").iterdir()]
    assert len(parts) == 8 and sum(p["rows"] for p in parts) == 40
    assert outbox(hb, "order-batch") == []


def test_a_batch_with_one_worker_missing_is_down_incomplete_naming_it(
    serve: Serve, receiver: Receiver, spawn: Spawn, tmp_path: Path
) -> None:
    hb = serve(tweak(recipe("shards.toml"), "checks.order-batch", max_runtime="2s"))
    fan_out(spawn, shard_env(hb, tmp_path), [0, 1, 2, 3, 5, 6, 7])  # w5's node was lost
    assert hb.check("order-batch")["state"] == "running"  # 7 of 8 in
    hb.wait_for("order-batch", "down", "incomplete", timeout=8)
    detail = "7 of 8 successes arrived; missing: w5"
    flip = last_flip(hb, "order-batch")
    assert flip["detail"] == detail
    first = min(at(p["at"]) for p in hb.pings("order-batch"))
    fired_on_time(flip, first + 2.0)  # max_runtime after the batch's first ping
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["reason"], alert["detail"]) == ("down", "incomplete", detail)
    assert alert["summary"] == "order-batch is incomplete: too few workers reported"
    (batch,) = runs(hb, "order-batch")
    assert (batch["run_id"], batch["outcome"], batch["detail"]) == (BATCH_ID, "incomplete", detail)
    assert sorted(batch["members"]) == [m for m in MEMBERS if m != "w5"]


def test_a_worker_that_fails_turns_the_batch_down_at_once_with_its_error(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(recipe("shards.toml"))
    env = {**shard_env(hb, tmp_path, bad_order=10), "JOB_COMPLETION_INDEX": "2"}  # order 10 is w3's
    result = job([sys.executable, str(RECIPES / "shard_worker.py")], env)
    assert result.returncode == 1 and "ValueError" in result.stderr
    message = "w3: ValueError: line 11: amount 'n/a' is not a number"
    ((kind, member, rid, body),) = [(p["kind"], p["member"], p["run_id"], p["body"]) for p in hb.pings("order-batch")]
    assert (kind, member, rid, body) == ("fail", "w3", BATCH_ID, message)
    hb.wait_for("order-batch", "down", "failed", timeout=0)
    (alert,) = receiver.wait(1)
    assert (alert["reason"], alert["detail"], alert["last_ping"]["message_tail"]) == (
        "failed",
        "failed (worker w3)",
        message,
    )


# ---- 4. the backup guarded by bytes > 0: db_backup.sh --------------------------------------------


def backup_env(hb: Heartfly, tmp_path: Path, dump_command: str) -> dict[str, str]:
    need("curl")
    (tmp_path / "backups").mkdir()
    return {
        "HB": hb.url,
        "BACKUP_KEY": table(recipe("db_backup.toml"), "db-backup")["key"],
        "DUMP_COMMAND": dump_command,
        "BACKUP_DIR": str(tmp_path / "backups"),
    }


def test_a_backup_that_writes_a_dump_is_up_with_its_size_stored(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(recipe("db_backup.toml"))
    (tmp_path / "app.sql").write_text("INSERT INTO t VALUES (1);\n" * 80)  # 2080 bytes
    began = time.monotonic()
    result = job(["sh", str(RECIPES / "db_backup.sh")], backup_env(hb, tmp_path, f"cat {tmp_path / 'app.sql'}"))
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    (dump,) = (tmp_path / "backups").iterdir()
    assert dump.stat().st_size == 2080
    start, success = hb.pings("db-backup")
    assert (start["kind"], success["kind"], success["metrics"]) == ("start", "success", {"bytes": 2080})
    assert re.fullmatch(r"\d{8}T\d{6}Z-\d+", start["run_id"]) and success["run_id"] == start["run_id"]
    assert dump.name == f"db-{start['run_id']}.dump"
    (one,) = runs(hb, "db-backup")
    assert one["outcome"] == "success" and 0 <= one["duration"] <= took
    assert hb.check("db-backup")["state"] == "up"
    assert outbox(hb, "db-backup") == []


def test_a_backup_that_succeeds_with_an_empty_dump_is_down_assertion(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    hb = serve(recipe("db_backup.toml"))
    # A wrapper that swallows the dump tool's error: every command "succeeds", and the file is empty.
    result = job(
        ["sh", str(RECIPES / "db_backup.sh")], backup_env(hb, tmp_path, "no-such-dump-tool 2>/dev/null || true")
    )
    assert result.returncode == 0, result.stderr
    assert hb.pings("db-backup")[-1]["metrics"] == {"bytes": 0}
    hb.wait_for("db-backup", "down", "assertion", timeout=0)
    detail = 'assertion "bytes > 0" broke: bytes = 0 B'
    assert last_flip(hb, "db-backup")["detail"] == detail
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["reason"], alert["detail"]) == ("down", "assertion", detail)
    assert alert["summary"] == "db-backup succeeded but broke an assertion"
    (one,) = runs(hb, "db-backup")
    assert (one["outcome"], one["detail"]) == ("assertion", detail)


def test_a_backup_whose_dump_fails_reports_its_exit_status(serve: Serve, receiver: Receiver, tmp_path: Path) -> None:
    hb = serve(recipe("db_backup.toml"))
    result = job(
        ["sh", str(RECIPES / "db_backup.sh")], backup_env(hb, tmp_path, "echo 'connection refused' >&2; exit 3")
    )
    assert result.returncode == 3
    assert [(p["kind"], p["exit_status"]) for p in hb.pings("db-backup")] == [("start", None), ("fail", 3)]
    hb.wait_for("db-backup", "down", "failed", timeout=0)
    (alert,) = receiver.wait(1)
    assert (alert["summary"], alert["detail"], alert["exit_status"]) == (
        "db-backup failed with exit status 3",
        "failed with exit status 3",
        3,
    )
    assert [(r["outcome"], r["exit_status"]) for r in runs(hb, "db-backup")] == [("fail", 3)]


def test_a_success_without_the_asserted_metric_breaks_the_assertion(serve: Serve) -> None:
    hb = serve(recipe("db_backup.toml"))
    assert send(f"{hb.url}/ping/{table(recipe('db_backup.toml'), 'db-backup')['key']}") == (200, "OK")
    hb.wait_for("db-backup", "down", "assertion", timeout=0)
    assert last_flip(hb, "db-backup")["detail"] == 'assertion "bytes > 0" broke: the success carried no metric "bytes"'


# ---- 5. the Go service: export_service.go ------------------------------------------------------------


def export_env(hb: Heartfly, tmp_path: Path, tenants: dict[str, str | None]) -> dict[str, str]:
    """Each tenant's source CSV; None makes it a named pipe that blocks the export until fed."""
    for folder in ("source", "export"):
        (tmp_path / folder).mkdir()
    for tenant, rows in tenants.items():
        path = tmp_path / "source" / f"{tenant}.csv"
        if rows is None:
            os.mkfifo(path)
        else:
            path.write_text(rows, encoding="utf-8")
    # `go run` needs a build cache: its default lives under $HOME, which a bare CI may not set.
    cache = {} if {"GOCACHE", "HOME", "XDG_CACHE_HOME"} & set(os.environ) else {"GOCACHE": str(tmp_path / "gocache")}
    return {
        **cache,
        "HEARTFLY_URL": hb.url,
        "EXPORT_KEY": table(recipe("export.toml"), "tenant-export")["key"],
        "TENANTS": ",".join(tenants),
        "SOURCE_DIR": str(tmp_path / "source"),
        "EXPORT_DIR": str(tmp_path / "export"),
        "INTERVAL": "1h",
        "ROUNDS": "1",
    }


def test_the_go_service_times_each_tenants_export_as_its_own_run(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    go = need("go")
    hb = serve(recipe("export.toml"))
    sources = {"acme": "id,total\n1,10\n" * 40, "globex": "id,total\n2,7\n", "initech": "id,total\n3,1\n" * 9}
    result = job([go, "run", str(RECIPES / "export_service.go")], export_env(hb, tmp_path, dict(sources)))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"exported {t}: {len(rows)} bytes" for t, rows in sources.items()]
    pings = hb.pings("tenant-export")
    assert sorted(p["kind"] for p in pings) == ["start"] * 3 + ["success"] * 3
    finished = {r["run_id"]: r for r in runs(hb, "tenant-export")}
    assert sorted(rid.split("-")[0] for rid in finished) == sorted(sources)
    for rid, one in finished.items():
        (start,) = [p for p in pings if p["run_id"] == rid and p["kind"] == "start"]
        (done,) = [p for p in pings if p["run_id"] == rid and p["kind"] == "success"]
        assert done["metrics"] == {"bytes": len(sources[rid.split("-")[0]])}
        assert one["outcome"] == "success"
        assert abs(one["duration"] - (at(done["at"]) - at(start["at"]))) < 0.002
    check = hb.check("tenant-export")
    assert (check["state"], check["open_runs"]) == ("up", 0)
    assert outbox(hb, "tenant-export") == []


def test_a_go_export_that_hangs_is_down_overrun_while_the_others_finish(
    serve: Serve, receiver: Receiver, spawn: Spawn, tmp_path: Path
) -> None:
    go = need("go")
    hb = serve(tweak(recipe("export.toml"), "checks.tenant-export", max_runtime="1s"))
    service = spawn(
        [go, "run", str(RECIPES / "export_service.go")], export_env(hb, tmp_path, {"acme": "1\n", "slowco": None})
    )
    hb.wait_for("tenant-export", "down", "overrun", timeout=90)  # `go run` may have to build it first
    (slow,) = [p for p in hb.pings("tenant-export") if p["run_id"].startswith("slowco-")]
    flip = last_flip(hb, "tenant-export")
    assert re.fullmatch(r"still running after 1(\.\d)? s \(max_runtime 1 s\)", flip["detail"]), flip
    fired_on_time(flip, at(slow["at"]) + 1.0)
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["reason"], alert["detail"]) == ("down", "overrun", flip["detail"])
    assert service.poll() is None

    unblock(tmp_path / "source" / "slowco.csv", "id,total\n4,2\n")
    out, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    assert sorted(out.splitlines()) == ["exported acme: 2 bytes", "exported slowco: 13 bytes"]
    hb.wait_for("tenant-export", "up", timeout=0)  # the late completion is a recovery
    assert [a["event"] for a in receiver.wait(2)] == ["down", "recovery"]
    assert sorted((r["run_id"].split("-")[0], r["outcome"]) for r in runs(hb, "tenant-export")) == [
        ("acme", "success"),
        ("slowco", "overrun"),
    ]


# ---- 6. the Rails/Sidekiq job: statements_job.rb -----------------------------------------------


def statements_env(hb: Heartfly, tmp_path: Path, customers: int | None) -> dict[str, str]:
    """`customers` lines in the customers file; None: the file is missing."""
    path = tmp_path / "customers.csv"
    path.unlink(missing_ok=True)
    if customers is not None:
        path.write_text("".join(f"c{i}@example.com,{i}.00 EUR\n" for i in range(customers)), encoding="utf-8")
    (tmp_path / "outbox").mkdir(exist_ok=True)
    return {
        "HEARTFLY_URL": hb.url,
        "STATEMENTS_KEY": table(recipe("statements.toml"), "monthly-statements")["key"],
        "JID": "b4f1c0a29e8d7c6b5a4f3e2d",
        "CUSTOMERS_FILE": str(path),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }


def test_the_sidekiq_job_reports_its_progress_and_its_count_under_its_jid(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    ruby = need("ruby")
    hb = serve(recipe("statements.toml"))
    env = statements_env(hb, tmp_path, 120)
    began = time.monotonic()
    result = job([ruby, str(RECIPES / "statements_job.rb")], env)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outbox").iterdir())) == 120
    pings = hb.pings("monthly-statements")
    assert [(p["kind"], p["metrics"], p["body"]) for p in pings] == [
        ("start", {}, ""),
        ("progress", {"sent": 50}, ""),
        ("progress", {"sent": 100}, ""),
        ("success", {"sent": 120}, "sent 120 statements"),
    ]
    assert {p["run_id"] for p in pings} == {env["JID"]}
    (one,) = ended(hb, "monthly-statements", 1)
    assert (one["run_id"], one["outcome"]) == (env["JID"], "success") and 0 <= one["duration"] <= took
    assert hb.check("monthly-statements")["state"] == "up"
    assert outbox(hb, "monthly-statements") == []


def test_the_sidekiq_job_pages_only_on_its_third_failure_in_a_row_and_recovers_on_a_retry_that_works(
    serve: Serve, receiver: Receiver, tmp_path: Path
) -> None:
    ruby = need("ruby")
    hb = serve(recipe("statements.toml"))
    attempts = [None, 0, None]  # missing file, an empty one (sent = 0), missing again: Sidekiq's retries
    for number, customers in enumerate(attempts, start=1):
        result = job([ruby, str(RECIPES / "statements_job.rb")], statements_env(hb, tmp_path, customers))
        assert result.returncode == (0 if customers is not None else 1)
        assert len(ended(hb, "monthly-statements", number)) == number
        check = hb.check("monthly-statements")
        assert check["state"] == ("down" if number == 3 else "up"), (number, check)
        if number < 3:
            assert outbox(hb, "monthly-statements") == []
    assert "Errno::ENOENT" in result.stderr
    assert last_flip(hb, "monthly-statements")["detail"] == "failed (3 failures in a row)"
    (alert,) = receiver.wait(1)
    assert (alert["event"], alert["reason"], alert["detail"]) == ("down", "failed", "failed (3 failures in a row)")
    assert alert["last_ping"]["message_tail"].startswith("Errno::ENOENT: No such file or directory")
    assert [(r["outcome"], r["detail"]) for r in runs(hb, "monthly-statements")] == [
        ("fail", "failed"),
        ("assertion", 'assertion "sent > 0" broke: sent = 0'),
        ("fail", "failed"),
    ]

    result = job([ruby, str(RECIPES / "statements_job.rb")], statements_env(hb, tmp_path, 3))
    assert result.returncode == 0, result.stderr
    assert len(ended(hb, "monthly-statements", 4)) == 4 and hb.check("monthly-statements")["state"] == "up"
    _, recovery = receiver.wait(2)
    assert recovery["event"] == "recovery" and recovery["down_for_seconds"] > 0


# ---- bad input (docs/jobs.md, "Bad input, and what happens") ---------------------------------------


def queue_url(hb: Heartfly, event: str = "", **query: str) -> str:
    key = table(recipe("queue.toml"), "mail-queue")["key"]
    return f"{hb.url}/ping/{key}{event}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def test_progress_and_log_pings_for_an_unknown_run_id_are_stored_and_move_no_stall_clock(serve: Serve) -> None:
    hb = serve(tweak(recipe("queue.toml"), "checks.mail-queue", stall="1s"))
    assert send(queue_url(hb, "/start", rid="a")) == (200, "OK")
    assert send(queue_url(hb, "/progress", rid="zzz", m_processed="5")) == (200, "OK")
    assert send(queue_url(hb, "/log", rid="zzz"), b"still working") == (200, "OK")
    pings = hb.pings("mail-queue")
    assert [(p["kind"], p["run_id"]) for p in pings] == [("start", "a"), ("progress", "zzz"), ("log", "zzz")]
    assert pings[1]["metrics"] == {"processed": 5}
    check = hb.check("mail-queue")
    assert (check["state"], check["open_runs"]) == ("running", 1)
    hb.wait_for("mail-queue", "down", "stalled", timeout=5)
    fired_on_time(last_flip(hb, "mail-queue"), at(pings[0]["at"]) + 1.0)  # run a's clock was never pushed


def test_an_end_for_an_unknown_run_id_counts_but_closes_no_run(serve: Serve) -> None:
    hb = serve(recipe("queue.toml"))
    assert send(queue_url(hb, "/start", rid="a")) == (200, "OK")
    assert send(queue_url(hb, rid="zzz")) == (200, "OK")
    check = hb.check("mail-queue")
    assert (check["state"], check["open_runs"], check["last_duration_seconds"]) == ("running", 1, None)
    assert check["last_success_at"] is not None
    assert runs(hb, "mail-queue") == []


def test_a_success_with_no_prior_start_is_up_with_no_duration_and_no_run(serve: Serve) -> None:
    hb = serve(recipe("queue.toml"))
    assert send(queue_url(hb)) == (200, "OK")
    check = hb.check("mail-queue")
    assert (check["state"], check["last_duration_seconds"], check["open_runs"]) == ("up", None, 0)
    assert runs(hb, "mail-queue") == []


def test_metrics_that_are_not_numbers_are_refused_with_a_reason_and_nothing_is_stored(serve: Serve) -> None:
    hb = serve(recipe("statements.toml"))
    key = table(recipe("statements.toml"), "monthly-statements")["key"]
    assert send(f"{hb.url}/ping/{key}?m_sent=lots") == (400, "metric m_sent must be a finite number, got 'lots'\n")
    assert send(f"{hb.url}/ping/{key}/progress?m_sent=nan") == (
        400,
        "metric m_sent must be a finite number, got 'nan'\n",
    )
    body = json.dumps({"status": "success", "metrics": {"sent": "many"}}).encode()
    assert send(f"{hb.url}/api/v1/heartbeat/{key}", body, json_body=True) == (
        400,
        "metric metrics.sent must be a finite number, got 'many'\n",
    )
    assert hb.pings("monthly-statements") == []
    assert hb.check("monthly-statements")["state"] == "new"


def test_a_member_reporting_twice_is_stored_but_counted_once(serve: Serve) -> None:
    hb = serve(recipe("shards.toml"))
    key = table(recipe("shards.toml"), "order-batch")["key"]
    for member in ["w1", "w1", *MEMBERS[1:7]]:  # w1 retried; w8 not in yet
        assert send(f"{hb.url}/ping/{key}?rid=b1&member={member}") == (200, "OK")
    assert len(hb.pings("order-batch")) == 8
    assert hb.check("order-batch")["state"] == "running"  # 7 distinct members of 8
    assert send(f"{hb.url}/ping/{key}?rid=b1&member=w8") == (200, "OK")
    assert hb.check("order-batch")["state"] == "up"
    (batch,) = runs(hb, "order-batch")
    assert batch["members"] == MEMBERS


def test_spooled_pings_out_of_order_keep_their_own_time_and_never_move_last_ping_back(serve: Serve) -> None:
    hb = serve(recipe("queue.toml"))
    assert send(queue_url(hb)) == (200, "OK")
    before = hb.check("mail-queue")
    early = int(at(before["last_ping_at"])) - 60
    assert send(queue_url(hb, ts=str(early))) == (200, "OK")  # spooled a minute ago, delivered now
    late = hb.pings("mail-queue")[0]  # listed by event time: before the ping that arrived first
    assert at(late["at"]) == early and at(late["received_at"]) > early + 59
    after = hb.check("mail-queue")
    assert (after["last_ping_at"], after["due_at"]) == (before["last_ping_at"], before["due_at"])

    assert send(queue_url(hb, "/start", rid="r")) == (200, "OK")  # a run whose end was spooled from before it
    assert send(queue_url(hb, rid="r", ts=str(early))) == (200, "OK")
    (one,) = runs(hb, "mail-queue")
    assert (one["run_id"], one["duration"]) == ("r", 0)  # never negative


@pytest.mark.parametrize(("newest", "spooled", "state"), [("/fail", "", "down"), ("", "/fail", "up")])
def test_a_spooled_end_older_than_the_newest_end_is_recorded_but_changes_no_state(
    serve: Serve, newest: str, spooled: str, state: str
) -> None:
    hb = serve(recipe("queue.toml"))
    assert send(queue_url(hb, newest)) == (200, "OK")
    before = hb.check("mail-queue")
    assert before["state"] == state
    early = int(at(before["last_ping_at"])) - 60
    assert send(queue_url(hb, spooled, ts=str(early))) == (200, "OK")  # from a client's spool, a minute old
    # Listed by event time: the spooled ping happened first.
    assert [p["kind"] for p in hb.pings("mail-queue")] == (["success", "fail"] if newest else ["fail", "success"])
    after = hb.check("mail-queue")
    assert (after["state"], after["reason"]) == (before["state"], before["reason"])
    if spooled == "":  # an old success is still remembered as one
        assert at(after["last_success_at"]) == early
    assert outbox(hb, "mail-queue") == (["down"] if newest else [])


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (3600, r"ts \d+ is in the future \(server time is \d+\)"),
        (-8 * 86400, r"ts \d+ is older than the server accepts"),
    ],
)
def test_a_ts_in_the_future_or_past_max_ping_age_is_refused(serve: Serve, offset: int, reason: str) -> None:
    hb = serve(recipe("queue.toml"))
    status, text = send(queue_url(hb, ts=str(int(time.time()) + offset)))
    assert status == 400 and re.match(reason, text), text
    assert hb.pings("mail-queue") == []


# ---- bugs found while writing the recipes ------------------------------------------------------------


def test_a_run_closed_by_a_spooled_end_does_not_leave_the_check_running(serve: Serve) -> None:
    hb = serve(recipe("queue.toml"))
    assert send(queue_url(hb)) == (200, "OK")
    early = int(at(hb.check("mail-queue")["last_ping_at"])) - 60
    assert send(queue_url(hb, "/start", rid="r")) == (200, "OK")
    assert send(queue_url(hb, rid="r", ts=str(early))) == (200, "OK")  # its end, spooled with an older clock
    assert len(runs(hb, "mail-queue")) == 1  # the run is over...
    check = hb.check("mail-queue")
    assert (check["state"], check["open_runs"]) == ("up", 0)  # ...so the check is not running


def test_fan_in_workers_that_also_ping_start_complete_their_batch(serve: Serve) -> None:
    hb = serve(recipe("shards.toml"))
    key = table(recipe("shards.toml"), "order-batch")["key"]
    for member in MEMBERS:  # each worker: start, work, success (staggered, as workers are)
        assert send(f"{hb.url}/ping/{key}/start?rid=b1&member={member}") == (200, "OK")
        assert send(f"{hb.url}/ping/{key}?rid=b1&member={member}") == (200, "OK")
    assert hb.check("order-batch")["state"] == "up"


def test_a_straggler_of_an_incomplete_batch_does_not_keep_the_next_complete_batch_down(serve: Serve) -> None:
    hb = serve(tweak(recipe("shards.toml"), "checks.order-batch", max_runtime="1s"))
    key = table(recipe("shards.toml"), "order-batch")["key"]
    for member in MEMBERS:
        if member != "w5":
            assert send(f"{hb.url}/ping/{key}?rid=b1&member={member}") == (200, "OK")
    hb.wait_for("order-batch", "down", "incomplete", timeout=5)
    assert send(f"{hb.url}/ping/{key}?rid=b1&member=w5") == (200, "OK")  # w5 of b1, late
    for member in MEMBERS:  # the next batch, complete
        assert send(f"{hb.url}/ping/{key}?rid=b2&member={member}") == (200, "OK")
    assert hb.check("order-batch")["state"] == "up"
