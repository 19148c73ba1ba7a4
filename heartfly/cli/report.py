"""Text for the command line: check listings with URLs, status tables, a check's history."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, NamedTuple

from heartfly.core import localtime
from heartfly.core.config import CheckConfig, Config, ConfigError, with_stored_checks
from heartfly.core.dburl import Database
from heartfly.core.maintenance import Window
from heartfly.core.printable import escape
from heartfly.core.states import BACKDATED, initial_state
from heartfly.core.stored_checks import META_PREFIX, as_read, decode_all, to_toml
from heartfly.core.units import human_duration
from heartfly.core.urls import ping_urls
from heartfly.core.views import PAUSE_META, check_summary, iso
from heartfly.store import backend, sqlite
from heartfly.store.api import Reader, StoreError
from heartfly.store.rows import TOMBSTONE

GIVEN_UP_WITHIN = 86400.0  # seconds back that status counts the alerts given up


class Outbox(NamedTuple):
    """What status says of the alert outbox: the alerts waiting to be delivered, and per channel
    those given up (failed for good, or expired) in the last GIVEN_UP_WITHIN."""

    pending: int = 0
    given_up: dict[str, int] = {}  # noqa: RUF012 - a NamedTuple's default, never changed


# The server marks itself alive every second: a mark older than this, and it is not running (or
# cannot write), so the states read may be stale and it watches no check the file lacks.
STALE_AFTER = 10.0

# A ping's body in `heartfly history`: its first BODY_SHOWN characters. A body longer than
# BODY_READ is read as its first quarter (read_pings' `shown`), never whole: listing 20 bodies of
# a few MiB each read them all into memory and escaped them character by character (minutes).
BODY_SHOWN = 60
BODY_READ = 1024


def _local(ts: float, zone: str) -> str:
    """As every other surface writes a time (localtime.full): "...Z" in UTC, else with the zone's name."""
    return localtime.full(ts, localtime.zone(zone))


def describe_checks(config: Config, now: float) -> str:
    """check-config's listing; its times in display_timezone (a cron check's also in its own zone)."""
    shown = config.server.display_timezone
    lines = [f"{config.path}: OK, {len(config.checks)} check(s)"]
    for check in config.checks.values():
        due = initial_state(check, now).due_at
        lines.append("")
        grace = f", grace {human_duration(check.grace)}" if check.graced() else ""
        lines.append(f"{check.name}: {check.schedule_words()}{grace}")
        if check.description:
            lines.append(f"  {check.description}")
        lines += [f"  {rule}" for rule in rules(check)]
        if check.after is not None:
            lines.append(f"  a pipeline step: due only once {check.after}'s {check.after_trigger} arrives")
        else:
            zoned = check.cron is not None and check.timezone != shown
            own = f" ({_local(due, check.timezone)}, the check's zone)" if zoned else ""
            lines.append(f"  next due if watching starts now: {_local(due, shown)}{own}")
        for label, url in ping_urls(config, check):
            lines.append(f"  {label + ':':20} {url}")
    for window in config.maintenance:
        lines += ["", _window_words(config, window, now)]
    return "\n".join(lines)


def _window_words(config: Config, window: Window, now: float) -> str:
    """A maintenance window as check-config lists it: when, how long, what it covers, what it does."""
    shown = config.server.display_timezone
    when = (
        f'cron "{window.cron}" ({window.timezone})' if window.cron else f"once, at {_local(window.start or 0, shown)}"
    )
    covered = [c.name for c in config.checks.values() if window.covers(c)]
    scope = "every check" if not window.checks and not window.tags else ", ".join(covered) or "no check"
    alerts = "held for one summary at its end" if window.alerts == "hold" else "dropped"
    under_way = window.active(now)
    nxt = next(iter(window.starts_after(now)), None)
    if under_way is not None:
        state = f"under way until {_local(under_way[1], shown)}"
    else:
        state = "no occurrence left" if nxt is None else f"next from {_local(nxt, shown)}"
    return (f"maintenance {window.name}: {when}, {human_duration(window.duration)}; alerts {alerts}\n"
            f"  covers: {scope}\n  {state}")  # fmt: skip


