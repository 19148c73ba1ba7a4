"""Pipeline steps on the paths other than a live ping in order: an upstream back up by a held
success the timer judged, a grandparent's recovery, a pause or a restart that judges a held
success, a fan-in batch completed by a late member. A real engine with a fake clock."""

from __future__ import annotations

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.states import Event, Kind, Reason, Status
from heartfly.server.engine import Engine, PingRecord
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_pipelines import HOOK, PIPELINE, alerts, export_then_publish, ping, tick
from tests.test_restart import running

pytestmark = pytest.mark.both_stores


def chain3(extra_a: str = "") -> str:
    return (
        HOOK
        + f'[checks.a]\nkey = "{new_key()}"\nevery = "1d"\n{extra_a}'
        + f'[checks.b]\nkey = "{new_key()}"\nafter = "a"\nwithin = "1h"\n'
        + f'[checks.c]\nkey = "{new_key()}"\nafter = "b.success"\nwithin = "10m"\n'
    )


async def folded_c(engine: Engine, clock: FakeClock) -> None:
    """On chain3: a starts (arms b), b succeeds (arms c), a fails: c misses its 10 min, folded into
    a's alert (b is up)."""
    await ping(engine, "a", Kind.START)
    clock.advance(60)
    await ping(engine, "b", Kind.SUCCESS)
    clock.advance(60)
    await ping(engine, "a", Kind.FAIL)
    clock.advance(600)
    engine.fire_due(clock.now())


async def folded_transform(engine: Engine, clock: FakeClock) -> None:
    """extract fails, and transform's missed window is folded into extract's alert."""
    await ping(engine, "extract", Kind.START)
    clock.advance(30)
    await ping(engine, "extract", Kind.FAIL)
    clock.advance(600)
    engine.fire_due(clock.now())
    assert engine.checks["transform"].state.folded


async def test_a_grandchild_folded_into_a_down_grandparent_is_told_once_that_grandparent_is_up_again(
    write_config: ConfigWriter,
) -> None:
    # c folded into a's alert (folded_c); a's rerun succeeds; c never runs.
    config = write_config(chain3())
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_c(engine, clock)
        assert engine.checks["c"].state.folded
        clock.advance(60)
        await ping(engine, "a", Kind.SUCCESS)  # a is up again (and b armed, b is up)
        tick(engine, clock, 60, 30)  # half an hour: b's window is still open, c's passed long ago
        assert engine.checks["b"].state.status is Status.UP
    # A direct step in c's place is told at once (arm_folded); c stays folded, with no timer.
    assert ("c", "down") in [(n, e) for n, e, _ in alerts(config)]


async def test_a_folded_step_whose_upstream_recovers_by_a_held_success_is_told(write_config: ConfigWriter) -> None:
    # test_a_folded_step_whose_window_passed_while_its_upstream_was_down_is_told_when_the_upstream_recovers,
    # with min_runtime on extract: its recovering success waits out the reorder window.
    config = write_config(
        HOOK
        + f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\nmin_runtime = "1s"\n'
        + f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        clock.advance(10)
        await ping(engine, "extract", Kind.FAIL)
        clock.advance(600)
        engine.fire_due(clock.now())
        clock.advance(60)
        await ping(engine, "extract", Kind.START)
        clock.advance(900)
        engine.fire_due(clock.now())
        await ping(engine, "extract", Kind.SUCCESS)
        assert engine.checks["extract"].state.waiting
        tick(engine, clock, 1, 60)
        assert engine.checks["extract"].state.status is Status.UP
    assert [(n, e) for n, e, _ in alerts(config)] == [
        ("extract", "down"),
        ("extract", "recovery"),
        ("transform", "down"),
    ]


async def test_a_held_success_judged_at_a_pause_arms_the_step_after_its_success(write_config: ConfigWriter) -> None:
    config = write_config(export_then_publish())
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "export", Kind.START)
        clock.advance(120)
        await ping(engine, "export", Kind.SUCCESS)
        succeeded_at = clock.now()
        clock.advance(1)
        await engine.pause(engine.checks["export"])  # applies the held success first
        assert engine.checks["export"].state.last_success_at == succeeded_at
        assert engine.checks["publish"].state.step_due == succeeded_at + 600


