"""The client library in-process: URLs, retries, spool and replay against real local HTTP servers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from heartfly.client import spool as spool_module
from heartfly.client.runner import Runner, RunOutcome, Tail
from heartfly.client.spool import Courier, Result, Spool, default_folder
from heartfly.client.transport import (
    AddressError,
    Outcome,
    Ping,
    Transport,
    check_run_id,
    config_url,
    event_for,
    name_url,
    parse_metric,
    redact,
    target_url,
)
from heartfly.core.pingparse import JSON_CAP
from tests.conftest import ConfigWriter

KEY = "k" * 24


class Recorder(http.server.ThreadingHTTPServer):
    """A stand-in server: answers each request with the next scripted (status, body), records it."""

    def __init__(self, script: list[tuple[int, str]] | None = None, *, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script or [])
        self.hang = hang
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: dict[str, str] = {}  # sent with every answer
        self.released = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def next_answer(self) -> tuple[int, str]:
        return self.script.pop(0) if self.script else (200, "OK")


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append((self.command, self.path, body))
        if self.server.hang:
            self.server.released.wait(5)
            return
        status, text = self.server.next_answer()
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "https://elsewhere.example/ping/x")
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(text.encode())))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes


def quick(retries: int = 0) -> Transport:
    return Transport(retries=retries, backoff=0.01, connect_timeout=1.0, read_timeout=0.3)


# --- URLs -------------------------------------------------------------------------------------


def test_a_ping_url_carries_its_event_run_id_and_metrics_and_ts_only_on_replay() -> None:
    ping = Ping(f"https://hb.example.com/ping/{KEY}/", "start", run_id="r 1", metrics={"rows": 5.0, "s": 0.25}, at=12.5,
                uid=None)  # fmt: skip
    assert ping.request_url() == f"https://hb.example.com/ping/{KEY}/start?rid=r+1&m_rows=5&m_s=0.25"
    assert ping.request_url(with_ts=True).endswith("&ts=12.500")
    assert Ping("http://h/ping/x?create=1", "0", uid=None).request_url() == "http://h/ping/x/0?create=1"


def test_every_ping_carries_an_id_of_its_own_that_each_resend_repeats() -> None:
    one, two = Ping("http://h/ping/x"), Ping("http://h/ping/x")
    assert one.uid and two.uid and one.uid != two.uid
    assert one.request_url().endswith(f"?ping_id={one.uid}")
    assert one.request_url(with_ts=True).endswith(f"&ping_id={one.uid}")  # a replay is the same ping
    assert one.batch_item()["ping_id"] == one.uid


def test_targets_are_full_urls_or_check_names_and_a_url_without_a_scheme_is_refused() -> None:
    assert target_url("https://hc-ping.com/5b8e2a3c-0000-4000-8000-000000000000") is not None
    assert target_url("nightly-backup") is None
    assert target_url("db.backup") is None  # names may contain dots
    with pytest.raises(AddressError, match="without a scheme"):
        target_url("hb.example.com/ping/abc")
    with pytest.raises(AddressError, match="must start with http"):
        target_url("ftp://hb.example.com/ping/abc")
    with pytest.raises(AddressError, match="neither a check name"):
        target_url("no spaces please")
    with pytest.raises(AddressError, match="has no scheme"):
        name_url("hb.example.com", KEY, "job")


def test_a_name_resolves_to_its_key_in_a_config_else_under_the_ping_key(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.job]\nkey = "{KEY}"\nevery = "1h"\n',
        server=f'public_url = "https://hb.example.com/"\nping_key = "{"p" * 24}"',
    )
    assert config_url(config, "job") == f"https://hb.example.com/ping/{KEY}"
    assert config_url(config, "other") == f"https://hb.example.com/ping/{'p' * 24}/other"
    assert config_url(config, "job", base_url="http://10.0.0.1:8765") == f"http://10.0.0.1:8765/ping/{KEY}"


def test_a_name_missing_from_a_config_without_a_ping_key_is_a_clear_error(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.job]\nkey = "{KEY}"\nevery = "1h"\n')
    with pytest.raises(AddressError, match='no check "other"'):
        config_url(config, "other")


def test_messages_shorten_keys_in_urls() -> None:
    assert redact(f"https://hb.example.com/ping/{KEY}/start?rid=1") == "https://hb.example.com/ping/kkkkkk…/start"


def test_a_password_in_a_ping_url_is_never_shown_in_a_message(tmp_path: Path) -> None:
    # cron mails stderr around: the key was shortened, the Basic auth password beside it printed whole.
    warnings: list[str] = []
    url = f"{closed_port_url()}/ping/{KEY}".replace("://", "://job:s3cret-pass@")
    assert courier(Spool(tmp_path / "spool"), warnings).deliver(Ping(url)) is Result.SPOOLED
    for bad in (url.replace("127.0.0.1:", "127.0.0.1:99999"), url.removeprefix("http://")):
        with pytest.raises(AddressError) as refused:
            target_url(bad)
        warnings.append(str(refused.value))
    assert len(warnings) == 3 and not [w for w in warnings if "s3cret" in w], warnings
    assert redact("https://job:p@ss@hb.example.com/ping/x") == "https://…@hb.example.com/ping/x"


def test_a_password_that_is_not_percent_encoded_is_never_shown_in_a_message() -> None:
    # A / # or ? in a password the user forgot to percent-encode ends the URL's userinfo early for
    # urlsplit: the URL is refused, or sent to a host that is not there, and the message that says
    # so printed the password, the one time a user is most likely to paste it to a colleague.
    for url in (
        "https://job:Xq7#Zr9@hb.example.com/ping/x",
        "https://job:Xq7/Zr9@hb.example.com/ping/x",
        "https://job:Xq7?Zr9@hb.example.com/ping/x",
        "job:Xq7#Zr9@hb.example.com/ping/x",
    ):
        with pytest.raises(AddressError) as refused:
            target_url(url)
        assert "Xq7" not in str(refused.value) and "Zr9" not in str(refused.value), refused.value
    accepted = "https://job:1234#Zr9@hb.example.com/ping/x"  # host "job", port 1234: a ping that fails
    assert target_url(accepted) == accepted
    assert "Zr9" not in Ping(accepted).describe() and "1234" not in Ping(accepted).describe()
    moved = f"https://hb.example.com/ping/{KEY}/start?rid=deploy@web-1&ping_id=1"  # a redirect's Location
    assert redact(moved) == "https://hb.example.com/ping/kkkkkk…/start"


def test_flags_metrics_and_run_ids_are_checked_before_anything_is_sent() -> None:
    assert event_for() == "" and event_for(exit_code=0) == "0" and event_for(progress=True) == "progress"
    with pytest.raises(ValueError, match="choose one event"):
        event_for(start=True, fail=True)
    assert parse_metric("rows=1e3") == ("rows", 1000.0)
    for bad in ("rows", "ro ws=1", "rows=abc", "rows=inf"):
        with pytest.raises(ValueError, match=r"name=number|finite number"):
            parse_metric(bad)
    with pytest.raises(ValueError, match="printable ASCII"):
        check_run_id("has space")


def test_the_spool_lives_in_the_users_state_directory_unless_told_otherwise() -> None:
    assert Path(default_folder({"HOME": "/home/u"})) == Path("/home/u/.local/state/heartfly/spool")
    assert Path(default_folder({"HOME": "/home/u", "XDG_STATE_HOME": "/st"})) == Path("/st/heartfly/spool")
    relative = {"HOME": "/home/u", "XDG_STATE_HOME": "rel"}
    assert Path(default_folder(relative)) == Path("/home/u/.local/state/heartfly/spool")
    assert Path(default_folder({"HEARTFLY_SPOOL": "/var/spool/hf"})) == Path("/var/spool/hf")


# --- one delivery ------------------------------------------------------------------------------


def test_a_ping_is_posted_with_its_body_and_its_id(recorder: Recorder) -> None:
    ping = Ping(f"{recorder.url}/ping/{KEY}", "fail", b"disk full\n")
    answer = quick().send(ping)
    assert answer.outcome is Outcome.DELIVERED
    assert recorder.requests == [("POST", f"/ping/{KEY}/fail?ping_id={ping.uid}", b"disk full\n")]


def test_5xx_answers_are_retried_with_backoff_until_one_succeeds(recorder: Recorder) -> None:
    recorder.script = [(503, "storage unavailable"), (502, "bad gateway")]
    waits: list[float] = []
    transport = Transport(retries=3, backoff=0.5, sleep=waits.append)
    assert transport.send(Ping(f"{recorder.url}/ping/{KEY}")).outcome is Outcome.DELIVERED
    assert len(recorder.requests) == 3
    assert 0.4 <= waits[0] <= 0.6 and 0.8 <= waits[1] <= 1.2  # doubling, with jitter


def test_a_ping_sent_a_while_after_it_was_made_carries_its_time_and_goes_again_without_one_refused(
    recorder: Recorder,
) -> None:
    # A retry, or a ping that waited behind a replay of the spool, was dated by its arrival: an end
    # that got in seconds after a restart made its run as long as the wait, and missed a due time
    # it met. With its time, one this machine's clock dates ahead of the server's (400: in the
    # future) is not lost for that.
    recorder.script = [(503, "restarting"), (400, "ts: in the future"), (503, "restarting")]
    ping = Ping(f"{recorder.url}/ping/{KEY}", "0", at=time.time() - 10)
    assert quick(retries=3).send(ping).outcome is Outcome.DELIVERED
    paths = [path for _, path, _ in recorder.requests]
    assert ["ts=" in path for path in paths] == [True, True, False, True]
    recorder.requests.clear()
    recorder.script = [(503, "restarting")]
    assert quick(retries=3).send(Ping(f"{recorder.url}/ping/{KEY}", "0")).outcome is Outcome.DELIVERED
    assert ["ts=" in path for _, path, _ in recorder.requests] == [False, False]  # sent as it was made: no ts


def test_a_404_is_not_retried_and_says_the_key_is_wrong(recorder: Recorder) -> None:
    recorder.script = [(404, "not found")]
    ping = Ping(f"{recorder.url}/ping/{KEY}")
    answer = quick(retries=3).send(ping)
    assert (answer.outcome, answer.status, len(recorder.requests)) == (Outcome.REJECTED, 404, 1)
    assert "no check has this key or name" in answer.explain(ping)


def test_a_400_is_not_retried_and_its_reason_is_shown(recorder: Recorder) -> None:
    recorder.script = [(400, "rid must be 1 to 128 printable ASCII characters without spaces\n")]
    ping = Ping(f"{recorder.url}/ping/{KEY}")
    answer = quick(retries=3).send(ping)
    assert answer.outcome is Outcome.REJECTED and len(recorder.requests) == 1
    assert answer.explain(ping).endswith("answered 400: rid must be 1 to 128 printable ASCII characters without spaces")


def test_a_servers_reason_with_escape_sequences_is_shown_as_text_not_to_the_terminal(recorder: Recorder) -> None:
    # The reason goes to the job's stderr: a terminal, or cron's mail read in one. Over plain http
    # (HEARTFLY_URL=http://...) anyone on the way, or a proxy's error page, wrote escape sequences there
    recorder.script = [(400, "bad\x1b[2J\x1b]0;pwned\x07 \u202erequest\n")]
    ping = Ping(f"{recorder.url}/ping/{KEY}")
    said = quick().send(ping).explain(ping)
    assert said.endswith("answered 400: bad\\x1b[2J\\x1b]0;pwned\\x07 \\u202erequest"), said
    assert said.isprintable()


def test_a_servers_reason_in_any_language_is_shown_as_it_is_only_controls_escaped(recorder: Recorder) -> None:
    # A French proxy's "Erreur\u00a0:", CJK's U+3000, an emoji's joiner and one newer than Python's
    # Unicode tables are text, not controls; one past U+FFFF that is escaped is written in full
    # (\U000f0000: as \uf0000 it read as U+F000, then a 0)
    words = "Erreur\u00a0: requête refusée 日本\u3000語 \U0001f469\u200d\U0001f4bb \U0001fae8"
    recorder.script = [(400, words + " \U000f0000\x1b[2J\n")]
    ping = Ping(f"{recorder.url}/ping/{KEY}")
    said = quick().send(ping).explain(ping)
    assert said.endswith("answered 400: " + words + " \\U000f0000\\x1b[2J"), said


def test_a_redirect_is_reported_not_followed(recorder: Recorder) -> None:
    recorder.script = [(301, "")]
    ping = Ping(f"{recorder.url}/ping/{KEY}")
    answer = quick().send(ping)
    assert answer.outcome is Outcome.REJECTED
    assert "redirects (301) to https://elsewhere.example/ping/x" in answer.explain(ping)


def test_a_refused_connection_is_unreachable_after_the_retries() -> None:
    waits: list[float] = []
    transport = Transport(retries=2, backoff=0.01, sleep=waits.append)
    answer = transport.send(Ping(f"{closed_port_url()}/ping/{KEY}"))
    assert answer.outcome is Outcome.UNREACHABLE and "cannot reach the server" in answer.detail
    assert len(waits) == 2


def test_a_server_that_never_answers_is_given_up_on_after_the_read_timeout() -> None:
    server = Recorder(hang=True)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        began = time.monotonic()
        answer = quick().send(Ping(f"{server.url}/ping/{KEY}"))
        assert answer.outcome is Outcome.UNREACHABLE
        assert time.monotonic() - began < 2.0
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


def test_a_deadline_cuts_the_timeouts_and_retries_short_against_a_server_that_never_answers() -> None:
    with socket.socket() as sock:  # the kernel takes the connections; nothing ever answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        transport = Transport()  # 5 retries of 5 s + 10 s each without a deadline
        began = time.monotonic()
        answer = transport.send(Ping(f"http://127.0.0.1:{sock.getsockname()[1]}/ping/{KEY}"), deadline=began + 0.3)
    assert answer.outcome is Outcome.UNREACHABLE and "timed out" in answer.detail
    assert time.monotonic() - began < 5.0


# --- spool and replay --------------------------------------------------------------------------


def courier(spool: Spool | None, warnings: list[str], retries: int = 0) -> Courier:
    return Courier(quick(retries), spool, warnings.append)


def test_an_unreachable_server_spools_the_ping_with_its_time(tmp_path: Path) -> None:
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    ping = Ping(f"{closed_port_url()}/ping/{KEY}", "3", b"tail", "r1", {"duration": 1.5}, at=1_700_000_000.25)
    assert courier(spool, warnings).deliver(ping) is Result.SPOOLED
    [path] = spool.pending()
    assert Spool.load(path) == ping
    assert os.stat(path).st_mode & 0o777 == 0o600  # ping URLs carry secret keys
    assert os.stat(spool.folder).st_mode & 0o777 == 0o700
    assert "spooled to" in warnings[-1] and KEY not in warnings[-1]


def test_the_next_delivery_replays_spooled_pings_first_as_one_batch_with_their_times_and_ids(
    recorder: Recorder, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    first, second = Ping(url, "start", at=1000.0, run_id="r"), Ping(url, "0", b"done", at=1060.5, run_id="r")
    spool.put(first)
    spool.put(second)
    assert courier(spool, []).deliver(Ping(url, "log", b"later")) is Result.SENT
    paths = [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests]
    assert paths == [f"/ping/{KEY}/batch", f"/ping/{KEY}/log"]
    assert json.loads(recorder.requests[0][2]) == {
        "pings": [
            {"ts": 1000.0, "status": "start", "run_id": "r", "ping_id": first.uid},
            {"ts": 1060.5, "exit_code": 0, "message": "done", "run_id": "r", "ping_id": second.uid},
        ]
    }
    assert spool.pending() == []


@pytest.mark.parametrize(
    "tail",
    [("Ошибка: нет места на диске\n" * 400).encode()[:10240], bytes(range(256)) * 40],
    ids=["cyrillic", "binary"],
)
def test_spooled_batches_stay_within_the_servers_cap_whatever_the_output_is_made_of(
    recorder: Recorder, tmp_path: Path, tail: bytes
) -> None:
    # JSON escapes each non-ASCII character as \\uXXXX (6 bytes, from 1 to 3): a batch over the
    # server's 1 MiB cap is refused, and its pings go one at a time, not as one all-or-nothing batch.
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    for i in range(60):
        spool.put(Ping(url, "0", tail, f"r{i}", {"duration": 1.0}, at=1000.0 + i))
    assert courier(spool, []).flush().sent == 60
    assert {urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests} == {f"/ping/{KEY}/batch"}
    assert max(len(body) for _, _, body in recorder.requests) <= JSON_CAP


def test_a_server_without_batches_gets_the_spool_one_ping_at_a_time_with_ts(recorder: Recorder, tmp_path: Path) -> None:
    recorder.script = [(404, "not found")]  # an older Heartfly, or a Healthchecks server
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    spool.put(Ping(url, "start", at=1000.0, run_id="r"))
    spool.put(Ping(url, "0", b"done", at=1060.5, run_id="r"))
    assert courier(spool, []).flush().sent == 2
    paths = [urllib.parse.urlsplit(p) for _, p, _ in recorder.requests[1:]]
    assert [p.path for p in paths] == [f"/ping/{KEY}/start", f"/ping/{KEY}/0"]
    assert [urllib.parse.parse_qs(p.query).get("ts") for p in paths] == [["1000.000"], ["1060.500"]]
    assert recorder.requests[2][2] == b"done" and spool.pending() == []


def test_while_earlier_pings_still_wait_a_new_one_joins_them_to_keep_the_order(tmp_path: Path) -> None:
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    url = f"{closed_port_url()}/ping/{KEY}"
    spool.put(Ping(url, "start", at=1000.0))
    assert courier(spool, warnings).deliver(Ping(url)) is Result.SPOOLED
    assert len(spool.pending()) == 2
    assert any("held back" in w for w in warnings)


def test_a_hung_server_in_the_spool_does_not_spend_the_budget_of_a_ping_to_another_server(
    recorder: Recorder, tmp_path: Path
) -> None:
    hung = Recorder(hang=True)  # a server that moved away, or one that accepts and never answers
    threading.Thread(target=hung.serve_forever, args=(0.02,), daemon=True).start()
    try:
        spool = Spool(tmp_path / "spool")
        spool.put(Ping(f"{hung.url}/ping/{KEY}", at=1000.0))
        sender = Courier(Transport(retries=0), spool, lambda _: None)
        ping = Ping(f"{recorder.url}/ping/{KEY}", "start")
        assert sender.deliver(ping, deadline=time.monotonic() + 1.0) is Result.SENT
        assert [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests] == [f"/ping/{KEY}/start"]
        assert [Spool.load(p).url for p in spool.pending()] == [f"{hung.url}/ping/{KEY}"]  # its own turn comes
    finally:
        hung.released.set()
        hung.shutdown()
        hung.server_close()


def test_a_hung_server_in_the_spool_keeps_a_delivered_ping_waiting_a_few_seconds_not_its_whole_budget(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every `heartfly run` spent the end ping's 20 s on a server its job does not name, after its
    # own ping was in: the job exited 20 s late, each run, for as long as that server hung.
    monkeypatch.setattr(spool_module, "OTHERS_BUDGET", 0.5)
    hung = Recorder(hang=True)
    threading.Thread(target=hung.serve_forever, args=(0.02,), daemon=True).start()
    try:
        spool = Spool(tmp_path / "spool")
        spool.put(Ping(f"{hung.url}/ping/{KEY}", at=1000.0))
        sender = Courier(Transport(retries=3), spool, lambda _: None)
        began = time.monotonic()
        assert sender.deliver(Ping(f"{recorder.url}/ping/{KEY}"), deadline=began + 20.0) is Result.SENT
        assert time.monotonic() - began < 5.0  # got: 20 s
        assert len(spool.pending()) == 1  # the hung server's ping waits for its turn
    finally:
        hung.released.set()
        hung.shutdown()
        hung.server_close()


def test_a_replay_to_a_hung_server_does_not_hold_back_a_ping_to_another_that_has_pings_waiting(
    recorder: Recorder, tmp_path: Path
) -> None:
    # One job's replay to a hung server held the spool's one lock for its whole budget. Another
    # job's ping to a healthy server that had pings of its own waiting could not take the lock, was
    # held back behind them and spooled, and waited there for the next run (a day, for a daily job):
    # a late ping, and an alert for a job that ran. Each server's pings now have a lock of their own.
    hung = Recorder(hang=True)
    threading.Thread(target=hung.serve_forever, args=(0.02,), daemon=True).start()
    try:
        spool = Spool(tmp_path / "spool")
        spool.put(Ping(f"{hung.url}/ping/{KEY}", at=1000.0))
        spool.put(Ping(f"{recorder.url}/ping/{KEY}", "start", at=1001.0))
        other = Courier(Transport(retries=0, read_timeout=5.0), Spool(spool.folder), lambda _: None)
        replay = threading.Thread(target=other.flush)  # another job's replay, as a process's would be
        replay.start()
        for _ in range(500):
            if hung.requests:
                break  # the other replay is under way, waiting on the hung server
            time.sleep(0.01)
        assert hung.requests
        sender = Courier(Transport(retries=0), Spool(spool.folder), lambda _: None)
        result = sender.deliver(Ping(f"{recorder.url}/ping/{KEY}", "0"), deadline=time.monotonic() + 1.0, others=False)
        assert result is Result.SENT
        assert [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests] == [
            f"/ping/{KEY}/batch",
            f"/ping/{KEY}/0",
        ]
    finally:
        hung.released.set()
        hung.shutdown()
        hung.server_close()
    replay.join()
    assert [Spool.load(p).url for p in spool.pending()] == [f"{hung.url}/ping/{KEY}"]


def test_a_servers_lock_file_is_named_without_its_credentials_and_fits_any_file_system(
    recorder: Recorder, tmp_path: Path
) -> None:
    # The lock of a server's pings was a file named after the server's origin as it was: the user and
    # password of a URL that carries them went into a file name, for any `ls` or backup log to show;
    # and a long non-ASCII host name made a name over the 255 bytes a file system allows, so the
    # lock could never be taken and that server's pings waited in the spool for good.
    spool = Spool(tmp_path / "spool")
    port = recorder.server_address[1]
    spool.put(Ping(f"http://monitor:s3cret@127.0.0.1:{port}/ping/{KEY}", "start", at=1000.0))
    assert courier(spool, []).flush().sent == 1
    names = os.listdir(spool.folder)
    assert names and not [n for n in names if "s3cret" in n or "monitor" in n], names
    far = f"https://{'ü' * 120}.example"
    with spool.lock(server=far) as held:
        assert held
    assert spool_module.lock_name(far) in os.listdir(spool.folder)
    for name in os.listdir(spool.folder):
        assert name.isascii() and len(name) < 128, name
    near = f"https://{'ö' * 120}.example"  # the same length, other letters: another server, another lock
    assert spool_module.lock_name(far) != spool_module.lock_name(near)


@pytest.fixture
def untrusted_tls(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """An https server with a self-signed certificate: its address, and how many connections it got."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            with contextlib.suppress(OSError), conn, context.wrap_socket(conn, server_side=True):
                pass  # the client refuses the certificate during the handshake

    threading.Thread(target=serve, daemon=True).start()
    yield f"https://localhost:{listener.getsockname()[1]}", connections
    listener.close()


