"""A data team's nights, end to end: `heartfly serve`, `heartfly ping`, `pause` and `resume` as real
subprocesses, pings over loopback, the state read back through the API and `heartfly status`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_cli_operate import api

BATCH_KEY, QUEUE_KEY = new_key(), new_key()

CONFIG = f"""[server]
listen = "127.0.0.1:0"
database = "hb.db"
api_token_file = "token"

[checks.batch]
key = "{BATCH_KEY}"
every = "1h"
expect = 8
max_runtime = "20m"

[checks.queue]
key = "{QUEUE_KEY}"
every = "1h"
stall = "10m"
max_runtime = "1h"
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    path = tmp_path / "hb.toml"
    path.write_text(CONFIG)
    with Server(path) as server:
        # The commands find the server through the config: point it at the port it really got.
        path.write_text(CONFIG.replace("127.0.0.1:0", server.url.removeprefix("http://")))
        yield server, path


def ping(server: Server, path: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(server.url + path, data=b""), timeout=10) as resp:
        assert resp.status == 200


def operator(path: Path, *args: str) -> None:
    done = heartfly(*args, "-c", str(path))
    assert done.returncode == 0, done.stderr


def test_a_batch_whose_check_an_operator_paused_and_resumed_mid_batch_completes_with_all_its_workers(
    served: tuple[Server, Path],
) -> None:
    # Half the workers reported, the operator paused the check to look at something and resumed it:
    # the resume dropped the batch, so the other half opened a batch of 4 that was told
    # "incomplete: 4 of 8 successes arrived; missing: w1, w2, w3, w4" though all 8 had reported.
    server, path = served
    for i in range(1, 5):
        ping(server, f"/ping/{BATCH_KEY}?rid=night-9&member=w{i}")
    operator(path, "pause", "batch")
    operator(path, "resume", "batch")
    assert api(server, "/api/v1/checks/batch")["open_runs"] == 1
    for i in range(5, 9):
        ping(server, f"/ping/{BATCH_KEY}?rid=night-9&member=w{i}")
    check = api(server, "/api/v1/checks/batch")
    assert (check["state"], check["open_runs"]) == ("up", 0)
    runs = api(server, "/api/v1/checks/batch/runs")
    assert [(r["run_id"], r["outcome"], r["members"]) for r in runs] == [
        ("night-9", "success", [f"w{i}" for i in range(1, 9)])
    ]


def test_a_queue_pass_paused_and_resumed_mid_run_is_still_running_and_its_run_is_recorded(
    served: tuple[Server, Path],
) -> None:
    # The resume forgot the pass under way: `heartfly status` said up while it ran, its stall
    # limit was no longer watched, and its success closed nothing (no run, no duration).
    server, path = served
    ping(server, f"/ping/{QUEUE_KEY}/start?rid=pass-1")
    ping(server, f"/ping/{QUEUE_KEY}/progress?rid=pass-1&m_processed=100")
    operator(path, "pause", "queue")
    operator(path, "resume", "queue")
    check = api(server, "/api/v1/checks/queue")
    assert (check["state"], check["open_runs"]) == ("running", 1)
    status = heartfly("status", "--json", "-c", str(path))
    assert [c["state"] for c in json.loads(status.stdout) if c["name"] == "queue"] == ["running"]
    ping(server, f"/ping/{QUEUE_KEY}/progress?rid=pass-1&m_processed=200")
    ping(server, f"/ping/{QUEUE_KEY}?rid=pass-1&m_processed=300")
    runs = api(server, "/api/v1/checks/queue/runs")
    assert [(r["run_id"], r["outcome"]) for r in runs] == [("pass-1", "success")]
    assert api(server, "/api/v1/checks/queue")["state"] == "up"
