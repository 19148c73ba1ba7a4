"""A check page's long ping messages: their start and end, cut by characters on both stores."""

from __future__ import annotations

import html
from typing import Any

import pytest

from heartfly.web.app import create_app
from heartfly.web.dashboard import MESSAGE_SHOWN
from tests.conftest import ConfigWriter, new_key
from tests.webutil import bearer

pytestmark = pytest.mark.both_stores  # the cut is in the statement: SQLite's and PostgreSQL's


@pytest.mark.parametrize("over", [0, 1, 2])
async def test_a_message_just_over_the_limit_is_cut_by_characters_and_its_gap_counted_in_words(
    aiohttp_client: Any, write_config: ConfigWriter, over: int
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    client = await aiohttp_client(create_app(config))
    body = "".join("é😀a<"[i % 4] for i in range(MESSAGE_SHOWN + over))  # 1 to 4 bytes a character
    assert (await client.post(f"/ping/{key}", data=body.encode())).status == 200
    page = html.unescape(await (await client.get("/checks/job", headers=bearer(config))).text())
    if not over:
        assert f"<pre>{body}</pre>" in page and "not shown" not in page
        return
    head, tail = MESSAGE_SHOWN // 4, MESSAGE_SHOWN - MESSAGE_SHOWN // 4
    assert f"<pre>{body[:head]}</pre>" in page and f"<pre>{body[-tail:]}</pre>" in page
    gap = "1 character not shown" if over == 1 else f"{over} characters not shown"
    assert f"… {gap} (the API's pings list" in page and f"{len(body)} chars" in page
