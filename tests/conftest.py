from __future__ import annotations

import dataclasses
import secrets
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from heartfly.core.config import CheckConfig, Config, ConfigError, load_config
from tests import pgserver

ConfigWriter = Callable[..., Config]


def new_key() -> str:
    return secrets.token_urlsafe(18)


def check(name: str = "job", **kw: object) -> CheckConfig:
    """A CheckConfig for pure tests: every 1h, grace 5m unless told otherwise."""
    fields: dict[str, object] = {"name": name, "key": new_key(), "every": 3600.0, "grace": 300.0}
    fields.update(kw)
    if "cron" in kw and "every" not in kw:
        fields["every"] = None
    return CheckConfig(**fields)  # type: ignore[arg-type]


def past_validation(config: Config, name: str, **fields: object) -> Config:
    """`config` with check `name` changed beyond what validation allows (a 300 ms repeat): for
    tests of timing that should not wait out the limits users get."""
    changed = config.checks[name]._replace(**fields)  # type: ignore[arg-type]
    return dataclasses.replace(config, checks={**config.checks, name: changed})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_stores: each test runs on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module or test marked both_stores runs once per store; the others on SQLite alone."""
    if "store_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_stores"):
        metafunc.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)


def problems(write_config: ConfigWriter, body: str, server: str = "") -> list[str]:
    """The problems a config with these checks (and [server] lines) is refused with."""
    with pytest.raises(ConfigError) as info:
        write_config(body, server=server)
    return info.value.problems


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    """One PostgreSQL cluster for the session; the tests that need it skip, saying why, without one."""
    reason = pgserver.why_not()
    if reason is not None:
        pytest.skip(reason)
    with pgserver.cluster() as server:
        yield server


@pytest.fixture
def own_cluster() -> Iterator[pgserver.PgServer]:
    """A PostgreSQL of the test's own: stopped and started by it, which the session's must not be."""
    reason = pgserver.why_not()
    if reason is not None:
        pytest.skip(reason)
    with pgserver.cluster() as server:
        yield server


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The `database` value write_config puts in [server]: a file, or a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield '"heartfly.db"'
        return
    server: pgserver.PgServer = request.getfixturevalue("pg_server")
    yield f'"{server.database()}"'


@pytest.fixture
def write_config(tmp_path: Path, store_backend: str) -> ConfigWriter:
    """Writes a TOML file in tmp_path (server section pointing at tmp_path, or at the test's
    PostgreSQL database where the test runs on both stores) and loads it."""

    def write(body: str, *, server: str = "", name: str = "heartfly.toml") -> Config:
        given = textwrap.dedent(server).strip()
        defaults = {"listen": '"127.0.0.1:0"', "database": store_backend, "api_token_file": '"api-token"'}
        lines = [f"{k} = {v}" for k, v in defaults.items() if f"{k} =" not in given]
        text = "[server]\n" + "\n".join([*lines, given]) + "\n" + textwrap.dedent(body)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return load_config(path)

    return write
