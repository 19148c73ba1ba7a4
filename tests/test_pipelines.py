"""Pipeline steps through the engine on a real database (both stores): arming, folding, alerts, restarts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config, ConfigError
from heartfly.core.pipeline import find_cycle
from heartfly.core.states import Event, Kind, Reason, Status
from heartfly.server.checks import Check
from heartfly.server.engine import Engine, PingRecord
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_restart import running

pytestmark = pytest.mark.both_stores

PIPELINE = """
[defaults]
channels = ["hook"]
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
[checks.extract]
key = "{k1}"
every = "1d"
[checks.transform]
key = "{k2}"
after = "extract"
within = "10m"
[checks.load]
key = "{k3}"
after = "transform.success"
within = "5m"
"""


HOOK = """
[defaults]
channels = ["hook"]
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
"""


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))


async def ping(engine: Engine, name: str, kind: Kind, rid: str | None = None, **kw: Any) -> None:
    now = engine.clock.now()
    await engine.record(engine.checks[name], PingRecord(Event(kind, now, rid, **kw), received_at=now))


def tick(engine: Engine, clock: FakeClock, step: float, times: int) -> None:
    """`times` steps of `step` seconds, the timer firing what came due at each."""
    for _ in range(times):
        clock.advance(step)
        engine.fire_due(clock.now())


def alerts(config: Config) -> list[tuple[str, str, dict[str, object]]]:
    sql = "SELECT c.name, o.event, o.payload FROM outbox o JOIN checks c ON c.id = o.check_id ORDER BY o.id"
    return [(name, event, json.loads(payload)) for name, event, payload in query(config, sql)]


async def test_an_upstream_start_arms_its_step_and_a_success_arms_the_next(config: Config) -> None:
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        assert engine.checks["transform"].state.step_due == clock.now() + 600
        assert engine.checks["load"].state.step_due is None  # waits for transform's success, not its start
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)
        assert engine.checks["transform"].state.step_due is None
        assert engine.checks["load"].state.step_due == clock.now() + 300


async def test_a_step_that_misses_its_window_alerts_naming_the_pipeline_and_the_step(config: Config) -> None:
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        await ping(engine, "extract", Kind.SUCCESS)
        assert engine.fire_due(clock.now() + 600) == 1
        assert engine.checks["transform"].state.reason is Reason.STEP_MISSED
    [(name, event, facts)] = alerts(config)
    assert (name, event, facts["reason"]) == ("transform", "down", "step_missed")
    assert facts["pipeline"] == ["extract", "transform", "load"] and facts["step"] == "transform"


async def test_a_branch_steps_alert_names_the_pipeline_from_the_root_down_through_that_step(
    write_config: ConfigWriter,
) -> None:
    # extract feeds transform (then load) and report: report's alert must name a pipeline that
    # holds report, not extract → transform → load.
    config = write_config(
        HOOK
        + f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
        + f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "1h"\n'
        + f'[checks.load]\nkey = "{new_key()}"\nafter = "transform.success"\nwithin = "1h"\n'
        + f'[checks.report]\nkey = "{new_key()}"\nafter = "extract.success"\nwithin = "10m"\n'
        + f'[checks.mail]\nkey = "{new_key()}"\nafter = "report.success"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        await ping(engine, "transform", Kind.START)
        clock.advance(60)
        await ping(engine, "extract", Kind.SUCCESS)
        clock.advance(600)
        engine.fire_due(clock.now())
        assert engine.checks["report"].state.reason is Reason.STEP_MISSED
    [(name, event, facts)] = alerts(config)
    assert (name, event, facts["step"]) == ("report", "down", "report")
    assert facts["pipeline"] == ["extract", "report", "mail"]


async def test_when_the_first_step_fails_the_missed_steps_fold_into_its_alert(config: Config) -> None:
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(30)
        await ping(engine, "extract", Kind.FAIL)
        assert engine.fire_due(clock.now() + 600) == 1
        transform = engine.checks["transform"].state
        assert (transform.status, transform.folded) == (Status.DOWN, True)
        clock.advance(3600)
        await ping(engine, "extract", Kind.SUCCESS)  # extract recovers: one recovery alert
        await ping(engine, "transform", Kind.SUCCESS)  # transform recovers: folded, like its down
    assert [(name, event) for name, event, _ in alerts(config)] == [("extract", "down"), ("extract", "recovery")]
    details = [r[0] for r in query(config, "SELECT detail FROM flips WHERE new = 'down' ORDER BY id")]
    assert details[1] == "no success within 10 min of extract's start (folded into the alert of upstream step extract)"


async def test_a_step_after_a_fan_in_success_counts_its_window_from_the_completed_batch(
    write_config: ConfigWriter,
) -> None:
    # 3 workers share a run id; load must succeed within 10 min of shards' success. The batch
    # completes 20 min after its first worker, and load succeeds 5 min after that: in time.
    config = write_config(
        HOOK
        + f'[checks.shards]\nkey = "{new_key()}"\nevery = "1d"\nexpect = 3\nmax_runtime = "1h"\n'
        + f'[checks.load]\nkey = "{new_key()}"\nafter = "shards.success"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "shards", Kind.SUCCESS, "b1", member="w1")
        assert engine.checks["load"].state.step_due is None
        for worker in ("w2", "w3"):
            clock.advance(600)
            engine.fire_due(clock.now())
            await ping(engine, "shards", Kind.SUCCESS, "b1", member=worker)
        assert engine.checks["load"].state.step_due == clock.now() + 600
        clock.advance(300)
        engine.fire_due(clock.now())
        await ping(engine, "load", Kind.SUCCESS)
        state = engine.checks["load"].state
        assert (state.status, state.reason, state.step_due) == (Status.UP, None, None)
    assert alerts(config) == []


async def test_a_fan_in_batch_arms_a_step_after_its_start_at_its_first_workers_ping_only(
    write_config: ConfigWriter,
) -> None:
    # A worker that starts late, once load has done its part, does not arm load again, nor does a
    # straggler of the finished batch; the next batch's first worker does.
    config = write_config(
        HOOK
        + f'[checks.shards]\nkey = "{new_key()}"\nevery = "1d"\nexpect = 2\nmax_runtime = "1h"\n'
        + f'[checks.load]\nkey = "{new_key()}"\nafter = "shards"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "shards", Kind.START, "b1", member="w1")
        assert engine.checks["load"].state.step_due == clock.now() + 600
        clock.advance(60)
        await ping(engine, "load", Kind.SUCCESS)
        for kind, worker in ((Kind.START, "w2"), (Kind.SUCCESS, "w1"), (Kind.SUCCESS, "w2"), (Kind.SUCCESS, "w3")):
            clock.advance(60)
            await ping(engine, "shards", kind, "b1", member=worker)
            assert engine.checks["load"].state.step_due is None, (kind, worker)
        clock.advance(60)
        await ping(engine, "shards", Kind.SUCCESS, "b2", member="w1")
        assert engine.checks["load"].state.step_due == clock.now() + 600
        clock.advance(60)
        await ping(engine, "load", Kind.SUCCESS)
        await ping(engine, "shards", Kind.SUCCESS, "b2", member="w2")
        clock.advance(3600)
        engine.fire_due(clock.now())
    assert alerts(config) == []


@pytest.mark.parametrize(
    ("settings", "pings"),
    [
        ('assert = ["rows > 0"]\n', [(Kind.SUCCESS, {"metrics": {"rows": 0.0}})]),
        ('min_runtime = "1m"\n', [(Kind.START, {"rid": "r1"}), (Kind.SUCCESS, {"rid": "r1"})]),
        ('min_runtime = "1m"\n', [(Kind.START, {}), (Kind.SUCCESS, {})]),  # it waits out the reorder window
    ],
    ids=["broken assertion", "too fast", "too fast, judged by the timer"],
)
async def test_a_success_judged_a_failure_does_not_arm_a_step_after_its_success(
    write_config: ConfigWriter, settings: str, pings: list[tuple[Kind, dict[str, Any]]]
) -> None:
    # export's success counts as a failure (the first of three allowed): export did not succeed,
    # so publish is not due, and must not be paged as "did not follow its upstream step in time".
    config = write_config(
        HOOK
        + f'[checks.export]\nkey = "{new_key()}"\nevery = "1d"\nfailures_before_alert = 3\n{settings}'
        + f'[checks.publish]\nkey = "{new_key()}"\nafter = "export.success"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        for kind, kw in pings:
            await ping(engine, "export", kind, **kw)
            clock.advance(1)
        clock.advance(5)
        engine.fire_due(clock.now())
        assert engine.checks["export"].state.failures == 1
        assert engine.checks["publish"].state.step_due is None
        clock.advance(3600)
        engine.fire_due(clock.now())
        await ping(engine, "export", Kind.SUCCESS, metrics={"rows": 5.0})  # a real success arms it
        succeeded_at = clock.now()
        clock.advance(6)  # (with min_runtime, judged once the reorder window has passed)
        engine.fire_due(clock.now())
        assert engine.checks["publish"].state.step_due == succeeded_at + 600
    assert alerts(config) == []


def export_then_publish(extra: str = "") -> str:
    """export (min_runtime 1m: a success without its start waits out the reorder window), and
    publish, a step that must succeed within 10 min of export's success."""
    return (
        HOOK
        + f'[checks.export]\nkey = "{new_key()}"\nevery = "1d"\nmin_runtime = "1m"\n{extra}'
        + f'[checks.publish]\nkey = "{new_key()}"\nafter = "export.success"\nwithin = "10m"\n'
    )


