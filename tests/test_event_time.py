"""Late pings tell the truth: spooled and back-dated pings judged on their own times, purely.

`arrive` plays what the engine does: each ping is received (states.receive) when it arrives, and
the timer fires what is due (states.advance), so the reorder window holds exactly as it does in
a running server.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartfly.core.assertions import parse_assertion
from heartfly.core.config import CheckConfig
from heartfly.core.holding import WAITING_MAX
from heartfly.core.states import (
    REORDER_WINDOW,
    CheckState,
    Event,
    Flip,
    Kind,
    Reason,
    RunEnd,
    RunOutcome,
    Status,
    Step,
    advance,
    arm_step,
    fire_time,
    initial_state,
    next_deadline,
    pause,
    receive,
    resume,
    up_then_running,
)
from heartfly.notify import outbox
from tests.conftest import check

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
T0 = 1_780_000_000.0 - 1_780_000_000.0 % DAY  # a midnight, UTC
NOW = T0 + 15 * HOUR + 18 * MINUTE  # when the spool is replayed


class Log:
    """What happened to a check: its state, every flip and every finished run."""

    def __init__(self, cfg: CheckConfig, st: CheckState) -> None:
        self.cfg, self.st = cfg, st
        self.flips: list[Flip] = []
        self.runs: list[RunEnd] = []

    def tick(self, now: float) -> None:
        """The timer: fire whatever is due by `now`."""
        for _ in range(100):
            deadline = next_deadline(self.cfg, self.st)
            if deadline is None or fire_time(self.st, deadline) > now:
                return
            for step in up_then_running(advance(self.cfg, self.st, now)):
                self._take(step)

    def arrive(self, now: float, *events: Event, gap: float = 0.05, batch: bool = False) -> float:
        """Events sent one after another (curl in a loop), `gap` apart from `now` on (`batch`: the
        items of batches, applied with no reorder window)."""
        for ev in events:
            self.tick(now)
            for step in receive(self.cfg, self.st, ev, now, 0.0 if batch else REORDER_WINDOW, batch=batch):
                self._take(step)
            now += gap
        return now

    def _take(self, step: Step) -> None:
        """As the engine records a step: withdrawn changes go, a run row replaced is replaced."""
        self.st = step.state
        if step.flip is not None and step.flip.withdraws is not None:
            gone = [f for f in self.flips if f.at > step.flip.withdraws]
            assert all(f.event is None for f in gone), gone  # a change somebody was told of stays
            self.flips = [f for f in self.flips if f.at <= step.flip.withdraws]
        if step.flip is not None:
            self.flips.append(step.flip)
        for run in step.ended:
            if run.replaces is not None:
                self.runs = [r for r in self.runs if (r.run_id, (r.started_at, r.ended_at)) != (None, run.replaces)]
            self.runs.append(run._replace(replaces=None))

    @property
    def downs(self) -> list[Flip]:
        return [f for f in self.flips if f.is_down]


def job(**kw: Any) -> Log:
    """A check whose schedule counts from just before the replay (nothing of its own comes due
    meanwhile), and whose status last changed long before the replayed history."""
    cfg = check(**kw)
    st = initial_state(cfg, NOW - 1)
    st.changed_at = st.told_at = T0 - 8 * DAY
    return Log(cfg, st)


def ev(kind: Kind, at: float, rid: str | None = None, **kw: object) -> Event:
    return Event(kind, at, rid, **kw)  # type: ignore[arg-type]


def nights(count: int, start: float = 2 * HOUR, end: float = 2 * HOUR + 40 * MINUTE) -> list[Event]:
    """`count` nights before today, oldest first: a start at 02:00 and a success at 02:40."""
    return [
        e
        for n in range(count, 0, -1)
        for e in (ev(Kind.START, T0 - n * DAY + start), ev(Kind.SUCCESS, T0 - n * DAY + end))
    ]


def test_a_spooled_run_within_max_runtime_raises_nothing_and_is_timed_on_its_own_clock() -> None:
    log = job(cron="0 2 * * *", max_runtime=2 * HOUR)
    end = log.arrive(NOW, ev(Kind.START, T0 + 2 * HOUR), ev(Kind.SUCCESS, T0 + 2 * HOUR + 40 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    assert log.downs == [] and log.st.status is Status.UP
    assert [(r.outcome, r.duration) for r in log.runs] == [("success", 40 * MINUTE)]
    assert [(f.new, f.at, f.learned_at) for f in log.flips] == [
        (Status.RUNNING, T0 + 2 * HOUR, NOW),
        (Status.UP, T0 + 2 * HOUR + 40 * MINUTE, NOW + 0.05),
    ]


def test_seven_spooled_nights_sent_one_ping_at_a_time_raise_nothing() -> None:
    log = job(cron="0 2 * * *", grace=30 * MINUTE, max_runtime=2 * HOUR)
    end = log.arrive(NOW, *nights(7))
    log.tick(end + REORDER_WINDOW)
    assert log.downs == [] and log.st.status is Status.UP
    assert [r.outcome for r in log.runs] == ["success"] * 7
    assert max(r.duration for r in log.runs) == 40 * MINUTE


def test_a_spooled_run_that_really_overran_is_reported_once_as_of_its_deadline() -> None:
    log = job(cron="0 2 * * *", max_runtime=2 * HOUR)
    end = log.arrive(NOW, ev(Kind.START, T0 + 2 * HOUR))
    log.tick(NOW + REORDER_WINDOW - 0.01)
    assert log.downs == []  # the window is still open: its end may be right behind it
    log.tick(end + REORDER_WINDOW)
    (down,) = log.downs
    assert (down.reason, down.at, down.learned_at) == (Reason.OVERRUN, T0 + 4 * HOUR, end + REORDER_WINDOW)
    assert down.detail == "still running after 2 h (max_runtime 2 h)"


def test_a_start_whose_end_came_too_late_is_an_overrun_at_its_deadline_then_a_recovery() -> None:
    log = job(cron="0 2 * * *", max_runtime=2 * HOUR)
    end = log.arrive(NOW, ev(Kind.START, T0 + 2 * HOUR), ev(Kind.SUCCESS, T0 + 4 * HOUR + 30 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    (down,) = log.downs
    assert (down.reason, down.at) == (Reason.OVERRUN, T0 + 4 * HOUR)
    assert [r.outcome for r in log.runs] == ["overrun"]
    assert log.flips[-1].is_recovery and log.flips[-1].at == T0 + 4 * HOUR + 30 * MINUTE


def test_spooled_progress_inside_the_stall_limit_is_no_stall() -> None:
    log = job(every=HOUR, stall=10 * MINUTE)
    begin = T0 + 1 * HOUR
    events = [ev(Kind.START, begin)] + [ev(Kind.PROGRESS, begin + m * MINUTE) for m in range(8, 48, 8)]
    end = log.arrive(NOW, *events, ev(Kind.SUCCESS, begin + 45 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    assert log.downs == [] and log.st.status is Status.UP


def test_spooled_progress_with_a_real_gap_is_one_stall_dated_when_the_limit_passed() -> None:
    log = job(every=HOUR, stall=10 * MINUTE)
    begin = T0 + 1 * HOUR
    end = log.arrive(NOW, ev(Kind.START, begin), ev(Kind.PROGRESS, begin + 5 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    (down,) = log.downs
    assert (down.reason, down.at) == (Reason.STALLED, begin + 15 * MINUTE)


def fan_in(members: list[str], at: float) -> list[Event]:
    return [ev(Kind.SUCCESS, at + n, "batch-7", member=m) for n, m in enumerate(members)]


WORKERS = [f"w{n}" for n in range(1, 9)]


def test_a_spooled_fan_in_of_eight_completes_one_run() -> None:
    log = job(every=DAY, expect=8, grace=HOUR)
    end = log.arrive(NOW, *fan_in(WORKERS, T0 + 3 * HOUR))
    log.tick(end + REORDER_WINDOW)
    assert log.downs == [] and log.st.status is Status.UP and log.st.last_members == tuple(WORKERS)
    assert [r.outcome for r in log.runs] == ["success"]


def test_a_spooled_fan_in_that_really_was_short_is_incomplete_once_naming_the_missing_worker() -> None:
    log = job(every=DAY, expect=8, grace=HOUR, members=tuple(WORKERS))
    end = log.arrive(NOW, *fan_in(WORKERS[:7], T0 + 3 * HOUR))
    log.tick(end + REORDER_WINDOW)
    (down,) = log.downs
    assert down.reason is Reason.INCOMPLETE and down.at == T0 + 4 * HOUR
    assert down.detail == "7 of 8 successes arrived; missing: w8"


def test_a_spooled_pipeline_step_that_followed_its_upstream_in_time_is_no_miss() -> None:
    step = check("etl-transform", after="etl-extract", within=HOUR)
    st = initial_state(step, T0 - DAY)
    upstream_done = T0 + 2 * HOUR
    st = arm_step(step, st, upstream_done, NOW)
    assert fire_time(st, next_deadline(step, st)) == NOW + REORDER_WINDOW  # type: ignore[arg-type]
    log = Log(step, st)
    end = log.arrive(NOW + 0.05, ev(Kind.START, upstream_done + 60), ev(Kind.SUCCESS, upstream_done + 20 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    assert log.downs == [] and log.st.step_due is None


def test_a_spooled_pipeline_step_that_never_came_is_missed_as_of_its_window() -> None:
    step = check("etl-transform", after="etl-extract", within=HOUR)
    log = Log(step, arm_step(step, initial_state(step, T0 - DAY), T0 + 2 * HOUR, NOW))
    log.tick(NOW + REORDER_WINDOW + 1)
    (down,) = log.downs
    assert (down.reason, down.at) == (Reason.STEP_MISSED, T0 + 3 * HOUR)


def test_an_end_back_dated_before_the_open_start_does_not_close_it() -> None:
    log = job(every=HOUR, min_runtime=60, max_runtime=HOUR)
    log.arrive(NOW - 6, ev(Kind.FAIL, NOW - 10 * MINUTE, exit_status=1))
    log.tick(NOW - 1)  # min_runtime: it waited for a success dated before it that may be on its way
    assert log.st.reason is Reason.FAILED
    log.arrive(NOW + 1, ev(Kind.START, NOW + 1))
    log.arrive(NOW + 5, ev(Kind.SUCCESS, NOW - 119))  # back-dated two minutes before the start
    log.tick(NOW + 5 + REORDER_WINDOW)  # min_runtime: it waited for a start that may be on its way
    assert log.runs == [] and set(log.st.runs) == {""}  # no run that ended before it began, no too_fast
    assert [(f.new, f.reason) for f in log.flips] == [
        (Status.DOWN, Reason.FAILED),
        (Status.UP, None),
        (Status.RUNNING, None),
    ]
    # The success after the failure is recorded as of its time, learned when its ping came; the
    # start after it, as of its own.
    assert [(f.at, f.learned_at) for f in log.flips[1:]] == [(NOW - 119, NOW + 5), (NOW + 1, None)]


def test_a_reason_does_not_change_while_down_without_a_recorded_change() -> None:
    log = job(every=HOUR, min_runtime=60)
    log.arrive(NOW, ev(Kind.FAIL, NOW))
    log.arrive(NOW + 10, ev(Kind.START, NOW + 10), ev(Kind.SUCCESS, NOW + 20))  # too fast: still down
    assert log.st.status is Status.DOWN and log.st.reason is Reason.FAILED
    assert [f.new for f in log.flips] == [Status.DOWN]


def test_a_real_miss_during_the_outage_is_followed_by_a_recovery_that_says_the_job_did_run() -> None:
    log = job(cron="0 2 * * *", grace=30 * MINUTE)
    log.st.status = Status.UP
    log.st.anchor = log.st.due_since = T0 - DAY + 3 * HOUR
    log.st.due_at = T0 + 2 * HOUR
    log.tick(T0 + 2 * HOUR + 30 * MINUTE)  # the deadline fired while the pings could not arrive
    assert [f.reason for f in log.downs] == [Reason.MISSED]
    end = log.arrive(NOW, ev(Kind.START, T0 + 2 * HOUR + 50), ev(Kind.SUCCESS, T0 + 2 * HOUR + 40 * MINUTE))
    log.tick(end + REORDER_WINDOW)
    recovery = log.flips[-1]
    assert recovery.is_recovery and len(log.downs) == 1
    assert recovery.detail.startswith("the job did run") and recovery.learned_at == end - 0.05
    assert recovery.at == T0 + 2 * HOUR + 40 * MINUTE  # when it ran, after the miss it answers


def test_an_end_older_than_the_newest_end_changes_no_verdict() -> None:
    log = job(every=HOUR)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW))
    log.arrive(NOW + 1, ev(Kind.FAIL, NOW - 30 * MINUTE))
    assert log.st.status is Status.UP and log.downs == []


def test_a_start_older_than_the_newest_end_opens_no_run() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW))
    log.arrive(NOW + 1, ev(Kind.START, NOW - 2))  # a racing start whose success overtook it
    log.tick(NOW + 2 * HOUR)
    assert not log.st.runs and [f.reason for f in log.downs] == [Reason.MISSED]


def test_a_live_end_after_a_held_overrun_still_finds_the_run_overran() -> None:
    log = job(every=DAY, max_runtime=2 * HOUR)
    log.arrive(NOW, ev(Kind.START, NOW - 3 * HOUR))  # replayed: its overrun is held for the window
    log.arrive(NOW + 0.5, ev(Kind.SUCCESS, NOW + 0.5))  # its end, sent live right after
    assert not log.downs  # the end waits behind the held overrun: a ping dated before it may come
    log.tick(NOW + REORDER_WINDOW + 1)
    (down,) = log.downs
    assert (down.reason, down.at) == (Reason.OVERRUN, NOW - HOUR)
    assert [r.outcome for r in log.runs] == ["overrun"] and log.flips[-1].is_recovery


def test_a_start_that_raced_its_own_end_and_lost_is_paired_with_it_within_the_window() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2))  # the end overtook its start (two curls racing)
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3))
    (run,) = log.runs
    assert run.outcome == "success" and run.duration == pytest.approx(2.8)
    assert not log.st.runs and log.st.last_duration == pytest.approx(2.8) and log.st.status is Status.UP


def test_a_start_older_than_an_end_it_arrives_long_after_is_not_paired() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW))
    log.arrive(NOW + REORDER_WINDOW + 1, ev(Kind.START, NOW - 60))
    assert log.runs == [] and not log.st.runs


def test_a_hold_that_is_over_is_cleared_by_the_next_live_ping() -> None:
    log = job(every=HOUR)
    log.arrive(NOW, ev(Kind.LOG, NOW - 60))
    assert log.st.hold_until == NOW + REORDER_WINDOW
    log.arrive(NOW + 10, ev(Kind.SUCCESS, NOW + 10))
    assert (log.st.held_at, log.st.hold_until) == (0.0, 0.0)


def test_a_raced_start_that_shows_the_run_was_too_fast_takes_the_check_down_as_in_event_order() -> None:
    log = job(every=HOUR, min_runtime=60)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2))  # the end overtook its start
    assert log.st.status is Status.NEW and log.flips == []  # it waits out the window for its start
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3))  # back-dated too: the window runs from its arrival
    log.tick(NOW + 0.1 + REORDER_WINDOW - 0.01)
    assert log.downs == []
    log.tick(NOW + 0.1 + REORDER_WINDOW)
    (down,) = log.downs
    assert (down.reason, down.at, down.learned_at) == (Reason.TOO_FAST, NOW - 0.2, None)  # not a late ping
    assert down.detail.startswith("finished after 2.8 s") and [r.outcome for r in log.runs] == ["too_fast"]


def test_a_raced_start_that_shows_a_duration_assertion_broke_takes_the_check_down_as_in_event_order() -> None:
    log = job(every=HOUR, assertions=(parse_assertion("duration < 2s"), parse_assertion("rows > 0")))
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2, metrics={"rows": 5}))  # no start yet: it waits for one
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3))
    log.tick(NOW + 0.1 + REORDER_WINDOW)
    (down,) = log.downs
    assert (down.reason, down.at) == (Reason.ASSERTION, NOW - 0.2)
    assert down.detail == 'assertion "duration < 2s" broke: duration = 2.8 s'
    assert [r.outcome for r in log.runs] == ["assertion"]


def test_a_raced_start_within_a_duration_assertion_leaves_the_check_up() -> None:
    log = job(every=HOUR, assertions=(parse_assertion("duration < 10s"),))
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2))
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3))
    log.tick(NOW + 0.1 + REORDER_WINDOW)
    assert log.downs == [] and log.st.status is Status.UP
    assert [r.outcome for r in log.runs] == ["success"]


def test_a_start_with_a_run_id_that_raced_its_own_end_and_lost_is_paired_and_leaves_no_run_open() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2, "r1"))  # two curls with ?rid=r1, the end first
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3, "r1"))
    (run,) = log.runs
    assert run.run_id == "r1" and run.outcome == "success" and run.duration == pytest.approx(2.8)
    assert not log.st.runs and log.st.status is Status.UP  # no run left to overrun


def test_a_start_with_a_run_id_older_than_its_end_opens_no_run_even_after_the_window() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW, "r1"))
    log.arrive(NOW + REORDER_WINDOW + 1, ev(Kind.START, NOW - 60, "r1"))
    assert log.runs == [] and not log.st.runs


def test_a_run_id_used_again_after_its_end_opens_a_new_run() -> None:
    log = job(every=HOUR, max_runtime=10 * MINUTE)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW, "r1"))  # an end with nothing to close
    log.arrive(NOW + 60, ev(Kind.START, NOW + 60, "r1"))
    assert set(log.st.runs) == {"r1"} and log.st.status is Status.RUNNING


RACING = (Kind.START, Kind.SUCCESS, Kind.FAIL, Kind.PROGRESS)


@st.composite
def racing_pings(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    """Two to four pings stamped within 4 s before NOW (one run's, with or without a run id; or,
    without one, two starts and an end between or after them), and an order in which they arrive."""
    rid = draw(st.sampled_from([None, "r1"]))
    starts = 1 if rid else 2  # a run id names one run: it starts once
    size = draw(st.integers(2, 4))
    kinds = draw(
        st.lists(st.sampled_from(RACING), min_size=size, max_size=size).filter(
            lambda ks: ks.count(Kind.START) <= starts and ks.count(Kind.SUCCESS) + ks.count(Kind.FAIL) <= 1
        )
    )
    tenths = draw(st.lists(st.integers(1, 40), min_size=size, max_size=size, unique=True))
    events = sorted((ev(k, NOW - t / 10, rid) for k, t in zip(kinds, tenths, strict=True)), key=lambda e: e.at)
    return events, draw(st.permutations(range(size)))


Judged = tuple[Status, Reason | None, list[tuple[Status, Reason | None]], list[tuple[str, float, float, str]]]


def judged(log: Log) -> Judged:
    """What a user is told and keeps: the status, the alerts, the runs (after the window and an hour)."""
    log.tick(NOW + 30)
    log.tick(NOW + 2 * HOUR)
    told = [(f.new, f.reason) for f in log.flips if f.event is not None]
    runs = sorted((r.run_id or "", round(r.started_at, 3), round(r.ended_at, 3), str(r.outcome)) for r in log.runs)
    return log.st.status, log.st.reason, told, runs


@pytest.mark.parametrize(
    "rules",
    [
        {"max_runtime": 10 * MINUTE},
        {"max_runtime": 10 * MINUTE, "min_runtime": 1.0},
        {"assertions": (parse_assertion("duration < 1s"),)},
    ],
)
@settings(max_examples=300, deadline=None)
@given(case=racing_pings())
def test_pings_of_one_run_racing_within_the_window_end_as_they_would_in_event_order(
    rules: dict[str, Any], case: tuple[list[Event], list[int]]
) -> None:
    events, order = case
    in_order = job(every=HOUR, **rules)
    for e in events:  # each arrives right when it happens
        in_order.arrive(e.at + 0.01, e)
    raced = job(every=HOUR, **rules)
    for i, j in enumerate(order):  # the same pings, arriving in another order within the window
        raced.arrive(NOW + i * 0.05, events[j])
    assert judged(raced) == judged(in_order)


def test_a_failure_overtaken_by_a_newer_success_is_told_down_then_up_as_in_event_order() -> None:
    in_order, raced = job(every=HOUR), job(every=HOUR)
    for log in (in_order, raced):  # up since the last run, half an hour ago
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
        log.flips.clear()
    fail, success = ev(Kind.FAIL, NOW - 2, exit_status=3), ev(Kind.SUCCESS, NOW - 1)
    in_order.arrive(NOW - 2 + 0.01, fail)
    in_order.arrive(NOW - 1 + 0.01, success)
    raced.arrive(NOW, success, fail)  # the retry's success ping wins the race
    assert raced.st.status is Status.UP and raced.st.changed_at == NOW - 1
    assert judged(raced) == judged(in_order)
    down, up = raced.flips[:2]  # (then, an hour on with no ping, missed)
    assert (down.new, down.reason, down.at, down.detail) == (
        Status.DOWN,
        Reason.FAILED,
        NOW - 2,
        "failed with exit status 3",
    )
    assert (up.old, up.new, up.at) == (Status.DOWN, Status.UP, NOW - 1)
    assert "succeeded 1 s after this failure" in up.detail


def test_a_success_that_arrives_after_a_newer_failure_on_a_down_check_is_told_up_then_down_again() -> None:
    # Down from a failure; the retry succeeded, then failed again a second later, and the second
    # failure's ping won the race. In event order: up as of the success, then down as of the failure.
    events = [ev(Kind.FAIL, NOW - 3.6), ev(Kind.SUCCESS, NOW - 0.9), ev(Kind.FAIL, NOW - 0.2, exit_status=4)]
    raced = raced_as_in_order(events, [0, 2, 1], max_runtime=600.0)
    up, down = raced.flips[2:4]  # after the success half an hour before, and the first failure
    assert (up.old, up.new, up.at) == (Status.DOWN, Status.UP, NOW - 0.9)
    assert "succeeded 700 ms before a newer failure (their pings arrived out of order)" in up.detail
    assert (down.old, down.new, down.reason, down.at) == (Status.UP, Status.DOWN, Reason.FAILED, NOW - 0.2)
    assert down.detail == "failed with exit status 4" and raced.st.last_exit_status == 4
    assert raced.st.status is Status.DOWN and raced.st.changed_at == raced.st.told_at == NOW - 0.2
    assert raced.st.failures == 1


def test_a_success_behind_two_newer_failures_stays_history() -> None:
    # Another end came between it and the newest: the down it would tell is the older failure's,
    # which came and changed nothing (docs/jobs.md): it stays history.
    log = job(every=HOUR, max_runtime=600.0)
    log.arrive(NOW - 3.6, ev(Kind.FAIL, NOW - 3.6))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 0.2), ev(Kind.FAIL, NOW - 1.0), ev(Kind.SUCCESS, NOW - 1.5))
    log.tick(NOW + 30)
    assert log.st.status is Status.DOWN and [(f.new, f.at) for f in log.flips] == [(Status.DOWN, NOW - 3.6)]


@pytest.mark.parametrize(
    ("events", "durations"),
    [
        # The newer failure closed a run of its own (started after the success): the recovery
        # reports no run of the success's.
        ([ev(Kind.START, NOW - 1.0), ev(Kind.FAIL, NOW - 0.2)], (None, 0.8)),
        # The success's run, which the newer failure had closed first: the recovery reports it,
        # the down none.
        ([ev(Kind.START, NOW - 2.0), ev(Kind.FAIL, NOW - 0.2)], (0.5, None)),
    ],
    ids=["failures_run", "successs_run"],
)
def test_the_alerts_of_a_success_outrun_by_a_newer_failure_report_each_its_own_run(
    events: list[Event], durations: tuple[float | None, float | None]
) -> None:
    # Down since a failure; a run starts and fails, and its pings come before the success (at -1.5 s).
    log = job(every=HOUR, max_runtime=600.0)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW - 3.6, ev(Kind.FAIL, NOW - 3.6))
    log.arrive(NOW, *events)
    old = log.st
    steps = receive(log.cfg, old, ev(Kind.SUCCESS, NOW - 1.5), NOW + 0.1)
    assert [(s.flip.old, s.flip.new) for s in steps if s.flip is not None] == [
        (Status.DOWN, Status.UP),
        (Status.UP, Status.DOWN),
    ]
    told = []
    for step in steps:
        assert step.flip is not None
        told.append(outbox.payload(log.cfg, step.flip, old, step.state, flip_id=1, ping_id=1)["duration"])
        old = step.state
    assert tuple(None if d is None else round(d, 3) for d in told) == durations


@pytest.mark.parametrize(
    "rules",
    [{"min_runtime": 1.0}, {"assertions": (parse_assertion("rows > 0"),)}],
    ids=["min_runtime", "assertion"],
)
def test_a_success_behind_a_newer_failure_is_not_told_where_something_else_judges_it(rules: dict[str, Any]) -> None:
    # Its verdict may rest on what has not come (its start) or be judged otherwise (its metrics):
    # an end older than the newest end stays history there, as docs/jobs.md says.
    log = job(every=HOUR, **rules)
    for at in (NOW, NOW + 1):
        log.arrive(at, ev(Kind.FAIL, at))
    log.tick(NOW + 10)
    log.arrive(NOW + 20, ev(Kind.FAIL, NOW + 20))
    log.arrive(NOW + 20.05, ev(Kind.SUCCESS, NOW + 19, metrics={"rows": 1}))
    log.tick(NOW + 30)
    assert log.st.status is Status.DOWN and [f.new for f in log.flips] == [Status.DOWN]


def test_a_failure_overtaken_by_a_retrys_start_and_success_withdraws_their_changes_and_tells_down_then_up() -> None:
    in_order, raced = job(every=HOUR), job(every=HOUR)
    for log in (in_order, raced):
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
        log.flips.clear()
    fail, start, success = ev(Kind.FAIL, NOW - 4), ev(Kind.START, NOW - 3), ev(Kind.SUCCESS, NOW - 1)
    for e in (fail, start, success):
        in_order.arrive(e.at + 0.01, e)
    raced.arrive(NOW - 3, start)  # up -> running, recorded at NOW - 3, alerting nobody
    raced.arrive(NOW, success, fail)  # running -> up; then the failure from before both
    assert [(f.old, f.new, f.at) for f in raced.flips] == [
        (Status.UP, Status.DOWN, NOW - 4),
        (Status.DOWN, Status.UP, NOW - 1),
    ]
    assert [(f.old, f.new, f.at) for f in raced.flips] == [(f.old, f.new, f.at) for f in in_order.flips]
    assert judged(raced) == judged(in_order)


def test_a_failure_overtaken_by_a_success_and_a_newer_start_is_told_down_then_up_then_running() -> None:
    # The retry succeeded, the next run started, and only then came the failure's ping: it was
    # history (told nothing) while the start's running stood.
    events = [ev(Kind.FAIL, NOW - 3.1), ev(Kind.SUCCESS, NOW - 1.5), ev(Kind.START, NOW - 0.7)]
    for order in ([1, 2, 0], [2, 1, 0]):
        raced = raced_as_in_order(events, order)
        assert [(f.old, f.new, f.at) for f in raced.flips if f.at > NOW - 10][:3] == [
            (Status.UP, Status.DOWN, NOW - 3.1),
            (Status.DOWN, Status.UP, NOW - 1.5),
            (Status.UP, Status.RUNNING, NOW - 0.7),
        ]
    # The recovery is the last change told: a failure after it, and before the start, whose ping
    # comes last is dated at its own time as in event order (the running goes).
    events = [ev(Kind.FAIL, NOW - 4), ev(Kind.SUCCESS, NOW - 3), ev(Kind.FAIL, NOW - 2), ev(Kind.START, NOW - 1)]
    in_order, raced = after_a_success_in_order_and_raced(events, [1, 3, 0, 2])
    told = [[(f.old, f.new, f.at) for f in log.flips if f.at > NOW - 10] for log in (raced, in_order)]
    assert (
        told[0]
        == told[1]
        == [
            (Status.UP, Status.DOWN, NOW - 4),
            (Status.DOWN, Status.UP, NOW - 3),
            (Status.UP, Status.DOWN, NOW - 2),
        ]
    )


def after_a_success_in_order_and_raced(events: list[Event], order: list[int], **rules: Any) -> tuple[Log, Log]:
    """Two checks with `rules`, each after a success half an hour ago: one given `events` as they
    happen, the other the same events one after another in `order`, all within the window."""
    in_order, raced = job(every=HOUR, **rules), job(every=HOUR, **rules)
    for log in (in_order, raced):
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    for e in events:
        in_order.arrive(e.at + 0.01, e)
    for i, j in enumerate(order):
        raced.arrive(NOW + i * 0.05, events[j])
    return in_order, raced


def raced_as_in_order(events: list[Event], order: list[int], **rules: Any) -> Log:
    """after_a_success_in_order_and_raced's raced check, once shown to end as the other (judged)."""
    in_order, raced = after_a_success_in_order_and_raced(events, order, **rules)
    assert judged(raced) == judged(in_order)
    return raced


