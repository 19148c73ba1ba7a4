"""Resident memory over restarts: one database of N checks restarted again and again, each
time loaded as bench/scale.py loads it.

Run from the repository root:

    .venv/bin/python bench/steady_memory.py                 # 100k checks, 4 restarts, 45 s of load each
    .venv/bin/python bench/steady_memory.py --checks 10000 --restarts 3 --seconds 20

bench/scale.py starts each round from the same database, so that its later rounds see states
that more pings have passed through; this prints each restart on its own: resident memory once
every stored state is read (the server answers before that), after the load, and the database's
size on disk (with its WAL) after the stop. Needs wrk.
"""

from __future__ import annotations

import argparse

from benchlib import rss_mib, stop_process
from ping_throughput import run_wrk
from scale import primed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=45, help="seconds of load after each restart (default 45)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with primed(args.checks, "heartfly-memory-") as size:
        print(f"{args.checks} checks, {args.seconds} s of load ({args.connections} connections) after each restart")
        for n in range(1, args.restarts + 1):
            proc, base = size.start(f"restart-{n}")
            try:
                once_read = rss_mib(proc.pid)  # start() returns once every stored state is read
                run_wrk(base, size.lua, args.seconds, args.connections, 1)
                loaded = rss_mib(proc.pid)
            finally:
                stop_process(proc)
            on_disk = sum(p.stat().st_size for p in size.folder.glob("heartfly.db*")) / 2**20
            print(
                f"restart {n}: RSS once read {once_read:6.1f} MiB, after load {loaded:6.1f} MiB;"
                f" database {on_disk:5.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
