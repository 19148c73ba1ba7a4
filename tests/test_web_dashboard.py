"""The dashboard through real sockets: login, cookies, CSRF, escaping, filters, public mode, forms."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from heartfly.core.config import Config
from heartfly.core.urls import cron_schedule
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.badges import badge_key
from heartfly.web.dashboard import MESSAGE_SHOWN, PINGS_PER_PAGE
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, check, new_key
from tests.storeutil import bytes_read, query
from tests.webutil import Client, bearer, csrf_in, login, raw_request, state_of, token_of, went_to

KEY = new_key()
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
CHECKS = f"""
[checks.backup]
key = "{KEY}"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
description = "Nightly <b>database</b> backup"
[checks.sync]
key = "{new_key()}"
every = "15m"
[checks.cleanup]
key = "{new_key()}"
every = "1d"
"""


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(CHECKS)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Client:
    result: Client = await aiohttp_client(create_app(config))
    return result


async def test_a_visitor_without_a_session_is_sent_to_the_login_form(client: Client) -> None:
    resp = await client.get("/checks/backup?x=1", allow_redirects=False)
    target = URL(went_to(resp))
    assert resp.status == 303 and target.path == "/login" and target.query["next"] == "/checks/backup?x=1"
    form = await client.get("/login")
    assert form.status == 200 and 'name="token"' in await form.text()


async def test_signing_in_sets_an_httponly_samesite_cookie_and_returns_where_you_were(
    client: Client, config: Config
) -> None:
    resp = await client.post(
        "/login", data={"token": token_of(config), "next": "/checks/backup"}, allow_redirects=False
    )
    assert resp.status == 303 and went_to(resp) == "/checks/backup"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("heartfly_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert token_of(config) not in cookie  # the cookie is a signature, never the token itself
    page = await client.get("/checks/backup")
    assert page.status == 200 and "<h1>backup</h1>" in await page.text()


async def test_a_wrong_token_shows_the_form_again_with_a_401(client: Client) -> None:
    resp = await client.post("/login", data={"token": "guess", "next": "/"}, allow_redirects=False)
    assert resp.status == 401 and "That is not the API token" in await resp.text()
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", ""])
async def test_signing_in_never_redirects_to_another_site(client: Client, config: Config, target: str) -> None:
    resp = await client.post("/login", data={"token": token_of(config), "next": target}, allow_redirects=False)
    assert went_to(resp) == "/"


async def test_a_forged_cookie_is_not_a_session(client: Client) -> None:
    client.session.cookie_jar.update_cookies({"heartfly_session": "1999999999.forged"})
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_signing_out_ends_the_session(client: Client, config: Config) -> None:
    csrf = await login(client, config)
    resp = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and "heartfly_session=" in resp.headers["Set-Cookie"]
    assert (await client.get("/", allow_redirects=False)).status == 303


@pytest.mark.parametrize("header", [("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")])
async def test_a_sign_out_form_from_another_site_leaves_the_session_alone(
    client: Client, config: Config, header: tuple[str, str]
) -> None:
    await login(client, config)
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    client.session.cookie_jar.clear()  # a cross-site POST carries no SameSite=Lax cookie...
    resp = await client.post("/logout", headers=dict([header]), allow_redirects=False)
    assert resp.status == 403 and "Set-Cookie" not in resp.headers  # ...but would take its deletion
    client.session.cookie_jar.update_cookies(session)
    assert (await client.get("/", allow_redirects=False)).status == 200


async def test_ping_messages_and_descriptions_are_escaped_on_the_check_page(client: Client, config: Config) -> None:
    await client.post(f"/ping/{KEY}/fail", data=f"disk full {XSS}".encode())
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    assert "<script>window" not in html and "<img src=x" not in html
    assert "disk full &lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=" in html
    assert "Nightly &lt;b&gt;database&lt;/b&gt; backup" in html


async def test_pages_forbid_inline_script_and_framing(client: Client, config: Config) -> None:
    await login(client, config)
    resp = await client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in await resp.text()  # the only script is the external file


async def test_the_dashboard_lists_every_check_worst_first_with_its_state_in_words(
    client: Client, config: Config
) -> None:
    await client.get(f"/ping/{KEY}/fail")
    await login(client, config)
    html = await (await client.get("/")).text()
    names = re.findall(r'<a href="\./checks/([^"]+)">', html)
    assert names == ["backup", "cleanup", "sync"]  # down first, then by name
    assert "every day at 03:00 Europe/Berlin" in html and "every 15 min" in html
    assert re.search(r'class="pill s-down">.*down<span class="reason"> · failed', html)


async def test_the_dashboard_filters_by_state_and_by_search(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/fail")
    await login(client, config)
    down = await (await client.get("/?state=down")).text()
    assert re.findall(r'<a href="\./checks/([^"]+)">', down) == ["backup"]
    found = await (await client.get("/?q=SYN")).text()
    assert re.findall(r'<a href="\./checks/([^"]+)">', found) == ["sync"]
    by_description = await (await client.get("/?q=database")).text()
    assert re.findall(r'<a href="\./checks/([^"]+)">', by_description) == ["backup"]
    none = await (await client.get("/?q=zzz")).text()
    assert "No check matches" in none


async def test_the_pause_form_needs_this_sessions_csrf_token(client: Client, config: Config) -> None:
    csrf = await login(client, config)
    refused = await client.post("/checks/sync/pause", data={"until": ""}, allow_redirects=False)
    assert refused.status == 403 and "Request refused" in await refused.text()
    assert (await state_of(client, config, "sync"))["state"] == "new"
    ok = await client.post("/checks/sync/pause", data={"csrf": csrf, "until": "1h"}, allow_redirects=False)
    assert ok.status == 303 and went_to(ok) == "/checks/sync"
    after = await state_of(client, config, "sync")
    assert after["state"] == "paused" and after["paused_until"] is not None
    page = await (await client.get("/checks/sync")).text()
    assert 'id="resume"' in page and "Resumes" in page
    resumed = await client.post("/checks/sync/resume", data={"csrf": csrf}, allow_redirects=False)
    assert resumed.status == 303 and (await state_of(client, config, "sync"))["state"] == "new"


async def test_a_cross_site_form_post_is_refused_even_with_a_valid_csrf_token(client: Client, config: Config) -> None:
    csrf = await login(client, config)
    resp = await client.post(
        "/checks/sync/pause", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}, allow_redirects=False
    )
    assert resp.status == 403 and (await state_of(client, config, "sync"))["state"] == "new"


async def test_a_bearer_token_opens_the_pages_for_scripts(client: Client, config: Config) -> None:
    resp = await client.get("/checks/backup", headers=bearer(config))
    assert resp.status == 200 and "Ping: success" in await resp.text()


async def test_the_check_page_shows_the_badge_and_a_key_that_is_not_the_ping_key(
    client: Client, config: Config
) -> None:
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    assert f"/badge/{badge_key(KEY)}.svg" in html and f"/badge/{badge_key(KEY)}.json" in html
    assert KEY not in badge_key(KEY)


async def test_an_unknown_check_is_a_404_page(client: Client, config: Config) -> None:
    await login(client, config)
    resp = await client.get("/checks/nope")
    assert resp.status == 404 and "No such check" in await resp.text()


async def test_the_page_of_a_check_removed_from_the_config_says_its_history_is_kept_and_where(
    client: Client, config: Config
) -> None:
    # Every alert links to its check's page. After a rename (the old name removed, its history
    # kept under it, as the README says), the link of each alert sent before it said only "There
    # is no check named ... in the config": the history read as lost.
    await client.get(f"/ping/{KEY}/fail")
    config.path.write_text(config.path.read_text().replace("[checks.backup]", "[checks.db-backup]"))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    await login(client, config)
    resp = await client.get("/checks/backup")
    text = await resp.text()
    assert resp.status == 404 and "backup is no longer in the config" in text, text
    # The command as the other pages show one (<code>), not in Markdown's backticks, shown as typed.
    assert "its history is kept, and <code>heartfly history backup</code> shows it" in text and "`" not in text
    never = await (await client.get("/checks/nope")).text()
    assert "There is no check named" in never and "history" not in never


async def test_the_check_page_shows_runs_pings_and_state_changes(client: Client, config: Config) -> None:
    await client.get(f"/ping/{KEY}/start?rid=r1")
    await client.post(f"/ping/{KEY}?rid=r1", data=b"ok: 1.2 GB")
    await client.post(f"/ping/{KEY}/log", data=("line\n" * 30).encode())
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    assert re.search(r'<rect class="b-ok"[^>]*><title>succeeded · \d+ ms · ', html)
    assert "ok: 1.2 GB" in html
    assert '<details class="msg">' in html and "30 lines" in html  # a long message is folded
    assert "State changes" in html and "→" in html


async def test_public_mode_shows_the_pages_read_only_and_hides_ping_urls(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server="public = true")
    client: Client = await aiohttp_client(create_app(config))
    index = await client.get("/", allow_redirects=False)
    assert index.status == 200 and "Sign in" in await index.text()
    page = await (await client.get("/checks/backup")).text()
    assert KEY not in page and 'id="pause"' not in page and "to pause or resume" in page
    refused = await client.post("/checks/backup/pause", data={"csrf": "x"}, allow_redirects=False)
    assert refused.status == 303 and went_to(refused).startswith("/login")
    assert (await state_of(client, config, "backup"))["state"] == "new"


async def test_with_a_session_a_public_dashboard_still_offers_pausing(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server="public = true")
    client: Client = await aiohttp_client(create_app(config))
    await login(client, config)
    page = await (await client.get("/checks/backup")).text()
    assert 'id="pause"' in page and csrf_in(page)


async def test_without_a_token_file_the_dashboard_says_how_to_turn_it_on(aiohttp_client: Any, config: Config) -> None:
    no_token = dataclasses.replace(config, server=dataclasses.replace(config.server, api_token_file=None))
    client: Client = await aiohttp_client(create_app(no_token))
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 403 and "api_token_file" in await resp.text()


async def test_a_login_form_that_does_not_match_its_content_encoding_is_a_400_page(client: Client) -> None:
    resp = await client.post(
        "/login",
        data=b"token=x",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 400 and "could not be read" in await resp.text()


async def test_a_page_cursor_of_non_ascii_digits_is_ignored_not_a_crash(client: Client, config: Config) -> None:
    await login(client, config)
    resp = await client.get("/checks/backup?pings_before=%C2%B2")
    assert resp.status == 200


async def test_a_success_ping_that_broke_an_assertion_is_red_on_the_timeline(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.count]\nkey = "{key}"\nevery = "1d"\nassert = ["rows > 0"]\n')
    client: Client = await aiohttp_client(create_app(config))
    await client.get(f"/ping/{key}?m_rows=0")
    await login(client, config)
    html = await (await client.get("/checks/count")).text()
    assert re.search(r'<rect class="b-bad"[^>]*><title>broke an assertion · ', html)
    assert '<rect class="b-ok"' not in html


@pytest.mark.both_stores  # the strips read end pings with their metrics, or without, by either store's SQL
async def test_assertions_a_reload_adds_judge_the_pings_the_strips_and_the_chart_drew_green(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The end pings of a check without assertions are read without their metrics; once a reload
    # gives it some, they are read with them again and judged by them (charts.events): a ping
    # whose metric keeps the assertion stays green, not broken for a metric it was read without.
    key = new_key()
    check = f'[checks.count]\nkey = "{key}"\nevery = "1d"\n'
    config = write_config(check)
    client: Client = await aiohttp_client(create_app(config))
    for rows in (5, 0):
        assert (await client.get(f"/ping/{key}?m_rows={rows}")).status == 200
    await login(client, config)
    for path in ("/", "/checks/count"):
        html = await (await client.get(path)).text()
        assert html.count('<rect class="b-ok"') == 2 and '<rect class="b-bad"' not in html, path
    write_config(check + 'assert = ["rows > 0"]\n')
    assert await control.reload_config(client.app) == (1, [])
    for path in ("/", "/checks/count"):
        html = await (await client.get(path)).text()
        assert html.count('<rect class="b-ok"') == 1, path  # rows=5
        assert len(re.findall(r'<rect class="b-bad"[^>]*><title>broke an assertion · ', html)) == 1, path  # rows=0


async def test_an_unknown_state_filter_is_a_400_page_naming_the_states(client: Client, config: Config) -> None:
    await login(client, config)
    resp = await client.get("/?state=bogus")
    assert resp.status == 400 and "down" in await resp.text()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"token=\xff"),  # not UTF-8
        ("application/x-www-form-urlencoded; charset=bogus", b"token=x"),
        ("multipart/form-data", b"token=x"),  # no boundary
    ],
)
async def test_an_unreadable_login_form_is_a_400_page(client: Client, content_type: str, body: bytes) -> None:
    resp = await client.post("/login", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400 and "could not be read" in await resp.text()


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer \xff", b"Cookie: heartfly_session=123.\xff"],
)
async def test_credentials_that_are_not_utf8_are_refused_not_a_crash(client: Client, header: bytes) -> None:
    assert await raw_request(client, b"GET /api/v1/checks HTTP/1.1\r\n" + header) in (401, 403)
    assert await raw_request(client, b"GET / HTTP/1.1\r\n" + header) in (303, 401)


@pytest.mark.parametrize("origin", ["http://[::1", "http://[zz]:80"])
async def test_a_malformed_origin_header_is_refused_with_403(client: Client, config: Config, origin: str) -> None:
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/"}, headers={"Origin": origin}, allow_redirects=False
    )
    assert signin.status == 403 and "Set-Cookie" not in signin.headers
    csrf = await login(client, config)
    form = await client.post(
        "/checks/sync/pause", data={"csrf": csrf}, headers={"Origin": origin}, allow_redirects=False
    )
    api = await client.post("/api/v1/checks/sync/pause", headers={"Origin": origin, "X-CSRF-Token": csrf})
    assert (form.status, api.status) == (403, 403)
    assert (await state_of(client, config, "sync"))["state"] == "new"


@pytest.mark.parametrize(
    ("public_url", "origin"),
    [
        ("https://HB.Example.com", "https://hb.example.com"),  # a browser's Origin has its host in lower case
        ("https://hb.example.com:443", "https://hb.example.com"),  # and leaves out the scheme's own port
        ("http://hb.example.com:80/heartfly", "http://hb.example.com"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),  # an IDN: in punycode (UTS 46)
        ("https://straße.example", "https://xn--strae-oqa.example"),  # ß kept, not "strasse", as browsers do now
        ("http://[0:0:0:0:0:0:0:1]:8765", "http://[::1]:8765"),  # an IPv6 address, shortest form
    ],
)
async def test_a_browser_at_the_public_url_signs_in_and_pauses_however_the_url_spells_its_host(
    aiohttp_client: Any, write_config: ConfigWriter, public_url: str, origin: str
) -> None:
    # Behind a proxy that does not pass the Host on (nginx's default), only public_url names this site.
    config = write_config(CHECKS, server=f'public_url = "{public_url}"')
    client: Client = await aiohttp_client(create_app(config))
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/"}, headers={"Origin": origin}, allow_redirects=False
    )
    assert signin.status == 303, await signin.text()
    # Sent by hand: the test's plain-HTTP client keeps back a cookie marked Secure for an https public_url
    session = {"Cookie": f"heartfly_session={signin.cookies['heartfly_session'].value}"}
    csrf = csrf_in(await (await client.get("/", headers=session)).text())
    form = await client.post(
        "/checks/sync/pause", data={"csrf": csrf}, headers={**session, "Origin": origin}, allow_redirects=False
    )
    assert form.status == 303 and (await state_of(client, config, "sync"))["state"] == "paused"
    evil = await client.post(
        "/checks/sync/resume",
        data={"csrf": csrf},
        headers={**session, "Origin": "https://hb.example.com.evil.example"},
    )
    assert evil.status == 403 and (await state_of(client, config, "sync"))["state"] == "paused"


@pytest.mark.parametrize(
    ("host", "origin", "ours"),
    [
        ("hb.example.com:443", "https://hb.example.com", True),  # nginx: proxy_set_header Host $host:$server_port
        ("HB.example.com:80", "http://hb.example.com", True),
        ("[0:0::1]:8765", "http://[::1]:8765", True),
        ("hb.example.com:443", "http://hb.example.com", False),  # port 80: another site
        ("hb.example.com:80", "https://hb.example.com", False),
    ],
)
async def test_a_host_header_that_names_the_default_port_is_this_site(
    aiohttp_client: Any, write_config: ConfigWriter, host: str, origin: str, ours: bool
) -> None:
    config = write_config(CHECKS)  # no public_url: only the Host a proxy passes on names this site
    client: Client = await aiohttp_client(create_app(config))
    signin = await client.post(
        "/login",
        data={"token": token_of(config), "next": "/"},
        headers={"Host": host, "Origin": origin},
        allow_redirects=False,
    )
    assert signin.status == (303 if ours else 403), await signin.text()


@pytest.mark.parametrize(
    "origin",
    [
        "https://hb.example.com@evil.example",  # a login before the @: the host is evil.example
        "https://evil.example#@hb.example.com",
        "https://hb.example.com.evil.example",
        "https://xn--hb-exmple-9ue.com",  # a look-alike name, as a browser spells it
        "https://hb.example.com:8443",
        "http://hb.example.com:443",
        "null",
    ],
)
async def test_an_origin_that_only_looks_like_the_public_url_is_refused(
    aiohttp_client: Any, write_config: ConfigWriter, origin: str
) -> None:
    config = write_config(CHECKS, server='public_url = "https://hb.example.com"')
    client: Client = await aiohttp_client(create_app(config))
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/"}, headers={"Origin": origin}, allow_redirects=False
    )
    assert signin.status == 403 and "Set-Cookie" not in signin.headers


async def test_a_correct_token_from_another_origin_is_refused_for_its_origin(client: Client, config: Config) -> None:
    resp = await client.post(
        "/login",
        data={"token": token_of(config), "next": "/"},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    text = await resp.text()
    assert resp.status == 403 and "another site" in text and "not the API token" not in text
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(
    "target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/x", "/ /evil.example", "/\\\t/evil.example", "/\x00x"]
)
async def test_a_next_target_with_whitespace_or_control_characters_goes_home(
    client: Client, config: Config, target: str
) -> None:
    resp = await client.post("/login", data={"token": token_of(config), "next": target}, allow_redirects=False)
    assert resp.status == 303 and went_to(resp) == "/"
    form = await client.get("/login", params={"next": target})
    assert form.status == 200 and 'name="next" value="/"' in await form.text()


async def test_a_form_posted_after_the_session_expired_returns_to_its_page_after_signing_in(
    client: Client, config: Config
) -> None:
    resp = await client.post("/checks/sync/pause", data={"csrf": "stale"}, allow_redirects=False)
    assert resp.status == 303 and URL(went_to(resp)).query["next"] == "/checks/sync"
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/checks/sync"}, allow_redirects=False
    )
    assert went_to(signin) == "/checks/sync"
    assert (await client.get(went_to(signin))).status == 200


@pytest.mark.parametrize(
    ("referer", "back"), [("/?state=down", "/?state=down"), ("https://evil.example/x", "/checks/sync")]
)
async def test_an_expired_form_post_returns_to_a_same_site_referer_only(
    client: Client, referer: str, back: str
) -> None:
    if referer.startswith("/"):
        referer = str(client.make_url(referer))
    resp = await client.post(
        "/checks/sync/resume", data={"csrf": "stale"}, headers={"Referer": referer}, allow_redirects=False
    )
    assert resp.status == 303 and URL(went_to(resp)).query["next"] == back


@pytest.mark.both_stores  # PostgreSQL's statements are its own (a LATERAL join)
async def test_the_index_reads_every_rows_history_at_once_the_same_rows_as_one_check_at_a_time(
    client: Client, config: Config
) -> None:
    for rid in ("r1", "r2", "r3"):
        await client.get(f"/ping/{KEY}/start?rid={rid}")
        await client.get(f"/ping/{KEY}{'/fail' if rid == 'r2' else ''}?rid={rid}")
    await client.get(f"/ping/{KEY}?m_rows=3")  # a lone success: an end ping without a run
    rt = client.app[RUNTIME]
    assert rt.reader is not None
    ids = [c.id for c in rt.engine.checks.values()]
    recent = await rt.reader.read_recent(ids, 2, judged=ids[:1])  # with metrics for one (assertions)
    bare = await rt.reader.read_recent(ids, 2)  # for none
    for i in ids:
        assert recent[i].runs == bare[i].runs == await rt.reader.read_runs(i, 2)
        assert recent[i].ends == await rt.reader.read_end_pings(i, 2, metrics=i == ids[0])
        assert bare[i].ends == await rt.reader.read_end_pings(i, 2, metrics=False)
        assert recent[i].misses == bare[i].misses == await rt.reader.read_misses(i, 2)
    backup = rt.engine.checks["backup"].id
    assert ids[0] == backup and recent[backup].ends[0]["metrics"] == {"rows": 3.0}
    assert bare[backup].ends[0]["metrics"] is None
    assert len(recent[rt.engine.checks["backup"].id].runs) == 2
    await login(client, config)
    html = await (await client.get("/")).text()
    assert html.count('<rect class="b-bad"') == 1 and html.count('<rect class="b-ok"') >= 2


async def test_each_ping_url_has_a_copy_button_and_the_check_a_ready_crontab_line(
    client: Client, config: Config
) -> None:
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    base = config.server.public_url
    for url in (f"{base}/ping/{KEY}", f"{base}/ping/{KEY}/start", f"{base}/ping/{KEY}/fail"):
        assert f'<code>{url}</code> <button type="button" class="copy" data-copy="{url}"' in html
    run_line = "0 3 * * * heartfly run backup -- /path/to/job"
    curl_line = f"0 3 * * * /path/to/job &amp;&amp; curl -fsS -m 10 --retry 5 -o /dev/null {base}/ping/{KEY}"
    assert f'data-copy="{run_line}"' in html and f'data-copy="{curl_line}"' in html
    assert "this check's is Europe/Berlin" in html  # cron runs it in the system's zone
    every = await (await client.get("/checks/sync")).text()  # every = "15m": crontab can say it
    assert 'data-copy="*/15 * * * * heartfly run sync -- /path/to/job"' in every
    assert "<script" not in html.split("</head>")[1]  # no inline script: the CSP allows only /static/


@pytest.mark.parametrize(
    ("every", "schedule"),
    [(86400.0, "0 0 * * *"), (7200.0, "0 */2 * * *"), (3600.0, "0 * * * *"), (900.0, "*/15 * * * *"), (5400.0, None)],
)
def test_the_crontab_line_of_a_daily_check_runs_it_at_midnight(every: float, schedule: str | None) -> None:
    # every = "1d", the commonest, was shown as "0 */24 * * *": a step past the hours' range that
    # crontab(5) does not promise, where the docstring and a branch of its own said "0 0 * * *".
    assert cron_schedule(check("nightly", every=every)) == schedule


@pytest.mark.parametrize("ping_key", [False, True])
async def test_a_check_made_through_the_api_gets_a_crontab_line_heartfly_run_can_address(
    aiohttp_client: Any, write_config: ConfigWriter, ping_key: bool
) -> None:
    # `heartfly run NAME` finds NAME in the config file, or through the file's ping_key; this
    # check is in the database alone, so without a ping_key it needs its URL in the name's place.
    server = 'hc_api_key_file = "hc-key"\n' + (f'ping_key = "{new_key()}"' if ping_key else "")
    config = write_config(CHECKS, server=server)
    client: Client = await aiohttp_client(create_app(config))
    assert config.server.hc_api_key_file is not None
    made = await client.post(
        "/api/v3/checks/",
        json={"name": "hc-made", "timeout": 3600},
        headers={"X-Api-Key": config.server.hc_api_key_file.read_text().strip()},
    )
    assert made.status == 201, await made.text()
    await login(client, config)
    html = await (await client.get("/checks/hc-made")).text()
    target = "hc-made" if ping_key else (await made.json())["ping_url"]
    assert f'data-copy="0 * * * * heartfly run {target} -- /path/to/job"' in html
    # The hint under the lines says how `heartfly run` finds this check: not "by name in the
    # file", where it is not (and where the line holds no name at all).
    assert "finds the check by name in" not in html
    hint = "by its name, through the file's <code>ping_key</code>" if ping_key else "the line gives it the check's URL"
    assert hint in html
    file_made = await (await client.get("/checks/backup")).text()
    assert "finds the check by name in <code>/etc/heartfly/heartfly.toml</code>" in file_made


@pytest.mark.parametrize("until", ["", "?until=1h"])
async def test_a_paused_check_a_ping_resumes_says_so_on_its_page(
    aiohttp_client: Any, write_config: ConfigWriter, until: str
) -> None:
    config = write_config(CHECKS + "resume_on_ping = true\n")  # the last table's: cleanup
    client: Client = await aiohttp_client(create_app(config))
    for name in ("cleanup", "sync"):
        assert (await client.post(f"/api/v1/checks/{name}/pause{until}", headers=bearer(config))).status == 200
    await login(client, config)
    by_ping = "at its next start, success or failure ping"
    assert by_ping in await (await client.get("/checks/cleanup")).text()
    manual = await (await client.get("/checks/sync")).text()  # only a resume ends this one's pause
    assert by_ping not in manual and ("Resumes" if until else "when resumed") in manual


async def test_older_pings_are_offered_only_when_there_are_some(client: Client, config: Config) -> None:
    await login(client, config)
    for n in range(PINGS_PER_PAGE):
        await client.post(f"/ping/{KEY}/log", data=f"line {n}".encode())
    page = await (await client.get("/checks/backup")).text()
    assert "Older pings" not in page  # exactly a page: the link led to "No pings before this point"
    await client.post(f"/ping/{KEY}/log", data=b"one more")
    page = await (await client.get("/checks/backup")).text()
    older = re.search(r'<a href="(\?pings_before=\d+)">Older pings', page)
    assert older is not None and "line 0" not in page
    rest = await (await client.get("/checks/backup" + older.group(1))).text()
    assert "line 0" in rest and "Older pings" not in rest


@pytest.mark.both_stores
async def test_a_check_page_of_long_messages_shows_each_ones_start_and_end_not_all_of_it(
    client: Client, config: Config
) -> None:
    head, tail = "job started <b>\n", "\nERROR: disk full <script>x</script>\n"
    body = head + "progress line\n" * 7000 + tail  # 98 000 characters: a page of 25 was 6 MB of HTML
    for _ in range(PINGS_PER_PAGE):
        assert (await client.post(f"/ping/{KEY}/fail", data=body.encode())).status == 200
    await login(client, config)
    page = await (await client.get("/checks/backup")).text()
    assert len(page) < 25 * MESSAGE_SHOWN * 2  # bounded by what each message shows, escaped
    assert page.count("<pre>job started &lt;b&gt;\n") == PINGS_PER_PAGE
    assert page.count("ERROR: disk full &lt;script&gt;x&lt;/script&gt;") == PINGS_PER_PAGE  # what went wrong
    assert f"{len(body) - MESSAGE_SHOWN} characters not shown" in page and f"{len(body)} chars" in page
    resp = await client.get("/api/v1/checks/backup/pings?limit=1", headers=bearer(config))
    assert (await resp.json())[0]["body"] == body  # the API has all of it


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts the bytes read in /proc/self/io (Linux)")
async def test_a_check_page_reads_the_messages_it_shows_not_every_kept_one(client: Client, config: Config) -> None:
    # keep_pings (1000 by default) pings of 20 kB each: the page's statement sorted them all by
    # time with their bodies, read whole to be cut, for the 25 it shows; every 10 s an open tab
    # read 20 MB (with body_limit's 100 kB, 100 MB: a second of the reader for each refresh).
    check_id = client.app[RUNTIME].engine.checks["backup"].id
    now = client.app[RUNTIME].clock.now()
    query(
        config,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
        " INSERT INTO pings (check_id, at, received_at, kind, body, method)"
        " SELECT ?, ? - 1000 + i, ? - 1000 + i, 'log', 'line ' || i || ' ' || hex(zeroblob(10000)), 'POST' FROM n",
        (check_id, now, now),
    )
    await login(client, config)
    before = bytes_read()
    page = await (await client.get("/checks/backup")).text()
    read = bytes_read() - before
    assert page.count("<pre>line 1000 0000") == 1 and page.count("<pre>line 976 0000") == 1  # the newest 25
    assert "line 975 " not in page
    assert read < 4_000_000, f"{read} bytes read for one page of {PINGS_PER_PAGE} messages"


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts the bytes read in /proc/self/io (Linux)")
async def test_the_run_strips_do_not_read_the_messages_of_the_pings_they_draw(client: Client, config: Config) -> None:
    # The strips read each end ping's metrics (for a check's assertions), stored after its body:
    # SQLite walked every body whole to reach them, 24 a row of the index (60 on a check page),
    # on every refresh, though a check without assertions never looks at them.
    check_id = client.app[RUNTIME].engine.checks["backup"].id
    now = client.app[RUNTIME].clock.now()
    query(
        config,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
        " INSERT INTO pings (check_id, at, received_at, kind, body, metrics, method)"
        " SELECT ?, ? - 1000 + i, ? - 1000 + i, 'success', hex(zeroblob(50000)), '{\"rows\": 5}', 'POST' FROM n",
        (check_id, now, now),
    )
    await login(client, config)
    for path, bound in (("/", 1_000_000), ("/checks/backup", 4_000_000)):  # the page's 25 messages: 2.5 MB
        before = bytes_read()
        page = await (await client.get(path)).text()
        read = bytes_read() - before
        assert page.count('class="b-ok"') >= 24, path  # its strip, or its chart, drew them
        assert read < bound, f"{path}: {read} bytes read"


async def test_the_alerts_card_shows_an_alerts_last_attempts_and_counts_the_rest(
    client: Client, config: Config
) -> None:
    # A dead webhook is retried for 24 h (about 130 attempts at retry_max 15 min): each of the card's
    # ten alerts listed every one, and the live refresh fetched them all again every 10 s.
    check_id = client.app[RUNTIME].engine.checks["backup"].id
    now = client.app[RUNTIME].clock.now()
    query(
        config,
        "INSERT INTO outbox (id, key, check_id, channel, event, payload, created_at, expires_at, next_attempt_at,"
        " status, attempts, done_at) VALUES (1, 'k1', ?, 'hook', 'down', '{}', ?, ?, ?, 'expired', 130, ?)",
        (check_id, now - 86400, now, now, now),
    )
    for n in range(130):
        query(
            config,
            "INSERT INTO alert_attempts (outbox_id, at, duration, outcome, error) VALUES (1, ?, 0.1, 'retry', ?)",
            (now - 86400 + 600 * n, f"HTTP 502 number {n}"),
        )
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    card = html.split('id="alerts"')[1].split("</section>")[0]
    assert card.count("HTTP 502 number") == 3 and "HTTP 502 number 129" in card and "number 126" not in card
    assert "127 earlier attempts" in card


async def test_the_ping_pages_links_keep_every_state_change_shown(client: Client, config: Config) -> None:
    await login(client, config)
    for n in range(PINGS_PER_PAGE + 1):
        await client.post(f"/ping/{KEY}/log", data=f"line {n}".encode())
    page = await (await client.get("/checks/backup?flips=all")).text()
    older = re.search(r'<a href="(\?pings_before=\d+&amp;flips=all)">Older pings', page)
    assert older is not None
    rest = await (await client.get("/checks/backup" + older.group(1).replace("&amp;", "&"))).text()
    assert '<a href="../checks/backup?flips=all">Newest</a>' in rest  # it went back to the routine-less list
    cursor = older.group(1).removesuffix("&amp;flips=all")
    plain = await (await client.get("/checks/backup" + cursor)).text()
    assert '<a href="../checks/backup">Newest</a>' in plain


async def test_a_check_page_says_how_long_a_state_has_lasted_and_what_brings_a_down_check_back(
    client: Client, config: Config
) -> None:
    await client.get(f"/ping/{KEY}/fail")
    await client.get(f"/ping/{KEY}/log?m_bytes=15002856325&m_rows=1234")
    await login(client, config)
    html = await (await client.get("/checks/backup")).text()
    assert re.search(r'<span class="muted small"><time datetime="[^"]+" title="since [^"]+">for \d+ s</time>', html)
    assert "since <time" not in html and " ago</time></span>" not in html.split('class="hero-state"')[1][:400]
    assert "<dt>Recovers</dt><dd>on its next successful run</dd>" in html and "when it recovers" not in html
    assert "<span>bytes=15.0 GB</span>" in html and "<span>rows=1234</span>" in html
    index = await (await client.get("/")).text()
    assert "awaiting a success" in index and "when it recovers" not in index


async def test_a_steps_page_says_which_event_of_its_upstream_it_waits_for(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A step after "sync.success" said it was due "after sync's next start": a start of sync arms
    # nothing there, and whoever read it waited for the wrong thing.
    steps = '[checks.load]\nkey = "{}"\nafter = "sync.success"\nwithin = "1h"\n'
    steps += '[checks.report]\nkey = "{}"\nafter = "sync"\nwithin = "1h"\n'
    config = write_config(CHECKS + steps.format(new_key(), new_key()))
    client: Client = await aiohttp_client(create_app(config))
    await login(client, config)
    load = await (await client.get("/checks/load")).text()
    assert "after sync's next success" in load
    assert "after sync's next start" in await (await client.get("/checks/report")).text()
    # Due by `within` alone: no grace follows it, where the page said "Grace 5 min".
    assert "<dt>Grace</dt>" not in load and "<dt>Grace</dt>" in await (await client.get("/checks/sync")).text()


async def test_a_fan_in_checks_crontab_lines_give_its_workers_one_run_id_and_say_what_an_assertion_needs(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The lines of a check with `expect = 8` gave each worker a fresh run id (heartfly run's
    # default): 8 batches of 1, each told incomplete. With `members`, workers named nobody, so no
    # success counted. And a check asserting `rows > 0` was offered lines that send no rows: a
    # success that broke the assertion every night.
    key, named = new_key(), new_key()
    batches = f'[checks.shards]\nkey = "{key}"\nevery = "1h"\nexpect = 8\nmax_runtime = "20m"\nassert = ["rows > 0"]\n'
    batches += f'[checks.named]\nkey = "{named}"\nevery = "1h"\nexpect = 2\nmembers = ["w1", "w2"]\n'
    config = write_config(CHECKS + batches)
    client: Client = await aiohttp_client(create_app(config))
    await login(client, config)
    base = config.server.public_url
    html = await (await client.get("/checks/shards")).text()
    assert 'data-copy="0 * * * * heartfly run shards --rid &#34;$(date +\\%F-\\%H\\%M)&#34; -- /path/to/job"' in html
    curl = "0 * * * * B=$(date +\\%F-\\%H\\%M); /path/to/job &amp;&amp; curl -fsS -m 10 --retry 5 -o /dev/null "
    curl += f"&#34;{base}/ping/{key}?rid=$B&#34;"
    assert f'data-copy="{curl}"' in html
    assert "<code>heartfly ping shards --metric rows=N</code>" in html
    page = await (await client.get("/checks/named")).text()
    run = f"0 * * * * heartfly run &#34;{base}/ping/{named}?member=WORKER&#34; --rid"
    assert f'data-copy="{run}' in page and "?rid=$B&amp;member=WORKER&#34;" in page
    assert "replace <code>WORKER</code> with its name among the members (w1, w2)" in page
    plain = await (await client.get("/checks/sync")).text()
    assert 'data-copy="*/15 * * * * heartfly run sync -- /path/to/job"' in plain and "--metric" not in plain
