"""End to end: a real `heartfly run` whose server is stopped while the job runs and started again
before the replay. The spool goes back as one batch; a real webhook receiver and `heartfly history`
show what was told: nothing when the job behaved, one alert, dated when it happened, when not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from heartfly.core.states import REORDER_WINDOW
from tests.conftest import new_key
from tests.proc import Server
from tests.test_cli_client import err
from tests.test_recipes import Receiver

PY = sys.executable


class Replay:
    """A server with one check, `nightly` (max_runtime 2s), and a webhook to a real receiver."""

    def __init__(self, tmp: Path, hook: Receiver) -> None:
        self.tmp, self.hook, self.key = tmp, hook, new_key()
        self.config = tmp / "hb.toml"
        self.spool = tmp / "spool"
        self.write("127.0.0.1:0")
        self.server = Server(self.config).start()

    def write(self, listen: str) -> None:
        self.config.write_text(
            f'[server]\nlisten = "{listen}"\ndatabase = "hb.db"\napi_token_file = "token"\n\n'
            f'[channels.hook]\ntype = "webhook"\nurl = "{self.hook.url}"\nrecovery = false\n\n'
            f'[checks.nightly]\nkey = "{self.key}"\nevery = "1d"\nmax_runtime = "2s"\nchannels = ["hook"]\n'
        )

    def stop_keeping_the_port(self) -> None:
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server.stop()
        self.write(f"127.0.0.1:{port}")

    def cli(self, *args: str) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
        env.update(HEARTFLY_SPOOL=str(self.spool), HEARTFLY_RETRIES="0", HEARTFLY_CONFIG=str(self.config))
        done = subprocess.run([PY, "-m", "heartfly", *args], capture_output=True, timeout=60, env=env, cwd=self.tmp)
        return done.returncode, done.stdout.decode(), err(done)

    def run_while_down(self, seconds: float) -> float:
        """`heartfly run` of a job lasting `seconds`; the server is down from its start to after its
        end. Returns when the run began (a little before its start ping)."""
        url = f"{self.server.url}/ping/{self.key}"
        self.stop_keeping_the_port()
        began = time.time()
        code, out, errors = self.cli("run", url, "--", PY, "-c", f"import time; time.sleep({seconds}); print('done')")
        assert (code, out) == (0, "done\n") and "spooled to" in errors
        assert len(list(self.spool.glob("*.ping"))) == 2
        # The replay comes well after the run's max_runtime, and over a second after an overrun it
        # shows (so that one is told as learned late, whatever the machine's speed).
        time.sleep(max(2.5 - seconds, 1.5))
        self.server = Server(self.config).start()
        assert self.cli("flush")[0] == 0  # the spool goes back as one batch
        return began


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Replay]:
    hook = Receiver()
    setup = Replay(tmp_path, hook)
    yield setup
    setup.server.kill()
    hook.close()


def test_a_job_that_behaved_while_the_server_was_down_raises_no_alert_and_reads_true(replay: Replay) -> None:
    began = replay.run_while_down(0.3)
    time.sleep(REORDER_WINDOW + 1)  # anything the replay wrongly made due would have fired by now
    assert replay.hook.alerts == []
    code, history, _ = replay.cli("history", "nightly")
    assert code == 0 and "down" not in history and "overran" not in history
    pings = history.split("Pings (newest first):")[1].strip().splitlines()
    assert [ln.split()[2] for ln in pings] == ["success", "start"]
    for line in pings:  # each at its own time, the replay's beside it
        happened = datetime.fromisoformat(" ".join(line.split()[:2]).replace("Z", "+00:00")).timestamp()
        assert began - 1 < happened < began + 2 and "(reported " in line


def test_a_job_that_really_overran_while_the_server_was_down_raises_one_alert_dated_when_it_overran(
    replay: Replay,
) -> None:
    began = replay.run_while_down(2.6)  # past max_runtime 2s
    (alert,) = replay.hook.wait(1, on_fail=replay.server.log)
    assert (alert["event"], alert["reason"]) == ("down", "overrun")
    assert alert["detail"] == "still running after 2 s (max_runtime 2 s)"
    happened = datetime.fromisoformat(alert["at"].replace("Z", "+00:00")).timestamp()
    learned = datetime.fromisoformat(alert["learned_at"].replace("Z", "+00:00")).timestamp()
    assert began + 2 < happened < began + 2.6 < learned  # dated when it overran, told after the replay
    time.sleep(1.0)
    assert len(replay.hook.alerts) == 1


def test_two_curl_pings_racing_a_failure_and_its_retrys_success_tell_down_then_up(tmp_path: Path) -> None:
    """A failure at t, the retry's success a second later; the success's ping arrives first.
    In event order the job was down for a second: both alerts are sent, each dated truly."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, sync=f'key = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}").read()  # up
        time.sleep(2.5)  # the failure comes after that
        failed_at = round(time.time() - 2, 3)
        urllib.request.urlopen(f"{server.url}/ping/{key}?ts={failed_at + 1}").read()  # the retry's success
        urllib.request.urlopen(f"{server.url}/ping/{key}/3?ts={failed_at}").read()  # the failure, overtaken
        down, up = hook.wait(2, on_fail=server.log)
    assert (down["event"], down["reason"], down["exit_status"]) == ("down", "failed", 3)
    assert (up["event"], up["state"]) == ("recovery", "up")
    at = datetime.fromisoformat
    assert at(up["at"]).timestamp() - at(down["at"]).timestamp() == pytest.approx(1.0, abs=0.01)


