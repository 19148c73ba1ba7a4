"""One HTTP/1.1 POST over a socket: what `heartfly ping` and `heartfly run` send on every cron tick.

urllib.request (with http.client and the email package under it) costs more start-up than all
the rest of the job side together, for a request this simple: one POST, `Connection: close`, an
answer of a few bytes. So the client speaks HTTP/1.1 itself, and keeps urllib for what it does
not do: a proxy from the environment (http_proxy, https_proxy, all_proxy, with no_proxy).
Credentials in the URL are the caller's to send (heartfly.client.transport: Basic auth). ssl is
imported only for https.

Answers are read whole up to a bound: a status line, headers, and a body framed by
Content-Length, chunked transfer coding, or the end of the connection.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from collections import namedtuple
from collections.abc import Mapping

TYPE_CHECKING = False  # typing costs a cron tick ~5 ms; mypy reads this name as True
if TYPE_CHECKING:
    from typing import Any, NamedTuple

MAX_HEAD = 64 * 1024
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


if TYPE_CHECKING:

    class Response(NamedTuple):
        status: int
        reason: str
        headers: dict[str, str]  # names in lower case
        body: bytes

else:
    Response = namedtuple("Response", "status reason headers body")


class BadAnswer(OSError):
    """The server's answer is not HTTP/1.x: treated like a broken connection."""


def handles(url: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether this module can send to `url` (else urllib must: a proxy from the environment)."""
    if any(env.get(name) or env.get(name.upper()) for name in PROXY_VARIABLES):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    limit: int,
    lookup_timeout: float | None = None,
    turn: int = 0,
) -> Response:
    """POST `body`; OSError (socket.timeout, ssl.SSLError, BadAnswer ...) when no answer came.
    `lookup_timeout` (else `connect_timeout`) bounds looking the host name up and connecting
    together, `connect_timeout` each connect (TCP and TLS) alone. `read_timeout` bounds sending
    the request and reading the whole answer, not each read: a server that sends a byte a second
    must not hold the job back for hours. `turn`: the try's number, which address of the host's
    name is tried first (see _connect)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    # An ASCII name as bytes: given str, getaddrinfo imports the idna codec (~5 ms a cron tick).
    name = host.encode("ascii") if host.isascii() else host.encode("idna")
    reach = connect_timeout if lookup_timeout is None else lookup_timeout
    sock = _connect(name, port, connect_timeout, reach, turn)
    try:
        if https:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        until = time.monotonic() + read_timeout
        sock.settimeout(read_timeout)
        sock.sendall(request)  # its timeout bounds the whole of it
        return _read_response(_Reader(sock, until), limit)
    finally:
        sock.close()


def _connect(name: bytes, port: int, timeout: float, reach: float, turn: int = 0) -> socket.socket:
    """A connection to `name`, its lookup and connect within `reach`, each connect within `timeout`.
    getaddrinfo has no timeout of its own (a DNS server that is down costs 5 s a try and a server),
    so it runs in a thread of its own, left behind when it takes too long; then each address is
    tried in turn, as with socket.create_connection, the `turn`th first: a retry starts at the next
    address, for one that takes the connection and answers 503 or never (a cluster's node cut off
    from its database, or frozen, behind a name with every node's address) would take every try.
    `reach` is not `timeout`: a resolver whose first server is down answers from the next after
    glibc's 5 s, as long as the connect timeout, and a ping that would arrive late must not be
    given up on."""
    if _is_address(name):  # nothing to look up
        return socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]
    # _thread, not threading: built in and loaded at start, where threading would cost every
    # `heartfly ping` its import. Such a thread is not waited for at exit, as a daemon thread.
    import _thread

    began = time.monotonic()
    found: list[list[tuple[Any, ...]] | OSError] = []
    done = _thread.allocate_lock()
    done.acquire()

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        except Exception as exc:  # noqa: BLE001 - said as a failed lookup, not waited out
            found.append(OSError(f"cannot look the server's name up: {exc}"))
        finally:
            done.release()

    try:
        _thread.start_new_thread(lookup, ())
    except RuntimeError:  # no thread to be had (a pids limit, ulimit -u): looked up here, unbounded
        lookup()
    done.acquire(timeout=reach)
    if not found:
        raise TimeoutError(f"looking up the server's name took over {reach:.2g} s")  # 3, not 2.99989
    if isinstance(found[0], OSError):
        raise found[0]
    left = max(min(timeout, reach - (time.monotonic() - began)), 0.001)
    error = OSError(f"no address for {name.decode('ascii', 'replace')}")
    first = turn % len(found[0]) if found[0] else 0
    addresses = found[0][first:] + found[0][:first]
    for family, kind, proto, _, address in addresses:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:  # a family this machine does not have
            error = exc
            continue
        try:
            sock.settimeout(left)
            sock.connect(address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error


def _is_address(name: bytes) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name.decode("ascii"))
            return True
        except (OSError, UnicodeDecodeError):
            pass
    return False


class _Reader:
    def __init__(self, sock: socket.socket, until: float) -> None:
        self.sock = sock
        self.until_time = until  # time.monotonic() by which the whole answer must have come
        self.buffer = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        left = self.until_time - time.monotonic()
        if left <= 0:
            raise TimeoutError("the server's answer took too long")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def until(self, marker: bytes, bound: int) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > bound or not self.fill():
                raise BadAnswer("the server's answer ended early or is not HTTP")
        data, self.buffer = self.buffer[:end], self.buffer[end + len(marker) :]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self.fill():
                raise BadAnswer("the server's answer ended early")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self, bound: int) -> bytes:
        while len(self.buffer) < bound and self.fill():
            pass
        return self.buffer[:bound]


def _read_response(reader: _Reader, limit: int) -> Response:
    while True:
        lines = reader.until(b"\r\n\r\n", MAX_HEAD).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
            raise BadAnswer(f"the server's answer is not HTTP: {lines[0][:60]!r}")
        if not code.startswith("1"):  # 100 Continue and other interim answers: the real one follows
            break
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked(reader, limit)
    elif headers.get("content-length", "").isdigit():
        body = reader.exactly(min(int(headers["content-length"]), limit))
    else:
        body = reader.rest(limit)
    return Response(int(code), reason, headers, body)


def _chunked(reader: _Reader, limit: int) -> bytes:
    body = b""
    while len(body) < limit:
        size_line = reader.until(b"\r\n", MAX_HEAD).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadAnswer("a malformed chunk in the server's answer") from None
        if size == 0:
            break
        body += reader.exactly(size)
        reader.exactly(2)  # the chunk's CRLF
    return body[:limit]
