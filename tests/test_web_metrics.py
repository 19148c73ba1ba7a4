"""/metrics (Prometheus text, checked by the client's parser and by promtool) and the status badges."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from heartfly.core.config import Config
from heartfly.core.config_values import BODY_HARD_CAP
from heartfly.core.dburl import PostgresDatabase
from heartfly.store import groupcommit
from heartfly.web import metrics
from heartfly.web.app import create_app
from heartfly.web.badges import badge_key
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.webutil import Client, bearer, state_of, until

KEY = new_key()


def closed_port() -> int:
    """A loopback port nothing listens on: webhook attempts to it fail at once (and are retried)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(
        f"""
        [channels.hook]
        type = "webhook"
        url = "http://127.0.0.1:{closed_port()}/hook"
        [checks.backup]
        key = "{KEY}"
        every = "1h"
        channels = ["hook"]
        [checks.sync]
        key = "{new_key()}"
        every = "15m"
        channels = ["hook"]
        """
    )


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Client:
    result: Client = await aiohttp_client(create_app(config))
    return result


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(client: Client, config: Config) -> str:
    resp = await client.get("/metrics", headers=bearer(config))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def test_metrics_need_the_token_unless_the_server_is_public(
    client: Client, aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    assert (await client.get("/metrics")).status == 401
    public = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server='public = true\ndatabase = "p.db"', name="p.toml"
    )
    open_client: Client = await aiohttp_client(create_app(public))
    assert (await open_client.get("/metrics")).status == 200


