"""Start-up on PostgreSQL: a first start (every check new, inserted) and a restart of N checks.

Run from the repository root (needs Debian's postgresql package):

    .venv/bin/python bench/pg_start.py                    # 20,000 checks
    .venv/bin/python bench/pg_start.py --checks 100000

Writes a config of N `every = "1h"` checks (as bench/scale.py does) on a fresh database of a
temporary PostgreSQL cluster (the tests' own, tests/pgserver.py: initdb + pg_ctl, a free loopback
port, fsync off, removed after), and times `heartfly serve` from launch to its "listening" line:
the first start, then a restart of the database it left. For comparing two trees (run it with
PYTHONPATH set to each), since the cluster's settings are a test's, not a production server's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchlib import (
    CheckSpec,
    compile_heartfly,
    exit_on_sigterm,
    make_key,
    run_in_tempdir,
    start_heartfly,
    stop_process,
    write_heartfly_config,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import pgserver  # the tests' own PostgreSQL fixture, reused


def timed_start(config: Path, log: Path) -> float:
    proc, _, took = start_heartfly(config, log)
    if stop_process(proc) != 0:
        raise RuntimeError(f"heartfly did not stop cleanly; see {log}")
    return took


def run(folder: Path, checks: int) -> int:
    if (why := pgserver.why_not()) is not None:
        sys.exit(f"needs PostgreSQL: {why}")
    compile_heartfly()
    with pgserver.cluster() as pg:
        specs = [CheckSpec(f"c{i:06d}", make_key(), "1h") for i in range(checks)]
        config = write_heartfly_config(folder, specs, database=pg.database())
        first = timed_start(config, folder / "first.log")
        restart = timed_start(config, folder / "restart.log")
    print(f"{checks} checks on PostgreSQL: first start {first:.2f} s, restart {restart:.2f} s")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    exit_on_sigterm()
    run_in_tempdir("heartfly-pg-start-", args.keep, lambda folder: run(folder, args.checks))


if __name__ == "__main__":
    main()
