"""A start whose new checks' rows are committed in parts (server/loading.py NEW_ROWS_PER_WRITE),
and which dies before its end: the next start must not judge those checks from the failed one."""

from __future__ import annotations

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.states import Status
from heartfly.server import loading
from heartfly.server.engine import Engine
from heartfly.store import backend
from heartfly.store.api import Reader
from tests.conftest import ConfigWriter, new_key
from tests.test_restart import running, status

pytestmark = pytest.mark.both_stores

CHECKS = 30


class Killed(Exception):
    """The process ended there (systemd's start timeout, say)."""


async def test_a_first_start_that_died_after_committing_part_of_its_checks_raises_no_alarm_later(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n' for i in range(CHECKS))
    config = write_config(body)
    clock = FakeClock()
    monkeypatch.setattr(loading, "NEW_ROWS_PER_WRITE", 10)
    replay = Engine._replay

    async def dies(self: Engine, db: Reader, checkpoint: int) -> None:
        await self.writer.flush()  # the parts queued so far are in
        raise Killed

    monkeypatch.setattr(Engine, "_replay", dies)
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        with pytest.raises(Killed):
            await Engine(config, clock, opened.writer).load(opened.reader)
    finally:
        await opened.close()
    monkeypatch.setattr(Engine, "_replay", replay)
    clock.advance(300)  # nothing served meanwhile: no check could be pinged
    async with running(config, clock, clean=False) as engine:
        assert engine.fire_due(clock.now()) == 0
        assert all(status(engine, f"c{i}") is Status.NEW for i in range(CHECKS))
        assert engine.fire_due(clock.now() + 99) == 0  # watched from this start on (or its settle)
