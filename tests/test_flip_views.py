"""State changes people can read: the API's flips, `heartfly history` and the dashboard leave out
the up <-> running of every healthy run unless asked for everything. A real server throughout."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_key
from tests.proc import Server, heartfly

KEY = new_key()
# Two healthy runs, a failure and a recovery: new -> running -> up -> running -> up -> down -> up.
PINGS = ("start", "", "start", "", "fail", "")
EVERYTHING = [
    ("new", "running"),
    ("running", "up"),
    ("up", "running"),
    ("running", "up"),
    ("up", "down"),
    ("down", "up"),
]
CHANGES = [("new", "running"), ("up", "down"), ("down", "up")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    path = tmp_path_factory.mktemp("flips") / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\npublic = true\n'
        f'[checks.nightly]\nkey = "{KEY}"\nevery = "1h"\n'
    )
    with Server(path) as server:
        for event in PINGS:
            with urllib.request.urlopen(f"{server.url}/ping/{KEY}/{event}".rstrip("/")) as resp:
                assert resp.status == 200
        yield server, path


def get(url: str) -> tuple[int, Any, dict[str, str]]:
    try:
        with urllib.request.urlopen(url) as resp:
            body = resp.read().decode()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(body) if "json" in kind else body, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def pairs(flips: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["old"], f["new"]) for f in reversed(flips)]  # oldest first, as they happened


def test_the_flips_api_leaves_out_up_running_changes_unless_all_is_asked_for(served: tuple[Server, Path]) -> None:
    server, _ = served
    url = f"{server.url}/api/v1/checks/nightly/flips"
    status, flips, _ = get(url)
    assert status == 200 and pairs(flips) == CHANGES
    for yes in ("1", "true"):
        assert pairs(get(f"{url}?all={yes}")[1]) == EVERYTHING
    assert pairs(get(f"{url}?all=0")[1]) == CHANGES


def test_a_page_of_all_flips_links_to_the_next_page_of_all_flips(served: tuple[Server, Path]) -> None:
    server, _ = served
    status, page, headers = get(f"{server.url}/api/v1/checks/nightly/flips?all=1&limit=4")
    assert status == 200 and len(page) == 4
    link = re.fullmatch(r"<(.+)>; rel=\"next\"", headers["Link"])
    assert link is not None and "all=1" in link.group(1)
    rest = get(server.url + link.group(1))[1]
    assert len(rest) == 2 and pairs(page + rest) == EVERYTHING  # newest first: this page, then the next
    changes = get(f"{server.url}/api/v1/checks/nightly/flips?limit=2")
    assert pairs(changes[1]) == CHANGES[1:]
    nxt = re.fullmatch(r"<(.+)>; rel=\"next\"", changes[2]["Link"])
    assert nxt is not None and pairs(get(server.url + nxt.group(1))[1]) == CHANGES[:1]


@pytest.mark.parametrize("value", ["yes", "2", ""])
def test_an_all_that_is_not_a_yes_or_no_is_a_400(served: tuple[Server, Path], value: str) -> None:
    server, _ = served
    status, body, _ = get(f"{server.url}/api/v1/checks/nightly/flips?all={value}")
    assert status == 400 and body == {"error": "all must be 1 (or true) or 0 (or false)"}


def test_the_openapi_document_declares_the_all_parameter_of_flips_only(served: tuple[Server, Path]) -> None:
    server, _ = served
    doc = get(f"{server.url}/api/v1/openapi.json")[1]
    params = {p["name"]: p for p in doc["paths"]["/api/v1/checks/{name}/flips"]["parameters"]}
    assert params["all"]["in"] == "query" and params["all"]["schema"] == {"type": "boolean", "default": False}
    assert "all" not in {p["name"] for p in doc["paths"]["/api/v1/checks/{name}/pings"]["parameters"]}


def history_changes(out: str) -> list[str]:
    section = out.split("State changes", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"Z  (\w+ -> \w+)", section)


def test_history_leaves_out_up_running_changes_unless_given_all(served: tuple[Server, Path]) -> None:
    _, path = served
    result = heartfly("history", "nightly", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "State changes (newest first; up <-> running left out, --all shows them):" in result.stdout
    assert history_changes(result.stdout) == ["down -> up", "up -> down", "new -> running"]
    everything = heartfly("history", "nightly", "--all", "-c", str(path))
    assert "State changes (newest first):" in everything.stdout
    assert history_changes(everything.stdout) == [f"{a} -> {b}" for a, b in reversed(EVERYTHING)]


def test_the_dashboard_shows_the_changes_that_matter_with_a_link_to_show_all(served: tuple[Server, Path]) -> None:
    server, _ = served

    def panel(query: str) -> str:
        status, page, _ = get(f"{server.url}/checks/nightly{query}")
        assert status == 200
        return str(page).split('id="flips-h"', 1)[1].split("</section>", 1)[0]

    changes = panel("")
    assert '<a href="../checks/nightly?flips=all#flips">Show all</a>' in changes
    assert changes.count("<li>") == 3
    everything = panel("?flips=all")
    assert '<a href="../checks/nightly#flips">' in everything and everything.count("<li>") == 6