async def test_a_wrong_token_is_refused_on_a_public_server_as_the_api_refuses_it(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Else a Prometheus with a stale token scrapes on unnoticed, until public is turned off.
    public = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server='public = true\ndatabase = "p.db"', name="p.toml"
    )
    client: Client = await aiohttp_client(create_app(public))
    wrong = {"Authorization": "Bearer wrong"}
    assert (await client.get("/api/v1/checks", headers=wrong)).status == 401
    resp = await client.get("/metrics", headers=wrong)
    assert resp.status == 401 and "heartfly_check" not in await resp.text()
    assert (await client.get("/metrics", headers=bearer(public))).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_metrics_show_each_checks_state_last_ping_and_last_duration(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/start")
    await client.get(f"/ping/{KEY}/fail")
    got = samples(await scrape(client, config))
    assert got[("heartfly_check_up", (("check", "backup"),))] == 0.0
    assert got[("heartfly_check_up", (("check", "sync"),))] == 1.0
    assert got[("heartfly_check_state", (("check", "backup"), ("state", "down")))] == 1.0
    assert got[("heartfly_check_state", (("check", "backup"), ("state", "up")))] == 0.0
    assert got[("heartfly_check_state", (("check", "sync"), ("state", "new")))] == 1.0
    assert got[("heartfly_check_last_ping_timestamp_seconds", (("check", "backup"),))] > 1.7e9
    assert got[("heartfly_check_last_duration_seconds", (("check", "backup"),))] >= 0.0
    assert ("heartfly_check_last_ping_timestamp_seconds", (("check", "sync"),)) not in got  # never pinged
    assert ("heartfly_timer_lag_seconds", ()) in got


async def test_the_last_duration_stays_when_a_run_ends_without_a_start(client: Client, config: Config) -> None:
    gauge = ("heartfly_check_last_duration_seconds", (("check", "backup"),))
    for path in ("/start", ""):
        assert (await client.get(f"/ping/{KEY}{path}")).status == 200
    timed = samples(await scrape(client, config))[gauge]
    assert timed >= 0.0 and (await state_of(client, config, "backup"))["last_duration_seconds"] == timed
    for path in ("", "/fail"):  # ends that time nothing: no start
        assert (await client.get(f"/ping/{KEY}{path}")).status == 200
        assert samples(await scrape(client, config))[gauge] == timed
        assert (await state_of(client, config, "backup"))["last_duration_seconds"] == timed


async def test_pings_are_counted_by_outcome(client: Client, config: Config) -> None:
    # "/-bogus" is no event, nor a check's name: 400 (a word that could be a name is a 404, as under the ping_key)
    for path in ("", "", "/start", "/fail", "/log", "/-bogus"):
        await client.get(f"/ping/{KEY}{path}")
    await client.get(f"/ping/{new_key()}")
    got = samples(await scrape(client, config))

    def count(outcome: str) -> float:
        return got[("heartfly_pings_received_total", (("outcome", outcome),))]

    assert (count("success"), count("start"), count("fail"), count("log")) == (2, 1, 1, 1)
    assert (count("invalid"), count("not_found"), count("progress"), count("unavailable")) == (1, 1, 0, 0)


async def test_a_ping_resent_with_the_same_ping_id_is_counted_once_as_it_is_recorded_once(
    client: Client, config: Config
) -> None:
    # A client whose answer was lost sends the ping again with its id (heartfly run, a spool): the
    # copies are answered 200 and stored once, so they are one ping, as a batch's copies are.
    for _ in range(3):
        assert (await client.get(f"/ping/{KEY}/fail?ping_id=resent-0001")).status == 200
        resp = await client.post(f"/api/v1/heartbeat/{KEY}", json={"status": "start", "ping_id": "resent-0002"})
        assert resp.status == 200
    got = samples(await scrape(client, config))
    assert got[("heartfly_pings_received_total", (("outcome", "fail"),))] == 1.0
    assert got[("heartfly_pings_received_total", (("outcome", "start"),))] == 1.0
    pings = await (await client.get("/api/v1/checks/backup/pings", headers=bearer(config))).json()
    assert sorted(p["kind"] for p in pings) == ["fail", "start"]


async def test_a_ping_refused_for_its_body_or_method_is_counted_as_invalid(client: Client, config: Config) -> None:
    # Unreadable (not the gzip it says it is), over the 16 MiB cap or in another method: refused, so
    # counted as why.
    garbled = {"Content-Encoding": "gzip", "Connection": "close"}
    assert (await client.post(f"/ping/{KEY}/fail", data=b"not gzip", headers=garbled)).status == 400
    assert (await client.post(f"/api/v1/heartbeat/{KEY}", data=b"not gzip", headers=garbled)).status == 400
    assert (await client.post(f"/ping/{KEY}/batch", data=b"not gzip", headers=garbled)).status == 400
    assert (await client.post(f"/ping/{KEY}/log", data=b"x" * (BODY_HARD_CAP + 1))).status == 413
    assert (await client.put(f"/ping/{KEY}/fail")).status == 405  # nor in a method a ping is sent with
    assert (await client.get(f"/ping/{KEY}/batch")).status == 405
    got = samples(await scrape(client, config))
    assert got[("heartfly_pings_received_total", (("outcome", "invalid"),))] == 6.0
    assert got[("heartfly_pings_received_total", (("outcome", "fail"),))] == 0.0


async def test_alert_attempts_are_counted_by_channel_and_outcome_and_the_outbox_depth_shown(
    client: Client, config: Config
) -> None:
    resp = await client.post("/api/v1/channels/hook/test", headers=bearer(config))
    assert (await resp.json())["attempt_log"][0]["outcome"] == "retry"  # nothing listens there
    got = samples(await scrape(client, config))
    assert got[("heartfly_alert_attempts_total", (("channel", "hook"), ("outcome", "retry")))] == 1.0
    assert got[("heartfly_outbox_pending", ())] == 1.0


async def test_each_channels_attempt_counters_are_shown_at_zero_before_its_first_attempt(
    client: Client, config: Config
) -> None:
    # A series that first appears at 1 has no increase() in Prometheus: an alerting rule on failed or
    # expired attempts would miss a channel's first failure after every start.
    every = ("sent", "retry", "failed", "expired", "superseded")
    got = samples(await scrape(client, config))
    for outcome in every:
        assert got[("heartfly_alert_attempts_total", (("channel", "hook"), ("outcome", outcome)))] == 0.0
    resp = await client.post("/api/v1/channels/hook/test", headers=bearer(config))
    assert (await resp.json())["attempt_log"][0]["outcome"] == "retry"
    got = samples(await scrape(client, config))
    assert got[("heartfly_alert_attempts_total", (("channel", "hook"), ("outcome", "retry")))] == 1.0
    assert got[("heartfly_alert_attempts_total", (("channel", "hook"), ("outcome", "failed")))] == 0.0
    # A channel added by a reload is shown at once.
    config.path.write_text(config.path.read_text(encoding="utf-8") + '[channels.new]\ntype = "log"\n', encoding="utf-8")
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    got = samples(await scrape(client, config))
    assert got[("heartfly_alert_attempts_total", (("channel", "new"), ("outcome", "expired")))] == 0.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) not installed")