def test_a_retrys_success_whose_ping_loses_to_the_next_failure_is_told_between_two_downs(tmp_path: Path) -> None:
    """Down from a failure; the retry succeeded at t and failed again at t + 1, and the second
    failure's ping arrives first. In event order the job was up for a second: the recovery and the
    second down are both sent, each dated truly, and the check ends down."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, sync=f'key = "{key}"\nevery = "1h"\n')
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}/fail").read()  # down
        hook.wait(1, on_fail=server.log)
        time.sleep(2.5)  # the pings below are dated after that
        t = round(time.time() - 2, 3)
        urllib.request.urlopen(f"{server.url}/ping/{key}/5?ts={t + 1}").read()  # the second failure
        urllib.request.urlopen(f"{server.url}/ping/{key}?ts={t}").read()  # the retry's success, overtaken
        _, up, down = hook.wait(3, on_fail=server.log)
        state = api_get(server, tmp_path, "/api/v1/checks/sync")["state"]
    assert (up["event"], up["state"]) == ("recovery", "up") and "arrived out of order" in up["detail"]
    assert (down["event"], down["reason"], down["exit_status"]) == ("down", "failed", 5) and state == "down"
    at = datetime.fromisoformat
    assert at(up["at"]).timestamp() == pytest.approx(t, abs=0.01)
    assert at(down["at"]).timestamp() == pytest.approx(t + 1, abs=0.01)


def test_a_success_racing_between_two_failures_tells_nobody_a_down_that_never_was(tmp_path: Path) -> None:
    """failures_before_alert 2, by curl: a failure, its retry's success a second later, then a
    failure again; the success's ping comes last. In event order the success broke the streak:
    no alert (the failures wait out the reorder window for it). A third failure, live, then
    completes a real streak of two: one alert, dated by it."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, retried=f'key = "{key}"\nevery = "1h"\nfailures_before_alert = 2\n')
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}").read()  # up
        time.sleep(2.5)  # the pings below are dated after that
        t = round(time.time() - 2, 3)
        for path in (f"fail?ts={t}", f"fail?ts={t + 2}", f"?ts={t + 1}"):
            urllib.request.urlopen(f"{server.url}/ping/{key}/{path}").read()
        time.sleep(REORDER_WINDOW + 1.5)
        assert hook.alerts == [] and api_get(server, tmp_path, "/api/v1/checks/retried")["state"] == "up"
        failed_at = time.time()
        urllib.request.urlopen(f"{server.url}/ping/{key}/fail").read()
        (alert,) = hook.wait(1, timeout=15.0, on_fail=server.log)
    assert (alert["event"], alert["reason"]) == ("down", "failed")
    assert datetime.fromisoformat(alert["at"]).timestamp() == pytest.approx(failed_at, abs=0.5)


