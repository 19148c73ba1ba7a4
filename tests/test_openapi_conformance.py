"""The API against its own OpenAPI document: schemathesis generates requests from the document and
checks every answer (status codes, content types, bodies, headers, auth) on a real `heartfly serve`."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from heartfly.web.openapi import DOCUMENT
from tests.conftest import new_key
from tests.proc import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    path = folder / "hb.toml"
    key = new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.backup]\nkey = "{key}"\nevery = "1h"\n'
        f'[checks.report]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    with Server(path) as running:
        # Something to list: a run, a failure, a log line with a message.
        import urllib.request

        for suffix in ("/start", "", "/fail", "/log"):
            urllib.request.urlopen(f"{running.url}/ping/{key}{suffix}", data=b"a message").read()
        yield running


@pytest.fixture(scope="module")
def auth(server: Server) -> str:
    return (server.config.parent / "token").read_text().strip()


@pytest.fixture(scope="module")
def api_schema(server: Server, auth: str) -> Any:
    # The token as the document's "bearer" scheme, not as a header override: schemathesis then
    # knows every request carries it, and its negative cases that drop it are really sent without.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"bearer": {"bearer": auth}}}})
    return schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json", config=config)


# One test per documented operation and generation mode, named from the document itself. (Driven
# through schemathesis' Python API: its lazy pytest-fixture plugin does not run under pytest 9.)
OPERATIONS = [
    (path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item if method != "parameters"
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_api_operation_answers_as_its_openapi_document_says(
    api_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        # aiohttp refuses a request line over 8190 bytes itself (text/plain 400), before any route.
        assume(len(urllib.parse.urlencode(case.query or {}, doseq=True)) < 4096)
        case.call_and_validate()

    conforms()


CHECK_OPERATIONS = [(p, m) for p, m in OPERATIONS if p.startswith("/api/v1/checks/{name}")]


@pytest.mark.parametrize(("path", "method"), CHECK_OPERATIONS, ids=[f"{m} {p}" for p, m in CHECK_OPERATIONS])
def test_a_real_checks_pings_runs_flips_and_state_match_their_schemas(api_schema: Any, path: str, method: str) -> None:
    operation = api_schema[path][method]

    # A well-formed `until` may still lie in the past or too far ahead: a 400 then is right.
    excluded = [positive_data_acceptance] if path.endswith("/pause") else []

    @given(case=operation.as_strategy(path_parameters={"name": "backup"}))
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code != 404  # the check exists: its real data was checked

    conforms()