async def test_promtool_accepts_the_metrics(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}")
    await client.post("/api/v1/channels/hook/test", headers=bearer(config))
    text = await scrape(client, config)
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", "promtool found lint problems"


async def test_a_badge_shows_the_state_under_a_key_derived_from_the_ping_key(client: Client) -> None:
    key = badge_key(KEY)
    assert len(key) == 24 and key not in KEY and KEY not in key
    up = await client.get(f"/badge/{key}.svg")
    assert up.status == 200 and up.content_type == "image/svg+xml"
    assert "no-cache" in up.headers["Cache-Control"]
    svg = await up.text()
    assert svg.startswith("<svg") and ">backup</text>" in svg and ">new</text>" in svg
    await client.get(f"/ping/{KEY}/fail")
    assert ">down (failed)</text>" in await (await client.get(f"/badge/{key}.svg")).text()


async def test_the_json_badge_is_a_shields_io_endpoint(client: Client) -> None:
    await client.get(f"/ping/{KEY}")
    body = await (await client.get(f"/badge/{badge_key(KEY)}.json")).json()
    assert body == {
        "schemaVersion": 1,
        "label": "backup",
        "message": "up",
        "color": "brightgreen",
        "isError": False,
        "cacheSeconds": 60,
    }


async def test_an_unknown_badge_key_or_a_ping_key_is_not_a_badge(client: Client) -> None:
    assert (await client.get(f"/badge/{'0' * 24}.svg")).status == 404
    assert (await client.get(f"/badge/{KEY}.svg")).status == 404
    assert (await client.get(f"/badge/{badge_key(KEY)}.json")).status == 200


async def test_a_reload_that_changes_a_key_moves_its_badge(client: Client, config: Config) -> None:
    new = new_key()
    config.path.write_text(config.path.read_text().replace(KEY, new))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    assert (await client.get(f"/badge/{badge_key(KEY)}.svg")).status == 404
    assert (await client.get(f"/badge/{badge_key(new)}.svg")).status == 200


