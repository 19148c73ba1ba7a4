"""History past [server] keep_history (runs, flips, finished alerts, downtimes) is pruned like the
ping log is past keep_pings, on both stores, and a check's record still knows its status before
its window. A real engine on a real database; time is a FakeClock's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.record import LONGEST
from heartfly.core.states import Event, Kind
from heartfly.server import housekeeping
from heartfly.server.engine import Engine
from heartfly.store import backend, rows
from heartfly.store.groupcommit import GroupCommitter
from heartfly.store.pingrecord import PingRecord
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_restart import ping, running
from tests.webutil import until

pytestmark = pytest.mark.both_stores
DAY = 86400.0


async def test_runs_flips_finished_alerts_and_downtimes_older_than_keep_history_are_pruned_but_the_status_then_is_kept(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n',
        server='keep_history = "30d"',
    )
    clock = FakeClock()
    old = clock.now()
    async with running(config, clock) as engine:
        for _ in range(3):  # old runs of a, each an up -> running -> up
            await ping(engine, "a", Kind.START)
            clock.advance(60)
            await ping(engine, "a", Kind.SUCCESS)
            clock.advance(3600)
        await ping(engine, "a", Kind.FAIL)  # down since: the newest change that counts, long before the cut
        clock.advance(40 * DAY)
        await ping(engine, "b", Kind.START)  # recent history: kept
        clock.advance(60)
        await ping(engine, "b", Kind.SUCCESS)
        now = clock.now()
        await engine.writer.flush()
        statements = [
            "INSERT INTO outbox (id, key, check_id, channel, event, payload, created_at, expires_at, next_attempt_at,"
            " status, done_at) VALUES (?, ?, NULL, 'c', 'down', '{}', ?, ?, ?, ?, ?)",
        ]
        for outbox_id, status, at in ((1, "sent", old), (2, "pending", old), (3, "sent", now)):
            query(config, statements[0], (outbox_id, f"k{outbox_id}", at, at + 3600, at, status, at))
            query(config, "INSERT INTO alert_attempts (outbox_id, at, duration, outcome) VALUES (?, ?, 0, 'sent')",
                  (outbox_id, at))  # fmt: skip
        for at in (old, now):
            query(config, "INSERT INTO downtimes (stopped_at, started_at, clean) VALUES (?, ?, 1)", (at - 10, at))
        a, b = engine.checks["a"].id, engine.checks["b"].id
        assert query(config, "SELECT count(*) FROM runs WHERE check_id = ?", (a,)) == [(3,)]
        recent_flips = query(config, "SELECT id FROM flips WHERE check_id = ?", (b,))
        assert recent_flips

        await housekeeping.prune(engine)
        await engine.writer.flush()

    assert query(config, "SELECT check_id, count(*) FROM runs GROUP BY check_id") == [(b, 1)]
    assert query(config, "SELECT check_id, old, new FROM flips WHERE check_id = ? ORDER BY id", (a,)) == [
        (a, "up", "down")
    ]
    assert query(config, "SELECT id FROM flips WHERE check_id = ?", (b,)) == recent_flips
    assert query(config, "SELECT id FROM outbox ORDER BY id") == [(2,), (3,)]
    assert query(config, "SELECT outbox_id FROM alert_attempts ORDER BY outbox_id") == [(2,), (3,)]
    assert query(config, "SELECT started_at FROM downtimes") == [(now,)]
    reader = await backend.open_existing_reader(config.server.database)
    try:
        record = await reader.read_record(a, now - LONGEST)
    finally:
        await reader.close()
    assert record.before == "down"


async def test_a_run_that_ended_inside_the_longest_record_window_is_kept(write_config: ConfigWriter) -> None:
    # keep_history at its least, the record's longest window: a run begun before the cut and
    # ended after it still counts in that window (by its end), so it stays.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server='keep_history = "30d"')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await engine.writer.flush()
        a, now = engine.checks["a"].id, clock.now()
        query(
            config,
            "INSERT INTO runs (check_id, started_at, ended_at, outcome) VALUES (?, ?, ?, 'failed')",
            (a, now - LONGEST - 3600, now - LONGEST + 3600),
        )
        reader = await backend.open_existing_reader(config.server.database)
        try:
            before = len((await reader.read_record(a, now - LONGEST)).runs)
            await housekeeping.prune(engine)
            await engine.writer.flush()
            after = len((await reader.read_record(a, now - LONGEST)).runs)
        finally:
            await reader.close()
    assert (before, after) == (1, 1)


async def test_the_history_of_a_check_removed_from_the_config_is_pruned_past_keep_history_too(
    write_config: ConfigWriter,
) -> None:
    both = f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(both, server='keep_history = "30d"')
    clock = FakeClock()
    async with running(config, clock) as engine:
        for _ in range(2):
            await ping(engine, "a", Kind.START)
            clock.advance(60)
            await ping(engine, "a", Kind.SUCCESS)
            clock.advance(3600)
        a = engine.checks["a"].id
        only_b = "[checks.b]" + both.split("[checks.b]")[1]
        await engine.apply_config(write_config(only_b, server='keep_history = "30d"'))
        assert "a" not in engine.checks
        clock.advance(40 * DAY)
        await engine.writer.flush()
        assert query(config, "SELECT count(*) FROM runs WHERE check_id = ?", (a,)) == [(2,)]

        await housekeeping.prune(engine)
        await engine.writer.flush()

    assert query(config, "SELECT count(*) FROM runs WHERE check_id = ?", (a,)) == [(0,)]


async def test_a_checks_ping_log_is_trimmed_to_keep_pings_after_a_restart_even_if_few_pings_follow(
    write_config: ConfigWriter,
) -> None:
    # A restart forgets how many pings each check wrote since its last trim: a check with fewer than
    # keep_pings / 10 pings between restarts (a daily job, a weekly restart) grew its log for ever.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 20")
    clock = FakeClock()
    for _ in range(2):
        async with running(config, clock) as engine:
            for _ in range(8):  # fewer than the trim's threshold in each process
                await ping(engine, "a", Kind.LOG)
            engine.checkpoint()
            await housekeeping.prune(engine, housekeeping.History())
    async with running(config, clock) as engine:
        await housekeeping.prune(engine, housekeeping.History())
        await engine.writer.flush()
    assert query(config, "SELECT count(*) FROM pings") == [(16,)]  # within keep_pings: nothing to trim yet

    async with running(config, clock) as engine:
        for _ in range(8):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        await housekeeping.prune(engine, housekeeping.History())
        await engine.writer.flush()
    assert query(config, "SELECT count(*) FROM pings") == [(20,)]


async def test_lowering_keep_pings_by_a_reload_trims_the_log_of_a_check_that_no_longer_pings(
    write_config: ConfigWriter,
) -> None:
    body = f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(body, server="keep_pings = 100")
    clock = FakeClock()
    async with running(config, clock) as engine:
        history = housekeeping.History()
        for _ in range(50):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        await housekeeping.prune(engine, history)
        await engine.apply_config(write_config(body, server="keep_pings = 20"))
        await housekeeping.prune(engine, history)
        await engine.writer.flush()
    assert query(config, "SELECT count(*) FROM pings") == [(20,)]


async def test_the_trim_after_a_start_leaves_out_no_check_when_a_reload_removes_one_before_it_is_done(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trim after a start went by position in the list of checks, so many positions a round
    # from where the last stopped. A reload that removed a check meanwhile moved it to the list's
    # end and every check after it one place forward: the check at the next round's first place
    # had already been passed, and its log, past keep_pings, was never trimmed.
    monkeypatch.setattr(housekeeping, "HISTORY_CHECKS", 2)
    monkeypatch.setattr(housekeeping, "HISTORY_ROUNDS", 1000)  # slices of HISTORY_CHECKS
    body = "".join(f'[checks.{name}]\nkey = "{new_key()}"\nevery = "1h"\n' for name in "abcde")
    config = write_config(body, server="keep_pings = 20")
    clock = FakeClock()
    for _ in range(3):  # 24 pings each, fewer than the trim's threshold (10) in each process
        async with running(config, clock) as engine:
            for name in "abcde":
                for _ in range(8):
                    await ping(engine, name, Kind.LOG)
            engine.checkpoint()
    async with running(config, clock) as engine:
        ids = {name: engine.checks[name].id for name in "abcde"}
        history = housekeeping.History()
        await housekeeping.prune(engine, history)  # a and b
        without_a = "[checks.b]" + body.split("[checks.b]")[1]
        await engine.apply_config(write_config(without_a, server="keep_pings = 20"))
        assert "a" not in engine.checks
        for _ in range(3):
            await housekeeping.prune(engine, history)
        await engine.writer.flush()
    counts = dict(query(config, "SELECT check_id, count(*) FROM pings GROUP BY check_id"))
    assert {name: counts[check_id] for name, check_id in ids.items()} == {name: 20 for name in "abcde"}


async def test_the_last_ping_of_a_pending_alert_is_not_pruned_while_the_alert_waits(write_config: ConfigWriter) -> None:
    # An alert reads its check's last ping when it is sent: a channel that fails for a while, and a
    # check that goes on pinging past keep_pings meanwhile, had the ping trimmed from under it, and
    # the alert, once through, said "Last ping: no longer stored" of the failure it was about.
    body = f'[channels.journal]\ntype = "log"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
    config = write_config(body, server="keep_pings = 20")
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.FAIL)
        failed = engine.checks["a"].ping_id
        for _ in range(40):  # still down: no alert of its own
            clock.advance(1)
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        await housekeeping.prune(engine, housekeeping.History())
        await engine.writer.flush()
        [(payload,)] = query(config, "SELECT payload FROM outbox WHERE status = 'pending'")
        assert json.loads(payload)["last_ping_id"] == failed
        assert query(config, "SELECT id FROM pings WHERE id = ?", (failed,)) == [(failed,)]
        assert query(config, "SELECT count(*) FROM pings") == [(21,)]  # the others are trimmed as before

        query(config, "UPDATE outbox SET status = 'sent', done_at = ?", (clock.now(),))
        await housekeeping.prune(engine, housekeeping.History())
        await engine.writer.flush()
    assert query(config, "SELECT count(*) FROM pings WHERE id = ?", (failed,)) == [(0,)]  # sent: no longer held


async def pings_kept_at_each_commit(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pings stored before a running server's prune (with its reader) and after each commit of it."""
    config = engine.config
    await engine.writer.flush()
    kept = [query(config, "SELECT count(*) FROM pings")[0][0]]
    writer = engine.writer
    assert isinstance(writer, GroupCommitter)
    real = writer._commit_batch

    async def counted(writes: list[rows.Write]) -> None:
        await real(writes)
        kept.append(query(config, "SELECT count(*) FROM pings")[0][0])

    monkeypatch.setattr(writer, "_commit_batch", counted)
    reader = await backend.open_existing_reader(config.server.database)
    try:
        await housekeeping.prune(engine, housekeeping.History(), reader)
        await engine.writer.flush()
    finally:
        await reader.close()
    return kept