async def test_a_success_that_waits_out_the_reorder_window_arms_the_step_after_it_as_it_comes(
    write_config: ConfigWriter,
) -> None:
    config = write_config(export_then_publish())
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "export", Kind.START)
        clock.advance(120)
        await ping(engine, "export", Kind.SUCCESS)  # its start may be on its way: judged in 5 s
        succeeded_at = clock.now()
        assert engine.checks["export"].state.waiting and engine.checks["publish"].state.step_due == succeeded_at + 600
        clock.advance(6)
        engine.fire_due(clock.now())
        assert engine.checks["export"].state.last_success_at == succeeded_at
        assert engine.checks["publish"].state.step_due == succeeded_at + 600


async def test_a_step_that_succeeds_while_its_upstreams_success_waits_out_the_reorder_window_is_not_armed_again(
    write_config: ConfigWriter,
) -> None:
    config = write_config(export_then_publish())
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "export", Kind.START)
        clock.advance(120)
        await ping(engine, "export", Kind.SUCCESS)  # held 5 s for a start that may be on its way
        clock.advance(2)
        await ping(engine, "publish", Kind.SUCCESS)  # the step follows two seconds later
        tick(engine, clock, 60, 12)
        assert engine.checks["publish"].state.status is Status.UP
    assert alerts(config) == []