async def test_a_held_success_the_server_died_holding_arms_the_step_after_its_success_at_the_restart(
    write_config: ConfigWriter,
) -> None:
    config = write_config(export_then_publish())
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "export", Kind.START)
        clock.advance(120)
        await ping(engine, "export", Kind.SUCCESS)
        succeeded_at = clock.now()
        engine.checkpoint()
    clock.advance(30)  # back after the reorder window
    async with running(config, clock) as engine:
        engine.fire_due(clock.now())
        assert engine.checks["export"].state.last_success_at == succeeded_at
        tick(engine, clock, 600, 4)
        assert engine.checks["publish"].state.reason is Reason.STEP_MISSED  # publish never ran


async def test_a_fan_in_batch_completed_by_a_late_member_arms_its_step_as_of_the_batchs_completion(
    write_config: ConfigWriter,
) -> None:
    # w3 succeeded first but its ping was spooled; w1 and w2 report live, 10 and 20 min in; w3's
    # replayed ping completes the batch. load succeeds 5 min after that: within its 10 min.
    config = write_config(
        HOOK
        + f'[checks.shards]\nkey = "{new_key()}"\nevery = "1d"\nexpect = 3\nmax_runtime = "1h"\n'
        + f'[checks.load]\nkey = "{new_key()}"\nafter = "shards.success"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        t0 = clock.now()
        for worker in ("w1", "w2"):
            clock.advance(600)
            await ping(engine, "shards", Kind.SUCCESS, "b1", member=worker)
        clock.advance(60)
        now = clock.now()
        shards = engine.checks["shards"]
        await engine.record(shards, PingRecord(Event(Kind.SUCCESS, t0 + 60, "b1", member="w3"), received_at=now))
        assert shards.state.status is Status.UP
        tick(engine, clock, 10, 30)
        await ping(engine, "load", Kind.SUCCESS)
        assert engine.checks["load"].state.status is Status.UP
    assert alerts(config) == []


async def test_a_held_success_its_start_shows_too_fast_disarms_its_step(write_config: ConfigWriter) -> None:
    # export's success (run r1) comes before its start's ping; the start, 1 s later, shows a 10 s
    # run: too fast (min_runtime 1m), a failure (the first of two before an alert). publish, after
    # export.success, must not be armed by it: it never runs, and nobody must be told it did not.
    config = write_config(export_then_publish("failures_before_alert = 2\n"))
    clock = FakeClock()
    async with running(config, clock) as engine:
        export = engine.checks["export"]
        t0 = clock.now()
        clock.advance(10)
        await ping(engine, "export", Kind.SUCCESS, "r1")
        assert export.state.waiting
        clock.advance(1)
        await engine.record(export, PingRecord(Event(Kind.START, t0, "r1"), received_at=clock.now()))
        tick(engine, clock, 1, 5)  # failures before it may still be on their way: its window, whatever its start
        assert not export.state.waiting
        assert export.state.last_success_at is None  # judged too fast
        tick(engine, clock, 60, 15)
    assert [(n, e) for n, e, _ in alerts(config)] == []


async def test_a_step_that_ran_after_a_held_success_is_not_armed_again_when_its_start_comes(
    write_config: ConfigWriter,
) -> None:
    # export's success (run r1, 2 min long) comes before its start's ping; publish runs at once
    # after it; then r1's start arrives and the success is judged one. publish ran: no alert.
    config = write_config(export_then_publish())
    clock = FakeClock()
    async with running(config, clock) as engine:
        export = engine.checks["export"]
        t0 = clock.now()
        clock.advance(120)
        await ping(engine, "export", Kind.SUCCESS, "r1")
        assert export.state.waiting
        clock.advance(1)
        await ping(engine, "publish", Kind.SUCCESS)
        assert engine.checks["publish"].state.step_due is None
        clock.advance(1)
        await engine.record(export, PingRecord(Event(Kind.START, t0, "r1"), received_at=clock.now()))
        assert export.state.last_success_at == t0 + 120  # judged a success now
        tick(engine, clock, 60, 15)
    assert [(n, e) for n, e, _ in alerts(config)] == []


async def test_resuming_a_step_never_down_records_no_second_folded_down_below_it(write_config: ConfigWriter) -> None:
    config = write_config(chain3())
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_c(engine, clock)
        assert engine.checks["c"].state.folded  # into a's alert
        await engine.pause(engine.checks["b"])
        clock.advance(60)
        await engine.resume(engine.checks["b"])  # b was up; a is still down
        tick(engine, clock, 10, 3)
    sql = "SELECT f.detail FROM flips f JOIN checks c ON c.id = f.check_id WHERE c.name = 'c'"
    assert len(query(config, sql)) == 1, query(config, sql)


async def test_a_folded_step_paused_and_resumed_has_its_next_down_and_recovery_both_told(
    write_config: ConfigWriter,
) -> None:
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)  # transform's miss folded into extract's down alert
        await engine.pause(engine.checks["transform"])
        clock.advance(60)
        await engine.resume(engine.checks["transform"])
        await ping(engine, "extract", Kind.SUCCESS)  # extract recovers
        clock.advance(60)
        await ping(engine, "transform", Kind.FAIL)  # transform's own failure: told
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)  # and its recovery, to those told it was down
    told = [(name, event) for name, event, _ in alerts(config) if name == "transform"]
    # The fold went with the down it folded: left set after the resume, it swallowed this recovery.
    assert told == [("transform", "down"), ("transform", "recovery")]