def rules(check: CheckConfig) -> list[str]:
    """Every rule a check is judged by besides its schedule, one line each, in the config's words."""
    lines = []
    windows = {"max_runtime": check.max_runtime, "min_runtime": check.min_runtime, "stall": check.stall}
    limits = [f"{name} {human_duration(value)}" for name, value in windows.items() if value is not None]
    if limits:
        lines.append(", ".join(limits))
    if check.assertions:
        lines.append("assert " + ", ".join(f'"{a.text}"' for a in check.assertions))
    if check.expect is not None:
        members = (
            f" (members: {', '.join(check.members)}; a success naming none does not count)" if check.members else ""
        )
        lines.append(f"expect {check.expect} successes per run id{members}")
    if check.failures_before_alert > 1:
        lines.append(f"down after {check.failures_before_alert} failures in a row (failures_before_alert)")
    if check.resume_on_ping:
        lines.append("a start, success or failure ping ends a pause (resume_on_ping)")
    lines.append(_alerting(check))
    return lines


def _alerting(check: CheckConfig) -> str:
    if not check.channels:
        return "alerts: none (no channels)"
    reminders = f"reminders every {human_duration(check.repeat)} while down" if check.repeat else "no reminders"
    return f"alerts via {', '.join(check.channels)}; {reminders}"


@contextlib.asynccontextmanager
async def _reading(database: Database) -> AsyncIterator[Reader]:
    """The database, read and closed; StoreError if it cannot be opened, or if a read finds it
    damaged past what the open read (one line, not a traceback). A read that fails on a file of
    another schema version (older than what status reads: no such column) names that version;
    one failing otherwise (the disk's I/O error) says so, whatever the file's version."""
    db = await backend.open_existing_reader(database)
    try:
        yield db
    except sqlite.ReadError as exc:
        other = backend.other_schema(database) if sqlite.is_unknown_name(exc) else None
        raise StoreError(other or f"cannot read database {database}: {exc}") from None
    finally:
        await db.close()


async def read_status(
    config: Config, left_out: list[str] | None = None, gone: list[str] | None = None
) -> tuple[list[dict[str, Any]], float | None, dict[str, Any] | None, Outbox]:
    """Every configured check as the database has it; raises StoreError if there is none yet.
    `left_out` gets why each check made through the API is not served (see joined); `gone` the
    checks the server still watches (their rows not marked removed) that the file no longer has:
    none once it stopped (cleanly, or its alive mark is stale: a crash), as then nothing watches
    them and its next start drops them. Last, the alerts waiting to be delivered, and those given
    up: a dead channel's downs are not told, which the states alone do not show."""
    async with _reading(config.server.database) as db:
        config = await joined(db, config, left_out)
        stored = await db.read_meta_prefix(META_PREFIX)  # made through the API: `left_out` says theirs
        rows = {row.name: row for row in await db.read_current_checks(config.checks)}
        alive, stopped = await db.read_last_alive()
        downtimes = await db.read_downtimes(1)
        pauses = await db.read_meta_prefix(PAUSE_META)
        outbox = await _outbox(db)
    items = []
    for name, check in config.checks.items():
        row = rows.get(name)
        if row is None or row.removed_at is not None:
            # Added to the file after the server last loaded it, or put back after a reload took it
            # out (its row stays, marked removed): not watched, whatever state it was left in.
            continue
        item = check_summary(check, row.state)
        until = pauses.get(PAUSE_META + name)  # kept until the pause ends: shown only while paused
        item["paused_until"] = iso(float(until)) if until and item["state"] == "paused" else None
        items.append(item)
    if gone is not None and _running(alive, stopped):  # taken out of the file without a reload (or its reload refused)
        gone += [
            n
            for n, r in rows.items()
            if r.removed_at is None
            and n not in config.checks
            and META_PREFIX + n not in stored
            and not n.startswith(TOMBSTONE)  # a row a check deleted through the API left
        ]
    return items, alive, downtimes[0] if downtimes else None, outbox