def lists_one_client_sends(ends: int = 2) -> Iterator[list[Event]]:
    """Every list of two to four pings without run ids (start, success, fail, progress; at most
    `ends` ends, and never two starts with no end between them: two runs at once cannot be told
    apart without run ids), stamped within 4 s before NOW, twice each with times drawn (seeded)."""
    rng = random.Random(7)
    for size in (2, 3, 4):
        for kinds in itertools.product(RACING, repeat=size):
            marks = [k for k in kinds if k is not Kind.PROGRESS]
            if len(marks) - marks.count(Kind.START) > ends or any(
                a is b is Kind.START for a, b in itertools.pairwise(marks)
            ):
                continue
            for _ in range(2):
                tenths = sorted(rng.sample(range(1, 41), size), reverse=True)
                yield [ev(k, NOW - t / 10, None) for k, t in zip(kinds, tenths, strict=True)]


@pytest.mark.parametrize(
    "rules",
    [
        {"max_runtime": 10 * MINUTE, "min_runtime": 1.0},
        {"assertions": (parse_assertion("duration < 1s"),)},
        {"min_runtime": 1.0, "failures_before_alert": 2},
    ],
    ids=["min_runtime", "duration", "two_failures"],
)
def test_racing_pings_one_client_sends_tell_as_many_downs_as_event_order_in_every_order(rules: dict[str, Any]) -> None:
    # Their reason or words may differ (docs/jobs.md, "Out of order"), but not whether somebody
    # is told the job failed: no false alarm, no missed one (the missed deadline an hour on aside).
    # bench/reorder_orders.py --sent prints the same orders' other differences.
    differing = []
    for events in lists_one_client_sends():
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), **rules)
            downs = [
                sum(1 for status, reason in judged(log)[2] if status is Status.DOWN and reason is not Reason.MISSED)
                for log in (in_order, raced)
            ]
            if downs[0] != downs[1]:
                differing.append((", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events), order, downs))
    assert differing == []


def shown_duration(log: Log) -> tuple[float | None, float | None]:
    """The last run's duration the dashboard and the API show, and the end that timed it."""
    duration = log.st.last_duration
    return (None if duration is None else round(duration, 3)), log.st.last_duration_at


def test_racing_pings_one_client_sends_to_a_max_runtime_check_end_as_in_event_order_in_every_order() -> None:
    # Nothing waits on such a check: a start that arrives after its own success and after the next
    # run's start and success still pairs with its success (the first end after it), so the runs
    # recorded are event order's too, not only what is told, and so is the last run's duration
    # shown (and reported by the newest change's alert).
    differing = []
    for events in lists_one_client_sends():
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), max_runtime=600.0)
            if (judged(raced), shown_duration(raced)) != (judged(in_order), shown_duration(in_order)):
                differing.append((", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events), order))
    assert differing == []


@pytest.mark.parametrize(
    "rules",
    [{"max_runtime": 10 * MINUTE, "min_runtime": 1.0}, {"assertions": (parse_assertion("duration < 1s"),)}],
    ids=["min_runtime", "duration"],
)
def test_racing_pings_one_client_sends_to_a_check_that_judges_durations_end_as_in_event_order(
    rules: dict[str, Any],
) -> None:
    # Its ends without a run id wait out the reorder window (a start, or a success dated before a
    # failure, may be on its way), and are then applied in event order: what is told, its reason
    # and date, and the runs recorded are event order's. Left to arrival order (docs/jobs.md, "Out
    # of order"): two successes with min_runtime, where the older start's ping came after a newer
    # start's and opened no run.
    differing = []
    for events in lists_one_client_sends():
        if "min_runtime" in rules and [e.kind for e in events].count(Kind.SUCCESS) == 2:
            continue
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), **rules)
            if judged(raced) != judged(in_order):
                differing.append((", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events), order))
    assert differing == []


@pytest.mark.parametrize(
    "rules",
    [{"min_runtime": 60.0}, {"assertions": (parse_assertion("duration < 1h"),)}],
    ids=["min_runtime", "duration"],
)
def test_a_failure_overtaken_on_a_check_that_judges_durations_is_applied_once(rules: dict[str, Any]) -> None:
    # Two runs open; r1's success (its run id names its start: judged at once), then the ping of
    # a failure without a run id dated just before it, which lost the race: its down and the
    # recovery are told at once (reorder.overtaken). Held for the reorder window as well (a
    # success dated before it may be on its way), it was applied a second time once the window
    # passed: a change to up told with its words 20 s on, and the run it closed recorded only then.
    log = job(every=DAY, **rules)
    log.arrive(NOW, ev(Kind.START, NOW, "r1"))
    log.arrive(NOW + 10, ev(Kind.START, NOW + 10, "r2"))
    log.arrive(NOW + 100, ev(Kind.SUCCESS, NOW + 100, "r1"))
    log.arrive(NOW + 100.5, ev(Kind.FAIL, NOW + 99.5, exit_status=1))
    assert not log.st.waiting
    assert [(r.run_id, r.outcome) for r in log.runs] == [("r1", RunOutcome.SUCCESS), (None, RunOutcome.FAIL)]
    down, up = log.flips[-2:]
    assert (down.is_down, down.reason, down.at) == (True, Reason.FAILED, NOW + 99.5)
    assert (up.is_recovery, up.at) == (True, NOW + 100)
    told = list(log.flips)
    log.tick(NOW + 120)
    assert log.flips == told and len(log.runs) == 2


def test_a_start_arriving_after_the_next_runs_start_and_success_pairs_with_its_own_success() -> None:
    # Its success came first and closed nothing; the next run's start and success closed that run.
    # The start, last, is paired with its own success: the run is recorded, and the last run's
    # duration shown stays the newest run's.
    events = [
        ev(Kind.START, NOW - 3.4),
        ev(Kind.SUCCESS, NOW - 2.0),
        ev(Kind.START, NOW - 1.4),
        ev(Kind.SUCCESS, NOW - 1.3),
    ]
    raced = raced_as_in_order(events, [1, 2, 3, 0], max_runtime=600.0)
    assert sorted((r.started_at, r.ended_at, r.outcome) for r in raced.runs) == [
        (NOW - 3.4, NOW - 2.0, "success"),
        (NOW - 1.4, NOW - 1.3, "success"),
    ]
    assert raced.st.last_duration == pytest.approx(0.1, abs=1e-3) and raced.st.last_duration_at == NOW - 1.3


@pytest.mark.parametrize(
    ("events", "order"),
    [
        ([ev(Kind.START, NOW - 3.0), ev(Kind.FAIL, NOW - 2.0), ev(Kind.SUCCESS, NOW - 1.0)], [0, 2, 1]),
        (
            [
                ev(Kind.FAIL, NOW - 3.6),
                ev(Kind.START, NOW - 1.5),
                ev(Kind.SUCCESS, NOW - 0.9),
                ev(Kind.FAIL, NOW - 0.2, exit_status=4),
            ],
            [0, 1, 3, 2],
        ),
    ],
    ids=["failure_overtaken", "success_outrun"],
)
def test_an_older_end_that_takes_over_the_newest_run_takes_over_its_duration_too(
    events: list[Event], order: list[int]
) -> None:
    # The newest end closed the run first; the older end, last, takes it over (event order: the
    # newer end timed no run). The duration shown, and the newest change's alert, are not the
    # newer end's run's, which never was.
    in_order, raced = after_a_success_in_order_and_raced(events, order, max_runtime=600.0)
    for log in (in_order, raced):
        log.tick(NOW + 30)
    assert sorted(r.duration for r in raced.runs) == sorted(r.duration for r in in_order.runs)
    assert (raced.st.last_duration, raced.st.last_duration_at) == (
        in_order.st.last_duration,
        in_order.st.last_duration_at,
    )
    told = [outbox.payload(log.cfg, log.flips[-1], log.st, log.st, flip_id=1, ping_id=1) for log in (in_order, raced)]
    assert told[1]["duration"] == told[0]["duration"] is None


def test_racing_pings_one_client_sends_with_failures_before_alert_end_as_in_event_order_in_every_order() -> None:
    # With failures_before_alert = 2 the failures wait out the reorder window: up to three ends
    # racing, every order ends as event order does, in what is told and in the runs recorded.
    differing = []
    for events in lists_one_client_sends(ends=3):
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), failures_before_alert=2)
            if judged(raced) != judged(in_order):
                differing.append((", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events), order))
    assert differing == []


def test_a_failure_whose_ping_arrives_after_two_later_successes_is_told_down_then_up_again() -> None:
    # A run's start, its failure, then a retry's two successes; the failure's ping came last and
    # the first success's after the second's (an older end: it changed nothing). In event order
    # the check went down at the failure and up at the first success. The change the newest
    # success had recorded (up, from running) kept the failure from being told at all: the check
    # stayed up, silent, where event order told a down (and its recovery).
    log = job(every=HOUR, max_runtime=600.0)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    for i, (kind, at) in enumerate([(Kind.START, -3.2), (Kind.SUCCESS, -0.2), (Kind.SUCCESS, -1.1), (Kind.FAIL, -2.6)]):
        log.arrive(NOW + i * 0.05, ev(kind, NOW + at))
    down, up = log.flips[-2:]
    assert (down.is_down, down.reason, down.at) == (True, Reason.FAILED, NOW - 2.6)
    assert (up.is_recovery, up.at) == (True, NOW - 1.1)
    assert (log.st.status, log.st.changed_at) == (Status.UP, NOW - 1.1)


def test_racing_pings_one_client_sends_to_a_max_runtime_check_never_leave_it_silent_with_three_ends() -> None:
    # Three ends racing may tell a down fewer than event order (a down told is never withdrawn,
    # docs/jobs.md, "Out of order"), but a check is never left with no down told where event
    # order told one (bench/reorder_orders.py --sent --ends 3 prints the max_runtime rows).
    silent = []
    for events in lists_one_client_sends(ends=3):
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), max_runtime=600.0)
            downs = [
                sum(1 for status, reason in judged(log)[2] if status is Status.DOWN and reason is not Reason.MISSED)
                for log in (in_order, raced)
            ]
            if downs[1] == 0 < downs[0]:
                silent.append((", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events), order))
    assert silent == []


def with_run_ids(events: list[Event]) -> list[Event]:
    """`events` as `heartfly run` sends them: a start opens run r0, r1, ...; an end closes the open
    run (else is one of its own); a progress is the open run's (else one of its own)."""
    out: list[Event] = []
    open_rid: str | None = None
    for e in events:
        rid = open_rid
        if rid is None or e.kind is Kind.START:
            rid = f"r{len(out)}"
        if e.kind is Kind.START:
            open_rid = rid
        elif e.kind is not Kind.PROGRESS:
            open_rid = None
        out.append(ev(e.kind, e.at, rid))
    return out


def test_racing_pings_with_run_ids_and_failures_before_alert_end_as_in_event_order_in_every_order() -> None:
    # As the test above, with the run ids `heartfly run` sends: a held success whose run's start
    # comes is still applied in event order with the failures before it, when its window passes.
    differing = []
    for events in map(with_run_ids, lists_one_client_sends(ends=3)):
        for order in itertools.permutations(range(len(events))):
            in_order, raced = after_a_success_in_order_and_raced(events, list(order), failures_before_alert=2)
            if judged(raced) != judged(in_order):
                differing.append((", ".join(f"{e.kind.value} {e.run_id} {e.at - NOW:+.1f}s" for e in events), order))
    assert differing == []


def test_a_success_held_for_failures_before_alert_is_not_applied_early_by_its_own_runs_start() -> None:
    # failures_before_alert 2, run ids (`heartfly run`): two failed runs, then a retry that succeeds;
    # the success's ping comes first, its start's next, the failures' last. In event order the two
    # failures were a streak (down, then up again): the success, held for failures on their way,
    # waits out its window though its start came, and both changes are told.
    events = [ev(Kind.FAIL, NOW - 3, "r0"), ev(Kind.FAIL, NOW - 2, "r1"), ev(Kind.START, NOW - 1.5, "r2"),
              ev(Kind.SUCCESS, NOW - 1, "r2")]  # fmt: skip
    in_order, raced = after_a_success_in_order_and_raced(events, [3, 2, 0, 1], failures_before_alert=2)
    assert judged(raced) == judged(in_order)
    assert judged(raced)[2][:2] == [(Status.DOWN, Reason.FAILED), (Status.UP, None)]


def told_by(log: Log) -> list[tuple[Status, Reason | None, float]]:
    """The changes somebody was told of, up to NOW: the new status, its reason, when."""
    return [(f.new, f.reason, f.at) for f in log.flips if f.event is not None and f.at <= NOW]


@settings(max_examples=200, deadline=None)
@given(
    tenths=st.lists(st.integers(1, 40), min_size=3, max_size=3, unique=True).map(sorted),
    order=st.permutations(range(3)),
    max_runtime=st.sampled_from([None, 10 * MINUTE]),
    kinds=st.sampled_from(
        [
            (Kind.FAIL, Kind.START, Kind.SUCCESS),  # a failure, then its retry
            (Kind.START, Kind.FAIL, Kind.SUCCESS),  # a run that failed, then a success with no start
            (Kind.START, Kind.SUCCESS, Kind.FAIL),
            (Kind.START, Kind.SUCCESS, Kind.SUCCESS),
            (Kind.SUCCESS, Kind.START, Kind.FAIL),
            # Not two failures: the newer one's down, once told, is not dated again by the older.
        ]
    ),
)
def test_a_start_and_two_ends_without_run_ids_end_as_in_event_order_whatever_order_they_arrive_in(
    tenths: list[int], order: list[int], max_runtime: float | None, kinds: tuple[Kind, Kind, Kind]
) -> None:
    events = [ev(k, NOW - 5 + t / 10) for k, t in zip(kinds, tenths, strict=True)]
    in_order, raced = after_a_success_in_order_and_raced(events, order, max_runtime=max_runtime)
    got, want = judged(raced), judged(in_order)
    assert got == want
    told = [[(f.new, f.at) for f in log.flips if f.event is not None] for log in (raced, in_order)]
    assert told[0] == told[1]  # dated alike, too


def test_an_end_that_closed_nothing_is_kept_behind_a_newer_one_only_while_a_start_may_still_use_it() -> None:
    # Successes without starts: each closes no run. The older is kept behind the newer (for a
    # start older than both, still on its way) only within the reorder window of its arrival.
    soon, late = job(every=HOUR), job(every=HOUR)
    soon.arrive(NOW - 3, ev(Kind.SUCCESS, NOW - 3))
    soon.arrive(NOW, ev(Kind.SUCCESS, NOW))
    late.arrive(NOW - REORDER_WINDOW - 1, ev(Kind.SUCCESS, NOW - REORDER_WINDOW - 1))
    late.arrive(NOW, ev(Kind.SUCCESS, NOW))
    assert soon.st.orphan_prev is not None and soon.st.orphan_prev[0] == NOW - 3
    assert late.st.orphan_prev is None and late.st.orphan_end is not None
    # Within the window, a start older than both is the older success's run, as in event order.
    soon.arrive(NOW + 0.5, ev(Kind.START, NOW - 4))
    assert [(r.started_at, r.ended_at) for r in soon.runs] == [(NOW - 4, NOW - 3)]


@pytest.mark.parametrize("batch", [[Kind.FAIL], [Kind.FAIL, Kind.LOG]])
def test_an_end_behind_a_batchs_newer_one_is_still_there_for_a_live_start_within_the_window(batch: list[Kind]) -> None:
    # A batch applies its own pings with no window (engine.record_batch); the live start after it has one.
    log = job(every=HOUR)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW))
    for n, kind in enumerate(batch, start=1):
        for step in receive(log.cfg, log.st, ev(kind, NOW + n / 5), NOW + 2, window=0.0, batch=True):
            log._take(step)
    log.arrive(NOW + 3, ev(Kind.START, NOW - 1))  # the success's start: in event order it closed this run
    assert [(r.started_at, r.ended_at, r.outcome) for r in log.runs] == [(NOW - 1, NOW, RunOutcome.SUCCESS)]


