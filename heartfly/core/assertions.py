"""`assert = ["rows > 0", "bytes >= 1024", "duration < 30m"]`: a small grammar, never eval. Pure.

An assertion is `NAME OP VALUE`:
- NAME is a metric a success ping carries (`m_rows=…` or `"metrics": {"rows": …}`), or `duration`
  (the run's duration in seconds, known when the run had a start);
- OP is one of > >= < <= == !=;
- VALUE is a number, or for `duration` also a duration string ("30m", "1h30m").
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from heartfly.core.units import UnitError, human_duration_against, metric_words, parse_duration

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_GRAMMAR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


class Assertion(NamedTuple):
    text: str
    name: str
    op: str
    value: float

    def check(self, metrics: Mapping[str, float] | None, duration: float | None) -> str | None:
        """None when it holds (or cannot apply); otherwise why it broke, quoting the values."""
        if self.name == "duration":
            if duration is None:
                return None  # a success without a start has no duration to judge
            actual, shown = duration, human_duration_against(duration, self.value)
        else:
            value = None if metrics is None else metrics.get(self.name)
            if value is None:
                return f'assertion "{self.text}" broke: the success carried no metric "{self.name}"'
            actual, shown = value, metric_words(self.name, value)
            if shown == metric_words(self.name, self.value) and value != self.value:
                shown = repr(value)  # rounded, it would read the same as the limit it broke
        if _OPS[self.op](actual, self.value):
            return None
        return f'assertion "{self.text}" broke: {self.name} = {shown}'


def parse_assertion(text: str) -> Assertion:
    """ValueError with a readable reason when `text` is not an assertion."""
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        raise ValueError(f'"{text}" is not an assertion like "rows > 0" or "duration < 30m" (NAME OP VALUE)')
    name, op, raw = match.groups()
    try:
        if not raw.isascii():  # float() reads other scripts' digits: "١٥" would be 15, as units no longer does
            raise ValueError(raw)
        value = float(raw)
    except ValueError:
        if name != "duration":
            raise ValueError(f'"{text}": {raw} is not a number') from None
        try:
            value = parse_duration(raw)
        except UnitError:
            raise ValueError(f'"{text}": {raw} is neither seconds nor a duration like "30m"') from None
    if not math.isfinite(value):
        raise ValueError(f'"{text}": the value must be a finite number')
    return Assertion(text.strip(), name, op, value)


def first_broken(
    assertions: tuple[Assertion, ...], metrics: Mapping[str, float] | None, duration: float | None
) -> str | None:
    for assertion in assertions:
        broken = assertion.check(metrics, duration)
        if broken is not None:
            return broken
    return None