async def read_pending(database: Database) -> Outbox:
    """The alerts waiting to be delivered and those given up (read_status' last): for the status of
    a file that does not load, whose checks the running server tells, and not this."""
    async with _reading(database) as db:
        return await _outbox(db)


async def _outbox(db: Reader) -> Outbox:
    return Outbox(await db.count_pending_alerts(), await db.count_given_up_alerts(time.time() - GIVEN_UP_WITHIN))


def _running(alive: float | None, stopped: bool) -> bool:
    """Whether a server runs on the database now, by its alive mark (read_last_alive): not after a
    clean stop, nor once the mark is older than STALE_AFTER (a crash, a hung server)."""
    return not stopped and alive is not None and time.time() - alive <= STALE_AFTER


async def _with_stored(db: Reader, config: Config) -> Config:
    """The file's config plus the checks kept in the database (made through the API), as the
    server serves them; ConfigError if they clash."""
    found, _ = decode_all(await db.read_meta_prefix(META_PREFIX))
    return with_stored_checks(config, {name: (c.origin, c.table) for name, c in found.items()})


async def joined(db: Reader, config: Config, left_out: list[str] | None = None) -> Config:
    """The checks as the server serves them: a stored check that does not fit the file is left out,
    as a start leaves it out (web/stored.load), not all of them. A name in both places (midway
    through moving a check into the file; a start refuses it, check-config says so) is the file's.
    `left_out` gets the problems of the stored checks left out: they are watched by nobody."""
    found, problems = decode_all(await db.read_meta_prefix(META_PREFIX))
    tables = {name: (c.origin, c.table) for name, c in found.items() if name not in config.checks}
    try:
        config = with_stored_checks(config, tables, left_out=problems)
    except ConfigError as exc:  # a stored check's own problem leaves it out: this is a last resort
        problems += exc.problems
    if left_out is not None:
        left_out.extend(problems)
    return config


async def stored_problems(config: Config) -> list[str]:
    """Why a reload would refuse this file beside the checks kept in the database (made through
    the API): a name in both places (which fails a start too), a stored check the file no longer
    fits (its channel removed). StoreError if the database cannot be read; none yet: no problem."""
    if isinstance(config.server.database, Path) and not backend.sqlite_file_exists(config.server.database):
        return []
    async with _reading(config.server.database) as db:
        try:
            await _with_stored(db, config)
        except ConfigError as exc:
            return exc.problems
    return []


async def read_exports(config: Config, names: list[str]) -> str:
    """The named checks kept in the database as [checks.NAME] tables to paste into the file or
    append to it (every one of them when no name is given); KeyError for a name that is not one of them."""
    async with _reading(config.server.database) as db:
        found, _ = decode_all(await db.read_meta_prefix(META_PREFIX))
    names = list(dict.fromkeys(names))  # a name given twice, printed twice, is a table the file cannot load
    for name in names:
        if name not in found:
            raise KeyError(name)
    # Each after a blank line: appended (`>>`) to a file an editor saved without a final newline,
    # a table's first line would otherwise join the file's last one.
    # As the server reads them (as_read): a max_runtime [defaults] lifts would not load in the file.
    return "".join(
        "\n" + to_toml(name, as_read(found[name].table, config.inherited), found[name].title)
        for name in (names or sorted(found))
    )


async def read_cluster(config: Config) -> str | None:
    """One line on a cluster's leader (PostgreSQL), or None (SQLite)."""
    lease = await backend.read_lease(config.server.database)
    if lease is None:
        return None
    holder, term, left = lease
    if not holder:
        return "cluster: no node has led yet"
    if left > 0:
        return f"cluster: {holder} leads (term {term}); its lease runs {left:.1f} s more unless renewed"
    if left == float("-inf"):
        return f"cluster: no node leads; {holder} stopped cleanly (term {term})"
    return f"cluster: no node leads; the lease of {holder} (term {term}) passed {human_duration(-left)} ago"


