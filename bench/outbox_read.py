"""The dispatcher's read of the outbox: time per outboxqueries.read_due_alerts call as the backlog grows.

Run from the repository root:

    .venv/bin/python bench/outbox_read.py                      # 500, 50k, 200k pending alerts
    .venv/bin/python bench/outbox_read.py --sizes 1000000 --plan

For each size it builds a real SQLite file (Heartfly's schema, 1 KiB pages, WAL) with N pending
alerts spread over --checks checks and 3 channels, plus 20 test alerts, in two shapes: "fresh",
every group's oldest alert due (an outage just ended), and "outage", two thirds of those oldest
alerts waiting for a retry a minute away while the alerts queued behind them have been due since
they were made. Prints the best of --reps calls of the read before this change (its SQL inlined
below) and now, and checks that both return the same rows. --plan prints EXPLAIN QUERY PLAN.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from heartfly.store import outboxqueries
from heartfly.store import sqlite as store
from heartfly.store.rows import INSERT_OUTBOX, OutboxRow

NOW = 1_780_000_000.0
CHANNELS = ("email", "hook", "chat")

# outboxqueries._DUE_ALERTS before schema version 5: groups every pending row on every read.
OLD_DUE_ALERTS = f"""
WITH heads AS (
    SELECT MIN(id) AS id, COUNT(*) > 1 AS newer FROM outbox WHERE status = 'pending'
    GROUP BY check_id, channel, CASE WHEN check_id IS NULL THEN id END
), due AS (
    SELECT {outboxqueries._OUTBOX_COLUMNS}, newer,
        ROW_NUMBER() OVER (PARTITION BY channel ORDER BY next_attempt_at, id) AS n
    FROM outbox JOIN heads USING (id) WHERE next_attempt_at <= ?
)
SELECT {outboxqueries._OUTBOX_COLUMNS}, newer FROM due WHERE n <= ? ORDER BY next_attempt_at, id
"""


async def build(path: Path, pending: int, checks: int, shape: str) -> None:
    await (await store.Writer.open(path)).close()  # the schema, as Heartfly makes it
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("BEGIN")
        rows: list[OutboxRow] = []
        for i in range(pending):  # oldest first: each check's first alert on a channel is its head
            made = NOW - pending + i
            event = "down" if i < checks * len(CHANNELS) else "reminder"
            rows.append(
                (i + 1, f"k{i}", i % checks + 1, CHANNELS[i // checks % 3], event, "{}", made, NOW + 86400, made)
            )
        rows += [(pending + j + 1, f"t{j}", None, CHANNELS[j % 3], "test", "{}", NOW, NOW + 60, NOW) for j in range(20)]
        conn.executemany(INSERT_OUTBOX, rows)
        conn.execute("UPDATE outbox SET status = 'sent' WHERE id % 7 = 0")  # finished rows in between
        if shape == "outage":  # two thirds of the heads wait for a retry
            heads = (
                "SELECT MIN(id) FROM outbox WHERE status = 'pending' AND check_id IS NOT NULL"
                " GROUP BY check_id, channel"
            )
            conn.execute(
                f"UPDATE outbox SET attempts = 5, next_attempt_at = ? WHERE id IN ({heads}) AND id % 3 != 0",
                (NOW + 60,),
            )
        conn.execute("COMMIT")
    conn.close()


async def old_read(db: aiosqlite.Connection, per_channel: int) -> list[tuple[Any, ...]]:
    async with db.execute(OLD_DUE_ALERTS, (NOW, per_channel)) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def best_ms(call: Callable[[], Awaitable[Any]], reps: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        result = await call()
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


async def run(sizes: list[int], checks: int, reps: int, per_channel: int, plan: bool) -> None:
    print(f"{'pending':>8} {'shape':>7} {'returned':>8} {'before ms':>10} {'now ms':>8}")
    with tempfile.TemporaryDirectory(prefix="heartfly-bench-") as tmp:
        for size in sizes:
            for shape in ("fresh", "outage"):
                path = Path(tmp) / f"{size}-{shape}.db"
                await build(path, size, checks, shape)
                db = await store.connect(path)
                try:
                    before, want = await best_ms(functools.partial(old_read, db, per_channel), reps)
                    now, got = await best_ms(
                        functools.partial(outboxqueries.read_due_alerts, db, NOW, per_channel), reps
                    )
                    assert [(r[0], bool(r[10])) for r in want] == [(i.id, i.newer) for i in got], "the reads differ"
                    print(f"{size:>8} {shape:>7} {len(got):>8} {before:>10.2f} {now:>8.2f}")
                    if plan:
                        async with db.execute(
                            "EXPLAIN QUERY PLAN " + outboxqueries._DUE_ALERTS, (NOW, per_channel)
                        ) as cur:
                            for row in await cur.fetchall():
                                print("    ", row[3])
                finally:
                    await db.close()
                path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 50_000, 200_000], help="pending alerts")
    parser.add_argument("--checks", type=int, default=1000, help="checks the alerts are spread over (default 1000)")
    parser.add_argument("--reps", type=int, default=20, help="calls per measurement; the best is printed (default 20)")
    parser.add_argument("--per-channel", type=int, default=100, help="the dispatcher's DUE_PER_CHANNEL (default 100)")
    parser.add_argument("--plan", action="store_true", help="print EXPLAIN QUERY PLAN of the read")
    args = parser.parse_args()
    asyncio.run(run(args.sizes, args.checks, args.reps, args.per_channel, args.plan))


if __name__ == "__main__":
    main()
