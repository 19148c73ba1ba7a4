"""read_ping and batch_pings: what a ping's URL, query, key and body say happened (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartfly.client.transport import Ping as ClientPing
from heartfly.core.config_reader import Reader
from heartfly.core.pingparse import (
    FIELDS,
    JSON_CAP,
    Details,
    Ping,
    PingError,
    Target,
    batch_pings,
    parse_batch,
    parse_event,
    parse_fields,
    parse_path,
    parse_query,
    read_ping,
)
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


def test_a_nul_byte_in_a_body_or_a_json_message_is_stored_as_a_replacement_character() -> None:
    # PostgreSQL text cannot hold NUL: one rule for every store, so no ping is kept by one and refused by another.
    plain = Target(key="k", name=None, kind=Kind.SUCCESS)
    assert _plain(plain, b"a\x00b").message == "a\ufffdb"
    assert _plain(plain, b"a\x00b", forced=Kind.FAIL).message == "a\ufffdb"
    assert _json(b'{"message": "a\\u0000b"}').message == "a\ufffdb"


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


def test_an_unknown_heartbeat_field_is_refused_with_the_closest_known_one() -> None:
    with pytest.raises(
        PingError, match=r'^unknown field "statsu" \(did you mean "status"\?\): a heartbeat has status,'
    ):
        _json(b'{"statsu": "start"}')


def test_an_unknown_field_far_from_any_known_one_is_refused_without_a_guess() -> None:
    with pytest.raises(PingError) as caught:
        _json(b'{"zzzzzz": 1}')
    assert str(caught.value).startswith('unknown field "zzzzzz": a heartbeat has') and "did you mean" not in str(
        caught.value
    )


def test_the_heartbeat_and_the_config_word_a_typo_alike() -> None:
    reader = Reader(base_dir=Path("."))
    reader.known({"statsu": 1}, "checks.x", set(FIELDS))
    with pytest.raises(PingError) as caught:
        _json(b'{"statsu": 1}')
    assert reader.problems == ['checks.x.statsu: unknown key (did you mean "status"?)']
    assert ' (did you mean "status"?)' in str(caught.value)


def test_each_ping_of_a_batch_with_an_unknown_field_gets_its_own_error() -> None:
    body = b'{"pings": [{"status": "start"}, {"run_idd": "r1"}, {"mesage": "x"}]}'
    first, second, third = parse_batch(body, NOW, MAX_AGE)
    assert isinstance(first, Details) and first.kind is Kind.START
    assert isinstance(second, PingError) and '"run_idd" (did you mean "run_id"?)' in str(second)
    assert isinstance(third, PingError) and '"mesage" (did you mean "message"?)' in str(third)


def test_an_empty_json_run_id_is_refused_alone_and_in_a_batch() -> None:
    with pytest.raises(PingError, match=r"^run_id must be 1 to 128"):
        _json(b'{"run_id": ""}')
    (item,) = parse_batch(b'{"pings": [{"run_id": ""}]}', NOW, MAX_AGE)
    assert isinstance(item, PingError) and str(item).startswith("run_id must be 1 to 128")


def test_an_empty_rid_in_the_query_is_refused() -> None:
    with pytest.raises(PingError, match=r"^rid must be 1 to 128"):
        parse_query({"rid": ""}, NOW, MAX_AGE)


def test_a_null_run_id_is_still_absent_like_every_optional_field() -> None:
    assert _json(b'{"run_id": null, "ts": null, "ping_id": null}').event.run_id is None


def test_the_clients_batch_item_sends_only_fields_the_server_takes() -> None:
    full = ClientPing("http://h/ping/k", "3", b"tail", run_id="r1", metrics={"rows": 2.0}, at=NOW - 10)
    for ping in (full, ClientPing("http://h/ping/k", "start", at=NOW - 10, uid=None)):
        item = ping.batch_item()
        assert set(item) <= set(FIELDS)
        parse_fields(item, Details(at=NOW), NOW, MAX_AGE)  # raises on anything the server refuses


@pytest.mark.parametrize(
    ("segment", "event"),
    [("0", (Kind.SUCCESS, 0)), ("000", (Kind.SUCCESS, 0)), ("0001", (Kind.FAIL, 1)), ("00255", (Kind.FAIL, 255))],
)
def test_an_exit_status_with_leading_zeros_is_read_as_healthchecks_reads_it(
    segment: str, event: tuple[Kind, int]
) -> None:
    # Healthchecks' /ping/<uuid>/<int:exitstatus> takes any digits and refuses past 255 alone
    assert parse_event(segment) == event


@pytest.mark.parametrize("segment", ["256", "0256", "1" * 5000, "0" * 5000 + "1000"])
def test_an_exit_status_past_255_is_refused_however_it_is_spelt(segment: str) -> None:
    with pytest.raises(PingError, match="unknown ping event"):
        parse_event(segment)


@pytest.mark.parametrize(
    ("tail", "target"),
    [
        ("pk/0001", Target(None, "0001", Kind.SUCCESS)),  # <slug:slug>: a name, digits or not
        ("pk/0001/0001", Target(None, "0001", Kind.FAIL, 1)),  # <slug:slug>/<int:exitstatus>
        ("pk/123/0", Target(None, "123", Kind.SUCCESS, 0)),
    ],
)
def test_a_name_of_digits_under_the_ping_key_is_a_name_as_healthchecks_reads_a_slug(tail: str, target: Target) -> None:
    # Healthchecks routes /ping/<ping_key>/<slug> before an exit status could be read there
    assert parse_path(tail, "pk") == target
