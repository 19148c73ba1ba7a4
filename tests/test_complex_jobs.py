"""Runs, stalls, fan-in, assertions, failure thresholds and pipeline steps, purely, with a fake time."""

from __future__ import annotations

import json

import pytest

from heartfly.core.assertions import parse_assertion
from heartfly.core.config import CheckConfig
from heartfly.core.states import (
    REORDER_WINDOW,
    CheckState,
    Event,
    Kind,
    Reason,
    Status,
    Step,
    advance,
    apply_event,
    arm_step,
    initial_state,
    next_deadline,
    pause,
    resume,
)
from heartfly.store.rows import decode_state, encode_state
from tests.conftest import check
from tests.test_event_time import Log

T0 = 1_780_000_000.0
HOUR = 3600.0


def feed(cfg: CheckConfig, st: CheckState, *events: Event) -> Step:
    step = Step(st, None)
    for ev in events:
        step = apply_event(cfg, step.state, ev, ev.at)
    return step


def ev(kind: Kind, at: float, rid: str | None = None, **kw: object) -> Event:
    return Event(kind, T0 + at, rid, **kw)  # type: ignore[arg-type]


# ---- runs -------------------------------------------------------------------------------------


def test_two_overlapping_runs_are_timed_apart_and_recorded_as_finished_runs() -> None:
    cfg = check(max_runtime=600)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "a"), ev(Kind.START, 100, "b")).state
    step = apply_event(cfg, st, ev(Kind.SUCCESS, 150, "b"), T0 + 150)
    assert [(r.run_id, r.duration, r.outcome) for r in step.ended] == [("b", 50, "success")]
    assert step.state.status is Status.RUNNING and set(step.state.runs) == {"a"}
    step = apply_event(cfg, step.state, ev(Kind.FAIL, 400, "a", exit_status=2), T0 + 400)
    assert [(r.run_id, r.duration, r.outcome, r.exit_status) for r in step.ended] == [("a", 400, "fail", 2)]


def test_late_start_and_overrun_are_separate_timers_with_separate_reasons() -> None:
    cfg = check(every=HOUR, grace=300, max_runtime=600)
    late = advance(cfg, initial_state(cfg, T0), T0 + HOUR)
    assert late.state.status is Status.LATE
    started = apply_event(cfg, late.state, ev(Kind.START, HOUR + 100), T0 + HOUR + 100)
    assert started.state.status is Status.RUNNING  # the start anchors: no longer late
    deadline = next_deadline(cfg, started.state)
    assert deadline is not None and deadline.kind == "overrun" and deadline.at == T0 + HOUR + 700
    over = advance(cfg, started.state, T0 + HOUR + 700)
    assert over.state.reason is Reason.OVERRUN and over.ended[0].outcome == "overrun"


def test_a_success_with_no_prior_start_is_up_without_a_duration_or_a_run_row() -> None:
    cfg = check()
    step = apply_event(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 5), T0 + 5)
    assert step.state.status is Status.UP and step.state.last_duration is None and step.ended == ()


def test_an_end_for_an_unknown_run_id_closes_no_run_and_leaves_others_open() -> None:
    cfg = check()
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "a")).state
    step = apply_event(cfg, st, ev(Kind.SUCCESS, 10, "zzz"), T0 + 10)
    assert step.state.status is Status.RUNNING and set(step.state.runs) == {"a"} and step.ended == ()


# ---- stalls -----------------------------------------------------------------------------------


def test_a_run_with_no_progress_for_the_stall_limit_is_down_stalled() -> None:
    cfg = check(stall=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "q")).state
    deadline = next_deadline(cfg, st)
    assert deadline is not None and (deadline.kind, deadline.at) == ("stall", T0 + 60)
    step = advance(cfg, st, T0 + 60)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.STALLED)
    assert step.flip is not None and "no progress for 1 min" in step.flip.detail
    assert step.ended[0].outcome == "stalled" and not step.state.runs


def test_each_progress_or_log_ping_pushes_the_stall_deadline_back() -> None:
    cfg = check(stall=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "q"), ev(Kind.PROGRESS, 50, "q"), ev(Kind.LOG, 100)).state
    deadline = next_deadline(cfg, st)
    assert deadline is not None and deadline.at == T0 + 160
    assert advance(cfg, st, T0 + 159).state.status is Status.RUNNING


