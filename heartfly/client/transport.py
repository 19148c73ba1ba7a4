"""The job side of a ping: where it goes, what it says, and one HTTP delivery with retries.

Standard library only (plus heartfly.core.units): `heartfly ping` and `heartfly run` start on every cron
tick, so this path must not pay for aiohttp, croniter or the config parser. Spooling and replay live
in heartfly.client.spool, wrapping a command in heartfly.client.runner.
"""

from __future__ import annotations

import enum
import math
import os
import re
import sys
import time
import urllib.parse
from collections import namedtuple
from collections.abc import Callable, Mapping

from heartfly import __version__
from heartfly.client import http1
from heartfly.core.patterns import METRIC_RE, NAME_RE, RUN_ID_RE

# Every cron tick imports this module: pathlib, random and typing (~15 ms) only where needed.
TYPE_CHECKING = False  # mypy reads this name as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import NamedTuple

    from heartfly.core.config import Config

CONNECT_TIMEOUT = 5.0  # a server that does not accept within this is down
# The name lookup and the connect together: a resolver whose first DNS server is down answers from
# the next after glibc's 5 s timeout, and must not be given up on; one down everywhere never answers.
LOOKUP_TIMEOUT = 10.0
READ_TIMEOUT = 10.0  # the server answers after its commit: allow a slow disk, not a hung one
RETRIES = 5  # waits of about 0.5, 1, 2, 4 and 8 s: a server restart of some 15 s is waited out, not spooled
BACKOFF = 0.5  # first wait; doubles per retry, with jitter, capped at BACKOFF_CAP
BACKOFF_CAP = 8.0
# A ping sent this long after it was made (a retry; one that waited behind a replay) carries its
# time: the server dates a ping without one by its arrival (and takes one older than 1 s for late).
DATED_AFTER = 1.0
START_BUDGET = 3.0  # `heartfly run` holds the job back at most this long for its start ping
END_BUDGET = 20.0  # and spends at most this on the end ping, retries and spool replay included
# Of that, at most this on other servers' spooled pings once a ping's own are sent: one that hangs
# would otherwise keep every job waiting all of the budget, on every run, for a server it never names.
OTHERS_BUDGET = 3.0
MAX_BODY = 1 << 20  # the server keeps 100 KB by default; never ship more than this
MAX_ANSWER = 1 << 20  # a batch's answer says something of each of its pings
TEXT = "text/plain; charset=utf-8"
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
EVENTS = ("", "start", "fail", "log", "progress")
DEFAULT_CONFIGS = ("heartfly.toml", "/etc/heartfly/heartfly.toml")


def config_path(given: Path | None) -> Path:
    """The config to use: the one given, else ./heartfly.toml if it exists, else /etc/heartfly/heartfly.toml."""
    from pathlib import Path

    if given is not None:
        return given
    # One that is there first; else one a folder this user may not enter may hide (the loader's
    # read then says permission is missing): not ./heartfly.toml of a working folder this user may
    # not search (sudo -u from /root) over a readable /etc/heartfly/heartfly.toml.
    seen = {p: _seen(p) for p in DEFAULT_CONFIGS}
    if seen[DEFAULT_CONFIGS[0]] is True and (why := _not_ours(DEFAULT_CONFIGS[0])) is not None:
        seen[DEFAULT_CONFIGS[0]] = False
        _say_once(f"warning: ./{DEFAULT_CONFIGS[0]} {why}: not read (pass it with -c to use it)")
    found = next((p for p in DEFAULT_CONFIGS if seen[p] is True), None)
    hidden = next((p for p in DEFAULT_CONFIGS if seen[p] is None), None)
    return Path(found or hidden or DEFAULT_CONFIGS[-1])


def _not_ours(path: str) -> str | None:
    """Why a config found in the working folder may be someone else's words, or None: it belongs to
    another user than this one and root, or any user may write it or its folder (one without the
    sticky bit lets anyone replace it). Such a file chose where a ping (and HEARTFLY_PING_KEY, and a
    run's output) went, and where `heartfly pause` sent the API token it read from the real file."""
    try:
        st, folder = os.stat(path), os.stat(os.path.dirname(os.path.abspath(path)))
    except (OSError, ValueError):
        return None  # read or refused as before: the loader says why
    if st.st_uid not in (os.geteuid(), 0):
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o002 or (folder.st_mode & 0o002 and not folder.st_mode & 0o1000):
        return "may be written by any user" + ("" if st.st_mode & 0o002 else " (its folder may)")
    return None


