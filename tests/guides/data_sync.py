"""Data sync worker: copies user records from the auth export into the profile store.

It pings Heartfly after each record it syncs (SYNC_PING=operation) or once per batch with the
counts as metrics (SYNC_PING=batch). The pings stop when the syncing stops, and Heartfly notices.

From the environment: HEARTFLY_URL, SYNC_KEY (the check's key), SYNC_PING, SYNC_SOURCE (JSON
lines, one {"id": ..., "email": ...} each), SYNC_TARGET (a folder), SYNC_BATCH (records per
batch) and SYNC_PAUSE (seconds to wait between batches: the upstream rate limit).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEARTFLY_URL = os.environ["HEARTFLY_URL"]
SYNC_KEY = os.environ["SYNC_KEY"]


def ping(**metrics: int) -> None:
    """One success ping, with `m_<name>=<value>` metrics if given. Never raises."""
    query = urllib.parse.urlencode({f"m_{name}": value for name, value in metrics.items()})
    url = f"{HEARTFLY_URL}/ping/{SYNC_KEY}" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # the sync goes on regardless
        print(f"warning: ping not recorded: {exc}", file=sys.stderr)


def batches(source: Path, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                batch.append(line)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def sync_record(line: str, target: Path) -> None:
    record: dict[str, Any] = json.loads(line)
    user_id = int(record["id"])
    if "@" not in str(record.get("email", "")):
        raise ValueError(f"user {user_id}: no valid email")
    (target / f"{user_id}.json").write_text(json.dumps(record, sort_keys=True), encoding="utf-8")


def main() -> int:
    per_batch = os.environ.get("SYNC_PING", "operation") == "batch"
    target = Path(os.environ["SYNC_TARGET"])
    pause = float(os.environ.get("SYNC_PAUSE", "1"))
    for number, batch in enumerate(batches(Path(os.environ["SYNC_SOURCE"]), int(os.environ["SYNC_BATCH"]))):
        if number:
            time.sleep(pause)
        processed = failed = 0
        for line in batch:
            try:
                sync_record(line, target)
            except (ValueError, KeyError) as exc:
                failed += 1
                print(f"skipped a record: {exc}", file=sys.stderr)
                continue
            processed += 1
            if not per_batch:
                ping()
        if per_batch:
            ping(processed=processed, failed=failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
