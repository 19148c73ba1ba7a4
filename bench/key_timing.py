"""Key timing: does answering an unknown key reveal how close it is to a real one?

Run from the repository root:

    .venv/bin/python bench/key_timing.py

A known key answers 200 after its commit and an unknown one 404, so those differ by design. What
must not leak is *nearness*: a guess that shares all but the last (or the first) character with
a real key must take as long to be refused as a random guess. Keys are looked up in a hash map,
never compared character by character, so the three classes should be indistinguishable.
Interleaves the three classes of unknown keys over one keep-alive connection, prints each class's
median and p90 in microseconds and the largest median difference; PASS if under 5 %.
"""

from __future__ import annotations

import asyncio
import random
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
    percentile,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)

ROUNDS = 4000


async def measure(base: str, real: list[str]) -> dict[str, list[float]]:
    rng = random.Random(7)
    classes = {
        "random unknown": lambda: make_key(),
        "all but the last character": lambda: (k := rng.choice(real))[:-1] + ("A" if k[-1] != "A" else "B"),
        "all but the first character": lambda: ("A" if (k := rng.choice(real))[0] != "A" else "B") + k[1:],
    }
    times: dict[str, list[float]] = {name: [] for name in classes}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):  # warm-up
            async with session.get(f"{base}/ping/{make_key()}") as resp:
                await resp.read()
        for _ in range(ROUNDS):
            for name in rng.sample(list(classes), k=len(classes)):
                url = f"{base}/ping/{classes[name]()}"
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 404
                times[name].append((time.perf_counter() - t0) * 1e6)
    return times


def main() -> None:
    exit_on_sigterm()
    folder = Path(tempfile.mkdtemp(prefix="heartfly-keytiming-"))
    proc = None
    try:
        keys = [make_key() for _ in range(1000)]
        config = write_heartfly_config(folder, [CheckSpec(f"c{i}", k, "1h") for i, k in enumerate(keys)])
        log = folder / "heartfly.log"
        proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
        port = wait_for_match(proc, log, LISTENING_RE, timeout=60).group(1)
        times = asyncio.run(measure(f"http://127.0.0.1:{port}", keys))
    finally:
        stop_process(proc)
        shutil.rmtree(folder, ignore_errors=True)
    medians = {}
    for name, values in times.items():
        values.sort()
        medians[name] = percentile(values, 50)
        print(
            f"{name:>30}: median {medians[name]:7.1f} us, p90 {percentile(values, 90):7.1f} us ({len(values)} requests)"
        )
    spread = (max(medians.values()) - min(medians.values())) / min(medians.values())
    verdict = "PASS" if spread < 0.05 else "FAIL"
    print(f"{verdict} largest difference between medians: {100 * spread:.1f} % (threshold 5 %)")
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
