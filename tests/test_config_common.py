"""The common shape of a check is read by a fast path (checkconfig.common_check); whatever it reads must
come out exactly as the full reader's, and whatever it refuses must be left to the full reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from heartfly.core import config
from heartfly.core.checkconfig import common_check
from heartfly.core.config import ConfigError, parse_config
from tests.conftest import new_key

DEFAULTS: list[dict[str, Any]] = [
    {},
    {"grace": "10m", "timezone": "Europe/Berlin", "channels": ["ops"], "repeat": "1h", "failures_before_alert": 2},
    {"max_runtime": "1h", "min_runtime": "1m", "stall": "5m"},
    {"max_runtime": "1m", "min_runtime": "1h"},  # a bad pair: every check that inherits it is refused
]

CHECKS: list[dict[str, Any]] = [
    {"every": "1h"},
    {"every": "90s", "grace": "0s", "description": "nightly"},
    {"cron": "0 3 * * *", "timezone": "America/New_York", "grace": "30m", "max_runtime": "2h"},
    {"cron": "@DAILY", "tags": ["db", "prod"], "channels": [], "min_runtime": "10s", "max_runtime": "5m"},
    {"every": "15m", "stall": "1m", "repeat": "2h", "failures_before_alert": 3, "description": ""},
    # each of these is wrong: the full reader words the problem
    {"every": "0.5s"},
    {"every": 60},
    {"every": "1h", "cron": "* * * * *"},
    {"every": "1h", "timezone": "UTC"},
    {"cron": "0 3 * * *", "timezone": "Mars/Olympus"},
    {"every": "1h", "failures_before_alert": True},
    {"every": "1h", "failures_before_alert": 0},
    {"every": "1h", "tags": ["two words"]},
    {"every": "1h", "channels": ["ops", ""]},
    {"every": "1h", "grace": "0.5s"},
    {"every": "1h", "min_runtime": "2h", "max_runtime": "1h"},
    {"every": "1h", "evry": "1h"},
    {"every": "1h", "after": "other", "within": "1h"},
    {"cron": "0 3 30 2 *"},
    {},
]


def _document(defaults: dict[str, Any], check: dict[str, Any], key: Any) -> dict[str, Any]:
    return {
        "defaults": defaults,
        "channels": {"ops": {"type": "log"}},
        "checks": {"job": {"key": key, **check}, "other": {"key": new_key(), "every": "1h", "channels": ["ops"]}},
    }


def _read(document: dict[str, Any]) -> tuple[dict[str, config.CheckConfig] | None, list[str]]:
    try:
        return dict(parse_config(document, Path("/etc/heartfly/heartfly.toml")).checks), []
    except ConfigError as exc:
        return None, exc.problems


@pytest.mark.parametrize("defaults", DEFAULTS)
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("key", [new_key(), "short", None])
def test_the_fast_path_reads_as_the_full_reader_does(
    monkeypatch: pytest.MonkeyPatch, defaults: dict[str, Any], check: dict[str, Any], key: Any
) -> None:
    document = _document(defaults, check, key)
    if key is None:
        del document["checks"]["job"]["key"]
    fast = _read(document)
    monkeypatch.setattr(config, "common_check", lambda *_: None)  # as config.py calls it
    assert fast == _read(document)
    if check in CHECKS[:5] and defaults in DEFAULTS[:3] and key is not None and len(key) > 20:
        assert fast[0] is not None, fast[1]  # the valid ones are read, so both paths were compared


def test_the_fast_path_takes_the_common_shapes() -> None:
    """So that the test above compares two paths, not the full reader with itself."""
    assert common_check("job", {"key": new_key(), "every": "1h"}, {}) is not None
    assert common_check("job", {"key": new_key(), "cron": "0 3 * * *", "timezone": "UTC"}, {}) is not None
    assert common_check("job", {"key": new_key(), "every": "1h", "expect": 2}, {}) is None
    assert common_check("job", {"key": new_key(), "every": "0.5s"}, {}) is None
