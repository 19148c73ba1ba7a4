"""`heartfly history`'s ping bodies: a long one's start is cut in the statement by characters,
on both stores, and escaped before it is shown."""

from __future__ import annotations

from typing import Any

import pytest

from heartfly.cli.report import BODY_READ, BODY_SHOWN, read_history
from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key

pytestmark = pytest.mark.both_stores  # the cut is in the statement: SQLite's and PostgreSQL's


@pytest.mark.parametrize("length", [BODY_SHOWN, BODY_READ, BODY_READ + 1, 20 * BODY_READ])
async def test_history_cuts_a_multibyte_body_by_characters_and_lets_no_escape_through(
    aiohttp_client: Any, write_config: ConfigWriter, length: int
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    client = await aiohttp_client(create_app(config))
    # 1 to 4 bytes a character, and an escape sequence across the cut at BODY_SHOWN characters.
    body = ("é😀a<" * length)[: BODY_SHOWN - 3] + "\x1b]0;title\x07\x1b[2J"
    body += ("é😀a<" * length)[: max(0, length - len(body))]
    assert (await client.post(f"/ping/{key}", data=body.encode())).status == 200
    text = await read_history(config, "job", 20)
    line = text.split("Pings (newest first):\n")[1].splitlines()[0]
    shown = line.split("127.0.0.1  ", 1)[1]
    assert "\x1b" not in shown and "\x07" not in shown, shown
    assert shown == ("é😀a<" * length)[: BODY_SHOWN - 3] + "\\x…", shown  # cut in "\x1b", escaped first
