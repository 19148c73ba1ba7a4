"""A restart after a crash under load: how long until the server answers, and until every stored
state is read with the pings committed after the last state checkpoint replayed.

Run from the repository root:

    .venv/bin/python bench/crash_restart.py                  # 100k checks, 35 s of load, then SIGKILL
    .venv/bin/python bench/crash_restart.py --checks 10000 --seconds 20

A clean stop checkpoints every state, so a clean restart replays nothing (bench/scale.py times
those). A crash leaves the pings committed after the last checkpoint mark, up to
engine.CHECKPOINT_AFTER seconds of them, to be read before the server answers; those not in a
stored state yet are replayed as their check's state is read (a ping to it, or the read of every
state once the server answers). Needs wrk.
"""

from __future__ import annotations

import argparse
import re
import signal

from benchlib import stop_process
from ping_throughput import run_wrk
from scale import primed

from heartfly.server.engine import CHECKPOINT_AFTER

REPLAYED_RE = re.compile(r"replay(?:ed|ing) (\d+) ping\(s\) committed after the last state checkpoint")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(CHECKPOINT_AFTER) + 5,
        help=f"seconds of load before the crash (default {int(CHECKPOINT_AFTER) + 5}: past the first checkpoints)",
    )
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
            # Logged before the server answers, if it had anything to replay.
            match = REPLAYED_RE.search((size.folder / "heartfly-after-crash.log").read_text(encoding="utf-8"))
            print(f"{args.checks} checks, {load.ok} pings in {args.seconds} s of load, then SIGKILL")
            print(
                f"restart: answering after {size.starts[-1]:.2f} s, every state read after"
                f" {size.reads[-1]:.2f} s (launch to both); replayed {int(match.group(1)) if match else 0} pings"
            )
        finally:
            stop_process(proc)


if __name__ == "__main__":
    main()
