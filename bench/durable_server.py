"""A minimal durable ping server, the floor under Heartfly's throughput: GET /ping/{key} answers
"OK" only once the ping is committed to SQLite, and nothing else happens.

Started by bench/ping_throughput.py; by hand: `.venv/bin/python bench/durable_server.py --db FILE
--keys FILE [--host H] [--port P]` (`--keys`: one key per line). It binds (port 0 = the OS picks
one), prints the port on stdout, and serves until SIGTERM/SIGINT.

What it does per ping is what durability needs and no more: one dict lookup of the key (404 if
unknown), one row tuple (the same 15 columns as Heartfly's pings table, index included) and one
future appended to the queue; a writer task hands everything queued to a thread of its own that
commits it in one transaction (WAL, synchronous = NORMAL, one multi-row INSERT), then resolves the
batch's futures. Same event loop, backlog and access-log setting as `heartfly serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from bare_server import bound, serve_app

SCHEMA = """
CREATE TABLE IF NOT EXISTS pings (
    id INTEGER PRIMARY KEY, check_id INTEGER NOT NULL, at REAL NOT NULL, received_at REAL NOT NULL,
    kind TEXT NOT NULL, exit_status INTEGER, run_id TEXT, body TEXT NOT NULL DEFAULT '',
    truncated INTEGER NOT NULL DEFAULT 0, metrics TEXT, method TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '', member TEXT, uid TEXT);
CREATE INDEX IF NOT EXISTS pings_by_check ON pings(check_id, id);
"""
COLUMNS = "(check_id, at, received_at, kind, exit_status, run_id, body, truncated, metrics, method, source,"
COLUMNS += " user_agent, member, uid)"
ROW = "(" + ",".join("?" * 14) + ")"
PER_INSERT = 2000  # SQLite's 32,766 parameters per statement, 14 a row


class Durable:
    def __init__(self, db: Path, keys: dict[str, int]) -> None:
        self.keys = keys
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)
        self.queue: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self.wake = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.thread = ThreadPoolExecutor(max_workers=1)

    def commit(self, rows: list[tuple[object, ...]]) -> None:  # in the writer thread
        self.conn.execute("BEGIN IMMEDIATE")
        for start in range(0, len(rows), PER_INSERT):
            chunk = rows[start : start + PER_INSERT]
            sql = f"INSERT INTO pings {COLUMNS} VALUES " + ",".join([ROW] * len(chunk))
            self.conn.execute(sql, [value for row in chunk for value in row])
        self.conn.execute("COMMIT")

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue, []
            if batch:
                await self.loop.run_in_executor(self.thread, self.commit, [row for row, _ in batch])
                for _, fut in batch:
                    fut.set_result(None)

    async def ping(self, request: web.Request) -> web.Response:
        check_id = self.keys.get(request.match_info["key"])
        if check_id is None:
            return web.Response(status=404, text="not found\n")
        now = time.time()
        row = (check_id, now, now, "success", None, None, "", 0, None, request.method, request.remote or "",
               request.headers.get("User-Agent", "")[:200], None, None)  # fmt: skip
        fut = self.loop.create_future()
        self.queue.append((row, fut))
        self.wake.set()
        await fut
        return web.Response(text="OK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): let the OS pick a free port")
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file (created)")
    parser.add_argument("--keys", type=Path, required=True, help="a file of ping keys, one a line")
    args = parser.parse_args()
    keys = {key: n for n, key in enumerate(args.keys.read_text().split(), start=1)}

    held: list[Durable] = []  # made in the running loop, once the app starts

    async def ping(request: web.Request) -> web.Response:
        return await held[0].ping(request)

    async def writer(app: web.Application) -> AsyncIterator[None]:
        durable = Durable(args.db, keys)
        held.append(durable)
        task = asyncio.create_task(durable.run())
        yield
        task.cancel()
        durable.thread.shutdown()
        durable.conn.close()

    app = web.Application()
    app.router.add_get("/ping/{key}", ping)
    app.cleanup_ctx.append(writer)
    serve_app(app, bound(args.host, args.port), "durable")


if __name__ == "__main__":
    main()