def hooked(tmp_path: Path, store_backend: str, hook: Receiver, **checks: str) -> Path:
    """A config on `store_backend` whose checks (by name: their own lines) alert a real webhook receiver."""
    config = tmp_path / "hb.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = {store_backend}\napi_token_file = "token"\n\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n\n'
        + "".join(f'[checks.{name}]\n{lines}channels = ["hook"]\n\n' for name, lines in checks.items())
    )
    return config


def api_get(server: Server, tmp_path: Path, path: str) -> Any:
    """An API answer, with the token the server wrote in `tmp_path`."""
    token = (tmp_path / "token").read_text().strip()
    request = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request).read())


@pytest.mark.both_stores
def test_changes_and_runs_a_late_ping_shows_happened_otherwise_are_withdrawn_and_paired_again(
    tmp_path: Path, store_backend: str
) -> None:
    """Pings racing within the reorder window, through the server and its database: a failure that
    arrives after its retry's start and success (sync), and a start that arrives after the end
    that closed an older run (pair). What the API lists afterwards is what event order gives."""
    hook, sync, pair = Receiver(), new_key(), new_key()
    config = hooked(
        tmp_path, store_backend, hook, sync=f'key = "{sync}"\nevery = "1h"\n', pair=f'key = "{pair}"\nevery = "1h"\n'
    )
    with Server(config) as server:

        def get(path: str) -> Any:
            return api_get(server, tmp_path, path)

        def ping(key: str, tail: str) -> None:
            urllib.request.urlopen(f"{server.url}/ping/{key}{tail}").read()

        ping(sync, "")
        time.sleep(2.5)
        t = round(time.time() - 2, 3)
        ping(sync, f"/start?ts={t + 0.5}")  # up -> running
        ping(sync, f"?ts={t + 1}")  # running -> up
        ping(sync, f"/fail?ts={t}")  # the failure before both
        ping(pair, f"/start?ts={t}")
        ping(pair, f"?ts={t + 1.5}")  # closes the run begun at t
        ping(pair, f"/start?ts={t + 1}")  # a newer start before that end: its run, in event order
        down, up = hook.wait(2, on_fail=server.log)
        flips = get("/api/v1/checks/sync/flips?all=1")
        runs = get("/api/v1/checks/sync/runs")
        paired = get("/api/v1/checks/pair/runs")
    assert (down["check"]["name"], down["event"], up["event"]) == ("sync", "down", "recovery")
    at = datetime.fromisoformat
    changes = [(f["old"], f["new"], round(at(str(f["at"])).timestamp(), 3)) for f in flips]
    assert changes[:2] == [("down", "up", t + 1), ("up", "down", t)]  # newest first; no running between
    assert [(r["outcome"], round(at(str(r["started_at"])).timestamp(), 3)) for r in runs] == [("success", t + 0.5)]
    assert [round(at(str(r["started_at"])).timestamp(), 3) for r in paired] == [t + 1]


