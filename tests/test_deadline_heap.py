"""The deadline heap: entries come up earliest first, stale ones skipped, however they were added."""

from __future__ import annotations

from heartfly.server.deadlineheap import DeadlineHeap, Entry


def test_entries_added_at_once_come_up_in_time_order_with_stale_ones_skipped() -> None:
    live_seq = {1: 2, 2: 1, 3: 1, 4: 1}  # check 1's entry of seq 1 was superseded by seq 2
    heap = DeadlineHeap(lambda entry: live_seq[entry[2]] == entry[1])
    heap.push(50.0, 1, 3)
    loaded: list[Entry] = [(30.0, 1, 1), (40.0, 1, 2), (35.0, 2, 1), (10.0, 1, 4)]
    heap.push_all(loaded)
    assert heap.earliest() == 10.0
    assert list(heap.pop_due(45.0)) == [4, 1, 2]  # the stale (30.0, seq 1) entry of check 1 is dropped
    assert heap.earliest() == 50.0 and list(heap.pop_due(60.0)) == [3]
    assert heap.earliest() is None
