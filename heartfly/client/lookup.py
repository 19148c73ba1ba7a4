"""A check's ping URL from a config file, read with the TOML parser alone (heartfly.client.jobside).

`heartfly run NAME` looks NAME up in a config file on every cron tick. The full loader
(heartfly.core.config, croniter and every rule of the file) would cost the tick about 100 ms, more
than the rest of the client together. This reads only the keys an address needs, each checked
with the config's own pattern (heartfly.core.addresses). Where it cannot vouch for an answer (a
file that does not parse, a malformed value, a name it does not find with no ping_key to fall
back on) it returns None, and the full loader answers in its own words. A mistake elsewhere in
the file does not hold a ping back: the server reports those when it loads the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import tomli

from heartfly.client.transport import check_url, name_url
from heartfly.core.addresses import DEFAULT_PORT, parse_key, parse_listen, parse_public_url, url_of

TYPE_CHECKING = False  # typing costs a cron tick ~5 ms; mypy reads this name as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def url_in_file(path: Path, name: str, base_url: str | None, ping_key: str | None) -> str | None:
    """What transport.config_url would say for this file, or None where only the full loader can tell."""
    try:
        with open(path, "rb") as file:
            table = tomli.loads(file.read().decode("utf-8-sig"))  # as the full loader reads it
        server, checks = _table(table, "server"), _table(table, "checks")
        base = check_url(base_url, "HEARTFLY_URL") if base_url else _public_url(server)
        check = checks.get(name)
        if check is not None:
            if type(check) is not dict:
                return None
            return f"{base.rstrip('/')}/ping/{parse_key(_text(check, 'key'))}"
        key = ping_key or (parse_key(_text(server, "ping_key")) if "ping_key" in server else None)
        return name_url(base, key, name) if key else None
    except (OSError, ValueError, RecursionError):  # TOMLDecodeError, AddressError: ValueErrors too
        return None


def _public_url(server: Mapping[str, Any]) -> str:
    if "public_url" in server:
        return parse_public_url(_text(server, "public_url"))
    if "listen" in server:
        return url_of(*parse_listen(_text(server, "listen")))
    return url_of("127.0.0.1", DEFAULT_PORT)


def _table(table: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = table.get(key, {})
    if type(value) is not dict:
        raise ValueError(f"{key} is not a table")
    return value


def _text(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    if type(value) is not str:
        raise ValueError(f"{key} is not a string")
    return value
