"""The job side's own HTTP/1.1 POST against real sockets: framings, interim answers, broken
answers, and the hand-over to urllib when a proxy is configured."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from heartfly.client import http1
from heartfly.client.transport import Outcome, Ping, Transport

KEY = "k" * 24


class Canned:
    """A server that reads one request and answers with the given bytes, then closes."""

    def __init__(self, answer: bytes, host: str = "127.0.0.1", port: int = 0) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.sock = socket.create_server((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head, body = read_request(conn)
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """A POST as it came: its head, and its body of Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


@pytest.fixture
def canned(request: pytest.FixtureRequest) -> Iterator[Canned]:
    server = Canned(request.param)
    yield server
    server.close()


def post(url: str, limit: int = 1 << 20) -> http1.Response:
    return http1.post(url, b"hello", {"User-Agent": "t"}, connect_timeout=2, read_timeout=2, limit=limit)


@pytest.mark.parametrize(
    "canned",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nO\r\n1;ext=1\r\nK\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nOK",  # ended by closing the connection
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
    ],
    indirect=True,
    ids=["content-length", "chunked", "close-delimited", "interim-100"],
)
def test_an_answer_is_read_whole_whatever_its_framing(canned: Canned) -> None:
    answer = post(f"{canned.url}/ping/{KEY}?rid=1")
    assert (answer.status, answer.body) == (200, b"OK")
    head, _, body = canned.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST /ping/{KEY}?rid=1 HTTP/1.1" and body == b"hello"
    assert {"Connection: close", "Content-Length: 5", "User-Agent: t"} <= set(lines)


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"], indirect=True)
def test_an_answer_is_cut_at_the_limit(canned: Canned) -> None:
    assert post(canned.url, limit=4).body == b"0123"


@pytest.mark.parametrize(
    "canned",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""],
    indirect=True,
    ids=["not-http", "cut-short", "nothing"],
)
def test_a_broken_answer_is_an_unreachable_server_worth_retrying(canned: Canned) -> None:
    with pytest.raises(http1.BadAnswer, match=r"ended early|not HTTP"):
        post(canned.url)
    answer = Transport(retries=0, connect_timeout=2, read_timeout=2).send(Ping(f"{canned.url}/ping/{KEY}"))
    assert answer.outcome is Outcome.UNREACHABLE and answer.detail.startswith("cannot reach the server")


@pytest.mark.parametrize(
    "canned", [b"HTTP/1.1 302 Found\r\nLocation: https://x.example/p\r\nContent-Length: 0\r\n\r\n"], indirect=True
)
def test_a_redirect_is_reported_not_followed(canned: Canned) -> None:
    answer = Transport(retries=0).send(Ping(f"{canned.url}/ping/{KEY}"))
    assert (answer.outcome, answer.status, answer.detail) == (Outcome.REJECTED, 302, "https://x.example/p")


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"], indirect=True)
def test_a_proxy_from_the_environment_is_used_through_urllib(canned: Canned, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", canned.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert not http1.handles("http://heartfly.invalid/ping/x")
    answer = Transport(retries=0).send(Ping(f"http://heartfly.invalid/ping/{KEY}", uid=None))
    assert answer.outcome is Outcome.DELIVERED
    assert canned.requests[0].startswith(f"POST http://heartfly.invalid/ping/{KEY} HTTP/1.1".encode())


def test_only_a_proxy_from_the_environment_is_left_to_urllib() -> None:
    assert http1.handles("https://hb.example.com/ping/x", {})
    assert http1.handles("https://user:secret@hb.example.com/ping/x", {})  # the transport sends Basic auth
    assert not http1.handles("http://h/ping/x", {"HTTPS_PROXY": "http://proxy:3128"})


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"], indirect=True)
@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "proxy"])
def test_credentials_in_a_ping_url_are_sent_as_basic_auth_and_the_ping_is_delivered(
    canned: Canned, monkeypatch: pytest.MonkeyPatch, via_proxy: bool
) -> None:
    # A server behind a reverse proxy with Basic auth: the user:password@ in the ping URL went into
    # the host name, so every ping failed as "Name or service not known" and waited in the spool.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    host = canned.url.removeprefix("http://")
    if via_proxy:
        monkeypatch.setenv("http_proxy", canned.url)
        host = "heartfly.invalid"
    answer = Transport(retries=0, connect_timeout=2, read_timeout=2).send(
        Ping(f"http://job%40site:p%3Ass@{host}/ping/{KEY}", uid=None)
    )
    assert answer.outcome is Outcome.DELIVERED, answer.detail
    head = canned.requests[0].partition(b"\r\n\r\n")[0].decode()
    lines = [line.lower() for line in head.split("\r\n")]
    assert "Authorization: Basic am9iQHNpdGU6cDpzcw==" in head.split("\r\n")  # base64 of "job@site:p:ss"
    assert f"host: {host}" in lines and "p%3ass" not in head.lower()


