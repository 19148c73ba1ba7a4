"""Which checks' stored states lack some of their pings, since when, and the checkpoint mark.

Pure bookkeeping for the engine's lazy state checkpoints (engine.CHECKPOINT_AFTER): time comes in
as an argument, and nothing here writes. The mark is the newest ping id that every stored state
includes; a restart replays the pings after it.
"""

from __future__ import annotations


class Unstored:
    def __init__(self) -> None:
        # check id -> (since, the first ping id its stored state lacks). Oldest first: dicts keep
        # insertion order, and an entry is only ever added anew, never moved.
        self._since: dict[int, tuple[float, int, int]] = {}  # ... and the entry's number (noted())
        self._noted = 0
        self._mark: int | None = None  # the mark last handed out
        # The first ping that some check's state, not read yet or not stored since, still has to
        # replay (a restart's, Loading.load): the mark stays below it until every such state is
        # read and queued. (Noted as they are read, those states break the order `new_mark` relies on.)
        self._held: int | None = None

    def __contains__(self, check_id: int) -> bool:
        return check_id in self._since

    def note(self, check_id: int, now: float, ping_id: int) -> None:
        """The check's state now includes ping `ping_id`, which its stored state lacks."""
        if check_id not in self._since:
            self._noted += 1
            self._since[check_id] = (now, ping_id, self._noted)

    def noted(self) -> int:
        """How many entries were ever noted: the number of the newest."""
        return self._noted

    def stored_up_to(self, noted: int) -> bool:
        """Whether every check noted up to the `noted`th entry has been queued for storing since."""
        oldest = next(iter(self._since.values()), None)
        return oldest is None or oldest[2] > noted

    def stored(self, check_id: int) -> None:
        """The check's state is queued for storing."""
        self._since.pop(check_id, None)

    def due(self, now: float | None, after: float) -> list[int]:
        """Checks whose first unstored ping is `after` seconds old at `now`; all of them for None."""
        due = []
        for check_id, (since, _, _) in self._since.items():
            # A `since` in the future means the wall clock stepped back: store it rather than wait.
            if now is not None and now - after < since <= now + 1.0:
                break
            due.append(check_id)
        return due

    def hold(self, ping_id: int | None) -> None:
        """Keep the mark below `ping_id` (None: no longer), whatever is queued meanwhile."""
        self._held = ping_id

    def new_mark(self, next_ping_id: int) -> int | None:
        """The mark, once the due states are queued; None if unchanged since last asked (an idle
        server does not commit it ten times a second)."""
        oldest = next(iter(self._since.values()), None)
        mark = next_ping_id - 1 if oldest is None else oldest[1] - 1
        if self._held is not None:
            mark = min(mark, self._held - 1)
        if mark == self._mark:
            return None
        self._mark = mark
        return mark
