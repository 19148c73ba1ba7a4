"""Pipeline steps: `after = "extract"` / `"extract.start"` / `"extract.success"`. Pure.

A step must succeed within `within` of its upstream check's trigger event: its start (a success
with no open run counts as a start too; a fan-in batch's first ping) or, with ".success", a
success judged one (a fan-in's: its batch complete).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # config imports this module
    from heartfly.core.config import CheckConfig


# A step follows one check's event: `after = ["a", "b"]` (a join) is refused with these words.
ONE_UPSTREAM = (
    'expected one check (as "extract" or "extract.success"), got an array: a step follows one upstream; '
    "a step after several (a join) is not supported: make it follow the one whose event comes last"
)


class After(NamedTuple):
    check: str
    trigger: str  # "start" or "success"


def parse_after(text: str) -> After:
    name, dot, trigger = text.rpartition(".")
    if dot and trigger in ("start", "success"):
        return After(name, trigger)
    return After(text, "start")


def pipeline_problems(checks: Mapping[str, CheckConfig]) -> list[tuple[str, str]]:
    """What is wrong with a config's pipelines, as (key path, problem): a step after no check, and
    steps that form a cycle."""
    found: list[tuple[str, str]] = []
    edges = {c.name: c.after for c in checks.values() if c.after is not None}
    for name, upstream in edges.items():
        if upstream in checks:
            continue
        literal = f"{upstream}.{checks[name].after_trigger}"
        if literal in checks:  # parse_after took the check's own name for "upstream.event"
            more = (f' ("{literal}" is a check, but a name ending in .start or .success names an event of the'
                    f' check before it: write "{literal}.start" or "{literal}.success")')  # fmt: skip
        else:
            hint = difflib.get_close_matches(upstream, list(checks), n=1)
            more = f' (did you mean "{hint[0]}"?)' if hint else ""
        found.append((f"checks.{name}.after", f'no check "{upstream}"{more}'))
    cycle = find_cycle({k: v for k, v in edges.items() if v in checks})
    if cycle is not None:
        found.append((f"checks.{cycle[0]}.after", "pipeline steps form a cycle: " + " -> ".join(cycle)))
    return found


def find_cycle(edges: Mapping[str, str]) -> list[str] | None:
    """A cycle in step -> upstream edges, as the list of names around it, or None.

    Each step is walked up from once: a walk stops at a step an earlier walk passed (no cycle
    lies above it), so a pipeline of n steps costs n, not n² walks of up to n steps each."""
    clear: set[str] = set()  # steps with no cycle above them
    for start in edges:
        walk: dict[str, int] = {}  # this walk's steps, in order, with their place in it
        node = start
        while node in edges and node not in clear:
            if node in walk:
                return [*list(walk)[walk[node] :], node]
            walk[node] = len(walk)
            node = edges[node]
        clear.update(walk)
    return None


def chain(name: str, edges: Mapping[str, str], steps: Mapping[str, Sequence[tuple[str, str]]]) -> list[str] | None:
    """The pipeline a check belongs to, as its alert names it: from the root down to the check (its
    upstreams, in order), then on down from it, following its first step where it branches; None
    for a check in no pipeline. `edges` and `steps` as steps_of returns them."""
    if name not in edges and name not in steps:
        return None
    names = [name]
    while names[0] in edges and edges[names[0]] not in names:  # (a cycle is a config error)
        names.insert(0, edges[names[0]])
    while steps.get(names[-1]) and steps[names[-1]][0][0] not in names:
        names.append(steps[names[-1]][0][0])
    return names


def steps_of(checks: Iterable[CheckConfig]) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """The pipelines of a config: step -> its upstream, and upstream -> [(step, trigger)]."""
    edges: dict[str, str] = {}
    steps: dict[str, list[tuple[str, str]]] = {}
    for c in checks:
        if c.after is not None:
            edges[c.name] = c.after
            steps.setdefault(c.after, []).append((c.name, c.after_trigger))
    return edges, steps


def fires(
    trigger: str,
    kind: str,
    run_id: str | None,
    open_runs: Mapping[str, object],
    *,
    succeeded: bool,
    batches_closed: Collection[str] | None = None,
) -> bool:
    """Whether an upstream's ping (`kind`, with the runs open before it) starts a step's clock.

    `succeeded`: the ping was judged a success (not one that broke an assertion or was too fast;
    for a fan-in upstream, the success that completed its batch). `batches_closed`: a fan-in
    upstream's finished run ids (None for another check): there a batch starts with its first
    worker's ping, and the pings of a batch open or finished start nothing.
    """
    if trigger == "success":
        return succeeded
    if batches_closed is not None:
        rid = run_id or ""
        return kind in ("start", "success") and rid not in open_runs and rid not in batches_closed
    return kind == "start" or (kind == "success" and (run_id not in open_runs if run_id else not open_runs))


def down_upstream(name: str, edges: Mapping[str, str], is_down: Callable[[str], bool]) -> str | None:
    """The nearest check up a step's pipeline that is down, if any."""
    upstream = edges.get(name)
    seen = set()
    while upstream is not None and upstream not in seen:
        seen.add(upstream)
        if is_down(upstream):
            return upstream
        upstream = edges.get(upstream)
    return None