def test_a_start_paired_again_with_an_end_changes_no_status_so_a_later_end_between_cries_no_wolf() -> None:
    a, b, fail, success = (ev(Kind.START, NOW - 4.2), ev(Kind.START, NOW - 2.7), ev(Kind.FAIL, NOW - 2.0),
                           ev(Kind.SUCCESS, NOW - 1.9))  # fmt: skip
    in_order, raced = job(every=HOUR, min_runtime=1.0), job(every=HOUR, min_runtime=1.0)
    for e in (a, b, fail, success):
        in_order.arrive(e.at + 0.01, e)
    raced.arrive(NOW, a, success, b, fail)  # the success waits for b (0.8 s) and the fail (it ended b at -2.0)
    for log in (in_order, raced):
        log.tick(NOW + 2 * REORDER_WINDOW)
    told = [[(f.new, f.reason, f.at) for f in log.flips if f.event is not None] for log in (raced, in_order)]
    assert told[0] == told[1] == [(Status.DOWN, Reason.FAILED, NOW - 2.0), (Status.UP, None, NOW - 1.9)]


def test_a_start_paired_again_with_an_end_takes_back_no_down_so_a_later_failure_between_is_told() -> None:
    # The mirror of the test above, for a verdict the other way: the success paired with a is too
    # long for `duration < 1s` (down); b, paired with it, would pass; but the failure still on
    # its way closed b, and the success closed a after all. Taking the down back would miss it.
    a, b, fail, success = (ev(Kind.START, NOW - 4.2), ev(Kind.START, NOW - 2.7), ev(Kind.FAIL, NOW - 2.0),
                           ev(Kind.SUCCESS, NOW - 1.9))  # fmt: skip
    rules = {"assertions": (parse_assertion("duration < 1s"),)}
    in_order, raced = job(every=HOUR, **rules), job(every=HOUR, **rules)
    for e in (a, b, fail, success):
        in_order.arrive(e.at + 0.01, e)
    raced.arrive(NOW, a, success, b, fail)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)  # the failure waited for a success dated before it
    assert raced.st.status is in_order.st.status is Status.DOWN
    assert [f.new for f in raced.flips if f.event is not None] == [Status.DOWN]


