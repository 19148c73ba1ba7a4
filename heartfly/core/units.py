"""Durations ("90s", "15m", "1h30m", "2d", "250ms") and sizes ("100KB") to numbers and back."""

from __future__ import annotations

import re

# Ten years: a longer duration is a typo, and its deadlines would leave the dates datetime can show.
MAX_DURATION = 3650 * 86400.0
_UNITS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}  # in milliseconds
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+")


class UnitError(ValueError):
    pass


def is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses or reads."""
    return text.isascii() and text.isdigit()


def decimal(text: str, digits: int = 18) -> int | None:
    """A query parameter's whole number: ASCII digits only, at most `digits` of them; else None.
    int() itself also takes " 1", "1_0" and "٣"."""
    return int(text) if len(text) <= digits and is_decimal(text) else None


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
    """The shortest exact-ish string for a duration: 5400 -> "1h30m", 0.25 -> "250ms"."""
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


_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1_048_576}


def parse_size(text: str) -> int:
    """Bytes in a size string: "100KB", "1MiB", "512"."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UnitError(f'expected a size like "100KB" or "1MiB", got "{text}"')
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
