"""Detection latency: how late after a missed deadline Heartfly records the check as down.

Run from the repository root:

    .venv/bin/python bench/detection_latency.py                  # 1,000 checks, deadlines 3 s..5 s out
    .venv/bin/python bench/detection_latency.py --checks 5000 --lead 5 --spread 2

Starts `heartfly serve` on a temporary config where check i has `every = lead + i * spread / checks`
(e.g. "3s250ms") and `grace = "0s"`, so the deadlines fall spread over `spread` seconds starting
`lead` seconds after start-up. Nothing ever pings them: each goes new -> down (missed) at its due time.
Once every check has flipped (the database is polled read-only), the server is stopped and the
`flips` table is checked (one new -> down (missed) per check, dated at its deadline) and each flip's
log line gives how late the timer found it; count, p50, p99 and max are printed in milliseconds.
Exit status 1 when a check did not flip, or flipped otherwise than new -> down (missed) at its deadline.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import time
from pathlib import Path

from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    format_ms,
    heartfly_cmd,
    make_key,
    percentile,
    run_in_tempdir,
    sqlite_ro_uri,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)

START_TIMEOUT = 60.0
FOUND_RE = re.compile(r"check \S+: new -> down \(missed\).*, found ([\d.]+) ms after its deadline")
POLL_EVERY = 0.25  # seconds between read-only polls of the flips table
EXTRA_WAIT = 15.0  # seconds past the last deadline before giving up on missing flips


def count_down_flips(database: Path) -> int:
    try:
        with sqlite3.connect(sqlite_ro_uri(database), uri=True, timeout=5) as db:
            row = db.execute("SELECT COUNT(DISTINCT check_id) FROM flips WHERE new = 'down'").fetchone()
        db.close()
    except sqlite3.OperationalError:  # not created yet, or busy: try again at the next poll
        return -1
    return int(row[0])


def read_flips(database: Path) -> list[tuple[str, float, float | None, str, str, str | None, float]]:
    """(check name, at, deadline, old, new, reason, created_at) for every flip, oldest first."""
    sql = (
        "SELECT c.name, f.at, f.deadline, f.old, f.new, f.reason, c.created_at"
        " FROM flips f JOIN checks c ON c.id = f.check_id ORDER BY f.id"
    )
    with sqlite3.connect(sqlite_ro_uri(database), uri=True, timeout=10) as db:
        rows = db.execute(sql).fetchall()
    db.close()
    return [
        (str(r[0]), float(r[1]), None if r[2] is None else float(r[2]), r[3], r[4], r[5], float(r[6])) for r in rows
    ]


def run(checks: int, lead_ms: int, spread_ms: int, folder: Path) -> int:
    problems: list[str] = []
    every_ms = {f"c{i:04d}": lead_ms + (i * spread_ms) // checks for i in range(checks)}
    specs = [CheckSpec(name=name, key=make_key(), every=format_ms(ms), grace="0s") for name, ms in every_ms.items()]
    config = write_heartfly_config(folder, specs)
    database = folder / "heartfly.db"
    log_path = folder / "heartfly.log"
    print(
        f"{checks} checks, grace 0s, every {format_ms(min(every_ms.values()))} .. {format_ms(max(every_ms.values()))}"
        f" (deadlines spread over {spread_ms} ms, starting {lead_ms} ms after start-up); never pinged"
    )

    proc: subprocess.Popen[bytes] | None = None
    status: int | None = None
    try:
        started = time.time()
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log_path)
        match = wait_for_match(proc, log_path, LISTENING_RE, START_TIMEOUT)
        listening = time.time()
        print(f"heartfly listening after {listening - started:.2f} s, with {match.group(2)} checks")
        give_up = listening + (lead_ms + spread_ms) / 1000 + EXTRA_WAIT
        flipped = 0
        while time.time() < give_up and proc.poll() is None:
            flipped = count_down_flips(database)
            if flipped >= checks:
                break
            time.sleep(POLL_EVERY)
        if flipped < checks:
            late = f"{EXTRA_WAIT:.0f} s after the last deadline"
            problems.append(f"only {max(flipped, 0)} of {checks} checks were down {late}")
        if proc.poll() is not None:
            problems.append(f"heartfly exited early with status {proc.returncode}")
    finally:
        status = stop_process(proc)
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    if status != 0 or "stopped cleanly" not in log_text:
        problems.append(f"heartfly exit status {status}, clean stop logged: {'stopped cleanly' in log_text}")
    bad_lines = [ln for ln in log_text.splitlines() if " ERROR " in ln or " WARNING " in ln or "Traceback" in ln]
    if bad_lines:
        problems.append(f"heartfly logged {len(bad_lines)} warning/error lines, first: {bad_lines[0]}")

    flips = read_flips(database)
    lags_ms: list[float] = []
    seen: set[str] = set()
    first_deadline = float("inf")
    for name, at, deadline, old, new, reason, created_at in flips:
        if (old, new, reason) != ("new", "down", "missed") or deadline is None:
            problems.append(f"{name}: unexpected flip {old} -> {new} ({reason}), deadline {deadline}")
            continue
        if name in seen:
            problems.append(f"{name}: flipped to down more than once")
        seen.add(name)
        expected = created_at + every_ms[name] / 1000
        if abs(deadline - expected) > 0.0015:
            problems.append(f"{name}: deadline {deadline:.3f} is not created_at + every ({expected:.3f})")
        if abs(at - deadline) > 0.0015:
            problems.append(f"{name}: the flip is dated {at:.3f}, not at its deadline {deadline:.3f}")
        first_deadline = min(first_deadline, deadline)
    # A flip is dated at its deadline (event time); how late the timer found it is in its log line.
    lags_ms = [float(m.group(1)) for m in FOUND_RE.finditer(log_text)]
    if len(lags_ms) != len(flips):
        problems.append(f"{len(lags_ms)} 'found ... after its deadline' log lines for {len(flips)} flips")
    missing = sorted(set(every_ms) - seen)
    if missing:
        problems.append(f"{len(missing)} checks never flipped to down, e.g. {', '.join(missing[:5])}")
    if first_deadline < listening:
        ahead = listening - first_deadline
        print(f"note: the first deadline fell {ahead:.2f} s before Heartfly was listening: raise --lead")
    lags_ms.sort()
    early = [lag for lag in lags_ms if lag < 0]
    if early:
        problems.append(f"{len(early)} flips were made before their deadline (min {early[0]:.3f} ms)")

    print(
        f"flips new -> down (missed): {len(lags_ms)}   found after the deadline: p50 {percentile(lags_ms, 50):.2f} ms"
        f"   p99 {percentile(lags_ms, 99):.2f} ms   max {(lags_ms[-1] if lags_ms else float('nan')):.2f} ms"
        f"   (min {(lags_ms[0] if lags_ms else float('nan')):.2f} ms)"
    )
    print(f"heartfly stopped with exit status {status}")
    if problems:
        print("PROBLEMS:")
        for problem in problems[:20]:
            print(f"  - {problem}")
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="number of checks (default 1000)")
    parser.add_argument(
        "--lead", type=float, default=3.0, help="seconds from start-up to the first deadline (default 3)"
    )
    parser.add_argument("--spread", type=float, default=2.0, help="seconds the deadlines are spread over (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (config, database, log)")
    args = parser.parse_args()
    exit_on_sigterm()
    if args.checks < 1 or args.lead <= 0 or args.spread < 0:
        parser.error("--checks must be at least 1, --lead positive, --spread not negative")
    run_in_tempdir(
        "heartfly-detect-", args.keep, lambda f: run(args.checks, round(args.lead * 1000), round(args.spread * 1000), f)
    )


if __name__ == "__main__":
    main()