def test_a_failure_backdated_before_a_new_checks_first_start_was_new_then() -> None:
    log = job(every=HOUR)
    log.st = initial_state(log.cfg, NOW - 10)
    log.arrive(NOW, ev(Kind.START, NOW - 1), ev(Kind.FAIL, NOW - 3))
    assert [(f.old, f.new, f.at) for f in log.flips] == [(Status.NEW, Status.DOWN, NOW - 3)]


def test_a_state_stored_before_told_at_existed_withdraws_nothing_after_its_last_change() -> None:
    log = job(every=HOUR)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.FAIL, NOW - 30 * MINUTE))  # down, told
    log.arrive(NOW - 0.9, ev(Kind.SUCCESS, NOW - 1))  # the recovery, told
    stored = log.st.to_json()
    del stored["told_at"]  # as an older version stored it
    log.st, log.flips = CheckState.from_json(stored), []
    log.arrive(NOW, ev(Kind.FAIL, NOW - 2))  # older than the recovery, within the window
    assert log.flips == [] and log.st.status is Status.UP


def test_of_two_failures_in_a_row_the_down_is_dated_by_the_first_to_arrive() -> None:
    log = job(every=HOUR)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 1), ev(Kind.FAIL, NOW - 2))  # the newer failure's ping first
    assert [(f.new, f.at) for f in log.downs] == [(Status.DOWN, NOW - 1)]  # told; the older one is history


def test_two_failures_in_a_row_reach_failures_before_alert_whichever_ping_comes_first() -> None:
    logs = []
    for first, second in ((NOW - 2, NOW - 1), (NOW - 1, NOW - 2)):
        log = job(every=HOUR, failures_before_alert=2)
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
        log.arrive(NOW, ev(Kind.FAIL, first), ev(Kind.FAIL, second))
        assert log.downs == []  # they wait out the reorder window: a success between may be on its way
        log.tick(NOW + REORDER_WINDOW + 1)
        logs.append(log)
    told = [[(f.new, f.reason, f.at, f.detail) for f in log.downs] for log in logs]
    assert told[0] == told[1] == [(Status.DOWN, Reason.FAILED, NOW - 1, "failed (2 failures in a row)")]
    assert logs[0].st.failures == logs[1].st.failures == 2