async def read_history(config: Config, name: str, limit: int, routine: bool = False, file_loads: bool = True) -> str:
    """A check's story from the database; raises KeyError for an unknown name. `routine`: also the
    up <-> running changes every healthy run makes. `file_loads`: False for the [server] table of a
    file that does not load (its checks' schedules unknown, not gone)."""
    async with _reading(config.server.database) as db:
        # Before the server's restart migrates the file (a package upgrade), or after a rollback:
        # the flips' and pings' columns differ. Status and export read what every version has.
        if other := backend.other_schema(config.server.database):
            raise StoreError(other)
        left_out: list[str] = []
        config = await joined(db, config, left_out)
        # The stored checks named `name` or longer ("a" and "a.b"): whose problems are whose.
        names = [key[len(META_PREFIX) :] for key in await db.read_meta_prefix(META_PREFIX + name)]
        row = next((r for r in await db.read_current_checks(config.checks) if r.name == name), None)
        if row is None:
            raise KeyError(name)
        flips = await db.read_flips(row.id, limit, routine=routine)
        alerts = await db.read_alerts(row.id, limit)
        ahead = await _waited_for(db, row.id, alerts)
        running = _running(*await db.read_last_alive())
        pings = await db.read_pings(row.id, limit, shown=BODY_READ)  # a long body: its start only
    cfg = config.checks.get(name)
    tz = localtime.zone(config.server.display_timezone)
    st = row.state
    lines = [
        f"{name}: {st.status.value}" + (f" ({st.reason.value})" if st.reason and st.status.value == "down" else "")
    ]
    why = _problems_of(name, left_out, names) if name in names else []
    if cfg is None and not file_loads:  # nor can a stored check be checked against its channels
        lines.append("  (its schedule is not shown: the config file does not load)")
    elif cfg is None and why:  # made through the API, its table still stored: left out, not gone
        lines.append(f"  (made through the API, not watched by the server: {'; '.join(why)})")
    elif cfg is None:
        lines.append("  (no longer in the config)")
    else:
        lines.append(f"  {cfg.schedule_words()}" + (f", grace {human_duration(cfg.grace)}" if cfg.graced() else ""))
    hidden = "" if routine else "; up <-> running left out, --all shows them"
    lines += ["", f"State changes (newest first{hidden}):"]
    lines += [f"  {_t(f['at'], tz)}  {f['old']} -> {f['new']}" + (f" ({f['reason']})" if f["reason"] else "")
              + (f": {f['detail']}" if f["detail"] else "") + _learned(f["at"], f["learned_at"], tz)
              for f in flips] or ["  none"]  # fmt: skip
    lines += ["", "Alerts (newest first):"]
    now = time.time()
    for alert in alerts:
        lines.append(f"  {_t(alert['created_at'], tz)}  {alert['event']} via {alert['channel']}: {alert['status']}"
                     f" after {alert['attempts']} attempt(s)  [{alert['key']}]")  # fmt: skip
        lines.append(format_attempts(alert["attempt_log"], indent="      ", tz=tz))
        if alert["status"] == "pending":
            lines.append(f"      {pending_reason(alert, tz, ahead.get(alert['id']), now, running)}")
    if not alerts:
        lines.append("  none")
    lines += ["", "Pings (newest first):"]  # by event time: a spooled ping sits where it happened
    for ping in pings:
        body = _body_start(ping)
        extra = f" exit {ping['exit_status']}" if ping["exit_status"] is not None else ""
        # Which run and which fan-in worker, as the check page's Run column shows them.
        extra += f" rid={escape(ping['run_id'])}" if ping["run_id"] else ""
        extra += f" member={escape(ping['member'])}" if ping["member"] else ""
        late = _learned(ping["at"], ping["received_at"], tz)
        lines.append(f"  {_t(ping['at'], tz)}  {ping['kind']}{extra}  {ping['source']}  {body}".rstrip() + late)
    if not pings:
        lines.append("  none")
    return "\n".join(lines)


