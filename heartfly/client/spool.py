"""Pings that could not be delivered wait on disk, with their true time, and are replayed in order.

One file per ping, named by its time so a directory listing is the replay order; written to a
temporary name and renamed, so a reader never sees half a ping. Replays take a lock file per
server, so two jobs finishing together do not send the same spooled ping twice, and a replay to a
server that hangs holds up no other's. Each check's spooled pings are
replayed as one batch (`POST <ping url>/batch`), which the server applies all or nothing, judging
deadlines only after the whole history is in; each ping keeps its own id, so a batch whose answer
was lost and that is sent again counts once. Standard library only.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import json
import os
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping

from heartfly.client.transport import OTHERS_BUDGET, Answer, Outcome, Ping, Transport, within
from heartfly.core.syncdir import sync_folder

# Every cron tick looks at the spool: pathlib (~10 ms) only once there is something in it.
TYPE_CHECKING = False  # mypy reads this name as True
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
BATCH_PINGS = 500  # pings per batch request (the server takes up to 1,000 in 1 MiB)
BATCH_BYTES = 768 * 1024
JSON = "application/json"

Item = tuple["Path", Ping, bool]  # a spooled ping, its file, and whether to send its time
LOCK_WAIT = 10.0  # another process replaying longer than this: leave the spool to it
SUFFIX = ".ping"
# What reading a spooled ping that is not one (bad JSON, a wrong shape, a number out of range) raises.
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, ArithmeticError, RecursionError)

Warn = Callable[[str], None]


def default_folder(env: Mapping[str, str]) -> str:
    """$HEARTFLY_SPOOL, else $XDG_STATE_HOME/heartfly/spool, else ~/.local/state/heartfly/spool."""
    if env.get("HEARTFLY_SPOOL"):
        return env["HEARTFLY_SPOOL"]
    state = env.get("XDG_STATE_HOME", "")
    home = env.get("HOME") or os.path.expanduser("~")
    base = state if os.path.isabs(state) else os.path.join(home, ".local", "state")
    return os.path.join(base, "heartfly", "spool")


def origin(url: str) -> str:
    """scheme://host:port: pings to one server keep their order; other servers do not wait on it."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def lock_name(server: str) -> str:
    """The name of the lock file of a server's pings (an origin): its scheme, host and port, never
    the user and password a URL may carry (a file name is no place for them), in ASCII letters,
    digits, '.', '-' and '_' (any other character made '_'), short enough for any file system, and
    then a checksum of all that, so that two servers never share one."""
    import binascii  # loaded already by the pings read before any lock is taken (base64)

    scheme, _, rest = server.partition("://")
    where = f"{scheme}://{rest.rpartition('@')[2]}"  # user:password@ left out
    shown = "".join(c if c.isascii() and (c.isalnum() or c in ".-") else "_" for c in where)
    return f".lock-{shown[:80]}-{binascii.crc32(where.encode('utf-8', 'surrogatepass')):08x}"


