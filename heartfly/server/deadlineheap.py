"""The deadline heap: `(fire at, seq, check id)` entries, earliest first.

A check's newer entry makes its older ones stale (its seq moved on): they are skipped when they
come up, and dropped all at once when stale entries outnumber live ones. Which entry is live is
the owner's to say (`is_live`), since only it knows each check's current seq.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

Entry = tuple[float, int, int]


class DeadlineHeap:
    def __init__(self, is_live: Callable[[Entry], bool]) -> None:
        self._heap: list[Entry] = []
        self._is_live = is_live

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, seq: int, check_id: int) -> bool:
        """Add an entry; True if it comes up before every entry already there."""
        first = not self._heap or at < self._heap[0][0]
        heapq.heappush(self._heap, (at, seq, check_id))
        return first

    def push_all(self, entries: list[Entry]) -> None:
        """Add many entries at once: a heapify of them all, which beats a push each."""
        self._heap += entries
        heapq.heapify(self._heap)

    def compact(self) -> None:
        live = [e for e in self._heap if self._is_live(e)]
        heapq.heapify(live)
        self._heap = live

    def earliest(self) -> float | None:
        """When the earliest live entry comes up (stale ones on top are dropped on the way)."""
        while self._heap and not self._is_live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Iterator[int]:
        """The check ids of the live entries at or before `now`, earliest first, each popped."""
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._is_live(entry):
                yield entry[2]
