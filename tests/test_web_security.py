"""The web surface's promises that span its parts, through real sockets: what browsers and caches
may keep of an answer given under the token, and how the session cookie is marked."""

from __future__ import annotations

from typing import Any

import pytest

from heartfly.store.api import StoreError
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.webutil import Client, bearer, login, token_of

KEY = new_key()
CHECKS = f"""
[checks.backup]
key = "{KEY}"
every = "1h"
"""
HC_KEYS = 'hc_api_key_file = "hc-key"\nhc_api_key_readonly_file = "hc-ro"'


async def test_api_answers_holding_ping_messages_are_never_kept_by_a_browser_or_a_proxy_cache(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server=HC_KEYS)
    client: Client = await aiohttp_client(create_app(config))
    assert (await client.post(f"/ping/{KEY}/fail", data=b"pg_dump: password for db01 is wrong")).status == 200
    hc = {"X-Api-Key": (config.path.parent / "hc-key").read_text().strip()}
    uuid = (await (await client.get("/api/v3/checks/", headers=hc)).json())["checks"][0]["uuid"]
    asked = [
        ("/api/v1/checks", bearer(config)),  # a list, streamed
        ("/api/v1/checks/backup", bearer(config)),
        ("/api/v1/checks/backup/pings", bearer(config)),
        ("/metrics", bearer(config)),
        ("/api/v3/checks/", hc),  # Healthchecks' API: a list, streamed
        (f"/api/v3/checks/{uuid}", hc),
        (f"/api/v3/checks/{uuid}/pings/", hc),
    ]
    for path, headers in asked:
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, path
        assert resp.headers.get("Cache-Control") == "no-store", path
    csrf = await login(client, config)  # the dashboard's session opens the API too, for its scripts
    signed_in = await client.get("/api/v1/checks/backup/pings")
    assert signed_in.status == 200 and "password for db01" in await signed_in.text()
    assert signed_in.headers.get("Cache-Control") == "no-store"
    paused = await client.post("/api/v1/checks/backup/pause", headers={"X-CSRF-Token": csrf})
    assert paused.status == 200 and paused.headers.get("Cache-Control") == "no-store"


async def test_the_apis_errors_and_refusals_are_not_kept_either(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A 404 or 401 holds no message, but "every answer" is what docs/api.md says: a cache that kept
    # one would also answer it again after the check was made or the token given.
    config = write_config(CHECKS, server=HC_KEYS)
    app = create_app(config)
    client: Client = await aiohttp_client(app)
    hc = {"X-Api-Key": (config.path.parent / "hc-key").read_text().strip()}
    asked = [
        ("GET", "/api/v1/checks", {}, 401),  # no token: the API's refusal
        ("GET", "/metrics", {}, 401),
        ("GET", "/api/v1/checks?limt=5", bearer(config), 400),
        ("GET", "/api/v1/checks/backup/pings?limit=0", bearer(config), 400),  # raised by the handler
        ("GET", "/api/v1/checks/nosuch", bearer(config), 404),  # raised by the handler
        ("HEAD", "/api/v1/checks/nosuch", bearer(config), 404),
        ("GET", "/api/v1/nosuch", bearer(config), 404),  # api.not_found
        ("GET", "/api/v1/reload", bearer(config), 405),  # api.not_found
        ("PUT", "/api/v1/checks/backup/pings", bearer(config), 405),  # app._only
        ("OPTIONS", "/api/v3/checks/", {}, 204),
        ("GET", "/api/v3/checks/", {}, 401),
        ("GET", f"/api/v3/checks/{'0' * 8}-0000-4000-8000-{'0' * 12}", hc, 404),  # raised by hcapi._find
    ]
    for method, path, headers, status in asked:
        resp = await client.request(method, path, headers=headers)
        assert resp.status == status, (method, path, await resp.text())
        assert resp.headers.get("Cache-Control") == "no-store", (method, path)

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database is locked")

    reader = app[RUNTIME].reader
    assert reader is not None
    reader.read_pings = unavailable  # type: ignore[method-assign]
    resp = await client.get("/api/v1/checks/backup/pings", headers=bearer(config))  # app._store_unavailable
    assert resp.status == 503 and resp.headers.get("Cache-Control") == "no-store", await resp.text()


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({"Host": "hb.example.com", "Origin": "https://hb.example.com"}, True),  # the browser's page was https
        ({"Host": "hb.example.com", "X-Forwarded-Proto": "https"}, True),  # no Origin: the proxy (here) says it
        ({"Host": "hb.example.com", "Origin": "http://hb.example.com"}, False),  # plain http: Secure would be dropped
        ({"Host": "hb.example.com"}, False),
    ],
)
async def test_a_sign_in_over_https_sets_a_secure_cookie_whatever_public_url_says(
    aiohttp_client: Any, write_config: ConfigWriter, headers: dict[str, str], secure: bool
) -> None:
    # public_url left as the package writes it (http://127.0.0.1:8765), TLS ended by a proxy in
    # front: a cookie without Secure would go in clear to the first http:// link to the same host.
    config = write_config(CHECKS, server='public_url = "http://127.0.0.1:8765"')
    client: Client = await aiohttp_client(create_app(config))
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/"}, headers=headers, allow_redirects=False
    )
    assert signin.status == 303, await signin.text()
    cookie = signin.headers["Set-Cookie"]
    assert cookie.startswith("heartfly_session=") and ("; Secure" in cookie) is secure, cookie


async def test_a_proxy_that_is_not_trusted_cannot_say_the_sign_in_came_over_https(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server="trusted_proxies = []")
    client: Client = await aiohttp_client(create_app(config))
    signin = await client.post(
        "/login", data={"token": token_of(config), "next": "/"}, headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )  # fmt: skip
    assert signin.status == 303 and "; Secure" not in signin.headers["Set-Cookie"]
