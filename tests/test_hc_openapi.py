"""Healthchecks' Management API against its own OpenAPI document (/api/v3/openapi.json): schemathesis
generates requests from the document and checks every answer (status codes, content types, bodies,
auth) on a real `heartfly serve` with both keys, a check from the file and one made through the API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from heartfly.core.config import load_config
from heartfly.web.app import create_app
from heartfly.web.hc_openapi import DOCUMENT
from tests.conftest import new_key
from tests.proc import Server


def call(server: Server, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"X-Api-Key": key} if key is not None else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request) as resp:
        raw = resp.read()
        return resp.status, json.loads(raw) if resp.headers.get_content_type() == "application/json" else raw


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("hc-openapi")
    path = folder / "hb.toml"
    key = new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\n'
        'hc_api_key_file = "hc-key"\nhc_api_key_readonly_file = "hc-ro"\n'
        '[channels.ops]\ntype = "log"\n'
        f'[checks.backup]\nkey = "{key}"\nevery = "1h"\ntags = ["nightly", "db"]\nchannels = ["ops"]\n'
        f'[checks.report]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    with Server(path) as running:
        # Something to list: a run, a failure, a log line with a message; pings with and without a body.
        for suffix in ("/start", "", "/fail", "/log"):
            urllib.request.urlopen(f"{running.url}/ping/{key}{suffix}", data=b"a message").read()
        urllib.request.urlopen(f"{running.url}/ping/{key}").read()
        yield running


@pytest.fixture(scope="module")
def key(server: Server) -> str:
    return (server.config.parent / "hc-key").read_text().strip()


@pytest.fixture(scope="module")
def made(server: Server, key: str) -> str:
    """A check made through the API, pinged once with a body: its uuid."""
    status, check = call(server, "POST", "/api/v3/checks/", {"name": "Made here", "slug": "made", "timeout": 3600,
                                                             "tags": "api", "channels": "*"}, key)  # fmt: skip
    assert status == 201
    ping_key = check["ping_url"].rsplit("/", 1)[1]
    urllib.request.urlopen(f"{server.url}/ping/{ping_key}", data=b"made's message").read()
    return str(check["uuid"])


@pytest.fixture(scope="module")
def backup(server: Server, key: str) -> tuple[str, int]:
    """The file's check: its uuid and the `n` of a ping of it with a body."""
    _, found = call(server, "GET", "/api/v3/checks/?slug=backup", key=key)
    code = found["checks"][0]["uuid"]
    _, pings = call(server, "GET", f"/api/v3/checks/{code}/pings/", key=key)
    with_body = [p["n"] for p in pings["pings"] if p["body_url"]]
    assert len(pings["pings"]) == 5 and len(with_body) == 4
    return code, with_body[0]


@pytest.fixture(scope="module")
def api_schema(server: Server, key: str, made: str) -> Any:
    # The key as the document's "apiKey" scheme, not as a header override: schemathesis then knows
    # every request carries it, and its negative cases that drop it are really sent without.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"apiKey": {"api_key": key}}}})
    return schemathesis.openapi.from_url(f"{server.url}/api/v3/openapi.json", config=config)


def test_the_document_is_served_without_a_key_and_names_only_real_routes(server: Server) -> None:
    status, doc = call(server, "GET", "/api/v3/openapi.json")
    assert status == 200 and doc == DOCUMENT and doc["openapi"].startswith("3.")
    _, own = call(server, "GET", "/api/v1/openapi.json")
    assert "/api/v3/openapi.json" in own["info"]["description"]
    app = create_app(load_config(server.config))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    for path, item in DOCUMENT["paths"].items():
        for method in ("get", "post", "delete"):
            if method in item:
                routed = {(method.upper(), path), ("*", path)} & routes
                assert routed, f"{method} {path} is documented but not routed"