class Spool:
    def __init__(
        self, folder: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES, lock_wait: float = LOCK_WAIT
    ) -> None:
        self.where = os.fspath(folder)
        self.max_bytes = max_bytes
        self.lock_wait = lock_wait
        self._seq = 0

    @property
    def folder(self) -> Path:
        from pathlib import Path

        return Path(self.where)

    def pending(self) -> list[Path]:
        """Spooled pings, oldest first; none when the folder is missing or unreadable."""
        try:
            names = [e.name for e in os.scandir(self.where) if e.name.endswith(SUFFIX) and e.name[0] != "."]
        except OSError:
            return []
        if not names:
            return []
        return [self.folder / n for n in sorted(names)]

    def put(self, ping: Ping) -> list[str]:
        """Writes the ping; raises OSError. Returns what had to be dropped to stay under max_bytes."""
        import base64

        _make_folder(self.folder)
        self._seq += 1
        name = f"{round(ping.at * 1e6):020d}-{os.getpid()}-{self._seq}{SUFFIX}"
        record = {
            "v": 1,
            "url": ping.url,
            "event": ping.event,
            "run_id": ping.run_id,
            "metrics": dict(ping.metrics),
            "at": ping.at,
            "body": base64.b64encode(ping.body).decode("ascii"),
            "uid": ping.uid,
        }
        temporary = self.folder / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # pings carry secret keys
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
                handle.flush()
                # On disk before it has a name: a power cut must not empty it. A sync that fails
                # (EIO, or EINVAL where a filesystem has none) keeps the ping, as the folder's does.
                with contextlib.suppress(OSError):
                    os.fsync(handle.fileno())
            os.rename(temporary, self.folder / name)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        sync_folder(self.where)
        return self._trim(keep=name)

    def _trim(self, keep: str) -> list[str]:
        sized: list[tuple[Path, int]] = []
        for path in self.pending():
            with contextlib.suppress(OSError):
                sized.append((path, path.stat().st_size))
        total = sum(size for _, size in sized)
        dropped: list[str] = []
        for path, size in sized:
            if total <= self.max_bytes or path.name == keep:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                dropped.append(f"the ping spooled at {_when(path)}")
            total -= size
        return dropped

    @staticmethod
    def load(path: Path) -> Ping:
        """A spooled ping; ValueError or OSError when the file is not one."""
        import base64

        record = json.loads(_own_text(path))
        if not isinstance(record, dict) or record.get("v") != 1:
            raise ValueError("not a heartfly spool record")
        if not (
            isinstance(record["url"], str)
            and isinstance(record["event"], str)
            and isinstance(record["metrics"], dict)
            and isinstance(record["run_id"], str | None)
        ):
            raise ValueError("a heartfly spool record with a field of the wrong type")
        origin(record["url"])  # ValueError for one that cannot be parsed, as for a damaged file
        return Ping(
            url=str(record["url"]),
            event=str(record["event"]),
            body=base64.b64decode(record["body"]),
            run_id=record["run_id"],
            metrics={str(k): float(v) for k, v in record["metrics"].items()},
            at=float(record["at"]),
            uid=str(record["uid"]) if record.get("uid") else None,
        )

    @contextlib.contextmanager
    def lock(self, wait: float | None = None, server: str | None = None) -> Iterator[bool]:
        """Holds the lock of the spool's pings to `server` (an origin; all of them when None) while
        the block runs; yields False when it could not get it within `wait` seconds (default lock_wait).
        A server's lock is taken with `.lock`, the whole spool's, shared: the one lock a heartfly from
        before per-server locks takes, alone; one may still run after an upgrade (the `heartfly run`
        of a job started before it), and the two must not replay the same pings, each sent twice."""
        deadline = time.monotonic() + (self.lock_wait if wait is None else wait)
        if server is None:
            wanted = [(".lock", fcntl.LOCK_EX)]
        else:
            wanted = [(".lock", fcntl.LOCK_SH), (lock_name(server), fcntl.LOCK_EX)]
        fds: list[int] = []
        try:
            for name, how in wanted:
                fd = _open_lock(os.path.join(self.where, name))
                if fd is None and how == fcntl.LOCK_SH:
                    continue  # one that cannot be opened (a read-only disk without it): no older heartfly holds it
                if fd is None:
                    yield False
                    return
                fds.append(fd)
                if not _flock(fd, how, deadline):
                    yield False
                    return
            yield True
        finally:
            for fd in fds:
                os.close(fd)  # closing releases the lock


# Never through a link: in a spool that others may write (HEARTFLY_SPOOL=/tmp/heartfly, made by
# whoever came first), a link named as a lock file had the fchmod below make the file it points
# to readable by all (root's replay: /etc/shadow). Such a lock cannot be taken: its replay waits.
_NO_LINK = os.O_NOFOLLOW | os.O_CLOEXEC


def _open_lock(where: str) -> int | None:
    """A lock file, made if it is not there; None when it cannot be opened at all."""
    try:
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | _NO_LINK, 0o644)
    except OSError:
        try:  # read-only (a disk, another user's file): flock needs no write access
            return os.open(where, os.O_RDONLY | _NO_LINK)
        except OSError:
            return None
    # Readable by all, whatever the umask: a lock file root leaves in a user's spool (a `sudo
    # heartfly run` that kept HOME) must not keep the user from replaying it for good. Only a file
    # of its own with one name: another name of a file (a hard link to it) is not the spool's.
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1:
            os.fchmod(fd, 0o644)
    return fd


