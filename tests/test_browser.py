"""A real headless Chromium (Debian's) against a real `heartfly serve`: sign in, look, pause, and make
sure a ping body full of markup is shown as text and never runs. Screenshots go to build/screenshots/.

Skipped when Chromium or Python Playwright is missing; .ci/run installs Debian's chromium.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.conftest import new_key
from tests.proc import Server

sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

# As root in a container: no sandbox, and nothing that phones home (the network is closed here).
# Playwright starts each browser with a fresh, empty profile directory of its own.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
KEY, SYNC_KEY = new_key(), new_key()
RUNBOOK = "see https://wiki.example.com/display/OPS/Nightly+database+backup+and+restore+runbook"  # no break


def ping(server: Server, path: str, body: bytes | None = None) -> None:
    urllib.request.urlopen(f"{server.url}/ping/{path}", data=body, timeout=10).read()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("browser")
    path = folder / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.nightly-backup]\nkey = "{KEY}"\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
        f'max_runtime = "2h"\ndescription = "Nightly database backup, {RUNBOOK}"\n'
        f'[checks.user-sync]\nkey = "{SYNC_KEY}"\nevery = "15m"\ndescription = "Auth -> Profile user sync"\n'
        f'[checks.etl-extract]\nkey = "{new_key()}"\nevery = "1h"\n'
        f'[checks.etl-transform]\nkey = "{new_key()}"\nafter = "etl-extract"\nwithin = "1h"\n'
    )
    with Server(path) as running:
        for i in range(12):
            ping(running, f"{KEY}/start?rid=r{i}")
            if i in (4, 9):
                ping(running, f"{KEY}/2?rid=r{i}", b"pg_dump: error: connection refused\n" + b"detail\n" * 8)
            else:
                ping(running, f"{KEY}?rid=r{i}", b"backup ok: 1.2 GB written")
        ping(running, f"{KEY}/log", f"disk check {PAYLOAD} done".encode())
        ping(running, SYNC_KEY, b"synced 1234 users")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def sign_in(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    assert "/login" in page.url
    page.fill("#token", (server.config.parent / "token").read_text().strip())
    page.click("button[type=submit]")
    page.wait_for_selector(".checks")


def test_a_browser_signs_in_sees_every_check_and_pauses_one(server: Server, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="light")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server)
    rows = page.locator(".row:not(.head) .name a").all_inner_texts()
    assert sorted(rows) == ["etl-extract", "etl-transform", "nightly-backup", "user-sync"]
    assert page.locator(".row.r-up .pill").first.inner_text().strip().endswith("up")
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

    page.click("text=nightly-backup")
    page.wait_for_selector("h1:has-text('nightly-backup')")
    assert page.locator("#runs svg.chart rect").count() >= 12
    page.screenshot(path=str(SHOTS / "check.png"), full_page=True)
    page.select_option("#until", "1h")
    page.click("#pause")
    page.wait_for_selector("#resume")
    assert "paused" in page.locator(".hero .pill").inner_text()
    assert "resumes" in page.locator(".facts").inner_text().lower()
    page.screenshot(path=str(SHOTS / "check-paused.png"), full_page=False)
    page.click("#resume")
    page.wait_for_selector("#pause")
    assert errors == []
    page.close()


def test_a_ping_body_with_markup_is_shown_as_text_and_never_runs(server: Server, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, server)
    page.goto(server.url + "/checks/nightly-backup")
    assert page.locator("#pings").inner_text().count(PAYLOAD) == 1  # the markup, as literal text
    assert page.locator("#pings img").count() == 0 and page.locator("#pings script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.goto(server.url + "/")  # and the dashboard, which shows the last ping's kind only
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.close()


def test_the_dashboard_refreshes_itself_and_filters_as_you_type_without_reloading(server: Server, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.clock.install()  # fake timers: the 10 s refresh runs when the test says so
    sign_in(page, server)
    page.evaluate("window.__sameDocument = true")
    ping(server, f"{SYNC_KEY}/fail", b"sync failed")
    page.clock.run_for(11_000)
    page.wait_for_selector(".row.r-down .name a:has-text('user-sync')")
    page.fill("#q", "etl")
    page.clock.run_for(500)
    # (a locator, not wait_for_function: the page's CSP rightly forbids evaluating strings)
    sync_api.expect(page.locator(".row:not(.head)")).to_have_count(2)
    assert "q=etl" in page.url
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
    ping(server, SYNC_KEY)
    page.close()


def test_a_check_opened_in_another_tab_does_not_stop_the_list_refreshing(server: Server, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.clock.install()
    sign_in(page, server)
    row = page.locator(".row", has=page.locator(".name a", has_text="user-sync"))
    with page.context.expect_page() as tab:
        row.locator(".name a").click(modifiers=["Control"])  # the link keeps the focus
    tab.value.close()
    ping(server, f"{SYNC_KEY}/fail", b"sync failed")
    page.clock.run_for(11_000)
    sync_api.expect(row).to_have_class(re.compile(r"\br-down\b"))  # it said "updated" and showed "up"
    ping(server, SYNC_KEY)
    page.close()


def test_a_refresh_keeps_the_keyboard_focus_on_the_link_it_was_on(server: Server, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.clock.install()
    sign_in(page, server)
    row = page.locator(".row", has=page.locator(".name a", has_text="user-sync"))
    row.locator(".name a").focus()  # a keyboard user tabbed down the list to it
    ping(server, f"{SYNC_KEY}/fail", b"sync failed")
    page.clock.run_for(11_000)
    sync_api.expect(row).to_have_class(re.compile(r"\br-down\b"))  # refreshed...
    # ...and the focus is where it was, not back at the top of the page (the list was replaced under it)
    sync_api.expect(row.locator(".name a")).to_be_focused()
    ping(server, SYNC_KEY)
    page.close()


def test_phone_width_and_dark_mode_screenshots(server: Server, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme="dark", device_scale_factor=2)
    sign_in(page, server)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the dashboard scrolls sideways on a phone"
    page.screenshot(path=str(SHOTS / "dashboard-phone-dark.png"), full_page=True)
    page.goto(server.url + "/checks/nightly-backup")
    page.screenshot(path=str(SHOTS / "check-phone-dark.png"), full_page=False)
    desktop = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    sign_in(desktop, server)
    desktop.screenshot(path=str(SHOTS / "dashboard-dark.png"), full_page=True)
    desktop.close()
    page.close()


# Every table and scrolling box that is wider than the window, or cut at the window's edge.
OVERFLOWING = """() => [...document.querySelectorAll('table, .scroll, .card')]
    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5 || el.scrollWidth > el.clientWidth + 1)
    .map(el => (el.id || el.className || el.tagName))"""
# Text cut short with an ellipsis (the element is narrower than its text).
CUT = """() => [...document.querySelectorAll('.sub')].filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => el.textContent)"""


def test_at_phone_width_no_table_overflows_and_nothing_is_cut(server: Server, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(page, server)
    assert page.evaluate(CUT) == [], "the dashboard cuts a check's schedule or description"
    page.goto(server.url + "/checks/nightly-backup")
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    assert page.evaluate(OVERFLOWING) == []
    # The columns a narrow screen used to hide: each run's duration and exit status, each ping's message.
    exits = page.locator('#runs td[data-label="Exit"]').filter(has_text="2")
    assert exits.count() >= 1 and exits.first.is_visible()
    assert page.locator('#runs td[data-label="Duration"]').first.is_visible()
    assert page.locator('#pings td[data-label="Message"]').first.is_visible()
    assert page.locator('#pings td[data-label="From"]').first.is_visible()
    assert page.locator("#record table").is_visible()
    page.screenshot(path=str(SHOTS / "check-phone.png"), full_page=True)
    page.close()


def test_a_copy_button_puts_its_ping_url_or_crontab_line_on_the_clipboard(server: Server, browser: Any) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server)
    page.goto(server.url + "/checks/nightly-backup")
    button = page.locator("button.copy").first
    url = button.get_attribute("data-copy")
    assert url is not None and url.endswith(f"/ping/{KEY}")
    assert page.locator("code", has_text=url).first.inner_text() == url  # the button copies what is shown
    button.click()
    page.wait_for_selector("button.copy[data-state=copied]")
    assert button.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == url
    cron = page.locator("#crontab button.copy").first
    line = cron.get_attribute("data-copy")
    assert line == "0 3 * * * heartfly run nightly-backup -- /path/to/job"
    cron.click()
    page.wait_for_selector("#crontab button.copy[data-state=copied]")
    assert page.evaluate("navigator.clipboard.readText()") == line
    page.wait_for_selector("button.copy[data-state]", state="detached", timeout=5000)  # back to "Copy"
    assert button.inner_text() == "Copy" and errors == []
    context.close()


def test_a_check_page_open_while_a_reload_removes_the_check_says_so_not_offline(tmp_path: Path, browser: Any) -> None:
    path = tmp_path / "hb.toml"
    kept = (
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    path.write_text(kept + f'[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n')
    with Server(path) as running:
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        page.goto(running.url + "/checks/b")
        path.write_text(kept)  # b removed while its page is open
        token = (tmp_path / "token").read_text().strip()
        reload = urllib.request.Request(
            running.url + "/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
        )
        urllib.request.urlopen(reload, timeout=10).read()
        page.clock.run_for(11_000)
        # The server answers (404): it is not offline, as the page used to say until reloaded.
        sync_api.expect(page.locator("#live-status")).to_have_text("no such check now: retrying")
        page.close()


def test_a_maintenance_window_that_begins_or_ends_while_the_dashboard_is_open_shows_or_goes(
    tmp_path: Path, browser: Any
) -> None:
    path = tmp_path / "hb.toml"
    checks = (
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    begun = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() - 3600))
    window = f'[[maintenance]]\nname = "patching"\nstart = "{begun}"\nduration = "1d"\n'
    path.write_text(checks)
    with Server(path) as running:
        token = (tmp_path / "token").read_text().strip()
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        for text, shown in ((checks + window, 1), (checks, 0)):  # a window begins (a reload), then ends
            path.write_text(text)
            reload = urllib.request.Request(
                running.url + "/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
            )
            urllib.request.urlopen(reload, timeout=10).read()
            page.clock.run_for(11_000)
            sync_api.expect(page.locator("#maintenance p:visible")).to_have_count(shown)
        page.close()


def test_a_steps_page_keeps_its_pipeline_neighbours_states_up_to_date(tmp_path: Path, browser: Any) -> None:
    path, upstream = tmp_path / "hb.toml", new_key()
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.extract]\nkey = "{upstream}"\nevery = "1h"\n'
        f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "1h"\n'
    )
    with Server(path) as running:
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        page.goto(running.url + "/checks/transform")
        ping(running, f"{upstream}/fail", b"extract failed")
        page.clock.run_for(11_000)
        # The pipeline card was left out of the refresh: extract stayed "new" there till a reload.
        sync_api.expect(page.locator(".pipeline li").first.locator(".pill")).to_have_class(re.compile(r"\bs-down\b"))
        page.close()


def test_a_step_added_after_a_check_shows_on_its_open_page(tmp_path: Path, browser: Any) -> None:
    path = tmp_path / "hb.toml"
    extract = (
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.extract]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    step = f'[checks.transform]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "1h"\n'
    path.write_text(extract)
    with Server(path) as running:
        token = (tmp_path / "token").read_text().strip()
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        page.goto(running.url + "/checks/extract")
        for text, shown in ((extract + step, 2), (extract, 0)):  # a reload adds a step after it, then removes it
            path.write_text(text)
            reload = urllib.request.Request(
                running.url + "/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
            )
            urllib.request.urlopen(reload, timeout=10).read()
            page.clock.run_for(11_000)
            # The card was left out of the page while the check had no neighbours: it never came (or went).
            sync_api.expect(page.locator(".pipeline li:visible")).to_have_count(shown)
        page.close()


def test_a_long_check_name_without_a_break_fits_a_phone(tmp_path: Path, browser: Any) -> None:
    # Names may be 100 characters of letters, digits, "_", "." and "-": snake_case has no break opportunity.
    path, name = tmp_path / "hb.toml", "nightly_customer_database_backup_for_the_production_cluster_eu"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.{name}]\nkey = "{new_key()}"\nevery = "1h"\n'
        f'[checks.{name}_load]\nkey = "{new_key()}"\nafter = "{name}"\nwithin = "1h"\n'
    )
    with Server(path) as running:
        page = browser.new_page(viewport={"width": 360, "height": 740})
        sign_in(page, running)
        # The step's "after NAME" squeezed its own name to a column one letter wide.
        widths = page.evaluate("() => [...document.querySelectorAll('.row .cell.name')].map(el => el.clientWidth)")
        assert min(widths) > 100, widths
        assert page.evaluate(CUT) == []
        for shown in (f"{name}_load", name):
            page.goto(f"{running.url}/checks/{shown}")  # its schedule, its pipeline, its badge: 389 px too wide
            assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
            assert page.evaluate(OVERFLOWING) == []
        page.close()


def test_a_refresh_the_server_never_answers_is_said_on_the_page_not_waited_on_for_ever(
    tmp_path: Path, browser: Any
) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    status = re.compile(r"^updated ")
    with Server(path) as running:
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        page.clock.run_for(11_000)
        live = page.locator("#live-status")
        sync_api.expect(live).to_have_text(status)
        for answered_late in (True, False):
            running.signal(signal.SIGSTOP)  # it takes the connection and the request, and answers nothing
            try:
                page.clock.run_for(11_000)  # a refresh is sent...
                page.clock.run_for(11_000)  # ...and not answered by the next one's time
                # It said "updated" at the last answer for as long as the request hung, the page frozen.
                sync_api.expect(live).to_have_text("no answer yet")
                sync_api.expect(live).to_have_class(re.compile(r"\bstale\b"))
                if not answered_late:
                    page.clock.run_for(48_000)  # a minute: given up, not holding every later refresh
                    sync_api.expect(live).to_have_text("no answer: retrying")
            finally:
                running.signal(signal.SIGCONT)
            if not answered_late:
                page.clock.run_for(11_000)
            sync_api.expect(live).to_have_text(status)  # a slow answer still counts
            sync_api.expect(live).not_to_have_class(re.compile(r"\bstale\b"))
        page.close()


def test_a_phone_is_told_when_the_dashboard_stops_updating(tmp_path: Path, browser: Any) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    with Server(path) as running:
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.clock.install()
        sign_in(page, running)
        page.goto(running.url + "/checks/a")  # its top bar has the most in it
        page.clock.run_for(11_000)
        sync_api.expect(page.locator("#live-status")).to_have_text(re.compile(r"^updated "))
        sync_api.expect(page.locator("#live-status")).to_be_hidden()  # no room for "updated" on a phone...
        running.kill()
        page.clock.run_for(11_000)
        # ...but the page that stopped updating, its checks green as they were, said nothing at all.
        sync_api.expect(page.locator("#live-status")).to_have_text("offline: retrying")
        sync_api.expect(page.locator("#live-status")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
        page.close()


def test_a_chip_clicked_while_a_refresh_is_on_its_way_aborts_it_and_says_nothing_of_it(
    tmp_path: Path, browser: Any
) -> None:
    # A refresh still on its way when a chip is clicked was left running beside the chip's own:
    # its answer, the unfiltered list, could come last and overwrite the view the chip asked for.
    path = tmp_path / "hb.toml"
    path.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.quiet]\nkey = "{new_key()}"\nevery = "1h"\n[checks.broken]\nkey = "{KEY}"\nevery = "1h"\n'
    )
    with Server(path) as running:
        ping(running, f"{KEY}/fail")
        page = browser.new_page()
        page.clock.install()
        sign_in(page, running)
        held: list[Any] = []

        def hold_the_first_refresh(route: Any) -> None:
            if route.request.resource_type == "fetch" and not held:
                held.append(route)  # answered by nobody: a refresh still on its way
            else:
                route.continue_()

        page.route("**/*", hold_the_first_refresh)
        with page.expect_request(lambda r: r.resource_type == "fetch"):
            page.clock.run_for(11_000)
        rows = page.locator(".row:not(.head) .name a")
        sync_api.expect(rows).to_have_count(2)
        with page.expect_event("requestfailed", lambda r: r.url == held[0].request.url, timeout=5_000) as failed:
            page.click("a.chip.c-down")
        assert failed.value.failure == "net::ERR_ABORTED"  # the chip's refresh replaced it
        sync_api.expect(rows).to_have_text(["broken"])
        sync_api.expect(page.locator("#live-status")).to_have_text(re.compile(r"^updated "))  # not "offline"
        page.close()


class PathProxy:
    """A reverse proxy that serves a server below /heartfly/ and strips the path on its way in
    (nginx's `location /heartfly/ { proxy_pass http://127.0.0.1:8765/; }`), in a thread of its own."""

    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # its port is known before the server's config is written
        self.root = f"http://127.0.0.1:{self.sock.getsockname()[1]}/heartfly/"
        self.backend = ""
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        async with aiohttp.ClientSession(auto_decompress=False) as upstream:

            async def forward(request: web.Request) -> web.Response:
                target = URL(self.backend + "/" + request.match_info["tail"]).with_query(request.query)
                headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP_BY_HOP}
                body = await request.read()
                async with upstream.request(
                    request.method, target, headers=headers, data=body, allow_redirects=False
                ) as answer:
                    response = web.Response(status=answer.status, body=await answer.read())
                    for k, v in answer.headers.items():
                        if k.lower() not in self.HOP_BY_HOP:
                            response.headers.add(k, v)
                    return response

            app = web.Application()
            app.router.add_route("*", "/heartfly/{tail:.*}", forward)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.SockSite(runner, self.sock).start()
            self._up.set()
            await self._stop.wait()
            await runner.cleanup()

    def __enter__(self) -> PathProxy:
        self._thread.start()
        assert self._up.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


