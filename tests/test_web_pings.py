"""Every ping form through a real socket into a real database (SQLite and PostgreSQL); bad input gets a clear 400."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config
from heartfly.web import pings as ping_routes
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query, writes_fail
from tests.webutil import raw_request, state_of

pytestmark = pytest.mark.both_stores

KEY = new_key()
START_KEY = new_key()
FAIL_KEY = new_key()
PING_KEY = new_key()
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(
        f"""
        [checks.backup]
        key = "{KEY}"
        start_key = "{START_KEY}"
        fail_key = "{FAIL_KEY}"
        every = "1h"
        [checks.quick]
        key = "{new_key()}"
        every = "1s"
        grace = "0s"
        """,
        server=f'ping_key = "{PING_KEY}"\nbody_limit = "1KB"',
    )


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Client:
    result: Client = await aiohttp_client(create_app(config))
    return result


def stored(
    config: Config,
    sql: str = "SELECT kind, exit_status, run_id, body, truncated, metrics, method, at FROM pings ORDER BY id",
) -> list[tuple[Any, ...]]:
    return query(config, sql)


def token(config: Config) -> dict[str, str]:
    assert config.server.api_token_file is not None
    return {"Authorization": f"Bearer {Path(config.server.api_token_file).read_text().strip()}"}


@pytest.mark.parametrize(
    ("suffix", "kind", "exit_status"),
    [
        ("", "success", None),
        ("/start", "start", None),
        ("/fail", "fail", None),
        ("/log", "log", None),
        ("/progress", "progress", None),
        ("/0", "success", 0),
        ("/1", "fail", 1),
        ("/255", "fail", 255),
        ("/0001", "fail", 1),  # as Healthchecks reads it
    ],
)
async def test_every_ping_form_answers_ok_and_is_stored_before_the_answer(
    client: Client, config: Config, suffix: str, kind: str, exit_status: int | None
) -> None:
    resp = await client.get(f"/ping/{KEY}{suffix}")
    assert resp.status == 200 and await resp.text() == "OK"
    rows = stored(config)  # read straight after the answer: 200 means committed
    assert [(r[0], r[1]) for r in rows] == [(kind, exit_status)]


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_get_post_and_head_are_all_pings(client: Client, config: Config, method: str) -> None:
    resp = await client.request(method, f"/ping/{KEY}")
    assert resp.status == 200
    assert stored(config)[0][6] == method


async def test_other_methods_are_refused_with_405(client: Client, config: Config) -> None:
    resp = await client.put(f"/ping/{KEY}")
    assert resp.status == 405 and stored(config) == []


async def test_a_post_body_is_the_message_and_is_truncated_past_the_limit(client: Client, config: Config) -> None:
    await client.post(f"/ping/{KEY}/fail", data=b"disk full\n")
    await client.post(f"/ping/{KEY}/log", data=b"x" * 5000)
    rows = stored(config)
    assert rows[0][3] == "disk full\n" and rows[0][4] == 0
    assert rows[1][3] == "x" * 1000 and rows[1][4] == 1


async def test_a_body_past_the_hard_cap_is_refused_with_413(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ping_routes, "BODY_HARD_CAP", 4000)
    for path in (f"/ping/{KEY}", f"/api/v1/heartbeat/{KEY}"):
        resp = await client.post(path, data=b"y" * 10_000)
        assert resp.status == 413 and stored(config) == []
        # as every ping answer: a browser's fetch() sees the 413, not a CORS error
        assert resp.headers["Access-Control-Allow-Origin"] == "*" and resp.headers["Ping-Body-Limit"] == "1000"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_that_inflates_past_the_hard_cap_is_refused_with_413(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    monkeypatch.setattr(ping_routes, "BODY_HARD_CAP", 4000)
    bomb = gzip.compress(bytes(5_000_000)) if encoding == "gzip" else zlib.compress(bytes(5_000_000))
    resp = await client.post(
        f"/ping/{KEY}/log", data=bomb, headers={"Content-Encoding": encoding, "Connection": "close"}
    )
    assert resp.status == 413 and stored(config) == []
    small = gzip.compress(b"done") if encoding == "gzip" else zlib.compress(b"done")
    assert (await client.post(f"/ping/{KEY}/log", data=small, headers={"Content-Encoding": encoding})).status == 200
    assert [row[3] for row in stored(config)] == ["done"]


async def test_a_non_utf8_body_is_stored_with_replacement_characters(client: Client, config: Config) -> None:
    resp = await client.post(f"/ping/{KEY}/log", data=b"ok \xff\xfe bytes")
    assert resp.status == 200
    assert stored(config)[0][3] == "ok \ufffd\ufffd bytes"


async def test_run_id_metrics_and_ts_are_parsed_and_stored(client: Client, config: Config) -> None:
    ts = int(time.time()) - 120
    resp = await client.get(f"/ping/{KEY}/start?rid=run-7&m_rows=1234&m_ratio=0.5&ts={ts}&cachebuster=1")
    assert resp.status == 200
    kind, _, rid, _, _, metrics, _, at = stored(config)[0]
    assert (kind, rid, at) == ("start", "run-7", ts)
    assert json.loads(metrics) == {"rows": 1234, "ratio": 0.5}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (f"/ping/{KEY}/bog%C3%BCs", "unknown ping event"),  # no event, and no check's name
        (f"/ping/{KEY}?ts=abc", "ts must be unix seconds"),
        (f"/ping/{KEY}?ts=99999999999", "in the future"),
        (f"/ping/{KEY}?ts=1000", "older than the server accepts"),
        (f"/ping/{KEY}?m_rows=lots", "must be a finite number"),
        (f"/ping/{KEY}?m_rows=nan", "must be a finite number"),
        (f"/ping/{KEY}?rid=" + "r" * 200, "rid must be"),
        (f"/ping/{KEY}/%C2%B2", "unknown ping event"),  # "²": isdigit() but not int()
        (f"/ping/{KEY}/%D9%A3", "unknown ping event"),  # Arabic-Indic 3: not an exit status here
        (f"/ping/{KEY}?m_" + "x" * 5000 + "=1", "must be 1 to 64 letters"),
    ],
)
async def test_malformed_pings_get_a_400_with_a_reason_and_store_nothing(
    client: Client, config: Config, path: str, reason: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 400
    assert reason in await resp.text()
    assert stored(config) == []


async def test_malformed_syntax_answers_the_same_for_unknown_keys(client: Client) -> None:
    known = await client.get(f"/ping/{KEY}/bogus")
    unknown = await client.get(f"/ping/{new_key()}/bogus")
    assert (known.status, await known.text()) == (unknown.status, await unknown.text())


@pytest.mark.parametrize(
    "path",
    [
        f"/ping/{'z' * 30}",
        f"/ping/{PING_KEY}/no-such-check",
        f"/ping/{KEY}/a/b/c",
        f"/api/v1/heartbeat/{'z' * 30}",
        # A name (of letters, or digits past 255) under a key: the ping_key mistyped, as it answers under the real one
        f"/ping/{KEY}/bogus",
        f"/ping/{KEY}/256",
    ],
)
async def test_unknown_keys_and_names_answer_404_not_found(client: Client, config: Config, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404 and await resp.text() == "not found\n"
    assert stored(config) == []


@pytest.mark.parametrize(
    ("tail", "method", "body"),
    [
        ("no-such-check", "GET", b""),
        ("no-such-check", "POST", b"x" * 2000),
        ("no-such-check/start", "GET", b""),
        ("no-such-check/bogus", "GET", b""),
        ("%C2%B2", "GET", b""),
        ("no-such-check/batch", "GET", b""),
        ("no-such-check/batch", "POST", b'{"pings": []}'),
        ("batch", "GET", b""),  # a batch under any other key; under the ping_key, the check named batch if any
        ("batch", "POST", b"not JSON"),
    ],
)
async def test_a_guessed_ping_key_is_answered_as_the_real_one_for_an_unknown_name(
    client: Client, config: Config, tail: str, method: str, body: bytes
) -> None:
    # Without a check's name, nothing may tell the server's ping_key from any other string: it
    # answered 400 "unknown ping event" under a wrong one and 404 under the right one, a test of
    # each guess; and told a job with a mistyped HEARTFLY_PING_KEY of an unknown event, its check's name
    real = await client.request(method, f"/ping/{PING_KEY}/{tail}", data=body)
    guess = await client.request(method, f"/ping/{new_key()}/{tail}", data=body)
    assert (guess.status, await guess.text()) == (real.status, await real.text())
    assert stored(config) == []


@pytest.mark.parametrize("key", [PING_KEY, "guess"])
async def test_a_name_no_check_may_have_is_told_what_a_name_may_be_under_any_key(
    client: Client, config: Config, key: str
) -> None:
    # A check to be made by `?create=1` under a name it may not have read only which events exist
    resp = await client.get(f"/ping/{key if key == PING_KEY else new_key()}/Bad%20Name?create=1")
    text = await resp.text()
    assert resp.status == 400 and "check's name" in text and 'letters, digits, "_", "." and "-"' in text
    assert stored(config) == []


async def test_a_check_name_under_a_wrong_ping_key_answers_404_not_found(client: Client, config: Config) -> None:
    resp = await client.get(f"/ping/{new_key()}/backup")
    assert resp.status == 404 and await resp.text() == "not found\n"
    assert stored(config) == []


async def test_a_check_can_be_pinged_by_name_under_the_server_ping_key(client: Client, config: Config) -> None:
    assert (await client.get(f"/ping/{PING_KEY}/backup/start")).status == 200
    assert (await client.get(f"/ping/{PING_KEY}/backup")).status == 200
    assert [r[0] for r in stored(config)] == ["start", "success"]


async def test_start_and_fail_keys_force_their_event_whatever_the_url_says(client: Client, config: Config) -> None:
    await client.get(f"/ping/{START_KEY}")
    await client.post(f"/api/v1/heartbeat/{FAIL_KEY}", json={"status": "success", "message": "ETL failed: boom"})
    await client.head(f"/ping/{FAIL_KEY}/0")
    assert [(r[0], r[3]) for r in stored(config)] == [("start", ""), ("fail", "ETL failed: boom"), ("fail", "")]


async def test_the_json_heartbeat_carries_status_message_run_id_metrics_and_exit_code(
    client: Client, config: Config
) -> None:
    resp = await client.post(
        f"/api/v1/heartbeat/{KEY}",
        json={"status": "start", "message": "ETL process initiated", "run_id": "r1", "metrics": {"rows": 3}},
    )
    assert resp.status == 200
    await client.post(f"/api/v1/heartbeat/{KEY}", json={"exit_code": 2, "run_id": "r1"})
    await client.get(f"/api/v1/heartbeat/{KEY}")
    await client.post(f"/api/v1/heartbeat/{KEY}", data=b"")
    rows = stored(config)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("start", None, "r1", "ETL process initiated"),
        ("fail", 2, "r1", ""),
        ("success", None, None, ""),
        ("success", None, None, ""),
    ]
    assert json.loads(rows[0][5]) == {"rows": 3}


async def test_a_json_success_with_a_non_zero_exit_code_is_a_failure_alone_and_in_a_batch(
    client: Client, config: Config
) -> None:
    await client.post(f"/api/v1/heartbeat/{KEY}", json={"status": "success", "exit_code": 3})
    await client.post(f"/ping/{KEY}/batch", json={"pings": [{"status": "success", "exit_code": 4}]})
    await client.post(f"/api/v1/heartbeat/{KEY}", json={"status": "start", "exit_code": 5})  # not an end
    await client.post(f"/api/v1/heartbeat/{KEY}", json={"status": "success", "exit_code": 0})
    rows = stored(config)
    assert [(r[0], r[1]) for r in rows] == [("fail", 3), ("fail", 4), ("start", 5), ("success", 0)]


async def test_a_json_heartbeat_over_1_mib_is_refused_but_a_fail_key_keeps_it_as_the_readme_says(
    client: Client, config: Config
) -> None:
    body = json.dumps({"status": "fail", "message": "x" * (1 << 20)}).encode()
    refused = await client.post(f"/api/v1/heartbeat/{KEY}", data=body)
    assert (refused.status, await refused.text()) == (400, "a JSON body is limited to 1048576 bytes\n")
    assert stored(config) == []
    kept = await client.post(f"/api/v1/heartbeat/{FAIL_KEY}", data=body)
    assert kept.status == 200
    assert [(r[0], len(r[3]), r[4]) for r in stored(config)] == [("fail", 1000, 1)]  # body_limit = "1KB"


async def test_a_fail_key_heartbeat_keeps_a_log_up_to_a_body_limit_past_1_mib(
    write_config: ConfigWriter, aiohttp_client: Any
) -> None:
    # With body_limit = "4MiB", a job posting its 1.5 MiB log to its fail key's heartbeat URL (as
    # README's example does) had it cut to 1 MiB, the JSON cap, though the key takes any body.
    config = write_config(
        f'[checks.backup]\nkey = "{KEY}"\nfail_key = "{FAIL_KEY}"\nevery = "1h"\n', server='body_limit = "4MiB"'
    )
    client = await aiohttp_client(create_app(config))
    log = b"line of the job's output\n" * 64_000  # 1.5 MiB
    assert (await client.post(f"/api/v1/heartbeat/{FAIL_KEY}", data=log)).status == 200
    assert [(r[0], len(r[3]), r[4]) for r in stored(config)] == [("fail", len(log), 0)]
    # A JSON body is still parsed only up to 1 MiB: valid JSON (raw newlines in a string are not,
    # and were refused for that alone), refused for its size.
    too_long = await client.post(f"/api/v1/heartbeat/{KEY}", data=json.dumps({"message": log.decode()}))
    assert too_long.status == 400
    assert "a JSON body is limited to 1048576 bytes" in await too_long.text()
    assert len(stored(config)) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"status": "finished"}', "unknown status"),
        (b'{"exit_code": 300}', "exit_code must be"),
        (b'{"metrics": {"rows": "many"}}', "must be a finite number"),
        (b'{"message": 5}', "message must be a string"),
        (b'{"ts": "yesterday"}', "ts must be unix seconds"),
        (b"\xff\xfe", "invalid JSON"),
        (b'{"exit_code": ' + b"9" * 5000 + b"}", "invalid JSON"),  # past Python's int digit limit
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"metrics": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, "nested too deeply"),
        (b'{"ts": 1' + b"0" * 400 + b"}", "ts must be unix seconds"),  # float() overflows
        (b'{"metrics": {"rows": 1' + b"0" * 400 + b"}}", "must be a finite number"),
        (b'{"metrics": {"r\\ud800": 1}}', "metric name"),  # a lone surrogate echoed in the reason
    ],
)
async def test_a_bad_json_heartbeat_gets_a_400_and_stores_nothing(
    client: Client, config: Config, body: bytes, reason: str
) -> None:
    resp = await client.post(f"/api/v1/heartbeat/{KEY}", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and reason in await resp.text()
    assert stored(config) == []


async def test_a_long_json_message_is_truncated_to_the_body_limit(client: Client, config: Config) -> None:
    await client.post(f"/api/v1/heartbeat/{KEY}", json={"status": "log", "message": "é" * 800})
    body, truncated = stored(config)[0][3:5]
    assert truncated == 1 and len(body.encode()) <= 1000 and set(body) == {"é"}


async def test_a_failing_database_answers_503_then_recovers(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    with writes_fail(config, client.app[RUNTIME].writer, monkeypatch):
        resp = await client.get(f"/ping/{KEY}")
        assert resp.status == 503 and "not recorded" in await resp.text()
        assert (await client.get("/readyz")).status == 503
    for _ in range(50):
        resp = await client.get(f"/ping/{KEY}/log")
        if resp.status == 200:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200 and (await client.get("/readyz")).status == 200
    assert [r[0] for r in stored(config)] == ["log"]


async def test_the_checks_api_needs_the_token_and_lists_every_check(client: Client, config: Config) -> None:
    assert (await client.get("/api/v1/checks")).status == 401
    assert (await client.get("/api/v1/checks", headers={"Authorization": "Bearer wrong"})).status == 401
    await client.get(f"/ping/{KEY}/fail")
    resp = await client.get("/api/v1/checks", headers=token(config))
    assert resp.status == 200
    items = {i["name"]: i for i in await resp.json()}
    assert set(items) == {"backup", "quick"}
    backup = items["backup"]
    assert (backup["state"], backup["reason"]) == ("down", "failed")
    assert backup["last_ping_at"].endswith("Z") and backup["due_at"].endswith("Z")
    down = await client.get("/api/v1/checks?state=down", headers=token(config))
    assert [i["name"] for i in await down.json()] == ["backup"]


async def test_a_missed_deadline_fires_on_its_own_and_is_recorded_as_a_flip(client: Client, config: Config) -> None:
    for _ in range(100):
        resp = await client.get("/api/v1/checks/quick", headers=token(config))
        if (await resp.json())["state"] == "down":
            break
        await asyncio.sleep(0.05)
    item = await resp.json()
    assert (item["state"], item["reason"]) == ("down", "missed")
    flips = await (await client.get("/api/v1/checks/quick/flips", headers=token(config))).json()
    assert [(f["old"], f["new"], f["reason"]) for f in flips] == [("new", "down", "missed")]


async def test_pause_and_resume_through_the_api(client: Client, config: Config) -> None:
    resp = await client.post("/api/v1/checks/backup/pause", headers=token(config))
    assert (await resp.json())["state"] == "paused"
    resp = await client.post("/api/v1/checks/backup/resume", headers=token(config))
    assert (await resp.json())["state"] == "new"
    assert (await client.post("/api/v1/checks/nope/pause", headers=token(config))).status == 404


async def test_a_start_or_fail_key_takes_any_body_as_its_message_but_a_plain_key_needs_json(
    client: Client, config: Config
) -> None:
    assert (await client.post(f"/api/v1/heartbeat/{START_KEY}", data=b"starting: not JSON")).status == 200
    assert (await client.post(f"/api/v1/heartbeat/{FAIL_KEY}", data=b"y" * 3000)).status == 200
    assert (await client.post(f"/api/v1/heartbeat/{KEY}", data=b"not JSON")).status == 400
    rows = stored(config)
    assert [(r[0], r[3][:18], r[4]) for r in rows] == [("start", "starting: not JSON", 0), ("fail", "y" * 18, 1)]
    assert len(rows[1][3]) == 1000


async def test_a_non_ascii_segment_where_the_ping_key_goes_is_answered_not_a_crash(client: Client) -> None:
    two = await client.get("/ping/%C3%A9%C3%A9%C3%A9/backup")  # key "ééé", check "backup": no ping_key
    assert two.status == 404 and await two.text() == "not found\n"
    three = await client.get("/ping/%C3%A9%C3%A9%C3%A9/backup/start")  # neither form
    assert three.status == 404 and await three.text() == "not found\n"


async def test_a_lone_surrogate_in_a_json_message_is_stored_as_a_replacement_character(
    client: Client, config: Config
) -> None:
    body = b'{"status": "log", "message": "a\\ud800b"}'
    resp = await client.post(f"/api/v1/heartbeat/{KEY}", data=body)
    assert resp.status == 200
    assert stored(config)[0][3] == "a\ufffdb"


@pytest.mark.parametrize("path", [f"/ping/{KEY}/log", f"/api/v1/heartbeat/{KEY}", f"/ping/{new_key()}"])
async def test_a_body_that_does_not_match_its_content_encoding_gets_a_400_and_stores_nothing(
    client: Client, config: Config, path: str
) -> None:
    resp = await client.post(path, data=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert resp.status == 400
    assert "cannot read the body" in await resp.text()
    assert stored(config) == []


@pytest.mark.parametrize("encoding", ["x-gzip", "GZIP, identity", "identity, gzip"])
async def test_a_gzip_body_under_another_spelling_of_its_content_encoding_is_inflated(
    client: Client, config: Config, encoding: str
) -> None:
    # RFC 9110 says x-gzip is gzip, and identity is no coding: such a job's output was stored as
    # the compressed bytes, replaced characters that no one could read.
    resp = await client.post(
        f"/ping/{KEY}/log", data=gzip.compress(b"disk 93% full"), headers={"Content-Encoding": encoding}
    )
    assert resp.status == 200
    assert [row[3] for row in stored(config)] == ["disk 93% full"]


@pytest.mark.parametrize("encoding", ["gzip, gzip", "compress", "x-compress", "deflate, gzip"])
async def test_a_body_in_a_content_encoding_it_cannot_inflate_gets_a_400_and_stores_nothing(
    client: Client, config: Config, encoding: str
) -> None:
    resp = await client.post(
        f"/ping/{KEY}/log", data=gzip.compress(b"disk 93% full"), headers={"Content-Encoding": encoding}
    )
    assert resp.status == 400
    assert f"Content-Encoding {encoding} is not supported" in await resp.text()
    assert stored(config) == []


@pytest.mark.parametrize("encoding", ["br, zstd", "br, br", "compress, charset"])
async def test_a_list_of_codings_none_of_which_it_inflates_gets_a_400_too(
    client: Client, config: Config, encoding: str
) -> None:
    # "br" alone was refused, but in a list without gzip or deflate ("br, zstd") it was read as
    # no coding at all: the compressed bytes were stored as the message, answered 200.
    resp = await client.post(f"/ping/{KEY}/log", data=b"\x1b\x0c\x00\xf8", headers={"Content-Encoding": encoding})
    assert resp.status == 400
    assert stored(config) == []


@pytest.mark.parametrize(
    ("lines", "status"),
    [((b"identity", b"gzip"), 200), ((b"gzip", b"identity"), 200), ((b"gzip", b"gzip"), 400)],
)
async def test_a_content_encoding_given_in_two_header_lines_is_read_as_their_list(
    client: Client, config: Config, lines: tuple[bytes, bytes], status: int
) -> None:
    # Two header lines are one comma-separated list (RFC 9110, 5.3), as a proxy that adds its own
    # may send them. Only the first was read: "identity" then "gzip" stored the gzip bytes as the
    # message with a 200, and a body gzipped twice was inflated once.
    head = b"POST /ping/%s/log HTTP/1.1\r\nContent-Encoding: %s\r\nContent-Encoding: %s" % (KEY.encode(), *lines)
    assert await raw_request(client, head, gzip.compress(b"disk 93% full")) == status
    assert [row[3] for row in stored(config)] == (["disk 93% full"] if status == 200 else [])


@pytest.mark.parametrize("path", [f"/ping/{KEY}/log", f"/api/v1/heartbeat/{KEY}", f"/ping/{PING_KEY}/backup/log"])
async def test_a_gzip_body_cut_short_gets_a_400_stores_nothing_and_its_whole_resend_is_stored(
    client: Client, config: Config, path: str
) -> None:
    # A job's output gzipped and cut off on its way (a proxy, a killed pipe): what arrived
    # inflates to a prefix, but without the gzip trailer it is not the body that was sent.
    body = b'{"status": "log", "message": "disk 93% full"}'
    whole = gzip.compress(body)
    cut = await client.post(f"{path}?ping_id=resend-0001", data=whole[:-8], headers={"Content-Encoding": "gzip"})
    assert cut.status == 400
    assert "cannot read the body" in await cut.text()
    assert stored(config) == []
    again = await client.post(f"{path}?ping_id=resend-0001", data=whole, headers={"Content-Encoding": "gzip"})
    assert again.status == 200 and await again.text() == "OK"
    [row] = stored(config)
    assert row[0] == "log" and "disk 93% full" in row[3]


async def test_a_uuid_run_id_pairs_its_start_and_end_whatever_the_case_of_its_hex_digits(
    client: Client, config: Config
) -> None:
    # As in Healthchecks, whose run ids are UUIDs: macOS's uuidgen writes upper case, Linux's
    # /proc/sys/kernel/random/uuid lower; the start and the end of one run may come from either.
    rid = "4B2F0C6E-9A1D-4E7B-8C3F-2D5A6B7C8D9E"
    now = time.time()
    assert (await client.get(f"/ping/{KEY}/start?rid={rid}&ts={now - 30}")).status == 200
    assert (await client.post(f"/api/v1/heartbeat/{KEY}", json={"run_id": rid.lower(), "ts": now})).status == 200
    assert (await client.get(f"/ping/{KEY}/start?rid=Batch-A&ts={now - 20}")).status == 200  # not a UUID: as sent
    assert (await client.get(f"/ping/{KEY}?rid=batch-a&ts={now - 10}")).status == 200
    runs = stored(config, "SELECT run_id, ended_at - started_at FROM runs ORDER BY id")
    assert [(r, round(d)) for r, d in runs] == [(rid.lower(), 30)]
    assert (await state_of(client, config, "backup"))["open_runs"] == 1  # Batch-A's: batch-a is another run
    assert [r[2] for r in stored(config)] == [rid.lower(), rid.lower(), "Batch-A", "batch-a"]


async def test_a_user_agent_that_is_not_utf8_is_stored_replaced_and_fails_no_other_ping(
    client: Client, config: Config
) -> None:
    bad = raw_request(client, f"GET /ping/{KEY}/log HTTP/1.1\r\nUser-Agent: bad\xff".encode("latin-1"))
    good = asyncio.gather(*(client.get(f"/ping/{KEY}/log") for _ in range(10)))
    first, rest = await asyncio.gather(bad, good)
    assert first == 200 and all(r.status == 200 for r in rest)
    agents = [row[0] for row in stored(config, "SELECT user_agent FROM pings")]
    assert "bad\ufffd" in agents and len(agents) == 11


async def test_a_body_slower_than_the_time_limit_gets_a_408_and_stores_nothing(
    client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ping_routes, "BODY_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(f"POST /ping/{KEY}/log HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nslow".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.split()[1] == b"408"
    assert stored(config) == []


async def test_ping_answers_carry_healthchecks_headers_and_a_preflight_is_answered(client: Any, config: Any) -> None:
    key = next(iter(config.checks.values())).key
    for method, path in (("GET", f"/ping/{key}"), ("POST", f"/ping/{key}/fail"), ("GET", "/ping/" + "x" * 30)):
        resp = await client.request(method, path)
        assert resp.headers["Access-Control-Allow-Origin"] == "*", (method, path, resp.status)
        assert resp.headers["Ping-Body-Limit"] == str(config.server.body_limit)
    preflight = await client.options(f"/ping/{key}", headers={"Origin": "https://example.com",
                                                               "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert (await client.options(f"/api/v1/heartbeat/{key}")).status == 204


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_a_bare_key_ping_is_stored_as_the_general_path_stores_it(
    client: Client, config: Config, method: str
) -> None:
    """`/ping/<key>` without a query or a body takes the fast path (pings._key_only); with a query
    parameter every reader ignores (a cache-buster) the same ping goes through _one. Every stored
    column but the ids and times must agree, for a plain key and for the keys that force an event,
    and an unknown key answers alike on both paths."""
    columns = "check_id, kind, exit_status, run_id, body, truncated, metrics, method, source, user_agent, member, uid"
    for key in (KEY, START_KEY, FAIL_KEY):
        for url in (f"/ping/{key}", f"/ping/{key}?cachebuster=1"):
            resp = await client.request(method, url, headers={"User-Agent": "probe/1.0"})
            assert resp.status == 200
            assert resp.headers["Ping-Body-Limit"] == "1000" and resp.headers["Access-Control-Allow-Origin"] == "*"
    rows = stored(config, f"SELECT {columns} FROM pings ORDER BY id")
    assert len(rows) == 6
    assert [rows[0], rows[2], rows[4]] == [rows[1], rows[3], rows[5]]
    assert [r[1] for r in rows[::2]] == ["success", "start", "fail"]
    answers = []
    for url in (f"/ping/{new_key()}", f"/ping/{new_key()}?cachebuster=1"):
        resp = await client.request(method, url)
        answers.append((resp.status, await resp.text(), dict(resp.headers).get("Ping-Body-Limit")))
    assert answers[0] == answers[1] and answers[0][0] == 404


async def slow_body_ping(
    aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch, ts: float | None
) -> tuple[FakeClock, bytes]:
    """A failure, then a success whose body's last bytes come 3 s after its headers (`ts` from the
    server's clock at its headers): the clock, and the success's answer."""
    clock = FakeClock(time.time())
    client = await aiohttp_client(create_app(config, clock=clock))
    reading = asyncio.Event()
    read_body = ping_routes.read_body

    async def noted(request: web.Request, keep: int, cap: int) -> tuple[bytes, bool]:
        reading.set()
        return await read_body(request, keep, cap)

    monkeypatch.setattr(ping_routes, "read_body", noted)
    assert (await client.get(f"/ping/{KEY}/fail")).status == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    query = "" if ts is None else f"?ts={clock.now() + ts:.3f}"
    head = f"POST /ping/{KEY}{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 9\r\n\r\n"
    writer.write(head.encode() + b"backup")
    await writer.drain()
    await asyncio.wait_for(reading.wait(), 5)
    clock.advance(3.0)  # the rest of the body comes 3 s later
    writer.write(b" ok")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return clock, answer


# No ts; a ts ahead of the server's clock (within FUTURE_SKEW), which counts as the instant it arrived
@pytest.mark.parametrize("ahead", [None, 10.0])
async def test_a_ping_whose_body_is_slow_to_arrive_is_dated_when_it_is_received_not_reported_late(
    aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch, ahead: float | None
) -> None:
    # A job's output posted over a slow link takes seconds to arrive: the ping is a live one, dated
    # when it is whole (as Healthchecks dates it), not a replay that "arrived 3 s after it happened".
    clock, answer = await slow_body_ping(aiohttp_client, config, monkeypatch, ahead)
    assert answer.split()[1] == b"200"
    at, received_at = stored(config, "SELECT at, received_at FROM pings WHERE kind = 'success'")[0]
    assert at == received_at == clock.now()
    detail, learned_at = stored(config, "SELECT detail, learned_at FROM flips WHERE new = 'up'")[0]
    assert "arrived" not in detail and learned_at is None


async def test_a_ts_that_grew_older_than_max_ping_age_while_its_body_came_is_a_clear_400(
    aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Taken when its headers came, it would be a ping older than the ids remembered (exactly once)
    _, answer = await slow_body_ping(aiohttp_client, config, monkeypatch, 1.0 - config.server.max_ping_age)
    assert answer.split()[1] == b"400" and b"older than the server accepts (max_ping_age" in answer
    assert stored(config, "SELECT kind FROM pings") == [("fail",)]
