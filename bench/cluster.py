"""The cluster on one local PostgreSQL: throughput of two nodes against one SQLite node, detection
latency of checks pinged through a standby, and the failover time after kill -9 of the leader.

Run from the repository root (needs Debian's postgresql package; wrk if on PATH, else an aiohttp
generator):

    .venv/bin/python bench/cluster.py                          # 10 s windows, 64 connections, lease 2 s
    .venv/bin/python bench/cluster.py --duration 20 --lease 5

1. Throughput, same generator, same run: `heartfly serve` on SQLite (1,000 checks, each request
   pings a random one), then two `heartfly serve` nodes on one PostgreSQL with the same checks, the
   connections split between them (half the pings land on the standby, through the inbox). Prints
   req/s and p99 of each, and the ratio cluster / SQLite (target >= 0.5); checks that the database
   holds a ping for every 200.
2. Detection latency at a standby: 200 checks (grace 0s, every 2 s .. 3 s) each pinged once through
   the standby; then how late after its deadline the leader found each one missed (its log line),
   p50/p99/max (target p99 <= 10 ms).
3. Failover: a check (every 1s, grace 0s) pinged through the standby, the leader killed with SIGKILL
   just after; prints the time from the kill to the new leader's first fired deadline (target <=
   lease + 1 s), and checks that the check went down exactly once.

PostgreSQL is a temporary cluster of its own (initdb + pg_ctl as the postgres user when run as
root, a free loopback port), removed after. Exit status 1 on any problem.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    write_heartfly_config,
)
from ping_throughput import LoadResult, _python_load, run_wrk, write_lua

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import pgserver  # the tests' own PostgreSQL fixture, reused

START_TIMEOUT = 60.0


def _sql(url: str, query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(query.encode()))


class Node:
    def __init__(self, config: Path, log: Path) -> None:
        self.proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
        self.log = log
        self.url = ""

    def wait(self) -> Node:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = LISTENING_RE.search(self.log.read_text(errors="replace"))
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"heartfly did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def role(self) -> str:
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as resp:
                return str(json.load(resp)["role"])
        except OSError:
            return "?"

    def get(self, path: str) -> int:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return int(resp.status)


FOUND_RE = re.compile(r"check \S+: up -> down \(missed\).*, found ([\d.]+) ms after its deadline")


def found_lags(folder: Path, prefix: str) -> list[float]:
    """How late each node's timer found each missed deadline, in ms, from the nodes' own log lines
    (a flip is dated at its deadline; the line says when it was found)."""
    return [float(m.group(1)) for log in folder.glob(f"{prefix}*.log") for m in FOUND_RE.finditer(log.read_text())]


def leader_and_standby(nodes: Sequence[Node]) -> tuple[Node, Node]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        roles = [n.role() for n in nodes]
        if sorted(roles) == ["leader", "standby"]:
            return (nodes[0], nodes[1]) if roles[0] == "leader" else (nodes[1], nodes[0])
        time.sleep(0.1)
    raise RuntimeError("no leader and standby")


def load(urls: Sequence[str], keys: Sequence[str], folder: Path, seconds: int, connections: int) -> LoadResult:
    """`connections` split over `urls`, one window; the results summed (p99: the worst node's)."""
    per = max(1, connections // len(urls))
    if shutil.which("wrk"):
        script = write_lua(folder, keys)
        for url in urls:  # warm-up
            run_wrk(url, script, 2, per, 2)
        with ThreadPoolExecutor(len(urls)) as pool:
            results = list(pool.map(lambda u: run_wrk(u, script, seconds, per, 2), urls))
    else:

        async def both() -> list[LoadResult]:
            done = await asyncio.gather(*(_python_load(u, keys, 2, seconds, per) for u in urls))
            return [measured for _, measured in done]

        results = asyncio.run(both())
    total = LoadResult(seconds=max(r.seconds for r in results), ok=sum(r.ok for r in results))
    total.sent = sum(r.sent for r in results)
    for r in results:
        for status, n in r.other.items():
            total.other[status] = total.other.get(status, 0) + n
        for kind, n in r.errors.items():
            total.errors[kind] = total.errors.get(kind, 0) + n
    total.p50_ms = max(r.p50_ms for r in results)
    total.p99_ms = max(r.p99_ms for r in results)
    return total


def throughput(pg: pgserver.PgServer, folder: Path, seconds: int, connections: int, lease: float) -> list[str]:
    problems: list[str] = []
    specs = [CheckSpec(name=f"c{i:04d}", key=make_key(), every="1h") for i in range(1000)]
    keys = [s.key for s in specs]
    single = write_heartfly_config(folder, specs, name="sqlite.toml")
    node = Node(single, folder / "sqlite.log").wait()
    try:
        lite = load([node.url], keys, folder, seconds, connections)
    finally:
        stop_process(node.proc)
    url = pg.database()
    clustered = write_heartfly_config(folder, specs, database=url, server=[f'lease = "{lease:g}s"'], name="pg.toml")
    nodes = [Node(clustered, folder / f"pg{i}.log") for i in range(2)]
    try:
        for n in nodes:
            n.wait()
        leader_and_standby(nodes)
        pair = load([n.url for n in nodes], keys, folder, seconds, connections)
        deadline = time.monotonic() + 30
        while _sql(url, "SELECT count(*) FROM inbox")[0][0] and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = int(_sql(url, "SELECT count(*) FROM pings")[0][0])  # type: ignore[call-overload]
    finally:
        for n in nodes:
            stop_process(n.proc)
    for label, r in (("SQLite, one node", lite), ("PostgreSQL, two nodes", pair)):
        print(f"{label:24} {r.rps:9.0f} req/s   p50 {r.p50_ms:6.2f} ms   p99 {r.p99_ms:6.2f} ms   non-200 {r.non_2xx}"
              f"   failed {r.failed}")  # fmt: skip
        if r.non_2xx or r.failed:
            problems.append(f"{label}: {r.other} {r.errors}")
    print(f"ratio cluster / SQLite: {pair.rps / lite.rps:.2f} (target >= 0.5)")
    warm_and_measured = stored  # the warm-up's pings are stored too
    if warm_and_measured < pair.ok:
        problems.append(f"PostgreSQL holds {stored} pings, fewer than the {pair.ok} answered 200")
    return problems


def detection(pg: pgserver.PgServer, folder: Path, lease: float, checks: int = 200) -> list[str]:
    problems: list[str] = []
    url = pg.database()
    specs = [CheckSpec(f"d{i:03d}", make_key(), f"{2000 + i * 1000 // checks}ms", "0s") for i in range(checks)]
    config = write_heartfly_config(folder, specs, database=url, server=[f'lease = "{lease:g}s"'], name="detect.toml")
    nodes = [Node(config, folder / f"detect{i}.log") for i in range(2)]
    try:
        for n in nodes:
            n.wait()
        _, standby = leader_and_standby(nodes)
        for spec in specs:
            standby.get(f"/ping/{spec.key}")
        deadline = time.monotonic() + 15
        while len(lags := found_lags(folder, "detect")) < checks and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        for n in nodes:
            stop_process(n.proc)
    lags = sorted(found_lags(folder, "detect"))
    if len(lags) != checks:
        problems.append(f"{len(lags)} of {checks} checks went down once")
    worst = lags[-1] if lags else float("nan")
    print(f"detection at a standby: {len(lags)} checks   found after the deadline: p50 {percentile(lags, 50):.2f} ms"
          f"   p99 {percentile(lags, 99):.2f} ms   max {worst:.2f} ms (target p99 <= 10 ms)")  # fmt: skip
    return problems


def failover(pg: pgserver.PgServer, folder: Path, lease: float) -> list[str]:
    problems: list[str] = []
    url = pg.database()
    spec = CheckSpec("failover", make_key(), "1s", "0s")
    config = write_heartfly_config(folder, [spec], database=url, server=[f'lease = "{lease:g}s"'], name="fo.toml")
    nodes = [Node(config, folder / f"fo{i}.log") for i in range(2)]
    try:
        for n in nodes:
            n.wait()
        leader, standby = leader_and_standby(nodes)
        standby.get(f"/ping/{spec.key}")
        time.sleep(0.2)
        killed = time.time()
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait()
        deadline = time.monotonic() + lease + 10
        while not fired_at(folder) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.5)  # a second flip to down would show here
    finally:
        for n in nodes:
            stop_process(n.proc)
    fired = fired_at(folder)
    if len(fired) != 1:
        problems.append(f"the check went down {len(fired)} times, not once")
    if fired:
        print(f"failover: kill -9 of the leader to the new leader's first fired deadline: {fired[0] - killed:.2f} s"
              f" (lease {lease:g} s, target <= {lease + 1:g} s)")  # fmt: skip
    return problems


FIRED_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO heartfly\.server\.engine: check failover: up -> down", re.MULTILINE
)


def fired_at(folder: Path) -> list[float]:
    """When a node's timer fired the failover check's deadline, from its log line's time stamp (the
    flip row is dated at the deadline itself)."""
    stamps = []
    for log in folder.glob("fo*.log"):
        for m in FIRED_RE.finditer(log.read_text(errors="replace")):
            stamps.append(time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000)
    return sorted(stamps)


def run(folder: Path, seconds: int, connections: int, lease: float) -> int:
    reason = pgserver.why_not()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 1
    problems: list[str] = []
    with pgserver.cluster() as pg:
        problems += throughput(pg, folder, seconds, connections, lease)
        problems += detection(pg, folder, lease)
        problems += failover(pg, folder, lease)
    if problems:
        print("PROBLEMS:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured window")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--lease", type=float, default=2.0, help="the cluster's lease, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    exit_on_sigterm()
    run_in_tempdir("heartfly-cluster-", args.keep, lambda f: run(f, args.duration, args.connections, args.lease))


if __name__ == "__main__":
    main()
