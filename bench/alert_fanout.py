"""Alert fan-out: 1,000 checks go down at the same instant; how soon are all 1,000 webhooks received?

Run from the repository root:

    .venv/bin/python bench/alert_fanout.py               # 1,000 checks
    .venv/bin/python bench/alert_fanout.py --checks 5000
    .venv/bin/python bench/alert_fanout.py --checks 5000 --pinged    # each check pinged once first

Starts a webhook receiver (aiohttp, in this process) and `heartfly serve` with N checks that share
one due instant (`every = "3s"`, `grace = "0s"`, all watched from the same start-up moment) and one
webhook channel. Nothing pings them, so all go down together. Prints how many distinct alerts
arrived (by Idempotency-Key) and the time from the due instant to the first, the median, the 99th
percentile and the last receipt. Exit status 1 if any alert is missing or arrived twice.

--pinged: each check is pinged once (a body of its own) right after the start, with `every = "6s"`,
so each down alert shows its last ping, as a real storm's do (the server reads each one); the
deadlines then spread over the pings' time, and each receipt is timed from its own check's.
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

import aiohttp
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


async def ping_all(port: int, specs: list[CheckSpec]) -> None:
    """One ping per check, 32 at a time, each with its check's name as its body."""
    todo = list(specs)

    async def worker(session: aiohttp.ClientSession) -> None:
        while todo:
            spec = todo.pop()
            async with session.post(f"http://127.0.0.1:{port}/ping/{spec.key}", data=spec.name.encode()) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"ping of {spec.name}: HTTP {resp.status}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(32)))


async def run(checks: int, timeout: float, pinged: bool = False) -> int:
    received: dict[str, float] = {}
    names: dict[str, str] = {}  # Idempotency-Key -> the check the alert is of
    duplicates = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal duplicates
        key = request.headers.get("Idempotency-Key", "")
        body = await request.json()
        names[key] = body["check"]["name"]
        if pinged and (body.get("last_ping") or {}).get("message_tail") != names[key]:
            raise web.HTTPBadRequest(text="the alert does not show its check's last ping")
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
        specs = [CheckSpec(f"c{i:05d}", make_key(), "6s" if pinged else "3s", "0s") for i in range(checks)]
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
        listening = wait_for_match(proc, log, LISTENING_RE, timeout=60)
        if pinged:
            await ping_all(int(listening.group(1)), specs)
        deadline = time.monotonic() + timeout
        while len(received) < checks and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let late duplicates show up
        stop_process(proc)
        proc = None
        with sqlite3.connect(sqlite_ro_uri(folder / "heartfly.db"), uri=True) as db:
            sql = "SELECT c.name, f.deadline FROM flips AS f JOIN checks AS c ON c.id = f.check_id WHERE f.new = 'down'"
            due_of = {str(name): float(deadline) for name, deadline in db.execute(sql)}
            due = list(due_of.values())
        if not due:
            print("no check went down", file=sys.stderr)
            return 1
        due_at = min(due)
        delays = sorted(1000 * (t - (due_of[names[k]] if pinged else due_at)) for k, t in received.items())
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
    parser.add_argument("--pinged", action="store_true", help="ping each check once first (its alert shows that ping)")
    args = parser.parse_args()
    exit_on_sigterm()
    sys.exit(asyncio.run(run(args.checks, args.timeout, args.pinged)))


if __name__ == "__main__":
    main()
