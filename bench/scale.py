"""Scale: start-up time, resident memory and ping throughput as the number of checks grows.

Run from the repository root:

    .venv/bin/python bench/scale.py                        # 100, 1k, 10k, 100k checks
    .venv/bin/python bench/scale.py --sizes 100 1000 --seconds 5

For each size it writes a config with that many `every = "1h"` checks, starts `heartfly serve`
twice (first start: every check is new and written; restart: every state is read back) and
reports each start-up time (process start to "listening"), the resident memory after the
restart, and wrk's throughput with a random key per request (needs wrk). Before the restart
every check gets one ping, so the measured pings are steady state: a check's first ping is a
state change (new -> up), which with 100k checks would otherwise be most of a 10 s run. Prints
each size's throughput relative to the smallest size's, which is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    rss_mib,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)
from ping_throughput import run_wrk, write_lua


async def prime(base: str, keys: list[str]) -> None:
    """One ping per check, 64 at a time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            async with session.get(f"{base}/ping/{queue.get_nowait()}") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"priming ping answered {resp.status}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(64)))


def measure(size: int, seconds: int, connections: int, folder: Path) -> dict[str, float]:
    keys = [make_key() for _ in range(size)]
    config = write_heartfly_config(folder, [CheckSpec(f"c{i:06d}", k, "1h") for i, k in enumerate(keys)])
    lua = write_lua(folder, keys)
    result: dict[str, float] = {}
    for phase in ("first", "restart"):
        log = folder / f"heartfly-{phase}.log"
        began = time.monotonic()
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
        try:
            match = wait_for_match(proc, log, LISTENING_RE, timeout=600)
            result[f"start_{phase}_s"] = time.monotonic() - began
            if phase == "first":
                asyncio.run(prime(f"http://127.0.0.1:{match.group(1)}", keys))
            if phase == "restart":
                result["rss_mib"] = rss_mib(proc.pid)
                base = f"http://127.0.0.1:{match.group(1)}"
                run_wrk(base, lua, 2, connections, 1)  # warm-up
                load = run_wrk(base, lua, seconds, connections, 1)
                result["rps"] = load.ok / load.seconds
                result["p99_ms"] = load.p99_ms
                result["non_200"] = float(sum(load.other.values()))
        finally:
            stop_process(proc)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds of load per size (default 8)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this bench needs wrk (apt-get install wrk)")
    exit_on_sigterm()
    rows = []
    for size in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"heartfly-scale-{size}-"))
        try:
            rows.append((size, measure(size, args.seconds, args.connections, folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        size_, r = rows[-1]
        print(
            f"{size_:>7} checks: first start {r['start_first_s']:6.2f} s, restart {r['start_restart_s']:6.2f} s, "
            f"RSS {r['rss_mib']:7.1f} MiB, {r['rps']:8.0f} pings/s, p99 {r['p99_ms']:6.1f} ms, "
            f"non-200 {r['non_200']:.0f}",
            flush=True,
        )
    baseline = rows[0][1]["rps"]
    print(f"\nthroughput relative to {rows[0][0]} checks:")
    for size, r in rows:
        print(f"{size:>7} checks: {r['rps'] / baseline:.2f}")


if __name__ == "__main__":
    main()
