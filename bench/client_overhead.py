"""Client overhead: the wall time `heartfly run NAME -- true` adds over plain `true`, two pings included.

Run from the repository root:

    .venv/bin/python bench/client_overhead.py              # 30 runs of each
    .venv/bin/python bench/client_overhead.py --runs 100

Starts `heartfly serve` on a temporary config with one check and a server-wide ping_key, then times,
as the shell would see them (fork, exec, wait), interleaved after a few warm-up runs:
`true`; `heartfly run job -- true` with the name resolved through HEARTFLY_URL + HEARTFLY_PING_KEY
(the start ping and the end ping, each answered only after the server's commit); the same with the
check's full URL; the same with the name looked up in a config file (`-c`, which imports the config
parser); and `heartfly ping job`. Prints the median and p90 of each and the median overhead over
`true` (aim: at most 80 ms for `heartfly run`). Exit status 1 when a run failed, printed a warning,
or the database does not hold exactly the pings sent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    percentile,
    run_in_tempdir,
    sqlite_ro_uri,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)

START_TIMEOUT = 60.0
WARMUP = 3
AIM_MS = 80.0


def count_pings(database: Path) -> int:
    with sqlite3.connect(sqlite_ro_uri(database), uri=True, timeout=10) as db:
        row = db.execute("SELECT COUNT(*) FROM pings").fetchone()
    db.close()
    return int(row[0])


def timed(cmd: list[str], env: dict[str, str], problems: list[str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    elapsed = time.perf_counter() - began
    if result.returncode != 0 or result.stderr:
        problems.append(f"{' '.join(cmd[-4:])}: exit {result.returncode}, stderr {result.stderr[:300]!r}")
    return elapsed


def run(runs: int, folder: Path) -> int:
    key, ping_key = make_key(), make_key()
    config = write_heartfly_config(folder, [CheckSpec(name="job", key=key, every="1h")])
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[server]\n", f'[server]\nping_key = "{ping_key}"\n', 1), encoding="utf-8")
    database = folder / "heartfly.db"
    log_path = folder / "heartfly.log"
    problems: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log_path)
        match = wait_for_match(proc, log_path, LISTENING_RE, START_TIMEOUT)
        url = f"http://127.0.0.1:{match.group(1)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTFLY_")}
        env.update(HEARTFLY_URL=url, HEARTFLY_PING_KEY=ping_key, HEARTFLY_SPOOL=str(folder / "spool"))
        true = shutil.which("true") or "/bin/true"
        hf = heartfly_cmd()
        variants = {
            "true": ([true], 0),
            "heartfly run job -- true": ([*hf, "run", "job", "--", true], 2),
            "heartfly run URL -- true": ([*hf, "run", f"{url}/ping/{key}", "--", true], 2),
            "heartfly run -c FILE job -- true": ([*hf, "run", "-c", str(config), "job", "--", true], 2),
            "heartfly ping job": ([*hf, "ping", "job"], 1),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        sent = 0
        for i in range(WARMUP + runs):
            for name, (cmd, pings) in variants.items():
                elapsed = timed(cmd, env, problems)
                sent += pings
                if i >= WARMUP:
                    times[name].append(elapsed * 1000)
        stored = count_pings(database)
        if stored != sent:
            problems.append(f"the database holds {stored} pings, {sent} were sent")
    finally:
        status = stop_process(proc)
    if status != 0:
        problems.append(f"heartfly serve exited with status {status}")

    base = statistics.median(times["true"])
    print(f"{runs} runs each (after {WARMUP} warm-up runs), wall time as seen by the caller, on {os.cpu_count()} CPUs")
    for name, values in times.items():
        values.sort()
        median = statistics.median(values)
        extra = "" if name == "true" else f"   overhead {median - base:6.1f} ms"
        print(f"  {name:34} median {median:6.1f} ms   p90 {percentile(values, 90):6.1f} ms{extra}")
    overhead = statistics.median(times["heartfly run job -- true"]) - base
    verdict = "within" if overhead <= AIM_MS else "OVER"
    print(f"heartfly run overhead (two pings): {overhead:.1f} ms, {verdict} the {AIM_MS:.0f} ms aim")
    if problems:
        print("PROBLEMS:")
        for problem in problems[:20]:
            print(f"  - {problem}")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (config, database, log)")
    args = parser.parse_args()
    exit_on_sigterm()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    run_in_tempdir("heartfly-client-", args.keep, lambda f: run(args.runs, f))


if __name__ == "__main__":
    main()
