"""Geometry for the dashboard's inline SVG charts. Pure: rows in, bars out; templates draw them.

Bars carry a CSS class per outcome (colour) and a title (the words), so the charts read without
colour too: hovering or a screen reader gets "failed · 12.4 s · 2026-11-23 03:00:12Z".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from heartfly.core import localtime
from heartfly.core.assertions import Assertion, first_broken
from heartfly.core.patterns import fold_run_id
from heartfly.core.units import human_duration

# outcome -> (css class, words)
OUTCOMES = {
    "success": ("ok", "succeeded"),
    "fail": ("bad", "failed"),
    "too_fast": ("bad", "finished too fast"),
    "assertion": ("bad", "broke an assertion"),
    "incomplete": ("bad", "incomplete"),
    "overrun": ("slow", "overran max_runtime"),
    "stalled": ("slow", "stalled"),
    "running": ("run", "running"),
    "missed": ("miss", "missed (no ping by the deadline)"),
    "step_missed": ("miss", "step missed"),
}
GIVEN_UP = ("overrun", "stalled")  # runs a deadline ended at their limit, not their end ping
TIMELINE_SLOTS = 24
SLOT = 7  # px per bar in the dashboard's timeline, bar 5 wide
HEIGHT = 26


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: float
    height: float
    bars: list[Bar]
    summary: str  # one sentence for aria-label
    longest: float | None = None
    limit_y: float | None = None  # max_runtime line, when it fits the scale


def events(
    runs: Iterable[Mapping[str, Any]],
    ends: Iterable[Mapping[str, Any]],
    flips: Iterable[Mapping[str, Any]],
    open_since: Iterable[float],
    now: float,
    assertions: tuple[Assertion, ...] = (),
) -> list[dict[str, Any]]:
    """Runs, lone end pings, missed deadlines and open runs as one oldest-first list.

    A job that never sends a start has no runs, only success and failure pings: those show as
    events without a duration; a success that breaks one of `assertions` shows as broken, as the
    state machine judged it. They are the check's assertions as configured now, so a ping from
    before an assertion was added is judged by it too (pings do not store a verdict). An end ping
    that closed a run is shown once, as that run.
    """
    items = []
    closed = set()
    runs, ends = list(runs), list(ends)
    ended = {round(p["at"], 6) for p in ends}
    early = []  # runs stored with their end at their start, which no end ping is dated at
    for r in runs:
        closed.add(round(r["ended_at"], 6))
        if r["ended_at"] == r["started_at"] and round(r["ended_at"], 6) not in ended:
            early.append(r)
        items.append(
            {"at": r["started_at"], "outcome": r["outcome"], "duration": r["duration"], "exit_status": r["exit_status"]}
        )
    lone = [p for p in ends if round(p["at"], 6) not in closed]
    # A run given up at its limit (overrun, stalled) is drawn as that: the end its job sent after
    # it, with its run id or, like its start, without one, closed nothing (docs/jobs.md) but is that
    # run's end, not a run of its own (a run without a start, which would also make the job read as
    # one that sends none).
    for r in runs:
        if r["outcome"] not in GIVEN_UP:
            continue
        rid = _rid(r.get("run_id"))
        # Before the next run of its id (without one: any run) started: an end after that is that
        # run's, or one of its own.
        later = [
            n["started_at"]
            for n in runs
            if (rid is None or _rid(n.get("run_id")) == rid) and n["started_at"] > r["started_at"]
        ]
        until = min(later, default=float("inf"))
        late = [p for p in lone if _rid(p.get("run_id")) == rid and r["started_at"] <= p["at"] < until]
        if late:  # its one end: the first after its start (a run id used again has runs of its own)
            lone.remove(min(late, key=lambda p: (p["at"], p.get("id", 0))))
    for r in early:
        # An end stamped before its own run's start (a lagging client's spooled end) closed it: the
        # newest end of its run id and of its kind dated at or before the start is that run's, not
        # a run of its own. Only with a run id (docs/jobs.md), and never a fan-in batch's success
        # (its successes are not among `ends`): else it took an older failure for its end, hid it.
        if r.get("run_id") is None:
            continue
        rid, kind = _rid(r["run_id"]), "fail" if r["outcome"] == "fail" else "success"
        mine = [p for p in lone if _rid(p.get("run_id")) == rid and p["kind"] == kind and p["at"] <= r["started_at"]]
        if mine:
            lone.remove(max(mine, key=lambda p: (p["at"], p.get("id", 0))))
    for p in lone:
        outcome = "fail"
        if p["kind"] == "success":
            outcome = "assertion" if first_broken(assertions, p.get("metrics"), None) else "success"
        items.append({"at": p["at"], "outcome": outcome, "duration": None, "exit_status": p["exit_status"]})
    for f in flips:
        if f["new"] == "down" and f["reason"] in ("missed", "step_missed"):
            items.append({"at": f["at"], "outcome": f["reason"], "duration": None, "exit_status": None})
    for started in open_since:
        items.append({"at": started, "outcome": "running", "duration": max(0.0, now - started), "exit_status": None})
    items.sort(key=lambda e: e["at"])
    return items


def timed(events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the job's newest run or end (of `events`, as events() lists them) was timed: a
    start opened it. Not when the newest end came without one, from a job that pings only its end
    or no longer sends its /start (any timed run from before, kept for `keep_history`, made a job
    that stopped sending its start read as one that sends it). A check never pinged yet has no
    such end, and counts as timed."""
    ends = [e for e in events if e["outcome"] not in ("missed", "step_missed")]
    if not ends:
        return True
    newest = max(ends, key=lambda e: e["at"] + (e["duration"] or 0.0))  # by when it ended
    return newest["duration"] is not None


