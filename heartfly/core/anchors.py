"""A check's schedule anchor and due time, as the state machine's rules move them: the anchor a
run event sets, the due time computed from it, and the downtime slack a new deadline drops.
Shared by heartfly.core.states (events) and heartfly.core.statecontrol (operators, config,
restarts). Pure."""

from __future__ import annotations

import math

from heartfly.core.checkconfig import CheckConfig
from heartfly.core.deadlines import RESTART_SETTLE, batches_from, quiet_from
from heartfly.core.schedule import Due, next_due
from heartfly.core.statetypes import CheckState


def move_anchor(check: CheckConfig, st: CheckState, at: float, *, force: bool = False) -> None:
    if not (force or at > st.anchor):
        return
    st.anchor = at
    # A cron due time holds until a ping reaches its tick; an `every` one moves with each anchor.
    if force or check.every is not None or st.anchor >= st.due_since:
        set_due(check, st, at=at)


def set_due(check: CheckConfig, st: CheckState, due: Due | None = None, at: float = math.inf) -> None:
    """The due time from the anchor (`due`: computed from it already), set by an event at `at`; a
    new one drops the slack, unless an open run still needs it (drop_slack)."""
    if due is None:
        due = next_due(check, st.anchor)
    st.due_at, st.due_since = due.at, due.since
    st.not_before = 0.0  # a reload's floor (statecontrol.reconfigure): its deadlines have fired
    drop_slack(check, st, at)


def drop_slack(check: CheckConfig, st: CheckState, at: float) -> None:
    """A new deadline (at `at`) is not extended by a downtime an earlier one was. But the slack is
    one for all of a check's deadlines, open runs' overrun, stall and fan-in limit among them: it
    stays while dropping it would pull an open run's deadline back to within RESTART_SETTLE of
    `at` (into the downtime it was extended past: a false alarm at once). The new deadline is
    then judged that much late, until that run ends or is given up."""
    if st.slack and not (st.runs and _runs_need_slack(check, st, at)):
        st.slack = 0.0


def _runs_need_slack(check: CheckConfig, st: CheckState, at: float) -> bool:
    if check.expect is not None:
        limit = check.max_runtime if check.max_runtime is not None else check.grace
        if batches_from(st) + limit <= at + RESTART_SETTLE:
            return True
    elif (
        check.max_runtime is not None
        and min(r.started_at for r in st.runs.values()) + check.max_runtime <= at + RESTART_SETTLE
    ):
        return True
    return check.stall is not None and quiet_from(st) + check.stall <= at + RESTART_SETTLE
