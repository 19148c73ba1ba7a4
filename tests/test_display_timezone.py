"""Times in the operator's zone ([server] display_timezone, or a browser's own): the dashboard,
`heartfly status/history` and alert texts; the APIs keep UTC."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from heartfly.cli import report
from heartfly.core import localtime
from heartfly.core.clock import FakeClock
from heartfly.notify.message import Alert, text
from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key, problems
from tests.proc import heartfly
from tests.webutil import bearer, login

SUMMER = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
WINTER = 1_766_000_000.0  # 2025-12-17 19:33:20 UTC


def test_utc_reads_as_always_and_another_zone_names_itself_across_daylight_saving() -> None:
    assert localtime.full(SUMMER) == "2026-05-28 20:26:40Z"
    berlin = localtime.zone("Europe/Berlin")
    assert localtime.full(SUMMER, berlin) == "2026-05-28 22:26:40 CEST"
    assert localtime.full(WINTER, berlin) == "2025-12-17 20:33:20 CET"
    assert localtime.stamp(SUMMER, SUMMER + 60, berlin) == "22:26:40"
    assert localtime.full(None) == "—" and localtime.name_of(berlin) == "Europe/Berlin"


@pytest.mark.parametrize("name", ["../../etc/passwd", "Nope/Zone", "", "Europe", "x" * 100, "Europe/Berlin;rm"])
def test_a_zone_name_this_system_does_not_know_is_refused(name: str) -> None:
    assert not localtime.known(name)
    assert localtime.zone(name) is localtime.zone(None)  # and read as UTC where it cannot be refused


def test_a_bad_display_timezone_is_named_in_the_config_errors(write_config: ConfigWriter) -> None:
    found = problems(write_config, "", server='display_timezone = "Mars/Olympus"')
    assert any(p.startswith("server.display_timezone: unknown time zone") for p in found), found


async def test_the_dashboard_shows_the_configured_zone_or_the_browsers_own_and_the_api_keeps_utc(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n', server='display_timezone = "Europe/Berlin"')
    client = await aiohttp_client(create_app(config, clock=FakeClock(SUMMER)))
    assert (await client.get(f"/ping/{key}")).status == 200
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    assert "2026-05-28 22:26:40 CEST" in page and "times in Europe/Berlin" in page
    assert "2026-05-28 20:26:40Z" not in page  # (the datetime attributes stay ISO 8601 UTC)
    client.session.cookie_jar.update_cookies({"hf_tz": "America/New_York"})
    page = await (await client.get("/checks/job")).text()
    assert "2026-05-28 16:26:40 EDT" in page and "times in America/New_York" in page
    assert "use the server&#39;s zone" in page or "use the server's zone" in page
    client.session.cookie_jar.update_cookies({"hf_tz": "../../etc/passwd"})
    page = await (await client.get("/checks/job")).text()
    assert "times in Europe/Berlin" in page  # a cookie naming no zone is ignored
    body = await (await client.get("/api/v1/checks/job", headers=bearer(config))).json()
    assert body["last_ping_at"] == "2026-05-28T20:26:40.000Z"


async def test_status_and_history_print_times_in_the_display_timezone(write_config: ConfigWriter) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n', server='display_timezone = "Asia/Tokyo"')
    app = create_app(config, clock=FakeClock(SUMMER))
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        assert (await client.get(f"/ping/{key}/fail")).status == 200
    status = await asyncio.to_thread(heartfly, "status", "-c", str(config.path))
    assert status.returncode == 0, status.stderr
    assert "2026-05-29 05:26:40 JST" in status.stdout, status.stdout
    history = await asyncio.to_thread(heartfly, "history", "job", "-c", str(config.path))
    assert "2026-05-29 05:26:40 JST" in history.stdout, history.stdout
    as_json = await asyncio.to_thread(heartfly, "status", "--json", "-c", str(config.path))
    assert '"2026-05-28T20:26:40.000Z"' in as_json.stdout and "JST" not in as_json.stdout  # JSON stays UTC


def test_an_alert_text_gives_its_times_in_the_display_timezone_with_its_name() -> None:
    payload = {"check": "job", "state": "down", "reason": "failed", "at": WINTER, "schedule": "every 1 h"}
    berlin = Alert(
        key="k", event="down", payload=payload, last_ping=None, link="http://x/checks/job", zone="Europe/Berlin"
    )
    assert "Noticed at: 2025-12-17 20:33:20 CET" in text(berlin)
    utc = Alert(key="k", event="down", payload=payload, last_ping=None, link="http://x/checks/job")
    assert "Noticed at: 2025-12-17T19:33:20.000Z" in text(utc)  # UTC: ISO 8601, as before


async def test_the_hour_a_clock_turned_back_repeats_names_its_zone_in_the_ping_log(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    zone = 'display_timezone = "America/New_York"'
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1d"\n', server=zone)
    clock = FakeClock(1_793_510_400.0)  # 2026-11-01 05:20Z: 01:20 EDT, and an hour later 01:20 again, EST
    client = await aiohttp_client(create_app(config, clock=clock))
    assert (await client.get(f"/ping/{key}/start")).status == 200
    clock.advance(3600)
    assert (await client.get(f"/ping/{key}")).status == 200
    clock.advance(4 * 3600)  # 05:20 EST, the same day: the log shows times without their date
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    assert ">01:20:00 EDT</time>" in page and ">01:20:00 EST</time>" in page
    assert localtime.stamp(clock.now(), clock.now(), localtime.zone("America/New_York")) == "05:20:00"  # unambiguous


def test_check_config_writes_its_times_as_status_and_history_do(write_config: ConfigWriter) -> None:
    # check-config formatted its own times: "... 00:30:00 UTC" in UTC, where every other surface
    # writes "... 00:30:00Z" (localtime.full), so its next due time did not read as status's.
    config = write_config(
        f'[checks.job]\nkey = "{new_key()}"\ncron = "30 2 * * *"\ntimezone = "Europe/Berlin"\n'
        '[[maintenance]]\nname = "patch"\nstart = "2026-06-01 03:00"\nduration = "1h"\n'
    )
    listing = report.describe_checks(config, SUMMER)
    due = "next due if watching starts now: 2026-05-29 00:30:00Z (2026-05-29 02:30:00 CEST, the check's zone)"
    assert due in listing, listing
    assert "once, at 2026-06-01 03:00:00Z" in listing, listing
