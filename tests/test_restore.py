"""Day two, end to end: a real `heartfly serve` whose database is restored from a `heartfly backup`
as docs/install.md says (stop, copy back, start), with a real webhook receiver."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import cast

from tests.conftest import new_key
from tests.proc import Server, heartfly
from tests.test_late_replay import api_get, hooked
from tests.test_recipes import Receiver


def _ping(server: Server, key: str, kind: str = "") -> None:
    with urllib.request.urlopen(f"{server.url}/ping/{key}{kind}", data=b"", timeout=10) as resp:
        assert resp.status == 200


def _test_alert(server: Server, tmp_path: Path) -> None:
    token = (tmp_path / "token").read_text().strip()
    request = urllib.request.Request(
        f"{server.url}/api/v1/channels/hook/test", data=b"", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=20) as resp:
        assert json.loads(resp.read())["key"].startswith("test-")


def _recorded_sent(server: Server, tmp_path: Path, check: str) -> None:
    """Waits until every alert of `check` is stored `sent`: a backup taken while one is still
    pending (its receiver has it, its answer not yet recorded) holds it pending, and the restored
    server sends it again, under its own key, as docs/alerts.md says it does."""
    deadline = time.monotonic() + 10
    while {a["status"] for a in api_get(server, tmp_path, f"/api/v1/checks/{check}/alerts")} != {"sent"}:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def _restore(backup: Path, database: Path) -> None:
    """docs/install.md's restore, the server stopped: the copy over the file, no WAL left."""
    database.write_bytes(backup.read_bytes())
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)


def test_alerts_after_a_restore_from_a_backup_never_repeat_a_key_sent_since_the_backup(tmp_path: Path) -> None:
    # A start numbers flips and alerts on from the highest id stored, and a down's key (the webhook's
    # Idempotency-Key, the body's id) was flip-<its id>, a test alert's test-<its outbox id>: after a
    # restore from last night's backup, the day's ids were handed out again, and a receiver that drops
    # repeats (what docs/alerts.md says the key is for) dropped the new down, recovery and test alert.
    hook, key = Receiver(), new_key()
    try:
        config = hooked(tmp_path, '"hb.db"', hook, job=f'key = "{key}"\nevery = "1h"\n')

        def story(server: Server, told: int) -> None:
            """A recovery, a down and a test alert."""
            _ping(server, key)
            hook.wait(told + 1, on_fail=server.log)
            _ping(server, key, "/fail")
            hook.wait(told + 2, on_fail=server.log)
            _test_alert(server, tmp_path)
            hook.wait(told + 3, on_fail=server.log)

        with Server(config) as server:
            _ping(server, key, "/fail")
            hook.wait(1, on_fail=server.log)
            _recorded_sent(server, tmp_path, "job")
            done = heartfly("backup", "-c", str(config), str(tmp_path / "nightly.db"))
            assert done.returncode == 0, done.stderr
            story(server, 1)
            assert server.stop() == 0
        _restore(tmp_path / "nightly.db", tmp_path / "hb.db")
        with Server(config) as server:
            story(server, 4)
            assert server.stop() == 0
        ids = [alert["id"] for alert in hook.alerts]
        assert [alert["event"] for alert in hook.alerts] == ["down", *["recovery", "down", "test"] * 2]
        assert len(set(ids)) == len(ids), ids
    finally:
        hook.close()


class _HeldReceiver(Receiver):
    """A receiver that holds its answers until `release()`: an alert it has stays in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        handler = cast(type[BaseHTTPRequestHandler], self.server.RequestHandlerClass)
        self.server.RequestHandlerClass = self._holding(handler, self.released)

    @staticmethod
    def _holding(handler: type[BaseHTTPRequestHandler], released: threading.Event) -> type[BaseHTTPRequestHandler]:
        class Holding(handler):  # type: ignore[valid-type,misc]
            def send_response(self, code: int, message: str | None = None) -> None:
                released.wait(30)
                super().send_response(code, message)

        return Holding

    def release(self) -> None:
        self.released.set()


def test_an_alert_a_backup_holds_as_pending_is_sent_again_after_a_restore_with_its_own_id(tmp_path: Path) -> None:
    # docs/alerts.md: an alert the backup holds as pending is sent again after a restore, with its
    # own id, so that a receiver that has it already drops the repeat.
    hook, key = _HeldReceiver(), new_key()
    try:
        config = hooked(tmp_path, '"hb.db"', hook, job=f'key = "{key}"\nevery = "1h"\n')
        with Server(config) as server:
            _ping(server, key, "/fail")
            hook.wait(1, on_fail=server.log)  # in flight: its answer held, the row pending
            done = heartfly("backup", "-c", str(config), str(tmp_path / "nightly.db"))
            assert done.returncode == 0, done.stderr
            hook.release()
            _recorded_sent(server, tmp_path, "job")
            assert server.stop() == 0
        before = len(hook.alerts)
        _restore(tmp_path / "nightly.db", tmp_path / "hb.db")
        with Server(config) as server:
            hook.wait(before + 1, on_fail=server.log)
            assert server.stop() == 0
        assert {(alert["event"], alert["id"]) for alert in hook.alerts} == {("down", hook.alerts[0]["id"])}
    finally:
        hook.close()