async def test_a_ping_log_far_past_keep_pings_is_trimmed_a_bounded_commit_at_a_time(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flood of pings (a job pinging in a loop), or keep_pings lowered, left a log far past
    # keep_pings: its trim was one commit that deleted all of it (300,000 pings: 3.8 s), and every
    # ping queued meanwhile waited for that commit. Both the trim of a running server and the
    # sweep after a start now go a bounded number of pings a commit, to the end.
    monkeypatch.setattr(rows, "PINGS_PER_TRIM", 50, raising=False)
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 20")
    clock = FakeClock()

    async def trimmed(engine: Engine, pings: int) -> list[int]:
        """The pings kept after each commit of a prune, once `pings` more were written."""
        for _ in range(pings):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        try:
            return await pings_kept_at_each_commit(engine, monkeypatch)
        finally:
            monkeypatch.undo()
            monkeypatch.setattr(rows, "PINGS_PER_TRIM", 50, raising=False)

    async with running(config, clock) as engine:  # a running server's trim
        kept = await trimmed(engine, 230)
    assert kept[0] == 230 and kept[-1] == 20
    assert max(before - after for before, after in itertools.pairwise(kept)) <= 50

    async with running(config, clock) as engine:  # 210 more, stopped before a trim; then a start
        for _ in range(210):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
    async with running(config, clock) as engine:
        kept = await trimmed(engine, 0)
    assert kept[0] == 230 and kept[-1] == 20
    assert max(before - after for before, after in itertools.pairwise(kept)) <= 50


async def test_a_long_prune_holds_up_none_of_the_housekeeping_rounds(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prune ran inside the housekeeping round, and a prune of many commits and counts (a log far
    # past keep_pings trimmed a bounded commit at a time, the sweep of many checks after a start)
    # held up everything else the round does for as long as it lasted: the alive mark aged past
    # status's 10 s (the server "not running", a crash's downtime counted from before the prune),
    # states went unstored, no maintenance window's end was told, and a database file moved away
    # went unnoticed while pings were acknowledged into it. A prune now runs beside the rounds.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 20")
    clock = FakeClock()
    async with running(config, clock) as engine:
        for _ in range(100):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        await engine.writer.flush()
        reader = await backend.open_existing_reader(config.server.database)
        counting, go_on = asyncio.Event(), asyncio.Event()
        count = reader.count_pings

        async def slow_count(check_id: int | None = None) -> dict[int, int]:  # a log of millions
            counting.set()
            await go_on.wait()
            return await count(check_id)

        monkeypatch.setattr(reader, "count_pings", slow_count)
        rounds = asyncio.create_task(housekeeping.run(engine, prune_every=60.0, reader=reader))
        try:
            await asyncio.sleep(0)  # its start: the next prune is due 60 s after it
            clock.advance(61.0)
            await asyncio.wait_for(counting.wait(), 10)  # the prune's sweep is under way
            clock.advance(30.0)
            now = clock.now()

            async def marked() -> bool:
                [(alive,)] = query(config, "SELECT value FROM meta WHERE key = ?", (rows.ALIVE_AT,))
                return float(alive) == now

            await until(marked)
            assert not rounds.done()
            go_on.set()

            async def trimmed() -> bool:  # and the prune goes on to its end
                return query(config, "SELECT count(*) FROM pings") == [(20,)]

            await until(trimmed)
        finally:
            go_on.set()
            rounds.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rounds
            await reader.close()


async def test_a_test_alert_after_every_finished_alert_was_pruned_and_a_restart_gets_a_key_never_used_before(
    write_config: ConfigWriter,
) -> None:
    # A test alert's key (its webhook's Idempotency-Key and body id) was its outbox id. Once every
    # finished alert was older than keep_history (a quiet month with keep_history = "30d") the
    # prune emptied the outbox, a restart numbered from 1 again, and the next test alert went out
    # as "test-1": a receiver that drops repeats, as docs/alerts.md says it can, dropped it. The
    # key holds its time too now (test-N-<ms>); an outbox id is still never handed out twice.
    body = f'[channels.hook]\ntype = "log"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(body, server='keep_history = "30d"')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await engine.send_test_alert("hook")[1]
        query(config, "UPDATE outbox SET status = 'sent', done_at = ?", (clock.now(),))
        clock.advance(40 * DAY)
        await housekeeping.prune(engine)
        await engine.writer.flush()
    async with running(config, clock) as engine:
        await engine.send_test_alert("hook")[1]
        await engine.writer.flush()
    keys = [key for (key,) in query(config, "SELECT key FROM outbox ORDER BY id")]
    assert keys[-1].startswith("test-2-"), keys


async def test_a_checks_history_far_past_keep_history_is_pruned_whole_at_its_turn_not_a_batch_an_hour(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With more checks than a round takes (HISTORY_CHECKS), a check's turn comes once an hour
    # (HISTORY_ROUNDS) and deleted at most a batch (1000) of its runs and of its flips: a check that
    # starts and ends a run more often than every 3.6 s among 100k checks grew its history for ever,
    # and keep_history lowered from "400d" to "30d" left a minutely job's year in for 44 days.
    monkeypatch.setattr(housekeeping, "HISTORY_CHECKS", 1)  # a check a round: two rounds see both
    body = f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(body, server='keep_history = "30d"')
    clock = FakeClock()
    many = 2 * rows.HISTORY_BATCH + 500
    async with running(config, clock) as engine:
        await engine.writer.flush()
        a, old = engine.checks["a"].id, clock.now() - 40 * DAY
        numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {many})"
        query(config, f"{numbers} INSERT INTO runs (check_id, started_at, ended_at, outcome)"
                      " SELECT ?, ? + i, ? + i + 0.5, 'success' FROM n", (a, old, old))  # fmt: skip
        query(config, f"{numbers} INSERT INTO flips (id, check_id, at, old, new, detail)"
                      " SELECT 1000000 + i, ?, ? + i, 'up', 'running', '' FROM n", (a, old))  # fmt: skip
        reader = await backend.open_existing_reader(config.server.database)
        try:
            history = housekeeping.History()
            for _ in range(2):
                await housekeeping.prune(engine, history, reader)
            await engine.writer.flush()
        finally:
            await reader.close()
    assert query(config, "SELECT count(*) FROM runs WHERE check_id = ?", (a,)) == [(0,)]
    # The newest flip of all stays (flip ids only grow), here the last of these.
    flips = "SELECT id FROM flips WHERE check_id = ? AND at < ?"
    assert query(config, flips, (a, old + many + 1)) == [(1000000 + many,)]


async def test_a_trim_of_long_bodies_deletes_few_enough_of_them_a_commit_that_pings_wait_for_none_long(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trim went 2,000 pings a commit whatever their bodies: bodies at the default body_limit
    # (100 KB, a `heartfly run`'s output) made that commit read 200 MB of overflow pages, 6 s
    # measured, with every ping queued behind it and readiness failing at 5 s. A commit now
    # deletes about TRIM_BYTES of bodies at most, by body_limit.
    monkeypatch.setattr(rows, "TRIM_BYTES", 100_000)
    server = 'keep_pings = 20\nbody_limit = "10KB"'
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server=server)
    clock = FakeClock()
    async with running(config, clock) as engine:
        check = engine.checks["a"]
        for _ in range(120):
            await engine.record(check, PingRecord(Event(Kind.LOG, clock.now()), clock.now(), body="x" * 10_000))
        engine.checkpoint()
        await engine.writer.flush()
        kept = [query(config, "SELECT count(*) FROM pings")[0][0]]
        writer = engine.writer
        assert isinstance(writer, GroupCommitter)
        real = writer._commit_batch

        async def counted(writes: list[rows.Write]) -> None:
            await real(writes)
            kept.append(query(config, "SELECT count(*) FROM pings")[0][0])

        monkeypatch.setattr(writer, "_commit_batch", counted)
        reader = await backend.open_existing_reader(config.server.database)  # as a server's prune has
        try:
            await housekeeping.prune(engine, housekeeping.History(), reader)
            await engine.writer.flush()
        finally:
            await reader.close()
    assert kept[0] == 120 and kept[-1] == 20
    assert max(before - after for before, after in itertools.pairwise(kept)) <= 10


async def test_a_down_after_every_flip_but_the_newest_counted_was_pruned_and_a_restart_gets_a_flip_id_never_used_before(
    write_config: ConfigWriter,
) -> None:
    # A down's alert key (its webhook's Idempotency-Key) was its flip's id ("flip-N"; its time is
    # in it too now, "flip-N-<ms>", but a flip id is still never handed out twice), and a start
    # numbers flips on from the highest stored. The prune kept a check's newest counted flip (into
    # or out of down) but not a newer one that counts for no record: a step's down told on its own
    # (down to down) was pruned, and after a restart its id, and its alert's key, came again.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server='keep_history = "30d"')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await engine.writer.flush()
        a, at = engine.checks["a"].id, clock.now()
        for flip_id, old, new in ((1000, "up", "down"), (1001, "down", "down")):
            query(config, "INSERT INTO flips (id, check_id, at, old, new, detail) VALUES (?, ?, ?, ?, ?, '')",
                  (flip_id, a, at + flip_id - 1000, old, new))  # fmt: skip
        clock.advance(40 * DAY)
        await housekeeping.prune(engine)
        await engine.writer.flush()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.START)
        await engine.writer.flush()
    assert query(config, "SELECT max(id) FROM flips") == [(1002,)]


@pytest.mark.parametrize("body_limit", ["1KB", "16MiB"])
async def test_a_trim_goes_by_the_bodies_it_deletes_not_by_body_limit(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, body_limit: str
) -> None:
    # A trim's commit was sized by body_limit alone (TRIM_BYTES // body_limit pings): at 16 MiB a
    # ping a commit whatever its body (a flood of a million empty pings: a million commits), and
    # bodies stored before a reload lowered body_limit were taken for short (long ones at 1 KB:
    # 4,096 of them a commit, the 6 s commit again). A commit now adds the bodies it deletes.
    monkeypatch.setattr(rows, "TRIM_BYTES", 100_000)
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server=f'keep_pings = 20\nbody_limit = "{body_limit}"'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        check = engine.checks["a"]
        for body in ["x" * 10_000] * 60 + [""] * 60:  # long bodies, then none
            await engine.record(check, PingRecord(Event(Kind.LOG, clock.now()), clock.now(), body=body))
        engine.checkpoint()
        kept = await pings_kept_at_each_commit(engine, monkeypatch)
    deleted = [before - after for before, after in itertools.pairwise(kept) if before != after]
    assert deleted == [10] * 6 + [40], deleted  # 100 KB of long bodies a commit; the empty ones at once


async def test_a_round_deletes_a_bounded_number_of_history_batches_beyond_each_checks_first(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check's history far past keep_history is deleted at its turn, up to HISTORY_TURN batches:
    # keep_history lowered on 100k checks with a year of runs each made every round (1,667
    # checks) some 170,000 commits, hours in which the busy checks' logs went untrimmed. A round
    # now takes at most HISTORY_ROUND batches beyond each check's first; the rest waits its turn.
    monkeypatch.setattr(housekeeping, "HISTORY_ROUND", 2)
    body = f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(body, server='keep_history = "30d"')
    clock = FakeClock()
    many = 2 * rows.HISTORY_BATCH + 500
    async with running(config, clock) as engine:
        await engine.writer.flush()
        old = clock.now() - 40 * DAY
        numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {many})"
        for check in engine.checks.values():
            query(config, f"{numbers} INSERT INTO runs (check_id, started_at, ended_at, outcome)"
                          " SELECT ?, ? + i, ? + i + 0.5, 'success' FROM n", (check.id, old, old))  # fmt: skip
        reader = await backend.open_existing_reader(config.server.database)
        try:
            history = housekeeping.History()
            await housekeeping.prune(
                engine, history, reader
            )  # both checks' turn: a's first batch and 2 more, b's first
            await engine.writer.flush()
            left = query(config, "SELECT check_id, count(*) FROM runs GROUP BY check_id ORDER BY check_id")
            assert left == [(engine.checks["b"].id, many - rows.HISTORY_BATCH)], left
            await housekeeping.prune(engine, history, reader)  # the next turn: b's rest
            await engine.writer.flush()
        finally:
            await reader.close()
    assert query(config, "SELECT count(*) FROM runs") == [(0,)]