def _flock(fd: int, how: int, deadline: float) -> bool:
    """Takes the flock `how` on `fd`; False when another holds one in its way until `deadline`."""
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _make_folder(folder: Path) -> None:
    """Makes `folder` (0700) and the folders above it that are missing, each new name synced in its
    parent: else a power cut could take away the folder the first ping spooled was put in."""
    missing = []
    at = folder
    while not os.path.lexists(at) and at.parent != at:
        missing.append(at)
        at = at.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for made in reversed(missing):
        sync_folder(os.fspath(made.parent))


def _when(path: Path) -> str:
    try:
        micros = int(path.name.split("-", 1)[0])
    except ValueError:
        return path.name
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(micros / 1e6))


class Result(enum.Enum):
    SENT = "sent"
    SPOOLED = "spooled"  # kept on disk for a later replay
    REJECTED = "rejected"  # the server said no; not kept
    LOST = "lost"  # undeliverable and could not be spooled


class FlushReport:
    def __init__(self) -> None:
        self.sent = self.dropped = self.kept = 0
        self.blocked: set[str] = set()  # origins still unreachable: keep their order

    def __repr__(self) -> str:
        return f"FlushReport(sent={self.sent}, dropped={self.dropped}, kept={self.kept}, blocked={self.blocked})"


