"""Client-made ping ids, remembered for a bounded time: a ping sent again is applied once.

A client that did not hear the answer to a ping (a timeout, a dropped connection) sends it again,
perhaps from its spool hours later. With an id of its own on each ping (`heartfly ping` and
`heartfly run` make one; `?ping_id=` for anyone else), the second copy is recognised: answered
like the first, stored and applied once, so fan-in counts and run pairing stay right.

An id is remembered as long as a ping with its time can still be accepted (`max_ping_age`), and at
most MAX_IDS of them (the oldest go first); a restart reads them back from the pings kept. An id
is its check's (`scoped`): two checks' pings that happen to carry the same id are two pings.
"""

from __future__ import annotations

import asyncio
import re

MAX_IDS = 200_000  # about 40 MB; a resend is hours late at most, a flood of new ids must not grow memory
PING_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{8,64}")  # a UUID, a ULID, 16 random hex bytes ...


def scoped(check_id: int, uid: str) -> str:
    """The key a check's ping id is remembered by. Clients make ids per ping, but curl users make
    their own (`$(hostname)-$(date +%s)`), and two jobs' pings must not be taken for one."""
    return f"{check_id}/{uid}"  # "/" is in no ping id (PING_ID_RE)


class PingIds:
    def __init__(self, keep_for: float, limit: int = MAX_IDS) -> None:
        self.keep_for = keep_for
        self.limit = limit
        # id -> (received at, the commit of its first copy while it is pending). Oldest first:
        # dicts keep insertion order and received times only grow.
        self._ids: dict[str, tuple[float, asyncio.Future[None] | None]] = {}

    def seen(self, uid: str) -> asyncio.Future[None] | bool:
        """False for a new id; for a known one, the first copy's commit if it is still pending,
        else True."""
        entry = self._ids.get(uid)
        if entry is None:
            return False
        return entry[1] if entry[1] is not None and not entry[1].done() else True

    def add(self, uid: str, received_at: float, commit: asyncio.Future[None] | None = None) -> None:
        self._ids[uid] = (received_at, commit)
        if len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def forget(self, uid: str) -> None:
        """Its ping was refused (503): a resend must be taken."""
        self._ids.pop(uid, None)

    def prune(self, now: float) -> None:
        """Forget ids older than keep_for."""
        cutoff = now - self.keep_for
        while self._ids:
            uid, (at, _) = next(iter(self._ids.items()))
            if at >= cutoff:
                break
            del self._ids[uid]


def with_first_copies(commit: asyncio.Future[None], firsts: list[asyncio.Future[None]]) -> asyncio.Future[None]:
    """The answer to a batch that writes nothing (every ping a copy), resolved only once the first
    copies of the pings it resent, still being committed, are too: its 200 says each is stored, and
    a first copy refused (503, its id forgotten) fails the batch, whose resend then takes it. A
    batch that writes needs none: its write, queued after those copies, is refused with them."""
    if not firsts:
        return commit

    async def all_of() -> None:
        await asyncio.gather(commit, *map(asyncio.shield, firsts))

    return asyncio.ensure_future(all_of())
