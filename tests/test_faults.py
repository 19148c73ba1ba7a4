"""Faults against the real daemon: a full filesystem, a reload storm."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import new_key
from tests.proc import Server


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real filesystem that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def write_config(tmp_path: Path, database: Path, checks: str) -> Path:
    path = tmp_path / "hb.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "{database}"\napi_token_file = "token"\n' + checks)
    return path


async def ping(session: aiohttp.ClientSession, url: str, body: str) -> int:
    async with session.post(url, data=body) as resp:
        await resp.read()
        return resp.status


def test_a_full_filesystem_answers_503_says_so_and_recovers_without_a_restart(tmp_path: Path, tiny_disk: Path) -> None:
    key = new_key()
    config = write_config(tmp_path, tiny_disk / "hb.db", f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    acked: list[str] = []
    with Server(config) as server:
        url = f"{server.url}/ping/{key}/log"

        async def scenario() -> tuple[Counter[int], int]:
            statuses: Counter[int] = Counter()
            async with aiohttp.ClientSession() as session:
                filler = tiny_disk / "filler"
                with filler.open("wb") as out:  # fill the disk to the last block
                    try:
                        while True:
                            out.write(b"\0" * 65536)
                            out.flush()
                    except OSError:
                        pass
                n = 0
                while statuses[503] == 0 and n < 2000:  # the WAL's spare pages run out after some pings
                    body = f"p{n}-" + "x" * 2000
                    status = await ping(session, url, body)
                    statuses[status] += 1
                    if status == 200:
                        acked.append(body)
                    n += 1
                async with session.get(f"{server.url}/readyz") as ready:
                    ready_status = ready.status
                filler.unlink()  # space comes back; no restart
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    body = f"after-{len(acked)}"
                    if await ping(session, url, body) == 200:
                        acked.append(body)
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("writes did not resume after space came back")
            return statuses, ready_status

        statuses, ready_status = asyncio.run(scenario())
        assert statuses[503] >= 1 and set(statuses) <= {200, 503}
        assert ready_status == 503
        assert server.wait_for_log("database write failed")
        assert server.wait_for_log("database writes work again")
        assert server.stop() == 0
    with sqlite3.connect(tiny_disk / "hb.db") as db:
        stored = {row[0] for row in db.execute("SELECT body FROM pings")}
    assert [b for b in acked if b not in stored] == []


def test_a_storm_of_reloads_during_pings_loses_no_ping_and_keeps_serving(tmp_path: Path) -> None:
    keys = [new_key() for _ in range(5)]
    checks = "".join(f'[checks.c{i}]\nkey = "{k}"\nevery = "1h"\n' for i, k in enumerate(keys))
    config = write_config(tmp_path, tmp_path / "hb.db", checks)
    statuses: Counter[int] = Counter()
    with Server(config) as server:

        async def load(stop: asyncio.Event) -> None:
            async with aiohttp.ClientSession() as session:
                i = 0
                while not stop.is_set():
                    statuses[await ping(session, f"{server.url}/ping/{keys[i % 5]}", "x")] += 1
                    i += 1

        async def storm() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(load(stop))
            for n in range(40):
                extra = f'[checks.extra{n}]\nkey = "{new_key()}"\nevery = "1h"\n' if n % 2 else ""
                # Atomically, as editors save: the server reads the file in a thread, maybe mid-write.
                config.with_suffix(".new").write_text(config.read_text().split("[checks.extra")[0] + extra)
                os.replace(config.with_suffix(".new"), config)
                server.signal(signal.SIGHUP)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            stop.set()
            await task

        asyncio.run(storm())
        assert server.proc is not None and server.proc.poll() is None
        assert set(statuses) == {200} and statuses[200] > 50
        assert server.wait_for_log("reloaded")
        assert server.stop() == 0
    assert "Traceback" not in server.log()
