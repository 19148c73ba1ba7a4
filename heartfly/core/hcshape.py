"""Healthchecks' Management API, the pure part: a check as its JSON shows one, and a create or
update request read into the table of keys a `[checks.NAME]` table takes.

Field names, types and error words follow Healthchecks (hc/api/models.py Check.to_dict, the
`Spec` of hc/api/views.py), so its clients (the Terraform provider, the Ansible collection, the
Python clients, Home Assistant) work unchanged. Where Heartfly cannot honour a field's non-default
value (methods, keyword filters, OnCalendar) the request is refused, never stored and ignored.
`manual_resume` is a check's `resume_on_ping`, the other way round.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from heartfly.core.config import CheckConfig
from heartfly.core.config_values import TAG_RE, parse_cron
from heartfly.core.patterns import NAME_RE
from heartfly.core.pingparse import storable
from heartfly.core.states import CheckState, Status
from heartfly.core.stored_checks import bound_runs, bounds_a_run, check_uuid
from heartfly.core.units import format_duration

MIN_SECONDS, MAX_SECONDS = 60, 31_536_000  # timeout and grace: a minute to a year
UNIQUE_KEY_RE = re.compile(r"[A-Za-z0-9]{40}")
UNIQUE_FIELDS = ("name", "slug", "tags", "timeout", "grace")
UP_STATES = ("up", "running", "late")  # Healthchecks' "up": within its schedule or grace (its flips' up)
_CHANNEL_NAMESPACE = uuid.UUID("0e5b8a6c-62f1-4c58-8a4e-4d1f3a9b7c21")

# Fields Heartfly has no rule for: accepted at their default value only.
_DEFAULTS_ONLY: dict[str, Any] = {
    "methods": "",
    "filter_subject": False,
    "filter_body": False,
    "filter_http_body": False,
    "filter_default_fail": False,
    "start_kw": "",
    "success_kw": "",
    "failure_kw": "",
    "subject": "",
    "subject_fail": "",
}
# Cron's macros, which Heartfly's file takes and Healthchecks' API refuses (as an OnCalendar
# expression it cannot read): the 400 gives the five fields to send instead.
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0"}
_MACROS |= {"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_STRINGS = {"name": 100, "slug": 100, "tags": None, "desc": None, "schedule": 100, "tz": None, "channels": None}


class SpecError(ValueError):
    """A create or update Healthchecks would refuse with 400; the message is its words."""


def iso(ts: float | None, *, micro: bool = False) -> str | None:
    """Healthchecks' time format: UTC with +00:00, whole seconds (pings keep microseconds)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds" if micro else "seconds")


def channel_id(name: str) -> str:
    """A channel's uuid, as Healthchecks' API names integrations: derived from its name."""
    return str(uuid.uuid5(_CHANNEL_NAMESPACE, name))


def unique_key(check: CheckConfig) -> str:
    """What a read-only key sees instead of the uuid (Healthchecks: sha1 of the uuid's first 16 hex digits)."""
    return hashlib.sha1(uuid.UUID(check_uuid(check)).hex[:16].encode(), usedforsecurity=False).hexdigest()


def slugify(text: str) -> str:
    """Healthchecks' (Django's) slug of a name: ASCII, lower case, runs of spaces and dashes as one '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_")


def status(st: CheckState, version: int, grace: float, now: float) -> str:
    """Heartfly's state in Healthchecks' words: late is "grace"; a run in progress is "started" in
    v1, and "up" after (v2 and v3 show it in `started`). A late or down check whose newest run
    started less than `grace` before `now` is "started" in v1 too (Healthchecks' "down, but
    currently running"); not an older one (get_status: past last_start + grace, a start does not
    count), as a job that started and hung past its deadline. A pause ends the run there: paused.
    Healthchecks' "new" ends at a success or failure (as its last_ping starts): a check that has
    had neither, only starts, is new."""
    if st.status is Status.RUNNING:
        return "started" if version == 1 else "up" if st.last_end_at is not None else "new"
    fresh = bool(st.runs) and max(r.started_at for r in st.runs.values()) + grace > now
    if version == 1 and fresh and st.status is not Status.PAUSED:
        return "started"
    if st.status is Status.UP and st.last_end_at is None:  # resumed after starts only
        return "new"
    return "grace" if st.status is Status.LATE else st.status.value


@dataclass(frozen=True, slots=True)
class Shown:
    """Where the check's URLs point, and what the caller may see."""

    public_url: str
    version: int
    readonly: bool
    display_name: str  # Healthchecks' free-text name (a stored check's), else the check's name
    n_pings: int
    badge_url: str
    now: float  # the clock's: a v1 status tells a fresh start from a hung one


