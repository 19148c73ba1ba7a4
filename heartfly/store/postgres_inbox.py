"""The leader's side of the inbox (inbox.py): read the rows standbys committed, and hear of new
ones at once (LISTEN; each standby commit sends a NOTIFY). Two connections of its own: one
waits for notifications while the other reads."""

from __future__ import annotations

import contextlib
from collections.abc import Collection

import psycopg
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store.api import StoreError
from heartfly.store.inbox import CHANNEL
from heartfly.store.pgconn import one_line, usable

Connection = psycopg.AsyncConnection[TupleRow]
_READ = "SELECT id, check_name, body FROM inbox WHERE id <> ALL(%s::bigint[]) ORDER BY id LIMIT %s"


class InboxFeed:
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        self._listening: Connection | None = None
        self._reading: Connection | None = None

    async def read(self, limit: int = 1000, skip: Collection[int] = ()) -> list[tuple[int, str, str]]:
        """The oldest rows but those in `skip` (applied, their commit pending): (id, check, body),
        for inbox.read. The rows skipped are few: they are deleted by the next commit or two."""
        try:
            conn = self._reading = await usable(self._reading, self.database)
            cur = await conn.execute(_READ, (list(skip), limit))
            rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"the inbox in {self.database.shown}: {one_line(exc, self.database)}") from None
        return [(int(item_id), str(check_name), str(body)) for item_id, check_name, body in rows]

    async def wait(self, at_most: float) -> None:
        """Until a standby commits to the inbox, or `at_most` seconds (new rows may come unheard:
        while this node was connecting, say)."""
        try:
            if self._listening is None or self._listening.closed or self._listening.broken:
                self._listening = await usable(self._listening, self.database)
                await self._listening.execute(f"LISTEN {CHANNEL}")
            async for _ in self._listening.notifies(timeout=at_most, stop_after=1):
                pass
        except psycopg.Error as exc:
            raise StoreError(f"the inbox in {self.database.shown}: {one_line(exc, self.database)}") from None

    async def close(self) -> None:
        for conn in (self._listening, self._reading):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