def test_progress_for_an_unknown_run_id_is_stored_but_moves_no_clock() -> None:
    cfg = check(stall=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "q"), ev(Kind.PROGRESS, 50, "other")).state
    deadline = next_deadline(cfg, st)
    assert deadline is not None and deadline.at == T0 + 60
    assert st.last_ping_kind is Kind.PROGRESS


def test_a_run_that_is_late_to_start_then_stalls_then_would_overrun_reports_the_stall() -> None:
    cfg = check(every=HOUR, grace=300, stall=120, max_runtime=900)
    late = advance(cfg, initial_state(cfg, T0), T0 + HOUR + 1).state
    assert late.status is Status.LATE
    st = feed(cfg, late, ev(Kind.START, HOUR + 200, "r"), ev(Kind.PROGRESS, HOUR + 260, "r")).state
    assert st.status is Status.RUNNING
    deadline = next_deadline(cfg, st)
    assert deadline is not None and deadline.kind == "stall" and deadline.at == T0 + HOUR + 380
    step = advance(cfg, st, T0 + HOUR + 1100)  # the server catches up past both limits at once
    assert step.state.reason is Reason.STALLED and [r.outcome for r in step.ended] == ["stalled"]


# ---- fan-in -----------------------------------------------------------------------------------


def test_a_run_still_open_when_its_check_went_down_ends_at_its_limit_and_the_next_good_run_recovers_the_check() -> None:
    cfg = check(every=HOUR, max_runtime=600)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "a"), ev(Kind.START, 1, "b"), ev(Kind.FAIL, 2, "a")).state
    step = advance(cfg, st, T0 + 601)  # b overran while the check was down: recorded, the down stands
    assert step.flip is None and (step.state.status, step.state.reason) == (Status.DOWN, Reason.FAILED)
    assert [(r.run_id, r.outcome) for r in step.ended] == [("b", "overrun")] and not step.state.runs
    step = feed(cfg, step.state, ev(Kind.START, 700, "c"), ev(Kind.SUCCESS, 701, "c"))
    assert step.flip is not None and (step.flip.old, step.flip.new) == (Status.DOWN, Status.UP)


def test_a_batch_open_when_another_batchs_worker_failed_does_not_keep_the_check_down_after_a_complete_batch() -> None:
    cfg = check(expect=2, max_runtime=600)
    batches = [ev(Kind.SUCCESS, 0, "a", member="w1"), ev(Kind.SUCCESS, 1, "b", member="w1")]
    st = feed(cfg, initial_state(cfg, T0), *batches, ev(Kind.FAIL, 2, "a", member="w2")).state
    assert (st.status, st.reason) == (Status.DOWN, Reason.FAILED)
    late = [ev(Kind.SUCCESS, 700, "c", member="w1"), ev(Kind.SUCCESS, 701, "c", member="w2")]
    step = feed(cfg, st, *late)  # batch b's limit passed meanwhile: recorded as incomplete, told by nobody
    assert step.flip is not None and (step.flip.old, step.flip.new) == (Status.DOWN, Status.UP)
    assert step.state.status is Status.UP and not step.state.runs


def test_a_fan_in_run_is_complete_when_n_successes_share_its_run_id() -> None:
    cfg = check(expect=3, max_runtime=600)
    st = initial_state(cfg, T0)
    st = feed(cfg, st, ev(Kind.SUCCESS, 10, "b1", member="w1"), ev(Kind.SUCCESS, 20, "b1", member="w2")).state
    assert st.status is Status.RUNNING and st.runs["b1"].successes == 2 and st.last_success_at is None
    step = apply_event(cfg, st, ev(Kind.SUCCESS, 40, "b1", member="w3"), T0 + 40)
    assert step.state.status is Status.UP and not step.state.runs and step.state.last_duration == 30
    assert step.ended[0].members == ("w1", "w2", "w3") and step.state.last_members == ("w1", "w2", "w3")


def test_a_fan_in_batch_a_worker_failed_is_recorded_with_the_members_that_had_succeeded() -> None:
    cfg = check(expect=3, max_runtime=600)
    batch = [ev(Kind.SUCCESS, 10, "b", member="w1"), ev(Kind.SUCCESS, 20, "b", member="w3")]
    st = feed(cfg, initial_state(cfg, T0), *batch).state
    step = apply_event(cfg, st, ev(Kind.FAIL, 30, "b", member="w2", exit_status=1), T0 + 30)
    assert [(r.run_id, r.outcome, r.members) for r in step.ended] == [("b", "fail", ("w1", "w3"))]