async def test_a_steps_success_waiting_out_the_reorder_window_does_not_disarm_the_upstreams_next_start(
    write_config: ConfigWriter,
) -> None:
    """A loop (`heartfly run extract; heartfly run transform`, again): transform counts two failures
    before alerting, so its success waits out the reorder window; extract's next start comes a
    second after it and arms transform anew. Applied in event order, the success does the first
    start's part, not the second's: a transform that then never runs is told."""
    config = write_config(
        HOOK
        + f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
        + f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\nfailures_before_alert = 2\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(60)
        await ping(engine, "extract", Kind.SUCCESS)
        await ping(engine, "transform", Kind.SUCCESS)  # held 5 s: a failure before it may be on its way
        clock.advance(1)
        await ping(engine, "extract", Kind.START)  # the next round
        started_at = clock.now()
        tick(engine, clock, 1, 10)  # the window passes: the success is applied
        assert engine.checks["transform"].state.step_due == started_at + 600
        tick(engine, clock, 60, 11)
        assert engine.checks["transform"].state.reason is Reason.STEP_MISSED
    [(name, event, facts)] = alerts(config)
    assert (name, event, facts["reason"]) == ("transform", "down", "step_missed")


async def test_a_folded_step_that_still_does_not_run_once_its_upstream_recovered_is_told_within_its_window(
    config: Config,
) -> None:
    # extract fails, transform misses its window: folded into extract's alert. extract's retry
    # succeeds (arming transform, as a start), but transform never runs: told 10 min later.
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(30)
        await ping(engine, "extract", Kind.FAIL)
        clock.advance(600)
        engine.fire_due(clock.now())
        assert engine.checks["transform"].state.folded
        clock.advance(60)
        await ping(engine, "extract", Kind.SUCCESS)
        recovered_at = clock.now()
        clock.advance(599)
        engine.fire_due(clock.now())
        assert [(n, e) for n, e, _ in alerts(config)] == [("extract", "down"), ("extract", "recovery")]
        tick(engine, clock, 3600, 6)  # six hours pass; transform never runs
        transform = engine.checks["transform"].state
        assert (transform.status, transform.reason, transform.folded) == (Status.DOWN, Reason.STEP_MISSED, False)
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)  # told down, so its recovery is told too
    told = alerts(config)
    assert [(n, e) for n, e, _ in told] == [
        ("extract", "down"),
        ("extract", "recovery"),
        ("transform", "down"),
        ("transform", "recovery"),
    ]
    facts = told[2][2]
    assert (facts["reason"], facts["at"], facts["due_at"]) == ("step_missed", recovered_at + 600, recovered_at + 600)
    assert facts["detail"] == "no success within 10 min of extract's start"