def check_json(cfg: CheckConfig, st: CheckState, shown: Shown) -> dict[str, Any]:
    watching = st.status is not Status.PAUSED
    # Healthchecks: nothing is due of a paused or a down check (next_ping null); a running one is
    # due at its start
    due = st.next_due() if watching and st.status is not Status.DOWN else None
    if due is not None and st.runs:
        due = min(due, min(r.started_at for r in st.runs.values()))
    item: dict[str, Any] = {
        "name": shown.display_name,
        "slug": cfg.name,
        "tags": " ".join(cfg.tags),
        "desc": cfg.description,
        "grace": int(cfg.grace),
        "n_pings": shown.n_pings,
        "status": status(st, shown.version, cfg.grace, shown.now),
        "started": bool(st.runs) and watching,  # Healthchecks' pause ends the run (last_start = None)
        "last_ping": iso(st.last_end_at),  # Healthchecks': the last success or failure, not a start or log
        "next_ping": iso(due),
        "manual_resume": not cfg.resume_on_ping,
        **{k: v for k, v in _DEFAULTS_ONLY.items() if k not in ("start_kw", "success_kw", "failure_kw")},
        "start_kw": "",
        "success_kw": "",
        "failure_kw": "",
        "badge_url": shown.badge_url,
    }
    if st.last_duration and st.last_duration_at == st.last_end_at:  # the newest end timed a run
        item["last_duration"] = int(st.last_duration)
    if shown.readonly:
        item["unique_key"] = unique_key(cfg)
    else:
        code = check_uuid(cfg)
        update_url = f"{shown.public_url}/api/v{shown.version}/checks/{code}"
        item.update(
            uuid=code,
            ping_url=f"{shown.public_url}/ping/{cfg.key}",
            update_url=update_url,
            pause_url=update_url + "/pause",
            resume_url=update_url + "/resume",
            channels=",".join(sorted(channel_id(c) for c in cfg.channels)),
        )
    if cfg.cron is not None:
        item.update(schedule=cfg.cron, tz=cfg.timezone)
    else:
        item["timeout"] = int(cfg.every if cfg.every is not None else cfg.within or 0)
    return item


@dataclass(frozen=True, slots=True)
class Spec:
    """A create or update request, checked: only the fields it gave."""

    fields: Mapping[str, Any]
    unique: tuple[str, ...]


