"""Stored states decode as they did before from_json's fast path, older rows included; new ones
encode once per distinct state."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartfly.core.states import CheckState, Kind, Reason, Run, RunOutcome, Status, initial_state
from heartfly.store.rows import NewStateTexts, decode_state, decode_states, encode_state
from tests.conftest import check


def test_an_older_row_decodes_with_its_old_forms() -> None:
    st = CheckState.from_json({
        "status": "down", "reason": "missed", "last_ping_kind": "fail", "gone_field": 1,
        "runs": {"a": 10, "b": [1.0, 2.0, 3, ["w1"]]}, "orphan_end": [5.0, 6.0, "fail", 2],
        "last_members": ["w1"], "closed_runs": ["x"], "superseded": [[1.0, 2.0]],
    })  # fmt: skip
    assert st.status is Status.DOWN and st.reason is Reason.MISSED and st.last_ping_kind is Kind.FAIL
    assert st.runs == {"a": Run(10.0, 10.0), "b": Run(1.0, 2.0, 3, ("w1",))}
    assert st.orphan_end == (5.0, 6.0, RunOutcome.FAIL, 2, None)
    assert (st.last_members, st.closed_runs, st.superseded) == (("w1",), ("x",), ((1.0, 2.0),))


def test_a_current_row_round_trips_and_empty_texts_are_none() -> None:
    st = CheckState.from_json({"status": "up", "reason": "", "last_ping_kind": None})
    assert st == CheckState(status=Status.UP)
    assert CheckState.from_json(st.to_json()) == st


@pytest.mark.parametrize("data", [{"status": "gone"}, {"status": ["up"]}, {"status": "up", "reason": "bored"}])
def test_a_text_that_is_no_member_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="is not a valid"):
        CheckState.from_json(data)


def test_equal_instants_in_stored_rows_share_one_float_and_compare_as_before() -> None:
    at = 1796379329.8481302
    data = {"status": "up", "changed_at": at, "anchor": at, "last_ping_at": at, "due_at": at + 3600,
            "due_since": at + 3600, "orphan_end": [at, at + 1, "success", None, None]}  # fmt: skip
    other = {"status": "up", "changed_at": at, "watched_from": at + 0.5}
    st, st2 = decode_states([json.dumps(data), json.dumps(other)])
    assert st.anchor is st.changed_at is st.last_ping_at and st.due_since is st.due_at
    assert st.orphan_end is not None and st.orphan_end[0] is st.changed_at
    assert st2.changed_at is st.changed_at and st2.watched_from == at + 0.5  # across a page's rows too
    # A row without told_at (stored before it existed) is told as of its last change.
    assert st.to_json() == {**data, "told_at": at, "orphan_end": (at, at + 1, RunOutcome.SUCCESS, None, None)}
    assert decode_state(encode_state(st)) == st


def test_an_integer_instant_stays_an_integer() -> None:
    st = decode_state('{"status": "up", "changed_at": 5, "anchor": 5.0, "orphan_end": [5, 6, "fail", null]}')
    assert type(st.changed_at) is int and type(st.anchor) is float
    assert st.orphan_end is not None and type(st.orphan_end[0]) is int


def test_new_checks_of_one_schedule_share_one_encoding_and_others_get_their_own() -> None:
    texts = NewStateTexts()
    hourly, daily = check(every=3600), check(every=86400)
    first, second = texts(initial_state(hourly, 1000.5)), texts(initial_state(hourly, 1000.5))
    assert first is second and first == encode_state(initial_state(hourly, 1000.5))
    assert texts(initial_state(daily, 1000.5)) == encode_state(initial_state(daily, 1000.5)) != first
    # 5 == 5.0: equal states of other number types share a text, which decodes to an equal state.
    as_int, as_float = texts(CheckState(changed_at=5, told_at=5)), texts(CheckState(changed_at=5.0, told_at=5.0))
    assert as_int == as_float == '{"changed_at":5,"told_at":5}'
    assert decode_state(as_float) == CheckState(changed_at=5.0, told_at=5.0)
    with_run = CheckState(runs={"r": Run(1.0, 1.0)})
    assert decode_state(texts(with_run)) == with_run


def test_a_page_decodes_as_its_rows_do_one_by_one() -> None:
    states = [
        CheckState(status=Status.UP, changed_at=float(i), told_at=float(i), runs={"r": Run(1.5, 2.5)} if i % 2 else {})
        for i in range(5)
    ]
    texts = [encode_state(st) for st in states]
    assert decode_states(texts) == [decode_state(text) for text in texts] == states
    assert decode_states([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        ['{"status": "up"}, {"status": "up"}'],
        ['{"status": "up"'],
        [""],
        ['{"status": "up"}]'],
        ["[]"],
        # Rows that, joined, would borrow each other's text and still count one value per row.
        ['{"status":"up"},{"status":"down"', '"changed_at":7}'],
        ['{"status":"up"', '"changed_at":5}', "{},{}"],
        ['{"status":"up","detail":"', '"}', "{},{}"],
    ],
)
def test_a_page_with_rows_that_are_not_one_object_each_fails_as_the_first_of_them_does_alone(bad: list[str]) -> None:
    good = encode_state(CheckState(status=Status.UP))
    with pytest.raises(ValueError, match=r"line 1 column|a stored state is a JSON object") as alone:
        decode_state(bad[0])  # the json module's words (orjson's are not shown), or from_json's
    with pytest.raises(type(alone.value), match=re.escape(str(alone.value))):
        decode_states([good, *bad, good])


def test_a_row_with_whitespace_around_its_object_decodes_as_before() -> None:
    assert decode_state(' {"status": "down", "reason": "failed"}\n') == decode_state(
        '{"status":"down","reason":"failed"}'
    )


# ---- orjson, and the json module where the two differ ----------------------------------------

INSTANT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**64 - 1), st.just(1796379329.8481302)
)
MAYBE = st.one_of(st.none(), INSTANT)
TEXT = st.text()  # lone surrogates, NUL and other code points included
OUTCOME = st.sampled_from(list(RunOutcome))
EXIT = st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1))
ANY_STATE = st.builds(
    CheckState,
    status=st.sampled_from(list(Status)),
    reason=st.one_of(st.none(), st.sampled_from(list(Reason))),
    changed_at=INSTANT, watched_from=INSTANT, anchor=INSTANT, due_at=INSTANT, due_since=INSTANT, slack=INSTANT,
    last_ping_at=MAYBE, last_ping_kind=st.one_of(st.none(), st.sampled_from(list(Kind))),
    last_success_at=MAYBE, last_start_at=MAYBE, last_duration=MAYBE, last_duration_at=MAYBE,
    last_exit_status=EXIT, failures=st.integers(0, 2**63 - 1),
    runs=st.dictionaries(
        TEXT, st.builds(Run, INSTANT, INSTANT, EXIT, st.tuples(TEXT), st.integers(0, 2**63 - 1)), max_size=2
    ),
    alerted_at=MAYBE, step_due=MAYBE, step_since=MAYBE, folded=st.booleans(),
    last_members=st.lists(TEXT, max_size=2).map(tuple), last_end_at=MAYBE,
    closed_runs=st.lists(TEXT, max_size=2).map(tuple),
    orphan_end=st.one_of(st.none(), st.tuples(INSTANT, INSTANT, OUTCOME, EXIT, st.one_of(st.none(), TEXT))),
    superseded=st.lists(st.tuples(INSTANT, INSTANT), max_size=2).map(tuple),
    held_at=INSTANT, hold_until=INSTANT, told_at=INSTANT, prev_end_at=MAYBE,
    paired_end=st.one_of(st.none(), st.tuples(INSTANT, INSTANT, INSTANT, OUTCOME, EXIT, TEXT)),
    orphan_prev=st.one_of(st.none(), st.tuples(INSTANT, INSTANT, OUTCOME, EXIT, st.one_of(st.none(), TEXT))),
    streak_ats=st.lists(INSTANT, max_size=3).map(tuple),
    held_over=st.lists(st.tuples(INSTANT, INSTANT, INSTANT), max_size=2).map(tuple),
    orphan_older=st.lists(st.tuples(INSTANT, INSTANT, OUTCOME, EXIT, st.none()), max_size=2).map(tuple),
    step_after=st.one_of(st.none(), TEXT),
)  # fmt: skip
JSON_MODULE = json.JSONEncoder(separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(ANY_STATE)
def test_any_state_is_stored_as_the_json_module_would_store_it_and_decodes_back_to_itself(state: CheckState) -> None:
    text = encode_state(state)
    before = JSON_MODULE.encode(state.to_json())  # what every version before orjson wrote
    # The same document for any reader (inf and nan as the json module writes them, not null;
    # integers exact; floats the same, if not always written alike: 1e-7 for 1e-07), and the
    # same state back, types and all.
    assert repr(json.loads(text)) == repr(json.loads(before))
    # Read as the json module reads either text (exact integers, signed zeros, ints kept ints).
    by_module = repr(CheckState.from_json(json.loads(before)))
    assert repr(decode_state(text)) == repr(decode_state(before)) == by_module
    assert repr(CheckState.from_json(json.loads(text))) == by_module


@settings(max_examples=200, deadline=None)
@given(ANY_STATE, ANY_STATE)
def test_states_read_in_one_page_are_read_as_each_alone(first: CheckState, second: CheckState) -> None:
    texts = [encode_state(first), encode_state(second), encode_state(first)]
    assert repr(decode_states(texts)) == repr([decode_state(text) for text in texts])


def test_a_zero_keeps_its_sign_in_its_row_and_the_rows_after_it() -> None:
    page = ['{"last_duration":-0.0,"alerted_at":0.0}', '{"last_duration":0.0,"alerted_at":-0.0}']
    first, second = decode_states(page)
    assert repr((first.last_duration, first.alerted_at, second.last_duration, second.alerted_at)) == repr(
        (-0.0, 0.0, 0.0, -0.0)
    )


def test_an_infinite_deadline_is_stored_as_infinity_not_null() -> None:
    nan_end = (1.0, math.nan, RunOutcome.FAIL, None, None)
    step = CheckState(status=Status.UP, due_at=math.inf, step_due=math.inf, orphan_end=nan_end)
    text = encode_state(step)
    assert '"due_at":Infinity' in text and '"step_due":Infinity' in text and "NaN" in text
    back = decode_state(text)
    assert back.due_at == back.step_due == math.inf and back.orphan_end is not None and math.isnan(back.orphan_end[1])


def test_a_text_orjson_refuses_is_read_by_the_json_module() -> None:
    # An escaped lone surrogate (orjson refuses it) and an integer past 64 bits (orjson would read a float).
    st_ = decode_state('{"status":"up","closed_runs":["\\ud800"],"failures":5}')
    assert st_.closed_runs == ("\ud800",) and st_.failures == 5
    assert encode_state(CheckState(closed_runs=("\ud800",))) == '{"closed_runs":["\\ud800"]}'


def test_non_ascii_text_is_stored_as_itself_and_reads_back() -> None:
    state = CheckState(status=Status.UP, last_members=("zürich", "東京"))
    assert '"zürich","東京"' in encode_state(state)
    assert decode_state(encode_state(state)) == state


def test_a_success_waiting_out_the_reorder_window_is_stored_and_judged_after_a_restart() -> None:
    from heartfly.core.assertions import parse_assertion
    from heartfly.core.states import REORDER_WINDOW, DeadlineKind, Event, advance, apply_event, next_deadline

    cfg = check(min_runtime=60.0, assertions=(parse_assertion("rows > 0"),))
    st = apply_event(cfg, initial_state(cfg, 1000.0), Event(Kind.START, 1000.0), 1000.0).state
    ev = Event(Kind.SUCCESS, 1010.0, None, 3, {"rows": 0.0, "bytes": math.inf}, "w1")  # inf: the json module's
    waiting = apply_event(cfg, st, ev, 1010.0).state
    assert waiting.waiting == ((1010.0, None, 3, {"rows": 0.0, "bytes": math.inf}, "w1", 1010.0, None),)
    stored = decode_state(encode_state(waiting))
    assert stored == waiting and stored.hold_until == 1010.0 + REORDER_WINDOW
    deadline = next_deadline(cfg, stored)
    assert deadline is not None and deadline.kind is DeadlineKind.END
    judged = advance(cfg, stored, 1010.0 + REORDER_WINDOW)
    assert judged.state.status is Status.DOWN and judged.state.reason is Reason.TOO_FAST and not judged.state.waiting
    assert judged.state.last_exit_status == 3 and [r.outcome for r in judged.ended] == [RunOutcome.TOO_FAST]


def test_a_ping_queued_behind_a_waiting_success_is_stored_and_a_state_from_before_queues_still_reads() -> None:
    from heartfly.core.states import Event, apply_event, receive

    cfg = check(min_runtime=60.0)
    st = apply_event(cfg, initial_state(cfg, 1000.0), Event(Kind.SUCCESS, 1000.0), 1000.0).state
    queued = receive(cfg, st, Event(Kind.START, 1001.0, "r2"), 1001.0)[-1].state
    assert [w[6] for w in queued.waiting] == [None, Kind.START]
    assert decode_state(encode_state(queued)) == queued
    # A state stored before pings queued held only successes, six fields each.
    text = encode_state(st)
    assert text.count("1000.0,null,null,null,null,1000.0,null]") == 1
    older = decode_state(text.replace("1000.0,null,null,null,null,1000.0,null]", "1000.0,null,null,null,null,1000.0]"))
    assert older == st


def test_a_states_older_orphan_ends_are_read_back_as_they_were_stored() -> None:
    state = CheckState(orphan_older=((5.0, 6.0, RunOutcome.SUCCESS, None, None), (7.0, 8.0, RunOutcome.FAIL, 3, None)))
    assert decode_state(encode_state(state)) == state
