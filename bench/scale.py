"""Scale: start-up time, resident memory and ping throughput as the number of checks grows.

Run from the repository root:

    .venv/bin/python bench/scale.py                        # 100, 1k, 10k, 100k checks, 2 rounds
    .venv/bin/python bench/scale.py --sizes 100 100000 --rounds 3
    .venv/bin/python bench/scale.py --cron "*/5 * * * *"   # cron checks: each ping asks for the next tick

For each size it writes a config with that many `every = "1h"` checks (or --cron ones), starts `heartfly serve`
(first start: every check is new and written) and gives every check one ping, so the measured
pings are steady state (a check's first ping is a state change, new -> up). Then, in each round,
every size in turn: restart (every state is read back), load with wrk and a random key per
request (needs wrk) for --warmup seconds, which is past the first lazy state checkpoints so that
their cost is in the figure, measure for --seconds, stop. The sizes take turns within a round so
that drift in the machine's speed hits them alike; each round's throughput is taken relative to
the smallest size's in the same round, and the median over rounds is printed. Also printed:
start-up times (process start to "listening"; with $CACHE_DIRECTORY set, as the installed unit sets it,
unless --no-config-cache; for a restart also to every stored state read, which it does after it
answers, and which its downtime line marks), resident memory after the load, and the CPU time per
ping of Heartfly's event loop thread, of its other threads (the SQLite writer, the WAL copier) and
of wrk, which shares the machine.

With --hot N (default 100), the largest size is also measured, in the same process right after,
with every ping going to N of its checks: the same number of checks, the same database, but each
ping's check already in the CPU caches. Its ratio separates what the number of checks costs from
what spreading the pings over all of them costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from benchlib import (
    CheckSpec,
    children_cpu,
    compile_heartfly,
    exit_on_sigterm,
    make_key,
    rss_mib,
    start_heartfly,
    stop_process,
    thread_cpu,
    wait_for_match,
    write_heartfly_config,
)
from ping_throughput import LoadResult, run_wrk, write_lua

from heartfly.server.engine import CHECKPOINT_AFTER

READ_RE = re.compile(r"was not running for")  # a restart's downtime line: logged once every state is read


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


CpuPerPing = tuple[float, float, float]  # event loop thread, Heartfly's other threads, wrk


class Size:
    """One size's config, its wrk script and what was measured of it."""

    def __init__(self, size: int, folder: Path, cron: str | None, config_cache: bool) -> None:
        self.size = size
        # As the installed unit's CacheDirectory=: a restart reads the config's kept parse.
        self.cache_dir = folder / "cache" if config_cache else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir()
        self.keys = [make_key() for _ in range(size)]
        specs = [CheckSpec(f"c{i:06d}", k, "1h", cron=cron) for i, k in enumerate(self.keys)]
        self.config = write_heartfly_config(folder, specs)
        self.lua = write_lua(folder, self.keys)
        self.folder = folder
        self.starts: list[float] = []
        self.rounds: list[LoadResult] = []
        self.rss_after: list[float] = []
        # CPU µs per ping in the measured window: event loop thread, Heartfly's other threads, wrk.
        self.cpu: list[CpuPerPing] = []
        self.hot: tuple[int, Path] | None = None  # (N, a wrk script pinging N of the checks)
        self.hot_rounds: list[LoadResult] = []
        self.hot_cpu: list[CpuPerPing] = []
        self.reads: list[float] = []  # restarts: seconds from launch until every stored state was read

    def aim_hot(self, n: int) -> None:
        folder = self.folder / "hot"
        folder.mkdir(exist_ok=True)
        self.hot = (n, write_lua(folder, self.keys[:n]))

    def start(self, phase: str) -> tuple[subprocess.Popen[bytes], str]:
        log = self.folder / f"heartfly-{phase}.log"
        began = time.monotonic()
        proc, match, took = start_heartfly(self.config, log, self.cache_dir)
        self.starts.append(took)
        if phase != "first":  # a restart reads the stored states after it answers, then logs its downtime
            try:
                wait_for_match(proc, log, READ_RE, timeout=600)
            except BaseException:
                stop_process(proc)
                raise
            self.reads.append(time.monotonic() - began)
        return proc, f"http://127.0.0.1:{match.group(1)}"

    def prime(self) -> None:
        """First start (every check new), one ping per check, clean stop."""
        proc, base = self.start("first")
        try:
            asyncio.run(prime(base, self.keys))
        finally:
            stop_process(proc)

    def measure(self, warmup: int, seconds: int, connections: int) -> LoadResult:
        """Restart, load for `warmup` seconds, then measure (and measure the hot set); stop."""
        proc, base = self.start(f"round-{len(self.rounds) + 1}")
        try:
            run_wrk(base, self.lua, warmup, connections, 1)
            load, cpu = _load(proc.pid, base, self.lua, seconds, connections)
            self.rss_after.append(rss_mib(proc.pid))
            if self.hot is not None:
                hot, hot_cpu = _load(proc.pid, base, self.hot[1], seconds, connections)
                self.hot_rounds.append(hot)
                self.hot_cpu.append(hot_cpu)
        finally:
            stop_process(proc)
        self.rounds.append(load)
        self.cpu.append(cpu)
        return load


