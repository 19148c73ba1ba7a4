"""The dispatcher's read of the outbox (outboxqueries.read_due_alerts) and the schema it relies on."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from heartfly.core.states import CheckState
from heartfly.store import outboxqueries
from heartfly.store import sqlite as store
from heartfly.store.rows import INSERT_OUTBOX, insert_check_statement
from heartfly.store.schema import MIGRATIONS

NOW = 1_780_000_000.0
Row = tuple[int, str, int | None, str, str, str, float, float, float]


def _expected(rows: list[tuple[Row, str]], now: float, per_channel: int) -> list[tuple[int, bool]]:
    """The read's meaning, in plain Python: (id, newer) of the alerts to try now, in order."""
    groups: dict[object, list[Row]] = {}
    for row, status in rows:
        if status == "pending":
            group = ("test", row[0]) if row[2] is None else (row[2], row[3])
            groups.setdefault(group, []).append(row)
    heads = [(min(g, key=lambda r: r[0]), len(g) > 1) for g in groups.values()]
    # A channel's oldest due test alert first: the operator waits for one now, whatever the backlog.
    # Only one: they are tried one at a time, and a pile of them must not crowd the alerts out.
    firsts: dict[str, Row] = {}
    for r, _ in sorted(heads, key=lambda h: (h[0][8], h[0][0])):
        if r[4] == "test" and r[8] <= now:
            firsts.setdefault(r[3], r)
    due = sorted(
        ((r, newer) for r, newer in heads if r[8] <= now), key=lambda h: (firsts.get(h[0][3]) != h[0], h[0][8], h[0][0])
    )
    taken: dict[str, int] = {}
    out = []
    for row, newer in due:
        taken[row[3]] = taken.get(row[3], 0) + 1
        if taken[row[3]] <= per_channel:
            out.append((row[0], newer))
    return out


async def test_the_due_alerts_are_each_check_and_channels_oldest_pending_alert_if_due_at_most_n_a_channel(
    tmp_path: Path,
) -> None:
    """Against a plain model, on random outboxes: checks pending on some channels and not others,
    heads waiting for a retry with due alerts behind them, test alerts (a channel's oldest due one
    read first) and other alerts of no check, finished rows, ties."""
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    rng = random.Random(5)
    db = await store.connect(path)
    try:
        for _ in range(300):
            rows: list[tuple[Row, str]] = []
            for i in range(1, rng.randint(0, 40) + 1):
                check_id = None if rng.random() < 0.2 else rng.randint(1, 6)
                channel = rng.choice(["a", "b", "c", "gone"])
                at = NOW + rng.randint(-5, 5)
                status = "pending" if rng.random() < 0.7 else rng.choice(["sent", "failed", "superseded"])
                event = "test" if check_id is None and rng.random() < 0.5 else "down"
                rows.append(((i, f"k{i}", check_id, channel, event, "{}", NOW, NOW + 60, at), status))
            with sqlite3.connect(path) as conn:
                conn.execute("DELETE FROM outbox")
                conn.executemany(INSERT_OUTBOX, [row for row, _ in rows])
                conn.executemany("UPDATE outbox SET status = ? WHERE id = ?", [(s, row[0]) for row, s in rows])
            per_channel = rng.randint(1, 4)
            got = await outboxqueries.read_due_alerts(db, NOW, per_channel)
            assert [(item.id, item.newer) for item in got] == _expected(rows, NOW, per_channel), rows
    finally:
        await db.close()


async def test_a_maintenance_summary_has_a_newer_alert_behind_it_once_each_check_it_lists_has_one(
    tmp_path: Path,
) -> None:
    # The summary is the down alert of every check it lists: it may give way to newer alerts (for
    # the recipients it has not reached) only when none of them would lose the news that it is down.
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    summary = json.dumps({"window": "patching", "down": [{"check": "db"}, {"check": "web"}]})
    with sqlite3.connect(path) as conn:
        for check_id, name in ((1, "db"), (2, "web"), (3, "other")):
            conn.execute(*insert_check_statement(check_id, name, NOW, CheckState()))
        conn.execute(INSERT_OUTBOX, (1, "m", None, "mail", "maintenance", summary, NOW, NOW + 60, NOW))
        conn.execute(INSERT_OUTBOX, (2, "r1", 1, "mail", "recovery", "{}", NOW, NOW + 60, NOW))  # db's
        conn.execute(INSERT_OUTBOX, (3, "r3", 3, "mail", "recovery", "{}", NOW, NOW + 60, NOW))  # not listed
        conn.execute(INSERT_OUTBOX, (4, "r2", 2, "hook", "recovery", "{}", NOW, NOW + 60, NOW))  # another channel
    conn.close()
    db = await store.connect(path)
    try:
        newer = {item.id: item.newer for item in await outboxqueries.read_due_alerts(db, NOW)}
        assert newer[1] is False  # web's news would be lost: the summary stays
        with sqlite3.connect(path) as conn:
            conn.execute(INSERT_OUTBOX, (5, "r2b", 2, "mail", "recovery", "{}", NOW, NOW + 60, NOW))
        conn.close()
        newer = {item.id: item.newer for item in await outboxqueries.read_due_alerts(db, NOW)}
        assert newer[1] is True
    finally:
        await db.close()