def _body_start(ping: dict[str, Any]) -> str:
    """A ping's body as history lists it: its start on one line, cut at BODY_SHOWN characters ("…").
    The body is the job's (or anyone's with its key): escape sequences in it must not reach the
    operator's terminal (a title, a cleared screen, lines drawn over)."""
    text = escape(" ".join(str(ping["body"]).split()))
    return text if len(text) <= BODY_SHOWN and not ping["omitted"] else text[: BODY_SHOWN - 1] + "…"


def _problems_of(name: str, problems: list[str], names: list[str]) -> list[str]:
    """The problems of check `name` among those of the checks `names` ("checks.a.b.channels: ..."
    is check a.b's, not a's, when a.b is one of them)."""

    def of(problem: str, each: str) -> bool:
        return problem.startswith((f"checks.{each}.", f"checks.{each}:"))

    longer = [n for n in names if len(n) > len(name)]
    return [p for p in problems if of(p, name) and not any(of(p, n) for n in longer)]


async def _waited_for(db: Reader, check_id: int, alerts: list[dict[str, Any]]) -> dict[int, str]:
    """The key of the older pending alert each pending one waits for on its channel, by outbox id:
    the next one listed, else one older than the list (`--limit` leaves out the head of a long queue)."""
    found: dict[int, str] = {}
    for i, alert in enumerate(alerts):
        if alert["status"] != "pending":
            continue
        older = next(
            (a for a in alerts[i + 1 :] if a["status"] == "pending" and a["channel"] == alert["channel"]), None
        )
        if older is not None:
            found[alert["id"]] = older["key"]
        elif (key := await db.read_alert_ahead(check_id, alert["channel"], alert["id"])) is not None:
            found[alert["id"]] = key
    return found


def pending_reason(
    alert: dict[str, Any], tz: tzinfo = UTC, ahead: str | None = None, now: float | None = None, running: bool = True
) -> str:
    """Why an alert is not delivered yet: the older alert of its check it waits for on its channel
    (`ahead`, its key; its own next attempt, long passed, said nothing of that), else when it is
    tried next, and what went wrong last. One due by `now` is being tried, or waits for a slot of
    its channel (a storm's backlog): its next attempt, passed, said it was stuck. Unless the server
    is not `running`: then nothing tries it until it starts (it said "under way" of a stopped server)."""
    if ahead is not None and ahead.startswith("maintenance-"):
        return f"pending: waits for the maintenance summary {ahead} here, which lists this check and goes out first"
    if ahead is not None:
        return f"pending: waits for the older alert {ahead} here (a check's alerts go out in order)"
    if now is not None and alert["next_attempt_at"] <= now:
        since = f"due since {_t(alert['next_attempt_at'], tz)}"
        turn = (
            f"{since}: under way, or waiting its turn on channel {alert['channel']}"
            " ([alerts] concurrency attempts at a time, or a wait its receiver asked for)"
            if running
            else f"{since}, but the server is not running: tried once it starts"
        )
        return f"pending: {turn}" + (f"; last error: {alert['error'] or 'none recorded'}" if alert["attempts"] else "")
    when = f"next attempt {_t(alert['next_attempt_at'], tz)}"
    if not alert["attempts"]:
        return f"pending: not tried yet, {when}"
    return f"pending: {when}; last error: {alert['error'] or 'none recorded'}"


def _learned(at: float, learned: float | None, tz: tzinfo = UTC) -> str:
    """Where a change or ping was reported late (a spooled ping), when Heartfly heard of it."""
    return f"  (reported {_t(learned, tz)})" if learned is not None and learned - at > BACKDATED else ""


def format_attempts(attempts: list[dict[str, Any]], indent: str = "  ", tz: tzinfo = UTC) -> str:
    if not attempts:
        return f"{indent}no attempt yet"
    out = []
    for a in attempts:
        # The API's attempts (test-alert) say UTC ISO times; shown like the database's, in `tz`.
        at = _short(a["at"], tz) if isinstance(a["at"], str) else _t(a["at"], tz)
        error = f": {a['error']}" if a["error"] else ""
        outcome = "failed, will retry" if a["outcome"] == "retry" else a["outcome"]
        out.append(f"{indent}{at}  {outcome} ({human_duration(a['duration'])}){error}")
    return "\n".join(out)


