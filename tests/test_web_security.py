"""The web surface's promises that span its parts, through real sockets: what browsers and caches
may keep of an answer given under the token, and how the session cookie is marked."""

from __future__ import annotations

from typing import Any

from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key
from tests.webutil import Client, bearer, login

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