def test_a_fan_in_batch_a_named_worker_failed_names_it_in_its_down_and_its_run() -> None:
    # "batch failed" and "failed with exit status 3" named nobody, though the failure ping named
    # its worker: which of 8 workers to look at was left to the message, if the job wrote one.
    cfg = check(expect=3, max_runtime=600, assertions=(parse_assertion("rows > 0"),))
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 10, "b", member="w1", metrics={"rows": 5.0})).state
    step = apply_event(cfg, st, ev(Kind.FAIL, 30, "b", member="w2", exit_status=3), T0 + 30)
    assert step.flip is not None and step.flip.detail == "failed with exit status 3 (worker w2)"
    assert [r.detail for r in step.ended] == ["failed with exit status 3 (worker w2)"]
    broke = apply_event(cfg, st, ev(Kind.SUCCESS, 30, "b", member="w3", metrics={"rows": 0.0}), T0 + 30)
    assert broke.flip is not None and broke.flip.detail == 'assertion "rows > 0" broke: rows = 0 (worker w3)'
    unnamed = apply_event(cfg, st, ev(Kind.FAIL, 30, "b"), T0 + 30)
    assert unnamed.flip is not None and unnamed.flip.detail == "failed"


def test_a_fan_in_batch_without_a_run_id_a_worker_failed_is_recorded_with_the_members_that_had_succeeded() -> None:
    cfg = check(expect=3, max_runtime=600)
    batch = [ev(Kind.SUCCESS, 10, member="w1"), ev(Kind.SUCCESS, 20, member="w3")]
    st = feed(cfg, initial_state(cfg, T0), *batch).state
    step = apply_event(cfg, st, ev(Kind.FAIL, 30, member="w2", exit_status=1), T0 + 30)
    assert [(r.run_id, r.outcome, r.members) for r in step.ended] == [(None, "fail", ("w1", "w3"))]


def test_a_fan_in_run_short_at_its_deadline_is_incomplete_and_names_the_missing_members() -> None:
    cfg = check(expect=3, members=("w1", "w2", "w3"), grace=120)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 10, "b", member="w2")).state
    step = advance(cfg, st, T0 + 130)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.INCOMPLETE)
    assert step.flip is not None and step.flip.detail == "1 of 3 successes arrived; missing: w1, w3"


def test_a_member_not_listed_in_members_does_not_complete_a_batch_a_listed_member_never_reported_to() -> None:
    cfg = check(expect=3, members=("w1", "w2", "w3"), grace=120)
    batch = [ev(Kind.SUCCESS, 10, "b", member="w1"), ev(Kind.SUCCESS, 20, "b", member="w2")]
    st = feed(cfg, initial_state(cfg, T0), *batch, ev(Kind.SUCCESS, 30, "b", member="w9")).state
    assert st.status is Status.RUNNING and st.runs["b"].successes == 2 and st.last_success_at is None
    step = advance(cfg, st, T0 + 130)
    assert step.flip is not None and step.flip.detail == "2 of 3 successes arrived; missing: w3"


def test_a_success_naming_no_member_does_not_complete_a_batch_whose_members_are_listed() -> None:
    # w1's retry without its member=, or a stray curl: counted, w3 never ran and the batch was up.
    cfg = check(expect=3, members=("w1", "w2", "w3"), grace=120)
    batch = [ev(Kind.SUCCESS, 10, "b", member="w1"), ev(Kind.SUCCESS, 20, "b", member="w2")]
    st = feed(cfg, initial_state(cfg, T0), *batch, ev(Kind.SUCCESS, 30, "b")).state
    assert st.status is Status.RUNNING and st.runs["b"].successes == 2 and st.last_success_at is None
    step = advance(cfg, st, T0 + 130)
    assert step.flip is not None
    assert step.flip.detail == (
        "2 of 3 successes arrived; missing: w3; 1 success named no member (members lists who counts)"
    )


