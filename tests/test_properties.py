"""Property-based tests: whatever the input, parsers answer with a value or a clear error, never a crash."""

from __future__ import annotations

import contextlib
import math
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from heartfly.core.assertions import parse_assertion
from heartfly.core.config import parse_config
from heartfly.core.config_reader import ConfigError
from heartfly.core.pingparse import NOWHERE, PingError, parse_json, parse_path, parse_query
from heartfly.core.schedule import _from_table, _next_cron_due, next_cron_due
from heartfly.core.units import MAX_DURATION, UnitError, format_duration, is_decimal, parse_duration, parse_size

NOW = 1_780_000_000.0
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.integers(min_value=0, max_value=10**9))
def test_any_whole_millisecond_duration_formats_and_parses_back_to_itself(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@FAST
@given(st.text(max_size=30))
@example("1h30m")
@example("5m5m")
@example("1e9s")
@example("3000000d")
@example("9" * 400 + "s")
def test_parse_duration_returns_a_finite_non_negative_number_or_a_unit_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except UnitError as exc:
        assert "duration" in str(exc) or "units" in str(exc)
    else:
        assert math.isfinite(value) and 0 <= value <= MAX_DURATION
        assert format_duration(value)  # and shows: no OverflowError


@FAST
@given(st.text(max_size=20))
def test_parse_size_returns_bytes_or_a_unit_error(text: str) -> None:
    with contextlib.suppress(UnitError):
        assert parse_size(text) >= 0


toml_scalars = st.one_of(
    st.text(max_size=20), st.integers(-(10**6), 10**6), st.booleans(), st.floats(allow_nan=False), st.just("1h")
)
check_tables = st.dictionaries(
    st.sampled_from(["key", "every", "cron", "grace", "timezone", "max_runtime", "min_runtime", "after", "within",
                     "expect", "members", "assert", "stall", "channels", "repeat", "failures_before_alert", "bogus"]),
    st.one_of(toml_scalars, st.lists(st.text(max_size=10), max_size=3)),
    max_size=8,
)  # fmt: skip


@FAST
@given(
    st.dictionaries(st.text(min_size=1, max_size=12), check_tables, max_size=4),
    st.dictionaries(st.sampled_from(["grace", "timezone", "channels", "repeat", "nope"]), toml_scalars, max_size=3),
)
def test_any_config_document_loads_or_lists_problems_each_with_a_key_path(
    checks: dict[str, Any], defaults: dict[str, Any]
) -> None:
    try:
        config = parse_config({"checks": checks, "defaults": defaults}, Path("/tmp/heartfly.toml"))
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            path, sep, message = problem.partition(": ")
            assert sep and message and path.split(".")[0] in {"checks", "defaults", "channels"}, problem
    else:
        assert set(config.checks) == set(checks)


@FAST
@given(st.text(max_size=200))
def test_arbitrary_text_either_parses_as_toml_config_or_fails_cleanly(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        parse_config(data, Path("/tmp/heartfly.toml"))
    except ConfigError as exc:
        assert exc.problems


@FAST
@given(st.text(max_size=80), st.one_of(st.none(), st.text(min_size=22, max_size=30)))
@example("key/", None)
@example("a/b/c/d", "a")
@example("key/\u00b2", None)  # "²" passes str.isdigit() and fails int()
@example("key/\u0663", None)  # Arabic-Indic 3: int() reads it, but it is no exit status
@example("key/0001", None)  # leading zeros: 1, as Healthchecks' <int:exitstatus> reads it
def test_any_ping_path_is_a_target_none_or_a_ping_error(tail: str, ping_key: str | None) -> None:
    try:
        target = parse_path(tail, ping_key)
    except PingError as exc:
        assert str(exc)
    else:
        assert target is None or target is NOWHERE or (target.key is not None) != (target.name is not None)
        if target is not None and target.exit_status is not None:
            status = tail.rsplit("/", 1)[-1]
            assert is_decimal(status) and int(status) == target.exit_status


@FAST
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=6))
@example([("ts", "nan")])
@example([("ts", "1e308")])
@example([("m_rows", "inf")])
def test_any_query_string_parses_to_finite_values_or_a_ping_error(pairs: list[tuple[str, str]]) -> None:
    try:
        details = parse_query(MultiDict(pairs), NOW, 7 * 86400)
    except PingError as exc:
        assert str(exc)
    else:
        assert math.isfinite(details.at) and NOW - 7 * 86400 <= details.at <= NOW
        assert all(math.isfinite(v) for v in (details.metrics or {}).values())


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)


@FAST
@given(st.one_of(st.binary(max_size=100), st.dictionaries(
    st.sampled_from(["status", "message", "run_id", "metrics", "exit_code", "ts", "member", "other"]), json_values,
    max_size=6,
)))  # fmt: skip
@example(b'{"exit_code": ' + b"9" * 5000 + b"}")
@example(b"[" * 5000 + b"]" * 5000)
@example(b'{"ts": 1' + b"0" * 400 + b"}")
@example(b'{"metrics": {"a": 1' + b"0" * 400 + b"}}")
@example(b'{"message": "\\udc00", "metrics": {"\\ud800": 1}}')
@example(b'{"message": ""}')
def test_any_json_heartbeat_body_parses_or_is_a_ping_error(body: bytes | dict[str, Any]) -> None:
    import json

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    query = parse_query(MultiDict(), NOW, 86400)
    try:
        details = parse_json(raw, query, NOW, 86400)
    except PingError as exc:
        assert str(exc).encode()  # the reason goes out as UTF-8
    else:
        if details.message is not None:
            details.message.encode()  # storable as UTF-8 (raises if not)
        assert details.exit_status is None or 0 <= details.exit_status <= 255


@FAST
@given(st.text(max_size=40))
@example("rows > 0")
@example("duration < 1e400")
def test_any_assertion_text_parses_to_a_finite_comparison_or_a_value_error(text: str) -> None:
    try:
        assertion = parse_assertion(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert math.isfinite(assertion.value)
        # A value compared with itself: >=, <= and == hold; >, < and != break, quoting the value.
        verdict = assertion.check({assertion.name: assertion.value}, assertion.value)
        assert (verdict is None) == (assertion.op in (">=", "<=", "=="))


# ---- cron: the shortcut away from clock changes ---------------------------------------------

CRON_EXPRS = ["*/5 * * * *", "30 2 * * *", "0,30 2 * * *", "*/15 2 * * *", "0 * * * *", "@daily", "17 3 * * 0"]
CRON_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
# Clock changes of 2026 in those zones (UTC instants), where the shortcut must not be taken.
CLOCK_CHANGES = [1774746000.0, 1792890000.0, 1772953200.0, 1793512800.0, 1775314800.0, 1791041400.0]


@FAST
@example(expr="*/5 * * * *", zone="UTC", after=1798761599.9999997)  # rounds up to the tick
@given(
    expr=st.sampled_from(CRON_EXPRS),
    zone=st.sampled_from(CRON_ZONES),
    after=st.one_of(
        st.floats(1767225600.0, 1798761600.0),  # any time in 2026
        st.builds(lambda c, d: c + d, st.sampled_from(CLOCK_CHANGES), st.floats(-7200.0, 7200.0)),
    ),
)
def test_a_cron_due_time_is_the_same_from_the_shared_tables_and_walking_with_or_without_an_hour_early(
    expr: str, zone: str, after: float
) -> None:
    walked = _next_cron_due(expr, zone, after, always_early=True)
    assert next_cron_due(expr, zone, after) == _next_cron_due(expr, zone, after) == walked
    assert _from_table(expr, zone, after, always=True) in (None, walked)  # None: beyond the table, walked