@pytest.mark.parametrize("applied_by", ["the timer", "a later ping"])
async def test_a_fan_ins_success_held_behind_a_held_deadline_arms_its_step_once_applied(
    write_config: ConfigWriter, applied_by: str
) -> None:
    # A late worker's ping holds the missed deadline for the window; the live success that
    # completes the batch is held behind it, and arms `load` when it is applied.
    config = write_config(
        HOOK
        + f'[checks.shards]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "0s"\nexpect = 2\nmax_runtime = "30m"\n'
        + f'[checks.load]\nkey = "{new_key()}"\nafter = "shards.success"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        shards, load = engine.checks["shards"], engine.checks["load"]
        await ping(engine, "shards", Kind.SUCCESS, "b0", member="w1")
        await ping(engine, "shards", Kind.SUCCESS, "b0", member="w2")
        await ping(engine, "load", Kind.SUCCESS)
        t0 = clock.now()
        clock.advance(3602)
        late = Event(Kind.SUCCESS, t0 + 3599, "b1", member="w1")
        await engine.record(shards, PingRecord(late, received_at=clock.now()))
        clock.advance(0.5)
        await ping(engine, "shards", Kind.SUCCESS, "b1", member="w2")
        assert shards.state.waiting
        if applied_by == "a later ping":
            clock.advance(6)
            await ping(engine, "shards", Kind.LOG)
        tick(engine, clock, 3, 3)
        assert not shards.state.waiting and load.state.step_due is not None, "load never armed: silent"
        tick(engine, clock, 60, 15)
    assert ("load", "down") in [(n, e) for n, e, _ in alerts(config)]


async def test_a_folded_steps_own_failure_once_its_upstream_recovered_is_told_as_a_failure_at_once(
    write_config: ConfigWriter,
) -> None:
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        clock.advance(60)
        await ping(engine, "extract", Kind.SUCCESS)  # extract is up again, and arms transform
        clock.advance(60)
        await ping(engine, "transform", Kind.FAIL)  # transform ran, and failed: news of its own
        clock.advance(1)
        engine.fire_due(clock.now())
        clock.advance(600)
        engine.fire_due(clock.now())
    told = [(n, e, f["reason"], f["detail"]) for n, e, f in alerts(config) if n == "transform"]
    assert told == [("transform", "down", "failed", "failed")]


async def test_a_folded_steps_own_failure_while_its_upstream_is_still_down_is_told_too(
    write_config: ConfigWriter,
) -> None:
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        await ping(engine, "transform", Kind.FAIL)  # its own failure, its upstream still down
    told = [(n, e, f["reason"]) for n, e, f in alerts(config) if n == "transform"]
    assert told == [("transform", "down", "failed")]  # a failure is told, folded or not (docs/jobs.md)


async def test_a_folded_steps_failure_short_of_failures_before_alert_then_its_retry_tells_nothing(
    write_config: ConfigWriter,
) -> None:
    retries = PIPELINE.replace('within = "10m"\n', 'within = "10m"\nfailures_before_alert = 3\n', 1)
    config = write_config(retries.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        await ping(engine, "transform", Kind.FAIL)  # 1 of 3, its upstream still down
        clock.advance(60)
        await ping(engine, "extract", Kind.SUCCESS)  # up again, arms transform
        clock.advance(60)
        await ping(engine, "transform", Kind.FAIL)  # 2 of 3: a retry follows
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)  # the retry, within its window
        clock.advance(1200)
        engine.fire_due(clock.now())
    assert [(n, e) for n, e, _ in alerts(config) if n == "transform"] == []


async def test_a_folded_step_told_down_by_its_own_failure_recovers_once_with_its_whole_down_time(
    write_config: ConfigWriter,
) -> None:
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        clock.advance(3600)
        await ping(engine, "transform", Kind.FAIL)
        clock.advance(60)
        await ping(engine, "transform", Kind.FAIL)  # still down: not told again
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)
    told = [(e, f["reason"], f["down_for"]) for n, e, f in alerts(config) if n == "transform"]
    assert [(e, reason) for e, reason, _ in told] == [("down", "failed"), ("recovery", None)]
    assert float(str(told[-1][2])) >= 3720  # down since its folded miss, not since its failure


