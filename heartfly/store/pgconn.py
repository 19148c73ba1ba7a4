"""PostgreSQL through psycopg 3: connecting (errors that name the database without its password),
and the one place SQLite's SQL becomes PostgreSQL's.

rows.py and queries.py write SQLite's dialect. to_pg turns `?` into `%s` and `?N` into a named
`%(pN)s` (psycopg binds a repeated name once), after swapping in PostgreSQL's text for the few
statements that differ (PG_VARIANTS). PgConnection gives queries.py the two calls of aiosqlite's
it uses: execute and execute_fetchall.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store import outboxqueries, queries, rows
from heartfly.store.api import StoreError, StoreFault

# A read transaction sees one snapshot (SQLite's BEGIN does, in WAL mode); PostgreSQL's default
# would take a new one per statement, and read_current_checks would see a checkpoint newer than
# the states it read.
_RUNS_OF, _END_PINGS_OF, _MISSES_OF, _BARE_END_PINGS_OF = queries.recent_statements(
    "jsonb_array_elements_text(CAST(?1 AS jsonb)) AS c(value)", "CAST(c.value AS BIGINT)", lateral=True
)
PG_VARIANTS: dict[str, str] = {
    "BEGIN": "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    # A failed commit's flips and alerts are carried to the next; if it was done after all (its
    # answer lost, and that not learned in time: postgres.Writer), they are in already.
    rows.INSERT_FLIP: rows.INSERT_FLIP + " ON CONFLICT (id) DO NOTHING",
    rows.INSERT_OUTBOX: rows.INSERT_OUTBOX + " ON CONFLICT (id) DO NOTHING",
    queries._RUNS_OF: _RUNS_OF,
    queries._END_PINGS_OF: _END_PINGS_OF,
    queries._MISSES_OF: _MISSES_OF,
    queries._BARE_END_PINGS_OF: _BARE_END_PINGS_OF,
    outboxqueries._DUE_ALERTS: outboxqueries._DUE_ALERTS.replace("instr(", "strpos(").replace(  # the same arguments
        outboxqueries._LISTED_NEWER, outboxqueries._LISTED_NEWER_PG
    ),
    outboxqueries._SUMMARY_AHEAD: outboxqueries._SUMMARY_AHEAD.replace("instr(", "strpos("),
    outboxqueries._CHECK_ALERTS: outboxqueries._CHECK_ALERTS.replace("instr(", "strpos("),
    # octet_length: a body's size from its TOAST pointer, where length() would read it all to count characters.
    rows.PRUNE_PINGS: rows.PRUNE_PINGS.replace(rows.ALERTED_PINGS, rows.ALERTED_PINGS_PG).replace(
        " length(", " octet_length("
    ),
}

_NUMBERED = re.compile(r"\?(\d+)")
_CONNECT_TIMEOUT = 10  # seconds, for each address a URL names


@functools.lru_cache(maxsize=256)
def to_pg(sql: str) -> tuple[str, bool]:
    """(PostgreSQL's text, whether its parameters are numbered: see params)."""
    sql = PG_VARIANTS.get(sql, sql).replace("%", "%%")
    if _NUMBERED.search(sql):
        return _NUMBERED.sub(lambda m: f"%(p{m.group(1)})s", sql), True
    return sql.replace("?", "%s"), False


def params(numbered: bool, values: Iterable[Any] | None) -> Sequence[Any] | dict[str, Any]:
    values = tuple(values or ())
    return {f"p{i}": v for i, v in enumerate(values, 1)} if numbered else values


def one_line(exc: BaseException, database: PostgresDatabase) -> str:
    """A driver's message on one line, without the password should the server ever echo it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in (database.password, _url_password(database.url)):
        if secret:
            text = text.replace(secret, "***")
    return text


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    return unquote(password) if password else None


async def connect(
    database: PostgresDatabase, *, reader: bool = False, idle_limit: float | None = None, name: str = "heartfly"
) -> psycopg.AsyncConnection[TupleRow]:
    """A connection in autocommit (transactions are begun explicitly); StoreError if none can be had.
    The password comes from database_password_file if given, else from the URL or libpq's
    PGPASSWORD / PGPASSFILE. With `idle_limit` (seconds), PostgreSQL ends the session when a
    transaction sits idle that long: a frozen client's locks are then let go. `name`: the session's
    application_name, which pg_stat_activity shows."""
    extra: dict[str, Any] = {
        "application_name": name,
        "connect_timeout": _CONNECT_TIMEOUT,
        **_dead_peer_limits(database.url),
    }
    if database.password is not None:
        extra["password"] = database.password
    try:
        conn = await psycopg.AsyncConnection.connect(
            database.url,
            autocommit=True,
            # Reads bind client-side: a None compared with IS NULL needs no type PostgreSQL must guess.
            cursor_factory=psycopg.AsyncClientCursor if reader else psycopg.AsyncCursor,
            **extra,
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open database {database.shown}: {one_line(exc, database)}") from None
    # Session settings, not libpq's `options`, which would replace any the URL gives. Heartfly's
    # sessions stay open on purpose (keepalives find a dead peer): a server's idle_session_timeout
    # (PostgreSQL 14+) ended the one waiting for the inbox's notifications, an error each time.
    settings = {"idle_session_timeout": "0"} if conn.info.server_version >= 140000 else {}
    if idle_limit is not None:
        settings["idle_in_transaction_session_timeout"] = str(max(1, round(idle_limit * 1000)))
    try:
        for setting, value in settings.items():
            await conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    except psycopg.Error as exc:
        await conn.close()
        raise StoreError(f"cannot set up database {database.shown}: {one_line(exc, database)}") from None
    return conn


def not_answering(database: PostgresDatabase) -> str | None:
    """Why a server that failed the start may take Heartfly at a later start by itself, or None:
    no PostgreSQL answers at the URL's address (down, rebooting, the network not up yet), or it
    answers that it takes no connections now (starting up, shutting down, recovering): libpq's
    PQping, which tells these apart from a server that refused us (a wrong password, no such
    database) whatever the server's language. Or, for a URL with target_session_attrs, no server
    of that kind now (a failover under way: only standbys), which PQping counts as answering.
    Blocking: up to connect_timeout per attempt."""
    conninfo = make_conninfo(database.url, connect_timeout=_CONNECT_TIMEOUT)
    if psycopg.pq.PGconn.ping(conninfo.encode()) in (psycopg.pq.Ping.NO_RESPONSE, psycopg.pq.Ping.REJECT):
        return "no PostgreSQL answers there now"
    wanted = conninfo_to_dict(conninfo).get("target_session_attrs") or "any"
    if wanted == "any":
        return None
    password = {} if database.password is None else {"password": database.password}
    if _connects(make_conninfo(conninfo, **password)):  # it works now: what failed was not the kind of server
        return None
    if _connects(make_conninfo(conninfo, target_session_attrs="any", **password)):
        return f"no server there is {wanted} now (target_session_attrs)"
    return None


def _connects(conninfo: str) -> bool:
    conn = psycopg.pq.PGconn.connect(conninfo.encode())
    try:
        return conn.status == psycopg.pq.ConnStatus.OK
    finally:
        conn.finish()


# A server gone without a word (power lost, a failover's old primary, a NAT that forgot the
# connection) is noticed in about 20 s, not after the kernel's 15 min (data unacknowledged) or
# 2 h 11 min (an idle connection): a node waiting on it would hold the lease without leading, or a
# standby take pings it never answers. A URL's own settings of these win.
DEAD_PEER = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
    "tcp_user_timeout": 20_000,  # ms: sent data unacknowledged this long ends the connection
}


def _dead_peer_limits(url: str) -> dict[str, Any]:
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:  # the connection itself then says what is wrong with the URL
        return {}
    return {key: value for key, value in DEAD_PEER.items() if key not in given}


async def usable(
    conn: psycopg.AsyncConnection[TupleRow] | None,
    database: PostgresDatabase,
    *,
    idle_limit: float | None = None,
    name: str = "heartfly",
) -> psycopg.AsyncConnection[TupleRow]:
    """`conn` if it is still good, else a new connection (the server dropped the old one, or it
    was never made; made with connect's `idle_limit` and `name`); StoreError if none can be had."""
    if conn is not None and not conn.closed and not conn.broken:
        return conn
    if conn is not None:
        await conn.close()
    return await connect(database, idle_limit=idle_limit, name=name)


# Errors by which the server refused a statement itself (classes 42, 22, 23, 0A): a query's
# mistake, a right taken away. Not an outage that passes, as a lost connection or a restart is.
_REFUSED = (psycopg.ProgrammingError, psycopg.DataError, psycopg.IntegrityError, psycopg.NotSupportedError)


class PgConnection:
    """A reader's connection, speaking queries.py's SQLite dialect. It reconnects when the server
    dropped it (a restart, a failover), so a read after that works again."""

    def __init__(self, database: PostgresDatabase, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        self.database = database
        self._conn = conn

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> psycopg.AsyncCursor[TupleRow]:
        return await self._run(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] | None = None) -> list[TupleRow]:
        # A cursor that is not a named (server-side) one has all its rows once executed: no I/O here.
        return await (await self._run(sql, parameters)).fetchall()

    async def _run(self, sql: str, values: Iterable[Any] | None) -> psycopg.AsyncCursor[TupleRow]:
        text, numbered = to_pg(sql)
        fresh = self._conn.closed
        if fresh:
            self._conn = await connect(self.database, reader=True)
        # A connection the server cut (a restart) shows only when used. Outside a transaction
        # the statement can run again on a new connection; inside one, its snapshot is gone.
        outside = self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        try:
            try:
                return await self._conn.execute(text, params(numbered, values))
            except psycopg.OperationalError:
                if fresh or not outside or not self._conn.closed:
                    raise
            self._conn = await connect(self.database, reader=True)
            return await self._conn.execute(text, params(numbered, values))
        except psycopg.Error as exc:
            error = StoreFault if isinstance(exc, _REFUSED) else StoreError  # else an outage: try again
            raise error(f"cannot read database {self.database.shown}: {one_line(exc, self.database)}") from None

    async def close(self) -> None:
        await self._conn.close()