def test_a_name_lookup_that_never_answers_is_given_up_on_within_the_lookup_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A DNS server that is down: glibc waits 5 s per try and server, so one lookup could hold a
    # job's start far past its 3 s budget; nothing bounded it but the resolver's own tries.
    # No real resolver can be made to hang here: getaddrinfo itself is held until the test ends.
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: object, *args: object, **kwargs: object) -> object:
        if host in (b"hb.heartfly.test", "hb.heartfly.test"):
            released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    try:
        answer = Transport(retries=0, connect_timeout=0.5, read_timeout=0.5, lookup_timeout=0.5).send(
            Ping(f"http://hb.heartfly.test/ping/{KEY}")
        )
        assert not released.is_set()
    finally:
        released.set()
    assert answer.outcome is Outcome.UNREACHABLE and "name" in answer.detail, answer.detail
    assert "Temporary failure" not in answer.detail  # given up on, not waited out


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"], indirect=True)
def test_a_name_lookup_slower_than_the_connect_timeout_that_answers_still_delivers_the_ping(
    canned: Canned, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resolver whose first DNS server is down answers from the next one after glibc's 5 s
    # timeout: just over the 5 s connect timeout. Bounding the lookup by that timeout gave up on
    # every lookup, so every ping (and every replay of it) failed where it used to arrive late.
    real = socket.getaddrinfo
    port = canned.url.rpartition(":")[2]

    def slow(host: object, *args: object, **kwargs: object) -> object:
        if host in (b"hb.heartfly.test", "hb.heartfly.test"):
            time.sleep(0.8)  # longer than the connect timeout below, shorter than the ping's budget
            return real("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    answer = Transport(retries=0, connect_timeout=0.5, read_timeout=2).send(
        Ping(f"http://hb.heartfly.test:{port}/ping/{KEY}"), deadline=time.monotonic() + 20
    )
    assert answer.outcome is Outcome.DELIVERED, answer.detail
    assert canned.requests and canned.requests[0].startswith(f"POST /ping/{KEY}".encode())


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"], indirect=True)
def test_looking_a_host_name_up_imports_no_module_a_cron_tick_did_not_already_pay_for(canned: Canned) -> None:
    # `heartfly ping` to a host name (the usual URL) imported threading for its bounded lookup:
    # a module, and its start-up time, on every cron tick's common path.
    port = canned.url.rpartition(":")[2]
    script = (
        "import sys; from heartfly.client import http1; before = set(sys.modules);"
        f" answer = http1.post('http://localhost:{port}/ping/x', b'', {{}}, connect_timeout=2, read_timeout=2,"
        " limit=100); print(answer.status, sorted(set(sys.modules) - before))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.split(" ", 1) == ["200", "[]\n"], done.stdout + done.stderr


def test_a_lookup_cut_short_by_the_pings_budget_says_so_in_round_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The start ping's lookup, bounded by what was left of its 3 s budget, was reported as having
    # "took over 2.99989 s": a number that reads like a measurement and is none.
    released = threading.Event()

    def hanging(host: object, *args: object, **kwargs: object) -> object:
        released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    try:
        answer = Transport(retries=0, connect_timeout=5, read_timeout=5, clock=lambda: 0.0).send(
            Ping(f"http://hb.heartfly.test/ping/{KEY}"),
            deadline=0.599884,  # as a real clock leaves it
        )
    finally:
        released.set()
    assert "looking up the server's name took over 0.6 s" in answer.detail, answer.detail


@pytest.mark.parametrize("canned", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"], indirect=True)
def test_a_ping_is_still_sent_when_no_thread_can_be_started_for_its_lookup(
    canned: Canned, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container at its pids limit, or a user at `ulimit -u`: "can't start new thread" is a
    # RuntimeError, which no part of the transport catches: the ping was lost, not even spooled,
    # where before the lookup thread it went out.
    import _thread

    def no_thread(*args: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_thread, "start_new_thread", no_thread)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    port = canned.url.rpartition(":")[2]
    answer = Transport(retries=0, connect_timeout=2, read_timeout=2).send(Ping(f"http://localhost:{port}/ping/{KEY}"))
    assert answer.outcome is Outcome.DELIVERED, answer.detail


def test_each_retry_starts_at_the_next_address_of_a_name_so_a_node_that_answers_503_is_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cluster behind one DNS name with both nodes' addresses (docs/cluster.md): a node cut off
    # from PostgreSQL answers 503, a frozen one not at all, and every retry went to the first
    # address again, so every ping sent by name went to the spool and its check went down.
    healthy = Canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    port = int(healthy.url.rpartition(":")[2])
    sick = Canned(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown", "127.0.0.2", port)
    real = socket.getaddrinfo

    def both(host: object, *args: object, **kwargs: object) -> object:
        if host in (b"hb.heartfly.test", "hb.heartfly.test"):  # the sick node first, as DNS may order them
            return real("127.0.0.2", *args, **kwargs) + real("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", both)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    try:
        answer = Transport(retries=2, backoff=0.01, connect_timeout=1, read_timeout=2).send(
            Ping(f"http://hb.heartfly.test:{port}/ping/{KEY}")
        )
    finally:
        healthy.close()
        sick.close()
    assert answer.outcome is Outcome.DELIVERED, answer.detail
    assert len(sick.requests) == 1 and len(healthy.requests) == 1, (sick.requests, healthy.requests)
