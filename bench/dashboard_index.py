"""The dashboard's index page: time per GET / with 1,000 checks that have runs, pings and flips.

Run from the repository root:

    .venv/bin/python bench/dashboard_index.py                  # 1,000 checks, 4 runs each, 60 requests
    .venv/bin/python bench/dashboard_index.py --checks 5000 --runs 8 --requests 100

Writes a config with --checks `every = "1h"` checks and an API token file, starts `heartfly serve`,
and gives every check --runs runs (a start ping, then a success, every fifth check a failure
instead), so each row of the page has a timeline to draw from the runs, end pings and flips tables.
Then GETs the index (the first page: 100 rows, worst first) with the token as a Bearer header,
--warmup times unmeasured and --requests times one after another over one keep-alive connection,
and prints the median and p90 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from pathlib import Path

import aiohttp
from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    percentile,
    run_in_tempdir,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)


async def prime(base: str, keys: list[str], runs: int) -> None:
    """`runs` runs per check, 64 checks at a time; a check's pings in order."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(keys):
        queue.put_nowait(item)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i, key = queue.get_nowait()
            for run in range(runs):
                end = "fail" if (i + run) % 5 == 0 else ""
                for tail in ("start", end):
                    async with session.post(f"{base}/ping/{key}" + (f"/{tail}" if tail else "")) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"priming ping answered {resp.status}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(64)))


async def measure(base: str, token: str, warmup: int, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for i in range(warmup + requests):
            t0 = time.perf_counter()
            async with session.get(f"{base}/") as resp:
                body = await resp.read()
                if resp.status != 200 or b'role="table"' not in body:
                    raise RuntimeError(f"the index answered {resp.status}")
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="checks in the config (default 1000)")
    parser.add_argument("--runs", type=int, default=4, help="runs per check before measuring (default 4)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests first (default 5)")
    parser.add_argument("--requests", type=int, default=60, help="measured requests (default 60)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (config, database, log)")
    args = parser.parse_args()
    exit_on_sigterm()

    def run(folder: Path) -> int:
        keys = [make_key() for _ in range(args.checks)]
        token = secrets.token_urlsafe(24)
        (folder / "api-token").write_text(token + "\n", encoding="utf-8")
        config = write_heartfly_config(folder, [CheckSpec(f"c{i:05d}", k, "1h") for i, k in enumerate(keys)])
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("[server]\n", '[server]\napi_token_file = "api-token"\n', 1), encoding="utf-8")
        log = folder / "heartfly.log"
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
        try:
            base = f"http://127.0.0.1:{wait_for_match(proc, log, LISTENING_RE, timeout=120).group(1)}"
            began = time.monotonic()
            asyncio.run(prime(base, keys, args.runs))
            print(f"primed {args.checks} checks with {args.runs} runs each in {time.monotonic() - began:.1f} s")
            times = asyncio.run(measure(base, token, args.warmup, args.requests))
        finally:
            stop_process(proc)
        print(
            f"GET / ({args.checks} checks, first page): median {percentile(times, 50):.1f} ms,"
            f" p90 {percentile(times, 90):.1f} ms ({len(times)} requests)"
        )
        return 0

    run_in_tempdir("heartfly-bench-dashboard-", args.keep, run)


if __name__ == "__main__":
    main()
