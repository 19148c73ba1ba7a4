"""The end of a timed pause as a cluster node keeps it: stored in the database (any node may store
one), armed by the node that acts (the leader), shown by the others, and ended only if it is still
the stored one. A real app on a real SQLite file; the node's role is set by hand (what the lease
decides in a cluster: tests/test_cluster_pauses.py runs the real thing)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from heartfly.core.states import Status
from heartfly.core.views import PAUSE_META
from heartfly.store import rows as store
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key


async def a_node(aiohttp_client: Any, write_config: ConfigWriter, *, leading: bool) -> web.Application:
    config = write_config(f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n')
    app = create_app(config)
    await aiohttp_client(app)
    app[RUNTIME].cluster = SimpleNamespace(leading=leading)  # type: ignore[assignment]
    return app


async def stored_by_another_node(app: web.Application, name: str, until: float | None) -> None:
    key = PAUSE_META + name
    statement = store.delete_meta_statement(key) if until is None else store.meta_statement(key, repr(until))
    await app[RUNTIME].writer.submit(store.Write(statements=[statement]))  # type: ignore[union-attr]


async def test_a_pause_shortened_while_this_node_stood_by_ends_at_the_new_end_once_it_leads_again(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    app = await a_node(aiohttp_client, write_config, leading=True)
    check = app[RUNTIME].engine.checks["job"]
    await control.pause(app, check, time.time() + 3600)  # it leads: its timer is armed for an hour
    app[RUNTIME].cluster.leading = False  # type: ignore[union-attr]
    await stored_by_another_node(app, "job", time.time() + 0.5)  # the new leader was told: half a second
    await control.rearm(app)
    app[RUNTIME].cluster.leading = True  # type: ignore[union-attr]  # that leader went: this one leads again
    await control.rearm(app)
    await asyncio.sleep(1.5)
    assert check.state.status is not Status.PAUSED, "the pause did not end at its stored end"


async def test_a_leader_shows_no_end_for_a_pause_given_again_without_one_on_another_node(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    app = await a_node(aiohttp_client, write_config, leading=True)
    check = app[RUNTIME].engine.checks["job"]
    await control.pause(app, check, time.time() + 3600)
    await stored_by_another_node(app, "job", None)  # paused again there, without an end
    await control.rearm(app)
    assert control.paused_until(app, check) is None and "job" not in app[control.CONTROL].timers


async def test_the_end_of_a_pause_the_leader_has_not_applied_yet_is_kept_until_it_has(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A standby reloaded a new check first: its pause waits in the inbox for the leader's reload,
    # and the end it stored passes meanwhile. Deleted, the pause applied later would never end.
    app = await a_node(aiohttp_client, write_config, leading=True)
    check = app[RUNTIME].engine.checks["job"]
    await stored_by_another_node(app, "job", time.time() + 0.3)  # its pause not applied here yet
    await control.rearm(app)
    await asyncio.sleep(0.8)
    reader = app[RUNTIME].reader
    assert reader is not None
    assert PAUSE_META + "job" in await reader.read_meta_prefix(PAUSE_META), "the end was forgotten"
    await app[RUNTIME].engine.pause(check)  # the inbox's pause, applied at last
    await asyncio.sleep(control.IN_STEP + 0.5)
    assert check.state.status is not Status.PAUSED, "the pause did not end once it was applied"
