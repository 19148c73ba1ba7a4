"""Stored states decode as they did before from_json's fast path, older rows included; new ones
encode once per distinct state."""

from __future__ import annotations

import json

import pytest

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
    with pytest.raises((ValueError, AttributeError)) as alone:
        decode_state(bad[0])
    with pytest.raises(type(alone.value)):
        decode_states([good, *bad, good])


def test_a_row_with_whitespace_around_its_object_decodes_as_before() -> None:
    assert decode_state(' {"status": "down", "reason": "failed"}\n') == decode_state(
        '{"status":"down","reason":"failed"}'
    )
