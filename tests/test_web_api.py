"""The JSON API through real sockets: access, pagination, runs, pause with an end, reload, JSON errors; both stores."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from heartfly.core.config import Config, load_config
from heartfly.web import api
from heartfly.web.app import create_app
from heartfly.web.openapi import DOCUMENT
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.webutil import Client, bearer, csrf_in, login, state_of, token_of, until

pytestmark = pytest.mark.both_stores

KEY = new_key()
CHECKS = f"""
[checks.backup]
key = "{KEY}"
every = "1h"
[checks.report]
key = "{new_key()}"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
"""


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(CHECKS)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Client:
    result: Client = await aiohttp_client(create_app(config))
    return result


async def test_the_api_takes_the_bearer_token_and_refuses_a_missing_or_wrong_one(
    client: Client, config: Config
) -> None:
    assert (await client.get("/api/v1/checks")).status == 401
    wrong = await client.get("/api/v1/checks", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and (await wrong.json())["error"] == "missing or wrong API token"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    ok = await client.get("/api/v1/checks", headers=bearer(config))
    assert ok.status == 200
    assert [c["name"] for c in await ok.json()] == ["backup", "report"]


async def test_checks_filter_by_state_and_an_unknown_state_is_a_json_400(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/fail")
    down = await (await client.get("/api/v1/checks?state=down", headers=bearer(config))).json()
    assert [c["name"] for c in down] == ["backup"]
    bad = await client.get("/api/v1/checks?state=sideways", headers=bearer(config))
    assert bad.status == 400 and "unknown state" in (await bad.json())["error"]


async def test_unknown_endpoints_and_methods_under_the_api_answer_json(client: Client, config: Config) -> None:
    missing = await client.get("/api/v1/nothing/here", headers=bearer(config))
    assert missing.status == 404 and missing.content_type == "application/json"
    assert "no such endpoint" in (await missing.json())["error"]
    wrong_method = await client.delete("/api/v1/checks/backup", headers=bearer(config))
    assert wrong_method.status == 405 and wrong_method.content_type == "application/json"
    assert wrong_method.headers["Allow"] == "GET, HEAD"
    no_check = await client.get("/api/v1/checks/nope/pings", headers=bearer(config))
    assert no_check.status == 404 and (await no_check.json()) == {"error": "no such check"}


async def test_limit_and_before_page_through_pings_newest_first_with_a_link_to_the_next(
    client: Client, config: Config
) -> None:
    for i in range(5):
        await client.post(f"/ping/{KEY}/log", data=f"line {i}".encode())
    first = await client.get("/api/v1/checks/backup/pings?limit=2", headers=bearer(config))
    page1 = await first.json()
    assert [p["body"] for p in page1] == ["line 4", "line 3"]
    link = first.headers["Link"]
    assert link == f'</api/v1/checks/backup/pings?limit=2&before={page1[-1]["id"]}>; rel="next"'
    page2 = await (await client.get(link[1 : link.index(">")], headers=bearer(config))).json()
    assert [p["body"] for p in page2] == ["line 2", "line 1"]
    last = await client.get(f"/api/v1/checks/backup/pings?limit=2&before={page2[-1]['id']}", headers=bearer(config))
    assert [p["body"] for p in await last.json()] == ["line 0"]
    assert "Link" not in last.headers  # a short page is the last one


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=ten", "before=0", "before=x", "limit=%D9%A3", "limit=1_0", "limit=%201"]
)
async def test_a_limit_or_cursor_out_of_range_is_a_json_400(client: Client, config: Config, query: str) -> None:
    resp = await client.get(f"/api/v1/checks/backup/flips?{query}", headers=bearer(config))
    assert resp.status == 400
    assert "must be an integer from" in (await resp.json())["error"]


@pytest.mark.parametrize(("before", "status"), [(2**62, 200), (2**62 + 1, 400)])
async def test_the_cursor_takes_every_value_the_openapi_document_allows(
    client: Client, config: Config, before: int, status: int
) -> None:
    resp = await client.get(f"/api/v1/checks/backup/runs?before={before}", headers=bearer(config))
    assert resp.status == status


async def test_runs_list_finished_runs_with_their_durations_and_outcomes(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/start?rid=a")
    await client.get(f"/ping/{KEY}/start?rid=b")
    await client.get(f"/ping/{KEY}/3?rid=a")
    await client.get(f"/ping/{KEY}?rid=b")
    runs = await (await client.get("/api/v1/checks/backup/runs", headers=bearer(config))).json()
    assert [(r["run_id"], r["outcome"], r["exit_status"]) for r in runs] == [("b", "success", None), ("a", "fail", 3)]
    assert all(r["duration"] >= 0 and r["started_at"].endswith("Z") for r in runs)
    one = await (await client.get("/api/v1/checks/backup/runs?limit=1", headers=bearer(config))).json()
    assert [r["run_id"] for r in one] == ["b"]


async def test_alerts_and_flips_are_listed_newest_first(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/fail")
    await client.get(f"/ping/{KEY}")
    flips = await (await client.get("/api/v1/checks/backup/flips", headers=bearer(config))).json()
    assert [(f["old"], f["new"]) for f in flips] == [("down", "up"), ("new", "down")]
    alerts = await client.get("/api/v1/checks/backup/alerts", headers=bearer(config))
    assert alerts.status == 200 and await alerts.json() == []  # no channels in this config


async def test_a_pause_with_an_end_resumes_the_check_by_itself(client: Client, config: Config) -> None:
    resp = await client.post("/api/v1/checks/backup/pause?until=300ms", headers=bearer(config))
    body = await resp.json()
    assert body["state"] == "paused" and body["paused_until"] is not None

    async def resumed() -> bool:
        return bool((await state_of(client, config, "backup"))["state"] != "paused")

    await until(resumed)
    assert (await state_of(client, config, "backup"))["paused_until"] is None
    flips: list[dict[str, Any]] = []

    async def flip_stored() -> bool:  # the state is in memory at once, its flip row a commit later
        flips[:] = await (await client.get("/api/v1/checks/backup/flips", headers=bearer(config))).json()
        return bool(flips[0]["detail"] != "paused by an operator")

    await until(flip_stored)
    assert flips[0]["detail"] == "resumed: its pause ended"  # not "by an operator": nobody did it


async def test_pause_takes_an_iso_time_with_its_offset_and_resume_cancels_it(client: Client, config: Config) -> None:
    later = datetime.now(timezone(timedelta(hours=1))).replace(microsecond=0) + timedelta(hours=2)
    resp = await client.post("/api/v1/checks/backup/pause", params={"until": later.isoformat()}, headers=bearer(config))
    assert resp.status == 200
    assert (await resp.json())["paused_until"] == later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for far in ("400d", "99999d"):  # past a year; past any duration's bound: the same words
        too_far = await client.post(f"/api/v1/checks/backup/pause?until={far}", headers=bearer(config))
        assert too_far.status == 400 and "at most a year" in (await too_far.json())["error"], far
    garbled = await client.post("/api/v1/checks/backup/pause?until=at%20most", headers=bearer(config))
    assert garbled.status == 400 and "expected a duration" in (await garbled.json())["error"]  # not a duration
    resumed = await (await client.post("/api/v1/checks/backup/resume", headers=bearer(config))).json()
    assert resumed["state"] == "new" and resumed["paused_until"] is None


@pytest.mark.parametrize(
    ("until_text", "why"),
    [("soon", "expected a duration"), ("", "expected a duration"), ("2001-01-01T00:00:00Z", "future")],
)
async def test_a_bad_pause_end_is_a_json_400_and_changes_nothing(
    client: Client, config: Config, until_text: str, why: str
) -> None:
    resp = await client.post(f"/api/v1/checks/backup/pause?until={until_text}", headers=bearer(config))
    assert resp.status == 400 and why in (await resp.json())["error"]
    assert (await state_of(client, config, "backup"))["state"] == "new"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"until": "2h"}', "application/json"),  # as Healthchecks' API and requests' json= send one
        (b"until=2h", "application/x-www-form-urlencoded"),  # as `curl -d until=2h` sends it
    ],
)
async def test_a_pause_whose_end_is_sent_in_the_body_is_a_json_400_not_a_pause_for_ever(
    client: Client, config: Config, body: bytes, content_type: str
) -> None:
    headers = {**bearer(config), "Content-Type": content_type}
    resp = await client.post("/api/v1/checks/backup/pause", data=body, headers=headers)
    assert resp.status == 400 and "?until=" in (await resp.json())["error"]
    assert (await state_of(client, config, "backup"))["state"] == "new"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",  # as requests' json={} sends it
        b"{\n}\n",  # an empty object as a file written by hand holds it (curl -d @empty.json): was a 400
        b"\t{ }\r\n",
    ],
)
async def test_a_pause_with_an_empty_body_or_an_empty_json_object_is_a_pause(
    client: Client, config: Config, body: bytes
) -> None:
    headers = {**bearer(config), "Content-Type": "application/json"}
    resp = await client.post("/api/v1/checks/backup/pause", data=body, headers=headers)
    assert resp.status == 200 and (await resp.json())["state"] == "paused"


async def test_a_pause_with_an_end_survives_a_restart(aiohttp_client: Any, config: Config) -> None:
    first: Client = await aiohttp_client(create_app(config))
    paused = await (await first.post("/api/v1/checks/backup/pause?until=2h", headers=bearer(config))).json()
    await first.close()
    second: Client = await aiohttp_client(create_app(config))
    again = await state_of(second, config, "backup")
    assert again["state"] == "paused" and again["paused_until"] == paused["paused_until"]


async def test_reload_rereads_the_file_and_a_broken_file_keeps_the_running_config(
    client: Client, config: Config
) -> None:
    path = config.path
    path.write_text(path.read_text() + f'[checks.added]\nkey = "{new_key()}"\nevery = "5m"\n')
    resp = await client.post("/api/v1/reload", headers=bearer(config))
    assert resp.status == 200 and (await resp.json())["checks"] == 3
    assert (await client.get("/api/v1/checks/added", headers=bearer(config))).status == 200
    path.write_text(path.read_text() + "[checks.broken]\nevery = 5\n")
    broken = await client.post("/api/v1/reload", headers=bearer(config))
    body = await broken.json()
    assert broken.status == 400 and "still running the previous config" in body["error"]
    assert any(p.startswith("checks.broken") for p in body["problems"])
    assert len(await (await client.get("/api/v1/checks", headers=bearer(config))).json()) == 3


async def test_the_session_cookie_reads_the_api_but_a_write_needs_the_csrf_header(
    client: Client, config: Config
) -> None:
    csrf = await login(client, config)
    assert (await client.get("/api/v1/checks")).status == 200
    refused = await client.post("/api/v1/checks/backup/pause")
    assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["error"]
    ok = await client.post("/api/v1/checks/backup/pause", headers={"X-CSRF-Token": csrf})
    assert ok.status == 200 and (await ok.json())["state"] == "paused"


async def test_a_browser_behind_a_proxy_that_asks_for_basic_auth_signs_in_and_keeps_the_csrf_check(
    client: Client, config: Config
) -> None:
    # nginx's auth_basic: the browser sends its Basic login with every request, and the proxy passes it on
    basic = {"Authorization": "Basic " + base64.b64encode(b"ops:proxy-password").decode()}
    signed_in = await client.post("/login", data={"token": token_of(config)}, headers=basic, allow_redirects=False)
    assert signed_in.status == 303
    page = await client.get("/", headers=basic, allow_redirects=False)
    assert page.status == 200, page.headers.get("Location")
    csrf = csrf_in(await page.text())
    assert (await client.get("/api/v1/checks", headers=basic)).status == 200
    refused = await client.post("/api/v1/checks/backup/pause", headers=basic)  # the Basic login is no API token
    assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["error"]
    ok = await client.post("/api/v1/checks/backup/pause", headers={**basic, "X-CSRF-Token": csrf})
    assert ok.status == 200 and (await ok.json())["state"] == "paused"
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/checks", headers=basic)).status == 401


async def test_public_mode_opens_reads_without_the_token_but_never_writes(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server="public = true")
    client: Client = await aiohttp_client(create_app(config))
    assert (await client.get("/api/v1/checks")).status == 200
    assert (await client.get("/api/v1/checks/backup/pings")).status == 200
    assert (await client.post("/api/v1/checks/backup/pause")).status == 401
    assert (await client.post("/api/v1/reload")).status == 401
    assert (await client.get("/api/v1/checks", headers={"Authorization": "Bearer wrong"})).status == 401


async def test_without_a_token_file_the_api_is_disabled(aiohttp_client: Any, config: Config) -> None:
    no_token = dataclasses.replace(config, server=dataclasses.replace(config.server, api_token_file=None))
    client: Client = await aiohttp_client(create_app(no_token))
    resp = await client.get("/api/v1/checks")
    assert resp.status == 403 and "api_token_file" in (await resp.json())["error"]


async def test_the_openapi_document_is_served_without_a_token_and_names_only_real_routes(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.") and doc == DOCUMENT
    app = client.app
    assert app is not None
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    for path, item in doc["paths"].items():
        for method in ("get", "post"):
            if method in item:
                routed = {(method.upper(), path), ("*", path)} & routes  # "*": a path both APIs share
                assert routed, f"{method} {path} is documented but not routed"


def test_every_paged_list_in_the_openapi_document_declares_its_link_header() -> None:
    paged = {
        path: item["get"]["responses"]["200"]
        for path, item in DOCUMENT["paths"].items()
        if "get" in item
        and any(p["name"] == "before" for p in [*item.get("parameters", []), *item["get"].get("parameters", [])])
    }
    assert "/api/v1/downtimes" in paged and "/api/v1/checks/{name}/pings" in paged
    assert {path for path, answer in paged.items() if "Link" not in answer.get("headers", {})} == set()


def test_the_example_config_sets_public_off_and_parses(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "heartfly.example.toml"
    assert load_config(example).server.public is False


async def test_an_unknown_query_parameter_is_a_json_400_rather_than_silently_ignored(
    client: Client, config: Config
) -> None:
    resp = await client.get("/api/v1/checks/backup/pings?limt=5", headers=bearer(config))
    assert resp.status == 400 and (await resp.json())["error"] == "unknown query parameter 'limt'"


async def test_downtimes_of_heartfly_itself_are_listed_newest_first(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    async with TestClient(TestServer(create_app(config))) as client:
        for stopped, started, clean in ((1780000000, 1780000090, 1), (1780001000, 1780001030.5, 0)):
            # two earlier stops, as restarts record them
            query(config, "INSERT INTO downtimes (stopped_at, started_at, clean) VALUES (?, ?, ?)",
                  (stopped, started, clean))  # fmt: skip
        resp = await client.get("/api/v1/downtimes", headers=bearer(config))
        assert resp.status == 200
        body = await resp.json()
        assert [(d["seconds"], d["clean"]) for d in body] == [(30.5, False), (90.0, True)]
        assert body[0]["stopped_at"] == "2026-05-28T20:43:20.000Z"
        assert (await client.get("/api/v1/downtimes")).status == 401


async def test_downtimes_page_with_limit_and_before_like_the_other_lists(write_config: ConfigWriter) -> None:
    # A crash loop records a downtime per restart: more than one page of them is no rare thing.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    async with TestClient(TestServer(create_app(config))) as client:
        for n in range(5):
            query(config, "INSERT INTO downtimes (stopped_at, started_at, clean) VALUES (?, ?, 0)",
                  (1780000000 + 100 * n, 1780000000 + 100 * n + n + 1))  # fmt: skip
        first = await client.get("/api/v1/downtimes?limit=2", headers=bearer(config))
        assert first.status == 200, await first.text()
        page1 = await first.json()
        assert [d["seconds"] for d in page1] == [5.0, 4.0]
        link = first.headers["Link"]
        assert link == f'</api/v1/downtimes?limit=2&before={page1[-1]["id"]}>; rel="next"'
        page2 = await (await client.get(link[1 : link.index(">")], headers=bearer(config))).json()
        assert [d["seconds"] for d in page2] == [3.0, 2.0]
        last = await client.get(f"/api/v1/downtimes?limit=2&before={page2[-1]['id']}", headers=bearer(config))
        assert [d["seconds"] for d in await last.json()] == [1.0] and "Link" not in last.headers


async def test_a_page_of_large_pings_is_sent_without_holding_the_whole_answer_in_memory(
    client: Client, config: Config
) -> None:
    # 200 bodies of 100 KB of control characters: JSON writes each as \u0001, so the page is 120 MB.
    # Built whole, it took the string and its bytes at once (and held the event loop meanwhile).
    body = b"\x01" * config.server.body_limit
    for _ in range(200):
        assert (await client.post(f"/ping/{KEY}/log", data=body)).status == 200
    tracemalloc.start()
    try:
        resp = await client.get("/api/v1/checks/backup/pings?limit=200", headers=bearer(config))
        size, tail = 0, b""
        async for chunk in resp.content.iter_any():  # read as it comes, kept by no one
            size, tail = size + len(chunk), (tail + chunk)[-20:]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resp.status == 200 and resp.content_type == "application/json"
    assert size > 120_000_000 and tail.endswith(b'"member": null}]')
    assert peak < size / 3  # the rows read (20 MB), not a copy of the answer


async def test_the_event_loop_turns_while_a_long_list_of_checks_is_made(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100k checks were seconds of summaries in one turn of the loop: no ping answered meanwhile.
    config = write_config("".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(2500)))
    client: Client = await aiohttp_client(create_app(config))
    turned = asyncio.Event()
    seen: list[bool] = []  # at each summary: whether the loop has turned since the first one
    make = api.summary

    def watching(app: Any, check: Any) -> dict[str, Any]:
        if not seen:
            asyncio.get_running_loop().call_soon(turned.set)
        seen.append(turned.is_set())
        return make(app, check)

    monkeypatch.setattr(api, "summary", watching)
    resp = await client.get("/api/v1/checks", headers=bearer(config))
    assert resp.status == 200 and len(await resp.json()) == 2500
    assert any(seen)


@pytest.mark.parametrize(
    "path", ["/api/v1/checks", "/api/v1/checks/backup/pings?limit=2", "/api/v1/checks/backup/flips"]
)
async def test_a_head_of_a_streamed_list_has_its_length_and_no_body(client: Client, config: Config, path: str) -> None:
    # A HEAD answer's body is the start of the next answer on the connection for the client: a
    # streamed list must not write one (its GET's length, as a json_response gave, and nothing else).
    for _ in range(3):
        assert (await client.post(f"/ping/{KEY}/log", data=b"x")).status == 200
    auth = "".join(f"{k}: {v}\r\n" for k, v in bearer(config).items())
    request = (
        f"HEAD {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(request.encode())
        answers = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and rest.startswith(b"HTTP/1.1 200 "), answers
    got = await client.get(path, headers=bearer(config))
    assert f"\r\ncontent-length: {len(await got.read())}\r\n".encode() in head.lower() + b"\r\n"


@pytest.mark.parametrize("path", ["/api/v1/checks", "/api/v3/checks/"])
async def test_a_listing_of_every_check_lets_pings_in_every_hundred_checks(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Made 1,000 checks between two turns of the event loop (0.13 s at 50,000 checks on a 2-core
    # VM), a listing held each ping that came meanwhile for several of them: answered up to 1.3 s
    # late through the 5 to 10 s of a listing of 50,000 (0.5 s at most a hundred at a time).
    from tests.test_hc_api import start

    checks = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(450))
    client, hc_key, _ = await start(aiohttp_client, write_config, checks)
    config = client.app[RUNTIME].config
    turns = 0
    at: dict[str, int] = {}

    async def turning() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    engine = client.app[RUNTIME].engine
    all_read, json_array = engine.all_read, api.json_array

    async def read_first() -> None:
        await all_read()
        at["made from"] = turns

    async def answer(*args: Any) -> Any:
        at["made by"] = turns
        return await json_array(*args)

    monkeypatch.setattr(engine, "all_read", read_first)
    monkeypatch.setattr(api, "json_array", answer)
    counter = asyncio.create_task(turning())
    try:
        headers = {"X-Api-Key": hc_key} if "v3" in path else bearer(config)
        listed = await client.get(path, headers=headers)
        assert listed.status == 200
    finally:
        counter.cancel()
    assert at["made by"] - at["made from"] >= 4  # 450 checks, a hundred at a time
