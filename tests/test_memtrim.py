"""The C heap's free pages go back to the system once a start's transient work is done."""

from __future__ import annotations

import asyncio
import threading
import types
from concurrent.futures import ThreadPoolExecutor

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.states import Status
from heartfly.server import memtrim
from tests.conftest import ConfigWriter, new_key
from tests.proc import run_python
from tests.test_restart import died_past_a_deadline, running
from tests.test_restart_reading import pinged_then_stopped

glibc = pytest.mark.skipif(memtrim.release() is False, reason="the C library has no malloc_trim (not glibc)")


@glibc
def test_the_free_pages_of_the_c_heap_below_a_block_in_use_go_back_to_the_system() -> None:
    # 64 MiB in 4 KiB blocks (under the mmap threshold: on the heap), written to, then all freed
    # but the last, which keeps the top of the heap in use: free() alone gives nothing back.
    out = run_python(
        """
        import ctypes, ctypes.util
        from heartfly.server import memtrim

        def rss_kib():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        blocks = [libc.malloc(4096) for _ in range(16384)]
        for block in blocks:
            ctypes.memset(block, 1, 4096)
        for block in blocks[:-1]:
            libc.free(block)
        before = rss_kib()
        released = memtrim.release()
        print(released, before - rss_kib())
        """
    )
    released, freed_kib = out.split()
    assert released == "True" and int(freed_kib) > 48 * 1024


@pytest.mark.both_stores
async def test_the_timer_gives_the_starts_free_memory_back_once_every_stored_state_is_read(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config("".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(3)))
    clock = FakeClock()
    await pinged_then_stopped(config, clock, 10, 5)
    async with running(config, clock) as engine:
        released = threading.Event()
        unread_then: list[bool] = []

        def release() -> bool:
            unread_then.append(engine.reading_stored)
            released.set()
            return True

        monkeypatch.setattr(memtrim, "release", release)
        assert engine.reading_stored
        timer = asyncio.create_task(engine.run_timer())
        try:
            for _ in range(100):
                if released.is_set():
                    break
                await asyncio.sleep(0.05)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
    assert unread_then == [False]


@pytest.mark.both_stores
async def test_deadlines_fire_after_a_restart_while_the_default_executor_is_busy(write_config: ConfigWriter) -> None:
    # Name lookups (alerts, heartbeats) share that pool: one stuck on a dead DNS server must not
    # hold the timer up, as the trim of a start's memory once did by waiting for a thread from it.
    clock = FakeClock()
    config = await died_past_a_deadline(write_config, clock)
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    gate = threading.Event()
    stuck = loop.run_in_executor(None, gate.wait, 10)
    try:
        async with running(config, clock) as engine:
            timer = asyncio.create_task(engine.run_timer())
            try:
                for _ in range(40):
                    if engine.checks["a"].state.status is Status.DOWN:
                        break
                    await asyncio.sleep(0.05)
            finally:
                gate.set()
                timer.cancel()
                await asyncio.gather(timer, stuck, return_exceptions=True)
            assert engine.checks["a"].state.status is Status.DOWN
    finally:
        gate.set()
        pool.shutdown(wait=False)


class _NoThread(threading.Thread):
    def start(self) -> None:
        raise RuntimeError("can't start new thread")  # as at a pids limit (TasksMax, a container's)


@pytest.mark.both_stores
async def test_deadlines_fire_after_a_restart_even_when_no_thread_can_be_started_for_the_trim(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The trim is a convenience: its thread failing to start raised out of the timer's first
    # round, and the timer task ended there, with no deadline ever fired and nothing in the log.
    clock = FakeClock()
    config = await died_past_a_deadline(write_config, clock)
    monkeypatch.setattr(memtrim, "threading", types.SimpleNamespace(Thread=_NoThread))
    async with running(config, clock) as engine:
        timer = asyncio.create_task(engine.run_timer())
        try:
            for _ in range(40):
                if engine.checks["a"].state.status is Status.DOWN or timer.done():
                    break
                await asyncio.sleep(0.05)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        assert engine.checks["a"].state.status is Status.DOWN
    assert "could not give free memory back to the system" in caplog.text
