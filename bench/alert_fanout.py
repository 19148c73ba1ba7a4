"""Alert fan-out: 1,000 checks go down at the same instant; how soon are all 1,000 webhooks received?

Run from the repository root:

    .venv/bin/python bench/alert_fanout.py               # 1,000 checks
    .venv/bin/python bench/alert_fanout.py --checks 5000

Starts a webhook receiver (aiohttp, in this process) and `heartfly serve` with N checks that share
one due instant (`every = "3s"`, `grace = "0s"`, all watched from the same start-up moment) and one
webhook channel. Nothing pings them, so all go down together. Prints how many distinct alerts
arrived (by Idempotency-Key) and the time from the due instant to the first, the median, the 99th
percentile and the last receipt. Exit status 1 if any alert is missing or arrived twice.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    percentile,
    sqlite_ro_uri,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)


async def run(checks: int, timeout: float) -> int:
    received: dict[str, float] = {}
    duplicates = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal duplicates
        key = request.headers.get("Idempotency-Key", "")
        await request.read()
        if key in received:
            duplicates += 1
        else:
            received[key] = time.time()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    folder = Path(tempfile.mkdtemp(prefix="heartfly-fanout-"))
    proc = None
    try:
        specs = [CheckSpec(f"c{i:05d}", make_key(), "3s", "0s") for i in range(checks)]
        config = write_heartfly_config(folder, specs)
        text = config.read_text()
        extra = (
            f'\n[defaults]\nchannels = ["hook"]\n[alerts]\nconcurrency = 64\n'
            f'[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
        )
        head, _, tail = text.partition("\n[checks.")
        config.write_text(head + extra + "\n[checks." + tail)
        log = folder / "heartfly.log"
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
        wait_for_match(proc, log, LISTENING_RE, timeout=60)
        deadline = time.monotonic() + timeout
        while len(received) < checks and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let late duplicates show up
        stop_process(proc)
        proc = None
        with sqlite3.connect(sqlite_ro_uri(folder / "heartfly.db"), uri=True) as db:
            due = [row[0] for row in db.execute("SELECT deadline FROM flips WHERE new = 'down'")]
        if not due:
            print("no check went down", file=sys.stderr)
            return 1
        due_at = min(due)
        delays = sorted(1000 * (t - due_at) for t in received.values())
        print(f"checks {checks}: {len(set(due))} distinct due instant(s)")
        print(f"alerts received {len(received)}, duplicates {duplicates}")
        if delays:
            print(
                f"due -> receipt: first {delays[0]:.0f} ms, p50 {percentile(delays, 50):.0f} ms, "
                f"p99 {percentile(delays, 99):.0f} ms, last {delays[-1]:.0f} ms"
            )
        return 0 if len(received) == checks and duplicates == 0 else 1
    finally:
        stop_process(proc)
        await runner.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="checks going down together (default 1000)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every alert (default 60)")
    args = parser.parse_args()
    exit_on_sigterm()
    sys.exit(asyncio.run(run(args.checks, args.timeout)))


if __name__ == "__main__":
    main()
