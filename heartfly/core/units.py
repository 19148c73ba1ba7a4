"""Durations ("90s", "15m", "1h30m", "2d", "250ms") and sizes ("100KB") to numbers and back, and
both in words for people (`human_duration`, `human_bytes`, `metric_words`)."""

from __future__ import annotations

import functools
import math
import re

# Ten years: a longer duration is a typo, and its deadlines would leave the dates datetime can show.
MAX_DURATION = 3650 * 86400.0
_UNITS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}  # in milliseconds
# [0-9], not \d: \d also takes other scripts' digits, which read "١٥m" as 15 minutes.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|d|h|m|s)")
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|d|h|m|s))+")


class UnitError(ValueError):
    pass


def is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses or reads."""
    return text.isascii() and text.isdigit()


def decimal(text: str, digits: int = 18) -> int | None:
    """A query parameter's whole number: ASCII digits only, at most `digits` of them; else None.
    int() itself also takes " 1", "1_0" and "٣"."""
    return int(text) if len(text) <= digits and is_decimal(text) else None


@functools.lru_cache(maxsize=4096)  # 100k checks share a few durations ("1h", "5m"): read each once
def parse_duration(text: str) -> float:
    """Seconds in a duration string; units d, h, m, s, ms, largest first; at most MAX_DURATION."""
    compact = text.strip().replace(" ", "")
    if not compact or not _WHOLE.fullmatch(compact):
        raise UnitError(f'expected a duration like "90s", "15m", "1h30m" or "2d", got "{text}"')
    seen: list[str] = []
    total = 0.0
    for number, unit in _PART.findall(compact):
        if unit in seen or (seen and list(_UNITS).index(unit) < list(_UNITS).index(seen[-1])):
            raise UnitError(f'units must appear once each, largest first, in "{text}"')
        seen.append(unit)
        total += float(number) * _UNITS[unit]
    if total > MAX_DURATION * 1000:  # also 400 digits of seconds, which float() reads as inf
        raise UnitError("at most 3650d (10 years) for a duration")
    return total / 1000  # summed in milliseconds: 13 * 0.001 would not be exactly 0.013


def format_duration(seconds: float) -> str:
    """The shortest exact-ish string for a duration, in the config's syntax: 5400 -> "1h30m",
    0.25 -> "250ms". For values written back as config or read by programs; people get
    `human_duration`."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# Largest first. "min", not "m": a person reads "5 m" as metres.
_HUMAN_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)  # round() rounds halves to even: 30.5 s would read "30 s"


def human_duration(seconds: float | None) -> str:
    """A duration for people, rounded to what matters. The one formatter for durations shown on
    pages, in the CLI, in alert texts and in log lines a person reads. The rule:

    - under 1 s: whole milliseconds, "250 ms" (0 is "0 s");
    - under 10 s: tenths of a second, "1.5 s", "2 s" (a ".0" is dropped);
    - under 1 min: whole seconds, "30 s";
    - from 1 min: the two largest units, the smaller one rounded: "13 h 19 min", "58 min 1 s",
      "2 d 3 h"; a zero second unit is left out ("2 h", never "2 h 0 min").

    Rounding that reaches the next threshold carries over: 59.6 s is "1 min", 59 min 59.6 s is
    "1 h", 23 h 59 min 40 s is "1 d". Halves round up. Units: d, h, min, s, ms, each after a space.
    A negative duration (a clock stepped back) keeps its sign, "-5 s"; None, NaN and infinities,
    which no real duration is, read "—".
    """
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 0:
        shown = human_duration(-seconds)
        return shown if shown == "0 s" else "-" + shown
    millis = _half_up(seconds * 1000)
    if millis == 0:
        return "0 s"
    if millis < 1000:
        return f"{millis} ms"
    tenths = _half_up(seconds * 10)
    if tenths < 100:
        return f"{tenths // 10} s" if tenths % 10 == 0 else f"{tenths / 10:.1f} s"
    whole = _half_up(seconds)
    if whole < 60:
        return f"{whole} s"
    # The largest unit the duration reaches, then carried up while rounding the smaller one makes a
    # whole larger one (59 min 59.6 s: 60 min 0 s, so "1 h").
    i = min(next(n for n, (_, size) in enumerate(_HUMAN_UNITS) if seconds >= size), 2)  # 59.6 s: from min
    while True:
        (big, size), (small, small_size) = _HUMAN_UNITS[i], _HUMAN_UNITS[i + 1]
        count = _half_up(seconds / small_size)  # in the smaller unit, rounded
        if i == 0 or count * small_size < _HUMAN_UNITS[i - 1][1]:
            bigs, rest = divmod(count, size // small_size)
            return f"{bigs} {big}" + (f" {rest} {small}" if rest else "")
        i -= 1


def _exact_words(seconds: float) -> str:
    """Every unit down to the millisecond: "1 h 59 min 59.7 s"."""
    millis = _half_up(abs(seconds) * 1000)
    parts = []
    for unit, size in _HUMAN_UNITS[:-1]:
        count, millis = divmod(millis, size * 1000)
        if count:
            parts.append(f"{count} {unit}")
    if millis or not parts:
        parts.append(f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + " s")
    return ("-" if seconds < 0 else "") + " ".join(parts)


def human_duration_against(seconds: float, limit: float) -> str:
    """A duration quoted beside the limit it broke: in words, unless rounding would make the two
    read the same ("finished after 1 min, sooner than min_runtime 1 min"); then exact."""
    shown = human_duration(seconds)
    if shown == human_duration(limit) and seconds != limit:
        return _exact_words(seconds)
    return shown


_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")  # "out_bytes", "BytesWritten", "dbSize"
_BYTE_WORDS = {"byte", "bytes", "size", "bytesize", "octets"}
_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(count: float) -> str:
    """Decimal units, as disks and transfer tools count: 15002856325 -> "15.0 GB", 512 -> "512 B"."""
    if not math.isfinite(count):
        return str(count)
    sign, size = ("-" if count < 0 else ""), abs(count)
    if round(size) < 1000:
        return f"{sign}{size:g} B"
    for unit in _BYTE_UNITS[1:]:
        size /= 1000
        if round(size, 1) < 1000 or unit == _BYTE_UNITS[-1]:
            break
    return f"{sign}{size:.1f} {unit}"


def is_byte_metric(name: str) -> bool:
    """A metric whose name says it counts bytes: bytes, out_bytes, bytes_written, size, db_size."""
    return any(word.lower() in _BYTE_WORDS for word in _WORDS.findall(name))


def metric_words(name: str, value: float) -> str:
    """A ping's metric for people: bytes in units, whole numbers without ".0", others as given."""
    if is_byte_metric(name):
        return human_bytes(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


_SIZE = re.compile(r"([0-9]+)\s*(b|kb|kib|mb|mib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1_048_576}


def parse_size(text: str) -> int:
    """Bytes in a size string: "100KB", "1MiB", "512"."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UnitError(f'expected a size like "100KB" or "1MiB", got "{text}"')
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