@pytest.mark.parametrize("order", [[1, 2, 0], [2, 1, 0]])
def test_a_failure_completing_a_streak_after_the_next_start_is_down_as_of_the_newer_failure(order: list[int]) -> None:
    # In event order the second failure took the check down and the next run started while it
    # was down. The older failure's ping came last: down as of the newer failure, not of the
    # start after it, whose "running" alerted nobody and goes.
    events = [ev(Kind.FAIL, NOW - 3.3), ev(Kind.FAIL, NOW - 1.4), ev(Kind.START, NOW - 1.0)]
    in_order, raced = after_a_success_in_order_and_raced(events, order, failures_before_alert=2)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(f.old, f.new, f.at) for f in raced.flips[1:]] == [(Status.UP, Status.DOWN, NOW - 1.4)]
    assert [(f.old, f.new, f.at) for f in in_order.flips[1:]] == [(Status.UP, Status.DOWN, NOW - 1.4)]
    assert raced.st.status is Status.DOWN and [r.started_at for r in raced.st.runs.values()] == [NOW - 1.0]


def test_a_failure_completing_a_streak_after_closing_its_own_run_is_down_from_up_not_from_running() -> None:
    # The older failure closed its run (a) before the newer failure: the check was up then, not
    # running, whatever the start after them says.
    events = [ev(Kind.START, NOW - 3.5, "a"), ev(Kind.FAIL, NOW - 3.3, "a"), ev(Kind.FAIL, NOW - 1.4)]
    events.append(ev(Kind.START, NOW - 1.0))
    in_order, raced = after_a_success_in_order_and_raced(events, [2, 3, 0, 1], failures_before_alert=2)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(f.old, f.new, f.at) for f in raced.flips] == [(f.old, f.new, f.at) for f in in_order.flips]
    assert [(f.old, f.new, f.at) for f in raced.downs] == [(Status.UP, Status.DOWN, NOW - 1.4)]


# Checks that judge a run's duration: a start still on its way may change a success's verdict,
# but not a failure's.
JUDGING = [{"min_runtime": 10.0}, {"assertions": (parse_assertion("duration < 1h"),)}]


@pytest.mark.parametrize("judging", JUDGING)
def test_where_a_duration_is_judged_two_racing_failures_still_reach_failures_before_alert(
    judging: dict[str, Any],
) -> None:
    log = job(every=HOUR, failures_before_alert=2, **judging)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 1), ev(Kind.FAIL, NOW - 2))  # the newer failure's ping first
    log.tick(NOW + REORDER_WINDOW + 1)
    assert [(f.new, f.reason, f.at, f.detail) for f in log.downs] == [
        (Status.DOWN, Reason.FAILED, NOW - 1, "failed (2 failures in a row)")
    ]
    assert log.st.failures == 2


@pytest.mark.parametrize("judging", JUDGING)
def test_where_a_duration_is_judged_a_success_between_racing_failures_whose_start_has_not_come_breaks_their_streak(
    judging: dict[str, Any],
) -> None:
    # The failures wait out the reorder window, and the success between them (which waits for
    # its start) with them: applied in event order once it has passed, the success resets the
    # count, and nobody is told a down that never was.
    log = job(every=HOUR, failures_before_alert=2, **judging)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 1), ev(Kind.FAIL, NOW - 3), ev(Kind.SUCCESS, NOW - 2))
    log.tick(NOW + REORDER_WINDOW + 1)
    assert [f for f in log.flips if f.event is not None] == []
    assert (log.st.status, log.st.failures) == (Status.UP, 1)


@pytest.mark.parametrize("order", [[0, 2, 1], [2, 0, 1], [2, 1, 0]])
def test_a_recovery_whose_ping_came_after_the_next_runs_start_is_up_then_running(order: list[int]) -> None:
    # Event order: down (failed), up again (the success), running (the next run's start). The
    # start's ping came before the success's: the recovery is told as up, as of the success.
    events = [ev(Kind.FAIL, NOW - 3.1), ev(Kind.SUCCESS, NOW - 1.5), ev(Kind.START, NOW - 0.7)]
    in_order, raced = after_a_success_in_order_and_raced(events, order, max_runtime=600.0)
    flips = [(f.old, f.new, f.at) for f in raced.flips[1:]]
    assert flips == [(f.old, f.new, f.at) for f in in_order.flips[1:]]
    assert flips[-2:] == [(Status.DOWN, Status.UP, NOW - 1.5), (Status.UP, Status.RUNNING, NOW - 0.7)]
    assert told_by(raced)[-1] == (Status.UP, None, NOW - 1.5) and raced.st.status is Status.RUNNING
    assert raced.st.changed_at == NOW - 0.7 and raced.st.told_at == NOW - 1.5


@pytest.mark.parametrize("order", [[2, 3, 1, 0], [2, 3, 0, 1]], ids=["start-last", "success-last"])
def test_a_success_whose_start_comes_after_an_end_that_closed_a_run_is_paired_with_it(order: list[int]) -> None:
    # The failure closed the newer run; the success, arriving after it, closed none: its own
    # start, arriving before or after it, is paired with it (too fast), as in event order: two
    # failures in a row, down.
    events = [
        ev(Kind.START, NOW - 2.3),
        ev(Kind.SUCCESS, NOW - 1.8),
        ev(Kind.START, NOW - 1.7),
        ev(Kind.FAIL, NOW - 0.2),
    ]
    in_order, raced = after_a_success_in_order_and_raced(events, order, min_runtime=1.0, failures_before_alert=2)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert sorted((r.started_at, r.ended_at, r.outcome) for r in raced.runs) == [
        (NOW - 2.3, NOW - 1.8, "too_fast"),
        (NOW - 1.7, NOW - 0.2, "fail"),
    ]
    assert [(f.new, f.at) for f in raced.downs] == [(f.new, f.at) for f in in_order.downs] == [(Status.DOWN, NOW - 0.2)]


@pytest.mark.parametrize(
    "judging",
    [{"min_runtime": 1.0}, {"assertions": (parse_assertion("duration > 1s"),)}],
    ids=["min_runtime", "assertion"],
)
def test_where_a_duration_is_judged_an_end_takes_over_the_run_a_newer_failure_closed(judging: dict[str, Any]) -> None:
    # In event order the success closed the run after 0.6 s (too fast), and the failure closed
    # none. Its ping came last: the run is its own, judged on its duration.
    events = [ev(Kind.START, NOW - 3.8), ev(Kind.SUCCESS, NOW - 3.2), ev(Kind.FAIL, NOW - 3.0)]
    in_order, raced = after_a_success_in_order_and_raced(events, [0, 2, 1], **judging)
    for log in (in_order, raced):  # in order, the failure waits behind the success, which waits for its window
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(r.started_at, r.ended_at, r.outcome) for r in raced.runs] == [
        (r.started_at, r.ended_at, r.outcome) for r in in_order.runs
    ]
    assert raced.runs[-1].outcome != "fail" and raced.st.status is Status.DOWN
    # Two failures in a row: told, though the failure's ping came first (it said nothing before).
    in_order, raced = after_a_success_in_order_and_raced(events, [0, 2, 1], failures_before_alert=2, **judging)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(f.new, f.at) for f in raced.downs] == [(f.new, f.at) for f in in_order.downs] == [(Status.DOWN, NOW - 3)]


def test_a_failure_overtaken_by_two_successes_is_told_down_then_up_as_of_the_first() -> None:
    # A retry ran and succeeded right after the failure, and the next success came too, all
    # within the window; the failure's ping came last. In event order: down, then up again.
    events = [
        ev(Kind.FAIL, NOW - 2.7),
        ev(Kind.START, NOW - 2.4),
        ev(Kind.SUCCESS, NOW - 2.3),
        ev(Kind.SUCCESS, NOW - 0.2),
    ]
    in_order, raced = after_a_success_in_order_and_raced(events, [1, 2, 3, 0], max_runtime=10 * MINUTE)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert (
        told_by(raced)
        == told_by(in_order)[-2:]
        == [
            (Status.DOWN, Reason.FAILED, NOW - 2.7),
            (Status.UP, None, NOW - 2.3),
        ]
    )
    assert raced.st.status is Status.UP


def test_a_start_arriving_after_three_ends_that_closed_nothing_pairs_with_the_first_after_it() -> None:
    # Newest first: a failure, then two successes, then their run's start. In event order the
    # start's run ended at the older success (0.9 s: within `duration < 1s`), not at the newer.
    events = [
        ev(Kind.START, NOW - 3.3),
        ev(Kind.SUCCESS, NOW - 2.4),
        ev(Kind.SUCCESS, NOW - 1.7),
        ev(Kind.FAIL, NOW - 0.1),
    ]
    rules = {"assertions": (parse_assertion("duration < 1s"),), "failures_before_alert": 2}
    in_order, raced = after_a_success_in_order_and_raced(events, [3, 2, 1, 0], **rules)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(r.started_at, r.ended_at, r.outcome) for r in raced.runs] == [(NOW - 3.3, NOW - 2.4, "success")]
    assert raced.downs == in_order.downs == []


def test_a_success_its_late_start_shows_too_fast_joins_the_newer_failure_in_a_streak() -> None:
    # In event order: a run too fast (one failure), then a failure (two in a row): down. The
    # pings came newest first; the start, last, shows the success was a failure too.
    events = [ev(Kind.START, NOW - 3.8), ev(Kind.SUCCESS, NOW - 3.2), ev(Kind.FAIL, NOW - 3.0)]
    in_order, raced = after_a_success_in_order_and_raced(events, [2, 1, 0], min_runtime=1.0, failures_before_alert=2)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert [(f.new, f.at) for f in raced.downs] == [(f.new, f.at) for f in in_order.downs] == [(Status.DOWN, NOW - 3)]
    assert raced.downs[0].detail == in_order.downs[0].detail == "failed (2 failures in a row)"
    # Two in a row where three take it down: counted, nothing told.
    in_order, raced = after_a_success_in_order_and_raced(events, [2, 1, 0], min_runtime=1.0, failures_before_alert=3)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert raced.downs == in_order.downs == [] and raced.st.failures == in_order.st.failures == 2


@pytest.mark.parametrize("next_start", [False, True], ids=["its_start_lost", "its_start_after_it"])
def test_a_start_older_than_the_newest_end_is_not_closed_by_the_next_runs_end(next_start: bool) -> None:
    # A run's start ping came 5.5 s late, after its own success; the next run's success came
    # 0.5 s later, before that run's start (or without one). The late start's run is over: the
    # next run's success did not close it (a 7 s run would break the assertion: a false alarm).
    log = job(every=HOUR, assertions=(parse_assertion("duration < 5s"),))
    log.arrive(NOW + 1, ev(Kind.SUCCESS, NOW + 1))
    log.arrive(NOW + 6.5, ev(Kind.START, NOW))
    log.arrive(NOW + 7, ev(Kind.SUCCESS, NOW + 7))
    if next_start:
        log.arrive(NOW + 7.2, ev(Kind.START, NOW + 6))
    log.tick(NOW + 30)
    assert log.downs == [] and log.st.status is Status.UP
    assert [(r.started_at, r.ended_at) for r in log.runs] == ([(NOW + 6, NOW + 7)] if next_start else [])


def test_where_a_duration_is_judged_a_success_between_racing_failures_without_its_start_ends_an_untold_count() -> None:
    # failures_before_alert = 3: the two failures told nothing, and in event order the success
    # between them reset the count. Left at two, the next failure alone would tell a down.
    events = [ev(Kind.FAIL, NOW - 3.6), ev(Kind.SUCCESS, NOW - 1.7), ev(Kind.FAIL, NOW - 0.6)]
    in_order, raced = after_a_success_in_order_and_raced(events, [2, 0, 1], failures_before_alert=3, min_runtime=1.0)
    for log in (in_order, raced):
        log.tick(NOW + 30)
        log.arrive(NOW + 60, ev(Kind.FAIL, NOW + 60))
        log.tick(NOW + 60 + REORDER_WINDOW + 1)
    assert (raced.st.status, raced.st.failures) == (in_order.st.status, in_order.st.failures) == (Status.UP, 2)
    assert raced.downs == []


