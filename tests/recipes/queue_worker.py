"""Queue processor: one pass drains a spool folder of outgoing mail, pinging Heartfly as it goes.

A pass is one run: a start ping, a progress ping after every QUEUE_BATCH messages with the counts so
far (m_processed, m_remaining), then a success ping with the totals. All of them carry the pass's
run id. Heartfly's `stall` catches a pass that stops making progress (a message that cannot be read,
a hung mount) long before `max_runtime` would. A message that is not valid mail is moved to the
dead-letter folder and counted (m_dead); anything else that goes wrong ends the pass with a failure
ping carrying the error, and the exception.

From the environment: HEARTFLY_URL, QUEUE_KEY (the check's key), QUEUE_DIR (one JSON message per
file: {"to": ..., "subject": ..., "body": ...}), SENT_DIR, DEAD_DIR and QUEUE_BATCH.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

HEARTFLY_URL = os.environ["HEARTFLY_URL"]
QUEUE_KEY = os.environ["QUEUE_KEY"]


def ping(event: str, run_id: str, message: str = "", **metrics: int) -> None:
    """One ping of this pass: event "start", "progress", "fail" or "" (success). Never raises."""
    query = urllib.parse.urlencode({"rid": run_id, **{f"m_{name}": n for name, n in metrics.items()}})
    url = f"{HEARTFLY_URL}/ping/{QUEUE_KEY}" + (f"/{event}" if event else "") + f"?{query}"
    data = message.encode("utf-8") if message else None  # a POST body is the ping's message
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as response:
            response.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # the queue is drained regardless
        print(f"warning: {event or 'success'} ping not recorded: {exc}", file=sys.stderr)


def deliver(message_file: Path, sent_dir: Path, dead_dir: Path) -> bool:
    """Send one message (here: write it to SENT_DIR); False if it went to the dead letters."""
    try:
        message = json.loads(message_file.read_text(encoding="utf-8"))
        if "@" not in str(message["to"]):
            raise ValueError(f"bad recipient {message['to']!r}")
    except (ValueError, KeyError, TypeError):
        message_file.rename(dead_dir / message_file.name)
        return False
    (sent_dir / message_file.name).write_text(json.dumps(message, sort_keys=True), encoding="utf-8")
    message_file.unlink()
    return True


def main() -> int:
    queue, sent, dead = (Path(os.environ[name]) for name in ("QUEUE_DIR", "SENT_DIR", "DEAD_DIR"))
    batch = int(os.environ.get("QUEUE_BATCH", "100"))
    run_id = uuid.uuid4().hex[:12]
    pending = sorted(queue.glob("*.json"))
    ping("start", run_id)
    processed = dead_letters = 0
    try:
        for number, message_file in enumerate(pending, start=1):
            if deliver(message_file, sent, dead):
                processed += 1
            else:
                dead_letters += 1
            if number % batch == 0 and number < len(pending):
                ping("progress", run_id, processed=processed, remaining=len(pending) - number)
    except Exception as exc:
        ping("fail", run_id, f"{type(exc).__name__}: {exc}", processed=processed)
        raise
    ping("", run_id, processed=processed, dead=dead_letters)
    print(f"sent {processed}, dead letters {dead_letters}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
