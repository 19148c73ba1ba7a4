"""A restart after a crash under load: how long until the server answers, and until every stored
state is read with the pings committed after the last state checkpoint replayed.

Run from the repository root:

    .venv/bin/python bench/crash_restart.py                  # 100k checks, 35 s of load, then SIGKILL
    .venv/bin/python bench/crash_restart.py --checks 10000 --seconds 20

A clean stop checkpoints every state, so a clean restart replays nothing (bench/scale.py times
those). A crash leaves the pings of up to engine.CHECKPOINT_AFTER seconds (30) after the last
checkpoint to replay: at this bench's pace, every ping the server took in those seconds.
"""

from __future__ import annotations

import argparse
import re
import signal

from benchlib import stop_process, wait_for_match
from ping_throughput import run_wrk
from scale import primed

REPLAYED_RE = re.compile(r"replayed (\d+) ping\(s\) committed after the last state checkpoint")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=35, help="seconds of load before the crash (default 35)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with primed(args.checks, "heartfly-crash-") as size:
        proc, base = size.start("loaded")
        try:
            load = run_wrk(base, size.lua, args.seconds, args.connections, 1)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            stop_process(proc)
        proc, _ = size.start("after-crash")  # returns once every stored state is read
        try:
            log = size.folder / "heartfly-after-crash.log"
            match = wait_for_match(proc, log, REPLAYED_RE, timeout=60)
            print(f"{args.checks} checks, {load.ok} pings in {args.seconds} s of load, then SIGKILL")
            print(
                f"restart: answering after {size.starts[-1]:.2f} s, every state read after"
                f" {size.reads[-1]:.2f} s (launch to both); replayed {int(match.group(1))} pings"
            )
        finally:
            stop_process(proc)


if __name__ == "__main__":
    main()