async def test_a_folded_step_armed_again_while_its_upstream_is_still_down_stays_folded(config: Config) -> None:
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        await ping(engine, "extract", Kind.FAIL)
        clock.advance(600)
        engine.fire_due(clock.now())
        clock.advance(60)
        await ping(engine, "extract", Kind.START)  # the retry: arms transform; extract is still down
        assert engine.checks["transform"].state.step_due == clock.now() + 600
        clock.advance(600)
        engine.fire_due(clock.now())  # transform misses again, folded again
        transform = engine.checks["transform"].state
        assert (transform.status, transform.folded, transform.step_due) == (Status.DOWN, True, None)
    assert [(n, e) for n, e, _ in alerts(config)] == [("extract", "down")]
    details = [r[0] for r in query(config, "SELECT detail FROM flips WHERE new = 'down' ORDER BY id")]
    assert details[-1] == "no success within 10 min of extract's start (folded into the alert of upstream step extract)"


async def test_a_folded_step_whose_window_passed_while_its_upstream_was_down_is_told_when_the_upstream_recovers(
    config: Config,
) -> None:
    # The retry's start arms transform; its window passes while extract (still down) runs; extract
    # then succeeds, closing that run (no new start): transform's miss is its own, told at once.
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        await ping(engine, "extract", Kind.FAIL)
        clock.advance(600)
        engine.fire_due(clock.now())
        clock.advance(60)
        await ping(engine, "extract", Kind.START)
        clock.advance(900)
        engine.fire_due(clock.now())
        await ping(engine, "extract", Kind.SUCCESS)
        recovered_at = clock.now()
        engine.fire_due(clock.now())
        transform = engine.checks["transform"].state
        assert (transform.status, transform.folded) == (Status.DOWN, False)
    told = alerts(config)
    assert [(n, e) for n, e, _ in told] == [("extract", "down"), ("extract", "recovery"), ("transform", "down")]
    facts = told[2][2]
    assert (facts["reason"], facts["at"]) == ("step_missed", recovered_at)
    words = "no success within 10 min of extract's start, and none by the time the steps above it were up again"
    assert facts["detail"] == words


async def test_an_armed_step_survives_a_crash_right_after_its_upstream_started(config: Config) -> None:
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "extract", Kind.START)  # a flip: extract's checkpoint includes this ping
        armed_until = engine.checks["transform"].state.step_due
    clock.advance(5)
    async with running(config, clock) as engine:
        assert engine.checks["transform"].state.step_due == armed_until


