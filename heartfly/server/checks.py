"""A watched check as the engine holds it, and a removed one's remains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from heartfly.core.config import CheckConfig
from heartfly.core.states import CheckState


class Check:
    """A watched check. Its state may come from a restart still undecoded (`Check.stored`): it is
    decoded, and made current, by its loader the first time anything reads it."""

    __slots__ = ("_ping_id", "_state", "_stored", "config", "heap_at", "id", "seq", "unpruned")

    def __init__(self, id: int, config: CheckConfig, state: CheckState, ping_id: int = 0) -> None:
        self.id = id
        self.config = config
        self._state: CheckState | None = state
        self._stored: tuple[str, Loader] | None = None
        self._ping_id = ping_id  # the newest ping applied to `state`
        self.seq = 0  # bumped on every push; heap entries with an older seq are stale
        self.heap_at: float | None = None  # when this check's live heap entry comes up
        self.unpruned = 0  # pings written since the last prune

    @classmethod
    def stored(cls, id: int, config: CheckConfig, text: str, ping_id: int, loader: Loader) -> Check:
        """A check whose state is the stored `text`, which `loader` turns into the state it is given."""
        check = cls.__new__(cls)
        check.id, check.config, check._state, check._stored = id, config, None, (text, loader)
        check._ping_id, check.seq, check.heap_at, check.unpruned = ping_id, 0, None, 0
        return check

    @property
    def state(self) -> CheckState:
        st = self._state
        if st is None:
            assert self._stored is not None
            text, loader = self._stored
            self._stored = None  # first: a loader that reads the state again must not recurse
            ping_id = self._ping_id  # a loader may replay pings, which move it
            try:
                st = self._state = loader(self, text)
            except BaseException:  # read again next time, not found half read
                self._state, self._stored, self._ping_id = None, (text, loader), ping_id
                raise
        return st

    @state.setter
    def state(self, value: CheckState) -> None:
        self._state, self._stored = value, None

    @property
    def ping_id(self) -> int:
        """The newest ping applied to `state`, which is read first: reading it may replay pings."""
        if self._state is None:
            self.state  # noqa: B018 - reading it loads it
        return self._ping_id

    @ping_id.setter
    def ping_id(self, value: int) -> None:
        self._ping_id = value

    @property
    def ping_id_as_read(self) -> int:
        """ping_id without reading a stored state first: the stored one's, until it is read."""
        return self._ping_id

    @property
    def loaded(self) -> bool:
        return self._state is not None

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"Check({self.id}, {self.name!r}, {self._state!r}, ping_id={self._ping_id})"


Loader = Callable[[Check, str], CheckState]


class Removed(NamedTuple):
    """A check no longer in the config: its row stays, and comes back if its name does."""

    id: int
    state: CheckState
    ping_id: int
    # Found removed at start: after a crash its stored state may lack its last pings (replay
    # needs a check's config, and it had none), so they are replayed if it comes back.
    stale: bool = False


ArmedStep = tuple[Check, CheckState, CheckState]  # a pipeline step a ping armed: (step, before, after)
Armed = Sequence[ArmedStep]
