"""A ping's source address behind a reverse proxy: `[server] trusted_proxies` names the proxies
whose X-Forwarded-For is believed. Not in heartfly.core.addresses: the job-side client imports
that one, and `ipaddress` costs it a millisecond on every cron tick. Pure."""

from __future__ import annotations

import ipaddress

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

# A reverse proxy on the same machine, as docs/install.md sets one up: its pings' clients are shown.
LOOPBACK: Networks = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_networks(items: tuple[str, ...]) -> Networks:
    """`trusted_proxies`: addresses or networks ("10.0.0.5", "10.0.0.0/8", "::1")."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f'"{item}" is not an IP address or network (like "10.0.0.5" or "10.0.0.0/8")') from None
    return tuple(networks)


def client_address(peer: str, forwarded: str | None, trusted: Networks) -> str:
    """The address a ping came from: `peer` (the connection's), or where `peer` is a trusted proxy
    and sent an X-Forwarded-For (`forwarded`, its values joined by commas), the nearest address in
    it that is not a trusted proxy: the ones left of it are the client's to write, so they could
    be anything. An entry that is not an address ends the walk at the proxy that passed it on."""
    if not forwarded or not trusted or not _trusted(peer, trusted):
        return peer
    nearest = peer
    for hop in reversed(forwarded.split(",")):
        hop = hop.strip()
        if not _trusted(hop, trusted):
            return hop if _address(hop) else nearest
        nearest = hop
    return nearest  # every hop a trusted proxy: the leftmost


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trusted(text: str, trusted: Networks) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a proxy on 127.0.0.1 seen by a server listening on "::"
    return any(address in network for network in trusted)