@pytest.mark.parametrize("starts", [True, False], ids=["heartfly-run", "success-only"])
def test_a_batch_of_workers_that_name_no_member_is_told_incomplete_saying_why(starts: bool) -> None:
    # A config that lists members whose workers send no member= (an upgrade, a copied curl): no
    # success counts, and the batch is down. Told "0 of 3 successes arrived; missing: w1, w2,
    # w3" alone, it read as if no worker had run; without starts, "no ping arrived by the
    # deadline" while three had. The alert says how many came naming none, across a restart too.
    cfg = check(expect=3, members=("w1", "w2", "w3"), grace=120)
    opened = [ev(Kind.START, 5 + i, "b") for i in range(3)] if starts else []
    st = feed(cfg, initial_state(cfg, T0), *opened, ev(Kind.SUCCESS, 10, "b"), ev(Kind.SUCCESS, 20, "b")).state
    st = decode_state(encode_state(st))  # a restart mid-batch
    st = feed(cfg, st, ev(Kind.SUCCESS, 30, "b")).state
    assert st.status is Status.RUNNING and st.runs["b"].successes == 0 and st.last_success_at is None
    step = advance(cfg, st, T0 + 200)
    assert step.flip is not None and step.flip.reason is Reason.INCOMPLETE
    assert step.flip.detail == (
        "0 of 3 successes arrived; missing: w1, w2, w3; 3 successes named no member (members lists who counts)"
    )
    unlisted = advance(check(name=cfg.name, key=cfg.key, expect=3, grace=120), st, T0 + 200).flip  # members dropped
    assert unlisted is not None and unlisted.detail == "0 of 3 successes arrived"


def test_without_configured_members_the_missing_ones_come_from_the_last_complete_run() -> None:
    cfg = check(expect=2, grace=60)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="a"), ev(Kind.SUCCESS, 2, "b1", member="b")
    ).state
    st = feed(cfg, st, ev(Kind.SUCCESS, 1000, "b2", member="b")).state
    step = advance(cfg, st, T0 + 1061)
    assert step.flip is not None and step.flip.detail.endswith("missing: a")


def test_a_member_reporting_twice_counts_once() -> None:
    cfg = check(expect=2)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b", member="w1"), ev(Kind.SUCCESS, 2, "b", member="w1")
    ).state
    assert st.runs["b"].successes == 1 and st.status is Status.RUNNING


# ---- assertions -------------------------------------------------------------------------------


def test_a_success_that_breaks_an_assertion_is_a_failure_quoting_it_and_the_value() -> None:
    cfg = check(assertions=(parse_assertion("bytes > 0"),))
    step = apply_event(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 5, metrics={"bytes": 0.0}), T0 + 5)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.ASSERTION)
    assert step.flip is not None and step.flip.detail == 'assertion "bytes > 0" broke: bytes = 0 B'
    fine = apply_event(cfg, step.state, ev(Kind.SUCCESS, 9, metrics={"bytes": 10.0}), T0 + 9)
    assert fine.state.status is Status.UP and fine.flip is not None and fine.flip.is_recovery


def test_a_success_missing_an_asserted_metric_breaks_the_assertion() -> None:
    cfg = check(assertions=(parse_assertion("rows > 0"),))
    step = apply_event(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 5), T0 + 5)
    assert step.state.reason is Reason.ASSERTION and 'no metric "rows"' in (step.flip.detail if step.flip else "")


def test_a_duration_assertion_judges_the_run_and_skips_a_success_without_a_start() -> None:
    cfg = check(assertions=(parse_assertion("duration < 30m"),))
    # Each success waits out the reorder window (a newer start may be on its way), then is judged.
    waiting = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0), ev(Kind.SUCCESS, 2000)).state
    long_run = advance(cfg, waiting, T0 + 2000 + REORDER_WINDOW)
    assert long_run.state.reason is Reason.ASSERTION and long_run.ended[0].outcome == "assertion"
    no_start = apply_event(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 5), T0 + 5)
    assert advance(cfg, no_start.state, T0 + 5 + REORDER_WINDOW).state.status is Status.UP


