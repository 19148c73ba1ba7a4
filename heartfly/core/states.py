"""The state machine. Pure: (check, state, event, now) -> Step(new state, flip or None, ended runs).

Every timer is derived from stored fields by `next_deadline` (deadlines.py, which fires them too),
so restarts, reloads and tests all see the same deadlines. Time always comes in as an argument.

Event time: an event is applied as of its own time (`Event.at`, a spooled ping's `ts`), and a
deadline as of its own instant; `now` is only when Heartfly learned of it. A back-dated event
fires nothing itself: the deadlines it leaves in the past wait for the reorder window
(`fire_time`), so the events that were sent right behind it (a replayed spool, a script replaying
its log with curl) count before anything is judged, and `catch_up` fires, as of their own times,
those an event arriving later in that replay shows to have really passed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from heartfly.core.anchors import drop_slack, set_due
from heartfly.core.bykind import REORDER_WINDOW, by_kind, kept
from heartfly.core.config import CheckConfig
from heartfly.core.deadlines import (
    BACKDATED,
    fire_due,
    fire_time,
    flip_of,
    next_deadline,
    next_timer,
)
from heartfly.core.holding import (
    HELD_SUCCESS,
    WAITING_MAX,
    armed_after,
    behind_held,
    disarms_held,
    hold,
    hold_longer,
    queued,
    queues,
    set_soon,
    wait,
    waits_for,
    waits_itself,
)
from heartfly.core.reorder import (
    backdatable,
    first_end_after,
    outrun,
    overtaken,
    recover_then_fail,
    started_since,
    status_then,
)
from heartfly.core.runs import IMPLICIT_RUN
from heartfly.core.statecontrol import account_downtime, extend_by_downtime, pause, reconfigure, resume, rewatch
from heartfly.core.stateops import failed
from heartfly.core.statetypes import (
    AlertEvent,
    CheckState,
    Deadline,
    DeadlineKind,
    Event,
    Flip,
    Kind,
    Reason,
    Run,
    RunEnd,
    RunOutcome,
    Status,
    Step,
)
from heartfly.core.units import human_duration

__all__ = [  # the state types are re-exported: the rest of Heartfly imports them from here
    "BACKDATED",
    "REORDER_WINDOW",
    "RESUMED_BY_PING",
    "AlertEvent",
    "CheckState",
    "Deadline",
    "DeadlineKind",
    "Event",
    "Flip",
    "Kind",
    "Reason",
    "Run",
    "RunEnd",
    "RunOutcome",
    "Status",
    "Step",
    "account_downtime",
    "advance",
    "apply_event",
    "apply_held",
    "arm_folded",
    "arm_step",
    "catch_up",
    "extend_by_downtime",
    "fire_time",
    "initial_state",
    "next_deadline",
    "pause",
    "receive",
    "receive_timed",
    "reconfigure",
    "release_waiting",
    "resume",
    "rewatch",
    "up_then_running",
]

# Enum members read on every ping, as module constants. On CPython 3.11 every attribute lookup on
# an enum class goes through EnumType.__getattr__'s hook: `Status.DOWN` costs about ten times a
# global's read, and the path of one ping reads a dozen of them.
_NEW, _UP, _RUNNING, _DOWN, _PAUSED = Status.NEW, Status.UP, Status.RUNNING, Status.DOWN, Status.PAUSED
_START, _SUCCESS, _FAIL = Kind.START, Kind.SUCCESS, Kind.FAIL
_QUIET = (Kind.PROGRESS, Kind.LOG)  # signs of life, not of a run's start or end
_RUN_KINDS = (Kind.START, Kind.SUCCESS, Kind.FAIL)  # what resumes a check with resume_on_ping
RESUMED_BY_PING = "resumed by a ping (resume_on_ping)"  # the flip's words (engine: its pause's end goes)
_RUN_SUCCESS = RunOutcome.SUCCESS


def initial_state(check: CheckConfig, now: float) -> CheckState:
    # told_at from the start (not its default): a stored state that lacks it is an older version's
    st = CheckState(changed_at=now, watched_from=now, anchor=now, told_at=now)
    set_due(check, st)
    return st


def advance(check: CheckConfig, st: CheckState, now: float) -> Step:
    """Fire every deadline whose fire time is at or before `now`, each as of its own instant."""
    new = st.copy()
    if now >= new.hold_until:
        new.held_at = new.hold_until = 0.0
    ended: list[RunEnd] = []
    fired, detail, _ = fire_due(check, new, now, now, ended, held=True, release=_release)
    return Step(new, _flip_of(check, st, new, now, fired, detail, ended), tuple(ended))


def after_batch(check: CheckConfig, before: CheckState, st: CheckState, now: float, newest: float) -> list[Step]:
    """A batch's pings applied (`before` it, the check was in state `before`; its newest dated
    `newest`): the deadlines it left due are judged now, or, when that newest ping is back-dated,
    once the reorder window has passed, as a back-dated ping's are. A replay may come in several
    batches (a check's ping spooled after the replaying process listed the spool; a spool of more
    than one batch's pings), and the next may hold the ping that met them."""
    if now - newest <= BACKDATED:
        return up_then_running(advance(check, st, now))
    held = st.copy()
    hold_longer(held, now, REORDER_WINDOW)
    if (soon := set_soon(check, before, held, now)) is not None:
        held.held_at = max(held.held_at, soon)
    return [Step(held, None, ())]


def catch_up(check: CheckConfig, st: CheckState, until: float, now: float) -> Step:
    """Before a back-dated event at `until`: fire, as of their own instants, the deadlines that
    passed before it (held ones included: the event shows nothing came in time for them)."""
    new = st.copy()
    ended: list[RunEnd] = []
    fired, detail, _ = fire_due(check, new, until, now, ended, held=False, release=_release)
    return Step(new, _flip_of(check, st, new, now, fired, detail, ended), tuple(ended))


def _flip_of(
    check: CheckConfig,
    old: CheckState,
    new: CheckState,
    now: float,
    fired: Deadline | None,
    detail: str,
    ended: list[RunEnd],
) -> Flip | None:
    """flip_of, for a firing that may have applied pings held for the reorder window: a change one
    of them made was learned when its ping arrived (late, if it came late); a failure's down is
    dated as it would have been had it been applied when it arrived (_dated_by_end)."""
    flip = flip_of(old, new, now, fired, detail)
    if flip is None or fired is not None or not old.waiting or old.waiting == new.waiting:
        return flip
    for at, _, _, _, _, arrived, kind in old.waiting[: len(old.waiting) - len(new.waiting)]:
        if kind is _FAIL:
            flip = _dated_by_end(check, old, new, flip, at, arrived, REORDER_WINDOW, ended)
        if at == flip.at:
            return dataclasses.replace(flip, learned_at=arrived if arrived - at > BACKDATED else None)
    return flip


def _release(check: CheckConfig, st: CheckState, now: float, ended: list[RunEnd]) -> str:
    """Apply the oldest ping held for the reorder window (a success that waited for its start, or a
    ping queued behind one or behind a held deadline), as of its own time and as if it had just
    arrived (the window's rules count from its arrival): the starts that came while a success
    waited pair with it as in event order. Its detail, as an event's."""
    (at, rid, exit_status, metrics, member, arrived, kind), *rest = st.waiting
    st.waiting = tuple(rest)
    ev = Event(kind or _SUCCESS, at, rid, exit_status, metrics, member)
    before = st.status
    # A step armed while its success was held (its upstream triggered after it): it stays armed.
    armed = (st.step_due, st.step_since) if kind in HELD_SUCCESS and armed_after(st, at, arrived) else None
    detail = by_kind(check, st, ev, ended, arrived, REORDER_WINDOW)
    if armed is not None and st.step_due is None:
        st.step_due, st.step_since = armed
    if st.held_over:  # held over restarts: what it set is extended by the downtimes it waited through
        _held_over(check, st, arrived)
    if st.status is _DOWN and before is not _DOWN:
        st.alerted_at = now  # reminders count from the alert, sent now
    elif before is _DOWN and st.status is not _DOWN and not detail and arrived - at > BACKDATED:
        detail = _reported_late(ev, arrived)
    return detail


def _held_over(check: CheckConfig, st: CheckState, arrived: float) -> None:
    """After a held ping (which arrived at `arrived`) is applied: its deadline extended by the
    downtimes it was held over (those whose start came after it), in place, each in turn as a
    start applies them (Downtime)."""
    spans = [span for span in st.held_over if arrived < span[1]]
    if not st.waiting:
        st.held_over = ()
    if not spans:
        return
    mark = st.downtime_to
    if not st.slack and any(mark == start for _, start, _ in spans):
        # One of these restarts' own mark (its load, or a ping held with this one), whose slack has
        # been dropped since (a new deadline): no earlier downtime's, so it guards nothing here.
        st.downtime_to = 0.0
    for stopped_at, started_at, settle_until in spans:
        extended = extend_by_downtime(st, next_timer(check, st), stopped_at, started_at, settle_until)
        st.slack, st.downtime_to = extended.slack, extended.downtime_to
    st.downtime_to = max(st.downtime_to, mark)


def release_waiting(check: CheckConfig, st: CheckState, now: float, until: float = math.inf) -> list[Step]:
    """The pings held for the reorder window (those up to `until`), applied now, a step each,
    while they are the check's next deadlines: where they must come first (a held ping dated
    ahead of now in apply_held, a sign of life or a run id's start in receive, the runs a
    pipeline step sees open before a ping in the engine)."""
    steps: list[Step] = []
    for _ in range(WAITING_MAX):
        deadline = next_deadline(check, st)
        if deadline is None or deadline.kind is not DeadlineKind.END or deadline.at > until:
            break
        new = st.copy()
        ended: list[RunEnd] = []
        detail = _release(check, new, now, ended)
        steps += up_then_running(Step(new, _flip_of(check, st, new, now, None, detail, ended), tuple(ended)))
        st = new
    return steps


def apply_held(check: CheckConfig, st: CheckState, now: float, *, due: bool = True) -> list[Step]:
    """Every ping held for the reorder window applied now, in event order, with the deadlines
    that passed between them fired as of their own instants, then (with `due`) those due by now:
    a step each. Before an operator's pause or resume, a reload's removal of the check, or a
    restart's downtime once the window passed while stopped (Loading._held_at_load), which must
    find it as event order left it (a queued start's run, say, and the stall it had since).
    Nothing held, nothing done: a deadline due is the timer's to fire (a cluster's leader holds it
    back for the pings its standbys took). No deadline after now fires: a held ping dated ahead of
    now (a second at most, a fast clock) is applied as the timer would apply it, or stays held."""
    steps: list[Step] = []
    if not st.waiting:
        return steps
    for _ in range(4 * WAITING_MAX + 4):  # a step per held ping, and per deadline among them
        if st.waiting and st.waiting[0][0] <= now:
            step = catch_up(check, st, math.nextafter(min(st.waiting[-1][0], now), math.inf), now)
        elif st.waiting:
            ahead = release_waiting(check, st, now, until=now + BACKDATED)
            steps += ahead
            if not ahead:
                break
            st = ahead[-1].state
            continue
        elif not due:
            break
        else:
            deadline = next_deadline(check, st)
            if deadline is None or fire_time(st, deadline) > now:
                break
            step = advance(check, st, now)
        if step.state == st:
            break
        steps += up_then_running(step)
        st = step.state
    return steps


def apply_event(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float = REORDER_WINDOW) -> Step:
    """Apply one event as of its own time. Deadlines a live event leaves in the past are judged
    with it; those a back-dated one leaves wait `window` seconds for the events behind it."""
    return _apply_event(check, st, ev, now, window)[0]


def _apply_event(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> tuple[Step, float | None]:
    """apply_event, and the fire time of the new state's next deadline as _fire_due found it."""
    new = st.copy()
    _note_ping(new, ev)
    # What only an event within the reorder window can use goes once it is past (the widest a later
    # event may apply: a batch's own is none): checkpoints stay small.
    if new.paired_end is not None and now - new.paired_end[2] > kept(window):
        new.paired_end = None
    if new.orphan_prev is not None and now - new.orphan_prev[1] > kept(window):
        new.orphan_prev = None
    if new.orphan_older:
        new.orphan_older = tuple(o for o in new.orphan_older if now - o[1] <= kept(window))
    if new.early_activity:
        new.early_activity = tuple(e for e in new.early_activity if now - e[2] <= kept(window))
    ended: list[RunEnd] = []
    detail = ""
    kind = ev.kind
    if waits_itself(check, new, ev, now, window):  # a start, or an end dated before it, may be on its way
        wait(new, ev, now, window)
    else:
        detail = by_kind(check, new, ev, ended, now, window)
    late = now - ev.at > BACKDATED  # back-dated: a replayed or spooled ping
    fired: Deadline | None = None
    fires_at: float | None = math.nan
    if late and new.waiting:  # not shortened by a batch's (window 0): a success waits for its window
        hold_longer(new, now, window)
    elif late:  # a deadline an earlier one set ahead (set_soon) stays held while its window is open
        new.held_at = max(now, new.held_at) if new.hold_until > now else now
        new.hold_until = now + window
    else:  # what it leaves due (a start that does not anchor a late check) is judged with it
        if new.hold_until and now >= new.hold_until and not new.waiting:  # over: live pings skip the catch-up again
            new.held_at = new.hold_until = 0.0
        fired, timer_detail, fires_at = fire_due(check, new, now, now, ended, held=True)
        detail = timer_detail or detail
    if late and (soon := set_soon(check, st, new, now)) is not None:
        new.held_at = max(new.held_at, soon)
    flip = flip_of(st, new, now, fired, detail)
    if flip is not None and flip.is_recovery and late and not detail:  # detail: streak_broken's own words
        flip = dataclasses.replace(flip, detail=_reported_late(ev, flip.learned))
    elif flip is not None and fired is None and kind is not _START:
        flip = _dated_by_end(check, st, new, flip, ev.at, now, window, ended)
    return Step(new, flip, tuple(ended) if ended else ()), fires_at


def _dated_by_end(
    check: CheckConfig,
    st: CheckState,
    new: CheckState,
    flip: Flip,
    at: float,
    now: float,
    window: float,
    ended: list[RunEnd],
) -> Flip:
    """A down told by an end dated `at` that arrived `now` after a change it came before (a start:
    running), within the window: down as of the end (the newest end, or as of the newer failure in
    a streak an older one completed), as in event order; the change after it alerted nobody and
    goes (`new` is redated in place)."""
    end_at = new.last_end_at
    if (
        not flip.is_down
        or end_at is None
        or not at <= end_at < flip.at
        or not backdatable(check, st, end_at, now, window)
    ):
        return flip
    new.changed_at = new.told_at = end_at
    learned = now if now - end_at > BACKDATED else None
    return dataclasses.replace(
        flip, at=end_at, old=status_then(st, end_at, ended), learned_at=learned, withdraws=end_at
    )


def _note_ping(st: CheckState, ev: Event) -> None:
    """The newest ping by event time, as the dashboard shows it (an older one moves nothing)."""
    if st.last_ping_at is None or ev.at >= st.last_ping_at:
        st.last_ping_at = ev.at
        st.last_ping_kind = ev.kind


def receive(
    check: CheckConfig, st: CheckState, ev: Event, now: float, window: float = REORDER_WINDOW, *, batch: bool = False
) -> list[Step]:
    """An event as it arrives: first the deadlines that passed before it but have not fired (a
    back-dated event's can have, or one held for the reorder window, or any before a later item
    of a `batch`: catch_up); then the event itself. Each step's state follows from the one before."""
    return receive_timed(check, st, ev, now, window, batch=batch)[0]


def receive_timed(
    check: CheckConfig, st: CheckState, ev: Event, now: float, window: float = REORDER_WINDOW, *, batch: bool = False
) -> tuple[list[Step], float | None]:
    """receive(), and when the timer is to judge the last step's state: the `fire_time` of its
    next deadline (None: it has none) if applying the event computed it already, else NaN (the
    caller computes it then). A ping's engine needs it, and it costs a `next_deadline` to redo."""
    if st.status is _PAUSED and check.resume_on_ping and ev.kind in _RUN_KINDS and ev.at >= st.changed_at:
        return _resumed_by(check, st, ev, now, window, batch)
    late = now - ev.at > BACKDATED
    if ev.kind is Kind.FAIL and not batch and overtaken(check, st, ev, now, window):
        return _fail_then_recover(check, st, ev, now, window), math.nan  # rare: the engine computes it
    if ev.kind is _SUCCESS and not batch and outrun(check, st, ev, now, window):
        return recover_then_fail(check, st, ev, apply_event(check, st, ev, now, window), now), math.nan
    if not (batch or st.hold_until or late or st.waiting):  # nearly every ping: nothing to catch up
        step, fires_at = _apply_event(check, st, ev, now, window)
        if step.flip is not None and step.flip.new is _RUNNING and step.flip.old is _DOWN:
            return up_then_running(step), fires_at
        return [step], fires_at
    steps: list[Step] = []
    for _ in range(2 * WAITING_MAX):  # a success whose window passed before the timer fired (a replay)
        if not (st.waiting and now >= st.hold_until):
            break
        fired = advance(check, st, now)
        steps += up_then_running(fired)
        st = fired.state
    if not batch and (queues(check, st, ev, now, window) or behind_held(check, st, ev, now, window)):
        queued_st = st.copy()
        if waits_itself(check, queued_st, ev, now, window):  # only behind a held deadline
            wait(queued_st, ev, now, window)
        else:
            hold(queued_st, ev, now, ev.kind)
            if late:  # a back-dated one holds the deadlines for the events behind it, as if applied
                hold_longer(queued_st, now, window)
        _note_ping(queued_st, ev)
        steps.append(Step(queued_st, None, ()))
        return steps, math.nan
    blocked = bool(st.waiting)  # a held ping keeps the timer from the deadlines after it
    waits_too = waits_itself(check, st, ev, now, window)
    for _ in range(2 * WAITING_MAX + 2):  # a step for each held ping applied, and for what came between
        deadline = next_deadline(check, st)
        if deadline is None or deadline.at >= ev.at:
            break
        if not (batch or late or (blocked and deadline.at <= now) or fire_time(st, deadline) > deadline.at):
            break
        if deadline.kind is DeadlineKind.END and waits_too:
            break  # a newer success that waits too: they are applied in event order when their windows pass
        if deadline.kind is DeadlineKind.END and ev.kind in _QUIET and not queued(st):
            # A sign of life does not apply a waiting success (a start may still come for it, and in
            # event order it only touches the run the success closes), unless a deadline that stays
            # once it is applied lies between them: that must be judged first. Behind a queued start
            # or end that it could not join (the state holds as many as it can), it applies them first.
            applied = release_waiting(check, st, now)
            later = next_timer(check, applied[-1].state if applied else st)
            if later is None or later.at >= ev.at:
                break
        caught = catch_up(check, st, ev.at, now)
        steps += up_then_running(caught)
        released = len(caught.state.waiting) < len(st.waiting)
        st = caught.state
        deadline = next_deadline(check, st)
        if not released and (deadline is None or deadline.kind is not DeadlineKind.END):
            break  # it fired all it could (a reminder fires once)
    step, fires_at = _apply_event(check, st, ev, now, window)
    steps += up_then_running(step)
    new = step.state
    if ev.kind is _START and ev.run_id is not None and waits_for(check, new, ev.run_id):
        # The start of the oldest waiting success's run id: nothing else can be its run. The pings
        # queued behind it follow (up to the next success that waits for its own start).
        behind = sum(1 for _ in itertools.takewhile(lambda w: w[6] is not None, new.waiting[1:]))
        steps += release_waiting(check, new, now)[: 1 + behind]
        fires_at = math.nan
    return steps, fires_at


def _resumed_by(
    check: CheckConfig, st: CheckState, ev: Event, now: float, window: float, batch: bool
) -> tuple[list[Step], float | None]:
    """A run's ping, dated after the pause, on a paused check that a ping resumes (resume_on_ping):
    what it held applies to the paused check first (as before an operator's resume), then it is
    watched again as of the ping, which then applies as to any watched check."""
    steps = apply_held(check, st, now, due=False)
    if steps:
        st = steps[-1].state
    # The run under way at the pause that this ping is of is kept by the resume (a fan-in batch's
    # workers before the pause still count; its time limit counts from the ping), the others not.
    resumed = resume(check, st, min(ev.at, now), RESUMED_BY_PING, only=ev.run_id or IMPLICIT_RUN)
    after, fires_at = receive_timed(check, resumed.state, ev, now, window, batch=batch)
    return [*steps, resumed, *after], fires_at


def up_then_running(step: Step) -> list[Step]:
    """A recovery into running whose open runs all began after it (their starts' pings came
    first): up as of the recovery, then running as of the first of those starts, as in event
    order (else the recovery told would say running at a time no run was). Else the step alone."""
    flip = step.flip
    if flip is None or flip.new is not _RUNNING or flip.old is not _DOWN:
        return [step]
    started = started_since(step.state, flip.at)
    if started is None:
        return [step]
    up = step.state.copy()
    up.status, up.changed_at = _UP, flip.at
    step.state.changed_at = started  # the recovery stays the last change told (told_at)
    # Learned when the start's ping came, before the success's: on time, as far as the state knows.
    running = Flip(started, _UP, _RUNNING, None, None, "")
    return [Step(up, dataclasses.replace(flip, new=_UP), step.ended), Step(step.state, running, ())]


def _fail_then_recover(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> list[Step]:
    """Both changes of an overtaken failure, each dated when it happened: down as of the failure,
    up again as of the success that came after it. The state ends as the success left it."""
    applied = apply_event(check, st, ev, now, window)  # the run it ended, as history
    success_at = first_end_after(st, ev.at)
    # Changes recorded after the failure (a retry's start and success: running, then up) alerted
    # nobody; in event order the check was down then. They are withdrawn.
    withdraw = ev.at if st.changed_at > ev.at else None
    down = applied.state.copy()
    down.status, down.reason, down.changed_at, down.alerted_at = Status.DOWN, Reason.FAILED, ev.at, now
    down.told_at = ev.at
    down.last_exit_status = ev.exit_status  # its alert's; the success's, the newest end's, follows
    detail = failed(ev.exit_status)
    learned = now if now - ev.at > BACKDATED else None
    old = st.status
    if withdraw is not None:
        old = status_then(st, ev.at, list(applied.ended))
    went_down = Flip(ev.at, old, Status.DOWN, Reason.FAILED, None, detail, learned_at=learned, withdraws=withdraw)
    back = applied.state.copy()
    back.changed_at = back.told_at = success_at  # what was recorded after the failure is withdrawn
    words = f"it succeeded {human_duration(success_at - ev.at)} after this failure (their pings arrived out of order)"
    # A run started after the success: up as of the success, then running as of that start.
    started = started_since(st, success_at)
    came_back = Flip(
        success_at,
        Status.DOWN,
        st.status if started is None else _UP,
        None,
        None,
        words,
        learned_at=now if now - success_at > BACKDATED else None,
    )
    if started is None:
        return [Step(down, went_down, applied.ended), Step(back, came_back, ())]
    up = back.copy()
    up.status, up.changed_at = _UP, success_at
    up.told_at = back.told_at = success_at  # the recovery is the last change told, not the start
    back.changed_at = started
    running = Flip(started, _UP, _RUNNING, None, None, "", learned_at=now if now - started > BACKDATED else None)
    return [Step(down, went_down, applied.ended), Step(up, came_back, ()), Step(back, running, ())]


def _reported_late(ev: Event, now: float) -> str:
    what = "success" if ev.kind is Kind.SUCCESS else ev.kind.value
    return f"the job did run: its {what} ping arrived {human_duration(now - ev.at)} after it happened"


def arm_step(
    check: CheckConfig, st: CheckState, upstream_at: float, now: float | None = None, window: float = REORDER_WINDOW
) -> CheckState:
    """The upstream of a pipeline step triggered (at `upstream_at`, learned `now`): this step must
    now succeed within `within`. A deadline a replayed upstream event leaves in the past waits for
    the reorder window, as the step's own replayed success may be right behind it.

    A trigger dated before the step's own last success (its ping came late) arms nothing: the
    step ran after it. An armed step keeps its earlier deadline; only its own success (or a miss)
    disarms it. One that holds a success of its own for the reorder window, dated before this
    trigger, is armed anew as of it: applied in event order, that success does the earlier
    arming's part only.
    """
    if check.within is None or st.status is Status.PAUSED:
        return st
    if st.last_success_at is not None and st.last_success_at > upstream_at:
        return st  # a trigger whose ping came late (a spool's replay): the step has run since, as event order has it
    if st.step_due is not None and not disarms_held(st, upstream_at):
        return st
    new = st.copy()
    new.step_due, new.step_since = upstream_at + check.within, upstream_at
    new.step_after = f"{check.after}.{check.after_trigger}"
    drop_slack(check, new, upstream_at if now is None else now)  # a new deadline: not extended by another's downtime
    if now is not None and now - upstream_at > BACKDATED:
        new.held_at, new.hold_until = now, now + window
    return new


def arm_folded(
    check: CheckConfig, st: CheckState, up_at: float, now: float, window: float = REORDER_WINDOW
) -> CheckState:
    """The upstream of a step whose down was folded into its alert is up again (at `up_at`), and
    nothing armed the step since: its window passed while the upstream was down, and it has not
    succeeded. Armed to be judged at once, on its own (a down told, unless another upstream is
    down then): folded for ever, nobody would hear that it never ran."""
    if check.within is None or st.status is not Status.DOWN or not st.folded or st.step_due is not None:
        return st
    new = st.copy()
    new.step_due, new.step_since = up_at, None
    if now - up_at > BACKDATED:  # a replayed recovery: the step's own replayed success may be behind it
        new.held_at, new.hold_until = now, now + window
    return new
