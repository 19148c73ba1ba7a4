"""The read side of a store, api.Reader: the functions of queries.py and outboxqueries.py over one connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from heartfly.core.config import CheckConfig
from heartfly.core.record import RecordRows
from heartfly.store import outboxqueries, queries
from heartfly.store.outboxqueries import OutboxItem
from heartfly.store.queries import CheckRow, CheckText, Db, LoggedPing, Recent, Table


class SqlReader:
    """The read side of a store (api.Reader) over one connection of its own: SQLite's, read-only,
    or PostgreSQL's (pgconn).

    Each method calls queries' function of the same name, looked up when called (a test may
    replace one there).
    """

    def __init__(self, db: Db) -> None:
        self.db = db

    async def close(self) -> None:
        await self.db.close()

    async def read_checks(self) -> list[CheckRow]:
        return await queries.read_checks(self.db)

    async def read_check_texts(self) -> list[CheckText]:
        return await queries.read_check_texts(self.db)

    async def read_check_ids(self, names: Sequence[str]) -> dict[str, int]:
        return await queries.read_check_ids(self.db, names)

    async def read_current_checks(self, configs: Mapping[str, CheckConfig]) -> list[CheckRow]:
        return await queries.read_current_checks(self.db, configs)

    def pings_after(self, ping_id: int) -> AsyncIterator[LoggedPing]:
        return queries.pings_after(self.db, ping_id)

    async def check_pings_after(self, check_id: int, ping_id: int) -> list[LoggedPing]:
        return await queries.check_pings_after(self.db, check_id, ping_id)

    async def read_ping_ids(self, since: float, limit: int) -> list[tuple[int, str, float]]:
        return await queries.read_ping_ids(self.db, since, limit)

    async def read_checkpoint(self) -> int:
        return await queries.read_checkpoint(self.db)

    async def read_last_alive(self) -> tuple[float | None, bool]:
        return await queries.read_last_alive(self.db)

    async def read_meta_prefix(self, prefix: str) -> dict[str, str]:
        return await queries.read_meta_prefix(self.db, prefix)

    async def max_id(self, table: Table) -> int:
        return await queries.max_id(self.db, table)

    async def count_pings(self, check_id: int | None = None) -> dict[int, int]:
        return await queries.count_pings(self.db, check_id)

    async def count_history_before(self, check_id: int, cut: float, limit: int) -> tuple[int, int]:
        return await queries.count_history_before(self.db, check_id, cut, limit)

    async def read_downtimes(self, limit: int = 20, before: int | None = None) -> list[dict[str, Any]]:
        return await queries.read_downtimes(self.db, limit, before)

    async def read_due_alerts(self, now: float, per_channel: int = 100) -> list[OutboxItem]:
        return await outboxqueries.read_due_alerts(self.db, now, per_channel)

    async def read_reminders_behind(
        self, check_id: int, channel: str, head_id: int, now: float, limit: int = 1000
    ) -> list[int]:
        return await outboxqueries.read_reminders_behind(self.db, check_id, channel, head_id, now, limit)

    async def read_alert_ahead(self, check_id: int, channel: str, outbox_id: int) -> str | None:
        return await outboxqueries.read_alert_ahead(self.db, check_id, channel, outbox_id)

    async def read_last_status(self, check_id: int) -> str | None:
        return await queries.read_last_status(self.db, check_id)

    async def next_alert_after(self, now: float) -> float | None:
        return await outboxqueries.next_alert_after(self.db, now)

    async def count_pending_alerts(self) -> int:
        return await outboxqueries.count_pending_alerts(self.db)

    async def count_given_up_alerts(self, since: float) -> dict[str, int]:
        return await outboxqueries.count_given_up_alerts(self.db, since)

    async def read_given_up_channels(self, channels: Sequence[str]) -> dict[str, float]:
        return await outboxqueries.read_given_up_channels(self.db, channels)

    async def read_ping(self, ping_id: int) -> dict[str, Any] | None:
        return await queries.read_ping(self.db, ping_id)

    async def read_pings_by_id(self, ping_ids: Collection[int]) -> dict[int, dict[str, Any]]:
        return await queries.read_pings_by_id(self.db, ping_ids)

    async def read_alerts(
        self, check_id: int | None, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        return await outboxqueries.read_alerts(self.db, check_id, limit, before)

    async def read_pings(
        self, check_id: int, limit: int = 100, before: int | None = None, shown: int | None = None
    ) -> list[dict[str, Any]]:
        return await queries.read_pings(self.db, check_id, limit, before, shown)

    async def read_flips(
        self, check_id: int, limit: int = 100, before: int | None = None, routine: bool = True
    ) -> list[dict[str, Any]]:
        return await queries.read_flips(self.db, check_id, limit, before, routine)

    async def read_hc_pings(self, check_id: int, limit: int) -> list[dict[str, Any]]:
        return await queries.read_hc_pings(self.db, check_id, limit)

    async def read_hc_flips(self, check_id: int, since: float, until: float, limit: int) -> list[dict[str, Any]]:
        return await queries.read_hc_flips(self.db, check_id, since, until, limit)

    async def read_runs(self, check_id: int, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        return await queries.read_runs(self.db, check_id, limit, before)

    async def read_end_pings(self, check_id: int, limit: int, metrics: bool = True) -> list[dict[str, Any]]:
        return await queries.read_end_pings(self.db, check_id, limit, metrics)

    async def read_misses(self, check_id: int, limit: int) -> list[dict[str, Any]]:
        return await queries.read_misses(self.db, check_id, limit)

    async def read_record(self, check_id: int, since: float) -> RecordRows:
        return await queries.read_record(self.db, check_id, since)

    async def read_recent(self, check_ids: list[int], runs: int, judged: Collection[int] = ()) -> dict[int, Recent]:
        return await queries.read_recent(self.db, check_ids, runs, judged)


SqliteReader = SqlReader  # the name sqlite.open_reader and older callers know
