"""The config file is parsed by rtoml where it reads as tomli does, and by tomli otherwise: every
document reads as tomli reads it, in the same order, and every error is tomli's (tomlparse)."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import pytest
import tomli
from hypothesis import given, settings
from hypothesis import strategies as st

from heartfly.core import tomlparse

DOCUMENTS = {
    "plain": '[server]\nlisten = "127.0.0.1:0"\n[checks.a]\nkey = "k"\nevery = "1h"\n',
    "CRLF line endings": '[checks.a]\r\nkey = "k"\r\ndescription = """\r\nfirst\r\nsecond\r\n"""\r\n',
    "a literal multi-line string over CRLF": "d = '''\r\none\r\ntwo'''\r\n",
    "a line-ending backslash over CRLF": 'd = """one \\\r\n    two"""\r\n',
    "escapes": r'd = "tab\t quote\" back\\ e\u00e9 \U0001F600 cr\r"' + "\n",
    "dates and times": "a = 1979-05-27T00:32:00.999999-07:00\nb = 1979-05-27\nc = 07:32:00\nd = 1979-05-27T07:32:00Z\n",
    "a float beyond a double": "a = 1e400\nb = -1e400\n",
    "numbers": "a = 0xff_ff\nb = 0o17\nc = 0b101\nd = 1_000\ne = -0.0\nf = 6.626e-34\ng = inf\nh = -inf\n",
    "dotted and quoted keys": 'a."b.c".d = 1\n"x y" = 2\n[t.u]\nv = [1, "two", {w = 3}]\n',
    "arrays of tables": "[[a]]\nb = 1\n[[a]]\nb = 2\n[a.c]\nd = 3\n",
    "tables nested deeper than rtoml goes": "a = " + "[" * 100 + "]" * 100 + "\n",
    "a byte order mark": '\ufeff[checks.a]\nkey = "k"\n',
    "a table made by one inside it, then defined": "[channels.hook.headers]\nx = 1\n[channels.ops]\n[channels.hook]\n",
    "an array's table made before its parent is defined": "[[parent.arr]]\n[[x]]\n[parent]\n",
    "an inline table": 'a = { b = 1, c = "d" }\n',
    "an array of arrays over lines": "a = [\n  [1, 2],\n  [3],\n]\n",
    "a quoted key in a header": '[checks."x.y"]\nkey = "k"\n',
}


def same(a: Any, b: Any) -> bool:
    """Equal, counting NaN equal to NaN (a document may hold one)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_every_document_reads_as_tomli_reads_it(text: str) -> None:
    assert same(tomlparse.loads(text.encode()), tomli.loads(text.removeprefix("\ufeff")))


# A config as large ones are: server, defaults, channels, then the checks' tables.
CONFIG = "".join(
    [
        '[server]\nlisten = "127.0.0.1:8765"\n\n[defaults]\ngrace = "5m"\nchannels = ["ops"]\n\n',
        '[channels.ops]\ntype = "webhook"\nurl = "https://example.com/hook"\n\n',
        *(f'[checks.job-{i}]  # team {i % 7}\nkey = "k{i}"\nevery = "1h"\ntags = ["t{i % 3}"]\n\n' for i in range(50)),
    ]
)


@pytest.mark.parametrize("text", [DOCUMENTS["CRLF line endings"], CONFIG], ids=["CRLF", "a config"])
def test_a_config_of_the_common_kind_is_read_without_tomli(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    want = tomli.loads(text)

    def refused(text: str, **kw: Any) -> dict[str, Any]:
        raise AssertionError("tomli was asked")

    monkeypatch.setattr(tomli, "loads", refused)
    assert same(tomlparse.loads(text.encode()), want)


@pytest.mark.parametrize(
    "text",
    [
        '[server\nlisten = "x"\n',
        "a = 1\na = 2\n",
        'a = "bare \r cr"\n',
        "a = 01\n",
        "[t]\n[t]\n",
        "a = " + "[" * 5000,
        '[checks.a]\r\r\nkey = "k"\r\n',  # a stray carriage return before a CRLF
        'a = """x\r\r\ny"""',
        "a = { b =\n1 }\n",  # a line break inside an inline table
        "a = { b\n= 1 }\n",
        "\ufeff\ufeffa = 1\n",  # a second byte order mark
    ],
)
def test_a_broken_document_raises_tomlis_own_error(text: str) -> None:
    with pytest.raises((tomli.TOMLDecodeError, RecursionError)) as caught:
        tomli.loads(text)
    with pytest.raises(type(caught.value)) as got:
        tomlparse.loads(text.encode())
    assert str(got.value) == str(caught.value)


# Text as a config's strings hold it: any characters, line breaks of either kind among them.
NO_SURROGATES: tuple[Literal["Cs"], ...] = ("Cs",)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=NO_SURROGATES), max_size=30)
LINE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n'", exclude_categories=("Cs", "Cc")), max_size=12)
NUMBER = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False))


# Table headers as a config's are, and some it would never hold, in any order (many such documents
# define a table twice, which both parsers refuse alike).
HEADERS = st.sampled_from(
    [
        "[server]",
        "[checks]",
        "[checks.a]",
        "[checks.b]",
        "[checks.a.x]",
        "[[checks.c]]",
        "[channels.ops]",
        "[channels.hook]",
        "[channels.hook.headers]",
        "[channels]",
        "[[m.w]]",
        "[m]",
        "[a.b.c]",
        "[a]",
        "  [a.b]",
        "[ checks.d ]",
        '["q.r"]',
        "[checks.e] # a comment",
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for n in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            lines.append(draw(HEADERS))
        shape = draw(st.sampled_from(["basic", "multi-line literal", "number", "array"]))
        if shape == "basic":
            value = json.dumps(draw(TEXT), ensure_ascii=False)  # JSON's escapes are TOML's
        elif shape == "multi-line literal":
            value = "'''\n" + draw(st.sampled_from(["\n", "\r\n"])).join(draw(st.lists(LINE, max_size=4))) + "'''"
        elif shape == "number":
            value = repr(draw(NUMBER))
        else:
            value = json.dumps(draw(st.lists(st.integers(-1000, 1000), max_size=4)))
        lines.append(f"k{n} = {value}")
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(text=documents())
def test_generated_documents_read_as_tomli_reads_them_or_fail_as_it_fails(text: str) -> None:
    try:
        want: Any = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        with pytest.raises(tomli.TOMLDecodeError, match=None) as got:
            tomlparse.loads(text.encode())
        assert str(got.value) == str(exc)
        return
    assert same(tomlparse.loads(text.encode()), want)
