"""What the server's addresses and keys look like: a listen address, a public URL, a ping key.

One definition for the config and for the job-side client, which looks a check's key up in the
config file on every cron tick and so imports only this and `re` from the core.
"""

from __future__ import annotations

import re
import urllib.parse

DEFAULT_PORT = 8765
KEY_RE = re.compile(r"[A-Za-z0-9_-]{22,128}")
_LISTEN_RE = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})")
_PUBLIC_URL_RE = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def parse_listen(text: str) -> tuple[str, int]:
    match = _LISTEN_RE.fullmatch(text.strip())
    if not match or int(match.group(3)) > 65535:
        raise ValueError(f'expected "host:port" (e.g. "127.0.0.1:8765" or "[::1]:8765"), got "{text}"')
    return match.group(1) or match.group(2), int(match.group(3))


def parse_public_url(text: str) -> str:
    if not (_PUBLIC_URL_RE.fullmatch(text) and _readable(text)):
        raise ValueError(f'expected an http(s) URL like "https://hb.example.com", got "{text}"')
    return text.rstrip("/")


def _readable(url: str) -> bool:
    """Whether urllib reads a host and, if one is given, a port number in it: "https://[bad" and
    "http://host:web" pass the pattern, and would fail every client that pings them."""
    try:
        parts = urllib.parse.urlsplit(url)
        return bool(parts.hostname) and (parts.port is None or parts.port >= 0)  # .port raises for "web"
    except ValueError:
        return False


def url_fault(url: str) -> str | None:
    """What stops every client using a URL its pattern let through, in words that never quote it
    (it may hold a token or a password, and urlsplit's own words quote the port or the netloc:
    "user:pass/word@host" has the port "pass"): "its port is no number from 1 to 65535" (":99999",
    ":web"), "its host cannot be read" ("https://[::1/x"), "" for no host or port 0; None for
    nothing. (_readable, older, lets port 0 through in a public_url.)"""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        return "its port is no number from 1 to 65535" if "Port" in str(exc) else "its host cannot be read"
    return "" if not host or port == 0 else None


def parse_key(text: str) -> str:
    if not KEY_RE.fullmatch(text):
        raise ValueError("a key is a UUID or 22 to 128 url-safe characters (letters, digits, '-', '_')")
    return text


def url_of(host: str, port: int) -> str:
    """The http URL of a listen address (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
