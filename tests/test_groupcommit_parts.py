"""The group committer's caps on a batch (store/groupcommit.py), with a commit of its own (no
database): a batch of at most STATEMENTS_PER_BATCH statements, in queue order, a failed batch's
retry included."""

from __future__ import annotations

import asyncio

import pytest

from heartfly.store import rows
from heartfly.store.api import StoreError
from heartfly.store.groupcommit import STATEMENTS_PER_BATCH, GroupCommitter


class Recorded(GroupCommitter):
    """Commits nothing: records each batch's statements; the first `fail` commits fail."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail = fail

    async def _commit_batch(self, writes: list[rows.Write]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise OSError("database or disk is full")
        self.batches.append([params[0] for w in writes for _, params in w.statements])


def parts(n: int, size: int) -> list[rows.Write]:
    """n writes of `size` new check rows each, as a big first start queues them."""
    return [rows.Write(statements=[rows.meta_statement(f"p{i}.{j}", "") for j in range(size)]) for i in range(n)]


async def test_a_failed_part_is_retried_in_parts_not_in_one_commit_of_all_that_was_queued() -> None:
    writer = Recorded(fail=1)
    writer._start_task()
    try:
        for write in parts(5, STATEMENTS_PER_BATCH):
            writer.submit_nowait(write)
        with pytest.raises(StoreError):  # the first commit failed: the flush queued with the parts is told
            await writer.flush()
        await writer.flush()  # the parts, carried and retried
    finally:
        await writer._stop_task()
    assert [len(b) for b in writer.batches] == [STATEMENTS_PER_BATCH] * 5
    keys = [key for batch in writer.batches for key in batch]
    assert keys == [f"p{i}.{j}" for i in range(5) for j in range(STATEMENTS_PER_BATCH)]  # in queue order


async def test_parts_queued_together_commit_in_batches_under_the_cap_a_bigger_write_alone_and_in_order() -> None:
    # What 54eae75's own test never reached (its parts were of 50 rows): the cap splits between
    # writes, never inside one (a write bigger than the cap commits whole, alone), in queue order.
    writer = Recorded()
    for write in [*parts(3, 400), *parts(1, 1500), *parts(2, 10)]:
        writer.submit_nowait(write)  # all queued before the writer's first batch
    writer._start_task()
    try:
        await writer.flush()
    finally:
        await writer._stop_task()
    assert [len(b) for b in writer.batches] == [800, 400, 1500, 20]
