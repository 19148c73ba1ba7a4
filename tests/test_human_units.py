"""The one formatter for durations people read, and metrics in their units (heartfly.core.units)."""

from __future__ import annotations

import math

import pytest

from heartfly.core.assertions import parse_assertion
from heartfly.core.units import human_bytes, human_duration, human_duration_against, is_byte_metric, metric_words

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (0.0004, "0 s"),  # below half a millisecond
        (0.0005, "1 ms"),  # halves round up
        (0.25, "250 ms"),
        (0.9996, "1 s"),  # rounds to 1000 ms: shown in seconds
        (1, "1 s"),
        (1.5, "1.5 s"),
        (2.0, "2 s"),  # no ".0"
        (9.96, "10 s"),
        (30.001, "30 s"),  # was "30s1ms"
        (30.5, "31 s"),
        (59.4, "59 s"),
        (59.6, "1 min"),  # rounds up into the next unit
        (60, "1 min"),  # exactly 60 s
        (90, "1 min 30 s"),
        (754, "12 min 34 s"),
        (58 * MIN + 0.999, "58 min 1 s"),  # was "58m999ms"
        (59.6 * MIN, "59 min 36 s"),  # two units: the seconds still matter under an hour
        (59 * MIN + 59.6, "1 h"),  # the rounded seconds make a whole hour: carried
        (HOUR, "1 h"),  # a zero smaller unit is left out
        (13 * HOUR + 18 * MIN + 48.621, "13 h 19 min"),  # was "13h18m48s621ms"
        (23 * HOUR + 59 * MIN + 40, "1 d"),
        (DAY, "1 d"),
        (2 * DAY + 3 * HOUR + 20 * MIN, "2 d 3 h"),
        (400 * DAY, "400 d"),
        (-5, "-5 s"),  # a clock stepped back keeps its sign
        (-0.0001, "0 s"),  # never "-0 s"
        (math.nan, "—"),
        (math.inf, "—"),
        (-math.inf, "—"),
        (None, "—"),
    ],
)
def test_durations_read_as_two_units_the_smaller_rounded(seconds: float | None, words: str) -> None:
    assert human_duration(seconds) == words


def test_a_duration_beside_the_limit_it_broke_never_reads_the_same_as_the_limit() -> None:
    assert human_duration_against(30.001, MIN) == "30 s"
    assert human_duration_against(59.7, MIN) == "59.7 s"  # not "1 min, sooner than min_runtime 1 min"
    assert human_duration_against(2 * HOUR - 0.3, 2 * HOUR) == "1 h 59 min 59.7 s"
    broke = parse_assertion("duration >= 1m").check(None, 59.8)
    assert broke == 'assertion "duration >= 1m" broke: duration = 59.8 s'


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("bytes", 15002856325.0, "15.0 GB"),  # was "bytes=15002856325.0"
        ("bytes", 0.0, "0 B"),
        ("out_bytes", 512.0, "512 B"),
        ("db_size", 999_950.0, "1.0 MB"),
        ("BytesWritten", 2048.0, "2.0 kB"),
        ("rows", 1234.0, "1234"),  # whole numbers without ".0"
        ("ratio", 0.25, "0.25"),
        ("subsystem", 3.0, "3"),  # not a size: "size" must be a word of the name
    ],
)
def test_metrics_read_in_their_units(name: str, value: float, words: str) -> None:
    assert metric_words(name, value) == words


def test_byte_metrics_are_named_so_and_huge_sizes_stay_finite() -> None:
    assert [is_byte_metric(n) for n in ("bytes", "backup_size", "size_bytes", "sizes", "bytesize")] == [
        True,
        True,
        True,
        False,
        True,
    ]
    assert human_bytes(-2048) == "-2.0 kB" and human_bytes(999.6) == "1.0 kB" and human_bytes(math.inf) == "inf"
    broke = parse_assertion("bytes > 1000").check({"bytes": 999.9}, None)
    assert broke == 'assertion "bytes > 1000" broke: bytes = 999.9'  # "1.0 kB" would read like the limit