@pytest.mark.both_stores
def test_a_success_that_overtook_a_newer_start_is_judged_on_that_starts_run(tmp_path: Path, store_backend: str) -> None:
    """Two starts and a success, by curl without run ids; the success's ping comes before the newer
    start's. Where a run's duration is judged, the success waits out the reorder window: the run is
    the newer start's, as in event order. `fast` (min_runtime 1s) ran 0.5 s: one alert, dated at the
    success. `quick` (duration < 1s) ran 0.5 s too: no alert, though the older start was 2 s before."""
    hook, fast, quick = Receiver(), new_key(), new_key()
    config = hooked(
        tmp_path,
        store_backend,
        hook,
        fast=f'key = "{fast}"\nevery = "1h"\nmin_runtime = "1s"\n',
        quick=f'key = "{quick}"\nevery = "1h"\nassert = ["duration < 1s"]\n',
    )
    with Server(config) as server:

        def get(path: str) -> Any:
            return api_get(server, tmp_path, path)

        time.sleep(2.6)  # the checks appeared when the server started: the pings come after that
        t = round(time.time() - 2.5, 3)
        for key in (fast, quick):
            urllib.request.urlopen(f"{server.url}/ping/{key}/start?ts={t}").read()
            urllib.request.urlopen(f"{server.url}/ping/{key}?ts={t + 2}").read()  # before the newer start's ping
        waiting = get("/api/v1/checks/fast")  # the success waits for a start on its way: judged within 5 s
        assert waiting["state"] == "running"
        assert 0 < datetime.fromisoformat(waiting["next_deadline_at"]).timestamp() - time.time() <= 5.0
        for key in (fast, quick):
            urllib.request.urlopen(f"{server.url}/ping/{key}/start?ts={t + 1.5}").read()
        (alert,) = hook.wait(1, timeout=15.0, on_fail=server.log)
        time.sleep(1.0)  # the other check's verdict came at the same time: nothing more
        assert len(hook.alerts) == 1
        runs = {name: get(f"/api/v1/checks/{name}/runs") for name in ("fast", "quick")}
        statuses = {name: get(f"/api/v1/checks/{name}")["state"] for name in ("fast", "quick")}
    assert (alert["check"]["name"], alert["event"], alert["reason"]) == ("fast", "down", "too_fast")
    assert datetime.fromisoformat(alert["at"]).timestamp() == pytest.approx(t + 2, abs=0.001)
    assert alert["learned_at"] is None  # the ping came when it happened; only its verdict waited
    assert statuses == {"fast": "down", "quick": "up"}
    at = datetime.fromisoformat
    for name, outcome in (("fast", "too_fast"), ("quick", "success")):
        (run,) = runs[name]
        assert (run["outcome"], round(at(run["started_at"]).timestamp(), 3)) == (outcome, t + 1.5)


@pytest.mark.both_stores
def test_a_failure_that_overtook_a_too_fast_runs_start_counts_as_the_second_failure(
    tmp_path: Path, store_backend: str
) -> None:
    """By curl without run ids, on a check with min_runtime 1s and failures_before_alert 2: a run
    of 0.8 s, then a failure. The success's ping came first, the failure's next, the start's last.
    The failure waits behind the success, which waits for its start: in event order, two failures
    in a row, one alert dated at the failure."""
    hook, key = Receiver(), new_key()
    config = hooked(
        tmp_path,
        store_backend,
        hook,
        fast=f'key = "{key}"\nevery = "1h"\nmin_runtime = "1s"\nfailures_before_alert = 2\n',
    )
    with Server(config) as server:
        time.sleep(2.6)  # the check appeared when the server started: the pings come after that
        t = round(time.time() - 2.5, 3)
        urllib.request.urlopen(f"{server.url}/ping/{key}?ts={t + 0.8}").read()
        urllib.request.urlopen(f"{server.url}/ping/{key}/fail?ts={t + 1.4}").read()
        held = api_get(server, tmp_path, "/api/v1/checks/fast")
        urllib.request.urlopen(f"{server.url}/ping/{key}/start?ts={t}").read()
        (alert,) = hook.wait(1, timeout=15.0, on_fail=server.log)
        time.sleep(1.0)
        assert len(hook.alerts) == 1
        runs = api_get(server, tmp_path, "/api/v1/checks/fast/runs")
    assert held["state"] == "new"  # neither applied yet: the failure waits behind the success
    assert (alert["event"], alert["reason"]) == ("down", "failed")
    assert datetime.fromisoformat(alert["at"]).timestamp() == pytest.approx(t + 1.4, abs=0.001)
    at = datetime.fromisoformat
    assert [(r["outcome"], round(at(r["started_at"]).timestamp(), 3)) for r in runs] == [("too_fast", t)]


