"""A check's ping URL from a config file, read with the TOML parser alone (heartfly.client.jobside).

`heartfly run NAME` looks NAME up in a config file on every cron tick. The full loader
(heartfly.core.config, croniter and every rule of the file) would cost the tick about 100 ms, more
than the rest of the client together. This reads only the keys an address needs, each checked
with the config's own pattern (heartfly.core.addresses). Where it cannot vouch for an answer (a
file that does not parse, a malformed value, an unknown key, a key that another check or the
ping_key also has) it returns None, and the full loader answers in its own words. A mistake
elsewhere in the file (a bad schedule, a check of its own without one) does not hold a ping back:
the server reports those when it loads the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import tomli

from heartfly.client.transport import AddressError, check_url, name_url
from heartfly.core.addresses import DEFAULT_PORT, parse_key, parse_listen, parse_public_url, url_of
from heartfly.core.config_keys import SERVER_KEYS, TOP_KEYS

TYPE_CHECKING = False  # typing costs a cron tick ~5 ms; mypy reads this name as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def url_in_file(path: Path, name: str, base_url: str | None, ping_key: str | None) -> str | None:
    """What transport.config_url would say for this file, or None where only the full loader can tell.

    A name the file does not hold, with no ping_key to address it by, is AddressError here too: the
    file's other problems, if it has any, matter less to a job than that its check is not there."""
    try:
        with open(path, "rb") as file:
            table = tomli.loads(file.read().decode("utf-8-sig"))  # as the full loader reads it
        server, checks = _table(table, "server"), _table(table, "checks")
        if not (table.keys() <= TOP_KEYS and server.keys() <= SERVER_KEYS):
            return None  # a misspelt key (publc_url, [sever]) would leave the default address
        base = check_url(base_url, "HEARTFLY_URL") if base_url else _public_url(server)
        file_key = parse_key(_text(server, "ping_key")) if "ping_key" in server else None
        check = checks.get(name)
        if check is not None:
            if type(check) is not dict:
                return None
            own = parse_key(_text(check, "key"))
            return f"{base.rstrip('/')}/ping/{own}" if _owned_once(own, checks, file_key) else None
        key = ping_key or file_key
    except (OSError, ValueError, RecursionError):  # TOMLDecodeError, AddressError: ValueErrors too
        return None
    if not key:
        raise AddressError(f'no check "{name}" in {path}, and no ping_key there to address it by name')
    return name_url(base, key, name)


def _owned_once(key: str, checks: Mapping[str, Any], ping_key: str | None) -> bool:
    """Whether no other key in the file is `key` (the full loader refuses a file where one is: a
    copied key would send this check's pings to another check)."""
    owners = sum(
        1 for table in checks.values() if type(table) is dict for field in _CHECK_KEY_FIELDS if table.get(field) == key
    )
    return owners == 1 and key != ping_key


_CHECK_KEY_FIELDS = ("key", "start_key", "fail_key")


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