def test_a_failure_older_than_a_success_or_the_window_does_not_join_the_streak() -> None:
    after_success = job(every=HOUR, failures_before_alert=2)
    after_success.arrive(NOW, ev(Kind.FAIL, NOW - 1), ev(Kind.SUCCESS, NOW - 2), ev(Kind.FAIL, NOW - 3))
    too_old = job(every=HOUR, failures_before_alert=2)
    too_old.arrive(NOW - 10, ev(Kind.FAIL, NOW - 10))
    too_old.tick(NOW - 10 + REORDER_WINDOW + 1)  # applied: settled history
    too_old.arrive(NOW, ev(Kind.FAIL, NOW - 10 - REORDER_WINDOW - 1))
    for log in (after_success, too_old):
        log.tick(NOW + REORDER_WINDOW + 1)
        assert log.downs == [] and log.st.failures == 1 and log.st.status is not Status.DOWN


@settings(max_examples=300, deadline=None)
@given(
    tenths=st.lists(st.integers(1, 40), min_size=2, max_size=5, unique=True),
    threshold=st.integers(1, 5),
    judging=st.sampled_from([{}, *JUDGING]),
    data=st.data(),
)
def test_failures_racing_within_the_window_are_counted_as_in_event_order(
    tenths: list[int], threshold: int, judging: dict[str, Any], data: st.DataObject
) -> None:
    events = sorted((ev(Kind.FAIL, NOW - t / 10) for t in tenths), key=lambda e: e.at)
    order = data.draw(st.permutations(range(len(events))))
    in_order, raced = after_a_success_in_order_and_raced(events, order, failures_before_alert=threshold, **judging)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    # The same count, status and alerts. With one failure enough, the down is dated by the first
    # to arrive; a change told is not moved, so a failure arriving after it that would reach the
    # count sooner leaves it there. With more, they wait out the window: as in event order.
    assert (raced.st.status, raced.st.failures, len(raced.downs)) == (
        in_order.st.status,
        in_order.st.failures,
        len(in_order.downs),
    )
    for late, true in zip(raced.downs, in_order.downs, strict=True):
        assert true.at <= late.at <= events[-1].at
    if threshold == len(events) or (threshold > 1 and len(events) <= WAITING_MAX):
        assert [(f.at, f.detail) for f in raced.downs] == [(f.at, f.detail) for f in in_order.downs]


def test_a_success_between_two_failures_that_arrives_last_breaks_their_streak_and_nobody_is_told() -> None:
    # failures_before_alert = 2: in event order the success reset the count, and the check stayed
    # up. The failures waited out the reorder window, and its ping came within it: no down at all.
    log = job(every=HOUR, failures_before_alert=2)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 3), ev(Kind.FAIL, NOW - 1), ev(Kind.SUCCESS, NOW - 2))
    log.tick(NOW + REORDER_WINDOW + 1)
    assert [f for f in log.flips if f.event is not None] == []
    assert log.st.status is Status.UP and log.st.failures == 1


def test_a_success_between_two_failures_of_a_batch_that_arrives_last_breaks_their_streak() -> None:
    # The failures came in a batch (applied at once, no window): they told a down. The success's
    # ping came last, within the window: up again, said why.
    log = job(every=HOUR, failures_before_alert=2)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 3), ev(Kind.FAIL, NOW - 1), batch=True)
    log.arrive(NOW + 0.1, ev(Kind.SUCCESS, NOW - 2))
    told = [(f.new, f.at) for f in log.flips if f.event is not None]
    assert told == [(Status.DOWN, NOW - 1), (Status.UP, NOW - 1)]
    assert "succeeded 1s before its last failure" in log.flips[-1].detail.replace(" s", "s")
    assert log.st.status is Status.UP and log.st.failures == 1


@settings(max_examples=300, deadline=None)
@given(
    tenths=st.lists(st.integers(1, 40), min_size=3, max_size=6, unique=True),
    success_at=st.integers(0, 5),
    threshold=st.integers(1, 5),
    bad=st.lists(st.booleans(), min_size=6, max_size=6),
    data=st.data(),
)
def test_failures_and_a_success_racing_within_the_window_end_counted_as_in_event_order(
    tenths: list[int], success_at: int, threshold: int, bad: list[bool], data: st.DataObject
) -> None:
    # Each failure is a failed ping or a success whose metrics break an assertion: both count.
    times = sorted(NOW - t / 10 for t in tenths)
    pick = success_at % len(times)
    events = [
        ev(Kind.SUCCESS, at, metrics={"rows": 5})
        if i == pick
        else ev(Kind.SUCCESS, at, metrics={"rows": 0})
        if bad[i]
        else ev(Kind.FAIL, at)
        for i, at in enumerate(times)
    ]
    order = data.draw(st.permutations(range(len(events))))
    rules = {"failures_before_alert": threshold, "assertions": (parse_assertion("rows > 0"),)}
    in_order, raced = after_a_success_in_order_and_raced(events, order, **rules)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    # The status and the count end as in event order, whatever failures_before_alert; what was told
    # on the way may differ (a down told before the success's ping came is followed by a
    # recovery, not withdrawn).
    assert raced.st.status == in_order.st.status
    assert raced.st.failures == in_order.st.failures


def test_a_success_that_arrives_after_two_newer_failures_leaves_the_count_of_those_after_it() -> None:
    # failures_before_alert = 3: the success between the first and the second failure came last.
    # In event order two failures followed it: up, and a count of two. Live, the failures wait
    # out the window and nobody is told; from a batch, they told a down, and up follows.
    for batch in (False, True):
        log = job(every=HOUR, failures_before_alert=3)
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
        log.arrive(NOW, ev(Kind.FAIL, NOW - 3), ev(Kind.FAIL, NOW - 2), ev(Kind.FAIL, NOW - 1), batch=batch)
        log.arrive(NOW + 0.2, ev(Kind.SUCCESS, NOW - 2.5))
        log.tick(NOW + REORDER_WINDOW + 1)
        told = [(f.new, f.at) for f in log.flips if f.event is not None]
        assert told == ([(Status.DOWN, NOW - 1), (Status.UP, NOW - 1)] if batch else [])
        if batch:
            assert log.flips[-1].detail.endswith("(their pings arrived out of order): 2 failures in a row")
        assert log.st.status is Status.UP and log.st.failures == 2
        log.arrive(NOW + 10, ev(Kind.FAIL, NOW + 9.5))  # the third after the success: down again
        log.tick(NOW + 10 + REORDER_WINDOW + 1)
        assert (log.st.status, log.st.failures) == (Status.DOWN, 3)


def test_a_state_stored_without_the_failures_times_keeps_the_count_a_late_success_finds() -> None:
    log = job(every=HOUR, failures_before_alert=3)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW - 0.5, ev(Kind.FAIL, NOW - 3), ev(Kind.FAIL, NOW - 2), ev(Kind.FAIL, NOW - 1), batch=True)
    stored = log.st.to_json()
    del stored["streak_ats"]  # as an older version stored it
    log.st = CheckState.from_json(stored)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 2.5))  # cannot tell how many came after it: history
    assert log.st.status is Status.DOWN and log.st.failures == 3


def test_a_success_whose_start_may_yet_show_it_too_fast_breaks_no_streak() -> None:
    # Its start's ping came last: the run took 0.5 s, under min_runtime, so it was a failure too.
    log = job(every=HOUR, failures_before_alert=2, min_runtime=10.0)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 4.5), ev(Kind.FAIL, NOW - 1), ev(Kind.SUCCESS, NOW - 2.5))
    log.arrive(NOW + 0.2, ev(Kind.START, NOW - 3))
    log.tick(NOW + REORDER_WINDOW + 1)
    assert log.st.status is Status.DOWN and [f.new for f in log.flips if f.event is not None][-1] is Status.DOWN


def test_a_success_that_breaks_a_streak_leaves_an_overrun_between_it_and_the_failure_standing() -> None:
    log = job(every=HOUR, failures_before_alert=2, max_runtime=98.5)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW - 100, ev(Kind.START, NOW - 100, "a"))
    log.tick(NOW - 1.49)  # run a overran at NOW - 1.5: down, told
    log.arrive(NOW - 0.99, ev(Kind.FAIL, NOW - 1, "c"))
    log.arrive(NOW - 0.8, ev(Kind.SUCCESS, NOW - 2, "b"))  # before the overrun, its ping late
    assert log.st.status is Status.DOWN and log.st.reason is Reason.OVERRUN and log.st.failures == 1


def test_a_failure_that_would_complete_a_streak_counts_nothing_after_a_resume() -> None:
    log = job(every=HOUR, failures_before_alert=2)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log._take(pause(log.st, NOW - 10))
    log.arrive(NOW - 0.99, ev(Kind.FAIL, NOW - 1))
    log._take(resume(log.cfg, log.st, NOW - 0.5))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 2))
    assert log.st.status is Status.UP and log.downs == []


def test_where_a_duration_is_judged_a_failure_inside_a_newer_successs_run_completes_no_streak() -> None:
    # The success paired with the start fails `duration < 0.7s` (one failure); in event order the
    # failure closed that run instead, and the success closed none: up. It must not make two.
    rules = {"assertions": (parse_assertion("duration < 0.7s"),), "failures_before_alert": 2}
    events = [ev(Kind.START, NOW - 3.5), ev(Kind.FAIL, NOW - 2.5), ev(Kind.SUCCESS, NOW - 1.5)]
    in_order, raced = after_a_success_in_order_and_raced(events, [0, 2, 1], **rules)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert raced.st.status is in_order.st.status is Status.UP and raced.downs == []


def test_a_streak_broken_after_a_start_tells_no_down() -> None:
    # The newer failure, then a start, then the older failure, then the success between the
    # failures: the failures wait out the window, and in event order the count was one.
    events = [
        ev(Kind.FAIL, NOW - 3.3),
        ev(Kind.SUCCESS, NOW - 2.3),
        ev(Kind.FAIL, NOW - 1.3),
        ev(Kind.START, NOW - 0.3),
    ]
    in_order, raced = after_a_success_in_order_and_raced(events, [2, 3, 0, 1], failures_before_alert=2)
    for log in (in_order, raced):
        log.tick(NOW + REORDER_WINDOW + 1)
    assert raced.st.status is in_order.st.status is Status.RUNNING
    assert raced.st.failures == in_order.st.failures == 1 and raced.downs == in_order.downs == []


def test_where_a_duration_is_judged_a_failure_inside_a_newer_successs_run_is_told_as_in_event_order() -> None:
    # In event order the failure closed the run (down), and the success, with the later start, was
    # too fast (still down). The success waits out the window: both pings behind it count first.
    events = [
        ev(Kind.START, NOW - 4.2),
        ev(Kind.FAIL, NOW - 3.5),
        ev(Kind.START, NOW - 1.9),
        ev(Kind.SUCCESS, NOW - 1.6),
    ]
    raced = raced_as_in_order(events, [0, 3, 1, 2], min_runtime=1.0)
    assert [(f.new, f.reason, f.at) for f in raced.downs] == [(Status.DOWN, Reason.FAILED, NOW - 3.5)]
    assert raced.st.status is Status.DOWN and [r.outcome for r in raced.runs] == ["fail", "too_fast"]


def test_a_failure_overtaken_after_a_told_change_stays_history() -> None:
    log = job(every=HOUR, max_runtime=1.0)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW - 4, ev(Kind.START, NOW - 4))
    log.tick(NOW - 2.5)  # overran: down at NOW - 3, told
    log.flips.clear()
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 1), ev(Kind.FAIL, NOW - 3.5))  # the recovery, then an older failure
    assert [(f.old, f.new) for f in log.flips] == [(Status.DOWN, Status.UP)] and log.st.status is Status.UP


def test_a_failure_older_than_the_window_behind_its_success_stays_history() -> None:
    log = job(every=HOUR)
    log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
    log.arrive(NOW - 10, ev(Kind.SUCCESS, NOW - 10))
    log.arrive(NOW, ev(Kind.FAIL, NOW - 12))  # the success came 10 s ago: past the reorder window
    assert log.downs == [] and log.st.status is Status.UP


@settings(max_examples=200, deadline=None)
@given(
    fail_tenths=st.integers(1, 40),
    gap_tenths=st.integers(1, 10),
    exit_status=st.sampled_from([None, 1, 3]),
    swapped=st.booleans(),
)
def test_a_failure_and_a_newer_success_of_an_up_check_are_told_alike_in_either_order(
    fail_tenths: int, gap_tenths: int, exit_status: int | None, swapped: bool
) -> None:
    fail = ev(Kind.FAIL, NOW - fail_tenths / 10, exit_status=exit_status)
    success = ev(Kind.SUCCESS, fail.at + gap_tenths / 10)
    logs = []
    for arrivals in ([fail, success], [success, fail] if swapped else [fail, success]):
        log = job(every=HOUR)
        log.arrive(NOW - 30 * MINUTE, ev(Kind.SUCCESS, NOW - 30 * MINUTE))
        log.flips.clear()
        log.arrive(max(fail.at, success.at) + 0.01, *arrivals)
        logs.append(log)
    in_order, raced = logs
    assert judged(raced) == judged(in_order)
    assert [(f.new, f.at) for f in raced.flips[:2]] == [(Status.DOWN, fail.at), (Status.UP, success.at)]


