"""Everything stored about one ping (its row: rows.ping_row)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from heartfly.core.states import Event


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