def post_batch(server: Server, key: str, *pings: tuple[str, float]) -> None:
    """One `POST /ping/KEY/batch` of (status, ts) pings, as `heartfly flush` sends a check's spool."""
    body = json.dumps({"pings": [{"status": status, "ts": ts} for status, ts in pings]}).encode()
    request = urllib.request.Request(f"{server.url}/ping/{key}/batch", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


def test_a_checks_spool_replayed_in_two_batches_tells_no_miss_the_second_batch_met(tmp_path: Path) -> None:
    """Two runs spooled while the server was down. The replay's first batch holds the first run's
    pings (the second run's end was spooled after the replaying process had listed the spool): its
    success leaves the next deadline in the past, and the second run's success, in the next batch
    right behind it, met that deadline. In event order nothing was missed."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, job=f'key = "{key}"\nevery = "11s"\ngrace = "1s"\n')
    server = Server(config).start()
    urllib.request.urlopen(f"{server.url}/ping/{key}").read()
    stopped = time.time()
    server.stop()
    config.write_text(config.read_text().replace("127.0.0.1:0", server.url.rsplit("/", 1)[1]))
    time.sleep(max(0.0, stopped + 16 - time.time()))  # down for longer than a run's every + grace
    with Server(config) as server:
        now = time.time()
        post_batch(server, key, ("start", now - 14.5), ("success", now - 14), ("start", now - 5))  # due by now - 2
        post_batch(server, key, ("success", now - 3))  # in time; due by now + 9
        time.sleep(REORDER_WINDOW + 1)  # a deadline the first batch left in the past would have fired by now
        assert hook.alerts == []
        history = subprocess.run(
            [PY, "-m", "heartfly", "history", "-c", str(config), "job"], capture_output=True, text=True, cwd=tmp_path
        ).stdout
        assert "down" not in history and "missed" not in history
    hook.close()


def test_a_ping_that_waited_at_a_frozen_servers_door_counts_before_the_deadline_that_fell_in_the_freeze(
    tmp_path: Path,
) -> None:
    """The server's machine froze (SIGSTOP: a VM paused) with a job's success ping sent on time and
    waiting in its socket. Thawed, the server read it a moment after its timer woke: the timer
    told the check missed first, then the ping recovered it, an alarm pair for a job that ran."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, job=f'key = "{key}"\nevery = "4s"\ngrace = "1s"\n')
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}").read()  # up, due in 4 s, down in 5
        server.signal(signal.SIGSTOP)
        try:
            time.sleep(3)
            answered: list[int] = []
            sender = threading.Thread(
                target=lambda: answered.append(urllib.request.urlopen(f"{server.url}/ping/{key}", timeout=60).status)
            )
            sender.start()  # on time: it waits in the frozen server's socket
            time.sleep(4)  # past the deadline, and longer than the timer is ever silent (TIMER_STALE)
        finally:
            server.signal(signal.SIGCONT)
        sender.join(30)
        assert answered == [200]
        time.sleep(1.5)  # a down the thawed timer told would have been sent by now
        assert hook.alerts == []
    hook.close()


def test_an_end_ping_retried_into_a_restarted_server_times_its_run_by_when_it_ended(replay: Replay) -> None:
    """The server restarts while a job of 1 s runs: its end ping meets the stopped server and
    gets in by a retry a few seconds later. The run lasted 1 s (within max_runtime), not until
    that retry arrived (a `duration` assertion or min_runtime would judge the longer one)."""
    url = f"{replay.server.url}/ping/{replay.key}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
    env.update(HEARTFLY_SPOOL=str(replay.spool))
    job = subprocess.Popen([PY, "-m", "heartfly", "run", url, "--", PY, "-c", "import time; time.sleep(1)"], env=env)
    # Stopped once its start ping is taken, not at a fixed 0.8 s: `heartfly run` slow to start on a
    # loaded machine sent it to the stopped server (retried, spooled, the run another one).
    deadline = time.monotonic() + 30
    while api_get(replay.server, replay.tmp, "/api/v1/checks/nightly")["state"] != "running":
        assert time.monotonic() < deadline, "the start ping is not taken"
        time.sleep(0.02)
    replay.stop_keeping_the_port()
    time.sleep(3)  # the end ping, at 1.5 s, meets the stopped server and is retried
    replay.server = Server(replay.config).start()
    assert job.wait(60) == 0
    assert list(replay.spool.glob("*.ping")) == []  # a retry got it in, not the spool
    (run,) = api_get(replay.server, replay.tmp, "/api/v1/checks/nightly/runs")
    # Under max_runtime (2 s) by 1 s, for a command slow to start on a loaded machine (a job of
    # 1.5 s left it 0.5 s); without ts the run lasted until the retry, 3 s and a restart later.
    assert run["outcome"] == "success" and 1 <= run["duration"] < 2


