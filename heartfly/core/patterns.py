"""What a name, a run id and a metric may look like: one definition for the config, the server's
ping parser and the job-side client (which imports only this and `re` from the core)."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # checks, channels, pipelines: safe in URLs and logs
RUN_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
METRIC_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # as str(uuid.UUID) writes one


def fold_run_id(run_id: str) -> str:
    """A run id as runs are paired by: a UUID's hex digits are one in either case (RFC 9562;
    Healthchecks, whose run ids are UUIDs, compares them so), so a UUID is in lower case (macOS's
    uuidgen writes upper case, Linux lower); other run ids are as sent."""
    folded = run_id.lower()
    return folded if UUID_RE.fullmatch(folded) else run_id


def fold_stored_run_id(run_id: str | None) -> str | None:
    """A stored run id (None: none) as runs are paired by now: one a version before stored as sent."""
    return None if run_id is None else fold_run_id(run_id)
