"""How a check is shown: one dict shape for `heartfly status --json` and `GET /api/v1/checks`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heartfly.core.config import CheckConfig
from heartfly.core.states import CheckState, DeadlineKind, Status, fire_time, next_deadline

PAUSE_META = "pause_until:"  # meta key prefix: when an operator's pause of a check ends (web and CLI read it)


def iso(ts: float | None) -> str | None:
    """UTC ISO 8601 with milliseconds and a Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_summary(cfg: CheckConfig, st: CheckState) -> dict[str, Any]:
    watching = st.status is not Status.PAUSED
    deadline = next_deadline(cfg, st) if watching else None
    # A ping held for the reorder window is applied when the window has passed, not at its time.
    deadline_at = (
        None if deadline is None else fire_time(st, deadline) if deadline.kind is DeadlineKind.END else deadline.at
    )
    due = st.next_due()
    return {
        "name": cfg.name,
        "state": st.status.value,
        "reason": st.reason.value if st.status is Status.DOWN and st.reason else None,
        "description": cfg.description,
        "tags": list(cfg.tags),
        "schedule": cfg.schedule_words(),
        "grace_seconds": cfg.grace,
        "last_ping_at": iso(st.last_ping_at),
        "last_ping_kind": st.last_ping_kind.value if st.last_ping_kind else None,
        "last_success_at": iso(st.last_success_at),
        "due_at": iso(due) if watching and due is not None else None,
        "step_due_at": iso(st.step_due + st.slack) if st.step_due is not None else None,  # as due_at: downtime too
        "next_deadline_at": iso(deadline_at),
        "running_since": iso(min(r.started_at for r in st.runs.values())) if st.runs else None,
        "open_runs": len(st.runs),
        "last_duration_seconds": st.last_duration,
        "last_exit_status": st.last_exit_status,
        "state_since": iso(st.changed_at),
        "origin": cfg.origin,  # last: scripts that read the earlier keys in order keep working
    }
