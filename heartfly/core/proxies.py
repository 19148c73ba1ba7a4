"""A ping's source address behind a reverse proxy: `[server] trusted_proxies` names the proxies
whose X-Forwarded-For is believed. Not in heartfly.core.addresses: the job-side client imports
that one, and `ipaddress` costs it a millisecond on every cron tick. Pure."""

from __future__ import annotations

import functools
import ipaddress

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

# A reverse proxy on the same machine, as docs/install.md sets one up: its pings' clients are shown.
LOOPBACK: Networks = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_networks(items: tuple[str, ...]) -> Networks:
    """`trusted_proxies`: addresses or networks ("10.0.0.5", "10.0.0.0/8", "::1")."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in items:
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f'"{item}" is not an IP address or network (like "10.0.0.5" or "10.0.0.0/8")') from None
        mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
        if mapped is not None and network.prefixlen >= 96:  # as a server on "::" shows a proxy ("::ffff:10.0.0.5"):
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))  # addresses are matched as IPv4
        networks.append(network)
    return tuple(networks)


def client_address(peer: str, forwarded: str | None, trusted: Networks) -> str:
    """The address a ping came from: `peer` (the connection's), or where `peer` is a trusted proxy
    and sent an X-Forwarded-For (`forwarded`, its values joined by commas), the nearest address in
    it that is not a trusted proxy: the ones left of it are the client's to write, so they could
    be anything. An entry that is not an address ends the walk at the proxy that passed it on."""
    if not forwarded or not trusted or not trusted_peer(peer, trusted):
        return peer
    nearest = peer
    for hop in reversed(forwarded.split(",")):
        host = _host(hop.strip())
        if host is None:
            return nearest
        if not trusted_peer(host, trusted):
            return host
        nearest = host
    return nearest  # every hop a trusted proxy: the leftmost


def _host(entry: str) -> str | None:
    """An X-Forwarded-For entry's address as a source to store, or None if it is none. Some proxies
    add the client's port ("203.0.113.7:4711", "[2001:db8::5]:4711"): it is dropped. So is an IPv6
    zone ("fe80::1%eth0"), which `ipaddress` takes as free text: a client's own entry, believed
    where it connects from a trusted address, would put anything (a terminal's escape sequences,
    kilobytes) in the pings list, `heartfly history` and the alerts."""
    if entry.startswith("["):
        entry, bracket, port = entry[1:].partition("]")
        if not bracket or (port and not _port(port)):
            return None
    elif entry.count(":") == 1:  # IPv4 and a port; an IPv6 address has two colons or more
        entry, _, port = entry.partition(":")
        if not _port(":" + port):
            return None
    entry = entry.partition("%")[0]
    return entry if _parsed(entry) is not None else None


def _port(text: str) -> bool:
    return text[:1] == ":" and text[1:].isascii() and text[1:].isdigit()


# The longest address text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
_LONGEST = 45


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an address, an IPv4-mapped one as IPv4 (a proxy on 127.0.0.1 seen by a server
    listening on "::"). Kept: behind a proxy every ping names the same few addresses, and parsing
    them took microseconds a ping (10 to 30, the peer's and the client's, on this path)."""
    if len(text) > _LONGEST:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Whether an address (a peer's text, or an entry's as _host gives it) is a trusted proxy, for the
# `trusted` of _memo_of: a network's `in` costs a microsecond, and hashing the networks to key a
# cache by them more. A reload's new trusted_proxies is another object, and starts it afresh.
_memo: dict[str, bool] = {}
_memo_of: list[Networks] = [()]


def trusted_peer(text: str, trusted: Networks) -> bool:
    """Whether an address (a connection's peer, an X-Forwarded-For hop) is a trusted proxy's, whose
    X-Forwarded-* headers are believed."""
    if trusted is not _memo_of[0]:
        _memo.clear()
        _memo_of[0] = trusted
    known = _memo.get(text)
    if known is None:
        address = _parsed(text.partition("%")[0])  # a link-local peer's zone ("fe80::1%eth0")
        known = address is not None and any(address in network for network in trusted)
        if len(_memo) >= 1024:  # addresses a client makes up, one a ping: kept to a few
            _memo.clear()
        _memo[text] = known
    return known