def read_spec(data: Any) -> Spec:
    """The request body as Healthchecks' `Spec` reads it; SpecError with its words on the first bad field."""
    if not isinstance(data, dict):
        raise SpecError("json validation error: value is not an object")
    fields: dict[str, Any] = {}
    for key in sorted(data):  # Healthchecks reports the first bad field in its declared (alphabetical) order
        value = data[key]
        if key in _STRINGS:
            fields[key] = _string(key, value, _STRINGS[key])
        elif key in ("timeout", "grace"):
            fields[key] = _seconds(key, value)
        elif key == "manual_resume":
            if not isinstance(value, bool):
                raise SpecError("json validation error: manual_resume is not a boolean")
            fields[key] = value
        elif key in _DEFAULTS_ONLY:
            default = _DEFAULTS_ONLY[key]
            if type(value) is not type(default):
                word = "a boolean" if isinstance(default, bool) else "a string"
                raise SpecError(f"json validation error: {key} is not {word}")
            if value != default:
                raise SpecError(f"json validation error: {key} is not supported by Heartfly (only {default!r})")
        elif key == "unique":
            if not isinstance(value, list):
                raise SpecError("json validation error: unique is not an array")
            if any(item not in UNIQUE_FIELDS for item in value):
                raise SpecError("json validation error: an item in 'unique' has unexpected value")
        # anything else (api_key among them) is not a field: ignored, as Healthchecks does
    if long := next((tag for tag in fields.get("tags", "").split() if not TAG_RE.fullmatch(tag)), None):
        # here, as a schedule is: the field sent, not the config's checks.NAME.tags that no caller wrote
        raise SpecError(
            f'json validation error: tags: "{long}" is longer than 50 characters, the most a tag may have here'
        )
    if "slug" in fields and fields["slug"] and not re.fullmatch(r"[a-z0-9_-]*", fields["slug"]):
        raise SpecError("json validation error: slug does not match pattern")
    if schedule := fields.get("schedule"):
        try:
            if five := _MACROS.get(schedule.strip().lower()):  # the file takes it; Healthchecks' API does not
                raise ValueError(f'"{schedule}" is a cron macro, which Healthchecks refuses too: write "{five}"')
            if (count := len(schedule.split())) != 5:
                raise ValueError(
                    f'"{schedule}" has {count} field{"s" * (count != 1)}, a cron expression 5 (minute hour day'
                    " month weekday); OnCalendar is not supported"
                )
            # here, so the error names the field the caller sent, not the config's; kept as the config
            # reads it ("0  3 * * *" is "0 3 * * *"), so an upsert compares it with the check's
            fields["schedule"] = parse_cron(schedule)
        except ValueError as exc:
            raise SpecError(f"json validation error: schedule is not a valid cron expression ({exc})") from None
    if "tz" in fields:
        try:
            ZoneInfo(fields["tz"])
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise SpecError("json validation error: tz is not a valid timezone") from None
    return Spec(fields, tuple(data.get("unique", ())))


def _string(key: str, value: Any, limit: int | None) -> str:
    if not isinstance(value, str):
        raise SpecError(f"json validation error: {key} is not a string")
    if limit is not None and len(value) > limit:
        raise SpecError(f"json validation error: {key} is too long")
    return storable(value)  # JSON's "\ud800" would be stored, then fail every page that shows it


def _seconds(key: str, value: Any) -> int:
    # Whole seconds, as Healthchecks' API shows them. It refuses any JSON number with a fraction
    # part ("is not a number": its strict schema takes an int alone); 3600.0, as a script's
    # timedelta.total_seconds() writes it, is taken here, being whole. A fraction is refused, not
    # rounded: the check would keep a value other than the one sent.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise SpecError(f"json validation error: {key} is not a number")
    if value != int(value):
        raise SpecError(f"json validation error: {key} is not a whole number of seconds")
    if value < MIN_SECONDS:
        raise SpecError(f"json validation error: {key} is too small")
    if value > MAX_SECONDS:
        raise SpecError(f"json validation error: {key} is too large")
    return int(value)


def new_name(spec: Spec, version: int, fallback: str) -> str:
    """The name a created check gets: the slug if given, else the name's slug, else `fallback`."""
    slug = spec.fields.get("slug") or (
        slugify(spec.fields.get("name", "")) if version < 3 or "slug" not in spec.fields else ""
    )
    return slug or fallback


def new_table(key: str, inherited: Mapping[str, Any], *, resume_on_ping: bool = True) -> dict[str, Any]:
    """A check made through the API (or by a ?create=1 ping), before a request's fields:
    Healthchecks' defaults (a day's timeout, an hour's grace unless [defaults] gives one, and, made
    through the API, a ping ends a pause: manual_resume false), and its grace as its max_runtime
    (bound_runs)."""
    table: dict[str, Any] = {"key": key, "every": "1d"}
    if resume_on_ping:
        table["resume_on_ping"] = True
    grace = inherited.get("grace")
    if grace is None:
        table["grace"] = "1h"
    elif bounds_a_run(grace, inherited):
        # [defaults]' grace, written as the check's own (as a Healthchecks check's is): left to
        # follow [defaults], a later change there would part it from the max_runtime it is
        table["grace"] = format_duration(grace)
    return bound_runs(table, inherited)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise SpecError(
            f"json validation error: slug {name!r} cannot be a check's name (it starts with a letter or digit)"
        )
    return name


