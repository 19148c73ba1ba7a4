"""ETL job that reports to Heartfly with JSON heartbeats; monitoring can never break the job.

From the environment: HEARTFLY_URL, ETL_KEY (the check's key), ETL_FAIL_KEY (its fail_key),
ETL_SOURCE (a CSV file with the columns customer,amount) and ETL_TARGET (the JSON file to write).
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import sys
import urllib.request
from pathlib import Path

HEARTFLY_URL = os.environ["HEARTFLY_URL"]
ETL_KEY = os.environ["ETL_KEY"]
ETL_FAIL_KEY = os.environ["ETL_FAIL_KEY"]


def send_heartbeat(key: str, status: str, message: str) -> bool:
    """POST one JSON heartbeat; False (and a warning) if it was not recorded. Never raises."""
    request = urllib.request.Request(
        f"{HEARTFLY_URL}/api/v1/heartbeat/{key}",
        data=json.dumps({"status": status, "message": message}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timeout, 4xx/5xx: go on
        print(f"warning: heartbeat {status!r} not recorded: {exc}", file=sys.stderr)
        return False


def run_etl(source: Path, target: Path) -> int:
    """Extract rows from the CSV, total the amounts per customer, load them as JSON."""
    totals: dict[str, float] = {}
    with source.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                amount = float(row["amount"])
            except (TypeError, ValueError):
                raise ValueError(f"line {line}: amount {row['amount']!r} is not a number") from None
            totals[row["customer"]] = totals.get(row["customer"], 0.0) + amount
    target.write_text(json.dumps(totals, indent=2, sort_keys=True), encoding="utf-8")
    return len(totals)


def main() -> int:
    send_heartbeat(ETL_KEY, "start", "ETL process initiated")
    try:
        customers = run_etl(Path(os.environ["ETL_SOURCE"]), Path(os.environ["ETL_TARGET"]))
    except Exception as exc:
        send_heartbeat(ETL_FAIL_KEY, "fail", f"ETL failed: {exc}")
        raise  # the scheduler still sees the traceback and a non-zero exit status
    send_heartbeat(ETL_KEY, "success", f"ETL loaded totals for {customers} customers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