# One test per documented operation and generation mode, named from the document itself. (Driven
# through schemathesis' Python API: its lazy pytest-fixture plugin does not run under pytest 9.)
OPERATIONS = [
    (path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item if method != "parameters"
]
# What the document cannot say: a slug no other check has, a valid cron schedule, a known time zone
# and channel. A create or update that is well formed by the document may still be a 400 then.
SEMANTIC_400 = {("/api/v3/checks/", "POST"), ("/api/v3/checks/{code}", "POST")}
FRAMING = {"expect", "transfer-encoding", "content-length"}  # headers aiohttp answers for itself, before a route


# GET /api/v3/status/ takes nothing (no parameter, no key) that could be made invalid: positive only.
CASES = [
    (path, method, mode)
    for path, method in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (path == "/api/v3/status/" and mode is GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m} {p}-{g.value}" for p, m, g in CASES])
def test_every_operation_answers_as_the_healthchecks_document_says(
    api_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    excluded = [positive_data_acceptance] if (path, method) in SEMANTIC_400 else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        # aiohttp refuses a request line over 8190 bytes itself (text/plain 400), before any route.
        assume(len(urllib.parse.urlencode(case.query or {}, doseq=True)) < 4096)
        # Nor does a route see an `Expect` header other than 100-continue (aiohttp answers 417 itself),
        # or a request whose framing headers contradict each other (a 400 from aiohttp's parser, as
        # for `Transfer-Encoding: INF` beside the client's `Content-Length: 0`).
        assume(not FRAMING & {name.lower() for name in case.headers or {}})
        case.call_and_validate(excluded_checks=excluded)

    conforms()


CHECK_OPERATIONS = [(p, m) for p, m in OPERATIONS if p.startswith("/api/v3/checks/{code}")]


@pytest.mark.parametrize(("path", "method"), CHECK_OPERATIONS, ids=[f"{m} {p}" for p, m in CHECK_OPERATIONS])
def test_real_checks_and_their_pings_and_flips_match_their_schemas(
    api_schema: Any, server: Server, key: str, made: str, backup: tuple[str, int], path: str, method: str
) -> None:
    """The file's check for reads, pause and resume (an update or delete of it is a 403); the check
    made through the API for updates; a fresh one for every delete."""
    operation = api_schema[path][method]
    code, n = backup
    params: dict[str, Any] = {"code": made if method == "POST" and path.endswith("{code}") else code}
    if "{n}" in path:
        params["n"] = n
    excluded = [positive_data_acceptance] if (path, method) in SEMANTIC_400 else []

    @given(case=operation.as_strategy(path_parameters=params))
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        if method == "DELETE":
            status, check = call(server, "POST", "/api/v3/checks/", {}, key)
            assert status == 201
            case.path_parameters["code"] = check["uuid"]
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code not in (404, 405)  # the check exists: its real data was checked
        if (path, method) == ("/api/v3/checks/{code}/pings/{n}/body", "GET"):
            assert response.status_code == 200 and response.text == "a message"

    conforms()


def test_the_read_only_key_sees_unique_keys_and_reads_by_them_as_documented(
    api_schema: Any, server: Server, backup: tuple[str, int]
) -> None:
    readonly = (server.config.parent / "hc-ro").read_text().strip()
    headers = {"X-Api-Key": readonly}

    def get(path: str, template: str) -> requests.Response:
        response = requests.get(server.url + path, headers=headers, timeout=10)
        api_schema[template]["GET"].validate_response(response)
        return response

    checks = get("/api/v3/checks/", "/api/v3/checks/")
    assert checks.status_code == 200
    found = {c["slug"]: c for c in checks.json()["checks"]}
    assert all("uuid" not in c and "update_url" not in c for c in found.values())
    unique = found["backup"]["unique_key"]
    assert get(f"/api/v3/checks/{unique}", "/api/v3/checks/{code}").json()["slug"] == "backup"
    assert get(f"/api/v3/checks/{unique}/flips/", "/api/v3/checks/{code}/flips/").status_code == 200
    assert get("/api/v3/badges/", "/api/v3/badges/").json()["badges"].keys() >= {"*", "nightly", "db"}
    # The read-write key's reads and every write refuse it, as Healthchecks does.
    assert get("/api/v3/channels/", "/api/v3/channels/").status_code == 401
    assert get(f"/api/v3/checks/{backup[0]}/pings/", "/api/v3/checks/{code}/pings/").status_code == 401
    refused = requests.post(f"{server.url}/api/v3/checks/{backup[0]}/pause", headers=headers, timeout=10)
    api_schema["/api/v3/checks/{code}/pause"]["POST"].validate_response(refused)
    assert refused.json() == {"error": "wrong api key"}


def test_a_superscript_digit_in_a_flips_bound_is_the_documented_empty_400(
    api_schema: Any, server: Server, key: str, backup: tuple[str, int]
) -> None:
    # "²" is a digit to str.isdigit() but no number to int(): it was a 500. (Schemathesis does not
    # make such query values; "١", an Arabic-Indic one, is a number to both, as to Healthchecks' form.)
    for query, status in (("seconds=%C2%B2", 400), ("start=%D9%A1", 200)):
        response = requests.get(
            f"{server.url}/api/v3/checks/{backup[0]}/flips/?{query}", headers={"X-Api-Key": key}, timeout=10
        )
        api_schema["/api/v3/checks/{code}/flips/"]["GET"].validate_response(response)
        assert response.status_code == status


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a": ' * 100_000], ids=["array", "object"])
def test_a_body_nested_too_deep_to_parse_is_the_documented_400(
    api_schema: Any, server: Server, key: str, raw: bytes
) -> None:
    # json.loads raises RecursionError, not ValueError, for it: it was a 500.
    response = requests.post(f"{server.url}/api/v3/checks/", data=raw, headers={"X-Api-Key": key}, timeout=10)
    api_schema["/api/v3/checks/"]["POST"].validate_response(response)
    assert response.status_code == 400 and response.json() == {"error": "could not parse request body"}


def test_a_body_api_key_that_the_header_outranks_may_be_any_json_as_documented(server: Server, key: str) -> None:
    # With X-Api-Key the body's api_key is not read, a number neither (as in Healthchecks); the document
    # said "a string", and schemathesis' negative cases failed at random on such a body.
    body = {"name": "Key twice", "api_key": 12345}
    assert jsonschema_rs.is_valid(DOCUMENT["components"]["schemas"]["CheckSpec"], body)
    assert call(server, "POST", "/api/v3/checks/", body, key)[0] == 201