async def test_a_database_of_schema_version_4_is_migrated_and_its_pending_alerts_are_read(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for number, migration in enumerate(MIGRATIONS[:4], start=1):
            conn.executescript(f"BEGIN; {migration}; PRAGMA user_version = {number}; COMMIT;")
        conn.executemany(
            INSERT_OUTBOX,
            [(i, f"k{i}", 1, "hook", "down", "{}", NOW, NOW + 60, NOW - 10 + i) for i in (1, 2, 3)],
        )
        conn.execute("UPDATE outbox SET status = 'sent' WHERE id = 1")
    conn.close()
    await (await store.Writer.open(path)).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert {"outbox_heads", "outbox_waiting"} <= indexes and "outbox_pending" not in indexes
    db = await store.connect(path)
    try:
        assert [(item.id, item.newer) for item in await outboxqueries.read_due_alerts(db, NOW)] == [(2, True)]
        async with db.execute("EXPLAIN QUERY PLAN " + outboxqueries._DUE_ALERTS, (NOW, 100)) as cur:
            plan = " ".join(str(row[3]) for row in await cur.fetchall())
        assert "outbox_heads" in plan and "SCAN outbox" not in plan  # seeks on the new index, no full scan
        assert await outboxqueries.count_pending_alerts(db) == 2
    finally:
        await db.close()


async def test_the_reminders_behind_a_head_are_its_groups_pending_unexpired_reminders_before_the_newest_alert(
    tmp_path: Path,
) -> None:
    """Against a plain model, on random outboxes; read on outbox_heads, at most `limit`."""
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    rng = random.Random(7)
    db = await store.connect(path)
    try:
        for _ in range(200):
            rows: list[tuple[Row, str]] = []
            for i in range(1, rng.randint(1, 40) + 1):
                check_id, channel = rng.choice([None, 1, 2]), rng.choice(["a", "b"])
                event = rng.choice(["reminder", "reminder", "reminder", "down", "recovery"])
                expires = NOW + rng.choice([-1, 0, 60])
                status = "pending" if rng.random() < 0.8 else rng.choice(["sent", "superseded", "expired"])
                rows.append(((i, f"k{i}", check_id, channel, event, "{}", NOW, expires, NOW), status))
            with sqlite3.connect(path) as conn:
                conn.execute("DELETE FROM outbox")
                conn.executemany(INSERT_OUTBOX, [row for row, _ in rows])
                conn.executemany("UPDATE outbox SET status = ? WHERE id = ?", [(s, row[0]) for row, s in rows])
            head, limit = rng.randint(0, len(rows)), rng.randint(1, 10)
            group = [row for row, s in rows if s == "pending" and (row[2], row[3]) == (1, "a")]
            newest = max((row[0] for row in group), default=0)
            want = [r[0] for r in group if head < r[0] < newest and r[4] == "reminder" and r[7] >= NOW][:limit]
            assert await outboxqueries.read_reminders_behind(db, 1, "a", head, NOW, limit) == want, (head, rows)
        async with db.execute("EXPLAIN QUERY PLAN " + outboxqueries._REMINDERS_BEHIND, (1, "a", 0, NOW, 10)) as cur:
            plan = [str(row[3]) for row in await cur.fetchall()]
        assert all("outbox_heads" in step for step in plan if step.startswith(("SEARCH", "SCAN"))), plan
        assert not any(step.startswith("SCAN") for step in plan), plan
    finally:
        await db.close()


async def test_a_pile_of_test_alerts_on_a_channel_does_not_crowd_its_alerts_out_of_the_read(tmp_path: Path) -> None:
    # Read first, all of them: 150 test alerts pending on a channel (a script trying it every two
    # seconds while it is down) filled its 100 places, and its down alert, due before them, was
    # not read until they had expired. One goes first: tests are tried one at a time.
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(*insert_check_statement(1, "db", NOW, CheckState()))
        conn.execute(INSERT_OUTBOX, (1, "down", 1, "hook", "down", "{}", NOW, NOW + 60, NOW - 200))
        tests = [(i, f"test-{i}", None, "hook", "test", "{}", NOW, NOW + 60, NOW - 160 + i) for i in range(2, 152)]
        conn.executemany(INSERT_OUTBOX, tests)
    conn.close()
    db = await store.connect(path)
    try:
        read = [item.id for item in await outboxqueries.read_due_alerts(db, NOW, 100)]
    finally:
        await db.close()
    assert read[:3] == [2, 1, 3] and len(read) == 100, read