# ---- successes that wait out the reorder window (where a run's duration is judged) -------------


def test_a_newer_start_waits_behind_a_waiting_success_and_both_are_applied_in_event_order() -> None:
    log = job(every=HOUR, min_runtime=1.0)
    log.arrive(NOW - 3, ev(Kind.START, NOW - 3))
    log.arrive(NOW - 1, ev(Kind.SUCCESS, NOW - 1))
    log.arrive(NOW - 0.5, ev(Kind.PROGRESS, NOW - 0.5))
    assert len(log.st.waiting) == 1 and log.st.status is Status.RUNNING  # a lone sign of life does not queue
    log.arrive(NOW, ev(Kind.START, NOW))  # the next run's: it waits behind the success
    assert [w[6] for w in log.st.waiting] == [None, Kind.START] and log.st.last_ping_at == NOW
    assert log.runs == [] and log.st.status is Status.RUNNING
    log.tick(NOW - 1 + REORDER_WINDOW)  # the success's window has passed: both, in event order
    assert not log.st.waiting and [(f.new, f.at) for f in log.flips][-2:] == [
        (Status.UP, NOW - 1),
        (Status.RUNNING, NOW),
    ]
    assert [(r.started_at, r.ended_at, r.outcome) for r in log.runs] == [(NOW - 3, NOW - 1, RunOutcome.SUCCESS)]
    assert [run.started_at for run in log.st.runs.values()] == [NOW]


def test_a_failure_behind_a_success_waiting_for_its_start_counts_after_the_too_fast_run() -> None:
    # In event order the run was too fast (one failure) and the failure made two. The success's ping
    # came first, its start's last: the failure waits behind the success, which then pairs with it.
    events = [ev(Kind.START, NOW - 3.3), ev(Kind.SUCCESS, NOW - 2.5), ev(Kind.FAIL, NOW - 1.9)]
    raced = raced_as_in_order(events, [1, 2, 0], min_runtime=1.0, failures_before_alert=2)
    assert told_by(raced) == [(Status.DOWN, Reason.FAILED, NOW - 1.9)]


def test_a_newer_start_behind_a_waiting_success_tells_no_recovery_its_start_takes_back() -> None:
    # Down since the failure; in event order the retry was too fast, so it stayed down. The success
    # and the next start came before the retry's start: applied at once, the success would have
    # told a recovery, and its start a second down.
    events = [ev(Kind.FAIL, NOW - 2.9), ev(Kind.START, NOW - 1.7), ev(Kind.SUCCESS, NOW - 1.6)]
    events.append(ev(Kind.START, NOW - 1.3))
    raced = raced_as_in_order(events, [0, 2, 3, 1], min_runtime=1.0)
    assert told_by(raced) == [(Status.DOWN, Reason.FAILED, NOW - 2.9)]


def live(log: Log, pings: list[tuple[float, Event]], until: float) -> None:
    """Each ping as it arrives (at its first element), the timer ticking every 10 ms in between."""
    t = NOW - 3
    for arrived, e in sorted(pings, key=lambda p: p[0]):
        while t < arrived:
            log.tick(t)
            t = round(t + 0.01, 4)
        log.arrive(arrived, e)
    while t < until:
        log.tick(t)
        t = round(t + 0.01, 4)


def test_a_late_ping_queued_behind_a_waiting_success_holds_the_deadlines_for_the_pings_behind_it() -> None:
    # The next run's start came 3.9 s late and its success 1.5 s late: a 2.5 s run, no overrun.
    log = job(every=HOUR, min_runtime=1.0, max_runtime=3.0)
    live(log, [(NOW - 1.99, ev(Kind.START, NOW - 2)), (NOW + 0.01, ev(Kind.SUCCESS, NOW))], NOW + 4.9)
    live(log, [(NOW + 4.9, ev(Kind.START, NOW + 1)), (NOW + 5.05, ev(Kind.SUCCESS, NOW + 3.5))], NOW + 20)
    assert log.downs == []
    assert [(r.started_at, r.ended_at, r.outcome) for r in log.runs[-2:]] == [
        (NOW - 2, NOW, RunOutcome.SUCCESS),
        (NOW + 1, NOW + 3.5, RunOutcome.SUCCESS),
    ]


def test_progress_behind_a_full_queue_applies_it_first_so_no_stall_is_told_that_did_not_happen() -> None:
    # Live and in order: a 1 s run, the next 0.5 s later with progress at most 1 s apart.
    log = job(every=HOUR, min_runtime=0.5, stall=1.5)
    kinds = [(1, Kind.START), (2, Kind.SUCCESS), (2.5, Kind.START), (3, Kind.PROGRESS), (3.5, Kind.PROGRESS)]
    kinds += [(4.5, Kind.PROGRESS), (5.5, Kind.PROGRESS), (6.5, Kind.PROGRESS), (7.5, Kind.SUCCESS)]
    live(log, [(NOW + t + 0.01, ev(k, NOW + t)) for t, k in kinds], NOW + 20)
    assert log.downs == []
    assert [(r.started_at, r.ended_at, r.outcome) for r in log.runs[-2:]] == [
        (NOW + 1, NOW + 2, RunOutcome.SUCCESS),
        (NOW + 2.5, NOW + 7.5, RunOutcome.SUCCESS),
    ]


def test_the_start_of_a_waiting_successs_run_id_applies_the_pings_queued_behind_it_too() -> None:
    log = job(every=HOUR, min_runtime=1.0)
    log.arrive(NOW - 1, ev(Kind.SUCCESS, NOW - 1, "r1"))  # its start is on its way
    log.arrive(NOW - 0.9, ev(Kind.START, NOW - 0.9, "r2"))  # the next run's: queued behind it
    assert [w[6] for w in log.st.waiting] == [None, Kind.START]
    log.arrive(NOW - 0.8, ev(Kind.START, NOW - 3, "r1"))
    assert not log.st.waiting and log.st.status is Status.RUNNING and list(log.st.runs) == ["r2"]
    assert [(r.run_id, r.started_at, r.ended_at, r.outcome) for r in log.runs] == [
        ("r1", NOW - 3, NOW - 1, RunOutcome.SUCCESS)
    ]


def test_two_waiting_successes_are_judged_one_step_each_so_a_down_between_is_told() -> None:
    # The newer success's ping came first, then the older one's, then the run's start: in event
    # order the run was too fast (down) and the next success closed nothing (up again).
    events = [ev(Kind.START, NOW - 3.1), ev(Kind.SUCCESS, NOW - 2.7), ev(Kind.SUCCESS, NOW - 0.7)]
    raced = raced_as_in_order(events, [2, 1, 0], min_runtime=1.0)
    assert told_by(raced) == [(Status.DOWN, Reason.TOO_FAST, NOW - 2.7), (Status.UP, None, NOW - 0.7)]


def test_a_start_older_than_the_newest_end_is_closed_by_a_waiting_success_after_it() -> None:
    # In event order: a, then b superseded it; the failure closed b, and the success closed a.
    events = [
        ev(Kind.START, NOW - 1.8),
        ev(Kind.START, NOW - 1.7),
        ev(Kind.FAIL, NOW - 0.7),
        ev(Kind.SUCCESS, NOW - 0.6),
    ]
    raced = raced_as_in_order(events, [1, 2, 3, 0], min_runtime=1.0)
    assert sorted((r.started_at, r.ended_at) for r in raced.runs) == [(NOW - 1.8, NOW - 0.6), (NOW - 1.7, NOW - 0.7)]


def test_a_success_that_waits_on_a_paused_check_records_its_run_and_changes_nothing() -> None:
    # The engine applies held pings before a pause (states.apply_held, tests/test_restart.py);
    # this is the state machine alone: a paused state with one still waiting loses no run.
    log = job(every=HOUR, min_runtime=1.0)
    log.arrive(NOW - 3, ev(Kind.START, NOW - 3))
    log.arrive(NOW - 2.9, ev(Kind.SUCCESS, NOW - 2.9))  # too fast, once judged
    log._take(pause(log.st, NOW - 2))
    log.tick(NOW + REORDER_WINDOW + 1)
    assert log.st.status is Status.PAUSED and not log.st.waiting and log.downs == []
    assert [r.outcome for r in log.runs] == [RunOutcome.TOO_FAST]


def test_a_fifth_success_waiting_at_once_is_applied_as_it_comes() -> None:
    log = job(every=HOUR, min_runtime=1.0)
    for n in range(5):  # newest first: none applies the ones waiting (a newer end would)
        log.arrive(NOW + n / 10, ev(Kind.SUCCESS, NOW - 1 - n / 10))
    assert len(log.st.waiting) == WAITING_MAX == 4  # a state holds no more
    assert log.st.last_end_at == NOW - 1.4 and log.st.status is Status.UP  # the fifth, applied
    log.tick(NOW + 1 + REORDER_WINDOW)
    assert not log.st.waiting and log.st.last_end_at == NOW - 1  # then the others, in event order


def test_a_success_whose_window_passed_before_the_timer_fired_is_applied_before_the_next_ping() -> None:
    # As a crash's replay applies the stored pings: no timer between them.
    def replayed(tick: bool) -> Log:
        log = job(every=HOUR, min_runtime=1.0)
        for step in receive(log.cfg, log.st, ev(Kind.START, NOW - 3), NOW - 3):
            log._take(step)
        for step in receive(log.cfg, log.st, ev(Kind.SUCCESS, NOW - 1), NOW - 1):
            log._take(step)
        if tick:
            log.tick(NOW + 4.5)
        for step in receive(log.cfg, log.st, ev(Kind.START, NOW - 2), NOW + 4.5):  # after the window
            log._take(step)
        return log

    timed, untimed = replayed(tick=True), replayed(tick=False)
    assert judged(untimed) == judged(timed)
    assert [(r.started_at, r.outcome) for r in untimed.runs][:1] == [(NOW - 3, RunOutcome.SUCCESS)]


def test_a_success_with_a_run_id_waits_only_until_its_start_comes() -> None:
    log = job(every=HOUR, min_runtime=5.0)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW - 0.2, "r1"))  # its start's ping is behind it
    assert log.st.waiting
    log.arrive(NOW + 0.1, ev(Kind.START, NOW - 3, "r1"))  # nothing else can be its run: judged now
    assert not log.st.waiting and log.st.status is Status.DOWN
    (down,) = log.downs
    assert (down.reason, down.at, down.learned_at) == (Reason.TOO_FAST, NOW - 0.2, None)


@pytest.mark.parametrize("rid", [None, "r1"])
def test_progress_pings_that_overtook_their_start_count_on_its_stall_clock(rid: str | None) -> None:
    events = [ev(Kind.START, NOW - 2.9, rid), ev(Kind.PROGRESS, NOW - 1.9, rid), ev(Kind.PROGRESS, NOW - 0.95, rid)]
    raced = raced_as_in_order(events, [1, 2, 0], stall=2.0)
    (stalled,) = raced.downs
    assert (stalled.reason, stalled.at) == (Reason.STALLED, NOW - 0.95 + 2.0)  # not 2 s after the start


def test_a_gap_longer_than_the_stall_limit_among_pings_that_overtook_their_start_is_a_stall() -> None:
    events = [ev(Kind.START, NOW - 4.0), ev(Kind.PROGRESS, NOW - 1.5)]  # 2.5 s without a sign of life
    raced = raced_as_in_order(events, [1, 0], stall=2.0)
    assert [(f.reason, f.at) for f in raced.downs] == [(Reason.STALLED, NOW - 2.0)]


@pytest.mark.parametrize("rid", [None, "r1"])
def test_a_progress_newer_than_a_held_stall_waits_for_the_ping_that_shows_there_was_none(rid: str | None) -> None:
    # The start comes 2.8 s late: its stall (due at -0.8) waits out the window. The newest progress
    # comes next; applied at once, it would judge the stall (nothing came in time, it would say).
    events = [ev(Kind.START, NOW - 2.8, rid), ev(Kind.PROGRESS, NOW - 1.8, rid), ev(Kind.SUCCESS, NOW - 1.2, rid)]
    events.append(ev(Kind.PROGRESS, NOW - 0.5, rid))
    for order in ([0, 3, 1, 2], [0, 3, 2, 1]):
        raced = raced_as_in_order(events, order, stall=2.0, max_runtime=600.0)
        assert raced.downs == [f for f in raced.downs if f.reason is Reason.MISSED]  # the next run's, an hour on


