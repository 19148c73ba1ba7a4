"""Where a ping's time goes: `heartfly serve` under a fixed wrk load, sampled with py-spy, each
sample of the event loop thread charged to one stage of the ping path.

Run from the repository root (py-spy must be installed: `.venv/bin/pip install py-spy`; wrk on PATH):

    .venv/bin/python bench/ping_stages.py                  # 1,000 checks, 64 connections, 10 s sampled
    .venv/bin/python bench/ping_stages.py --seconds 20 --raw /tmp/stages.txt

It starts Heartfly on a temporary config (every request pings a random one of its checks), loads it
with wrk for 3 s, then samples it with `py-spy record --nonblocking --threads` (200 Hz) while the load
goes on, and reads the CPU time each thread used and the pings committed in that window. A sample
of the event loop thread goes to the stage of the innermost Heartfly frame on its stack (for the
lines of the ping handler and of Engine.record themselves, by what the line does); a sample with
no Heartfly frame is aiohttp's or asyncio's work, which the bare handler does too. Each stage's
share of the samples times the thread's CPU µs per ping is its cost per ping. Figures under load
on a shared machine move by 10-20 % from run to run: compare stages within one run.
"""

from __future__ import annotations

import argparse
import linecache
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    run_in_tempdir,
    sqlite_ro_uri,
    start_process,
    stop_process,
    thread_cpu,
    wait_for_match,
    write_heartfly_config,
)
from ping_throughput import write_lua

import heartfly

STAGES = (
    "parse (path, query, body, the ping)",
    "key lookup",
    "state transition (and its deadline)",
    "record building (PingRecord, row, Write, undo)",
    "hand-off to the writer (queue, future, batch)",
    "wake-up after the commit",
    "response (the handler's)",
    "metrics (ping counts)",
    "clock",
    "other Heartfly code",
    "aiohttp: request in (read, HTTP parse, routing)",
    "aiohttp: response out (headers, socket write)",
    "asyncio: event loop (select, callbacks, tasks)",
)
PARSE, LOOKUP, STATE, RECORD, HANDOFF, WAKE, RESPONSE, METRICS, CLOCK, OTHER, HTTP_IN, HTTP_OUT, LOOP = STAGES

# The innermost Heartfly function of a sample -> its stage (the handler's and record's own lines: LINES).
FUNCTIONS = {
    "ping": PARSE,
    "parse_path": PARSE,
    "parse_event": PARSE,
    "parse_query": PARSE,
    "read_body": PARSE,
    "read_ping": PARSE,
    "_ping": PARSE,
    "is_decimal": PARSE,
    "_lookup": LOOKUP,
    "Engine.lookup_key": LOOKUP,
    "Engine.lookup_name": LOOKUP,
    "Engine._apply": STATE,
    "Engine._schedule": STATE,
    "Engine._push": STATE,
    "_ping_record": RECORD,
    "storable": RECORD,
    "Engine._ping_row": RECORD,
    "ping_row": RECORD,
    "Engine._committed": HANDOFF,
    "GroupCommitter.submit": HANDOFF,
    "Unstored.note": HANDOFF,
    "Writer._commit_batch": HANDOFF,
    "_take": HANDOFF,
    "_text": RESPONSE,
    "_ok": RESPONSE,
    "_ok_headers": RESPONSE,
    "_as_healthchecks": RESPONSE,
    "WriterThread.run": HANDOFF,
    "_settle": WAKE,
    "ping_write": RECORD,
    "SystemClock.now": CLOCK,
}
MODULES = {  # any other function of these files
    "heartfly/core/states.py": STATE,
    "heartfly/core/deadlines.py": STATE,
    "heartfly/core/statetypes.py": STATE,
    "heartfly/server/deadlineheap.py": STATE,
    "heartfly/core/pingparse.py": PARSE,
}
# What a line of _one, _key_only, Engine.record or GroupCommitter._run does itself, by its text.
LINES = (
    (re.compile(r"PING_COUNTS|counts\["), METRICS),
    (re.compile(r"clock\.now|time\.time"), CLOCK),
    (re.compile(r"await engine\.record|await fut|set_result|for _, fut in batch|on_commit|_call\("), WAKE),
    (re.compile(r"_text\(|_ok\(|Response\("), RESPONSE),
    (re.compile(r"_lookup|lookup_key"), LOOKUP),
    (re.compile(r"parse_|read_ping|read_body|match_info|METHODS|Event\("), PARSE),
    (re.compile(r"_apply|_schedule|steps|old, old_ping_id"), STATE),
    (re.compile(r"Write\(|partial|_ping_row|_ping_record|PingRecord\(|storable"), RECORD),
    (re.compile(r"_unstored|_committed|submit|_queue|_take|_wake|writes = |batch"), HANDOFF),
)
HTTP_OUT_MARKS = ("web_response.py", "http_writer.py", "_SelectorSocketTransport.write", "finish_response")
HTTP_IN_MARKS = ("_read_ready", "data_received", "web_urldispatcher.py", "web_app.py", "web_request.py", "http_parser")
OUTER = ("heartfly/cli/", "heartfly/entry.py", "heartfly/__main__.py", "heartfly/server/daemon.py")  # start-up
FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*):(?P<line>\d+)\)$")


