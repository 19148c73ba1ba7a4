"""What `heartfly pause` says of a check that a ping resumes (resume_on_ping)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heartfly.cli import operate
from heartfly.core.config import load_config
from tests.conftest import new_key


def _config(tmp_path: Path, resume_on_ping: bool) -> Any:
    path = tmp_path / "hb.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:1"\ndatabase = "hb.db"\n[checks.nightly]\nkey = "{new_key()}"\n'
        f'every = "1h"\nresume_on_ping = {str(resume_on_ping).lower()}\n'
    )
    return load_config(path)


def test_a_pause_a_ping_ends_does_not_promise_silence_until_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, resume_on_ping=True)
    monkeypatch.setattr(operate, "_ask", lambda *a, **k: {"name": "nightly", "state": "paused", "paused_until": None})
    said = operate.pause(config, "nightly", None)
    assert "ping" in said and "resume_on_ping" in said, said


def test_a_pause_a_ping_ended_while_it_was_given_is_not_told_as_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, resume_on_ping=True)
    monkeypatch.setattr(operate, "_ask", lambda *a, **k: {"name": "nightly", "state": "up", "paused_until": None})
    said = operate.pause(config, "nightly", None)
    assert "resumed" in said and "no alerts until" not in said, said


def test_a_pause_of_a_check_no_ping_resumes_says_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, resume_on_ping=False)
    monkeypatch.setattr(operate, "_ask", lambda *a, **k: {"name": "nightly", "state": "paused", "paused_until": None})
    said = operate.pause(config, "nightly", None)
    assert "`heartfly resume nightly`" in said and "resume_on_ping" not in said, said


@pytest.mark.parametrize("when", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_a_pause_until_a_local_time_out_of_the_years_a_date_holds_is_refused_in_words(
    tmp_path: Path, when: str
) -> None:
    # East of UTC the first is year 0 in UTC, west of it the second year 10000: a traceback, before.
    config = _config(tmp_path, resume_on_ping=False)
    for zone in ("Asia/Tokyo", "America/New_York"):
        env = {**os.environ, "TZ": zone}
        args = [sys.executable, "-m", "heartfly", "pause", "nightly", "--until", when, "-c", str(config.path)]
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
        assert "--until" in result.stderr, result.stderr


def test_a_pause_until_a_utc_time_with_a_lower_case_z_is_sent_as_the_server_reads_it() -> None:
    # The server takes 2026-12-24T08:00z (the OpenAPI document's pattern has [Zz]); the command refused it.
    assert operate.until_param("2026-12-24T08:00z") == "2026-12-24T08:00:00+00:00"


def test_a_resume_given_to_a_standby_whose_picture_shows_the_check_not_paused_yet_says_the_leader_applies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paused through a standby a moment ago: its picture (rebuilt every second or so) still shows
    # the check up, was_paused false, yet it passed the resume to the leader, which resumes it. The
    # command said "nightly is not paused: nothing to resume" and failed.
    config = _config(tmp_path, resume_on_ping=False)
    answer = {"name": "nightly", "state": "up", "was_paused": False, "applied": False}
    monkeypatch.setattr(operate, "_ask", lambda *a, **k: answer)
    said = operate.resume(config, "nightly")
    assert "leader" in said, said
