"""A stored check state's text: what writing and reading one costs, against the json module.

Run from the repository root:

    .venv/bin/python bench/state_codec.py                # 10,000 states
    .venv/bin/python bench/state_codec.py --states 2000

A checkpoint writes the state of every check pinged since the last (with 100k checks and pings
spread over them, nearly one state per ping), and a restart reads every check's state. The states
here are what bench/scale.py's checks hold after their pings: a success ping each, through the
real state machine. Each is written with `store.rows.encode_state` and with the json module
(compact separators, as before orjson), and read with `store.rows.decode_states` (a page of 1,000
rows at a time, as `read_checks` reads them) and with the json module's decoder before the same
`CheckState.from_json`. Best of several rounds, in one process: for comparing the two ways in
the same run, not for a state's absolute cost.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

from heartfly.core.config import CheckConfig
from heartfly.core.states import CheckState, Event, Kind, apply_event, initial_state
from heartfly.store.rows import decode_states, encode_state

PAGE = 1000  # rows read_checks decodes at a time
NOW = 1_796_450_000.0


def states(n: int) -> list[CheckState]:
    """Each of n hourly checks after one success ping, its own instant (as the bench's checks)."""
    out = []
    for i in range(n):
        cfg = CheckConfig(name=f"c{i:06d}", key=f"key-{i:020d}", every=3600.0, grace=300.0)
        at = NOW + i * 0.000731
        st, _, _ = apply_event(cfg, initial_state(cfg, NOW - 2), Event(Kind.SUCCESS, at), at)
        out.append(st)
    return out


def best(fn: Callable[[], object], rounds: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sts = states(args.states)
    texts = [encode_state(st) for st in sts]
    pages = [texts[i : i + PAGE] for i in range(0, len(texts), PAGE)]
    module = json.JSONEncoder(separators=(",", ":")).encode
    decoder = json.JSONDecoder()
    # The same documents both ways (inf and nan aside, which orjson leaves to the json module).
    assert [json.loads(t) for t in texts] == [json.loads(module(st.to_json())) for st in sts]
    assert [decode_states(p) for p in pages] == [[CheckState.from_json(decoder.decode(t)) for t in p] for p in pages]

    n = len(sts)
    write_ours = best(lambda: [encode_state(st) for st in sts], args.rounds) / n * 1e6
    write_module = best(lambda: [module(st.to_json()) for st in sts], args.rounds) / n * 1e6
    read_ours = best(lambda: [decode_states(p) for p in pages], args.rounds) / n * 1e6
    read_module = (
        best(lambda: [[CheckState.from_json(decoder.decode(t)) for t in p] for p in pages], args.rounds) / n * 1e6
    )
    size = sum(map(len, texts)) / n
    print(f"{n} states of {size:.0f} characters, µs per state (best of {args.rounds}):")
    for what, ours, name, theirs in (
        ("write", write_ours, "encode_state ", write_module),
        ("read ", read_ours, "decode_states", read_module),
    ):
        print(f"  {what}: {name} {ours:6.2f}   json module {theirs:6.2f}   ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