async def test_a_reload_that_changes_an_armed_steps_within_moves_its_deadline_with_it(
    write_config: ConfigWriter,
) -> None:
    keys = {"k1": new_key(), "k2": new_key(), "k3": new_key()}
    config = write_config(PIPELINE.format(**keys))
    clock = FakeClock()
    async with running(config, clock) as engine:
        started = clock.now()
        await ping(engine, "extract", Kind.START)
        clock.advance(60)
        await engine.apply_config(write_config(PIPELINE.format(**keys).replace('within = "10m"', 'within = "20m"')))
        assert engine.checks["transform"].state.step_due == started + 1200
        assert engine.fire_due(started + 600) == 0  # not the old 10 minutes: a false alarm
        assert engine.fire_due(started + 1200) == 1
        clock.advance(1200)
        await ping(engine, "transform", Kind.SUCCESS)
        await ping(engine, "extract", Kind.START)  # armed again, made shorter: judged at the reload, not before
        clock.advance(120)
        await engine.apply_config(write_config(PIPELINE.format(**keys).replace('within = "10m"', 'within = "1m"')))
        assert engine.checks["transform"].state.step_due == clock.now()
        assert engine.fire_due(clock.now()) == 1
    downs = [facts for name, event, facts in alerts(config) if name == "transform" and event == "down"]
    assert [facts["detail"] for facts in downs] == [
        "no success within 20 min of extract's start",
        "no success within 1 min of extract's start",
    ]
    assert [facts["at"] for facts in downs] == [started + 1200, clock.now()]


async def test_a_restart_after_an_edit_of_an_armed_steps_within_counts_the_new_within(
    write_config: ConfigWriter,
) -> None:
    keys = {"k1": new_key(), "k2": new_key(), "k3": new_key()}
    config = write_config(PIPELINE.format(**keys))
    clock = FakeClock()
    async with running(config, clock) as engine:
        started = clock.now()
        await ping(engine, "extract", Kind.START)
    clock.advance(60)
    edited = write_config(PIPELINE.format(**keys).replace('within = "10m"', 'within = "20m"'))
    async with running(edited, clock) as engine:
        state = engine.checks["transform"].state
        assert state.step_due == started + 1200
        assert engine.fire_due(started + 600 + state.slack) == 0


async def test_a_reload_that_changes_what_a_step_follows_disarms_what_the_old_upstream_armed(
    write_config: ConfigWriter,
) -> None:
    keys = {"k1": new_key(), "k2": new_key(), "k3": new_key()}
    config = write_config(PIPELINE.format(**keys))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(60)
        edited = PIPELINE.format(**keys).replace('after = "extract"\n', 'after = "extract.success"\n')
        await engine.apply_config(write_config(edited))
        assert engine.checks["transform"].state.step_due is None  # extract has not succeeded
        assert engine.fire_due(clock.now() + 600) == 0
        await ping(engine, "extract", Kind.SUCCESS)
        assert engine.checks["transform"].state.step_due == clock.now() + 600
    assert alerts(config) == []


