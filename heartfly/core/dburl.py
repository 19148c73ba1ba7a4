"""`[server] database`: a SQLite file's path, or a PostgreSQL URL (`postgresql://…`).

A URL may carry a password; it is kept out of every text Heartfly shows (`shown`, repr, the
store's errors), which name the database by its redacted URL instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SCHEMES = ("postgresql://", "postgres://")  # libpq's two spellings
_FORM = "postgresql://user@host:port/dbname"


@dataclass(frozen=True, slots=True, repr=False)
class PostgresDatabase:
    url: str  # as written; may hold a password: show `shown` instead
    password_file: Path | None = None
    password: str | None = field(default=None, compare=False)  # password_file's content, read by the loader

    @property
    def shown(self) -> str:
        return redact(self.url)

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.shown!r})"


Database = Path | PostgresDatabase


def is_postgres(text: str) -> bool:
    return text.lower().startswith(SCHEMES)


def parse_postgres_url(text: str) -> str:
    """The URL, checked as far as can be without connecting; ValueError (password-free) if not usable."""
    shown = redact(text)
    parts = None
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError for a port that is no number or out of range
    except ValueError:
        hint = _hint(text, None if parts is None else parts.password)
        raise ValueError(f"{shown} is not a usable PostgreSQL URL ({_FORM}){hint}") from None
    hint = _hint(text, parts.password)
    if port == 0:
        raise ValueError(f"{shown}: port 0 is not a PostgreSQL port{hint}")
    if not parts.path.strip("/"):
        raise ValueError(f"{shown} names no database ({_FORM}){hint}")
    if "/" in parts.path.strip("/"):
        raise ValueError(f"{shown}: the database name is one path segment{hint}")
    if parts.fragment:
        raise ValueError(f"{shown}: a PostgreSQL URL has no #fragment{hint}")
    return text


def _hint(text: str, password: str | None) -> str:
    """Where the URL holds a password that its parse did not find (a "/", "@", "?" or "#" in it,
    not percent-encoded, ends it early), how to write it: the error shows the URL with it hidden."""
    if password is not None or not _NETLOC_PASSWORD.match(text):
        return ""
    return '; a password\'s "/", "@", "?" and "#" are written %2F, %40, %3F and %23 in the URL'


def has_password(text: str) -> bool:
    parts = urlsplit(text)
    return parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query))


# user:PASSWORD@ up to the netloc's last "@"; or, when the netloc holds none (a "/", "?" or "#" in the
# password, not percent-encoded, ends it early: such a URL is refused, and its error shown), up to
# the last "@" before a query (a "/" in it, even after digits that read as a port: "2024/…"), else
# to the first "@" after it, unless what follows the ":" is a port. A port then a path that holds
# an "@" is hidden as a password would be: showing too little beats showing a password.
_NETLOC_PASSWORD = re.compile(r"^([a-z]+://[^:/@?#]*):(?:[^/?#]*@|[^?#]*@|(?![0-9]*(?:[/?#]|$))[^@]*@)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)  # sslpassword: the client key's


def redact(url: str) -> str:
    """The URL with any password (user:PASSWORD@…, ?password=… or ?sslpassword=…) replaced by ***."""
    return _QUERY_PASSWORD.sub(r"\1***", _NETLOC_PASSWORD.sub(r"\1:***@", url))
