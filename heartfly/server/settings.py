"""Whether a standby's checks are set as the leader's, their names alike: a schedule, a grace or
channels edited in one node's file only, that node reloaded. Its dashboard, API and status
show its own settings (a due time a day off), the leader judges by its own, and nothing else shows
it. The leader stores a digest of its file's checks at each start of a term and each reload; a
standby compares its own with it as it rebuilds its view (drift.py says it).

The ping keys are left out of it (whether a check has a start or a fail key is not): they are
secrets, and a digest of them, unsalted and stored where whoever reads the database reads it, lets
a guessed key be tried against it (a key chosen by hand, a file of one check). A key edited in one
node's file only is not said: its pings answer 404 at the other nodes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import operator
from pathlib import Path

from heartfly import __version__
from heartfly.core.checkconfig import CheckConfig
from heartfly.core.config import Config
from heartfly.store import rows as store
from heartfly.store.api import Reader

META = "leader_checks_digest"
PART = 2000  # checks a turn of the event loop (100,000 checks take some 0.3 s in all)
# The last config, its file's checks (in its order), and their digest.
_made: list[tuple[Config, list[CheckConfig], str]] = []


async def digest(config: Config) -> str:
    """Of the file's checks (those made through the API are stored, one for every node), every
    setting but the ping keys, and the version (another's may read the same file into other
    settings): json of tuples of plain values, the same on every node given the same file. A config
    that only adds or changes checks made through the API has the file's same check objects: not
    hashed again, only compared, PART at a time too (each such change of the API's, on every node)."""
    if _made and _made[0][0] is config:  # a standby's view, rebuilt every second
        return _made[0][2]
    every = list(config.checks.values())
    ours: list[CheckConfig] = []
    for first in range(0, len(every), PART):
        ours += [check for check in every[first : first + PART] if check.origin == "file"]
        await asyncio.sleep(0)
    last = _made[0] if _made else None  # as it is now: another call may replace it while this one compares
    if last is not None and await _same(last[1], ours):
        _made[:] = [(config, ours, last[2])]
        return last[2]
    named = sorted(ours, key=_NAME)
    hashed = hashlib.sha256()
    for first in range(0, len(named), PART):
        hashed.update(json.dumps([_unkeyed(c) for c in named[first : first + PART]], separators=(",", ":")).encode())
        await asyncio.sleep(0)
    value = f"{__version__} {hashed.hexdigest()[:32]}"
    _made[:] = [(config, ours, value)]
    return value


async def _same(last: list[CheckConfig], ours: list[CheckConfig]) -> bool:
    """Whether the file's checks are the very objects they were (a reload reads new ones)."""
    if len(last) != len(ours):
        return False
    for first in range(0, len(ours), PART):
        if not all(map(operator.is_, last[first : first + PART], ours[first : first + PART])):
            return False
        await asyncio.sleep(0)
    return True


_NAME = operator.attrgetter("name")
_KEYS = ("key", "start_key", "fail_key")
_SETTINGS = operator.itemgetter(*(i for i, field in enumerate(CheckConfig._fields) if field not in _KEYS))


def _unkeyed(check: CheckConfig) -> tuple[object, ...]:
    """A check's settings but its ping keys (secrets): whether it has a start or a fail key stays."""
    return (*_SETTINGS(check), check.start_key is None, check.fail_key is None)


# The digest and the term of the lease it is written in (a leader's writes are fenced by its term):
# a standby compares only the one its leader stored (drift.of_leader).
_STORE = (
    "INSERT INTO meta (key, value) SELECT CAST(? AS TEXT), CAST(? AS TEXT) || ' ' || CAST(term AS TEXT)"
    " FROM lease WHERE id = 1 ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


async def statements(config: Config, view: bool) -> list[store.Statement]:
    """The leader's digest to store: a cluster's (PostgreSQL) leader's, not a standby's view's."""
    if view or isinstance(config.server.database, Path):
        return []
    return [(_STORE, (META, await digest(config)))]


async def differ(db: Reader, config: Config) -> int:
    """The term of the leader that stored a digest other than this node's, or 0: none stored, or
    another version's (not known). One stored by a leader since gone stays, for a leader of an older
    version stores none: the standby compares it only while the term it names leads (drift.of_leader)."""
    stored = (await db.read_meta_prefix(META)).get(META, "").split(" ")
    if len(stored) != 3 or stored[0] != __version__ or not stored[2].isdigit():
        return 0
    return int(stored[2]) if " ".join(stored[:2]) != await digest(config) else 0
