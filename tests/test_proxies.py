"""A ping's source address behind a reverse proxy (`[server] trusted_proxies`): pure rules, the
config key, and real pings through the server."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartfly.core.config import ConfigError
from heartfly.core.proxies import LOOPBACK, client_address, parse_networks
from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.webutil import bearer

PROXIES = parse_networks(("127.0.0.1", "10.0.0.0/8"))


def test_a_trusted_proxys_forwarded_client_is_the_source() -> None:
    assert client_address("127.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_address("::ffff:127.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"  # listening on "::"
    assert client_address("127.0.0.1", "2001:db8::5", PROXIES) == "2001:db8::5"


def test_a_peer_that_is_no_trusted_proxy_is_the_source_whatever_it_forwards() -> None:
    assert client_address("198.51.100.9", "203.0.113.7", PROXIES) == "198.51.100.9"
    assert client_address("127.0.0.1", "203.0.113.7", ()) == "127.0.0.1"
    assert client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"


def test_the_nearest_address_not_a_trusted_proxy_is_taken_not_what_the_client_wrote_left_of_it() -> None:
    # The client wrote "6.6.6.6" itself; the proxies appended the address each one saw.
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3", PROXIES) == "203.0.113.7"
    assert client_address("127.0.0.1", "10.9.9.9, 10.1.2.3", PROXIES) == "10.9.9.9"  # all proxies: the leftmost


def test_an_entry_that_is_no_address_ends_the_walk_at_the_proxy_that_passed_it_on() -> None:
    assert client_address("127.0.0.1", "unknown", PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.7, <script>, 10.1.2.3", PROXIES) == "10.1.2.3"
    assert client_address("127.0.0.1", "", PROXIES) == "127.0.0.1"


def test_trusted_proxies_default_to_the_loopback_and_take_addresses_and_networks(write_config: ConfigWriter) -> None:
    assert write_config("").server.trusted_proxies == LOOPBACK
    assert write_config("", server="trusted_proxies = []").server.trusted_proxies == ()
    given = write_config("", server='trusted_proxies = ["10.0.0.5", "fd00::/8"]').server.trusted_proxies
    assert [str(n) for n in given] == ["10.0.0.5/32", "fd00::/8"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["10.0.0.300"]', '"10.0.0.300" is not an IP address or network'),
        ('"127.0.0.1"', "expected an array, got a string"),
        ("[1]", "expected an array of non-empty strings"),
    ],
)
def test_a_trusted_proxy_that_is_no_address_is_a_config_error_naming_it(
    write_config: ConfigWriter, value: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies") as caught:
        write_config("", server=f"trusted_proxies = {value}")
    assert words in str(caught.value)


@pytest.mark.parametrize("trusted", ["default", "none"])
async def test_pings_through_a_proxy_on_the_loopback_are_stored_with_their_clients_address(
    aiohttp_client: Any, write_config: ConfigWriter, trusted: str
) -> None:
    # Behind nginx on the same machine (docs/install.md) every ping's source was 127.0.0.1.
    key = new_key()
    server = "trusted_proxies = []" if trusted == "none" else ""
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n', server=server)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(config))
    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    for url in (f"/ping/{key}", f"/ping/{key}/start?rid=r1", f"/ping/{key}"):  # the fast path, the general one
        assert (await client.post(url, headers=forwarded, data=b"" if "rid" not in url else b"out")).status == 200
    batch = {"pings": [{"status": "success", "ts": time.time() - 60}]}
    assert (await client.post(f"/ping/{key}/batch", headers=forwarded, json=batch)).status == 200
    sources = [row[0] for row in query(config, "SELECT source FROM pings")]
    assert len(sources) == 4
    assert set(sources) == ({"127.0.0.1"} if trusted == "none" else {"203.0.113.7"})


def test_a_forwarded_address_is_stored_without_its_port_or_zone() -> None:
    # An IPv6 zone is free text to `ipaddress`: a client on a trusted address (any process on the
    # loopback, by default) wrote escape sequences or kilobytes into its pings' source that way.
    assert client_address("127.0.0.1", "fe80::1%\x1b[2J<b>" + "z" * 4000, PROXIES) == "fe80::1"
    assert client_address("127.0.0.1", "203.0.113.7:4711", PROXIES) == "203.0.113.7"
    assert client_address("127.0.0.1", "[2001:db8::5]:4711", PROXIES) == "2001:db8::5"
    assert client_address("127.0.0.1", "[2001:db8::5]", PROXIES) == "2001:db8::5"
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3:80", PROXIES) == "203.0.113.7"
    for odd in ("203.0.113.7:x", "203.0.113.7:", "[2001:db8::5", "[2001:db8::5]4711", "203.0.113.7:\u0663"):
        assert client_address("127.0.0.1", odd, PROXIES) == "127.0.0.1", odd


async def test_a_zone_a_client_writes_in_its_forwarded_address_is_not_stored(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(config))
    forwarded = {"X-Forwarded-For": "fe80::1%<b>" + "z" * 4000}
    assert (await client.post(f"/ping/{key}", headers=forwarded)).status == 200
    assert query(config, "SELECT source FROM pings") == [("fe80::1",)]


def test_the_addresses_behind_a_proxy_are_parsed_once_not_on_every_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    # Behind the proxy docs/install.md sets up, every ping parsed its peer's address and its
    # client's with ipaddress (tens of µs a ping) and tested them against each network again.
    parsed: list[str] = []
    real = ipaddress.ip_address

    def counted(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(ipaddress, "ip_address", counted)
    proxies = parse_networks(("127.0.0.2", "10.0.0.0/8"))
    for _ in range(100):
        assert client_address("127.0.0.2", "192.0.2.77, 10.7.7.7", proxies) == "192.0.2.77"
    assert sorted(set(parsed)) == sorted(parsed) == ["10.7.7.7", "127.0.0.2", "192.0.2.77"]
    # Other trusted_proxies (a reload's) are asked afresh, not answered from the old ones.
    assert client_address("127.0.0.2", "192.0.2.77, 10.7.7.7", parse_networks(("127.0.0.2",))) == "10.7.7.7"
    assert client_address("127.0.0.2", "192.0.2.77", ()) == "127.0.0.2"
    assert client_address("127.0.0.2", "192.0.2.77", LOOPBACK) == "192.0.2.77"
    assert client_address("127.0.0.2", "192.0.2.77", parse_networks(("10.0.0.0/8",))) == "127.0.0.2"


async def test_a_reload_that_changes_trusted_proxies_applies_to_the_next_ping(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    checks = f'[checks.job]\nkey = "{key}"\nevery = "1h"\n'
    config = write_config(checks)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(config))
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    assert (await client.post(f"/ping/{key}", headers=forwarded)).status == 200
    write_config(checks, server="trusted_proxies = []")
    reloaded = await client.post("/api/v1/reload", headers=bearer(config))
    assert reloaded.status == 200 and (await reloaded.json())["restart_needed"] == []
    assert (await client.post(f"/ping/{key}", headers=forwarded)).status == 200
    assert query(config, "SELECT source FROM pings ORDER BY id") == [("203.0.113.7",), ("127.0.0.1",)]


def test_a_trusted_proxy_written_as_an_ipv4_mapped_address_is_trusted() -> None:
    # A server listening on "::" shows a proxy at 10.0.0.5 as "::ffff:10.0.0.5" in the pings list:
    # written so in trusted_proxies, it was never matched (addresses are matched as IPv4), silently.
    mapped = parse_networks(("::ffff:10.0.0.5", "::ffff:10.1.0.0/112"))
    assert [str(n) for n in mapped] == ["10.0.0.5/32", "10.1.0.0/16"]
    assert client_address("::ffff:10.0.0.5", "203.0.113.7", mapped) == "203.0.113.7"
    assert client_address("10.1.2.3", "203.0.113.7", mapped) == "203.0.113.7"
