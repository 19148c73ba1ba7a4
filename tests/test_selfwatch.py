"""`[alerts] trouble_channels`: Heartfly tells people when its own database cannot be written.

The rules are pure (selfwatch.step, with times as numbers); end to end, a real server whose
commits fail as on a full disk tells a real webhook receiver and a real SMTP server (aiosmtpd),
straight from memory, and tells them again when writes work.
"""

# ruff: noqa: F811 - the fixtures imported below are named again as test parameters, as pytest wants

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config, ConfigError, load_config
from heartfly.core.config_advice import warnings
from heartfly.core.statetypes import AlertEvent
from heartfly.notify.message import subject, text, webhook_json
from heartfly.server import selfwatch
from heartfly.server.selfwatch import CALM_AFTER, GAP, TROUBLE_AFTER, News, Watch, alert_for, step
from heartfly.store.api import OwnWriter
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import writes_fail
from tests.test_alerts import (
    SERVER,
    Heartfly,
    Mailbox,
    Receiver,
    Receivers,
    Start,
    check,
    fast,
    mailbox,  # noqa: F401 - a fixture
    receivers,  # noqa: F401 - a fixture
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_faults import (
    fill,
    refused_soon,
    tiny_disk,  # noqa: F401 - a fixture
)

FAILING = "database writes are failing"


def watched(looks: list[tuple[float, str | None]]) -> list[News]:
    """The news told over a series of looks at the server's health."""
    watch, told = Watch(), []
    for now, trouble in looks:
        watch, news = step(watch, trouble, now, now)  # the wall clock as the monotonic one
        if news is not None:
            told.append(news)
    return told


def every_second(start: float, end: float, trouble: str | None) -> list[tuple[float, str | None]]:
    return [(float(t), trouble) for t in range(int(start), int(end))]


def quick(monkeypatch: pytest.MonkeyPatch, retry: float | None = None) -> None:
    """The watcher's waits cut to fractions of a second, for a server in a test."""
    monkeypatch.setattr(selfwatch, "TROUBLE_AFTER", 0.3)
    monkeypatch.setattr(selfwatch, "CALM_AFTER", 0.3)
    monkeypatch.setattr(selfwatch, "POLL", 0.05)
    if retry is not None:
        monkeypatch.setattr(selfwatch, "RETRY", retry)


def writer_of(hf: Heartfly) -> OwnWriter:
    writer = hf.client.app[RUNTIME].writer
    assert writer is not None
    return writer


async def refused(hf: Heartfly, key: str) -> None:
    """A ping the server refuses while its commits fail, which makes it unhealthy."""
    async with hf.client.post(f"/ping/{key}") as resp:
        assert resp.status == 503


@dataclass
class HungAndHook:
    """A server whose trouble channels are one that hangs (`hung`, until released) and one that
    answers (`hook`), and a check `key` that pings it."""

    hf: Heartfly
    config: Config
    key: str
    hung: Receiver
    hook: Receiver


async def hung_and_hook(
    start: Start, receivers: Receivers, write_config: ConfigWriter, timeout: str = "60s", more: str = ""
) -> HungAndHook:
    """`more`: channels besides the two."""
    hung, hook = await receivers(hanging=True), await receivers()
    key = new_key()
    channels = webhook("hung", hung.url, f'timeout = "{timeout}"') + webhook("hook", hook.url) + more
    config = write_config(channels + check("job", key, ["hook"]) + "[alerts]\ntrouble_channels = ['hung', 'hook']\n",
                          server=SERVER)  # fmt: skip
    return HungAndHook(await start(config), config, key, hung, hook)


async def trouble_told_to_both(two: HungAndHook, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """Writes fail until both channels have the trouble alert (the hung one has it under way)."""
    with writes_fail(two.config, writer_of(two.hf), monkeypatch):
        await refused(two.hf, two.key)
        await until(lambda: two.hook.hits and two.hung.hits, what)


# ---- the rules ----------------------------------------------------------------------------------


def test_trouble_that_lasts_is_told_once_with_when_it_began_and_its_end_once_after_writes_work_a_while() -> None:
    looks = every_second(100, 200, FAILING) + every_second(200, 230, None)
    assert watched(looks) == [
        News(AlertEvent.TROUBLE, FAILING, 100.0),
        News(AlertEvent.TROUBLE_OVER, FAILING, 100.0, 200.0),
    ]
    told_at = 100 + int(TROUBLE_AFTER)  # not a look before
    assert watched(every_second(100, told_at, FAILING)) == []
    assert watched(every_second(100, told_at + 1, FAILING)) == [News(AlertEvent.TROUBLE, FAILING, 100.0)]
    over_at = 200 + int(CALM_AFTER)  # its end: once writes have worked CALM_AFTER, dated when they began to
    assert len(watched(every_second(100, 200, FAILING) + every_second(200, over_at, None))) == 1


def test_trouble_is_told_in_its_words_when_it_is_told_and_its_end_in_the_same() -> None:
    looks = [(100.0 + t, f"a database commit has waited {t + 3} s for an answer") for t in range(40)]
    [trouble, over] = watched(looks + every_second(140, 160, None))
    assert trouble.problem == over.problem == f"a database commit has waited {int(TROUBLE_AFTER) + 3} s for an answer"


def test_a_blip_shorter_than_the_wait_is_told_to_nobody() -> None:
    blip = every_second(100, 100 + TROUBLE_AFTER - 1, FAILING)
    assert watched(blip + every_second(200, 300, None)) == []
    again = every_second(100 + TROUBLE_AFTER - 1, 100 + TROUBLE_AFTER - 1 + CALM_AFTER, None)
    assert watched(blip + again + every_second(200, 229, FAILING)) == []  # a new blip, after a calm


def test_writes_that_work_for_a_moment_between_failures_are_trouble_that_goes_on() -> None:
    flapping: list[tuple[float, str | None]] = []
    for began in range(100, 300, 10):  # fails 8 s, works 2 s, again and again
        flapping += every_second(began, began + 8, FAILING) + every_second(began + 8, began + 10, None)
    assert CALM_AFTER > 2
    assert watched(flapping) == [News(AlertEvent.TROUBLE, FAILING, 100.0)]
    assert [n.event for n in watched(flapping + every_second(300, 320, None))] == [
        AlertEvent.TROUBLE,
        AlertEvent.TROUBLE_OVER,
    ]


def test_a_frozen_process_is_not_taken_for_trouble_that_lasted_through_the_freeze() -> None:
    # A timer late for a moment before a SIGSTOP and after the SIGCONT: the freeze between the two
    # looks is not counted as trouble.
    late = "the deadline timer is not running"
    looks = [(100.0, late), (100.0 + 600, late), (100.0 + 601, None)]
    assert GAP < 600
    assert watched(looks) == []


def test_the_trouble_alert_names_the_problem_and_what_it_means_in_every_shape(write_config: ConfigWriter) -> None:
    config = write_config(webhook("hook", "http://127.0.0.1:9/hook") + "[alerts]\ntrouble_channels = ['hook']\n",
                          server=SERVER)  # fmt: skip
    trouble = alert_for(News(AlertEvent.TROUBLE, FAILING, 1_800_000_000.0), config)
    over = alert_for(News(AlertEvent.TROUBLE_OVER, FAILING, 1_800_000_000.0, 1_800_000_125.0), config)
    assert subject(trouble) == f"[HEARTFLY DOWN] Heartfly cannot do its job: {FAILING}"
    assert subject(over) == "[HEARTFLY UP] Heartfly works again after 2 min 5 s"
    words = text(trouble)
    assert "Since: 2027-01-15T08:00:00.000Z" in words
    assert "pings are refused (503" in words and "https://hb.example.org" in words
    assert "Over at: 2027-01-15T08:02:05.000Z" in text(over)
    body = webhook_json(over)
    assert (body["event"], body["id"]) == ("trouble_over", over.key)
    since, ended = "2027-01-15T08:00:00.000Z", "2027-01-15T08:02:05.000Z"
    assert body["trouble"] == {"problem": FAILING, "since": since, "ended_at": ended}
    assert (trouble.key, over.key) == ("trouble-1800000000000", "trouble_over-1800000000000")
    assert webhook_json(trouble)["check"] == {"name": "", "description": "", "url": "https://hb.example.org"}


def test_a_trouble_channel_that_is_not_a_channel_is_a_config_error(write_config: ConfigWriter) -> None:
    path = write_config(webhook("hook", "http://127.0.0.1:9/hook"), server=SERVER).path
    path.write_text(path.read_text() + "[alerts]\ntrouble_channels = ['hook', 'pager']\n")
    with pytest.raises(ConfigError, match=r'alerts.trouble_channels: no channel "pager" \(channels: hook\)'):
        load_config(path)


def test_trouble_channels_in_a_clusters_config_are_refused_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.toml"
    cluster = '[server]\ndatabase = "postgresql://hf@db.example/heartfly"\n'
    path.write_text(cluster + webhook("hook", "http://127.0.0.1:9/hook") + "[alerts]\ntrouble_channels = ['hook']\n")
    with pytest.raises(ConfigError, match=r"alerts.trouble_channels: is for one server on SQLite"):
        load_config(path)


# ---- end to end ---------------------------------------------------------------------------------


async def test_a_server_whose_database_cannot_be_written_tells_the_trouble_channels_and_then_that_it_is_over(
    start: Start,
    receivers: Receivers,
    mailbox: Mailbox,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(selfwatch, "TROUBLE_AFTER", 0.5)
    monkeypatch.setattr(selfwatch, "CALM_AFTER", 0.3)
    monkeypatch.setattr(selfwatch, "POLL", 0.05)
    monkeypatch.setattr(selfwatch, "RETRY", 0.2)
    await mailbox.start()
    hook = await receivers(500)  # the first attempt fails: tried again
    key = new_key()
    config = write_config(
        mailbox.toml()
        + webhook("hook", hook.url)
        + '[channels.mail]\ntype = "email"\nto = ["ops@example.org"]\n'
        + '[channels.quiet]\ntype = "email"\nto = ["nobody@example.org"]\n'
        + check("job", key, ["quiet"])
        + fast().replace("[alerts]\n", '[alerts]\ntrouble_channels = ["hook", "mail"]\n'),
        server=SERVER,
    )
    hf = await start(config)
    writer = writer_of(hf)
    with writes_fail(config, writer, monkeypatch):
        await refused(hf, key)
        await until(lambda: len(hook.hits) >= 2, "the trouble alert, tried again")
        await until(lambda: mailbox.received, "the trouble email")
        await asyncio.sleep(0.5)  # ten looks more: told once
        assert hook.events() == ["trouble", "trouble"]
        assert hook.hits[0].key == hook.hits[1].key
        assert hook.hits[1].json()["trouble"]["problem"] == FAILING
        [(envelope, msg)] = mailbox.received
        assert envelope.rcpt_tos == ["ops@example.org"]  # the trouble channels only
        # Python's email folds a subject of this length before its first word: read back with a space
        assert msg["Subject"].strip() == f"[HEARTFLY DOWN] Heartfly cannot do its job: {FAILING}"
    await until(lambda: not writer.failing, "a commit that works")  # the writer tries an empty one every 0.5 s
    await until(lambda: len(hook.hits) >= 3, "the end of the trouble")
    await until(lambda: len(mailbox.received) >= 2, "the email that says it is over")
    assert hook.events() == ["trouble", "trouble", "trouble_over"]
    over = hook.hits[2].json()
    assert over["trouble"]["since"] == hook.hits[0].json()["trouble"]["since"]
    assert mailbox.received[1][1]["Subject"].strip().startswith("[HEARTFLY UP] Heartfly works again after ")


async def test_a_wall_clock_set_back_during_the_trouble_does_not_hold_its_alert_back(
    receivers: Receivers, aiohttp_client: AiohttpClient, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NTP setting the clock back an hour (a VM's clock corrected) while the disk is full: the
    # trouble has lasted its 30 s all the same, and is told then, not an hour and 30 s later.
    monkeypatch.setattr(selfwatch, "POLL", 0.01)
    hook = await receivers()
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"])
                          + "[alerts]\ntrouble_channels = ['hook']\n", server=SERVER)  # fmt: skip
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    writer = client.app[RUNTIME].writer
    assert writer is not None
    with writes_fail(config, writer, monkeypatch):
        async with client.post(f"/ping/{key}") as resp:
            assert resp.status == 503
        await asyncio.sleep(0.1)  # the watcher's looks see the trouble begin
        clock.step(-3600)
        for _ in range(int(2 * (TROUBLE_AFTER + 5))):  # half a second a look: no look is taken for a freeze
            clock.advance(0.5)
            await asyncio.sleep(0.03)
            if hook.hits:
                break
        assert hook.events() == ["trouble"]


def test_a_channel_only_the_trouble_channels_name_is_not_warned_of_as_unused(write_config: ConfigWriter) -> None:
    hooks = webhook("hook", "http://127.0.0.1:9/hook") + webhook("ops", "http://127.0.0.1:9/ops")
    config = write_config(hooks + check("job", new_key(), ["hook"]) + "[alerts]\ntrouble_channels = ['ops']\n",
                          server=SERVER)  # fmt: skip
    assert [w for w in warnings(config) if "channels." in w] == []


async def test_a_reload_during_the_trouble_tells_the_channels_it_names_now_and_stops_trying_those_it_no_longer_names(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick(monkeypatch, retry=0.1)
    hook, broken, late = await receivers(), await receivers(status=500), await receivers()
    key = new_key()
    channels = webhook("hook", hook.url) + webhook("broken", broken.url) + webhook("late", late.url)
    config = write_config(channels + check("job", key, ["hook"]) + "[alerts]\ntrouble_channels = ['hook', 'broken']\n",
                          server=SERVER)  # fmt: skip
    hf = await start(config)
    writer = writer_of(hf)
    with writes_fail(config, writer, monkeypatch):
        await refused(hf, key)
        await until(lambda: hook.hits and len(broken.hits) >= 2, "the trouble alert, tried again where refused")
        text = config.path.read_text().replace("['hook', 'broken']", "['hook', 'late']")
        config.path.write_text(text)
        assert await control.reload_config(hf.client.app) == (1, [])
        await until(lambda: late.hits, "the trouble alert to the channel named since")
        tried = len(broken.hits)
    await until(lambda: len(hook.hits) >= 2, "the end of the trouble")
    await until(lambda: len(late.hits) >= 2, "the end of the trouble, to the channel named since")
    assert late.events() == hook.events() == ["trouble", "trouble_over"]
    assert late.hits[0].key == hook.hits[0].key
    assert len(broken.hits) == tried and broken.events() == ["trouble"] * tried  # not tried again once unnamed


async def test_a_channel_that_hangs_holds_up_neither_the_other_channels_nor_the_end_of_the_trouble(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick(monkeypatch)
    two = await hung_and_hook(start, receivers, write_config)
    hung, hook = two.hung, two.hook
    await trouble_told_to_both(two, monkeypatch, "the trouble alert on both channels")
    await until(lambda: len(hook.hits) >= 2, "the end of the trouble, while the other channel still hangs")
    assert hook.events() == ["trouble", "trouble_over"]
    assert hung.events() == ["trouble"]  # its attempt still under way
    hung.hanging = False
    hung.release.set()
    await until(lambda: len(hung.hits) >= 2, "the end, to the channel that took the trouble alert late")
    assert hung.events() == ["trouble", "trouble_over"]
    assert hung.hits[1].key == hook.hits[1].key


@pytest.mark.parametrize(
    ("problem", "meanwhile"),
    [
        (FAILING, "pings are refused (503"),
        ("a database commit has waited 33 s for an answer", "pings wait unanswered"),
        ("the deadline timer is not running", "no deadline fires"),
    ],
)
def test_the_trouble_alert_says_what_its_own_problem_means_for_pings(
    write_config: ConfigWriter, problem: str, meanwhile: str
) -> None:
    # A hung commit refuses no ping: they wait for it (and heartfly run gives up on them and keeps them).
    config = write_config(webhook("hook", "http://127.0.0.1:9/hook") + "[alerts]\ntrouble_channels = ['hook']\n",
                          server=SERVER)  # fmt: skip
    trouble = alert_for(News(AlertEvent.TROUBLE, problem, 1_800_000_000.0), config)
    [said] = [value for label, value in trouble.facts() if label == "Meanwhile"]
    assert said.startswith(meanwhile)
    if problem != FAILING:
        assert "503" not in text(trouble)


async def test_a_real_full_disk_is_told_though_the_writers_empty_retry_commits_on_it_and_its_end_once_space_returns(
    start: Start, receivers: Receivers, write_config: ConfigWriter, tiny_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # writes_fail (above) fails every commit; on a real full disk the writer's empty retry after a
    # refused ping commits (/readyz is 200 for half a second) until the "alive at" mark it carries
    # fails too, and the WAL cannot be copied: the trouble is told all the same, and its end.
    monkeypatch.setattr(selfwatch, "TROUBLE_AFTER", 3.0)
    hook = await receivers()
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"])
                          + "[alerts]\ntrouble_channels = ['hook']\n",
                          server=SERVER + f'\ndatabase = "{tiny_disk / "hb.db"}"')  # fmt: skip
    hf = await start(config)
    filler = fill(tiny_disk)
    try:
        await refused_soon(hf.client, f"/ping/{key}/log")
        await until(lambda: hook.hits, "the trouble alert", timeout=30)
    finally:
        filler.unlink()
    await until(lambda: len(hook.hits) >= 2, "the end of the trouble", timeout=30)
    assert hook.events() == ["trouble", "trouble_over"]
    assert hook.hits[0].json()["trouble"]["problem"] == FAILING


async def test_a_channel_whose_trouble_attempt_ends_after_the_next_trouble_began_is_told_that_trouble_too(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hung channel's attempt at the first trouble ends once that trouble is over and the next
    # has been told elsewhere: it is told the first one's end, and then the trouble that goes on.
    quick(monkeypatch)
    two = await hung_and_hook(start, receivers, write_config)
    hf, config, key, hung, hook = two.hf, two.config, two.key, two.hung, two.hook
    await trouble_told_to_both(two, monkeypatch, "the first trouble alert on both channels")
    await until(lambda: len(hook.hits) >= 2, "the end of the first trouble")
    with writes_fail(config, writer_of(hf), monkeypatch):
        await refused(hf, key)
        await until(lambda: len(hook.hits) >= 3, "the second trouble alert")
        assert hung.events() == ["trouble"]  # its first attempt still under way
        hung.hanging = False
        hung.release.set()
        await until(lambda: len(hung.hits) >= 3, "the first trouble's end and the second trouble, to the hung channel")
    assert hung.events() == hook.events()[:3] == ["trouble", "trouble_over", "trouble"]
    assert [h.key for h in hung.hits[:3]] == [h.key for h in hook.hits[:3]]


async def test_a_channel_unnamed_while_its_attempt_was_under_way_and_named_again_is_not_told_the_trouble_twice(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "heartfly.server.selfwatch")
    quick(monkeypatch)
    late = await receivers()
    two = await hung_and_hook(start, receivers, write_config, more=webhook("late", late.url))
    hung, hook = two.hung, two.hook

    async def name(channels: str) -> None:
        text = two.config.path.read_text()
        two.config.path.write_text(text[: text.index("trouble_channels = ")] + f"trouble_channels = {channels}\n")
        assert await control.reload_config(two.hf.client.app) == (1, [])

    with writes_fail(two.config, writer_of(two.hf), monkeypatch):
        await refused(two.hf, two.key)
        await until(lambda: hook.hits and hung.hits, "the trouble alert on both channels")
        await name("['hook']")
        hung.hanging = False
        hung.release.set()  # the attempt under way is taken
        await until(lambda: "trouble alert sent via hung" in caplog.text, "the hung channel's attempt taken")
        await name("['hook', 'late']")
        await until(lambda: late.hits, "a look at the channels after that attempt ended")
        await name("['hung', 'hook', 'late']")
    await until(lambda: len(hung.hits) >= 2 and len(late.hits) >= 2, "the end of the trouble")
    assert hung.events() == late.events() == ["trouble", "trouble_over"]


async def test_an_attempt_that_fails_once_its_trouble_is_over_is_not_logged_as_tried_again(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quick(monkeypatch)
    two = await hung_and_hook(start, receivers, write_config, "6s")
    hung, hook = two.hung, two.hook
    await trouble_told_to_both(two, monkeypatch, "the trouble alert on both channels")
    await until(lambda: len(hook.hits) >= 2, "the end of the trouble, while the other channel still hangs")
    assert hung.events() == ["trouble"]  # its attempt still under way, past the trouble's end
    failed = await until(lambda: [r.getMessage() for r in caplog.records if "via hung failed" in r.getMessage()],
                         "the attempt's time limit", timeout=15)  # fmt: skip
    assert failed == ["trouble alert via hung failed: no answer within 6 s; not tried again: no longer news"]


async def test_the_end_owed_to_a_channel_that_took_a_trouble_late_is_told_though_a_reload_no_longer_names_it(
    start: Start, receivers: Receivers, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was told Heartfly was down: it is told that trouble is over, named for the next one or not.
    quick(monkeypatch)
    two = await hung_and_hook(start, receivers, write_config)
    hf, config, key, hung, hook = two.hf, two.config, two.key, two.hung, two.hook
    await trouble_told_to_both(two, monkeypatch, "the first trouble alert on both channels")
    await until(lambda: len(hook.hits) >= 2, "the end of the first trouble")
    config.path.write_text(config.path.read_text().replace("['hung', 'hook']", "['hook']"))
    assert await control.reload_config(hf.client.app) == (1, [])
    with writes_fail(config, writer_of(hf), monkeypatch):
        await refused(hf, key)
        await until(lambda: len(hook.hits) >= 3, "the second trouble alert")
        hung.hanging = False
        hung.release.set()
        await until(lambda: len(hung.hits) >= 2, "the first trouble's end, to the channel no longer named")
    await until(lambda: len(hook.hits) >= 4, "the end of the second trouble")
    assert hung.events() == ["trouble", "trouble_over"]
    assert hung.hits[1].key == hook.hits[1].key


async def test_an_end_of_trouble_the_channel_never_takes_is_given_up_after_expire_after_not_tried_for_ever(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As an outbox alert: a receiver that refuses it for a day is not tried (and logged) every 30 s for ever.
    quick(monkeypatch, retry=0.1)
    hook = await receivers()
    key = new_key()
    alerts = "[alerts]\ntrouble_channels = ['hook']\nexpire_after = '1s'\n"
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + alerts, server=SERVER)
    hf = await start(config)
    writer = writer_of(hf)
    with writes_fail(config, writer, monkeypatch):
        await refused(hf, key)
        await until(lambda: hook.hits, "the trouble alert")
        hook.status = 500
    given_up = await until(lambda: [r.getMessage() for r in caplog.records if "given up" in r.getMessage()],
                           "the end of the trouble given up", timeout=15)  # fmt: skip
    assert len(given_up) == 1
    assert given_up[0].startswith("trouble_over alert via hook failed: HTTP 500")
    assert given_up[0].endswith("; given up: not taken within [alerts] expire_after (1 s)")
    tried = len(hook.hits)
    assert hook.events()[1:] == ["trouble_over"] * (tried - 1)  # tried again until then
    await asyncio.sleep(0.5)  # five retry periods: none comes
    assert len(hook.hits) == tried


async def test_a_trouble_the_channel_never_takes_is_given_up_after_expire_after_and_not_started_over_by_a_reload(
    start: Start,
    receivers: Receivers,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given up, the trouble is settled on that channel: not owed again at the watch's next look (it
    # names the channels each time, for a reload), nor by a reload that names another channel.
    quick(monkeypatch, retry=0.1)
    hook, other = await receivers(status=500), await receivers()
    key = new_key()
    alerts = "[alerts]\ntrouble_channels = ['hook']\nexpire_after = '1s'\n"
    channels = webhook("hook", hook.url) + webhook("other", other.url)
    config = write_config(channels + check("job", key, ["hook"]) + alerts, server=SERVER)
    hf = await start(config)
    with writes_fail(config, writer_of(hf), monkeypatch):
        await refused(hf, key)
        given_up = await until(lambda: [r.getMessage() for r in caplog.records if "given up" in r.getMessage()],
                               "the trouble given up", timeout=15)  # fmt: skip
        assert len(given_up) == 1
        assert given_up[0].startswith("trouble alert via hook failed: HTTP 500")
        assert given_up[0].endswith("; given up: not taken within [alerts] expire_after (1 s)")
        tried = len(hook.hits)
        assert tried >= 2 and hook.events() == ["trouble"] * tried  # tried again until then
        config.path.write_text(config.path.read_text().replace("['hook']", "['hook', 'other']"))
        assert await control.reload_config(hf.client.app) == (1, [])
        await until(lambda: other.hits, "the trouble, to the channel named since")  # still news
        await asyncio.sleep(0.5)  # five retry periods: hook is not tried again
        assert len(hook.hits) == tried
    await until(lambda: len(other.hits) >= 2, "the end of the trouble, to the channel that took it")
    assert other.events() == ["trouble", "trouble_over"]
    assert len(hook.hits) == tried  # not told the end of a trouble it never took