def test_a_run_whose_start_ping_spent_its_budget_on_a_down_server_is_timed_from_its_commands_start(
    replay: Replay,
) -> None:
    """`heartfly run` holds the command back while the start ping is retried (3 s at most), then
    spools it. The run began when the command did: dated when heartfly run began, the run was
    3 s longer than the job, a job of 0.3 s an overrun of its max_runtime of 2 s."""
    url = f"{replay.server.url}/ping/{replay.key}"
    replay.stop_keeping_the_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
    env.update(HEARTFLY_SPOOL=str(replay.spool), HEARTFLY_PING_BUDGET="5s")  # retried, then spooled
    job = [PY, "-m", "heartfly", "run", url, "--", PY, "-c", "import time; time.sleep(0.3)"]
    assert subprocess.run(job, env=env, timeout=60, capture_output=True).returncode == 0
    replay.server = Server(replay.config).start()
    assert replay.cli("flush")[0] == 0
    (run,) = api_get(replay.server, replay.tmp, "/api/v1/checks/nightly/runs")
    # Under 1.3 s, not 1 s, which a command slow to start on a loaded machine could pass: dated
    # when heartfly run began, the run lasted the start's retries more (0.5 and 1 s, each -20 %
    # at least, to a refused connection: 1.5 s or more in all).
    assert run["outcome"] == "success" and 0.3 <= run["duration"] < 1.3
    time.sleep(REORDER_WINDOW + 1)
    assert replay.hook.alerts == []


def test_an_end_ping_that_waited_behind_a_replay_of_the_spool_keeps_the_time_the_job_ended(replay: Replay) -> None:
    """The server is down when a job of 0.3 s starts (its start ping spooled) and back while its
    end ping waits behind the replay of that start. Sent once the replay is through, a second or
    more after the job ended, the end was dated by its arrival: a run longer than the job, an
    overrun of max_runtime 2 s."""
    url = f"{replay.server.url}/ping/{replay.key}"
    replay.stop_keeping_the_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTFLY_", "XDG_"))}
    env.update(HEARTFLY_SPOOL=str(replay.spool))
    job = subprocess.Popen([PY, "-m", "heartfly", "run", url, "--", PY, "-c", "import time; time.sleep(0.3)"], env=env)
    time.sleep(5)  # the start ping spooled after its 3 s, the job done, the replay before its end retried
    replay.server = Server(replay.config).start()
    assert job.wait(60) == 0
    assert list(replay.spool.glob("*.ping")) == []
    (run,) = api_get(replay.server, replay.tmp, "/api/v1/checks/nightly/runs")
    # Under 1.5 s: dated by its arrival, the end came with the server, over 1.6 s after the job
    # ended (its start spooled at 3 s, the server back at 5); not under 1 s, a loaded machine's.
    assert run["outcome"] == "success" and 0.3 <= run["duration"] < 1.5


def test_after_a_freeze_a_ping_dated_after_a_deadline_in_it_does_not_judge_it_before_the_one_that_met_it(
    tmp_path: Path,
) -> None:
    """Thawed, a server gets first a retry dated after a deadline that fell in the freeze (a next
    run's, from a process still retrying), then the spooled ping that met the deadline (another
    process's replay). Judged at the first, the deadline was told missed, and up again at the second."""
    hook, key = Receiver(), new_key()
    config = hooked(tmp_path, '"hb.db"', hook, job=f'key = "{key}"\nevery = "10s"\ngrace = "1s"\n')
    with Server(config) as server:
        urllib.request.urlopen(f"{server.url}/ping/{key}").read()  # up, due in 10 s, down in 11
        began = time.time()
        server.signal(signal.SIGSTOP)
        try:
            time.sleep(12.5)  # past the deadline, and longer than the timer is ever silent (TIMER_STALE)
        finally:
            server.signal(signal.SIGCONT)
        assert server.wait_for_log("the deadline timer did not run for")  # thawed: its timer has looked
        urllib.request.urlopen(f"{server.url}/ping/{key}?ts={began + 11.2}").read()  # after the deadline, over 1 s ago
        urllib.request.urlopen(f"{server.url}/ping/{key}?ts={began + 5}").read()  # met it
        time.sleep(REORDER_WINDOW + 1)  # the first one's own deadline is 11 s after it
        assert hook.alerts == []
    hook.close()