def stage_of(frames: list[str], root: Path) -> str:
    """The stage of one sample: `frames` outermost first."""
    for frame in reversed(frames):
        match = FRAME_RE.match(frame)
        if match is None:
            continue
        func, file = match["func"], match["file"]
        if not file.startswith("heartfly/") or file.startswith(OUTER):
            continue
        if func in ("_one", "_key_only", "Engine.record", "GroupCommitter._run", "batch"):
            text = linecache.getline(str(root / file), int(match["line"]))
            return next((stage for pattern, stage in LINES if pattern.search(text)), OTHER)
        return FUNCTIONS.get(func) or MODULES.get(file) or OTHER
    if any(mark in frame for frame in frames for mark in HTTP_OUT_MARKS):
        return HTTP_OUT
    if any(mark in frame for frame in frames for mark in HTTP_IN_MARKS):
        return HTTP_IN
    return LOOP


def tally(raw: Path, root: Path) -> tuple[Counter[str], Counter[str]]:
    """(event-loop samples by stage, samples by thread name) from py-spy's raw output."""
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        threads[thread] += int(count)
        if thread == "MainThread":
            stages[stage_of(frames[1:], root)] += int(count)
    return stages, threads


def count_pings(database: Path) -> int:
    with sqlite3.connect(sqlite_ro_uri(database), uri=True, timeout=10) as db:
        (n,) = db.execute("SELECT COUNT(*) FROM pings").fetchone()
    db.close()
    return int(n)


def run(args: argparse.Namespace, folder: Path) -> int:
    keys = [make_key() for _ in range(args.checks)]
    specs = [CheckSpec(name=f"c{i:04d}", key=key, every="1h") for i, key in enumerate(keys, start=1)]
    config = write_heartfly_config(folder, specs, keep_pings=1_000_000_000)
    lua = write_lua(folder, keys)
    database = folder / "heartfly.db"
    raw = args.raw or folder / "stages.txt"
    log = folder / "heartfly.log"
    cmd = [*heartfly_cmd(), "serve", "-c", str(config)]
    proc = start_process(cmd, log)
    wrk: subprocess.Popen[bytes] | None = None
    try:
        port = int(wait_for_match(proc, log, LISTENING_RE, 60).group(1))
        load = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds + 8}s", "-s", str(lua)]
        wrk = subprocess.Popen([*load, f"http://127.0.0.1:{port}/"], stdout=subprocess.DEVNULL)
        time.sleep(3)
        (main, others), pings = thread_cpu(proc.pid), count_pings(database)
        spy = [args.py_spy, "record", "-r", "200", "-d", str(args.seconds), "-f", "raw", "--threads", "--nonblocking"]
        subprocess.run([*spy, "-o", str(raw), "--pid", str(proc.pid)], capture_output=True, check=True, timeout=120)
        (main2, others2), pings2 = thread_cpu(proc.pid), count_pings(database)
        wrk.wait(timeout=60)
    finally:
        if wrk is not None and wrk.poll() is None:
            wrk.terminate()
        stop_process(proc)
    done = pings2 - pings
    root = Path(heartfly.__file__).resolve().parent.parent  # the tree the server runs (same PYTHONPATH)
    stages, threads = tally(raw, root)
    total = sum(stages.values())
    loop_us = (main2 - main) * 1e6 / max(done, 1)
    other_us = (others2 - others) * 1e6 / max(done, 1)
    print(
        f"{done:,} pings in {args.seconds} s sampled ({done / args.seconds:,.0f}/s under the profiler);"
        f" CPU per ping: event loop thread {loop_us:.1f} µs, Heartfly's other threads {other_us:.1f} µs"
    )
    print(f"samples by thread: {', '.join(f'{name} {n}' for name, n in threads.most_common())}")
    print(f"{'stage':<50} {'samples':>8} {'share':>7} {'µs/ping':>8}")
    for stage in STAGES:
        n = stages[stage]
        print(f"{stage:<50} {n:>8} {n / max(total, 1):>7.1%} {loop_us * n / max(total, 1):>8.1f}")
    heartfly_stages = STAGES[: STAGES.index(OTHER) + 1]
    own = sum(stages[s] for s in heartfly_stages)
    share = own / max(total, 1)
    print(f"{'Heartfly stages together':<50} {own:>8} {share:>7.1%} {loop_us * share:>8.1f}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds sampled (default 10)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples in this file")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"))
    args = parser.parse_args()
    if not Path(args.py_spy).exists() or shutil.which("wrk") is None:
        parser.error("needs py-spy (pip install py-spy) and wrk")
    exit_on_sigterm()
    run_in_tempdir("heartfly-stages-", False, lambda folder: run(args, folder))


if __name__ == "__main__":
    main()
