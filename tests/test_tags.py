"""Tags: `tags = [...]` per check, in the API's check objects, filtered by `?tag=` in the API and
on the dashboard."""

from __future__ import annotations

from typing import Any

from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key, problems
from tests.webutil import bearer, login

CHECKS = f"""
[checks.db-backup]
key = "{new_key()}"
every = "1d"
tags = ["prod", "backup"]
[checks.staging-backup]
key = "{new_key()}"
every = "1d"
tags = ["staging", "backup"]
[checks.web]
key = "{new_key()}"
every = "1h"
"""


async def test_the_api_shows_tags_and_filters_by_every_tag_given(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS)
    client = await aiohttp_client(create_app(config))

    async def names(query: str) -> list[str]:
        resp = await client.get(f"/api/v1/checks{query}", headers=bearer(config))
        assert resp.status == 200
        return sorted(c["name"] for c in await resp.json())

    assert await names("") == ["db-backup", "staging-backup", "web"]
    assert await names("?tag=backup") == ["db-backup", "staging-backup"]
    assert await names("?tag=backup&tag=prod") == ["db-backup"]
    assert await names("?tag=nope") == []
    check = await (await client.get("/api/v1/checks/db-backup", headers=bearer(config))).json()
    assert check["tags"] == ["prod", "backup"]


async def test_the_dashboard_shows_tags_and_a_tag_filters_the_list(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS)
    client = await aiohttp_client(create_app(config))
    await login(client, config)
    page = await (await client.get("/")).text()
    assert 'href="./?tag=prod"' in page and ">staging</a>" in page
    filtered = await (await client.get("/?tag=staging")).text()
    assert 'href="./checks/staging-backup"' in filtered and 'href="./checks/db-backup"' not in filtered
    assert 'href="./checks/web"' not in filtered
    none = await (await client.get("/?tag=nope")).text()
    assert "with tag nope" in none


def test_a_tag_with_a_space_is_refused(write_config: ConfigWriter) -> None:
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["two words"]\n')
    assert found == ['checks.a.tags: "two words" is not a tag: 1 to 50 characters, no spaces'], found


async def test_with_a_tag_chosen_the_state_counts_are_of_its_checks_and_the_tag_leads_back(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(CHECKS + f'[checks.broken]\nkey = "{key}"\nevery = "1h"\n')
    client = await aiohttp_client(create_app(config))
    await client.get(f"/ping/{key}/fail")  # down, and without the tag
    await login(client, config)
    page = await (await client.get("/?tag=staging")).text()
    # Clicking "down 1" showed "No check matches", and "All 4" one check.
    assert "All <b>1</b>" in page and "down <b>0</b>" in page
    assert '<a href="./" class="tag on" data-nav>staging</a>' in page  # the only way back was the URL
    searched = await (await client.get("/?q=db")).text()
    assert "All <b>1</b>" in searched and "down <b>0</b>" in searched