class Courier:
    """Delivers pings in order: earlier spooled pings first, then the new one, spooling on failure."""

    def __init__(self, transport: Transport, spool: Spool | None, warn: Warn) -> None:
        self.transport = transport
        self.spool = spool
        self.warn = warn
        self.body_limit: int | None = None  # what the server of the last ping sent keeps of a body, if it said

    def deliver(self, ping: Ping, deadline: float | None = None, *, others: bool = True) -> Result:
        """Sends earlier spooled pings to this ping's server, then this one, then (`others`) those to
        other servers (for OTHERS_BUDGET at most); all of it ends by `deadline` (monotonic), after which
        what is left waits in the spool. Order is kept per server only, so one that hangs does not
        spend this ping's time."""
        here = origin(ping.url)
        report = self.flush(deadline, lambda there: there == here)
        if here in report.blocked:
            why = f"{ping.describe()}: held back, earlier pings to that server wait in the spool"
            result = self._keep(ping, why, lose=False)
            if result is Result.LOST:  # a spool it cannot join (read-only, full): sent out of turn, not lost
                result = self._send(ping, deadline)
        else:
            result = self._send(ping, deadline)
        if others:
            clock = self.transport.clock
            self.flush(clock() + within(deadline, clock(), OTHERS_BUDGET), lambda there: there != here)
        return result

    def _send(self, ping: Ping, deadline: float | None) -> Result:
        answer = self.transport.send(ping, deadline=deadline)
        if answer.outcome is Outcome.DELIVERED:
            self.body_limit = answer.body_limit
            return Result.SENT
        if answer.outcome is Outcome.REJECTED:
            self.warn("error: " + answer.explain(ping) + "; not retried")
            return Result.REJECTED
        return self._keep(ping, answer.explain(ping))

    def _keep(self, ping: Ping, why: str, *, lose: bool = True) -> Result:
        """Spools the ping; LOST when it cannot (said as lost unless not `lose`: the caller sends it)."""
        if self.spool is None:
            self.warn(f"error: {why}; no spool, the ping is lost")
            return Result.LOST
        if ping.event == "start":  # the work it starts begins now (heartfly run waited for it): a run
            ping = ping._replace(at=time.time())  # dated from before the wait was as much longer
        try:
            dropped = self.spool.put(ping)
        except OSError as exc:
            fate = "the ping is lost" if lose else "sending it now, ahead of them"
            self.warn(f"error: {why}; cannot spool it to {self.spool.folder}: {exc.strerror or exc}; {fate}")
            return Result.LOST
        for what in dropped:
            self.warn(f"warning: the spool is over its {self.spool.max_bytes} byte limit: dropped {what}, its oldest")
        self.warn(f"warning: {why}; spooled to {self.spool.folder}, to be sent by the next heartfly ping/run/flush")
        return Result.SPOOLED

    def flush(self, deadline: float | None = None, servers: Callable[[str], bool] | None = None) -> FlushReport:
        """Replays the spool oldest first, with each ping's true time, until `deadline`: each
        check's pings as batches, in order; a server that answers batches with 404 or 405 (one
        older than batches) one ping at a time. Only pings to the `servers` (origins) it accepts,
        when given. Each server's pings are replayed under a lock of their own: a replay to one that
        hangs holds up no other's (a ping to a healthy server would wait behind it, spooled)."""
        report = FlushReport()
        if self.spool is None or not self.spool.pending():
            return report
        for there in self._origins(report):
            if servers is None or servers(there):
                self._flush_to(there, deadline, report)
        return report

    def _origins(self, report: FlushReport) -> list[str]:
        """The servers the spool holds pings for, the oldest ping's first. Damaged files are dropped
        here, under no lock: a ping is renamed into place whole, so a file that is not one stays so."""
        seen: dict[str, None] = {}
        for path in self.spool.pending() if self.spool is not None else []:
            ping = self._load(path, report)
            if ping is not None:
                seen.setdefault(origin(ping.url))
        return list(seen)

    def _flush_to(self, there: str, deadline: float | None, report: FlushReport) -> None:
        assert self.spool is not None
        if not os.access(self.spool.where, os.W_OK):
            # A spool it cannot write (a disk gone read-only): what it replayed could not be removed,
            # and every run would send it again (to Healthchecks, which ignores ping_id, a new ping
            # each time: a spooled fail an alert a run). Its pings wait until it can; new ones go ahead.
            waiting = len(self._pending_to(there))
            report.kept += waiting
            self.warn(
                f"warning: {waiting} spooled ping(s) wait in {self.spool.folder}, which cannot be written: left"
                " there until it can be (replayed now, they could not be removed, and each run would send them again)"
            )
            return
        wait = within(deadline, self.transport.clock(), self.spool.lock_wait)
        with self.spool.lock(wait, server=there) as locked:
            items = self._pending_to(there)
            if not locked:  # another process replays them: this one's pings to there keep their order
                report.kept += len(items)
                if items:
                    report.blocked.add(there)
                return
            by_url: dict[str, list[Item]] = {}
            for path, ping in items:  # oldest first within each check: the listing is in time order
                by_url.setdefault(ping.url, []).append((path, ping, True))
            for group in by_url.values():
                for chunk in _chunks(group):
                    self._replay_batch(chunk, report, deadline)

    def _pending_to(self, there: str) -> list[tuple[Path, Ping]]:
        """The spooled pings to the server `there` (an origin), oldest first."""
        assert self.spool is not None
        return [(p, ping) for p in self.spool.pending() if (ping := _read(p)) and origin(ping.url) == there]

    def _load(self, path: Path, report: FlushReport) -> Ping | None:
        try:
            return Spool.load(path)
        except FileNotFoundError:
            return None  # another process got to it first
        except OSError as exc:  # not damaged, only not readable now (another user's, a disk error)
            self.warn(f"warning: cannot read {path}: {exc.strerror or exc}; left in the spool")
            report.kept += 1
            return None
        except _UNREADABLE as exc:
            if path.exists():  # else another process got to it first
                self.warn(f"warning: dropped {path}: not a readable spooled ping ({exc})")
                _unlink(path)
                report.dropped += 1
            return None

    def _replay_batch(self, chunk: list[Item], report: FlushReport, deadline: float | None) -> None:
        first = chunk[0][1]
        if origin(first.url) in report.blocked:
            report.kept += len(chunk)
            return
        url = first.url.split("?", 1)[0].rstrip("/") + "/batch"
        body = json.dumps({"pings": [ping.batch_item(with_ts=ts) for _, ping, ts in chunk]}).encode()
        answer = self.transport.post(url, body, deadline=deadline, content_type=JSON)
        if answer.outcome is Outcome.DELIVERED:
            for path, _, _ in chunk:
                _unlink(path)
            report.sent += len(chunk)
        elif answer.outcome is Outcome.UNREACHABLE:
            report.blocked.add(origin(first.url))
            report.kept += len(chunk)
        elif answer.status == 400 and (mended := self._mend(chunk, answer, report)) is not None:
            if mended:
                self._replay_batch(mended, report, deadline)
        elif answer.status in (400, 404, 405, 413):
            # An older server (no batches), no such check, or a batch it would not read: one at a
            # time, each ping gets its own answer.
            for path, ping, _ in chunk:
                self._replay(path, ping, report, deadline)
        else:
            self.warn(f"warning: dropped {len(chunk)} spooled ping(s): {answer.explain(first)}")
            for path, _, _ in chunk:
                _unlink(path)
            report.dropped += len(chunk)

    def _mend(self, chunk: list[Item], answer: Answer, report: FlushReport) -> list[Item] | None:
        """A refused batch, less the pings the server named as invalid (dropped, with a warning);
        a ping whose time lies ahead of the server's clock goes again without it (as "now": this
        machine's clock runs ahead, the event is recent). None when the answer names none."""
        try:
            results = json.loads(answer.body)["results"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(results, list) or len(results) != len(chunk):
            return None
        kept: list[Item] = []
        mended = False
        for (path, ping, ts), result in zip(chunk, results, strict=True):
            error = str(result.get("error", "")) if isinstance(result, dict) else ""
            if not error:
                kept.append((path, ping, ts))
            elif "in the future" in error and ts:
                kept.append((path, ping, False))
                mended = True
            else:
                self.warn(f"warning: dropped a spooled {ping.describe()}: the server answered 400: {error}")
                _unlink(path)
                report.dropped += 1
                mended = True
        return kept if mended else None

    def _replay(self, path: Path, ping: Ping, report: FlushReport, deadline: float | None) -> None:
        if origin(ping.url) in report.blocked:
            report.kept += 1
            return
        answer = self.transport.send(ping, with_ts=True, deadline=deadline)
        if answer.outcome is Outcome.REJECTED and answer.status == 400 and "in the future" in answer.detail:
            # This machine's clock runs ahead of the server's: the event is recent, send it as now.
            answer = self.transport.send(ping, deadline=deadline)
        if answer.outcome is Outcome.DELIVERED:
            _unlink(path)
            report.sent += 1
        elif answer.outcome is Outcome.REJECTED:
            self.warn(f"warning: dropped a spooled {answer.explain(ping)}")
            _unlink(path)
            report.dropped += 1
        else:
            report.blocked.add(origin(ping.url))
            report.kept += 1


def _chunks(group: list[Item]) -> list[list[Item]]:
    """A check's pings in batches of at most BATCH_PINGS and BATCH_BYTES of JSON (a ping larger than
    that alone)."""
    chunks: list[list[Item]] = []
    size = 0
    for item in group:
        # Measured, not guessed from the body: JSON writes a non-ASCII character as 6 bytes.
        cost = len(json.dumps(item[1].batch_item(with_ts=item[2]))) + 2  # and ", " before the next
        if not chunks or len(chunks[-1]) >= BATCH_PINGS or size + cost > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += cost
    return chunks


def _own_text(path: Path) -> str:
    """A spooled ping's file, read only if it is this user's own (never through a link): in a spool
    others may write, one they put there (in the spool's format) was sent by whoever replayed it
    next, root too, to any URL with any body. Another user's is left for its owner (PermissionError)."""
    fd = os.open(path, os.O_RDONLY | _NO_LINK)
    with os.fdopen(fd, encoding="utf-8") as handle:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid() and owner != _made_as(path.parent):
            raise PermissionError(errno.EACCES, f"not this user's (uid {owner})")
        return handle.read()


_MADE_AS: dict[Path, int | None] = {}


def _made_as(folder: Path) -> int | None:
    """Whose a file this process makes in `folder` is, in a folder no one else may write, else None.
    Not always its own: root's are nobody's on NFS with root_squash, and every file of a vfat or
    SMB mount is the uid= it was mounted with; this process's own pings there are such files, and
    no one else may have put them in a folder only its owner writes. Asked once, and only of a
    file that is not this user's: it makes and removes a file."""
    if folder not in _MADE_AS:
        _MADE_AS[folder] = None
        with contextlib.suppress(OSError):
            if not os.stat(folder).st_mode & 0o022:  # neither its group nor others may write it
                probe = folder / f".owner-{os.getpid()}-{os.urandom(4).hex()}.tmp"
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_LINK, 0o600)
                try:
                    _MADE_AS[folder] = os.fstat(fd).st_uid
                finally:
                    os.close(fd)
                    _unlink(probe)
    return _MADE_AS[folder]


def _read(path: Path) -> Ping | None:
    """A spooled ping, or None for a file that is not one (Courier._origins says why, once)."""
    try:
        return Spool.load(path)
    except _UNREADABLE:
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
