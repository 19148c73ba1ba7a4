"""heartfly ping/run's argument reader without click: the usual forms, and None for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartfly.client import jobside, quickargs


def test_the_usual_ping_arguments_and_environment_become_a_send_ping_call() -> None:
    env = {"HEARTFLY_SPOOL": "/tmp/s", "HEARTFLY_RETRIES": "2", "HEARTFLY_CONFIG": ""}
    call = quickargs.parse(
        "ping", ["job", "--fail", "-m", "disk full", "--metric", "a=1", "--metric=b=2", "--rid=r1"], env
    )
    assert call is not None and call.func is jobside.send_ping  # type: ignore[attr-defined]
    assert call.args == ("job",)  # type: ignore[attr-defined]
    assert call.keywords == {  # type: ignore[attr-defined]
        "fail": True, "message": "disk full", "metrics": ["a=1", "b=2"], "rid": "r1",
        "spool_dir": Path("/tmp/s"), "retries": "2",
    }  # fmt: skip


def test_the_usual_run_arguments_become_a_run_job_call_with_the_command_after_the_dashes() -> None:
    call = quickargs.parse("run", ["--timeout", "5m", "-c", "hb.toml", "job", "--", "tar", "-czf", "x"], {})
    assert call is not None and call.func is jobside.run_job  # type: ignore[attr-defined]
    assert call.args == ("job", ["tar", "-czf", "x"])  # type: ignore[attr-defined]
    assert call.keywords == {"timeout": "5m", "config_path": Path("hb.toml")}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("ping", ["--help"]),
        ("ping", ["job", "--bogus"]),
        ("ping", ["job", "other"]),
        ("ping", []),
        ("ping", ["job", "-m"]),
        ("ping", ["job", "--exit-code", "256"]),
        ("ping", ["job", "--rid", "a", "--rid", "b"]),
        ("ping", ["job", "-mshort"]),
        ("run", ["job", "true"]),  # no --: click explains
        ("run", ["job", "--"]),
        ("run", ["--help", "job", "--", "true"]),
    ],
)
def test_anything_unusual_is_left_to_click(command: str, args: list[str]) -> None:
    assert quickargs.parse(command, args, {}) is None
