"""read_ping and batch_pings: what a ping's URL, query, key and body say happened (pure)."""

from __future__ import annotations

import pytest

from heartfly.core.pingparse import JSON_CAP, Details, Ping, PingError, Target, batch_pings, read_ping
from heartfly.core.states import Kind

NOW = 1_780_000_000.0
MAX_AGE = 86400.0
LIMIT = 10


def _plain(target: Target, body: bytes = b"", more: bool = False, forced: Kind | None = None) -> Ping:
    return read_ping(
        target, Details(at=NOW), forced, body, more, as_json=False, body_limit=LIMIT, now=NOW, max_age=MAX_AGE
    )


def _json(body: bytes, more: bool = False, forced: Kind | None = None, query: Details | None = None) -> Ping:
    target = Target(key="k", name=None, kind=Kind.SUCCESS)
    return read_ping(
        target, query or Details(at=NOW), forced, body, more, as_json=True, body_limit=LIMIT, now=NOW, max_age=MAX_AGE
    )


def test_a_plain_ping_reports_its_urls_event_with_its_body_as_the_message() -> None:
    ping = _plain(Target(key="k", name=None, kind=Kind.LOG), b"hello", more=True)
    assert ping.event.kind is Kind.LOG and ping.event.at == NOW
    assert (ping.message, ping.truncated) == ("hello", True)


def test_an_exit_status_in_the_url_is_the_events_exit_status() -> None:
    ping = _plain(Target(key="k", name=None, kind=Kind.FAIL, exit_status=3))
    assert (ping.event.kind, ping.event.exit_status) == (Kind.FAIL, 3)


def test_a_start_or_fail_key_forces_its_event_over_the_urls() -> None:
    assert _plain(Target(key="k", name=None, kind=Kind.SUCCESS), forced=Kind.START).event.kind is Kind.START


def test_a_plain_pings_body_is_decoded_with_replacement_not_refused() -> None:
    assert _plain(Target(key="k", name=None, kind=Kind.SUCCESS), b"ok\xff").message == "ok\ufffd"


def test_a_heartbeats_json_fields_say_the_event_and_the_message() -> None:
    ping = _json(b'{"exit_code": 2, "message": "disk full", "run_id": "r1", "ping_id": "abcdefgh"}')
    assert (ping.event.kind, ping.event.exit_status, ping.event.run_id) == (Kind.FAIL, 2, "r1")
    assert (ping.message, ping.truncated, ping.uid) == ("disk full", False, "abcdefgh")


def test_an_empty_heartbeat_body_is_a_success_with_no_message() -> None:
    ping = _json(b"")
    assert (ping.event.kind, ping.message, ping.truncated) == (Kind.SUCCESS, "", False)


def test_a_heartbeats_message_is_cut_at_a_character_within_the_body_limit() -> None:
    ping = _json('{"message": "aaaaaaaaa\u00e9\u00e9"}'.encode())
    assert (ping.message, ping.truncated) == ("aaaaaaaaa", True)


def test_a_malformed_heartbeat_body_is_a_ping_error_for_a_plain_key() -> None:
    with pytest.raises(PingError, match="invalid JSON"):
        _json(b"{not json")


def test_a_heartbeat_body_past_the_json_cap_is_a_ping_error_for_a_plain_key() -> None:
    with pytest.raises(PingError, match=f"limited to {JSON_CAP} bytes"):
        _json(b"{}", more=True)


def test_a_forced_key_records_its_event_with_a_malformed_body_as_the_message() -> None:
    query = Details(at=NOW - 5, run_id="from-query")
    ping = _json(b"{not json at all", forced=Kind.FAIL, query=query)
    assert (ping.event.kind, ping.event.at, ping.event.run_id) == (Kind.FAIL, NOW - 5, "from-query")
    assert (ping.message, ping.truncated) == ("{not json ", True)


def test_a_forced_key_records_its_event_when_the_body_passes_the_json_cap() -> None:
    ping = _json(b"[]", more=True, forced=Kind.START)
    assert (ping.event.kind, ping.message, ping.truncated) == (Kind.START, "[]", True)


def test_a_forced_key_overrides_a_json_status_but_keeps_its_fields() -> None:
    ping = _json(b'{"status": "success", "message": "m", "exit_code": 0}', forced=Kind.FAIL)
    assert (ping.event.kind, ping.event.exit_status, ping.message) == (Kind.FAIL, 0, "m")


def test_each_ping_of_a_batch_says_its_own_event_unless_the_key_forces_one() -> None:
    items = [Details(at=NOW, kind=Kind.START), Details(at=NOW, message="x" * 20), Details(at=NOW, exit_status=1)]
    own = batch_pings(items, None, LIMIT)
    assert [p.event.kind for p in own] == [Kind.START, Kind.SUCCESS, Kind.SUCCESS]
    assert (own[1].message, own[1].truncated, own[2].event.exit_status) == ("x" * LIMIT, True, 1)
    assert [p.event.kind for p in batch_pings(items, Kind.FAIL, LIMIT)] == [Kind.FAIL] * 3