def test_a_fan_in_workers_success_that_breaks_an_assertion_fails_its_batch_whichever_worker_came_last() -> None:
    cfg = check(expect=3, assertions=(parse_assertion("rows > 0"), parse_assertion("duration > 10m")))
    st = initial_state(cfg, T0)
    step = feed(cfg, st, ev(Kind.SUCCESS, 10, "b1", member="w1", metrics={"rows": 5.0}))
    step = feed(cfg, step.state, ev(Kind.SUCCESS, 20, "b1", member="w2", metrics={"rows": 0.0}))  # an empty shard
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.ASSERTION)
    # Its own metric's words, not the batch's duration so far (the batch was not over by then).
    assert step.flip is not None and step.flip.detail == 'assertion "rows > 0" broke: rows = 0 (worker w2)'
    assert [(r.run_id, r.outcome, r.members) for r in step.ended] == [("b1", "assertion", ("w1",))]
    last = feed(cfg, step.state, ev(Kind.SUCCESS, 30, "b1", member="w3", metrics={"rows": 7.0}))
    assert last.state.status is Status.DOWN and last.flip is None and not last.state.runs  # a straggler now
    good = feed(
        cfg, last.state, *(ev(Kind.SUCCESS, 1000 + i, "b2", member=f"w{i}", metrics={"rows": 1.0}) for i in (1, 2))
    )
    assert good.state.status is Status.DOWN  # a batch under way: not complete yet
    done = feed(cfg, good.state, ev(Kind.SUCCESS, 1700, "b2", member="w3", metrics={"rows": 1.0}))
    assert done.state.status is Status.UP and done.flip is not None and done.flip.is_recovery


def test_a_fan_in_batch_whose_first_ping_breaks_an_assertion_times_no_run_as_a_first_failure_does() -> None:
    cfg = check(expect=2, assertions=(parse_assertion("rows > 0"),))
    w1, w2 = (ev(Kind.SUCCESS, at, "b0", member=m, metrics={"rows": 1.0}) for at, m in ((0, "w1"), (95, "w2")))
    done = feed(cfg, initial_state(cfg, T0), w1, w2)
    assert done.state.status is Status.UP and done.state.last_duration == 95
    broke = feed(cfg, done.state, ev(Kind.SUCCESS, 1000, "b1", member="w1", metrics={"rows": 0.0}))
    assert (broke.state.status, broke.state.reason) == (Status.DOWN, Reason.ASSERTION)
    # No worker had reported: no run to record, and the last timed batch's duration stands. It
    # was recorded as a batch of 0 s, which the dashboard and the alert then showed.
    assert broke.ended == () and broke.state.last_duration == 95
    failed = feed(cfg, done.state, ev(Kind.FAIL, 1000, "b1", member="w1"))  # as a first worker's failure
    assert failed.ended == () and failed.state.last_duration == 95


@pytest.mark.parametrize(
    "text",
    [
        "rows",
        "rows >",
        "rows > lots",
        "duration < soon",
        "1rows > 0",
        "rows => 3",
        "rows > inf",
        "eval('x') > 1",
        "duration < ١٥",
        "rows > １５",
    ],  # another script's digits: no number, as in a duration (units)
)
def test_malformed_assertions_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"assertion|number|duration|finite"):
        parse_assertion(text)


def test_assertions_parse_numbers_comparisons_and_durations() -> None:
    assert parse_assertion("bytes >= 1024").value == 1024
    assert parse_assertion(" duration<1h30m ").value == 5400
    assert parse_assertion("ratio != 0.5").op == "!="


# ---- failure thresholds ------------------------------------------------------------------------


def test_failures_before_alert_tolerates_fewer_failures_in_a_row() -> None:
    log = Log(check(failures_before_alert=3), initial_state(check(failures_before_alert=3), T0))
    log.arrive(T0 + 1, ev(Kind.FAIL, 1))
    log.arrive(T0 + 10, ev(Kind.FAIL, 10))
    log.tick(T0 + 20)
    assert log.st.status is Status.UP and log.st.failures == 2 and log.downs == []
    log.arrive(T0 + 30, ev(Kind.FAIL, 30))
    assert log.st.status is Status.UP  # held for the reorder window: a success before it may be on its way
    log.tick(T0 + 30 + REORDER_WINDOW)
    assert (log.st.status, [f.at for f in log.downs]) == (Status.DOWN, [T0 + 30])  # dated by the failure
    assert log.downs[0].detail == "failed (3 failures in a row)"


def test_a_success_resets_the_count_and_recovers_a_check_downed_by_failures() -> None:
    cfg = check(failures_before_alert=2)
    log = Log(cfg, initial_state(cfg, T0))
    for at, kind in ((1, Kind.FAIL), (10, Kind.SUCCESS), (20, Kind.FAIL)):
        log.arrive(T0 + at, ev(kind, at))
    log.tick(T0 + 30)
    assert log.st.status is Status.UP and log.st.failures == 1
    log.arrive(T0 + 40, ev(Kind.FAIL, 40))
    log.tick(T0 + 50)
    assert (log.st.status, log.st.failures) == (Status.DOWN, 2)
    log.arrive(T0 + 60, ev(Kind.SUCCESS, 60))
    assert log.st.status is Status.UP and log.st.failures == 0 and log.flips[-1].is_recovery


