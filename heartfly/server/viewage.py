"""How old a cluster standby's picture of the states is (server/cluster.py rebuilds it every second
or so). A lease read marks the standby alive, its rebuilds long or not; this says when the picture
itself has stopped being rebuilt (each rebuild fails, or one never ends): /readyz answers 503 and
the log says so once, for its dashboard, API and the checks its pings are taken for are that old.
"""

from __future__ import annotations

import logging
import time

from heartfly.core.units import human_duration

log = logging.getLogger(__name__)

# A picture older than this, and than STALE_SHARE times its last rebuild took, is stale: a big
# config's rebuild takes seconds and the next waits five times as long (cluster.VIEW_SHARE).
VIEW_STALE = 30.0
STALE_SHARE = 20.0


class ViewAge:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.built_at = time.monotonic()
        self.took = 0.0  # the last rebuild that came through
        self.why: str | None = None  # the last rebuild's error, since the last that came through
        self._said = False

    def built(self, took: float) -> None:
        if self._said:
            log.info("node %s rebuilds its picture of the states again", self.node_id)
        self.built_at, self.took, self.why, self._said = time.monotonic(), took, None, False

    def failed(self, why: str) -> None:
        """A rebuild failed: said at warning once the picture is stale (the next ones may come through)."""
        log.debug("the standby's view was not rebuilt: %s", why)
        self.why = why
        if (stale := self.stale()) is not None and not self._said:
            log.warning("node %s: %s", self.node_id, stale)
            self._said = True

    def stale(self) -> str | None:
        """Why the picture is too old to be served, or None."""
        age = time.monotonic() - self.built_at
        if age <= max(VIEW_STALE, STALE_SHARE * self.took):
            return None
        why = "" if self.why is None else f": {self.why}"
        return f"this standby's picture of the states has not been rebuilt for {human_duration(age)}{why}"