def test_below_a_proxys_path_the_page_refreshes_itself_and_a_lost_session_leads_to_the_login_form_there(
    tmp_path: Path, browser: Any
) -> None:
    # heartfly.js took a refresh answered by the login form for one only at /login: below the path
    # (/heartfly/login) it put nothing in place and said "updated" for ever, signed out.
    path, key = tmp_path / "hb.toml", new_key()
    with PathProxy() as proxy:
        path.write_text(
            '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
            f'public_url = "{proxy.root.rstrip("/")}"\n[checks.a]\nkey = "{key}"\nevery = "1h"\n'
        )
        with Server(path) as running:
            proxy.backend = running.url
            token = (tmp_path / "token").read_text().strip()
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.clock.install()
            page.goto(proxy.root)
            assert page.url == proxy.root + "login?next=/"
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector(".checks")
            assert page.url == proxy.root
            urllib.request.urlopen(f"{running.url}/ping/{key}/fail", timeout=10).read()
            page.clock.run_for(11_000)
            page.wait_for_selector(".row.r-down .name a:has-text('a')")  # its script runs, its refresh too
            page.click("a[data-tz=browser]")  # the time-zone cookie, read below the path
            page.wait_for_selector("a[data-tz=server]")
            page.context.clear_cookies()  # the session ended (the token replaced, say)
            page.clock.run_for(11_000)
            page.wait_for_url(proxy.root + "login?next=/")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector(".checks")
            assert page.url == proxy.root and errors == []
            page.close()
