"""A watched check as the engine holds it, and a removed one's remains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from heartfly.core.config import CheckConfig
from heartfly.core.states import CheckState


@dataclass(slots=True)
class Check:
    id: int
    config: CheckConfig
    state: CheckState
    ping_id: int = 0  # the newest ping applied to `state`
    seq: int = 0  # bumped on every push; heap entries with an older seq are stale
    heap_at: float | None = None  # when this check's live heap entry comes up
    unpruned: int = 0  # pings written since the last prune

    @property
    def name(self) -> str:
        return self.config.name


class Removed(NamedTuple):
    """A check no longer in the config: its row stays, and comes back if its name does."""

    id: int
    state: CheckState
    ping_id: int
    # Found removed at start: after a crash its stored state may lack its last pings (replay
    # needs a check's config, and it had none), so they are replayed if it comes back.
    stale: bool = False


Armed = Sequence[tuple[Check, CheckState, CheckState]]  # pipeline steps a ping armed: (step, before, after)
