"""One worker of the hourly order batch, which fans out to 8 workers: it totals its shard of orders.

Run it as a Kubernetes Indexed Job (completionMode: Indexed, completions: 8), which gives each pod
JOB_COMPLETION_INDEX 0 to 7, or as 8 processes from any scheduler. Every worker of one batch reports
with the same run id (BATCH_ID, e.g. the Job's name) and names itself (member=w1 ... w8). Heartfly
counts the batch complete once all 8 successes are in, and names the workers that never reported.

From the environment: HEARTFLY_URL, BATCH_KEY (the check's key), BATCH_ID, JOB_COMPLETION_INDEX,
SHARDS (8), ORDERS (CSV with the header order_id,amount) and OUT_DIR.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

HEARTFLY_URL = os.environ["HEARTFLY_URL"]
BATCH_KEY = os.environ["BATCH_KEY"]


def ping(event: str, params: dict[str, str], message: str = "") -> None:
    """A success (event "") or a failure ("fail") of this worker. Never raises."""
    url = f"{HEARTFLY_URL}/ping/{BATCH_KEY}{event}?{urllib.parse.urlencode(params)}"
    data = message.encode("utf-8") if message else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as response:
            response.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(f"warning: ping not recorded: {exc}", file=sys.stderr)


def total_shard(orders: Path, shard: int, shards: int) -> tuple[int, float]:
    """The number of orders in this shard (order_id modulo SHARDS) and their total amount."""
    rows, total = 0, 0.0
    with orders.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if int(row["order_id"]) % shards != shard:
                continue
            try:
                total += float(row["amount"])
            except ValueError:
                raise ValueError(f"line {line}: amount {row['amount']!r} is not a number") from None
            rows += 1
    return rows, total


def main() -> int:
    shard = int(os.environ["JOB_COMPLETION_INDEX"])
    member = f"w{shard + 1}"
    params = {"rid": os.environ["BATCH_ID"], "member": member}
    try:
        rows, total = total_shard(Path(os.environ["ORDERS"]), shard, int(os.environ["SHARDS"]))
        part = Path(os.environ["OUT_DIR"]) / f"part-{member}.json"
        part.write_text(json.dumps({"rows": rows, "total": round(total, 2)}), encoding="utf-8")
    except Exception as exc:
        ping("/fail", params, f"{member}: {type(exc).__name__}: {exc}")
        raise
    ping("", {**params, "m_rows": str(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
