"""Pipeline steps: `after = "extract"` / `"extract.start"` / `"extract.success"`. Pure.

A step must succeed within `within` of its upstream check's trigger event: its start (a success
with no open run counts as a start too) or, with ".success", its success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class After(NamedTuple):
    check: str
    trigger: str  # "start" or "success"


def parse_after(text: str) -> After:
    name, dot, trigger = text.rpartition(".")
    if dot and trigger in ("start", "success"):
        return After(name, trigger)
    return After(text, "start")


def find_cycle(edges: Mapping[str, str]) -> list[str] | None:
    """A cycle in step -> upstream edges, as the list of names around it, or None."""
    for start in edges:
        seen: list[str] = []
        node: str | None = start
        while node is not None and node in edges:
            if node in seen:
                return [*seen[seen.index(node) :], node]
            seen.append(node)
            node = edges[node]
    return None


def chain(name: str, edges: Mapping[str, str], downstream: Mapping[str, list[str]]) -> list[str]:
    """The whole pipeline a check belongs to, from its root, following the first branch down."""
    root = name
    while root in edges:
        root = edges[root]
    names = [root]
    while downstream.get(names[-1]):
        names.append(downstream[names[-1]][0])
    return names