_said: set[str] = set()


def _say_once(text: str) -> None:
    """A note on stderr, once a process (config_path is asked more than once); dropped if stderr is closed."""
    if text in _said:
        return
    _said.add(text)
    try:
        sys.stderr.write(f"heartfly: {text}\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def _seen(path: str | os.PathLike[str]) -> bool | None:
    """True if something is at `path`, False if not, None if this user may not look (a folder on
    the way it may not enter: os.path.exists says False)."""
    try:
        os.stat(path)
    except PermissionError:
        return None
    except (OSError, ValueError):
        return False
    return True


def _there(path: str | os.PathLike[str]) -> bool:
    """Whether something is at `path`, or may be: a folder on the way this user may not enter
    hides it, and the loader's read then says permission is missing, not that there is no file."""
    return _seen(path) is not False


def missing_config(given: Path | None, env: Mapping[str, str]) -> str | None:
    """Why there is no config file to read, naming every place looked in; None when there is one."""
    if _there(config_path(given)):
        return None
    if given is None:
        try:
            here = os.path.join(os.getcwd(), DEFAULT_CONFIGS[0])
        except OSError:  # the working folder was deleted under the job (a deploy replaced it, say)
            here = "the working folder no longer exists"
        why = _not_ours(DEFAULT_CONFIGS[0]) if _seen(DEFAULT_CONFIGS[0]) else None
        looked = (
            f"none at ./{DEFAULT_CONFIGS[0]} ({here}) or {DEFAULT_CONFIGS[1]}"
            if why is None
            else f"./{DEFAULT_CONFIGS[0]} ({here}) {why}, so it is not read, and none is at {DEFAULT_CONFIGS[1]}"
        )
        return (
            f"cannot read a config file: {looked};"
            " pass -c FILE or set HEARTFLY_CONFIG (`heartfly init` writes a starter config)"
        )
    source = "HEARTFLY_CONFIG" if env.get("HEARTFLY_CONFIG") == str(given) else "-c/--config"
    return (
        f"cannot read a config file: none at {given} (named by {source}; when it is given,"
        f" ./{DEFAULT_CONFIGS[0]} and {DEFAULT_CONFIGS[1]} are not looked in)"
    )


USER_AGENT = f"heartfly/{__version__}"


class AddressError(ValueError):
    """A ping target that cannot be turned into a URL; the message says what to do."""


def new_ping_id() -> str:
    """A ping's own id: a resend of it (a lost answer, a spool replay) is applied once."""
    return os.urandom(12).hex()


if TYPE_CHECKING:

    class _PingFields(NamedTuple):
        url: str  # the check's ping URL, without an event: https://hb.example.com/ping/<key>
        event: str
        body: bytes
        run_id: str | None
        metrics: Mapping[str, float]
        at: float
        uid: str | None

else:  # the same tuple, without importing typing
    _PingFields = namedtuple("_PingFields", "url event body run_id metrics at uid")


_FRESH = "fresh"


class Ping(_PingFields):
    """One event for one check, as the job saw it; `at` is when it happened (for spooled replays).

    `event`: "", start, fail, log, progress, or an exit status "0".."255". `at` defaults to now and
    `uid` to a fresh id (None: spooled by a Heartfly without ids). A NamedTuple, not a dataclass:
    dataclasses (and inspect, which it imports) cost every cron tick about 10 ms."""

    __slots__ = ()

    def __new__(
        cls,
        url: str,
        event: str = "",
        body: bytes = b"",
        run_id: str | None = None,
        metrics: Mapping[str, float] | None = None,
        at: float | None = None,
        uid: str | None = _FRESH,
    ) -> Ping:
        at = time.time() if at is None else at
        return super().__new__(
            cls, url, event, body, run_id, metrics or {}, at, new_ping_id() if uid is _FRESH else uid
        )

    def request_url(self, *, with_ts: bool = False) -> str:
        parts = urllib.parse.urlsplit(self.url)
        path = parts.path.rstrip("/") + (f"/{self.event}" if self.event else "")
        params: list[tuple[str, str]] = []
        if self.run_id:
            params.append(("rid", self.run_id))
        params += [(f"m_{name}", format_number(value)) for name, value in self.metrics.items()]
        if with_ts:
            params.append(("ts", f"{self.at:.3f}"))
        if self.uid:
            params.append(("ping_id", self.uid))
        query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params)) if q)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))

    def batch_item(self, *, with_ts: bool = True) -> dict[str, object]:
        """This ping as one item of a batch (`POST <url>/batch`), with its true time."""
        item: dict[str, object] = {"ts": round(self.at, 3)} if with_ts else {}
        if self.event.isdigit():
            item["exit_code"] = int(self.event)
        else:
            item["status"] = self.event or "success"
        if self.body:
            item["message"] = self.body.decode("utf-8", "replace")
        if self.run_id:
            item["run_id"] = self.run_id
        if self.metrics:
            item["metrics"] = dict(self.metrics)
        if self.uid:
            item["ping_id"] = self.uid
        return item

    def describe(self) -> str:
        event = self.event or "success"
        if self.event.isdigit():
            event = f"exit status {self.event}"
        return f"{event} ping to {redact(self.url)}"