async def test_a_success_without_a_start_arms_the_step_after_a_success_waiting_out_the_reorder_window(
    write_config: ConfigWriter,
) -> None:
    # min_runtime: extract's success waits for a start that may be on its way; the next success,
    # without a start, is a run of its own, and arms transform as a start would.
    config = write_config(
        f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\nmin_runtime = "1s"\n'
        f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(1)
        await ping(engine, "transform", Kind.SUCCESS)  # its step done
        clock.advance(9)
        await ping(engine, "extract", Kind.SUCCESS)
        assert engine.checks["extract"].state.waiting and engine.checks["transform"].state.step_due is None
        clock.advance(2)
        await ping(engine, "extract", Kind.SUCCESS)
        assert engine.checks["transform"].state.step_due == clock.now() + 600


async def test_a_spooled_success_after_its_runs_overrun_arms_no_step(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\nmax_runtime = "10m"\n'
        f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "1h"\n'
    )
    clock = FakeClock()
    now = clock.now()
    async with running(config, clock) as engine:
        extract = engine.checks["extract"]
        await engine.record(extract, PingRecord(Event(Kind.START, now - 1800), received_at=now))  # arms transform
        clock.advance(1)
        await ping(engine, "transform", Kind.SUCCESS)  # its step done
        clock.advance(1)
        # The run's end, spooled: its overrun is caught up first, and this success ends that run.
        await engine.record(extract, PingRecord(Event(Kind.SUCCESS, now - 600), received_at=clock.now()))
        assert engine.checks["transform"].state.step_due is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[checks.a]\nkey = "{k}"\nafter = "nope"\nwithin = "1h"\n', 'checks.a.after: no check "nope"'),
        (
            # a join (a diamond's bottom): not supported, and refused saying so, not "expected a string"
            '[checks.a]\nkey = "{k}"\nafter = ["b", "b"]\nwithin = "1h"\n[checks.b]\nkey = "{k2}"\nevery = "1h"\n',
            'checks.a.after: expected one check (as "extract" or "extract.success"), got an array: a step'
            " follows one upstream; a step after several (a join) is not supported",
        ),
        (
            # "nightly.start" is read as nightly's start: the check of that name is not "nope"
            '[checks."nightly.start"]\nkey = "{k}"\nevery = "1d"\n'
            '[checks.a]\nkey = "{k2}"\nafter = "nightly.start"\nwithin = "1h"\n',
            'checks.a.after: no check "nightly" ("nightly.start" is a check, but a name ending in .start or'
            ' .success names an event of the check before it: write "nightly.start.start" or'
            ' "nightly.start.success")',
        ),
        (
            '[checks.a]\nkey = "{k}"\nafter = "b"\nwithin = "1h"\n'
            '[checks.b]\nkey = "{k2}"\nafter = "a"\nwithin = "1h"\n',
            "pipeline steps form a cycle: a -> b -> a",
        ),
        (
            '[checks.a]\nkey = "{k}"\nafter = "b"\n[checks.b]\nkey = "{k2}"\nevery = "1h"\n',
            '"after" and "within" go together',
        ),
        (
            '[checks.a]\nkey = "{k}"\nevery = "1h"\nafter = "b"\nwithin = "1h"\n'
            '[checks.b]\nkey = "{k2}"\nevery = "1h"\n',
            'needs exactly one of "every", "cron" and "after"',
        ),
        (
            '[checks.a]\nkey = "{k}"\nevery = "1h"\nexpect = 3\nmembers = ["x", "y"]\n',
            "checks.a.expect: is 3 but members lists 2",
        ),
        ('[checks.a]\nkey = "{k}"\nevery = "1h"\nmembers = ["x", "x"]\n', "checks.a.members: lists a member twice"),
        ('[checks.a]\nkey = "{k}"\nevery = "1h"\nassert = ["rows >> 0"]\n', "checks.a.assert:"),
        (
            '[checks.a]\nkey = "{k}"\nevery = "1h"\nfailures_before_alert = 0\n',
            "checks.a.failures_before_alert: must be positive",
        ),
        ('[checks.a]\nkey = "{k}"\nevery = "1h"\nstall = "0s"\n', "checks.a.stall: must be at least 1s"),
        (
            '[defaults]\ngrace = "0s"\n[checks.a]\nkey = "{k}"\nevery = "1h"\nexpect = 3\n',
            "checks.a.expect: a fan-in batch without max_runtime must complete within grace, which is 0s here",
        ),
    ],
)
def test_bad_pipeline_fan_in_and_assertion_settings_are_config_errors(
    write_config: ConfigWriter, body: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        write_config(body.format(k=new_key(), k2=new_key()))
    assert any(problem in p for p in info.value.problems), info.value.problems


class _CountedEdges(dict[str, str]):
    """Step -> upstream edges that count how often a step's upstream is looked up."""

    lookups = 0

    def __getitem__(self, name: str) -> str:
        self.lookups += 1
        return super().__getitem__(name)


def test_the_cycle_check_of_a_long_pipeline_walks_each_step_once() -> None:
    # Each step walked up to the root from again, with a list searched at each: a pipeline of
    # 1,000 steps took seconds to load (and to reload, and check-config), 2,000 took 15 s.
    steps = [f"s{i}" for i in range(500)]
    chain = _CountedEdges(zip(steps[1:], steps, strict=False))
    assert find_cycle(chain) is None
    assert chain.lookups <= len(steps)
    looped = _CountedEdges({**chain, "s0": "s499"})  # the root made a step of the last: one cycle around all
    assert find_cycle(looped) == ["s1", "s0", *reversed(steps[2:]), "s1"]
    assert looped.lookups <= 2 * len(steps)
    tail = {"x": "s3", "s3": "s2", "s2": "s1", "s1": "s3"}  # a step that leads into a cycle: the cycle
    assert find_cycle(tail) == ["s3", "s2", "s1", "s3"]


def test_a_fan_in_check_with_grace_0s_and_a_max_runtime_completes_its_batch_within_max_runtime(
    write_config: ConfigWriter,
) -> None:
    from heartfly.core.states import advance, initial_state, receive

    config = write_config(f'[checks.shards]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "0s"\nexpect = 3\n'
                          'max_runtime = "10m"\n')  # fmt: skip
    cfg, t0 = config.checks["shards"], 1_780_000_000.0
    st = initial_state(cfg, t0)
    for i, worker in enumerate(("w1", "w2", "w3")):
        at = t0 + 60 + 120 * i
        st = advance(cfg, st, at).state
        st = receive(cfg, st, Event(Kind.SUCCESS, at, "b1", member=worker), at)[-1].state
        assert st.status is (Status.UP if worker == "w3" else Status.RUNNING), (worker, st.reason)


def test_members_set_expect_and_steps_describe_their_schedule(write_config: ConfigWriter) -> None:
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key())
                          + f'[checks.batch]\nkey = "{new_key()}"\ncron = "0 * * * *"\nmembers = ["a", "b"]\n'
                          '[checks.batch2]\nkey = "' + new_key() + '"\nevery = "1h"\nchannels = []\n')  # fmt: skip
    assert config.checks["batch"].expect == 2
    assert config.checks["load"].schedule_words() == "within 5 min of transform's success"