@contextlib.contextmanager
def primed(checks: int, prefix: str) -> Iterator[Size]:
    """`checks` checks in a temporary folder (removed after), each pinged once after a first
    start, as the installed unit runs them (a cache directory); Heartfly compiled first. Exits
    at once without wrk, which loads them (not after priming 100k checks)."""
    if shutil.which("wrk") is None:
        sys.exit("this bench needs wrk (apt-get install wrk)")
    exit_on_sigterm()
    compile_heartfly()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        size = Size(checks, Path(tmp), None, config_cache=True)
        size.prime()
        yield size


def _load(pid: int, base: str, lua: Path, seconds: int, connections: int) -> tuple[LoadResult, CpuPerPing]:
    """One measured wrk run and the CPU µs per ping it cost each side."""
    (main, others), wrk = thread_cpu(pid), children_cpu()
    load = run_wrk(base, lua, seconds, connections, 1)
    (main2, others2), wrk2 = thread_cpu(pid), children_cpu()
    per_ping = 1e6 / max(load.ok, 1)
    return load, ((main2 - main) * per_ping, (others2 - others) * per_ping, (wrk2 - wrk) * per_ping)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds of load per round (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each measuring every size in turn (default 2)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=int(CHECKPOINT_AFTER) + 5,
        help=f"seconds of load before measuring (default {int(CHECKPOINT_AFTER) + 5}: past the first lazy"
        " state checkpoints, so their cost is in the figure)",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cron", help='every check on this cron schedule (e.g. "*/5 * * * *"), not every = "1h"')
    parser.add_argument(
        "--hot",
        type=int,
        default=100,
        help="also measure the largest size with every ping going to this many of its checks (default 100; 0: no)",
    )
    parser.add_argument(
        "--no-config-cache",
        action="store_true",
        help="start heartfly without $CACHE_DIRECTORY (the installed unit has one): every restart parses the"
        " config file again",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this bench needs wrk (apt-get install wrk)")
    exit_on_sigterm()
    compile_heartfly()  # the first start is timed as an installed server's, like the restarts
    folders = [Path(tempfile.mkdtemp(prefix=f"heartfly-scale-{n}-")) for n in args.sizes]
    try:
        cache = not args.no_config_cache
        sizes = [Size(n, folder, args.cron, cache) for n, folder in zip(args.sizes, folders, strict=True)]
        for s in sizes:
            s.prime()
        largest = sizes[-1]
        if 0 < args.hot < largest.size:
            largest.aim_hot(args.hot)
        ratios: dict[int, list[float]] = {s.size: [] for s in sizes}
        hot_ratios: list[float] = []
        for number in range(1, args.rounds + 1):
            for s in sizes:
                load = s.measure(args.warmup, args.seconds, args.connections)
                print(
                    f"round {number}: {s.size:>7} checks: {load.ok / load.seconds:8.0f} pings/s,"
                    f" p99 {load.p99_ms:6.1f} ms, non-200 {sum(load.other.values())}, errors {load.errors or 'none'}",
                    flush=True,
                )
            if largest.hot is not None:
                hot = largest.hot_rounds[-1]
                print(
                    f"round {number}: {largest.size:>7} checks, pings to {largest.hot[0]} of them:"
                    f" {rps(hot):8.0f} pings/s, p99 {hot.p99_ms:6.1f} ms, non-200 {sum(hot.other.values())},"
                    f" errors {hot.errors or 'none'}",
                    flush=True,
                )
                hot_ratios.append(rps(hot) / rps(sizes[0].rounds[-1]))
            for s in sizes:
                ratios[s.size].append(rps(s.rounds[-1]) / rps(sizes[0].rounds[-1]))
        print()
        for s in sizes:
            best = sorted(s.rounds, key=rps)[len(s.rounds) // 2]
            restart = statistics.median(s.starts[1:])
            print(
                f"{s.size:>7} checks: first start {s.starts[0]:6.2f} s, restart {restart:6.2f} s"
                f" (every state read {statistics.median(s.reads):.2f} s),"
                f" RSS after load {max(s.rss_after):7.1f} MiB,"
                f" median {rps(best):8.0f} pings/s (p99 {best.p99_ms:.1f} ms)"
            )
        print("\nCPU µs per ping in the measured window (median): event loop thread / Heartfly's other threads / wrk")
        for s in sizes:
            loop, others, wrk = (statistics.median(c[i] for c in s.cpu) for i in range(3))
            print(f"{s.size:>7} checks: {loop:5.1f} / {others:5.1f} / {wrk:5.1f}")
        if largest.hot is not None:
            loop, others, wrk = (statistics.median(c[i] for c in largest.hot_cpu) for i in range(3))
            label = f"{largest.size:>7} checks, pings to {largest.hot[0]} of them"
            print(f"{label}: {loop:5.1f} / {others:5.1f} / {wrk:5.1f}")
        print(f"\nthroughput relative to {sizes[0].size} checks, the same round (median of {args.rounds}; each round):")
        for s in sizes:
            each = " ".join(f"{r:.2f}" for r in ratios[s.size])
            print(f"{s.size:>7} checks: {statistics.median(ratios[s.size]):.2f}   ({each})")
        if largest.hot is not None:
            each = " ".join(f"{r:.2f}" for r in hot_ratios)
            print(
                f"{largest.size:>7} checks, pings to {largest.hot[0]} of them:"
                f" {statistics.median(hot_ratios):.2f}   ({each})"
            )
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def rps(load: LoadResult) -> float:
    return load.ok / load.seconds


if __name__ == "__main__":
    main()
