"""Everything stored about one ping, and its row in the pings table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

from heartfly.core.states import Event
from heartfly.store.sqlite import PingRow


class PingRecord(NamedTuple):
    event: Event
    received_at: float
    body: str = ""
    truncated: bool = False
    metrics: Mapping[str, float] | None = None
    method: str = "GET"
    source: str = ""
    user_agent: str = ""
    uid: str | None = None  # the client's own id for this ping (pingids)

    def row(self, ping_id: int, check_id: int) -> PingRow:
        ev = self.event
        return (
            ping_id,
            check_id,
            ev.at,
            self.received_at,
            ev.kind.value,
            ev.exit_status,
            ev.run_id,
            self.body,
            int(self.truncated),
            json.dumps(self.metrics) if self.metrics else None,
            self.method,
            self.source,
            self.user_agent,
            ev.member,
            self.uid,
        )