def apply(
    table: Mapping[str, Any], spec: Spec, channels: Mapping[str, str], inherited: Mapping[str, Any]
) -> dict[str, Any]:
    """A stored check's table with the request's fields applied; `channels` maps every channel's
    id and name to its name, `inherited` is [defaults]. SpecError for a channel that is not one."""
    new = dict(table)
    fields = spec.fields
    if fields.get("schedule"):
        new.pop("every", None)
        if "cron" not in table and "tz" not in fields:
            # Healthchecks' tz is UTC unless given: a script's schedule without one is UTC, not the
            # zone of the file's [defaults] (a check already on a schedule keeps the zone it has)
            new["timezone"] = "UTC"
        new["cron"] = fields["schedule"]
    elif "timeout" in fields:
        new.pop("cron", None)
        new.pop("timezone", None)
        new["every"] = format_duration(fields["timeout"])
    if "tz" in fields and "cron" in new:
        new["timezone"] = fields["tz"]
    if "grace" in fields:
        new["grace"] = format_duration(fields["grace"])
    if "desc" in fields:
        new["description"] = fields["desc"]
    if "tags" in fields:
        new["tags"] = fields["tags"].split()
    if "channels" in fields:
        new["channels"] = _channels(fields["channels"], channels)
    if "manual_resume" in fields:
        new["resume_on_ping"] = not fields["manual_resume"]
    bound_runs(new, inherited)
    if not new.get("resume_on_ping"):
        new.pop("resume_on_ping", None)  # the file's default
    if not new.get("tags"):
        new.pop("tags", None)
    if not new.get("description"):
        new.pop("description", None)
    return new


def _channels(text: str, known: Mapping[str, str]) -> list[str]:
    if text == "*":
        return sorted(set(known.values()))
    if text == "":
        return []
    names: list[str] = []
    for item in text.split(","):
        if not item:
            raise SpecError("empty channel identifier")
        if item not in known:
            raise SpecError(f"invalid channel identifier: {item}")
        names.append(known[item])
    return sorted(set(names))


def changes(cfg: CheckConfig, title: str, spec: Spec, channels: Mapping[str, str]) -> bool:
    """Whether the request would change what the check shows (an upsert that finds a check as
    asked leaves it, a file's check included); SpecError for a channel that is not one."""
    fields = spec.fields
    now: dict[str, Any] = {
        "name": title,
        "slug": cfg.name,
        "tags": list(cfg.tags),
        "desc": cfg.description,
        "grace": int(cfg.grace),
        "timeout": int(cfg.every) if cfg.every is not None and cfg.cron is None else None,
        "schedule": cfg.cron or "",
        "tz": cfg.timezone if cfg.cron is not None else fields.get("tz"),
        "channels": sorted(cfg.channels),
        "manual_resume": not cfg.resume_on_ping,
    }
    asked = dict(fields)
    if "tags" in asked:
        asked["tags"] = asked["tags"].split()
    if "channels" in asked:
        asked["channels"] = _channels(asked["channels"], channels)
    if asked.get("schedule"):
        asked.pop("timeout", None)  # a schedule wins over a timeout, as in Healthchecks
    elif "schedule" in asked:
        del asked["schedule"]  # "" means no schedule: the timeout decides
    return any(now[key] != value for key, value in asked.items() if key in now)


def matches(cfg: CheckConfig, display_name: str, spec: Spec) -> bool:
    """Whether a check has every `unique` field the request gives, as a create's upsert looks for one."""
    if not spec.unique or any(f not in spec.fields for f in spec.unique):
        return False
    mine = {
        "name": display_name,
        "slug": cfg.name,
        "tags": list(cfg.tags),
        "timeout": int(cfg.every) if cfg.every is not None else None,
        "grace": int(cfg.grace),
    }
    given = {**spec.fields, "tags": str(spec.fields.get("tags", "")).split()}  # tags as Heartfly keeps them
    return all(mine[f] == given[f] for f in spec.unique)