def _rid(run_id: str | None) -> str | None:
    """A run id as runs are paired by (a UUID in either case is one)."""
    return None if run_id is None else fold_run_id(run_id)


def _title(e: Mapping[str, Any], tz: tzinfo) -> str:
    words = OUTCOMES.get(e["outcome"], ("other", e["outcome"]))[1]
    if e.get("exit_status") not in (None, 0):
        words += f" (exit {e['exit_status']})"
    parts = [words]
    if e["duration"] is not None:
        parts.append(("for " if e["outcome"] == "running" else "") + human_duration(e["duration"]))
    parts.append(localtime.full(e["at"], tz))
    return " · ".join(parts)


def _summary(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no runs yet"
    counts: dict[str, int] = {}
    for e in items:
        words = OUTCOMES.get(e["outcome"], ("other", e["outcome"]))[1]
        counts[words] = counts.get(words, 0) + 1
    return f"last {len(items)}: " + ", ".join(f"{n} {w}" for w, n in counts.items())


def timeline(items: list[dict[str, Any]], slots: int = TIMELINE_SLOTS, *, tz: tzinfo = UTC) -> Chart:
    """The dashboard's compact strip: newest at the right, height by duration (missed: full outline)."""
    items = items[-slots:]
    longest = max((e["duration"] or 0.0 for e in items), default=0.0)
    bars = []
    offset = slots - len(items)  # right-aligned, so every row's newest bar lines up
    for i, e in enumerate(items):
        css = OUTCOMES.get(e["outcome"], ("other", ""))[0]
        if e["duration"] is None or longest <= 0:
            h = HEIGHT - 2.0 if css == "miss" else HEIGHT * 0.5
        else:
            h = max(5.0, (HEIGHT - 2) * (e["duration"] / longest) ** 0.5)  # sqrt: short runs stay visible
        bars.append(Bar((offset + i) * SLOT + 1, HEIGHT - h - 1, SLOT - 2, h, css, _title(e, tz)))
    return Chart(slots * SLOT, HEIGHT, bars, _summary(items), longest or None)


def durations(
    items: list[dict[str, Any]], max_runtime: float | None, width: int = 600, height: int = 140, *, tz: tzinfo = UTC
) -> Chart:
    """The check page's run history: one bar per run, linear in duration, oldest at the left.

    Events without a duration (a lone success ping, a missed deadline) are short stubs or outlines.
    """
    items = items[-60:]
    longest = max((e["duration"] or 0.0 for e in items), default=0.0)
    scale = max(longest, max_runtime or 0.0) if max_runtime and max_runtime < longest * 1.5 else longest
    slot = width / max(len(items), 20)
    bars = []
    for i, e in enumerate(items):
        css = OUTCOMES.get(e["outcome"], ("other", ""))[0]
        if css == "miss":
            h = height - 4.0
        elif e["duration"] is None or scale <= 0:
            h = height * 0.06
        else:
            h = max(2.0, (height - 4) * e["duration"] / scale)
        x = width - (len(items) - i) * slot  # newest at the right edge
        bars.append(
            Bar(round(x + slot * 0.15, 2), round(height - h, 2), round(slot * 0.7, 2), round(h, 2), css, _title(e, tz))
        )
    limit_y = None
    if max_runtime and scale and max_runtime <= scale:
        limit_y = round(height - (height - 4) * max_runtime / scale, 2)
    return Chart(width, height, bars, _summary(items), longest or None, limit_y)