def event_for(*, start: bool = False, fail: bool = False, log: bool = False, progress: bool = False,
              exit_code: int | None = None) -> str:  # fmt: skip
    """The URL's event segment for `heartfly ping`'s flags; at most one may be given."""
    chosen = [name for name, on in (("start", start), ("fail", fail), ("log", log), ("progress", progress)) if on]
    if exit_code is not None:
        chosen.append(str(exit_code))
    if len(chosen) > 1:
        raise ValueError(f"choose one event, not {' and '.join(chosen)}")
    return chosen[0] if chosen else ""


def format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def parse_metric(text: str) -> tuple[str, float]:
    """`name=value` as `--metric` takes it; checked here so a typo is not a 400 from the server."""
    name, sep, raw = text.partition("=")
    if not sep or not METRIC_RE.fullmatch(name):
        raise ValueError(f'expected name=number with a name of letters, digits or "_", got "{text}"')
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f'metric "{name}" needs a finite number, got "{raw}"')
    return name, value


def check_run_id(text: str) -> str:
    if not RUN_ID_RE.fullmatch(text):
        raise ValueError("a run id is 1 to 128 printable ASCII characters without spaces")
    return text


# --- addressing ---------------------------------------------------------------------------------


def check_url(url: str, what: str = "URL") -> str:
    """An http(s) URL with a host, or AddressError saying what is wrong."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  a port that is no number raises here, not in the middle of a job
    except ValueError:
        raise AddressError(f'{what} "{redact(url)}" is not a URL urllib can read (a bracket or a port?)') from None
    if parts.scheme not in ("http", "https"):
        if "://" in url:
            raise AddressError(f'{what} "{redact(url)}" must start with http:// or https://')
        raise AddressError(f'{what} "{redact(url)}" has no scheme: write http://{redact(url)} or https://…')
    if not parts.hostname:
        raise AddressError(f'{what} "{redact(url)}" has no host')
    return url


def target_url(target: str) -> str | None:
    """A full ping URL as given, or None for a check name (resolved by name_url / config_url)."""
    if "://" in target:
        return check_url(target)
    if NAME_RE.fullmatch(target):
        return None
    if "/" in target or ":" in target:
        raise AddressError(
            f'"{redact(target)}" looks like a URL without a scheme: write http://… or https://… in front of it'
        )
    raise AddressError(f'"{target}" is neither a check name (letters, digits, "_", ".", "-") nor an http(s) URL')


def name_url(base_url: str, ping_key: str, name: str) -> str:
    """`<base>/ping/<ping_key>/<name>`: addresses a check by name under the server-wide ping_key."""
    base = check_url(base_url, "HEARTFLY_URL").rstrip("/")
    return f"{base}/ping/{urllib.parse.quote(ping_key, safe='')}/{urllib.parse.quote(name, safe='')}"


def config_url(config: Config, name: str, base_url: str | None = None, ping_key: str | None = None) -> str:
    """The check's own key from a local config, else its name under the ping_key."""
    base = check_url(base_url, "HEARTFLY_URL") if base_url else config.server.public_url
    check = config.checks.get(name)
    if check is not None:
        return f"{base.rstrip('/')}/ping/{check.key}"
    key = ping_key or config.server.ping_key
    if key:
        return name_url(base, key, name)
    raise AddressError(f'no check "{name}" in {config.path}, and no ping_key there to address it by name')


_SECRETISH = re.compile(r"(?<=/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{14,}")
# user:password@, with or without a scheme before it, up to the last @ that a host name follows: a
# password with a / # or ? that is not percent-encoded (urlsplit ends the userinfo there) is hidden
# whole too, and an @ in a query (?rid=deploy@host&…) leaves the host shown.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@(?=[A-Za-z0-9._~%:\[\]-]*(?:[/?#]|$))")


