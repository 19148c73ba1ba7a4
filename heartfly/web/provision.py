"""Auto-provisioning: `/ping/<ping_key>/<slug>?create=1` makes a missing check, as Healthchecks
does, when the operator allows it (`[server] auto_provision`), up to `auto_provision_max` of them."""

from __future__ import annotations

import logging

from aiohttp import web

from heartfly.core import hcshape
from heartfly.core.config import ConfigError
from heartfly.core.patterns import NAME_RE
from heartfly.core.stored_checks import StoredCheck, new_key
from heartfly.server.engine import Check
from heartfly.web import stored
from heartfly.web.control import CONTROL
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

AT_CAP = web.AppKey("provision_at_cap", list[bool])  # [True] once the cap's refusal is logged (create_app sets it)


async def create(app: web.Application, name: str) -> tuple[Check | None, bool]:
    """The check named by a ping that asked for it to be made, and whether this ping made it (two
    pings at once: one makes it, the other finds it); None (the ping's 404) when the server does
    not auto-provision, the name cannot be a check's, or the cap is reached."""
    rt = app[RUNTIME]
    server = rt.config.server
    if not server.auto_provision or not NAME_RE.fullmatch(name):
        return None, False
    # Healthchecks' defaults (every day, an hour's grace unless [defaults] says otherwise) and its
    # rule on a run (down once older than the grace), as a check made through its API
    table = hcshape.new_table(new_key(), rt.config.inherited, resume_on_ping=False)
    made = StoredCheck(name, "auto", table, rt.clock.now())
    # Under the management API's lock: a `unique` create decides from the checks it sees, then
    # stores; a check made by a ping in between would turn its "found" into "slug taken".
    async with app[CONTROL].api_writes:
        try:
            outcome = await stored.put(app, made, new=True, cap=server.auto_provision_max)
        except ConfigError as exc:
            log.error("auto_provision: cannot make check %s: %s", name, "; ".join(exc.problems))
            return None, False
    logged = app[AT_CAP]
    if outcome == "capped":
        if not logged[0]:  # once: a job pinging every minute must not fill the journal
            log.warning(
                "auto_provision: %d checks made by pings already (auto_provision_max); not making %s",
                server.auto_provision_max, name,
            )  # fmt: skip
            logged[0] = True
        return None, False
    logged[0] = False
    check = rt.engine.lookup_name(name)
    if outcome == "written":
        log.info("check %s: made by a ping (auto_provision)", name)
    return check, outcome == "written"