def test_a_success_dated_between_two_failures_that_arrives_last_leaves_no_down_to_take_back() -> None:
    # The second failure waits out the reorder window: the success before it, whose ping raced it
    # and lost, breaks the streak as in event order, and nobody is told a down that never was.
    cfg = check(failures_before_alert=2)
    log = Log(cfg, initial_state(cfg, T0))
    log.arrive(T0 + 1, ev(Kind.FAIL, 1))
    log.tick(T0 + 10)
    log.arrive(T0 + 20, ev(Kind.FAIL, 20), ev(Kind.SUCCESS, 19.5))
    log.tick(T0 + 40)
    assert (log.st.status, log.st.failures, log.downs) == (Status.UP, 1, [])


# ---- pipeline steps ---------------------------------------------------------------------------


def step_check(**kw: object) -> CheckConfig:
    return check("transform", every=None, after="extract", within=HOUR, **kw)


def test_a_step_is_never_due_on_its_own_until_its_upstream_arms_it() -> None:
    cfg = step_check()
    st = initial_state(cfg, T0)
    assert next_deadline(cfg, st) is None and advance(cfg, st, T0 + 10 * HOUR).state.status is Status.NEW
    armed = arm_step(cfg, st, T0 + 100)
    deadline = next_deadline(cfg, armed)
    assert deadline is not None and (deadline.kind, deadline.at) == ("step", T0 + 100 + HOUR)


def test_a_step_that_succeeds_within_its_window_is_disarmed() -> None:
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    done = apply_event(cfg, armed, ev(Kind.SUCCESS, 1000), T0 + 1000)
    assert done.state.status is Status.UP and done.state.step_due is None and next_deadline(cfg, done.state) is None


def test_a_step_with_no_success_within_its_window_is_down_step_missed() -> None:
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    step = advance(cfg, armed, T0 + 100 + HOUR)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.STEP_MISSED)
    assert step.flip is not None and step.flip.detail == "no success within 1 h of extract's start"


def test_a_step_armed_before_an_operators_pause_and_resume_is_still_due() -> None:
    # Extract ran; transform was paused and resumed a minute later (a look at its logs): the resume
    # dropped the arming, so a transform that never ran was told nothing, ever.
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    st = resume(cfg, pause(armed, T0 + 200).state, T0 + 260).state
    assert st.step_due == T0 + 100 + HOUR
    step = advance(cfg, st, T0 + 100 + HOUR)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.STEP_MISSED)
    assert step.flip is not None and step.flip.detail == "no success within 1 h of extract's start"


def test_a_step_armed_before_a_standbys_resume_is_due_as_on_one_node() -> None:
    # A standby's resume, asked 5 s before the step's deadline and applied by the leader 5 s after
    # it (asked_at): on one node the step was watched again before its deadline and told
    # step_missed; the leader compared the deadline with its own now and dropped it, unsaid.
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    due = T0 + 100 + HOUR
    st = resume(cfg, pause(armed, T0 + 200).state, due + 5, asked_at=due - 5).state
    assert st.step_due == due
    step = advance(cfg, st, due + 5)
    assert (step.state.status, step.state.reason) == (Status.DOWN, Reason.STEP_MISSED)


def test_a_step_whose_window_passed_while_it_was_paused_is_not_judged_at_the_resume() -> None:
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    st = resume(cfg, pause(armed, T0 + 200).state, T0 + 2 * HOUR).state
    assert st.step_due is None and advance(cfg, st, T0 + 3 * HOUR).flip is None


def test_an_armed_step_keeps_its_first_deadline_when_the_upstream_triggers_again() -> None:
    cfg = step_check()
    armed = arm_step(cfg, initial_state(cfg, T0), T0 + 100)
    assert arm_step(cfg, armed, T0 + 500) is armed