def redact(url: str) -> str:
    """A URL for messages: long key-like path segments shortened and user:password@ hidden, so logs
    do not carry whole secrets."""
    return _SECRETISH.sub(r"\1…", _USERINFO.sub(r"\1…@", url).split("?", 1)[0])


# --- one delivery -------------------------------------------------------------------------------


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the server said no (404, 400, …): sending again would not help
    UNREACHABLE = "unreachable"  # network errors or 5xx through every retry: worth spooling


if TYPE_CHECKING:

    class _AnswerFields(NamedTuple):
        outcome: Outcome
        status: int | None = None
        detail: str = ""
        body: bytes = b""  # what the server answered (a batch's per-ping results), up to MAX_ANSWER
        body_limit: int | None = None  # how much of a ping's body the server keeps, if it said
        final: bool = False  # retrying within this run cannot help (an untrusted certificate): spool it now

else:
    _AnswerFields = namedtuple(
        "_AnswerFields", "outcome status detail body body_limit final", defaults=(None, "", b"", None, False)
    )


class Answer(_AnswerFields):
    __slots__ = ()

    def explain(self, ping: Ping) -> str:
        what = ping.describe()
        if self.status == 404:
            segments = urllib.parse.urlsplit(ping.url).path.rstrip("/").split("/")
            if len(segments) >= 3 and segments[-3] == "ping":  # by name, under a ping_key
                # The server answers a ping_key that is not its own as it answers an unknown name
                name = shown(urllib.parse.unquote(segments[-1]))
                return (
                    f'{what}: the server answered 404: no check "{name}" under this ping_key: a check missing'
                    " from the server's config, a typo in its name, or a ping_key (HEARTFLY_PING_KEY, or the"
                    " config's) that is not the server's (it answers both alike)"
                )
            return (
                f"{what}: the server answered 404: no check has this key or name"
                " (wrong key, a check missing from the server's config, or a typo in the URL)"
            )
        if self.status is not None and 300 <= self.status < 400:
            return f"{what}: the server redirects ({self.status}) to {redact(self.detail)}: use that URL instead"
        if self.status is not None:
            return f"{what}: the server answered {self.status}: {self.detail or 'no reason given'}"
        return f"{what}: {self.detail}"


def within(deadline: float | None, now: float, cap: float) -> float:
    """A wait of at most `cap` that ends by `deadline` (a monotonic time); 0 once it has passed."""
    return cap if deadline is None else max(0.0, min(cap, deadline - now))