@pytest.mark.parametrize("via_urllib", [False, True], ids=["http1", "urllib"])
def test_an_untrusted_certificate_is_spooled_at_once_not_retried(
    untrusted_tls: tuple[str, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_urllib: bool
) -> None:
    # Retrying cannot make the certificate trusted within the run: each retry only held the job
    # back (waits of 0.5 + 1 + 2 + 4 + 8 s, ~16-23 s a run) before the ping was spooled anyway.
    base, connections = untrusted_tls
    waits: list[float] = []
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    sender = Courier(Transport(retries=5, sleep=waits.append), spool, warnings.append)
    if via_urllib:  # a proxy in the environment is urllib's to use, and no_proxy passes it by here
        monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
        monkeypatch.setenv("no_proxy", "localhost")
    url = f"{base}/ping/{KEY}"
    assert sender.deliver(Ping(url, "start")) is Result.SPOOLED
    time.sleep(0.3)  # the server's thread counts each connection it accepted
    assert (waits, len(connections), len(spool.pending())) == ([], 1, 1)
    assert any("certificate" in w for w in warnings), warnings


def test_a_hung_server_in_the_spool_does_not_hold_back_the_start_of_a_job_reporting_to_another(
    recorder: Recorder, tmp_path: Path
) -> None:
    # Replaying another server's pings before the command starts only delays the job (by all of the
    # start ping's budget, for a server that hangs); they wait for the end ping's leftover time.
    from heartfly.client.jobside import run_job

    hung = Recorder(hang=True)
    threading.Thread(target=hung.serve_forever, args=(0.02,), daemon=True).start()
    try:
        spool = Spool(tmp_path / "spool")
        spool.put(Ping(f"{hung.url}/ping/{KEY}", at=1000.0))
        started = tmp_path / "started"
        began = time.time()
        with pytest.raises(SystemExit) as done:
            run_job(f"{recorder.url}/ping/{KEY}", ["sh", "-c", f"date +%s.%N > {started}"], ping_budget="2s",
                    spool_dir=tmp_path / "spool")  # fmt: skip
        assert done.value.code == 0
        assert float(started.read_text()) - began < 1.0  # got: 2 s, the start ping's whole budget
        paths = [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests]
        assert paths == [f"/ping/{KEY}/start", f"/ping/{KEY}/0"]
        assert len(hung.requests) >= 1  # its turn came after the end ping
    finally:
        hung.released.set()
        hung.shutdown()
        hung.server_close()


def test_a_spent_budget_leaves_the_spooled_pings_and_the_new_one_waiting_in_order(
    recorder: Recorder, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    spool.put(Ping(url, "start", at=1000.0))
    assert courier(spool, []).deliver(Ping(url, "0"), deadline=time.monotonic()) is Result.SPOOLED
    assert recorder.requests == [] and [Spool.load(p).event for p in spool.pending()] == ["start", "0"]


def test_a_spooled_ping_the_server_refuses_is_dropped_with_a_warning(recorder: Recorder, tmp_path: Path) -> None:
    # A server that answers the batch without per-ping results (413, a proxy's 400): one at a time.
    recorder.script = [(400, "bad request"), (400, "ts 1000 is older than the server accepts (max_ping_age, 604800 s)")]
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", at=1000.0))
    report = courier(spool, warnings).flush()
    assert (report.sent, report.dropped, report.kept) == (0, 1, 0)
    assert spool.pending() == [] and "older than the server accepts" in warnings[0]


def test_a_replay_from_a_clock_ahead_of_the_servers_is_sent_again_as_now(recorder: Recorder, tmp_path: Path) -> None:
    future = "ts 1763800999 is in the future (server time is 1763800000)"
    refused = {"error": f"ping 1 of the batch: {future}", "results": [{"status": "refused"}, {"error": future}]}
    recorder.script = [(400, json.dumps(refused))]
    spool = Spool(tmp_path / "spool")
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", "start", at=time.time() - 5))
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", at=time.time()))
    assert courier(spool, []).flush().sent == 2
    again = json.loads(recorder.requests[1][2])["pings"]
    assert "ts" in again[0] and "ts" not in again[1]


def test_a_spooled_ping_the_server_names_as_invalid_is_dropped_and_the_rest_of_its_batch_sent(
    recorder: Recorder, tmp_path: Path
) -> None:
    old = "ts 1000 is older than the server accepts (max_ping_age, 604800 s)"
    recorder.script = [(400, json.dumps({"error": old, "results": [{"error": old}, {"status": "refused"}]}))]
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", at=1000.0))
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", "fail", at=time.time()))
    report = courier(spool, warnings).flush()
    assert (report.sent, report.dropped, report.kept) == (1, 1, 0) and spool.pending() == []
    assert [p["status"] for p in json.loads(recorder.requests[1][2])["pings"]] == ["fail"]
    assert "older than the server accepts" in warnings[0]


def test_a_full_spool_drops_its_oldest_ping_with_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool", max_bytes=1500)
    url = f"{closed_port_url()}/ping/{KEY}"
    for i in range(4):
        courier(spool, warnings).deliver(Ping(url, body=b"x" * 300, at=1000.0 + i))
    kept = [Spool.load(p).at for p in spool.pending()]
    assert kept[-1] == 1003.0 and 1000.0 not in kept
    assert any("over its 1500 byte limit: dropped the ping spooled at" in w for w in warnings)


def test_an_unwritable_spool_loses_the_ping_with_a_clear_warning_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    warnings: list[str] = []
    spool = Spool(tmp_path / "file" / "spool")
    assert courier(spool, warnings).deliver(Ping(f"{closed_port_url()}/ping/{KEY}")) is Result.LOST
    assert "cannot spool it to" in warnings[-1] and "the ping is lost" in warnings[-1]


@contextlib.contextmanager
def a_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs at tmp_path/disk, a real filesystem that can be made read-only (skips without root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("lock_file", [True, False], ids=["lock-file-there", "no-lock-file"])
def test_a_ping_held_back_behind_a_read_only_spool_is_sent_not_lost(
    recorder: Recorder, tmp_path: Path, lock_file: bool
) -> None:
    # A disk remounted read-only (after an I/O error, say) with pings still in the spool: its lock
    # could not be opened for writing, so each new ping to their server was held back behind them,
    # could not be spooled either, and was lost, though the server was up. Then the spooled pings
    # were replayed by every run, as they could not be removed: a spooled fail sent again each time,
    # a new ping to Healthchecks (which ignores ping_id), an alert a run. They now wait for the disk
    # to be writable, and new pings go ahead of them.
    url = f"{recorder.url}/ping/{KEY}"
    warnings: list[str] = []
    with a_disk(tmp_path) as disk:
        spool = Spool(disk / "spool", lock_wait=0.1)
        spool.put(Ping(url, "fail", at=1000.0))
        if lock_file:
            with spool.lock(server=spool_module.origin(url)):
                pass  # a replay left its lock file, as any does
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        # Patient: a read timed out on a loaded machine is a retry, a second request recorded for one
        # ping, or a ping lost with no spool to keep it, neither of which is what this test is about.
        patient = Transport(retries=2, backoff=0.01, connect_timeout=10.0, read_timeout=10.0)
        first = Courier(patient, spool, warnings.append).deliver(Ping(url, "log", b"later"))
        second = Courier(patient, spool, warnings.append).deliver(Ping(url, "log", b"later still"))
        assert (first, second) == (Result.SENT, Result.SENT), warnings
        sent = [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests]
        assert sent == [f"/ping/{KEY}/log", f"/ping/{KEY}/log"]  # the spooled fail not sent, let alone twice
        assert any("which cannot be written" in w for w in warnings), warnings
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        report = Courier(patient, spool, warnings.append).flush()
        assert (report.sent, spool.pending()) == (1, []), warnings
    assert urllib.parse.urlsplit(recorder.requests[-1][1]).path == f"/ping/{KEY}/batch"


def test_a_corrupt_spool_file_is_dropped_and_the_rest_replayed(recorder: Recorder, tmp_path: Path) -> None:
    warnings: list[str] = []
    spool = Spool(tmp_path / "spool")
    spool.put(Ping(f"{recorder.url}/ping/{KEY}", at=1000.0))
    (spool.folder / "00000000000000000001-1-1.ping").write_text("{not json")
    report = courier(spool, warnings).flush()
    assert (report.sent, report.dropped) == (1, 1) and spool.pending() == []
    assert "not a readable spooled ping" in warnings[0]


def test_while_another_process_replays_the_spool_nothing_is_sent_twice(tmp_path: Path, recorder: Recorder) -> None:
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    spool.put(Ping(url, at=1000.0))
    other = Spool(spool.folder, lock_wait=0.05)
    with spool.lock(server=spool_module.origin(url)) as held:  # that server's pings: another's replay
        assert held
        report = courier(other, []).flush()  # flock is per open file: the second opener waits, then leaves it
        assert (report.sent, report.kept) == (0, 1) and recorder.requests == []
        assert courier(other, []).deliver(Ping(url, "log")) is Result.SPOOLED  # keeps the order
    assert courier(spool, []).flush().sent == 2


def test_a_replay_by_a_heartfly_from_before_per_server_locks_and_a_new_one_exclude_each_other(
    tmp_path: Path, recorder: Recorder
) -> None:
    # After an upgrade, the `heartfly run` of a job started before it replays under the one lock it
    # knows, spool/.lock, taken alone. A new heartfly took only its server's lock: both replayed the
    # same spooled pings, each sent twice, and out of order.
    spool = Spool(tmp_path / "spool")
    url = f"{recorder.url}/ping/{KEY}"
    spool.put(Ping(url, at=1000.0))
    older = os.open(spool.folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)  # as the older heartfly takes it
    try:
        fcntl.flock(older, fcntl.LOCK_EX)
        report = courier(Spool(spool.folder, lock_wait=0.05), []).flush()
        assert (report.sent, report.kept) == (0, 1) and recorder.requests == []
    finally:
        os.close(older)
    with spool.lock(server=spool_module.origin(url)) as held:  # a new heartfly's replay
        assert held
        with Spool(spool.folder, lock_wait=0.05).lock() as older_held:  # the older one's try
            assert not older_held
        with Spool(spool.folder, lock_wait=0.05).lock(server=closed_port_url()) as other_held:
            assert other_held  # another server's replay by a new heartfly is not held up
    assert courier(spool, []).flush().sent == 1


def test_another_process_replaying_the_spool_to_a_hung_server_does_not_hold_up_a_ping_to_another(
    tmp_path: Path, recorder: Recorder
) -> None:
    # The start ping of a job reporting to a healthy server waited all of its budget for the spool's
    # lock, held by another job replaying to a server that hangs, then went to the spool unsent.
    spool = Spool(tmp_path / "spool")
    there = closed_port_url()
    spool.put(Ping(f"{there}/ping/{KEY}", at=1000.0))
    ping = Ping(f"{recorder.url}/ping/{KEY}", "start")
    with spool.lock(server=spool_module.origin(there)) as held:
        assert held
        result = courier(Spool(spool.folder), []).deliver(ping, deadline=time.monotonic() + 1.0, others=False)
    assert result is Result.SENT
    assert [urllib.parse.urlsplit(p).path for _, p, _ in recorder.requests] == [f"/ping/{KEY}/start"]
    assert len(spool.pending()) == 1  # the other server's ping is left to the replay that holds the lock


def test_a_spooled_ping_is_on_disk_before_it_is_named_so_a_power_cut_cannot_empty_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Renamed before its data reached the disk, a ping spooled just before a power cut came back as
    # an empty file after the reboot, and the next replay dropped it as unreadable: a lost ping.
    # A power cut cannot be made here: the order of fsync and rename is what makes it safe.
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("rename", os.fspath(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    (tmp_path / "spool").mkdir(mode=0o700)  # a folder made for the ping: the test below
    spool = Spool(tmp_path / "spool")
    spool.put(Ping(f"https://hb.example.com/ping/{KEY}", at=1000.0))
    final = str(spool.pending()[0])
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"], events
    assert events[0][1].endswith(".tmp") and events[1][1] == final and events[2][1] == str(spool.folder)


def test_the_first_ping_spooled_survives_a_power_cut_with_the_folders_made_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first ping ever spooled makes ~/.local/state/heartfly/spool: its file and the spool's
    # folder were synced, the new folders' own names in their parents were not, so a power cut
    # could take the folder, and the ping in it, away.
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    spool = Spool(tmp_path / "state" / "heartfly" / "spool")
    spool.put(Ping(f"https://hb.example.com/ping/{KEY}", at=1000.0))
    folders = [str(tmp_path), str(tmp_path / "state"), str(tmp_path / "state" / "heartfly"), str(spool.folder)]
    assert [p for p in synced if not p.endswith(".tmp")] == folders, synced
    synced.clear()
    spool.put(Ping(f"https://hb.example.com/ping/{KEY}", at=1001.0))  # the folders are there now
    assert [p for p in synced if not p.endswith(".tmp")] == [str(spool.folder)], synced


def test_a_ping_whose_file_cannot_be_synced_is_still_spooled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fsync failing (EIO from a flaky disk, EINVAL where a filesystem has no sync) turned a ping
    # spooled, if not proof against a power cut, into one lost outright: worse than before fsync.
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    spool = Spool(tmp_path / "spool")
    monkeypatch.setattr(os, "fsync", failing)
    warnings: list[str] = []
    assert courier(spool, warnings).deliver(Ping(f"{closed_port_url()}/ping/{KEY}", at=1000.0)) is Result.SPOOLED
    assert len(spool.pending()) == 1 and not [w for w in warnings if "lost" in w], warnings


def test_spool_records_are_json_a_person_can_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(Ping("https://hb.example.com/ping/abc", "fail", b"\xff\x00", "r", {"n": 1.0}, at=5.0))
    record = json.loads(spool.pending()[0].read_text())
    assert record["url"] == "https://hb.example.com/ping/abc" and record["event"] == "fail" and record["at"] == 5.0


# --- the output tail ---------------------------------------------------------------------------


def test_the_tail_keeps_the_last_bytes_and_says_how_many_came_before() -> None:
    tail = Tail(10)
    for _ in range(10_000):
        tail.add(b"0123456789abcdef")
    assert tail.value() == b"[heartfly: 159990 earlier bytes of output not shown]\n" + b"6789abcdef"
    short = Tail(100)
    short.add(b"hello\n")
    assert short.value() == b"hello\n"


def test_the_tail_does_not_start_inside_a_utf8_character() -> None:
    tail = Tail(5)
    tail.add("aaaa€€".encode())  # € is three bytes: the last 5 bytes start inside the first one
    assert tail.value().split(b"\n", 1)[1] == "€".encode()


def test_the_tail_fits_in_what_the_server_keeps_its_first_line_included() -> None:
    tail = Tail(10_000)
    tail.add("".join(f"{i}\n" for i in range(5000)).encode())
    fitted = tail.value(200)
    assert len(fitted) == 200 and fitted.endswith(b"\n4998\n4999\n")
    assert fitted.startswith(b"[heartfly: ") and len(tail.value()) > 10_000


@pytest.mark.parametrize("value", ["9" * 5000, "1" + "0" * 30])
def test_a_huge_ping_body_limit_is_no_limit_not_a_crash_of_a_delivered_ping(recorder: Recorder, value: str) -> None:
    # int() of more than 4,300 digits raises ValueError: the ping was delivered, and was then
    # reported lost (`heartfly run`) or a traceback (`heartfly ping`).
    recorder.headers = {"Ping-Body-Limit": value}
    sender = Courier(quick(), None, lambda _: None)
    assert sender.deliver(Ping(f"{recorder.url}/ping/{KEY}", "start")) is Result.SENT
    assert sender.body_limit is None
    recorder.headers = {"Ping-Body-Limit": "10000"}
    assert sender.deliver(Ping(f"{recorder.url}/ping/{KEY}", "start")) is Result.SENT
    assert sender.body_limit == 10000


def test_a_report_with_heartflys_note_fits_in_what_the_server_keeps() -> None:
    runner = Runner(["sh", "-c", "seq 1 5000; kill -TERM $$"])
    runner.body_limit = 300
    with runner:
        body = runner.run().body()
    assert len(body) <= 300 and body.endswith(b"\n5000\n[heartfly] the command was killed by SIGTERM\n")


def test_a_stop_signal_after_the_command_was_reaped_goes_to_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once reaped, the command's pid (its group's id) is free for another process: a TERM while the
    # end ping is sent (`timeout 60 heartfly run …`) must not killpg whatever group now has it.
    runner = Runner(["true"])
    runner.own_group = True  # as under cron
    sent: list[tuple[int, int]] = []
    with runner:
        assert runner.run().exit_code == 0
        monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append((pgid, sig)))
        monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            runner._on_signal(sig, None)
    assert sent == []


def test_heartflys_note_follows_the_output_on_a_line_of_its_own() -> None:
    outcome = RunOutcome(137, 1.0, b"partial", "timed out after 1s: sent SIGTERM")
    assert outcome.body() == b"partial\n[heartfly] timed out after 1s: sent SIGTERM\n"
    assert RunOutcome(0, 1.0, b"ok\n").body() == b"ok\n"


def test_a_run_id_is_a_random_version_4_uuid() -> None:
    import uuid

    from heartfly.client.jobside import random_uuid

    ids = {random_uuid() for _ in range(100)}
    assert len(ids) == 100 and all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