async def test_livez_and_readyz_stay_open(client: Client) -> None:
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_pings_are_answered_while_the_metrics_text_is_being_built(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 100k checks the text is 900k samples, seconds of Python: built on the event loop, it
    # held every ping for as long. Here it waits until a ping was answered meanwhile.
    building, pinged = threading.Event(), threading.Event()
    build = generate_latest

    def waiting_for_a_ping(registry: Any) -> bytes:
        building.set()
        assert pinged.wait(5), "no ping was answered while /metrics was being built"
        return build(registry)

    monkeypatch.setattr(metrics, "generate_latest", waiting_for_a_ping)
    scrape = asyncio.create_task(client.get("/metrics", headers=bearer(config)))

    async def started() -> bool:
        return building.is_set()

    await until(started)
    assert (await client.get(f"/ping/{KEY}")).status == 200
    pinged.set()
    resp = await scrape
    assert resp.status == 200
    assert samples(await resp.text())[("heartfly_check_up", (("check", "backup"),))] == 1.0


async def test_a_commit_left_unanswered_shows_as_failing_writes_as_readyz_says_it(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database that stops answering (a locked table, a hung disk) holds every ping and alert:
    # /readyz said so, but /metrics kept heartfly_database_writes_failing at 0, so an alert on it
    # stayed silent for as long as nothing was written.
    monkeypatch.setattr(groupcommit, "STUCK_AFTER", 0.05)
    writer = client.app[RUNTIME].writer
    assert writer is not None
    commit, answered = writer._commit, threading.Event()  # type: ignore[attr-defined]

    def unanswered(writes: list[Any]) -> None:
        answered.wait(10)
        commit(writes)

    monkeypatch.setattr(writer, "_commit", unanswered)
    ping = asyncio.create_task(client.get(f"/ping/{KEY}"))
    try:

        async def unready() -> bool:
            return (await client.get("/readyz")).status == 503

        await until(unready)
        got = samples(await scrape(client, config))
        assert got[("heartfly_database_writes_failing", ())] == 1.0
    finally:
        answered.set()
    assert (await ping).status == 200
    assert samples(await scrape(client, config))[("heartfly_database_writes_failing", ())] == 0.0


@pytest.mark.parametrize("store_backend", ["postgres"], indirect=True)
async def test_metrics_answer_without_the_outbox_depth_while_the_outbox_cannot_be_read(
    client: Client, config: Config
) -> None:
    # A table locked by a migration or VACUUM FULL (or a connection gone silent) held the outbox's
    # count, and with it the whole scrape, past any scrape timeout: "/metrics still answers" did not.
    import psycopg

    assert isinstance(config.server.database, PostgresDatabase)
    async with await psycopg.AsyncConnection.connect(config.server.database.url) as locker, locker.transaction():
        await locker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        scrape = asyncio.create_task(client.get("/metrics", headers=bearer(config)))
        done, _ = await asyncio.wait({scrape}, timeout=15)  # a bound on the test, not what it checks
        if not done:
            scrape.cancel()
        assert done, "/metrics did not answer while the outbox was locked"
        resp = scrape.result()
        assert resp.status == 200
        got = samples(await resp.text())
    assert ("heartfly_outbox_pending", ()) not in got
    assert got[("heartfly_check_up", (("check", "backup"),))] == 1.0
    # The cancelled count left the node's one reader connection usable, in no transaction.
    again = await client.get("/metrics", headers=bearer(config))
    assert samples(await again.text())[("heartfly_outbox_pending", ())] == 0.0


def test_process_metrics_survive_the_units_proc_subset_which_hides_proc_stat(tmp_path: Any) -> None:
    # The unit's ProcSubset=pid leaves /proc with the process directories only. prometheus_client's
    # collector reads the boot time from /proc/stat, and without it reported nothing: under the
    # package, /metrics had no process_resident_memory_bytes, process_open_fds, ... at all.
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").symlink_to("/proc/self")  # as ProcSubset=pid leaves it: no stat beside it
    collector = type(metrics._PROCESS)(proc=str(proc), registry=None)
    shown = {family.name: family.samples[0].value for family in collector.collect()}
    assert {"process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} <= set(shown)
    with open("/proc/stat") as stat:  # the start time agrees with /proc/stat's boot time
        btime = next(float(line.split()[1]) for line in stat if line.startswith("btime "))
    real = {f.name: f.samples[0].value for f in type(metrics._PROCESS)(registry=None).collect()}
    assert abs(shown["process_start_time_seconds"] - real["process_start_time_seconds"]) < 2, btime


def test_process_metrics_survive_a_proc_stat_without_its_boot_time(tmp_path: Any) -> None:
    # A /proc/stat with no btime line (a sandbox's stub): prometheus_client's reader returns None,
    # float(None) raised TypeError in ProcessMetrics' constructor, which prometheus_client lets
    # through (it catches OSError only): heartfly.web.metrics could not be imported, so no server.
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").symlink_to("/proc/self")
    (proc / "stat").write_text("cpu  1 2 3 4\n")
    collector = type(metrics._PROCESS)(proc=str(proc), registry=None)
    shown = {family.name: family.samples[0].value for family in collector.collect()}
    real = {f.name: f.samples[0].value for f in type(metrics._PROCESS)(registry=None).collect()}
    assert abs(shown["process_start_time_seconds"] - real["process_start_time_seconds"]) < 2


async def test_a_scrape_does_not_wait_for_the_driver_to_give_up_on_an_unanswered_count(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The count was cancelled after OUTBOX_READ_LIMIT and the scrape waited for the cancellation to
    # end. On a PostgreSQL connection gone silent, psycopg's cancellation is itself unanswered: a
    # cancel request (up to 5 s), then the query's answer (up to 5 s more), 13 s in all, past
    # Prometheus' 10 s scrape timeout, and every heartfly_* series went missing again.
    monkeypatch.setattr(metrics, "OUTBOX_READ_LIMIT", 0.05)
    reader = client.app[RUNTIME].reader
    given_up = asyncio.Event()

    async def silent() -> int:
        try:
            await asyncio.Event().wait()  # the query: no answer
        except asyncio.CancelledError:
            await given_up.wait()  # the driver's cancellation: no answer either, until it gives up
            raise
        return 0

    monkeypatch.setattr(reader, "count_pending_alerts", silent)
    scrape = asyncio.create_task(client.get("/metrics", headers=bearer(config)))
    try:
        done, _ = await asyncio.wait({scrape}, timeout=15)  # a bound on the test, not what it checks
    finally:
        given_up.set()
    resp = await scrape
    assert done, "/metrics waited for the cancelled count to end"
    assert resp.status == 200
    got = samples(await resp.text())
    assert ("heartfly_outbox_pending", ()) not in got
    assert got[("heartfly_check_up", (("check", "backup"),))] == 1.0
