"""The check a path of Healthchecks' API names: by uuid (or a read-only key's unique_key) among
the checks served, or a stored check left out (it no longer fits the file), which its uuid still
names: not served, so its reads are a 409 that says why, never a 404 (a Terraform-style tool
takes a 404 for "deleted outside" and makes it again, refused: its name is still taken); its
update and delete act on it."""

from __future__ import annotations

import json

from aiohttp import web

from heartfly.core import hcshape
from heartfly.core.config import read_stored_check
from heartfly.core.patterns import UUID_RE
from heartfly.core.stored_checks import table_uuid
from heartfly.server.engine import Check
from heartfly.web import badges
from heartfly.web.runtime import RUNTIME

UUIDS = web.AppKey("hc_uuids", badges.CheckIndex)  # uuid -> check (create_app sets both)
UNIQUE_KEYS = web.AppKey("hc_unique_keys", badges.CheckIndex)  # a read-only key's unique_key -> check


class LeftOut(web.HTTPConflict):
    """A read, pause or resume of a stored check left out: `name` is its name."""

    def __init__(self, name: str) -> None:
        # (Not the file's path: a read-only key may ask too.)
        said = (
            f"check {name} is not served: it no longer fits the config file (the server's log says why);"
            " update it through this uuid so that it does (a 400 says what is wrong), or delete it"
        )
        super().__init__(text=json.dumps({"error": said}), content_type="application/json")
        self.name = name


def code(request: web.Request) -> str:
    """The check's uuid (or unique_key) in the path; `name` on the /api/v1/ paths Heartfly's API shares."""
    info = request.match_info
    return info["code"] if "code" in info else info["name"]


def find(request: web.Request, *, unique_key_too: bool = False) -> Check:
    """The check served under the path's uuid; LeftOut for a stored one left out, else a 404."""
    given = code(request)
    engine = request.app[RUNTIME].engine
    check: Check | None = None
    if UUID_RE.fullmatch(given):
        check = request.app[UUIDS].lookup(engine, given)
    elif unique_key_too and hcshape.UNIQUE_KEY_RE.fullmatch(given):
        check = request.app[UNIQUE_KEYS].lookup(engine, given)
    if check is None:
        if (name := left_out(request)) is not None:
            raise LeftOut(name)
        raise web.HTTPNotFound(text="not found")
    return check


def left_out(request: web.Request) -> str | None:
    """The name of the stored check the path's uuid names if it is left out (it no longer fits the
    file): not served, but the API's to update until it fits, or to delete, as the start's log says."""
    rt, given = request.app[RUNTIME], code(request)
    names = (n for n, c in rt.stored.items() if n not in rt.config.checks and table_uuid(n, c.table) == given)
    return next(names, None)


def left_out_match(request: web.Request, spec: hcshape.Spec) -> str | None:
    """The name of a stored check left out (it no longer fits the file) that a create's `unique`
    fields match, as hcshape.matches matches a served one."""
    if not spec.unique:
        return None
    rt = request.app[RUNTIME]
    for name, found in rt.stored.items():
        if name in rt.config.checks:
            continue
        cfg = read_stored_check(rt.config, name, found.table)
        if cfg is not None and hcshape.matches(cfg, found.title or name, spec):
            return name
    return None