async def test_a_spooled_upstream_run_replayed_as_a_batch_leaves_its_step_the_reorder_window_for_its_own_replay(
    write_config: ConfigWriter,
) -> None:
    # `heartfly run` replays a spool as a batch: transform's own spooled success comes right behind
    # extract's batch, and must find transform not down yet (a batch judges only its own check at once).
    pipeline = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    async with running(pipeline, clock) as engine:
        clock.advance(3600)
        t = clock.now()
        spool = [Event(Kind.START, t - 1800, "r1"), Event(Kind.SUCCESS, t - 1500, "r1")]
        done, _ = engine.record_batch(engine.checks["extract"], [PingRecord(e, received_at=t) for e in spool])
        await done
        assert engine.checks["transform"].state.status is Status.NEW  # its deadline, t - 1200, waits
        clock.advance(1)
        engine.fire_due(clock.now())
        done, _ = engine.record_batch(
            engine.checks["transform"], [PingRecord(Event(Kind.SUCCESS, t - 1600), clock.now())]
        )
        await done
        tick(engine, clock, 1, 10)
        after = engine.checks["transform"].state
        assert after.status is Status.UP
    assert [(name, event) for name, event, _ in alerts(pipeline) if name == "transform"] == []


async def test_a_folded_steps_own_miss_is_told_when_its_own_run_ends_at_its_limit_in_the_same_firing(
    write_config: ConfigWriter,
) -> None:
    # transform is folded into extract's alert; an operator runs it, and it hangs. extract's spooled
    # success, replayed, brings it up: it arms transform with a deadline past already, held for the
    # reorder window, during which transform's run reaches max_runtime. Both are judged in one firing: the
    # run's end (down already) is recorded and tells nothing, but transform's own miss must be told.
    config = write_config(
        HOOK
        + f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
        + f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\nmax_runtime = "30m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        await ping(engine, "transform", Kind.START, "r")
        clock.advance(1800 - 2)  # its limit is 2 s away
        t = clock.now()
        await engine.record(engine.checks["extract"], PingRecord(Event(Kind.SUCCESS, t - 700), received_at=t))
        assert engine.checks["extract"].state.status is Status.UP
        assert engine.checks["transform"].state.step_due == t - 100  # past: waits out the window
        tick(engine, clock, 1, 10)
        state = engine.checks["transform"].state
        assert (state.status, state.reason, state.folded, state.runs) == (Status.DOWN, Reason.STEP_MISSED, False, {})
    told = [(e, f["reason"]) for n, e, f in alerts(config) if n == "transform"]
    assert told == [("down", "step_missed")]


async def test_a_folded_steps_own_run_that_overruns_is_told_as_its_own_failure_is(write_config: ConfigWriter) -> None:
    # transform is folded into extract's alert; run by hand, it hangs. Its overrun is its own news
    # (as its failure would be, test_a_folded_step_told_down_by_its_own_failure_recovers_once_with_its),
    # not the down extract's alert already told: told, and its recovery after it.
    config = write_config(
        HOOK
        + f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
        + f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "10m"\nmax_runtime = "30m"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await folded_transform(engine, clock)
        await ping(engine, "transform", Kind.START, "r")
        tick(engine, clock, 60, 31)
        state = engine.checks["transform"].state
        assert (state.status, state.reason, state.folded, state.runs) == (Status.DOWN, Reason.OVERRUN, False, {})
        await ping(engine, "transform", Kind.SUCCESS, "r2")
    told = [(e, f["reason"]) for n, e, f in alerts(config) if n == "transform"]
    assert told == [("down", "overrun"), ("recovery", None)]


async def test_a_restart_after_an_edit_of_what_an_armed_step_follows_disarms_what_the_old_upstream_armed(
    write_config: ConfigWriter,
) -> None:
    # As a reload does (test_pipelines): the step now follows `other`, which never started; kept
    # armed by extract's start, it would be told down "within 10 min of other's start".
    body = PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()) + f'[checks.other]\nkey = "{new_key()}"\n'
    config = write_config(body + 'every = "1d"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)
        assert engine.checks["transform"].state.step_due == clock.now() + 600
    clock.advance(60)
    edited = write_config(body.replace('after = "extract"\n', 'after = "other.start"\n') + 'every = "1d"\n')
    async with running(edited, clock) as engine:
        assert engine.checks["transform"].state.step_due is None
        assert engine.fire_due(clock.now() + 3600) == 0
        await ping(engine, "other", Kind.START)
        assert engine.checks["transform"].state.step_due == clock.now() + 600
    assert alerts(edited) == []
    clock.advance(60)
    async with running(edited, clock) as engine:  # unedited: armed still, by other's start
        assert engine.checks["transform"].state.step_due == clock.now() - 60 + 600


async def test_an_upstream_start_replayed_after_its_steps_success_arms_nothing(write_config: ConfigWriter) -> None:
    # extract's start met a stopped server and was spooled; transform ran and succeeded 5 min
    # after it, live. The start's replay (its true time) must not take transform down "within 10
    # min of extract's start": in event order transform ran after it.
    config = write_config(PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()))
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock) as engine:
        clock.advance(240)
        await ping(engine, "transform", Kind.START)
        clock.advance(60)
        await ping(engine, "transform", Kind.SUCCESS)
        clock.advance(60)  # replayed within transform's window
        await engine.record(engine.checks["extract"], PingRecord(Event(Kind.START, t0), received_at=clock.now()))
        assert engine.checks["transform"].state.step_due is None
        tick(engine, clock, 60, 60)
        assert engine.checks["transform"].state.status is Status.UP
        await ping(engine, "extract", Kind.START)  # the next run, live: armed as ever
        assert engine.checks["transform"].state.step_due == clock.now() + 600
    assert [(name, event) for name, event, _ in alerts(config) if name == "transform"] == []
