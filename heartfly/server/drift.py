"""A standby's word on a config that differs from the leader's: one node reloaded after a change
and not the other. Nothing else shows it: pings for a check only the leader watches answer 404 at
the standby (and the leader alerts it down)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from heartfly.core.config_advice import named

if TYPE_CHECKING:  # not at run time: the PostgreSQL driver is an extra, and the engine imports this
    from heartfly.store.postgres_lease import Holding

log = logging.getLogger("heartfly.server.cluster")

TOLD_AFTER = 10.0  # said once the checks have differed this long: longer than a reload of every node takes
# The leader's checks this node lacks, its own the leader lacks, and whether the file's checks are
# set otherwise (settings.py; a view's: the term of the leader that stored the digest that differs,
# or 0): said only when the names agree, for it counts them too.
Drift = tuple[tuple[str, ...], tuple[str, ...], int]
NONE: Drift = ((), (), 0)


def of_leader(drift: Drift, holding: Holding | None) -> Drift:
    """A view's drift as a standby says it: none while no node leads (nobody writes the rows), and
    the file's checks set otherwise only by the digest the leader of the lease's term stored: one
    of an earlier term is a leader's since gone, and a leader of an older version stores none."""
    if holding is None or not holding.holder or holding.expires_in <= 0:
        return NONE
    theirs, ours, term = drift
    return theirs, ours, int(term != 0 and term == holding.term)


class DriftTeller:
    """Says once when the checks have differed for TOLD_AFTER, and again when they agree."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._drift: Drift = NONE  # as last seen
        self._since = 0.0  # by time.monotonic()
        self._told = False

    def see(self, drift: Drift) -> None:
        now = time.monotonic()
        if drift != self._drift:
            if self._told and drift == NONE:
                log.info("node %s: its config and the leader's agree again", self._node_id)
            self._drift, self._since, self._told = drift, now, False
            return
        if drift == NONE or self._told or now - self._since < TOLD_AFTER:
            return
        self._told = True
        theirs, ours, otherwise = drift
        parts = []
        if theirs:
            parts.append(f"the leader watches {named(theirs)}, which this node's config lacks (pings answer 404 here)")
        if ours:
            parts.append(f"this node's config has {named(ours)}, which the leader does not watch")
        if otherwise and not parts:
            parts.append(
                "the leader's file sets its checks otherwise (a schedule, a grace, channels, …), so"
                " this node's dashboard, API and status show settings the leader does not judge by"
            )
        log.warning("node %s's config differs from the leader's: %s; give every node the same file and reload each",
                    self._node_id, "; ".join(parts))  # fmt: skip
