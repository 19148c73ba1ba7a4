"""The store's surface, as the engine, the web app, the dispatcher and the command line use it.

Two protocols a backend implements: `Reader` (queries, over a connection of its own) and
`WriteQueue` (the one writer: rows queued as `rows.Write` and committed together). The SQLite
backend is reader.SqliteReader and sqlite.Writer; callers type against these protocols, so a
second backend (PostgreSQL) fits in without them knowing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from heartfly.core.config import CheckConfig
from heartfly.core.record import RecordRows
from heartfly.store.outboxqueries import OutboxItem
from heartfly.store.queries import CheckRow, CheckText, LoggedPing, Recent, Table
from heartfly.store.rows import Write

# Entered around the migration steps a database lacks, when it lacks any: a step (an index built
# over every ping) can take minutes on a large database. `heartfly serve` sets it (daemon.serve)
# to ask systemd for more start time meanwhile; on SQLite it is entered on the writer's thread.
migrating: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext


class StoreError(Exception):
    """The database cannot be opened or used; the message says which (file, or URL without its
    password) and why."""


class StoreFault(StoreError):
    """A StoreError the database answered: it refused the statement itself (a query's mistake, a
    right taken away, a value it cannot take). Not an outage: trying again will not help."""


class DiskFull(StoreError):
    """A StoreError because the disk (or the user's quota) is full: space can come back."""


class Locked(StoreError):
    """A StoreError because another program holds the database's lock (a `sqlite3` shell left in a
    transaction) past the wait for it: it lets go."""


class Reader(Protocol):
    async def close(self) -> None: ...

    # ---- start-up and `heartfly status` ----
    async def read_checks(self) -> list[CheckRow]: ...
    async def read_check_texts(self) -> list[CheckText]: ...
    async def read_check_ids(self, names: Sequence[str]) -> dict[str, int]: ...
    async def read_current_checks(self, configs: Mapping[str, CheckConfig]) -> list[CheckRow]: ...
    def pings_after(self, ping_id: int) -> AsyncIterator[LoggedPing]: ...
    async def check_pings_after(self, check_id: int, ping_id: int) -> list[LoggedPing]: ...
    async def read_ping_ids(self, since: float, limit: int) -> list[tuple[int, str, float]]: ...
    async def read_checkpoint(self) -> int: ...
    async def read_last_alive(self) -> tuple[float | None, bool]: ...
    async def read_meta_prefix(self, prefix: str) -> dict[str, str]: ...
    async def max_id(self, table: Table) -> int: ...
    async def count_pings(self, check_id: int | None = None) -> dict[int, int]: ...
    async def count_history_before(self, check_id: int, cut: float, limit: int) -> tuple[int, int]: ...
    async def read_downtimes(self, limit: int = 20, before: int | None = None) -> list[dict[str, Any]]: ...

    # ---- the alert outbox ----
    async def read_due_alerts(self, now: float, per_channel: int = 100) -> list[OutboxItem]: ...
    async def read_reminders_behind(
        self, check_id: int, channel: str, head_id: int, now: float, limit: int = 1000
    ) -> list[int]: ...
    async def read_alert_ahead(self, check_id: int, channel: str, outbox_id: int) -> str | None: ...
    async def read_last_status(self, check_id: int) -> str | None: ...
    async def next_alert_after(self, now: float) -> float | None: ...
    async def count_pending_alerts(self) -> int: ...
    async def count_given_up_alerts(self, since: float) -> dict[str, int]: ...
    async def read_given_up_channels(self, channels: Sequence[str]) -> dict[str, float]: ...
    async def read_ping(self, ping_id: int) -> dict[str, Any] | None: ...
    async def read_pings_by_id(self, ping_ids: Collection[int]) -> dict[int, dict[str, Any]]:
        """read_ping's for several pings at once, by id; those no longer stored are not in it."""
        ...

    # ---- a check's history, newest first (`before` an id cursor) ----
    async def read_alerts(
        self, check_id: int | None, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def read_pings(
        self, check_id: int, limit: int = 100, before: int | None = None, shown: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def read_flips(
        self, check_id: int, limit: int = 100, before: int | None = None, routine: bool = True
    ) -> list[dict[str, Any]]:
        """`routine` False: without the up <-> running changes every healthy run makes."""
        ...

    async def read_hc_pings(self, check_id: int, limit: int) -> list[dict[str, Any]]:
        """Healthchecks' ping list, newest first: each ping's fields and has_body, not its body."""
        ...

    async def read_hc_flips(self, check_id: int, since: float, until: float, limit: int) -> list[dict[str, Any]]:
        """The changes Healthchecks has a flip for, in [since, until), newest first (at, new)."""
        ...

    async def read_runs(self, check_id: int, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]: ...
    async def read_end_pings(self, check_id: int, limit: int, metrics: bool = True) -> list[dict[str, Any]]: ...
    async def read_misses(self, check_id: int, limit: int) -> list[dict[str, Any]]: ...
    async def read_record(self, check_id: int, since: float) -> RecordRows: ...
    async def read_recent(self, check_ids: list[int], runs: int, judged: Collection[int] = ()) -> dict[int, Recent]:
        """The dashboard index's rows at once: each check's newest runs, end pings and missed
        deadlines; the end pings' metrics only for the `judged` checks' (those with assertions)."""
        ...


class WriteQueue(Protocol):
    """The writer as the engine, the web app and the dispatcher queue rows on it."""

    @property
    def failing(self) -> bool:
        """Pings are refused (503): a commit failed, or the database is lost."""
        ...

    @property
    def lost(self) -> str | None:
        """What happened to the database, if it is not the one open (readiness says it)."""
        ...

    def stuck(self) -> float | None:
        """Seconds the commit under way has waited for the database, past a few; else None."""
        ...

    @property
    def commits(self) -> int:
        """How many batches were committed (the benches and tests count them)."""
        ...

    def watch_file(self) -> None:
        """Look again whether the database is still the one open (housekeeping, every round)."""
        ...

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue rows; the future resolves when they are committed (or fails with StoreError)."""
        ...

    def submit_nowait(self, write: Write) -> None:
        """Queue rows nobody waits for; retried until they commit."""
        ...

    def refused(self) -> asyncio.Future[None]:
        """An already failed future: a ping's answer while writes fail."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        ...


class OwnWriter(WriteQueue, Protocol):
    """The writer as its owner (the web app, tests) holds it: started once, closed once."""

    def start(self) -> None: ...

    async def close(self) -> None:
        """Commit what is queued, stop, and close the connection."""
        ...
