"""The server's garbage-collector policy; each test runs in a fresh interpreter (it is process-wide)."""

from __future__ import annotations

from pathlib import Path

from tests.proc import run_python


def test_objects_built_after_tuning_are_frozen_out_of_full_collections() -> None:
    out = run_python(
        """
        import gc
        from heartfly.server import longlived
        longlived.tune()
        with longlived.building():
            assert not gc.isenabled()
            states = [{"check": i, "runs": {}} for i in range(10_000)]
        assert gc.isenabled()
        print(gc.get_freeze_count() >= 10_000, gc.get_threshold()[2] == longlived.FULL_AFTER)
        """
    )
    assert out == "True True"


def test_without_tuning_building_leaves_the_collector_alone() -> None:
    out = run_python(
        """
        import gc
        from heartfly.server import longlived
        before = gc.get_threshold()
        with longlived.building():
            enabled = gc.isenabled()
            states = [{"check": i} for i in range(1_000)]
        print(enabled, gc.get_freeze_count(), gc.get_threshold() == before)
        """
    )
    assert out == "True 0 True"


def test_a_frozen_state_that_is_replaced_is_still_freed() -> None:
    out = run_python(
        """
        from heartfly.server import longlived

        class State:
            def __init__(self, n):
                self.n, self.runs = n, {}

            def __del__(self):
                print("freed", self.n)

        longlived.tune()
        with longlived.building():
            checks = {"a": State(1)}
        checks["a"] = State(2)  # what each ping does
        print("replaced")
        """
    )
    assert out.splitlines()[:2] == ["freed 1", "replaced"]


def test_a_reload_thaws_and_collects_cycles_frozen_by_an_earlier_one() -> None:
    out = run_python(
        """
        from heartfly.server import longlived

        class Request:
            def __del__(self):
                print("collected")

        longlived.tune()
        with longlived.building():
            in_flight = Request()
            in_flight.me = in_flight  # a cycle, alive when frozen
        del in_flight  # the request ends; frozen, its cycle is out of the collector's reach
        with longlived.building(again=True):
            print("reloading")
        print("reloaded")
        """
    )
    assert out.splitlines() == ["reloading", "collected", "reloaded"]


def test_states_a_restart_reads_after_it_answers_are_frozen_like_those_a_start_builds(tmp_path: Path) -> None:
    (tmp_path / "heartfly.toml").write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "heartfly.db"\n'
        + "".join(f'[checks.c{i}]\nkey = "{"k" * 20}{i:04d}"\nevery = "1h"\n' for i in range(500))
    )
    out = run_python(
        f"""
        import asyncio, gc
        from pathlib import Path
        from heartfly.core.config import load_config
        from heartfly.core.states import CheckState, Event, Kind
        from heartfly.server import housekeeping, longlived
        from heartfly.server.engine import Engine, PingRecord
        from heartfly.store import backend

        config = load_config(Path({str(tmp_path / "heartfly.toml")!r}))

        async def serve(pinged):
            opened = await backend.open_backend(config.server)
            opened.writer.start()
            try:
                with longlived.building():
                    engine = Engine(config, engine_clock, opened.writer)
                    await engine.load(opened.reader)
                if pinged:
                    await engine.finish_load(lambda: None)
                    tracked = sum(type(o) is CheckState for o in gc.get_objects())
                    print(sum(c.loaded for c in engine.checks.values()), tracked)
                else:
                    for check in engine.checks.values():
                        now = engine.clock.now()
                        await engine.record(check, PingRecord(Event(Kind.SUCCESS, now), received_at=now))
                await housekeeping.mark_stopped(engine)
            finally:
                await opened.close()

        from heartfly.core.clock import SystemClock
        engine_clock = SystemClock()
        longlived.tune()
        asyncio.run(serve(False))
        asyncio.run(serve(True))
        """
    )
    assert out == "500 0"  # every state read, none left for a full collection to walk
