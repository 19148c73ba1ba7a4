"""The inbox of a cluster (PostgreSQL): what a standby node took for the leader to apply.

A standby does not apply pings (only the leader holds the checks' states); it commits each one
here, answers 200, and the leader applies it in the transaction that deletes its row, so a ping is
applied once however many leaders come and go. Commands an operator gives a standby (pause,
resume) travel the same way. Pure: the row's text and its reading back; postgres_inbox.py reads
the table and listens for new rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from heartfly.core.checkconfig import CheckConfig
from heartfly.core.patterns import fold_run_id
from heartfly.core.states import Event, Kind
from heartfly.store.pingrecord import PingRecord
from heartfly.store.rows import InboxRow

INSERT_INBOX = "INSERT INTO inbox (node, check_name, body) VALUES (%s, %s, %s)"
# Run in the transaction that stores the rows' effects (Write.inbox_done): applied once, or not at all.
DELETE_INBOX = "DELETE FROM inbox WHERE id = ANY(%s)"
NOTIFY = "SELECT pg_notify('heartfly_inbox', '')"  # delivered at commit, to the leader's LISTEN
CHANNEL = "heartfly_inbox"

Op = Literal["ping", "batch", "pause", "resume"]


@dataclass(frozen=True, slots=True)
class Item:
    """One inbox row, read back: what to do to which check."""

    id: int
    check_name: str
    op: Op
    pings: tuple[PingRecord, ...] = ()
    why: str = ""
    at: float | None = None  # when a pause or resume was given (the standby's clock, as its pings')
    key: str | None = None  # the check's ping key, as the standby knew it (none from a Heartfly before it)
    stored: bool = False  # a check made through the API (or auto-provisioned), not the file's


def ping_row(node: str, check: CheckConfig, pings: list[PingRecord], *, batch: bool) -> InboxRow:
    body = {"op": "batch" if batch else "ping", **_whose(check), "pings": [_encode(p) for p in pings]}
    return (node, check.name, json.dumps(body, separators=(",", ":")))


def command_row(
    node: str, check: CheckConfig, op: Literal["pause", "resume"], why: str = "", at: float | None = None
) -> InboxRow:
    body: dict[str, object] = {"op": op, **_whose(check), "why": why}
    if at is not None:
        body["at"] = at
    return (node, check.name, json.dumps(body, separators=(",", ":")))


def _whose(check: CheckConfig) -> dict[str, object]:
    """Which check a row is for besides its name, which a rename or a delete through the API may
    have taken from it by the time the leader reads the row."""
    return {"key": check.key, "stored": check.origin != "file"}


def read(item_id: int, check_name: str, body: str) -> Item:
    """An inbox row back as an Item; ValueError for a row this version cannot read."""
    try:
        data = json.loads(body)
        op = data["op"]
        key = str(data["key"]) if "key" in data else None
        stored = bool(data.get("stored", False))
        if op in ("ping", "batch"):
            return Item(item_id, check_name, op, tuple(_decode(p) for p in data["pings"]), key=key, stored=stored)
        if op in ("pause", "resume"):
            at = data.get("at")  # none from a Heartfly before it
            why = str(data.get("why", ""))
            return Item(
                item_id, check_name, op, why=why, at=float(at) if at is not None else None, key=key, stored=stored
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"inbox row {item_id} cannot be read: {exc}") from None
    raise ValueError(f"inbox row {item_id} has an unknown op {op!r} (written by a newer Heartfly?)")


def _encode(p: PingRecord) -> dict[str, Any]:
    e = p.event
    return {
        "kind": e.kind.value, "at": e.at, "run_id": e.run_id, "exit_status": e.exit_status,
        "metrics": dict(e.metrics) if e.metrics is not None else None, "member": e.member,
        "received_at": p.received_at, "body": p.body, "truncated": p.truncated, "method": p.method,
        "source": p.source, "user_agent": p.user_agent, "uid": p.uid,
    }  # fmt: skip


def _decode(d: dict[str, Any]) -> PingRecord:
    metrics = {str(k): float(v) for k, v in d["metrics"].items()} if d["metrics"] is not None else None
    run_id = None if d["run_id"] is None else fold_run_id(d["run_id"])  # an older standby's: as sent
    event = Event(Kind(d["kind"]), float(d["at"]), run_id, d["exit_status"], metrics, d["member"])
    return PingRecord(
        event=event,
        received_at=float(d["received_at"]),
        body=str(d["body"]),
        truncated=bool(d["truncated"]),
        metrics=metrics,
        method=str(d["method"]),
        source=str(d["source"]),
        user_agent=str(d["user_agent"]),
        uid=d["uid"],
    )