def test_a_step_shows_no_due_time_of_its_own_in_summaries_and_check_config(write_config: ConfigWriter) -> None:
    from heartfly.cli.report import describe_checks
    from heartfly.core.states import arm_step, initial_state
    from heartfly.core.views import check_summary

    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    step = config.checks["transform"]
    st = initial_state(step, 1_780_000_000.0)
    assert check_summary(step, st)["due_at"] is None and check_summary(step, st)["next_deadline_at"] is None
    armed = check_summary(step, arm_step(step, st, 1_780_000_000.0))
    assert armed["step_due_at"] == armed["next_deadline_at"] == "2026-05-28T20:36:40.000Z"
    assert "transform: within 10 min of extract's start" in describe_checks(config, 1_780_000_000.0)


def test_a_steps_due_time_shown_after_a_restart_is_the_one_its_downtime_extended(write_config: ConfigWriter) -> None:
    # Armed at t0 for 10 min, Heartfly stopped at +5 min and back at +30 min: the step has till
    # +35 min, as its due_at would; shown as +10 min, it looked overdue while nothing was wrong.
    from heartfly.core.states import account_downtime, arm_step, initial_state
    from heartfly.core.views import check_summary
    from heartfly.web.dashboard import _due

    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    step, t0 = config.checks["transform"], 1_780_000_000.0
    st = account_downtime(step, arm_step(step, initial_state(step, t0), t0), t0 + 300, t0 + 1800)
    shown = check_summary(step, st)
    assert shown["step_due_at"] == shown["next_deadline_at"] == "2026-05-28T21:01:40.000Z"  # t0 + 35 min
    assert _due(Check(1, step, st)) == t0 + 2100