def test_a_steps_own_success_held_for_the_reorder_window_leaves_the_arming_after_it_standing() -> None:
    # failures_before_alert 2: the step's success waits out the window; its upstream triggers a
    # second after it. In event order the success came first: the step must run again in time.
    cfg = step_check(failures_before_alert=2)
    log = Log(cfg, initial_state(cfg, T0))
    log.arrive(T0 + 100, ev(Kind.SUCCESS, 100))
    log.st = arm_step(cfg, log.st, T0 + 101, T0 + 101)
    log.tick(T0 + 200)
    assert (log.st.status, log.st.step_due) == (Status.UP, T0 + 101 + HOUR)
    log.tick(T0 + 101 + HOUR)
    assert [(f.new, f.reason) for f in log.flips][-1] == (Status.DOWN, Reason.STEP_MISSED)


def test_state_with_open_fan_in_runs_and_an_armed_step_survives_a_json_round_trip() -> None:
    cfg = check(expect=3)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b", member="w1")).state
    st.step_due, st.step_since, st.last_members = T0 + 50, T0, ("w1", "w2")
    assert CheckState.from_json(st.to_json()) == st


def test_a_schema_1_state_with_bare_run_start_times_still_loads() -> None:
    cfg = check()
    data = initial_state(cfg, T0).to_json()
    data["runs"] = {"r": T0 + 5}
    st = CheckState.from_json(data)
    assert st.runs["r"].started_at == T0 + 5 and st.runs["r"].active_at == T0 + 5


def test_a_spooled_success_older_than_a_newer_failure_does_not_recover_the_check() -> None:
    cfg = check()
    down = apply_event(cfg, initial_state(cfg, T0), ev(Kind.FAIL, 1000), T0 + 1000).state
    late_news = feed(cfg, down, ev(Kind.START, 400, "r1"), ev(Kind.SUCCESS, 700, "r1"))
    assert late_news.state.status is Status.DOWN and late_news.state.reason is Reason.FAILED
    assert late_news.ended[0].duration == 300  # the run is still recorded, with its true times
    assert late_news.state.last_success_at == T0 + 700


def test_a_spooled_failure_older_than_a_newer_success_does_not_take_the_check_down() -> None:
    cfg = check()
    up = apply_event(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1000), T0 + 1000).state
    old_failure = apply_event(cfg, up, ev(Kind.FAIL, 500, exit_status=2), T0 + 1001)
    assert old_failure.state.status is Status.UP and old_failure.flip is None and old_failure.state.failures == 0


def test_fan_in_workers_that_also_send_a_start_keep_their_batch_counting() -> None:
    cfg = check(expect=3, max_runtime=600)
    st = initial_state(cfg, T0)
    for n, member in enumerate(("w1", "w2", "w3")):
        st = feed(
            cfg, st, ev(Kind.START, 10 * n, "b", member=member), ev(Kind.SUCCESS, 10 * n + 5, "b", member=member)
        ).state
    assert st.status is Status.UP and not st.runs and st.last_members == ("w1", "w2", "w3")


def test_a_straggler_of_an_incomplete_batch_opens_no_new_run() -> None:
    cfg = check(expect=2, grace=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="a")).state
    st = advance(cfg, st, T0 + 62).state
    assert st.reason is Reason.INCOMPLETE
    late = feed(cfg, st, ev(Kind.SUCCESS, 70, "b1", member="b")).state
    assert not late.runs
    done = feed(cfg, late, ev(Kind.SUCCESS, 80, "b2", member="a"), ev(Kind.SUCCESS, 81, "b2", member="b"))
    assert done.state.status is Status.UP and next_deadline(cfg, done.state) is not None
    assert next_deadline(cfg, done.state).kind == "late"  # type: ignore[union-attr]


def test_the_stragglers_of_a_batch_given_up_as_stalled_neither_reopen_nor_complete_it() -> None:
    cfg = check(expect=2, grace=300, stall=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.START, 0, "b1")).state
    stalled = advance(cfg, st, T0 + 60)
    assert stalled.state.reason is Reason.STALLED and [r.outcome for r in stalled.ended] == ["stalled"]
    late = feed(cfg, stalled.state, ev(Kind.SUCCESS, 100, "b1", member="a"), ev(Kind.SUCCESS, 110, "b1", member="b"))
    # Recorded, not counted: the batch is over. Counted anew, they made a second b1 batch that
    # "completed" and recovered the check, though the batch had stalled.
    assert late.state.status is Status.DOWN and late.state.reason is Reason.STALLED
    assert not late.state.runs and late.flip is None


