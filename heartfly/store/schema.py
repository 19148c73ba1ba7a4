"""The SQLite schema as numbered migrations: each one runs once, in order, in its own
transaction (store._migrate); a database records the last it has in PRAGMA user_version.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the core
    """
    CREATE TABLE checks (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        removed_at REAL,
        state TEXT NOT NULL
    );
    CREATE TABLE pings (
        id INTEGER PRIMARY KEY,
        check_id INTEGER NOT NULL REFERENCES checks(id),
        at REAL NOT NULL,
        received_at REAL NOT NULL,
        kind TEXT NOT NULL,
        exit_status INTEGER,
        run_id TEXT,
        body TEXT NOT NULL DEFAULT '',
        truncated INTEGER NOT NULL DEFAULT 0,
        metrics TEXT,
        method TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX pings_by_check ON pings(check_id, id);
    CREATE TABLE flips (
        id INTEGER PRIMARY KEY,
        check_id INTEGER NOT NULL REFERENCES checks(id),
        at REAL NOT NULL,
        old TEXT NOT NULL,
        new TEXT NOT NULL,
        reason TEXT,
        deadline REAL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX flips_by_check ON flips(check_id, id);
    CREATE TABLE downtimes (
        id INTEGER PRIMARY KEY,
        stopped_at REAL NOT NULL,
        started_at REAL NOT NULL,
        clean INTEGER NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: pings are the log, states are checkpoints: a state row says which ping it includes. Version
    # 1 wrote a check's state in each of its pings' commits: its row includes every ping it has, and
    # marked as including none, a start replayed them all over it (a down check recovered and failed
    # again, and both were alerted).
    """
    ALTER TABLE checks ADD COLUMN state_ping_id INTEGER NOT NULL DEFAULT 0;
    UPDATE checks SET state_ping_id = COALESCE((SELECT MAX(id) FROM pings WHERE pings.check_id = checks.id), 0);
    """,
    # 3: alerts: an outbox row per (transition, channel), written with the transition; every attempt
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        check_id INTEGER REFERENCES checks(id),
        channel TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        done_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_by_check ON outbox(check_id, id);
    CREATE TABLE alert_attempts (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL REFERENCES outbox(id),
        at REAL NOT NULL,
        duration REAL NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX attempts_by_outbox ON alert_attempts(outbox_id, id);
    """,
    # 4: finished runs (a start paired with its end, or a fan-in run), for durations and timelines
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        check_id INTEGER NOT NULL REFERENCES checks(id),
        run_id TEXT,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        exit_status INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        members TEXT
    );
    CREATE INDEX runs_by_check ON runs(check_id, id);
    ALTER TABLE pings ADD COLUMN member TEXT;
    """,
    # 5: the dispatcher's read walks the heads of the pending alerts' (check, channel) groups, a
    # seek each (outboxqueries._DUE_ALERTS), instead of grouping every pending row on every read. Partial
    # indexes: finished rows, the bulk of the table, are in neither. outbox_pending goes: led by
    # status, the planner preferred it to outbox_heads; outbox_waiting serves what it served.
    """
    CREATE INDEX outbox_heads ON outbox(check_id, channel, id) WHERE status = 'pending';
    CREATE INDEX outbox_waiting ON outbox(next_attempt_at) WHERE status = 'pending';
    DROP INDEX outbox_pending;
    """,
    # 6: event time. A ping may carry the client's own id (exactly once across resends); a flip
    # says when Heartfly learned of it when that was later than when it happened; flips and runs
    # are listed in event-time order (pings need no index for it: a check keeps few).
    """
    ALTER TABLE pings ADD COLUMN uid TEXT;
    CREATE INDEX pings_uids ON pings(received_at) WHERE uid IS NOT NULL;
    ALTER TABLE flips ADD COLUMN learned_at REAL;
    CREATE INDEX flips_by_time ON flips(check_id, at);
    CREATE INDEX runs_by_start ON runs(check_id, started_at);
    """,
    # 7: a check's alert waits behind a pending maintenance summary that lists it, on its channel
    # (outboxqueries._DUE_ALERTS): those are found by a seek, not by reading the channel's test alerts.
    """
    CREATE INDEX outbox_summaries ON outbox(channel, id) WHERE status = 'pending' AND event = 'maintenance';
    """,
    # 8: the missed deadlines a check's run charts draw, newest first by a seek: among the up <-> running
    # of every healthy run, a count of the newest flips lost them, and a filter would walk them all.
    """
    CREATE INDEX flips_missed ON flips(check_id, at) WHERE new = 'down' AND reason IN ('missed', 'step_missed');
    """,
    # 9: the prune of history past keep_history keeps each check's newest change into or out of
    # down or paused before its cut (rows.COUNTED_FLIP): found by a seek, not by walking back over
    # a year of up <-> running. queries.read_record's status before its window, too.
    """
    CREATE INDEX flips_counted ON flips(check_id, at)
        WHERE old <> new AND (old IN ('down', 'paused') OR new IN ('down', 'paused'));
    """,
    # 10: a channel's last alert sent and last given up, by a seek each (outboxqueries._LAST_DONE):
    # the dashboard reads them at every refresh, and the outbox keeps keep_history of finished rows.
    """
    CREATE INDEX outbox_done ON outbox(channel, status, done_at);
    """,
]
