"""A check's record (core/record.py) as the check page and the API show it."""

from __future__ import annotations

from typing import Any

from heartfly.core.record import LONGEST, Record, records
from heartfly.server.engine import Check
from heartfly.web.runtime import Runtime


async def read(rt: Runtime, check: Check) -> list[Record]:
    """The record over each window up to now, from what is committed (the caller settles first:
    a flip just fired is then in it)."""
    reader = rt.reader
    assert reader is not None
    now = rt.clock.now()
    rows = await reader.read_record(check.id, now - LONGEST)
    return records(now, rows.created_at, rows.before, rows.changes, rows.runs)


def as_json(record: Record) -> dict[str, Any]:
    return {
        "window": record.window,
        "watched_seconds": round(record.watched, 3),
        "down_seconds": round(record.down, 3),
        "availability": None if record.availability is None else round(record.availability, 6),
        "times_down": record.times_down,
        "runs": record.runs,
        "failed_runs": record.failed_runs,
        "median_duration_seconds": record.median_duration,
        "p95_duration_seconds": record.p95_duration,
    }
