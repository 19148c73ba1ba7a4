"""Run by tests/test_hc_api.py with the `healthchecks-io` client's own virtualenv (it pins
croniter < 4, which Heartfly cannot share): every call the client offers, against a Heartfly
server, for one api_version. Prints one JSON object of what came back.

    python hcio_script.py BASE_URL API_KEY PING_KEY API_VERSION
"""

from __future__ import annotations

import json
import sys
from typing import Any

from healthchecks_io import CheckCreate, CheckUpdate, Client  # type: ignore[import-not-found]


def main() -> None:
    base, key, ping_key, version = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = Client(
        api_key=key, ping_key=ping_key, api_url=f"{base}/api/", api_version=version, ping_url=f"{base}/ping/"
    )
    out: dict[str, Any] = {}
    out["listed"] = sorted(c.slug for c in client.get_checks())
    spec = CheckCreate(name=f"Nightly backup v{version}", tags="prod db", timeout=3600, grace=120, unique=["name"])
    made = client.create_check(spec)
    out["made"] = {"uuid": made.uuid, "slug": made.slug, "status": made.status, "ping_url": made.ping_url}
    again = client.create_check(spec)
    out["upsert_same_uuid"] = again.uuid == made.uuid
    out["got_name"] = client.get_check(made.uuid).name
    updated = client.update_check(made.uuid, CheckUpdate(desc="dumps the db", schedule="0 2 * * *", tz="Europe/Berlin"))
    out["updated"] = {"desc": updated.desc, "tags": updated.tags}
    out["start_ping"] = list(client.start_ping(made.uuid))
    out["status_running"] = client.get_check(made.uuid).status
    out["success_ping"] = list(client.success_ping(made.uuid, data="42 tables"))
    out["fail_ping"] = list(client.fail_ping(made.uuid, data="disk full"))
    out["exit_code_ping"] = list(client.exit_code_ping(0, made.uuid))
    out["slug_ping"] = list(client.success_ping(slug=made.slug))
    out["pings"] = [p.type for p in client.get_check_pings(made.uuid)]
    out["paused"] = client.pause_check(made.uuid).status
    out["tagged"] = sorted(c.slug for c in client.get_checks(tags=["prod", "db"]))
    out["integrations"] = [(i.name, i.kind) for i in client.get_integrations()]
    out["badges"] = sorted(client.get_badges())
    # get_check_flips is left out: the client iterates the answer as a bare list, while
    # Healthchecks answers {"flips": [...]} (hc/api/views.py); it fails against Healthchecks too.
    out["deleted"] = client.delete_check(made.uuid).slug
    out["after"] = sorted(c.slug for c in client.get_checks())
    try:
        client.get_check(made.uuid)
        out["gone"] = "still there"
    except Exception as exc:  # noqa: BLE001 - the client's own not-found error is what we look for
        out["gone"] = type(exc).__name__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
