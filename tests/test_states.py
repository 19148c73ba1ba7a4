"""The state machine, purely: a check, a state, an event and a time in; a state and a flip out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from heartfly.core.assertions import parse_assertion
from heartfly.core.checkconfig import CheckConfig
from heartfly.core.states import (
    REORDER_WINDOW,
    CheckState,
    Deadline,
    DeadlineKind,
    Event,
    Kind,
    Reason,
    RunOutcome,
    Status,
    account_downtime,
    advance,
    apply_event,
    apply_held,
    fire_time,
    initial_state,
    next_deadline,
    pause,
    receive,
    reconfigure,
    resume,
)
from heartfly.core.statetypes import NO_RUNS
from tests.conftest import check
from tests.test_event_time import Log

T0 = 1_780_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR


def test_a_new_check_is_watched_from_when_it_first_appears() -> None:
    cfg = check(every=HOUR, grace=300)
    st = initial_state(cfg, T0)
    assert st.status is Status.NEW
    assert st.due_at == T0 + HOUR
    deadline = next_deadline(cfg, st)
    assert deadline is not None and deadline.at == T0 + HOUR and deadline.kind == "late"


def test_a_check_that_never_pings_goes_late_then_down_missed() -> None:
    cfg = check(every=HOUR, grace=300)
    st = initial_state(cfg, T0)
    st, flip, _ = advance(cfg, st, T0 + HOUR - 0.001)
    assert flip is None and st.status is Status.NEW
    st, flip, _ = advance(cfg, st, T0 + HOUR)
    assert st.status is Status.LATE and flip is not None and flip.deadline == T0 + HOUR
    st, flip, _ = advance(cfg, st, T0 + HOUR + 300)
    assert st.status is Status.DOWN and st.reason is Reason.MISSED
    assert flip is not None and flip.is_down and flip.old is Status.LATE


def test_zero_grace_goes_straight_to_down_at_the_due_time() -> None:
    cfg = check(every=60, grace=0)
    st, flip, _ = advance(cfg, initial_state(cfg, T0), T0 + 60)
    assert st.status is Status.DOWN and flip is not None and flip.old is Status.NEW


def test_a_success_moves_the_every_deadline_to_a_period_after_it() -> None:
    cfg = check(every=HOUR)
    st, flip, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 100), T0 + 100)
    assert st.status is Status.UP and flip is not None and flip.old is Status.NEW
    assert st.due_at == T0 + 100 + HOUR


def test_a_success_after_down_is_a_recovery() -> None:
    cfg = check(every=60, grace=0)
    st, _, _ = advance(cfg, initial_state(cfg, T0), T0 + 60)
    st, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 70), T0 + 70)
    assert st.status is Status.UP
    assert flip is not None and flip.is_recovery


def test_a_failure_is_down_at_once_with_its_exit_status() -> None:
    cfg = check()
    st, flip, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.FAIL, T0 + 5, exit_status=3), T0 + 5)
    assert st.status is Status.DOWN and st.reason is Reason.FAILED and st.last_exit_status == 3
    assert flip is not None and "exit status 3" in flip.detail


def test_a_second_failure_while_down_makes_no_new_flip() -> None:
    cfg = check()
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.FAIL, T0 + 5), T0 + 5)
    st, flip, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 6), T0 + 6)
    assert flip is None and st.failures == 2


def test_log_and_progress_pings_change_nothing_but_the_last_ping() -> None:
    cfg = check()
    st0, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 1), T0 + 1)
    for kind in (Kind.LOG, Kind.PROGRESS):
        st, flip, _ = apply_event(cfg, st0, Event(kind, T0 + 2), T0 + 2)
        assert flip is None and st.status is Status.UP and st.due_at == st0.due_at
        assert st.last_ping_at == T0 + 2 and st.last_ping_kind is kind


def test_start_and_end_are_paired_by_run_id_and_timed() -> None:
    cfg = check()
    st = initial_state(cfg, T0)
    st, _, _ = apply_event(cfg, st, Event(Kind.START, T0 + 10, run_id="a"), T0 + 10)
    st, _, _ = apply_event(cfg, st, Event(Kind.START, T0 + 20, run_id="b"), T0 + 20)
    assert st.status is Status.RUNNING and set(st.runs) == {"a", "b"}
    st, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 40, run_id="a"), T0 + 40)
    assert st.last_duration == 30 and st.status is Status.RUNNING and flip is None
    st, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 45, run_id="b"), T0 + 45)
    assert st.last_duration == 25 and st.status is Status.UP and not st.runs


def test_an_end_without_run_id_closes_the_latest_start() -> None:
    cfg = check()
    st = initial_state(cfg, T0)
    st, _, _ = apply_event(cfg, st, Event(Kind.START, T0 + 10), T0 + 10)
    st, _, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 25), T0 + 25)
    assert st.last_duration == 15 and not st.runs


def test_an_end_without_a_start_keeps_the_last_timed_runs_duration_and_when_that_run_ended() -> None:
    cfg = check()
    st = initial_state(cfg, T0)
    st, _, _ = apply_event(cfg, st, Event(Kind.START, T0 + 10), T0 + 10)
    st, _, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 40), T0 + 40)
    assert (st.last_duration, st.last_duration_at) == (30, T0 + 40)
    st, _, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 100), T0 + 100)  # no start: times nothing
    assert (st.status, st.last_duration, st.last_duration_at, st.last_end_at) == (Status.UP, 30, T0 + 40, T0 + 100)
    st, flip, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 200), T0 + 200)  # nor does this
    assert flip is not None and flip.new is Status.DOWN
    assert (st.last_duration, st.last_duration_at, st.last_end_at) == (30, T0 + 40, T0 + 200)
    assert CheckState.from_json(st.to_json()) == st  # checkpointed with it
    st, _, _ = apply_event(cfg, st, Event(Kind.START, T0 + 300), T0 + 300)
    st, _, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 305), T0 + 305)
    assert (st.last_duration, st.last_duration_at) == (5, T0 + 305)  # a timed run replaces it


def test_a_run_past_max_runtime_is_down_overrun_and_its_run_is_given_up() -> None:
    cfg = check(every=HOUR, max_runtime=600)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 10), T0 + 10)
    deadline = next_deadline(cfg, st)
    assert deadline is not None and deadline.kind == "overrun" and deadline.at == T0 + 610
    st, flip, _ = advance(cfg, st, T0 + 610)
    assert st.status is Status.DOWN and st.reason is Reason.OVERRUN and not st.runs
    assert flip is not None and flip.old is Status.RUNNING
    st, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 700), T0 + 700)
    assert st.status is Status.UP and flip is not None and flip.is_recovery
    assert st.last_duration is None  # its run was given up, so no duration is made up


def test_an_end_sooner_than_min_runtime_is_down_too_fast_once_the_reorder_window_has_passed() -> None:
    cfg = check(min_runtime=60)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0), T0)
    st, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 5), T0 + 5)
    assert st.status is Status.RUNNING and flip is None  # a newer start may still be on its way
    assert next_deadline(cfg, st) == Deadline(T0 + 5, DeadlineKind.END)
    assert fire_time(st, Deadline(T0 + 5, DeadlineKind.END)) == T0 + 5 + REORDER_WINDOW
    st, flip, ended = advance(cfg, st, T0 + 5 + REORDER_WINDOW)
    assert st.status is Status.DOWN and st.reason is Reason.TOO_FAST and not st.waiting
    assert flip is not None and "min_runtime" in flip.detail
    assert (flip.at, flip.learned_at, st.alerted_at) == (T0 + 5, None, T0 + 5 + REORDER_WINDOW)
    assert [(r.started_at, r.ended_at, r.outcome) for r in ended] == [(T0, T0 + 5, RunOutcome.TOO_FAST)]


def test_a_success_with_no_start_is_not_judged_by_min_runtime() -> None:
    cfg = check(min_runtime=60)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 5), T0 + 5)
    st = advance(cfg, st, T0 + 5 + REORDER_WINDOW).state
    assert st.status is Status.UP


def test_a_success_waits_for_its_start_only_where_a_runs_duration_is_judged() -> None:
    for cfg, waits in (
        (check(), False),
        (check(min_runtime=1), True),
        (check(assertions=(parse_assertion("duration < 9s"),)), True),
    ):
        st = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 5), T0 + 5).state
        assert bool(st.waiting) is waits and (st.status is Status.UP) is not waits
    cfg = check(min_runtime=1)  # with its start open, a run id pairs it exactly: no wait
    st = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0, "r1"), T0).state
    st = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 5, "r1"), T0 + 5).state
    assert not st.waiting and st.status is Status.UP
    # A batch's pings are in event order already (window 0): none waits.
    st = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 5), T0 + 5, window=0.0).state
    assert not st.waiting and st.status is Status.UP


def test_with_max_runtime_a_start_anchors_an_every_schedule() -> None:
    cfg = check(every=HOUR, max_runtime=600)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 100), T0 + 100)
    assert st.due_at == T0 + 100 + HOUR


def test_without_max_runtime_only_an_end_anchors_an_every_schedule() -> None:
    cfg = check(every=HOUR)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 100), T0 + 100)
    assert st.due_at == T0 + HOUR  # a job that starts and hangs is still caught at its due time


def test_a_late_check_that_starts_without_anchoring_stays_late_without_flapping() -> None:
    cfg = check(every=HOUR, grace=600)
    st, _, _ = advance(cfg, initial_state(cfg, T0), T0 + HOUR + 1)
    assert st.status is Status.LATE
    st, flip, _ = apply_event(cfg, st, Event(Kind.START, T0 + HOUR + 2), T0 + HOUR + 2)
    assert flip is None and st.status is Status.LATE and st.runs


def test_a_cron_check_is_due_at_the_first_tick_after_the_last_ping() -> None:
    cfg = check(cron="0 3 * * *", timezone="UTC")
    t = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    st = initial_state(cfg, t)
    day_start = t - (t % 86400)
    assert st.due_at == day_start + 86400 + 3 * HOUR
    st, _, _ = apply_event(cfg, st, Event(Kind.SUCCESS, st.due_at + 30), st.due_at + 30)
    assert st.due_at == day_start + 2 * 86400 + 3 * HOUR


def test_a_spooled_success_after_a_real_miss_recovers_as_of_its_time_and_the_next_miss_waits_the_window() -> None:
    cfg = check(every=60, grace=0)
    st, _, _ = advance(cfg, initial_state(cfg, T0), T0 + 60)
    now = T0 + 1000
    st2, flip, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 100), now)
    assert flip is not None and flip.is_recovery and (flip.at, flip.learned_at) == (T0 + 100, now)
    assert "the job did run" in flip.detail and st2.last_success_at == T0 + 100
    deadline = next_deadline(cfg, st2)
    assert deadline is not None and deadline.at == T0 + 160
    assert fire_time(st2, deadline) == now + REORDER_WINDOW  # the pings behind it may still come
    st3, flip, _ = advance(cfg, st2, now + REORDER_WINDOW)
    assert st3.reason is Reason.MISSED and flip is not None and flip.at == T0 + 160


def test_an_older_spooled_ping_does_not_move_the_last_ping_backwards() -> None:
    cfg = check()
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 500), T0 + 500)
    st, _, _ = apply_event(cfg, st, Event(Kind.LOG, T0 + 100), T0 + 501)
    assert st.last_ping_at == T0 + 500 and st.last_ping_kind is Kind.SUCCESS
    assert st.due_at == T0 + 500 + HOUR


def test_a_paused_check_records_pings_but_has_no_deadline_and_resume_watches_from_now() -> None:
    cfg = check(every=60, grace=0)
    st, flip, _ = pause(initial_state(cfg, T0), T0 + 1)
    assert st.status is Status.PAUSED and flip is not None and next_deadline(cfg, st) is None
    st, flip, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 2), T0 + 2)
    assert st.status is Status.PAUSED and flip is None
    st, _, _ = advance(cfg, st, T0 + 10_000)
    assert st.status is Status.PAUSED
    st, flip, _ = resume(cfg, st, T0 + 10_000)
    assert st.status is Status.UP and st.due_at == T0 + 10_060 and flip is not None


def test_a_resumed_check_does_not_count_the_failures_before_its_pause_towards_failures_before_alert() -> None:
    # The streak took the check down; the operator paused it, fixed the job and resumed it.
    cfg = check(every=HOUR, failures_before_alert=3)
    log = Log(cfg, initial_state(cfg, T0))
    for i in range(3):
        log.arrive(T0 + 10 + 10 * i, Event(Kind.FAIL, T0 + 10 + 10 * i))
    log.tick(T0 + 100)
    assert log.st.status is Status.DOWN
    st, _, _ = resume(cfg, pause(log.st, T0 + 100).state, T0 + 200)
    assert (st.status, st.failures, st.streak_ats) == (Status.UP, 0, ())
    log = Log(cfg, st)
    for i in range(2):  # a check watched afresh tolerates two
        log.arrive(T0 + 300 + 10 * i, Event(Kind.FAIL, T0 + 300 + 10 * i))
    log.tick(T0 + 350)
    assert log.st.status is Status.UP and log.flips == []
    log.arrive(T0 + 400, Event(Kind.FAIL, T0 + 400))
    log.tick(T0 + 400 + REORDER_WINDOW)
    assert (log.st.status, [f.detail for f in log.flips]) == (Status.DOWN, ["failed (3 failures in a row)"])


def test_failures_while_paused_do_not_count_towards_failures_before_alert_after_the_resume() -> None:
    cfg = check(every=HOUR, failures_before_alert=2)
    st = pause(initial_state(cfg, T0), T0 + 1).state
    for i in range(3):
        st, _, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 10 + i), T0 + 10 + i)
    assert (st.status, st.failures, st.streak_ats) == (Status.PAUSED, 0, ())
    st, _, _ = resume(cfg, st, T0 + 100)
    st, flip, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 200), T0 + 200)
    assert st.status is Status.UP and flip is None


def test_a_failure_sent_while_paused_that_arrives_after_the_resume_counts_nothing() -> None:
    # Spooled by its client while the check was paused, replayed after the resume: as if it had
    # come during the pause. Its run is still recorded.
    cfg = check(every=HOUR, min_runtime=60)
    st = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 1), T0 + 1).state
    st = apply_held(cfg, st, T0 + 10)[-1].state  # the success waited for a start on its way
    st = resume(cfg, pause(st, T0 + 10).state, T0 + 100).state
    for late in (Event(Kind.FAIL, T0 + 50, exit_status=3), Event(Kind.START, T0 + 60), Event(Kind.SUCCESS, T0 + 70)):
        st, flip, _ = apply_event(cfg, st, late, T0 + 200)
        assert st.failures == 0 and (flip is None or not flip.is_down)
    st, flip, ended = apply_held(cfg, st, T0 + 206)[-1]  # the success, too fast
    assert (st.status, st.failures) == (Status.UP, 0) and flip is not None and not flip.is_down
    assert [run.outcome for run in ended] == [RunOutcome.TOO_FAST]
    st = apply_event(cfg, st, Event(Kind.FAIL, T0 + 300), T0 + 300).state  # after the resume: counted
    st, flip, _ = apply_held(cfg, st, T0 + 306)[-1]  # once a success on its way could no longer come first
    assert st.status is Status.DOWN and flip is not None


def test_a_run_ping_dated_after_the_pause_resumes_a_check_with_resume_on_ping_and_then_counts() -> None:
    cfg = check(every=HOUR, resume_on_ping=True)
    st = pause(apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 1), T0 + 1).state, T0 + 10).state
    for quiet in (Event(Kind.LOG, T0 + 20), Event(Kind.SUCCESS, T0 + 5, exit_status=0)):  # a log; one before the pause
        steps = receive(cfg, st, quiet, T0 + 30)
        assert [s.state.status for s in steps] == [Status.PAUSED]
        st = steps[-1].state
    steps = receive(cfg, st, Event(Kind.FAIL, T0 + 40), T0 + 40)
    assert [(s.flip.old, s.flip.new) for s in steps if s.flip] == [(Status.PAUSED, Status.UP), (Status.UP, Status.DOWN)]
    assert steps[0].flip is not None and steps[0].flip.detail == "resumed by a ping (resume_on_ping)"
    assert steps[-1].state.due_at == T0 + 40 + HOUR  # watched again from the ping


def test_without_resume_on_ping_a_ping_leaves_a_paused_check_paused() -> None:
    cfg = check(every=HOUR)
    st = pause(initial_state(cfg, T0), T0 + 10).state
    steps = receive(cfg, st, Event(Kind.SUCCESS, T0 + 40), T0 + 40)
    assert [s.state.status for s in steps] == [Status.PAUSED]


def test_a_deadline_inside_the_servers_downtime_is_extended_by_the_downtime() -> None:
    cfg = check(every=100, grace=50)
    st = initial_state(cfg, T0)  # due at T0+100
    moved = account_downtime(cfg, st, stopped_at=T0 + 90, started_at=T0 + 130)
    assert next_deadline(cfg, moved) == Deadline(T0 + 140, DeadlineKind.LATE)
    late, _, _ = advance(cfg, moved, T0 + 140)
    assert late.status is Status.LATE
    down_deadline = next_deadline(cfg, late)
    assert down_deadline is not None and down_deadline.at == T0 + 190  # grace counts from the extended time


def test_a_downtime_given_again_from_the_same_stop_extends_only_past_the_start_that_gave_it() -> None:
    # A start that crashed before its alive mark leaves the next one the stop before it.
    cfg = check(every=100, grace=0)
    moved = account_downtime(cfg, initial_state(cfg, T0), stopped_at=T0 + 50, started_at=T0 + 150)
    assert (moved.slack, moved.downtime_to) == (100, T0 + 150)
    again = account_downtime(cfg, moved, stopped_at=T0 + 50, started_at=T0 + 210)  # deadline +200 inside
    assert again.slack == 160 and next_deadline(cfg, again) == Deadline(T0 + 260, DeadlineKind.MISSED)
    assert account_downtime(cfg, moved, stopped_at=T0 + 50, started_at=T0 + 180) is moved  # +200 after it


def test_a_deadline_before_the_stop_is_not_extended_and_fires_at_once() -> None:
    cfg = check(every=100, grace=0)
    st = initial_state(cfg, T0)
    moved = account_downtime(cfg, st, stopped_at=T0 + 120, started_at=T0 + 500)
    assert moved is st
    down, flip, _ = advance(cfg, moved, T0 + 500)
    assert down.status is Status.DOWN and flip is not None and flip.deadline == T0 + 100


def test_a_deadline_after_the_restart_is_left_alone() -> None:
    cfg = check(every=1000)
    st = initial_state(cfg, T0)
    assert account_downtime(cfg, st, stopped_at=T0 + 10, started_at=T0 + 20) is st


def test_a_reload_that_leaves_the_schedule_alone_keeps_the_deadline_and_its_downtime_extension() -> None:
    cfg = check(every=100, grace=50)
    moved = account_downtime(cfg, initial_state(cfg, T0), stopped_at=T0 + 90, started_at=T0 + 130)
    regraced = check(name=cfg.name, key=cfg.key, every=100, grace=80)
    again = reconfigure(regraced, moved, T0 + 131, old=cfg).state
    assert (again.due_at, again.slack) == (T0 + 100, 40)
    rescheduled = reconfigure(check(name=cfg.name, key=cfg.key, every=200), moved, T0 + 131, old=cfg).state
    assert (rescheduled.due_at, rescheduled.slack) == (T0 + 200, 0)


def test_a_restart_with_the_schedule_unchanged_keeps_the_stored_state_itself() -> None:
    cfg = check(every=100, grace=50)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 10), T0 + 10)
    kept = reconfigure(cfg, st, T0 + 20)  # no old config: what a restart reads may have changed
    assert kept.state is st and kept.flip is None
    # The same state under a changed schedule is a new one, whose new due time drops the slack.
    extended = account_downtime(cfg, st, stopped_at=T0 + 100, started_at=T0 + 130)
    moved = reconfigure(check(name=cfg.name, key=cfg.key, every=300), extended, T0 + 140).state
    assert moved is not extended and (moved.due_at, moved.slack, st.due_at) == (T0 + 310, 0, T0 + 110)
    # A downtime extension with the schedule unchanged is kept: the next restart must not take
    # back what the last one extended (it would alert at once for a deadline now behind it).
    again = reconfigure(cfg, extended, T0 + 140)
    assert again.state is extended and again.flip is None and (extended.slack, extended.due_at) == (30, T0 + 110)
    # A reload (the old config known) copies even so: a refused commit of a ping in flight takes
    # back only the state that ping made, which must not be the reloaded one.
    regraced = check(name=cfg.name, key=cfg.key, every=100, grace=80)
    assert reconfigure(regraced, st, T0 + 20, old=cfg).state is not st


def test_a_schedule_made_tighter_expects_no_run_before_the_change_that_the_old_one_did_not() -> None:
    # Every hour made every 30 min, 40 min after an on-time ping: down at once (dated before the
    # reload) for a run the old schedule did not expect yet. Expected 30 min after the change.
    hourly = check(every=3600, grace=300)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0 + 10), T0 + 10)
    now = T0 + 10 + 40 * 60
    half_hourly = check(name=hourly.name, key=hourly.key, every=1800, grace=300)
    for old in (hourly, None):  # a reload, and a restart after the same edit
        moved = reconfigure(half_hourly, st, now, old=old).state
        assert moved.due_at == now + 1800
        assert advance(half_hourly, moved, now + 1)[0].status is Status.UP
        assert advance(half_hourly, moved, now + 1800 + 300)[0].status is Status.DOWN
    # A run the old schedule was late for already stays late: not hidden by the change.
    late = T0 + 10 + 3600 + 60
    assert reconfigure(half_hourly, st, late, old=hourly).state.due_at == T0 + 10 + 3600  # its own due time, past


def test_a_cron_job_moved_earlier_is_expected_at_its_new_time_after_the_change() -> None:
    day1 = datetime(2026, 6, 1, 3, 0, tzinfo=UTC).timestamp()
    at3 = check(cron="0 3 * * *", grace=300)
    st, _, _ = apply_event(at3, initial_state(at3, day1 - 60), Event(Kind.SUCCESS, day1), day1)
    now = datetime(2026, 6, 2, 2, 30, tzinfo=UTC).timestamp()  # 02:30: moved to 02:00, run tomorrow
    at2 = check(name=at3.name, key=at3.key, cron="0 2 * * *", grace=300)
    moved = reconfigure(at2, st, now, old=at3).state
    assert moved.due_at == datetime(2026, 6, 3, 2, 0, tzinfo=UTC).timestamp()
    assert advance(at2, moved, now + 3600)[0].status is Status.UP


def _made_half_hourly_40_min_after_a_ping() -> tuple[CheckConfig, CheckState, float]:
    hourly = check(every=3600, grace=300)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0 + 10), T0 + 10)
    reload_at = T0 + 10 + 40 * 60
    half = check(name=hourly.name, key=hourly.key, every=1800, grace=300)
    st = reconfigure(half, st, reload_at, old=hourly).state
    assert (st.due_at, st.anchor) == (reload_at + 1800, reload_at)
    return half, st, reload_at


def test_a_restart_after_a_schedule_made_tighter_keeps_the_due_time_the_change_gave() -> None:
    # The anchor moves with it: a restart recomputes from the anchor, which would have made the
    # check down at once in its grace, or (before the due time) pushed it on at every restart.
    half, st, reload_at = _made_half_hourly_40_min_after_a_ping()
    in_grace = reload_at + 1800 + 60
    after = reconfigure(half, st, in_grace).state
    assert after.due_at == st.due_at and advance(half, after, in_grace)[0].status is Status.LATE
    now = reload_at
    for _ in range(5):  # a restart every 20 minutes
        now += 1200
        st = reconfigure(half, st, now).state
    assert st.due_at == reload_at + 1800


def test_a_looser_schedule_after_a_tighter_one_does_not_turn_a_late_check_down() -> None:
    half, st, reload_at = _made_half_hourly_40_min_after_a_ping()
    now = reload_at + 1800 + 60
    st, _, _ = advance(half, st, now)
    assert st.status is Status.LATE
    looser = check(name=half.name, key=half.key, every=45 * 60, grace=300)
    assert advance(looser, reconfigure(looser, st, now, old=half).state, now)[0].status is not Status.DOWN


def test_a_run_due_in_a_downtime_stays_due_when_the_schedule_is_made_tighter() -> None:
    # The downtime's slack only waits for the ping of a run that was due: not one made up.
    hourly = check(every=3600, grace=300)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0), T0)
    st = account_downtime(hourly, st, T0 + 3000, T0 + 4000)  # due at T0 + 3600, inside it
    assert st.due_at < T0 + 4000 < st.due_at + st.slack
    half = check(name=hourly.name, key=hourly.key, every=1800, grace=300)
    assert reconfigure(half, st, T0 + 4010, old=hourly).state.due_at <= T0 + 3600


def test_a_schedule_made_tighter_while_a_run_is_due_does_not_make_it_due_earlier() -> None:
    # Hourly, its T0 + 3600 run waiting out a downtime's slack (its ping may be on its way) or in
    # its grace: every 30 min would have made the T0 + 1800 run, never expected, missed at once.
    hourly = check(every=3600, grace=300)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0), T0)
    half = check(name=hourly.name, key=hourly.key, every=1800, grace=300)
    extended = account_downtime(hourly, st, T0 + 3000, T0 + 4000)
    in_grace = advance(hourly, st, T0 + 3700)[0]
    for before, now in ((extended, T0 + 4010), (in_grace, T0 + 3700)):
        assert advance(hourly, before, now)[0].status is not Status.DOWN
        after = reconfigure(half, before, now, old=hourly).state
        assert (after.due_at, after.slack) == (before.due_at, before.slack)
        assert advance(half, after, now)[0].status is not Status.DOWN


def test_a_schedule_made_looser_while_its_run_waits_out_a_downtimes_extension_keeps_the_extension() -> None:
    # Hourly, its T0 + 3600 run due inside a downtime (T0 + 3000 to T0 + 10000): extended to
    # T0 + 10600. Made every 90 minutes just after the restart, its run due at T0 + 5400 lies in
    # the same downtime, where no ping could reach the server: it was told missed at once, at the
    # reload, where a restart after the same edit extends it by the downtime.
    hourly = check(every=3600, grace=300)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0), T0)
    extended = account_downtime(hourly, st, T0 + 3000, T0 + 10000)
    slower = check(name=hourly.name, key=hourly.key, every=5400, grace=300)
    now = T0 + 10010
    after = reconfigure(slower, extended, now, old=hourly).state
    assert advance(slower, after, now).state.status is Status.UP
    restarted = account_downtime(slower, reconfigure(slower, st, T0 + 10000).state, T0 + 3000, T0 + 10000)
    assert next_deadline(slower, after) == next_deadline(slower, restarted) == Deadline(T0 + 12400, DeadlineKind.LATE)
    # A run due after the restart under the new schedule has no extension to keep.
    daily = check(name=hourly.name, key=hourly.key, every=86400, grace=300)
    assert reconfigure(daily, extended, now, old=hourly).state.slack == 0


def test_a_late_checks_new_deadline_past_the_downtime_does_not_keep_the_extension() -> None:
    # Hourly with 100 min of grace, late since T0 + 3600, its grace ending inside a downtime (T0 +
    # 4000 to T0 + 10000): extended by it. Made every 75 minutes just after the restart, its new
    # grace ends at T0 + 10500, after the downtime: a restart after the same edit extends nothing
    # and misses it then. Keeping the extension was told up again and missed 100 minutes later.
    hourly = check(every=3600, grace=6000)
    st, _, _ = apply_event(hourly, initial_state(hourly, T0), Event(Kind.SUCCESS, T0), T0)
    late = advance(hourly, st, T0 + 3700).state
    extended = account_downtime(hourly, late, T0 + 4000, T0 + 10000)
    assert extended.slack == 6000
    slower = check(name=hourly.name, key=hourly.key, every=4500, grace=6000)
    now = T0 + 10010
    step = reconfigure(slower, extended, now, old=hourly)
    assert step.state.status is Status.LATE and step.flip is None
    restarted = account_downtime(slower, reconfigure(slower, late, T0 + 10000).state, T0 + 4000, T0 + 10000)
    missed = Deadline(T0 + 10500, DeadlineKind.MISSED)
    assert next_deadline(slower, step.state) == next_deadline(slower, restarted) == missed


def test_a_late_check_is_on_time_again_when_a_reload_moves_its_due_time_ahead() -> None:
    cfg = check(every=100, grace=50)
    late, _, _ = advance(cfg, initial_state(cfg, T0), T0 + 110)
    assert late.status is Status.LATE
    still, flip, _ = reconfigure(check(name=cfg.name, key=cfg.key, every=105), late, T0 + 110, old=cfg)
    assert still.status is Status.LATE and flip is None
    again, flip, _ = reconfigure(check(name=cfg.name, key=cfg.key, every=200), late, T0 + 110, old=cfg)
    assert again.status is Status.NEW and again.changed_at == T0 + 110  # never pinged: new, not up
    assert flip is not None and (flip.old, flip.new, flip.event) == (Status.LATE, Status.NEW, None)
    assert flip.detail == "its due time moved ahead with a config reload"
    assert next_deadline(cfg, again) == Deadline(T0 + 200, DeadlineKind.LATE)


def test_a_late_check_that_pinged_before_is_up_again_after_such_a_reload() -> None:
    cfg = check(every=100, grace=50)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 10), T0 + 10)
    late, _, _ = advance(cfg, st, T0 + 111)
    again, _, _ = reconfigure(check(name=cfg.name, key=cfg.key, every=200), late, T0 + 111, old=cfg)
    assert (late.status, again.status) == (Status.LATE, Status.UP)


def test_state_survives_a_json_round_trip() -> None:
    cfg = check(max_runtime=600)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 1, run_id="r1"), T0 + 1)
    again = CheckState.from_json(st.to_json())
    assert again == st and again.status is Status.RUNNING and again.last_ping_kind is Kind.START


def test_a_run_an_end_closed_survives_a_json_round_trip_for_pairing_again() -> None:
    cfg = check(max_runtime=600)
    st, _, _ = apply_event(cfg, initial_state(cfg, T0), Event(Kind.START, T0 + 1), T0 + 1)
    st, _, _ = apply_event(cfg, st, Event(Kind.SUCCESS, T0 + 3), T0 + 3)
    st, _, _ = apply_event(cfg, st, Event(Kind.FAIL, T0 + 0.5), T0 + 3.5)  # an older end, before the run
    again = CheckState.from_json(json.loads(json.dumps(st.to_json())))
    assert again == st and again.paired_end == (T0 + 1, T0 + 3, T0 + 3, RunOutcome.SUCCESS, None, "")
    assert again.prev_end_at == T0 + 0.5 and isinstance(again.paired_end[3], RunOutcome)


def test_stored_state_leaves_out_fields_at_their_defaults_and_gets_them_back() -> None:
    assert CheckState().to_json() == {}
    st = CheckState(status=Status.UP, last_ping_at=T0, failures=0, last_members=())
    assert st.to_json() == {"status": Status.UP, "last_ping_at": T0}
    assert CheckState.from_json(st.to_json()) == st


def test_states_without_open_runs_share_one_empty_map_and_a_start_or_a_batch_gets_its_own() -> None:
    job, batch, t = check(), check(expect=2), 1_000_000.0
    idle = apply_event(job, initial_state(job, t), Event(Kind.SUCCESS, t + 1), t + 1).state
    assert idle.runs is NO_RUNS and initial_state(job, t).runs is NO_RUNS
    started = apply_event(job, idle, Event(Kind.START, t + 2), t + 2).state
    counted = apply_event(batch, initial_state(batch, t), Event(Kind.SUCCESS, t + 1, "b1"), t + 1).state
    assert list(started.runs) == [""] and list(counted.runs) == ["b1"]
    assert NO_RUNS == {} and idle.runs is NO_RUNS  # nothing reached the shared map
    ended = apply_event(job, started, Event(Kind.SUCCESS, t + 3), t + 3).state
    assert not ended.runs and apply_event(job, ended, Event(Kind.SUCCESS, t + 4), t + 4).state.runs is NO_RUNS
    with pytest.raises(TypeError, match="read-only"):
        NO_RUNS["x"] = started.runs[""]
    assert NO_RUNS.pop("x", None) is None and NO_RUNS == {}


def test_a_fan_in_batch_under_way_when_paused_completes_with_the_worker_that_resumes_it() -> None:
    # Two of three workers reported, then a pause (a deploy), then the third: the batch is whole.
    # Resumed with no open batch, the third worker opened a new one of 1, told incomplete a grace
    # later: a false alarm for a batch that completed.
    cfg = check(every=HOUR, grace=600, expect=3, resume_on_ping=True)
    st = initial_state(cfg, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2")):
        st = receive(cfg, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    st = pause(st, T0 + 30).state
    steps = receive(cfg, st, Event(Kind.SUCCESS, T0 + 40, "b1", member="w3"), T0 + 40)
    st = steps[-1].state
    assert steps[0].flip is not None and steps[0].flip.detail == "resumed by a ping (resume_on_ping)"
    assert st.status is Status.UP and not st.runs, "the batch did not complete"
    st = advance(cfg, st, T0 + 40 + 700).state
    assert st.status is Status.UP


def test_a_fan_in_batch_under_way_when_paused_is_judged_from_the_resume() -> None:
    # Its workers after the resume still count with those before, and its time limit (the grace
    # here) counts from the resume: not judged incomplete at once for the time it was paused.
    cfg = check(every=HOUR, grace=600, expect=3, resume_on_ping=True)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 10, "b1", member="w1"), T0 + 10)[-1].state
    st = pause(st, T0 + 30).state
    resumed_at = T0 + 3000
    st = receive(cfg, st, Event(Kind.SUCCESS, resumed_at, "b1", member="w2"), resumed_at)[-1].state
    assert st.status is Status.RUNNING and st.runs["b1"].successes == 2
    st = advance(cfg, st, resumed_at + 599).state
    assert st.status is Status.RUNNING
    st = receive(cfg, st, Event(Kind.SUCCESS, resumed_at + 100, "b1", member="w3"), resumed_at + 599)[-1].state
    assert st.status is Status.UP


def test_a_ping_that_resumes_a_fan_in_check_keeps_its_own_batch_alone() -> None:
    # Last night's batch had 2 of 3 workers when the check was paused (through Healthchecks' API,
    # the workers being moved); tonight's first worker resumes it and tonight's batch completes.
    # The resume kept last night's batch too, judged from the resume: told "incomplete: 2 of 3"
    # a grace later, down till tomorrow's batch, for a batch of the night it was paused.
    cfg = check(every=DAY, grace=600, expect=3, resume_on_ping=True)
    st = initial_state(cfg, T0)
    for i in (1, 2):
        st = receive(cfg, st, Event(Kind.SUCCESS, T0 + i, "night-1", member=f"w{i}"), T0 + i)[-1].state
    st = pause(st, T0 + 30).state
    tonight = T0 + DAY
    for i in (1, 2, 3):
        at = tonight + i
        st = receive(cfg, st, Event(Kind.SUCCESS, at, "night-2", member=f"w{i}"), at)[-1].state
    assert st.status is Status.UP and not st.runs
    st, flip, _ = advance(cfg, st, tonight + 700)
    assert st.status is Status.UP and flip is None


def test_a_fan_in_batch_under_way_when_paused_completes_when_its_resuming_worker_starts_first() -> None:
    # `heartfly run` workers send a start, then a success: the third worker's start is the ping
    # that resumes the check. Its batch must still hold the two workers from before the pause, or
    # the third opens a batch of 1, told incomplete a grace later: a false alarm.
    cfg = check(every=HOUR, grace=600, expect=3, resume_on_ping=True)
    st = initial_state(cfg, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2")):
        st = receive(cfg, st, Event(Kind.START, at, "b1", member=member), at)[-1].state
        st = receive(cfg, st, Event(Kind.SUCCESS, at + 1, "b1", member=member), at + 1)[-1].state
    st = pause(st, T0 + 30).state
    steps = receive(cfg, st, Event(Kind.START, T0 + 40, "b1", member="w3"), T0 + 40)
    assert steps[0].flip is not None and steps[0].flip.detail == "resumed by a ping (resume_on_ping)"
    st = steps[-1].state
    st = receive(cfg, st, Event(Kind.SUCCESS, T0 + 45, "b1", member="w3"), T0 + 45)[-1].state
    assert st.status is Status.UP and not st.runs, "the batch did not complete"
    st = advance(cfg, st, T0 + 45 + 700).state
    assert st.status is Status.UP


def test_a_fan_in_batch_under_way_when_an_operator_pauses_and_resumes_completes_with_its_later_workers() -> None:
    # Four of eight workers reported, the operator paused the check and resumed it a moment later,
    # then the other four reported: the batch is whole. Resumed with no open batch, the four after
    # the resume opened a batch of their own, told "4 of 8 successes arrived; missing: w1, w2, w3,
    # w4" a limit later: a false alarm for a batch that completed.
    cfg = check(every=HOUR, grace=600, expect=8)
    st = initial_state(cfg, T0)
    for i in range(4):
        st = receive(cfg, st, Event(Kind.SUCCESS, T0 + 10 + i, "b1", member=f"w{i + 1}"), T0 + 10 + i)[-1].state
    st = resume(cfg, pause(st, T0 + 20).state, T0 + 3000).state
    assert st.status is Status.RUNNING and st.runs["b1"].successes == 4
    flips = []
    for i in range(4, 8):
        steps = receive(cfg, st, Event(Kind.SUCCESS, T0 + 3010 + i, "b1", member=f"w{i + 1}"), T0 + 3010 + i)
        flips += [s.flip for s in steps if s.flip is not None]
        st = steps[-1].state
    assert st.status is Status.UP and not st.runs, "the batch did not complete"
    assert [(f.old, f.new) for f in flips] == [(Status.RUNNING, Status.UP)]
    st, flip, _ = advance(cfg, st, T0 + 3020 + 700)
    assert st.status is Status.UP and flip is None


def test_a_fan_in_batch_under_way_when_an_operator_pauses_is_judged_from_the_resume() -> None:
    # Its time limit counts from the resume, as the resume's other deadlines do: not incomplete at
    # once for the hour it was paused.
    cfg = check(every=HOUR, grace=600, expect=2)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 10, "b1", member="w1"), T0 + 10)[-1].state
    resumed_at = T0 + HOUR
    st = resume(cfg, pause(st, T0 + 20).state, resumed_at).state
    assert advance(cfg, st, resumed_at + 599).state.status is Status.RUNNING
    st, flip, _ = advance(cfg, st, resumed_at + 600)
    assert (st.status, st.reason) == (Status.DOWN, Reason.INCOMPLETE)
    assert flip is not None and flip.detail == "1 of 2 successes arrived"


def test_a_fan_in_batch_kept_by_a_resume_is_timed_from_its_first_worker() -> None:
    # A batch of 2 with min_runtime 10 min: w1 at +10 s, paused at +20 s, resumed at +1000 s, w2 at
    # +1010 s. It ran 1000 s. The resume moved the batch's start to itself, so its run was recorded
    # as 10 s long and told too fast ("ran 10 s"): a false alarm, and a duration that was not true.
    cfg = check(every=HOUR, grace=600, expect=2, min_runtime=600.0)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 10, "b1", member="w1"), T0 + 10)[-1].state
    st = resume(cfg, pause(st, T0 + 20).state, T0 + 1000).state
    steps = receive(cfg, st, Event(Kind.SUCCESS, T0 + 1010, "b1", member="w2"), T0 + 1010)
    assert (steps[-1].state.status, steps[-1].state.reason) == (Status.UP, None)
    assert [(end.started_at, end.ended_at, end.outcome) for s in steps for end in s.ended] == [
        (T0 + 10, T0 + 1010, RunOutcome.SUCCESS)
    ]


def test_a_fan_in_batch_under_way_at_the_pause_whose_first_ping_arrives_after_the_resume_is_judged_from_it() -> None:
    # In event order the batch was under way at the pause, so the resume kept it and its time limit
    # counts from the resume. Its first worker's ping (spooled, dated before the pause) arriving
    # after the resume opened it with its limit counted from then: told incomplete at once, dated
    # while the check was paused.
    cfg = check(every=HOUR, grace=600, expect=2)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0 + 5, "b0"), T0 + 5)[-1].state
    st = receive(cfg, st, Event(Kind.SUCCESS, T0 + 6, "b0"), T0 + 6)[-1].state
    st = resume(cfg, pause(st, T0 + 20).state, T0 + 1000).state
    st = receive(cfg, st, Event(Kind.SUCCESS, T0 + 15, "b1", member="w1"), T0 + 1002)[-1].state
    assert st.runs["b1"].started_at == T0 + 15
    assert advance(cfg, st, T0 + 1599).state.status is Status.RUNNING
    st, flip, _ = advance(cfg, st, T0 + 1600)
    assert (st.status, st.reason) == (Status.DOWN, Reason.INCOMPLETE)
    assert flip is not None and flip.at == T0 + 1600


def test_a_run_under_way_when_an_operator_pauses_and_resumes_is_still_watched_for_stalls() -> None:
    # A queue pass pinging progress was paused and resumed mid-run: it was dropped at the resume,
    # so it was "up" while it ran, a stall after the resume was never told, and its end closed
    # nothing (no run recorded, no duration). Its stall limit counts from the resume.
    cfg = check(every=HOUR, stall=60.0, max_runtime=HOUR)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.START, T0, "q1"), T0)[-1].state
    st = receive(cfg, st, Event(Kind.PROGRESS, T0 + 30, "q1"), T0 + 30)[-1].state
    st = resume(cfg, pause(st, T0 + 40).state, T0 + 200).state
    assert st.status is Status.RUNNING and "q1" in st.runs
    assert advance(cfg, st, T0 + 259).state.status is Status.RUNNING
    stalled = advance(cfg, st, T0 + 260)
    assert (stalled.state.status, stalled.state.reason) == (Status.DOWN, Reason.STALLED)
    # Its last progress was 230 s before: the minute counts from the resume, and says so.
    assert (
        stalled.flip is not None and stalled.flip.detail == "no progress for 1 min since the resume (stall limit 1 min)"
    )
    st = receive(cfg, st, Event(Kind.PROGRESS, T0 + 250, "q1"), T0 + 250)[-1].state
    steps = receive(cfg, st, Event(Kind.SUCCESS, T0 + 300, "q1"), T0 + 300)
    assert steps[-1].state.status is Status.UP
    assert [(end.run_id, end.started_at, end.outcome) for s in steps for end in s.ended] == [
        ("q1", T0, RunOutcome.SUCCESS)
    ]


def test_a_run_started_by_the_ping_that_resumes_its_check_stalls_without_words_of_a_resume() -> None:
    # Its start ended the pause (resume_on_ping), so its stall clock starts at the resume's instant:
    # it said "no progress for 1 min since the resume", as if it had been under way before it.
    cfg = check(every=HOUR, stall=60.0, resume_on_ping=True)
    st = pause(initial_state(cfg, T0), T0 + 10).state
    st = receive(cfg, st, Event(Kind.START, T0 + 100, "r1"), T0 + 100)[-1].state
    assert st.status is Status.RUNNING and st.resumed_at == T0 + 100
    stalled = advance(cfg, st, T0 + 160)
    assert stalled.flip is not None and stalled.flip.detail == "no progress for 1 min (stall limit 1 min)"


def test_a_standbys_resume_applied_later_times_a_run_under_way_as_one_applied_when_asked() -> None:
    # In a cluster the leader applies a standby's resume a little after it was asked (asked_at):
    # the check is watched again as of the ask (resumed_at), and so is its run's stall clock, as
    # on one node; counted from the leader's now, it stalled 10 s later and its words left out
    # that the minute counts from the resume.
    cfg = check(every=HOUR, stall=60.0, max_runtime=HOUR)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.START, T0, "q1"), T0)[-1].state
    st = receive(cfg, st, Event(Kind.PROGRESS, T0 + 30, "q1"), T0 + 30)[-1].state
    st = resume(cfg, pause(st, T0 + 40).state, T0 + 200, asked_at=T0 + 190).state
    assert st.resumed_at == T0 + 190
    stalled = advance(cfg, st, T0 + 250)
    assert (stalled.state.status, stalled.state.reason) == (Status.DOWN, Reason.STALLED)
    assert stalled.flip is not None
    assert stalled.flip.detail == "no progress for 1 min since the resume (stall limit 1 min)"


def test_a_run_under_way_at_the_pause_whose_start_arrives_after_the_resume_stalls_from_the_resume() -> None:
    # Its start, spooled, dated before the pause, reached the server after the resume. In event
    # order the run was under way at the pause and the resume kept it, its stall clock counted from
    # the resume: it was told stalled at once ("no progress for 1 min", dated at the resume),
    # though a progress ping within a minute of the resume would have kept it running.
    cfg = check(every=HOUR, stall=60.0)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.SUCCESS, T0, None), T0)[-1].state
    st = resume(cfg, pause(st, T0 + 40).state, T0 + 200).state
    st = receive(cfg, st, Event(Kind.START, T0 + 30, "q1"), T0 + 205)[-1].state
    assert advance(cfg, st, T0 + 259).state.status is Status.RUNNING
    stalled = advance(cfg, st, T0 + 260)
    assert (stalled.state.status, stalled.state.reason) == (Status.DOWN, Reason.STALLED)
    assert stalled.flip is not None
    assert stalled.flip.detail == "no progress for 1 min since the resume (stall limit 1 min)"
    st = receive(cfg, st, Event(Kind.PROGRESS, T0 + 250, "q1"), T0 + 250)[-1].state
    assert advance(cfg, st, T0 + 300).state.status is Status.RUNNING


def test_a_run_whose_max_runtime_passed_while_its_check_was_paused_is_not_judged_at_the_resume() -> None:
    cfg = check(every=HOUR, max_runtime=600.0)
    st = receive(cfg, initial_state(cfg, T0), Event(Kind.START, T0, "r1"), T0)[-1].state
    st, flip, _ = resume(cfg, pause(st, T0 + 40).state, T0 + HOUR)
    assert st.status is Status.UP and not st.runs and flip is not None
    assert advance(cfg, st, T0 + HOUR + 1).flip is None


def test_a_reload_that_lowers_expect_to_the_successes_a_batch_has_completes_it() -> None:
    # Three of four workers reported, then a reload lowers expect to 3 (a worker retired): the
    # batch waited for a success more that never came, and was told "incomplete: 3 of 3
    # successes arrived" a grace later, a false alarm. It is complete at the reload now.
    old = check(every=HOUR, grace=600, expect=4)
    new = check(name=old.name, key=old.key, every=HOUR, grace=600, expect=3)
    st = initial_state(old, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2"), (T0 + 30, "w3")):
        st = receive(old, st, Event(Kind.START, at - 5, "b1", member=member), at - 5)[-1].state
        st = receive(old, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    assert st.status is Status.RUNNING
    before_reload = st
    step = reconfigure(new, st, T0 + 100, old=old)
    st = step.state
    assert (st.status, st.runs, st.last_success_at, st.last_members) == (Status.UP, {}, T0 + 30, ("w1", "w2", "w3"))
    assert [(r.run_id, r.started_at, r.ended_at, r.outcome) for r in step.ended] == [
        ("b1", T0 + 5, T0 + 30, RunOutcome.SUCCESS)
    ]
    assert advance(new, st, T0 + 700).state.status is Status.UP
    restarted = reconfigure(new, before_reload, T0 + 100)  # the file edited, then a restart: no old config
    assert (restarted.state.status, [r.outcome for r in restarted.ended]) == (Status.UP, [RunOutcome.SUCCESS])
    # A straggler of it counts nothing; a batch short of the new expect still waits for it.
    st = receive(new, st, Event(Kind.SUCCESS, T0 + 110, "b1", member="w4"), T0 + 110)[-1].state
    assert st.status is Status.UP and not st.runs
    st = receive(new, st, Event(Kind.SUCCESS, T0 + 200, "b2", member="w1"), T0 + 200)[-1].state
    st = reconfigure(old, st, T0 + 210, old=new).state
    st = reconfigure(new, st, T0 + 220, old=old).state
    assert st.status is Status.RUNNING and st.runs["b2"].successes == 1


def test_a_batch_a_reload_completes_on_a_check_down_is_its_recovery_and_is_judged_on_its_duration() -> None:
    # The batch before failed (down, told); this one's two workers are all a lowered expect asks
    # for: its completion is the recovery, in words that say why. With a duration assertion it
    # broke, it is no recovery: judged as its last success would have been.
    old = check(every=HOUR, grace=600, expect=3)
    new = check(name=old.name, key=old.key, every=HOUR, grace=600, expect=2)
    slow = check(
        name=old.name, key=old.key, every=HOUR, grace=600, expect=2, assertions=(parse_assertion("duration < 10s"),)
    )
    st = receive(old, initial_state(old, T0), Event(Kind.FAIL, T0 + 10, "b0", member="w1"), T0 + 10)[-1].state
    assert st.status is Status.DOWN
    for at, member in ((T0 + 100, "w1"), (T0 + 130, "w2")):
        st = receive(old, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    step = reconfigure(new, st, T0 + 200, old=old)
    assert step.state.status is Status.UP and step.flip is not None and step.flip.is_recovery
    assert step.flip.detail == "its batch is complete: a config change lowered expect to 2"
    judged = reconfigure(slow, st, T0 + 200, old=old)
    assert (judged.state.status, judged.flip) == (Status.DOWN, None)  # down still, as it was
    assert [r.outcome for r in judged.ended] == [RunOutcome.ASSERTION]


def test_a_reload_that_retires_a_member_counts_only_the_listed_members_a_batch_has() -> None:
    # w4 retired: out of `members`, expect 4 made 3. A batch that had w1, w2 and w4 has two listed
    # members' successes: it was complete at the reload with w3, still listed, never heard from.
    workers = ("w1", "w2", "w3", "w4")
    old = check(every=HOUR, grace=600, expect=4, members=workers)
    new = check(name=old.name, key=old.key, every=HOUR, grace=600, expect=3, members=workers[:3])
    st = initial_state(old, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2"), (T0 + 30, "w4")):
        st = receive(old, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    step = reconfigure(new, st, T0 + 100, old=old)
    assert (step.state.status, step.ended) == (Status.RUNNING, ())
    given_up = advance(new, step.state, T0 + 700)
    assert given_up.flip is not None and given_up.flip.detail == "2 of 3 successes arrived; missing: w3"
    again = receive(new, step.state, Event(Kind.SUCCESS, T0 + 110, "b1", member="w1"), T0 + 110)[-1].state
    assert again.status is Status.RUNNING  # a listed member twice counts once
    done = receive(new, step.state, Event(Kind.SUCCESS, T0 + 120, "b1", member="w3"), T0 + 120)[-1]
    assert done.state.status is Status.UP and [r.outcome for r in done.ended] == [RunOutcome.SUCCESS]
    # Had the batch all three listed ones, the reload completes it.
    st = initial_state(old, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2"), (T0 + 30, "w3")):
        st = receive(old, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    assert reconfigure(new, st, T0 + 100, old=old).state.status is Status.UP


@pytest.mark.parametrize("reload", [True, False], ids=["reload", "restart"])
def test_a_member_listed_again_after_a_reload_dropped_it_counts_again_in_its_batch(reload: bool) -> None:
    # A reload drops w2 from members (a typo, a worker retired) under a batch w1 and w2 had
    # reported to: it counts 1. The next change lists w2 again: its success, in the batch, counts
    # again, as the docs say (only the members listed count, from the change on). Left at 1, w3
    # completed nothing (w2 again is a member reporting twice), and the batch was told down
    # "2 of 3 successes arrived" with no member missing.
    workers = ("w1", "w2", "w3")
    listed = check(every=HOUR, grace=600, expect=3, members=workers)
    dropped = check(name=listed.name, key=listed.key, every=HOUR, grace=600, expect=3, members=("w1", "w2x", "w3"))
    st = initial_state(listed, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2")):
        st = receive(listed, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    st = reconfigure(dropped, st, T0 + 100, old=listed if reload else None).state
    assert st.runs["b1"].successes == 1
    st = reconfigure(listed, st, T0 + 200, old=dropped if reload else None).state
    assert st.runs["b1"].successes == 2 and st.status is Status.RUNNING
    done = receive(listed, st, Event(Kind.SUCCESS, T0 + 300, "b1", member="w3"), T0 + 300)[-1]
    assert done.state.status is Status.UP and [r.outcome for r in done.ended] == [RunOutcome.SUCCESS]
    # Listed again with expect lowered to what the batch has: the change completes it.
    fewer = check(name=listed.name, key=listed.key, every=HOUR, grace=600, expect=2, members=workers)
    assert reconfigure(fewer, st, T0 + 200, old=listed if reload else None).state.status is Status.UP
    # w3 came while w2 was not listed: listing w2 again completes the batch, expect unchanged, and
    # its words say so (a down check's recovery says why it is up), not "lowered expect to 3".
    st = initial_state(listed, T0)
    st.status, st.reason = Status.DOWN, Reason.FAILED
    for at, member in ((T0 + 10, "w1"), (T0 + 20, "w2")):
        st = receive(listed, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    st = reconfigure(dropped, st, T0 + 100, old=listed if reload else None).state
    st = receive(dropped, st, Event(Kind.SUCCESS, T0 + 150, "b1", member="w3"), T0 + 150)[-1].state
    assert (st.status, st.runs["b1"].successes) == (Status.DOWN, 2)
    step = reconfigure(listed, st, T0 + 200, old=dropped if reload else None)
    assert step.state.status is Status.UP and step.flip is not None and step.flip.is_recovery
    assert step.flip.detail == "its batch is complete: a config change listed members whose successes it had"
    assert [r.outcome for r in step.ended] == [RunOutcome.SUCCESS]


@pytest.mark.parametrize("reload", [True, False], ids=["reload", "restart"])
def test_a_change_that_removes_members_counts_every_success_its_batch_holds_again(reload: bool) -> None:
    # With members w1-w3 listed, a success naming none counted nothing. Members removed, every
    # success the batch holds counts (as it would have, had none been listed). Left uncounted, the
    # unnamed one left the batch a success short, told incomplete though its workers ran.
    workers = ("w1", "w2", "w3")
    listed = check(every=HOUR, grace=600, expect=3, members=workers)
    unlisted = check(name=listed.name, key=listed.key, every=HOUR, grace=600, expect=3)
    st = initial_state(listed, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, None), (T0 + 30, "w2")):
        st = receive(listed, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    assert (st.runs["b1"].successes, st.runs["b1"].unnamed) == (2, 1)
    step = reconfigure(unlisted, st, T0 + 100, old=listed if reload else None)
    assert step.state.status is Status.UP and [r.outcome for r in step.ended] == [RunOutcome.SUCCESS]
    # A batch short of it still waits, counting its unnamed success: one more completes it.
    st = initial_state(listed, T0)
    for at, member in ((T0 + 10, "w1"), (T0 + 20, None)):
        st = receive(listed, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    st = reconfigure(unlisted, st, T0 + 100, old=listed if reload else None).state
    assert (st.status, st.runs["b1"].successes, st.runs["b1"].unnamed) == (Status.RUNNING, 2, 0)
    done = receive(unlisted, st, Event(Kind.SUCCESS, T0 + 150, "b1"), T0 + 150)[-1]
    assert done.state.status is Status.UP
    # Never listed: a batch of unnamed successes keeps its count through a change.
    st = initial_state(unlisted, T0)
    for at in (T0 + 10, T0 + 20):
        st = receive(unlisted, st, Event(Kind.SUCCESS, at, "b1"), at)[-1].state
    st = reconfigure(unlisted, st, T0 + 100, old=unlisted if reload else None).state
    assert (st.status, st.runs["b1"].successes) == (Status.RUNNING, 2)


@pytest.mark.parametrize("by", ["a reload", "a restart"])
def test_a_folded_step_that_a_reload_makes_a_check_of_its_own_is_folded_no_more(by: str) -> None:
    # Its down was folded into its upstream's alert; with `after` gone no upstream alert stands for
    # its reminders and recovery: left folded, it stayed down and told nobody anything more.
    step = check(name="transform", every=None, after="extract", within=600.0)
    st = initial_state(step, T0)
    st.status, st.reason, st.changed_at, st.folded = Status.DOWN, Reason.STEP_MISSED, T0 + 700, True
    own = check(name="transform", key=step.key, every=3600.0)
    changed = reconfigure(own, st, T0 + 800, old=step if by == "a reload" else None).state
    assert changed.status is Status.DOWN and not changed.folded
    kept = reconfigure(step, st, T0 + 800, old=step if by == "a reload" else None).state
    assert kept.folded  # still a step: the fold stands with the upstream's alert


@pytest.mark.parametrize("reload", [True, False], ids=["reload", "restart"])
def test_a_batch_counted_before_members_were_listed_counts_only_listed_members_after_the_change(reload: bool) -> None:
    # w1 and a worker naming none made 2 of 3; the change lists members and lowers expect to 2.
    # Counted as before, the batch was complete at the change (or at w9's success), w2 never ran.
    old = check(every=HOUR, grace=600, expect=3)
    new = check(name=old.name, key=old.key, every=HOUR, grace=600, expect=2, members=("w1", "w2", "w9"))
    st = initial_state(old, T0)
    for at, member in ((T0 + 100, "w1"), (T0 + 130, None)):
        st = receive(old, st, Event(Kind.SUCCESS, at, "b1", member=member), at)[-1].state
    assert st.runs["b1"].successes == 2
    step = reconfigure(new, st, T0 + 200, old=old if reload else None)
    assert step.state.status is Status.RUNNING and not step.ended
    assert step.state.runs["b1"].successes == 1
    down = advance(new, step.state, T0 + 800)
    assert down.flip is not None and down.flip.reason is Reason.INCOMPLETE
    assert down.flip.detail == (
        "1 of 2 successes arrived; missing: w2, w9; 1 success named no member (members lists who counts)"
    )
