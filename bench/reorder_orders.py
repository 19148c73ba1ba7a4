"""Every arrival order of a few racing pings, against event order: how many end otherwise.

Run from the repository root (about 15 seconds):

    .venv/bin/python bench/reorder_orders.py
    .venv/bin/python bench/reorder_orders.py --sizes 2 --show    # two pings racing
    .venv/bin/python bench/reorder_orders.py --sent    # only the lists one client could send
    PYTHONPATH=<another tree> .venv/bin/python bench/reorder_orders.py     # that tree's figures

For each rule set, every list of two to four pings of one check (start, success, fail, progress;
at most two ends, and two starts without run ids or one with a run id for all), stamped within 4 s before the
same instant (two draws of times per list, seeded), arrives in every order, 0.05 s apart, after a
success half an hour before. The same pings are also applied as they happen. The two must end alike
(docs/jobs.md, "Out of order"): the status, its reason, the changes somebody was told of, and the
runs, once the reorder window and two hours have passed. It prints how many orders end otherwise.
Without a stall limit, none with one end at most should (tests/test_event_time.py checks samples of
them); with two ends, or with a stall limit, some do, by the rules docs/jobs.md leaves to arrival
order (a change told is never withdrawn, a start that arrives after its end opens no run). Of
those, it also prints how many differ in what was told (the status, its reason, the changes
somebody was told of), not only in the runs recorded. (A down told during the race where event
order told none until the deadline an hour later counts there: their reasons differ.) And of
those, how many told a down more than event order did (a false alarm) or one fewer (a missed
alarm), not counting the missed deadline an hour later; and how many of those told no down at all
where event order told one (a check gone silent, where the others told a down, only not twice).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path
from typing import Any

# The tests' helpers: after PYTHONPATH and the installed package, so that another tree's run is its own.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from heartfly.core.assertions import parse_assertion
from heartfly.core.states import Kind
from tests.test_event_time import NOW, after_a_success_in_order_and_raced, ev, judged

RULE_SETS: dict[str, dict[str, Any]] = {
    "max_runtime": {"max_runtime": 600.0},
    "min_runtime": {"max_runtime": 600.0, "min_runtime": 1.0},
    "duration < 1s": {"assertions": (parse_assertion("duration < 1s"),)},
    "2 failures": {"failures_before_alert": 2},
    "min_runtime, 2 failures": {"min_runtime": 1.0, "failures_before_alert": 2},
    "min_runtime, stall": {"min_runtime": 1.0, "stall": 2.0, "max_runtime": 600.0},
}
SHOWN = 3
KINDS = (Kind.START, Kind.SUCCESS, Kind.FAIL, Kind.PROGRESS)


def downs_told(told: list[tuple[Any, Any]]) -> int:
    """The downs told for a ping's verdict or a run's limit: not the missed deadline an hour on."""
    return sum(1 for status, reason in told if status.value == "down" and reason.value != "missed")


def as_sent(kinds: tuple[Kind, ...], rid: str | None) -> bool:
    """Whether one client could send these pings in this event order: with a run id, its start
    first (if it sent one) and one end; without, never two starts with no end between them (two
    runs at once cannot be told apart without run ids)."""
    marks = [k for k in kinds if k is not Kind.PROGRESS]
    if rid is not None:
        ends = len(marks) - marks.count(Kind.START)
        return ends <= 1 and (Kind.START not in marks or marks[0] is Kind.START)
    return not any(a is Kind.START and b is Kind.START for a, b in itertools.pairwise(marks))


def differing(
    rules: dict[str, Any], rid: str | None, seed: int, sizes: list[int], ends: int, sent: bool = False
) -> tuple[int, int, int, int, int, int, list[str]]:
    """(orders that end otherwise, those of them that differ in what was told (the status, its
    reason, the changes told) and not only in the runs recorded, those that told more downs than
    event order (a false alarm) and fewer (a missed one), those of the latter that told no down at
    all where event order told one (silent), orders tried, a few of the first, described)."""
    rng = random.Random(seed)
    bad, told, false, missed, silent, tried = 0, 0, 0, 0, 0, 0
    shown: list[str] = []
    for size in sizes:
        for kinds in itertools.product(KINDS, repeat=size):
            starts = 1 if rid else 2  # a run id names one run: it starts once
            if kinds.count(Kind.START) > starts or kinds.count(Kind.SUCCESS) + kinds.count(Kind.FAIL) > ends:
                continue
            for _ in range(2):
                tenths = sorted(rng.sample(range(1, 41), size), reverse=True)
                if sent and not as_sent(kinds, rid):
                    continue  # after drawing its times: the other lists get the same ones as without --sent
                events = [ev(k, NOW - t / 10, rid) for k, t in zip(kinds, tenths, strict=True)]
                for order in itertools.permutations(range(size)):
                    in_order, raced = after_a_success_in_order_and_raced(events, list(order), **rules)
                    tried += 1
                    got, want = judged(raced), judged(in_order)
                    if got != want:
                        bad += 1
                        told += got[:3] != want[:3]
                        false += downs_told(got[2]) > downs_told(want[2])
                        missed += downs_told(got[2]) < downs_told(want[2])
                        silent += downs_told(got[2]) == 0 < downs_told(want[2])
                        if len(shown) < SHOWN:
                            pings = ", ".join(f"{e.kind.value} {e.at - NOW:+.1f}s" for e in events)
                            shown.append(f"{pings}; arriving in the order {order}")
    return bad, told, false, missed, silent, tried, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print a few of the orders that end otherwise")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4], help="pings per list (default 2 3 4)")
    parser.add_argument("--ends", type=int, default=2, help="successes and failures per list, at most (default 2)")
    parser.add_argument("--sent", action="store_true", help="only the lists one client could send (see as_sent)")
    args = parser.parse_args()
    for name, rules in RULE_SETS.items():
        for rid in (None, "r1"):
            found = differing(rules, rid, args.seed, args.sizes, args.ends, args.sent)
            bad, told, false, missed, silent, tried, shown = found
            rids = "run id r1" if rid else "no run ids"
            print(
                f"{name:24} {rids:10}  {bad:5} of {tried} orders end otherwise ({bad / tried:.1%}),"
                f" {told:5} in what was told ({false} with a down more, {missed} with one fewer, {silent} with none)",
                flush=True,
            )
            if args.show:
                for line in shown:
                    print(f"    {line}")


if __name__ == "__main__":
    main()
