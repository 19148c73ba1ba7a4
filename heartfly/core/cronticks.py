"""A cron expression's wall-clock ticks, from croniter, with the days cron itself runs a job on.

croniter matches a day on either day field (OR) unless one of them is exactly "*"; Vixie and
Debian cron (and cronsim, as Healthchecks) match both (AND) whenever either field *starts* with
"*": "0 4 */2 * 1-5" runs on odd days that are weekdays, not on every odd day and every weekday.
Expecting the extra days would report a job missed on days it was never meant to run.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from croniter import croniter


@lru_cache(maxsize=4096)
def _day_or(expr: str) -> bool:
    fields = expr.split()
    return len(fields) != 5 or not (fields[2].startswith("*") or fields[4].startswith("*"))  # a macro: no day fields


def ticks(expr: str, start: datetime) -> croniter:
    """croniter's ticks of `expr` after the naive wall time `start`, days matched as cron matches them."""
    return croniter(expr, start, day_or=_day_or(expr))