def test_a_failed_worker_closes_its_batch() -> None:
    cfg = check(expect=3)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.FAIL, 1, "b1", member="w1"), ev(Kind.SUCCESS, 2, "b1", member="w2")
    ).state
    assert st.status is Status.DOWN and not st.runs


def test_two_workers_failing_in_one_batch_are_one_failure_towards_failures_before_alert() -> None:
    cfg = check(expect=3, failures_before_alert=2)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="w1")).state
    first = feed(cfg, st, ev(Kind.FAIL, 2, "b1", member="w2"))
    assert first.state.status is Status.UP and first.state.failures == 1
    second = feed(cfg, first.state, ev(Kind.FAIL, 3, "b1", member="w3"))  # the same batch, over already
    assert second.state.status is Status.UP and second.state.failures == 1 and second.flip is None
    nxt = feed(cfg, second.state, ev(Kind.FAIL, 100, "b2", member="w1"))  # the next batch fails too: two in a row
    assert nxt.state.status is Status.DOWN and nxt.flip is not None and "2 failures in a row" in nxt.flip.detail


def test_a_worker_failing_after_its_batch_completed_is_told_once_and_not_counted_twice() -> None:
    # A third worker where two successes complete the batch: its failure is a failure of its own
    # (never silent), and a fourth failing in the same batch is no second one.
    cfg = check(expect=2, failures_before_alert=2)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="w1"), ev(Kind.SUCCESS, 2, "b1", member="w2")
    )
    assert st.state.status is Status.UP
    late = feed(cfg, st.state, ev(Kind.FAIL, 3, "b1", member="w3"))
    assert late.state.status is Status.UP and late.state.failures == 1
    again = feed(cfg, late.state, ev(Kind.FAIL, 4, "b1", member="w4"))
    assert again.state.failures == 1 and again.flip is None
    restored = CheckState.from_json(json.loads(json.dumps(again.state.to_json())))
    assert restored.failed_runs == ("b1",) and feed(cfg, restored, ev(Kind.FAIL, 5, "b1")).state.failures == 1
    down = feed(cfg, again.state, ev(Kind.FAIL, 100, "b2", member="w1"))  # the next batch fails: two in a row
    assert down.state.status is Status.DOWN


def test_a_worker_failing_after_its_batch_completed_takes_a_check_of_one_failure_down() -> None:
    cfg = check(expect=2)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="w1"), ev(Kind.SUCCESS, 2, "b1", member="w2")
    )
    late = feed(cfg, st.state, ev(Kind.FAIL, 3, "b1", member="w3"))
    assert late.state.status is Status.DOWN and late.flip is not None


def test_a_run_id_forgotten_as_over_counts_its_new_batchs_failure_though_it_failed_late_once() -> None:
    # b1 completed, then failed by a late worker; 32 batches after it its id is forgotten as over
    # (docs/jobs.md: the last 32), so a batch sent under it again is a new batch, failure and all.
    cfg = check(expect=2, max_runtime=HOUR)
    st = feed(
        cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 1, "b1", member="w1"), ev(Kind.SUCCESS, 2, "b1", member="w2")
    ).state
    st = feed(cfg, st, ev(Kind.FAIL, 3, "b1", member="w3")).state
    for n in range(32):
        at = 100 + 10 * n
        st = feed(
            cfg, st, ev(Kind.SUCCESS, at, f"c{n}", member="w1"), ev(Kind.SUCCESS, at + 1, f"c{n}", member="w2")
        ).state
    assert st.status is Status.UP and "b1" not in st.closed_runs
    again = feed(cfg, st, ev(Kind.FAIL, 1000, "b1", member="w1"))
    assert again.state.status is Status.DOWN and again.flip is not None and again.state.failures == 1
    assert set(st.failed_runs) <= set(st.closed_runs)  # failed_runs is a subset of closed_runs


def test_an_end_stamped_before_its_own_runs_start_closes_it_with_no_duration_to_judge() -> None:
    cfg = check(min_runtime=60)
    st = feed(cfg, initial_state(cfg, T0), ev(Kind.SUCCESS, 100), ev(Kind.START, 110, "r")).state
    step = apply_event(cfg, st, ev(Kind.SUCCESS, 50, "r"), T0 + 120)  # the client's clock lags the server's
    assert step.state.status is Status.UP and not step.state.runs and step.state.last_duration is None
    assert [(r.run_id, r.duration, r.outcome) for r in step.ended] == [("r", 0, "success")]  # not too_fast
