"""Start-up cost in instructions: what a first start and a restart of N checks execute.

Run from the repository root (needs valgrind):

    .venv/bin/python bench/start_instructions.py                  # 10,000 checks
    .venv/bin/python bench/start_instructions.py --checks 2000

Wall time on a shared VM moves by a quarter between runs when the host steals CPU; callgrind
counts the instructions the process executes, which the host does not change. Writes a config of N
`every = "1h"` checks (as bench/scale.py does) and counts, each in a process of its own under
callgrind, the start-up `heartfly serve` runs (the server's collector policy included, not its
logging, CLI or socket): the imports alone; the imports and `load_config`; a first start (an empty
database); a restart of the database that first start left, after one ping per check through a
real server. A process is counted whole: the two starts include the app's clean-up and the
interpreter's exit, so the figures per check include freeing what the start built. For comparing
two trees (run it with PYTHONPATH set to each), not for a start's absolute cost.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("imports", "config", "start")
COLLECTED_RE = re.compile(r"Collected\s*:\s*(\d+)")


def child(stage: str, config_path: Path) -> None:
    """The measured process: `heartfly serve`'s start-up up to the point `stage` names."""
    from heartfly.server import longlived

    longlived.tune()
    with longlived.building():
        from aiohttp import web

        from heartfly.core.config import load_config
        from heartfly.web.app import create_app
    if stage == "imports":
        return
    with longlived.building():
        config = load_config(config_path)
    if stage == "config":
        return

    async def start() -> None:
        runner = web.AppRunner(create_app(config), handle_signals=False)
        with longlived.building():
            await runner.setup()  # the database, the states, the engine: what "listening" waits for
        await runner.cleanup()

    asyncio.run(start())


def instructions(stage: str, config_path: Path) -> int:
    from benchlib import installed_env, python_exe

    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python_exe(), __file__]
    args = [*cmd, "--child", stage, str(config_path)]
    out = subprocess.run(args, capture_output=True, text=True, check=False, env=installed_env())
    match = COLLECTED_RE.search(out.stderr)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"{stage}: callgrind run failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return int(match.group(1))


def run(folder: Path, checks: int) -> int:
    # Here, not at the top: the measured child imports what `heartfly serve` imports, nothing more.
    from benchlib import (
        LISTENING_RE,
        CheckSpec,
        heartfly_cmd,
        make_key,
        start_process,
        stop_process,
        wait_for_match,
        write_heartfly_config,
    )
    from scale import prime

    keys = [make_key() for _ in range(checks)]
    config = write_heartfly_config(folder, [CheckSpec(f"c{i:06d}", k, "1h") for i, k in enumerate(keys)])
    began = time.monotonic()
    counts = {stage: instructions(stage, config) for stage in STAGES}  # "start": a first start
    first = counts.pop("start")
    # One ping per check through a real server (not under callgrind), then the restart is counted.
    log = folder / "prime.log"
    proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
    try:
        match = wait_for_match(proc, log, LISTENING_RE, timeout=600)
        asyncio.run(prime(f"http://127.0.0.1:{match.group(1)}", keys))
    finally:
        stop_process(proc)
    restart = instructions("start", config)
    imports, loaded = counts["imports"], counts["config"]
    print(f"{checks} checks, millions of instructions (callgrind; {time.monotonic() - began:.0f} s):")
    print(f"  imports                {imports / 1e6:9,.0f}")
    print(f"  + load_config          {loaded / 1e6:9,.0f}   ({(loaded - imports) / checks / 1e3:.1f}k per check)")
    for name, total in (("first start", first), ("restart", restart)):
        own = (total - loaded) / checks / 1e3
        print(f"  {name:22s} {total / 1e6:9,.0f}   (after load_config: {own:.1f}k per check)")
    return 0


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    from benchlib import compile_heartfly, exit_on_sigterm, run_in_tempdir

    exit_on_sigterm()
    compile_heartfly()  # counted as an install runs it: its bytecode compiled
    run_in_tempdir("heartfly-start-instructions-", args.keep, lambda folder: run(folder, args.checks))


if __name__ == "__main__":
    main()