def test_a_start_newer_than_a_held_stall_waits_so_that_the_older_runs_success_ends_it_in_time() -> None:
    events = [ev(Kind.START, NOW - 3.2), ev(Kind.SUCCESS, NOW - 2.2), ev(Kind.START, NOW - 1.0)]
    raced = raced_as_in_order(events, [0, 2, 1], stall=2.0, min_runtime=1.0, max_runtime=600.0)
    assert [(f.reason, f.at) for f in raced.downs] == [(Reason.STALLED, NOW + 1.0)]  # the second run's, not the first


def test_a_ping_held_behind_a_real_stall_is_applied_after_it_is_told_dated_when_the_limit_passed() -> None:
    log = job(every=HOUR, stall=2.0)
    log.arrive(NOW, ev(Kind.START, NOW - 3.8))  # its stall was due at -1.8: held for the window
    log.arrive(NOW + 0.05, ev(Kind.PROGRESS, NOW - 0.5))
    assert log.downs == [] and len(log.st.waiting) == 1  # held too, not a judge of the stall yet
    log.tick(NOW + 0.05 + REORDER_WINDOW)
    assert [(f.reason, f.at) for f in log.downs] == [(Reason.STALLED, NOW - 1.8)] and not log.st.waiting


@pytest.mark.parametrize("rid", [None, "r1"])
def test_a_stall_limit_a_late_ping_sets_inside_the_window_waits_for_the_pings_behind_it(rid: str | None) -> None:
    # Event order: no gap reaches the 2 s stall limit. The progress at -1.9 arrives first after the
    # start, 1.95 s late, and sets the limit at +0.1, before the older progress and the success
    # (arriving 0.05 s apart) could come: the limit waits out the window, and finds the run ended.
    events = [ev(Kind.START, NOW - 3.3, rid), ev(Kind.PROGRESS, NOW - 2.9, rid)]
    events += [ev(Kind.PROGRESS, NOW - 1.9, rid), ev(Kind.SUCCESS, NOW - 1.2, rid)]
    raced = raced_as_in_order(events, [0, 2, 1, 3], stall=2.0, max_runtime=600.0)
    assert told_by(raced) == [] and [r.outcome for r in raced.runs] == [RunOutcome.SUCCESS]


def test_an_older_late_ping_behind_one_that_set_a_stall_limit_keeps_it_held() -> None:
    # As above, with the limit 0.12 s ahead: the older progress, arriving at +0.10, must not cut
    # the hold short (it sets no deadline of its own), so the limit waits for the success.
    events = [ev(Kind.START, NOW - 3.3), ev(Kind.PROGRESS, NOW - 2.9)]
    events += [ev(Kind.PROGRESS, NOW - 1.88), ev(Kind.SUCCESS, NOW - 1.2)]
    raced = raced_as_in_order(events, [0, 2, 1, 3], stall=2.0, max_runtime=600.0)
    assert told_by(raced) == []


def test_a_stall_limit_a_late_ping_sets_inside_the_window_is_told_after_it_dated_at_the_limit() -> None:
    log = job(every=HOUR, stall=2.0)
    log.arrive(NOW, ev(Kind.START, NOW - 1.5))  # late by 1.5 s: its limit at +0.5 waits for the window
    log.tick(NOW + 1)
    assert log.downs == [] and log.st.status is Status.RUNNING
    log.arrive(NOW + 1, ev(Kind.PROGRESS, NOW + 1))  # a live one, dated after the limit: held behind it
    log.tick(NOW + REORDER_WINDOW + 0.01)
    assert [(f.reason, f.at) for f in log.downs] == [(Reason.STALLED, NOW + 0.5)]


def test_a_ping_dated_after_a_live_deadline_is_not_held_behind_it_while_another_window_is_open() -> None:
    cfg = check(every=10.0, grace=0.0)
    log = Log(cfg, initial_state(cfg, NOW - 100))
    log.arrive(NOW - 9.7, ev(Kind.SUCCESS, NOW - 9.7))  # due at +0.3
    assert log.st.due_at == NOW + 0.3
    log.arrive(NOW, ev(Kind.LOG, NOW - 3))  # back-dated: a window opens, and holds nothing due
    log.arrive(NOW + 0.1, ev(Kind.SUCCESS, NOW + 0.5))  # the next success, from a clock 0.4 s fast
    assert not log.st.waiting  # applied: the due time at +0.3 is no back-dated ping's to hold
    log.tick(NOW + 0.1 + REORDER_WINDOW + 1)
    assert [f for f in log.downs if f.at > NOW - 9] == []


def test_many_progress_pings_that_overtook_their_start_keep_its_stall_clock_going() -> None:
    # Twenty pings 0.2 s apart, more than a state keeps one by one: spans of them, stall 1 s.
    events = [ev(Kind.START, NOW - 4.2)] + [ev(Kind.PROGRESS, NOW - 4 + n / 5) for n in range(20)]
    order = [*range(20, 0, -1), 0]  # newest first, the start last
    raced = raced_as_in_order(events, order, stall=1.0)
    assert len(raced.st.early_activity) == 1  # one span
    assert [f.at for f in raced.downs] == [NOW - 0.2 + 1.0]


@pytest.mark.parametrize("rules", [{}, {"min_runtime": 1.0}])
def test_a_deadline_after_a_waiting_success_is_judged_before_the_next_ping(rules: dict[str, Any]) -> None:
    # Live pings in order: r1 overruns max_runtime (3 s) and ends at 4.0; r2's success at 1.5 (its
    # start not seen) waits out the window till 6.5, and the overrun with it, but not past r1's end.
    log = job(every=HOUR, max_runtime=3.0, **rules)
    for e in (ev(Kind.START, NOW, "r1"), ev(Kind.SUCCESS, NOW + 1.5, "r2"), ev(Kind.SUCCESS, NOW + 4.0, "r1")):
        log.arrive(e.at, e)
    log.tick(NOW + 60)
    assert [(f.new, f.reason, f.at) for f in log.flips] == [
        (Status.RUNNING, None, NOW),
        (Status.DOWN, Reason.OVERRUN, NOW + 3.0),
        (Status.UP, None, NOW + 4.0),
    ]
    assert [(r.run_id, r.outcome) for r in log.runs] == [("r1", RunOutcome.OVERRUN)]


@pytest.mark.parametrize("rules", [{}, {"min_runtime": 1.0}])
def test_a_stall_after_a_waiting_success_is_judged_before_a_sign_of_life_that_comes_too_late(
    rules: dict[str, Any],
) -> None:
    # Live pings of two overlapping runs: r2's success at 1.5 (its start not seen) waits till 6.5;
    # r1 is quiet from 1.0 to 4.0 (stall 2 s): it stalled at 3.0, whatever its ping at 4.0 says.
    log = job(every=HOUR, stall=2.0, **rules)
    for e in (
        ev(Kind.START, NOW, "r1"),
        ev(Kind.PROGRESS, NOW + 1.0, "r1"),
        ev(Kind.SUCCESS, NOW + 1.5, "r2"),
        ev(Kind.PROGRESS, NOW + 4.0, "r1"),
        ev(Kind.SUCCESS, NOW + 7.0, "r1"),
    ):
        log.arrive(e.at, e)
    log.tick(NOW + 60)
    assert [(f.new, f.reason, f.at) for f in log.flips] == [
        (Status.RUNNING, None, NOW),
        (Status.DOWN, Reason.STALLED, NOW + 3.0),
        (Status.UP, None, NOW + 7.0),
    ]


@pytest.mark.parametrize("rules", [{}, {"min_runtime": 1.0}])
def test_a_spool_replayed_one_ping_at_a_time_tells_the_miss_between_its_runs(rules: dict[str, Any]) -> None:
    cfg = check(every=10 * MINUTE, grace=MINUTE, max_runtime=HOUR, **rules)
    log = Log(cfg, initial_state(cfg, NOW - 4 * HOUR))
    log.tick(NOW - 4 * HOUR + 11 * MINUTE)  # missed, in real time
    a, b = NOW - 3 * HOUR, NOW - HOUR
    end = log.arrive(NOW, ev(Kind.START, a), ev(Kind.SUCCESS, a + 10), ev(Kind.START, b), ev(Kind.SUCCESS, b + 10))
    log.tick(end + REORDER_WINDOW)
    told = [(f.new, f.reason, f.at) for f in log.flips if f.event is not None]
    assert told == [
        (Status.DOWN, Reason.MISSED, NOW - 4 * HOUR + 11 * MINUTE),
        (Status.UP, None, a + 10),
        (Status.DOWN, Reason.MISSED, a + 10 + 11 * MINUTE),  # nothing from -3h to -1h
        (Status.UP, None, b + 10),
        (Status.DOWN, Reason.MISSED, b + 10 + 11 * MINUTE),
    ]


def test_signs_of_life_with_and_without_a_run_id_at_one_instant_are_kept_apart() -> None:
    # A batch applies its pings at one `now`: spans equal but for the run id must not be compared by it.
    cfg = check(every=HOUR, stall=60.0)
    st = initial_state(cfg, NOW - 100)
    for e in (ev(Kind.PROGRESS, NOW - 10, "a"), ev(Kind.LOG, NOW - 10)):
        st = receive(cfg, st, e, NOW, 0.0, batch=True)[-1].state
    assert sorted(span[3] or "" for span in st.early_activity) == ["", "a"]


@pytest.mark.parametrize("rules", [{}, {"min_runtime": 5.0}])
def test_a_success_dated_ahead_by_a_fast_clock_is_applied_as_it_comes(rules: dict[str, Any]) -> None:
    log = job(every=60.0, grace=0.0, **rules)
    log.arrive(NOW, ev(Kind.SUCCESS, NOW))  # due at +60
    log.arrive(NOW + 50, ev(Kind.SUCCESS, NOW + 290))  # from a client whose clock is 4 min ahead
    assert not log.st.waiting
    log.tick(NOW + 320)
    assert log.downs == []


def test_an_end_closes_the_latest_superseded_start_before_it() -> None:
    # Event order: starts at -4.9 and -2.0, the success at -1.9 (a 0.1 s run), a start at -1.3.
    events = [
        ev(Kind.START, NOW - 4.9),
        ev(Kind.START, NOW - 2.0),
        ev(Kind.SUCCESS, NOW - 1.9),
        ev(Kind.START, NOW - 1.3),
    ]
    raced = raced_as_in_order(events, [1, 3, 2, 0], min_runtime=1.0, max_runtime=600.0)
    runs = [(r.started_at, r.ended_at, r.outcome) for r in raced.runs]
    # (The run the start at -1.3 opened, while the check was down, overruns later: recorded too.)
    assert runs == [(NOW - 2.0, NOW - 1.9, RunOutcome.TOO_FAST), (NOW - 1.3, NOW + 598.7, RunOutcome.OVERRUN)]


def test_a_batch_after_a_late_ping_ends_its_hold_as_before() -> None:
    # Without a waiting success, a batch (no window) ends the hold a late ping began.
    log = job(every=60.0, grace=0.0, max_runtime=3.0)
    log.arrive(NOW + 10, ev(Kind.START, NOW + 10))
    log.arrive(NOW + 13.01, ev(Kind.LOG, NOW - 500))  # a spooled log line: held until +18.01
    for step in receive(log.cfg, log.st, ev(Kind.PROGRESS, NOW + 10.2), NOW + 13.05, 0.0, batch=True):
        log._take(step)
    assert log.st.hold_until == NOW + 13.05


def test_a_newer_success_that_waits_too_leaves_the_older_one_waiting_for_its_start() -> None:
    # Event order: a failure (down), a start, a success 0.1 s later (too fast: still down), then a
    # success without a start (up). The start's ping comes last, after both successes'.
    events = [
        ev(Kind.FAIL, NOW - 2.7),
        ev(Kind.START, NOW - 2.6),
        ev(Kind.SUCCESS, NOW - 2.5),
        ev(Kind.SUCCESS, NOW - 0.7),
    ]
    raced = raced_as_in_order(events, [0, 2, 3, 1], min_runtime=1.0)
    assert told_by(raced) == [(Status.DOWN, Reason.FAILED, NOW - 2.7), (Status.UP, None, NOW - 0.7)]