def _t(ts: float | None, tz: tzinfo = UTC) -> str:
    return localtime.full(ts, tz, empty="-")


def format_status(
    items: list[dict[str, Any]],
    alive_at: float | None,
    now: float,
    downtime: dict[str, Any] | None = None,
    tz: tzinfo = UTC,
    cluster: bool = False,
    pending: int = 0,
    given_up: dict[str, int] | None = None,
) -> str:
    """`cluster`: the database is PostgreSQL, whose downtimes are the gaps between two leaders.
    `pending`: the alerts waiting to be delivered; `given_up`: per channel, those given up lately."""
    head = ("NAME", "STATE", "LAST PING", "DUE")
    rows = [
        (
            i["name"],
            i["state"] + (f" ({i['reason']})" if i["reason"] else "") + _until(i.get("paused_until"), tz),
            _short(i["last_ping_at"], tz),
            _short(i["due_at"] or _step_due(i), tz),
        )
        for i in items
    ]
    widths = [max(len(str(r[n])) for r in [head, *rows]) for n in range(4)]
    out = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    if pending:
        out.append(
            f"\n{pending} alert(s) waiting to be delivered (retried until sent or expired; `heartfly history NAME`"
            " shows a check's attempts and their errors)"
        )
    if given_up:  # failed for good at once (a revoked webhook: 404), none of them waits: said all the same
        channels = ", ".join(f"{count} via {channel}" for channel, count in given_up.items())
        out.append(
            f"\n{sum(given_up.values())} alert(s) given up in the last 24 h (failed or expired): {channels};"
            " `heartfly history NAME` shows why, and the server's log names each one's check"
        )
    if downtime is not None:
        out.append(_downtime_words(downtime, tz, cluster))
    if alive_at is not None and now - alive_at > STALE_AFTER:
        out.append(
            f"\nnote: the server last recorded itself alive {human_duration(now - alive_at)} ago;"
            " these states may be stale"
        )
    return "\n".join(out)


def _step_due(item: dict[str, Any]) -> str | None:
    """An armed pipeline step: when it must succeed; none while paused (nothing is due, and a resume
    drops what armed it) or down (as the dashboard shows it)."""
    return None if item["state"] in ("paused", "down") else item.get("step_due_at")


def _downtime_words(downtime: dict[str, Any], tz: tzinfo, cluster: bool) -> str:
    length = human_duration(downtime["started_at"] - downtime["stopped_at"])
    how = "a clean stop" if downtime["clean"] else "a crash or kill"
    span = f"from {_t(downtime['stopped_at'], tz)} to {_t(downtime['started_at'], tz)}"
    if downtime.get("suspended"):  # the machine slept while Heartfly ran: no stop to name
        # A cluster's row is its leader's, whose machine this one (heartfly status's) may not be.
        machine = "the leader's machine" if cluster else "this machine"
        return f"\n{machine} was last suspended for {length}, {span}; deadlines in that time were extended by it"
    if cluster:  # standbys may have taken pings all through it: only the rest extended deadlines
        # Not clean: no clean stop recorded, as when the leader lost its lease while PostgreSQL was out.
        how += " of the leader" + ("" if downtime["clean"] else ", or its lease lost: PostgreSQL unreachable, a pause")
        return (f"\nno node led for {length} ({how}), {span}; deadlines in it were extended"
                " only by the part in which the node taking over was not taking pings")  # fmt: skip
    return f"\nHeartfly was last not running for {length} ({how}), {span}; deadlines in that time were extended by it"


def _until(paused_until: str | None, tz: tzinfo = UTC) -> str:
    return "" if paused_until is None else f" until {_short(paused_until, tz)}"


def _short(iso_text: str | None, tz: tzinfo = UTC) -> str:
    """An API time ("2026-11-23T06:20:01Z") as people read it, in `tz`."""
    if iso_text is None:
        return "-"
    return localtime.api_time(iso_text, tz)