class Transport:
    """POSTs a ping; retries network errors and 5xx with exponential backoff and jitter."""

    def __init__(
        self,
        *,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._read_limit = read_timeout  # this attempt's, cut short by a deadline
        self.lookup_timeout = lookup_timeout
        self._lookup_limit = lookup_timeout  # likewise
        self.sleep = sleep
        self.clock = clock

    def send(self, ping: Ping, *, with_ts: bool = False, deadline: float | None = None) -> Answer:
        """Retries until an answer that settles it, the retries are spent, or `deadline` (monotonic).
        A try more than DATED_AFTER after the ping was made (a retry; one that waited behind a
        replay of the spool) carries its time (`ts`), as a spooled ping does: an end that got in
        seconds after a restart ended when it did, not when it got in (its run as long as the wait,
        a due time it met missed). Not a start's: the work it starts begins once it is answered."""
        if with_ts or ping.event == "start":
            return self.post(ping.request_url(with_ts=with_ts), ping.body, deadline=deadline)
        dated = (ping.request_url(with_ts=True), ping.at)
        return self.post(ping.request_url(), ping.body, deadline=deadline, dated=dated)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        deadline: float | None = None,
        content_type: str = TEXT,
        dated: tuple[str, float] | None = None,
    ) -> Answer:
        """POST `body`, retrying as `send` says. `dated`: the URL with the ping's time, and that
        time, for the tries after DATED_AFTER; one whose `ts` the server refuses with 400 (this
        machine's clock minutes ahead of its, or days behind) goes again at once to `url`."""
        answer = Answer(Outcome.UNREACHABLE, None, "no time left to try (the ping's time budget is spent)")
        for attempt in range(self.retries + 1):
            if attempt:
                import random  # only a retry pays for it

                wait = min(self.backoff * 2 ** (attempt - 1), BACKOFF_CAP) * random.uniform(0.8, 1.2)
                if within(deadline, self.clock(), wait) < wait:
                    break  # the budget ends before the next try could start
                self.sleep(wait)
            now = self.clock()
            connect = within(deadline, now, self.connect_timeout)
            self._read_limit = within(deadline, now, self.read_timeout)
            self._lookup_limit = within(deadline, now, self.lookup_timeout)
            if connect <= 0:
                break
            target = dated[0] if dated is not None and time.time() - dated[1] > DATED_AFTER else url
            answer = self._attempt(target, body, connect, content_type, attempt)
            if target is not url and answer.status == 400:
                answer = self._attempt(url, body, connect, content_type, attempt)
            if answer.outcome is not Outcome.UNREACHABLE or answer.final:
                return answer
        return answer

    def _attempt(self, url: str, body: bytes, connect_timeout: float, content_type: str, turn: int = 0) -> Answer:
        headers = {"User-Agent": USER_AGENT, "Content-Type": content_type}
        try:
            url, authorization = _credentials(url)
            if authorization:
                headers["Authorization"] = authorization
            if http1.handles(url):
                answer = http1.post(
                    url,
                    body,
                    headers,
                    connect_timeout=connect_timeout,
                    read_timeout=self._read_limit,
                    limit=MAX_ANSWER,
                    lookup_timeout=self._lookup_limit,
                    turn=turn,  # a retry starts at the name's next address
                )
            else:  # a proxy from the environment: urllib knows those
                from heartfly.client import viaurllib

                answer = viaurllib.post(url, body, headers, connect_timeout, self._read_limit, MAX_ANSWER)
        except OSError as exc:
            detail = exc.strerror or str(exc) or type(exc).__name__
            if _untrusted(exc):  # will not heal by retrying within the run: spooled at once, for a later one
                return Answer(
                    Outcome.UNREACHABLE, None, f"the server's TLS certificate is not trusted: {detail}", final=True
                )
            return Answer(Outcome.UNREACHABLE, None, f"cannot reach the server: {detail}")
        except ValueError as exc:  # a URL that cannot be parsed (a port out of range, say)
            return Answer(Outcome.REJECTED, None, f"bad URL: {exc}")
        status = answer.status
        if 200 <= status < 300:
            return Answer(Outcome.DELIVERED, status, body=answer.body, body_limit=_body_limit(answer.headers))
        if 300 <= status < 400:
            return Answer(Outcome.REJECTED, status, shown(answer.headers.get("location", "?")))
        text = answer.body.decode("utf-8", "replace").strip().splitlines()
        outcome = Outcome.UNREACHABLE if status in RETRYABLE or status >= 500 else Outcome.REJECTED
        return Answer(outcome, status, shown(text[0][:300] if text else answer.reason), answer.body)


def shown(text: str) -> str:
    """A server's words (its reason, a redirect's Location) for the job's stderr, a terminal or
    cron's mail read in one: a character that is not printable (an escape sequence, a bell, a bidi
    override) as a backslash escape. Over plain http anyone on the way may write them."""
    if text.isprintable():
        return text
    from heartfly.core.printable import escape  # only for a reason that needs it: not on every run's import

    # Tabs and backslashes as they are: the words are one line, read by a person
    return escape(text, keep="\t\\", as_text=True)


def _credentials(url: str) -> tuple[str, str | None]:
    """The URL without its user:password@, and that as a Basic Authorization header (None without):
    neither transport would send it (urllib takes it for part of the host name)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    import base64  # only a URL with credentials pays for it

    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return bare, f"Basic {token}"


def _untrusted(exc: OSError) -> bool:
    """Whether the server's certificate failed verification (untrusted, expired, another name's)."""
    ssl = sys.modules.get("ssl")  # only an https exchange loads it: plain http does not pay for it here
    return ssl is not None and isinstance(exc, ssl.SSLCertVerificationError)


def _body_limit(headers: Mapping[str, str]) -> int | None:
    """Ping-Body-Limit: how many bytes of a body the server keeps (Heartfly's body_limit, a
    Healthchecks' PING_BODY_LIMIT); it keeps the first ones, so a tail must fit in it."""
    value = headers.get("ping-body-limit", "").strip()
    # More than 15 digits is no limit that matters (and int() refuses over 4,300: a ValueError
    # that would lose a ping already delivered).
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 15 else None
