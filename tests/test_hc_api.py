"""Healthchecks' Management API (/api/v1/, /api/v2/, /api/v3/) on a real server: the real
`healthchecks-io` client for api_version 1 and 3, its keys, codes, errors and CORS, checks made
through it kept in the database (restarts, reloads, clashes with the file), and the file's checks
read-only except pause and resume."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from heartfly.cli import report
from heartfly.core import hcshape, stored_checks
from heartfly.core.clock import FakeClock
from heartfly.core.config import ConfigError, load_config
from heartfly.core.stored_checks import StoredCheck, check_uuid
from heartfly.store import queries
from heartfly.store import rows as store_rows
from heartfly.web import control, hcapi, pings
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests import storeutil
from tests.conftest import ConfigWriter, new_key
from tests.proc import Server
from tests.webutil import bearer

Client = TestClient[Any, Any]
HCIO_PYTHON = Path(__file__).parent.parent / ".venv" / "hcio" / "bin" / "python"  # made by ./dev.sh test
FILE_KEY = "6f1c2b0a-1111-4222-8333-444455556666"
SERVER = """
hc_api_key_file = "hc-key"
hc_api_key_readonly_file = "hc-ro"
ping_key = "pk-for-slugs-0123456789"
"""
PING_KEY = "pk-for-slugs-0123456789"
CHECKS = f"""
[defaults]
channels = ["journal"]

[channels.journal]
type = "log"

[checks.backup]
key = "{FILE_KEY}"
every = "1h"
tags = ["prod"]

[checks.report]
key = "{new_key()}"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
"""
# The file without the channel a stored check names: that check no longer fits it, and is left out.
WITHOUT_CHANNEL = CHECKS.replace('[defaults]\nchannels = ["journal"]\n\n[channels.journal]\ntype = "log"\n', "")


async def start(aiohttp_client: Any, write_config: ConfigWriter, body: str = CHECKS) -> tuple[Client, str, str]:
    config = write_config(body, server=SERVER)
    client: Client = await aiohttp_client(create_app(config))
    folder = config.path.parent
    return client, (folder / "hc-key").read_text().strip(), (folder / "hc-ro").read_text().strip()


def rw(key: str) -> dict[str, str]:
    return {"X-Api-Key": key}


async def made(client: Client, key: str, **fields: Any) -> dict[str, Any]:
    resp = await client.post("/api/v3/checks/", json=fields, headers=rw(key))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


@pytest.mark.skipif(not HCIO_PYTHON.exists(), reason="no .venv/hcio (./dev.sh test installs healthchecks-io there)")
@pytest.mark.parametrize("version", [1, 3])
async def test_the_healthchecks_io_client_makes_changes_pings_pauses_and_deletes_a_check(
    aiohttp_client: Any, write_config: ConfigWriter, version: int
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    base = str(client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        str(HCIO_PYTHON), str(Path(__file__).parent / "hcio_script.py"), base, key, PING_KEY, str(version),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert got["listed"] == ["backup", "report"]
    slug = f"nightly-backup-v{version}"
    assert got["made"]["slug"] == slug and got["made"]["status"] == "new"
    assert got["made"]["ping_url"].endswith(f"/ping/{got['made']['uuid']}")  # the uuid is the ping key
    assert got["upsert_same_uuid"] is True
    assert got["got_name"] == f"Nightly backup v{version}"
    assert got["updated"] == {"desc": "dumps the db", "tags": "prod db"}
    assert got["start_ping"] == [True, "OK"] and got["success_ping"] == [True, "OK"]
    assert got["status_running"] == ("started" if version == 1 else "new")  # as Healthchecks: new until an end
    assert got["fail_ping"] == [True, "OK"] and got["exit_code_ping"] == [True, "OK"]
    assert got["slug_ping"] == [True, "OK"]
    assert got["pings"] == ["success", "success", "fail", "success", "start"]  # newest first
    assert got["paused"] == "paused"
    assert got["tagged"] == [slug]
    assert got["integrations"] == [["journal", "log"]]
    assert got["badges"] == ["*", "db", "prod"]
    assert got["deleted"] == slug and got["after"] == ["backup", "report"]
    assert got["gone"] == "CheckNotFoundError"


async def test_versions_differ_as_healthchecks_does_in_status_and_urls(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200  # not new: Healthchecks' new ends at a success
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    for version, status in ((1, "started"), (2, "up"), (3, "up")):
        resp = await client.get(f"/api/v{version}/checks/", headers=rw(key))
        assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
        backup = next(c for c in (await resp.json())["checks"] if c["slug"] == "backup")
        assert backup["status"] == status and backup["started"] is True
        assert backup["uuid"] == FILE_KEY  # a key that is a UUID is the check's uuid
        assert backup["update_url"].endswith(f"/api/v{version}/checks/{FILE_KEY}")
        assert backup["timeout"] == 3600 and backup["grace"] == 300 and backup["tags"] == "prod"
        assert isinstance(backup["n_pings"], int)
        assert backup["manual_resume"] is True  # a file check: pings do not end its pause
    report = await (await client.get("/api/v3/checks/?slug=report", headers=rw(key))).json()
    assert [c["schedule"] for c in report["checks"]] == ["0 3 * * *"]
    assert report["checks"][0]["tz"] == "Europe/Berlin" and "timeout" not in report["checks"][0]


async def test_keys_are_checked_as_healthchecks_words_it(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    client, key, readonly = await start(aiohttp_client, write_config)
    assert len(key) == 32 and len(readonly) == 32 and key != readonly
    missing = await client.get("/api/v3/checks/")
    assert missing.status == 401 and await missing.json() == {"error": "missing api key"}
    wrong = await client.get("/api/v3/checks/", headers=rw("x" * 32))
    assert wrong.status == 401 and await wrong.json() == {"error": "wrong api key"}
    listed = await (await client.get("/api/v3/checks/", headers=rw(readonly))).json()
    first = listed["checks"][0]
    assert "uuid" not in first and "ping_url" not in first and len(first["unique_key"]) == 40
    by_unique = await client.get(f"/api/v3/checks/{first['unique_key']}", headers=rw(readonly))
    assert by_unique.status == 200 and (await by_unique.json())["slug"] == first["slug"]
    write = await client.post("/api/v3/checks/", json={"name": "x"}, headers=rw(readonly))
    assert write.status == 401 and await write.json() == {"error": "wrong api key"}
    assert (await client.get(f"/api/v3/checks/{FILE_KEY}/pings/", headers=rw(readonly))).status == 401
    in_body = await client.post("/api/v3/checks/", json={"name": "from body", "api_key": key})
    assert in_body.status == 201 and (await in_body.json())["slug"] == "from-body"


async def test_cors_preflight_and_wrong_methods_answer_like_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    pre = await client.options(f"/api/v3/checks/{FILE_KEY}")
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Headers"] == "X-Api-Key"
    assert set(pre.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "DELETE", "OPTIONS"}
    assert pre.headers["Access-Control-Max-Age"] == "600"
    assert (await client.put("/api/v3/checks/", headers=rw(key))).status == 405
    assert (await client.get("/api/v3/status/")).status == 200


async def test_bad_creates_are_refused_naming_the_field_and_store_nothing(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    cases = [
        ({"timeout": 10}, "json validation error: timeout is too small"),
        ({"grace": 10**9}, "json validation error: grace is too large"),
        ({"timeout": "1h"}, "json validation error: timeout is not a number"),
        ({"name": "x" * 101}, "json validation error: name is too long"),
        ({"slug": "Has Caps"}, "json validation error: slug does not match pattern"),
        ({"tz": "Mars/Olympus"}, "json validation error: tz is not a valid timezone"),
        ({"unique": ["colour"]}, "json validation error: an item in 'unique' has unexpected value"),
        ({"channels": "nope"}, "invalid channel identifier: nope"),
        ({"manual_resume": "yes"}, "json validation error: manual_resume is not a boolean"),
        ({"methods": "POST"}, "json validation error: methods is not supported by Heartfly (only '')"),
        ({"schedule": "every day"}, "json validation error: schedule is not a valid cron expression"),
        ({"slug": "backup"}, "json validation error: slug 'backup' is taken by another check"),
    ]
    for body, error in cases:
        resp = await client.post("/api/v3/checks/", json=body, headers=rw(key))
        assert resp.status == 400, body
        assert (await resp.json())["error"].startswith(error), (body, await resp.text())
    bad_cron = await client.post("/api/v3/checks/", json={"slug": "x", "schedule": "0 0 31 2 *"}, headers=rw(key))
    assert bad_cron.status == 400
    assert (await bad_cron.json())["error"] == (
        'json validation error: schedule is not a valid cron expression ("0 0 31 2 *" never fires (no such date))'
    )  # the field sent, not the config's table (checks.x.cron) that no caller wrote
    out_of_range = await client.post("/api/v3/checks/", json={"slug": "x", "schedule": "61 * * * *"}, headers=rw(key))
    assert (await out_of_range.json())["error"].startswith("json validation error: schedule is not a valid cron")
    garbage = await client.post("/api/v3/checks/", data=b"{not json", headers=rw(key))
    assert garbage.status == 400 and await garbage.json() == {"error": "could not parse request body"}
    listed = await (await client.get("/api/v3/checks/", headers=rw(key))).json()
    assert sorted(c["slug"] for c in listed["checks"]) == ["backup", "report"]


async def test_the_files_checks_are_read_only_but_pause_and_resume(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    update = await client.post(f"/api/v3/checks/{FILE_KEY}", json={"desc": "x"}, headers=rw(key))
    assert update.status == 403 and "heartfly.toml" in (await update.json())["error"]
    assert (await client.delete(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).status == 403
    not_paused = await client.post(f"/api/v3/checks/{FILE_KEY}/resume", headers=rw(key))
    assert not_paused.status == 409 and await not_paused.text() == "check is not paused"
    paused = await client.post(f"/api/v3/checks/{FILE_KEY}/pause", headers=rw(key))
    assert paused.status == 200 and (await paused.json())["status"] == "paused"
    resumed = await client.post(f"/api/v3/checks/{FILE_KEY}/resume", headers=rw(key))
    assert resumed.status == 200 and (await resumed.json())["status"] == "new"
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await client.get(f"/api/v3/checks/{unknown}", headers=rw(key))).status == 404
    assert (await client.post(f"/api/v3/checks/{unknown}/pause", headers=rw(key))).status == 404


async def test_heartflys_own_api_keeps_its_paths_beside_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    config = load_config(_path(client))
    own = await client.get("/api/v1/checks/backup", headers=bearer(config))
    assert own.status == 200 and (await own.json())["name"] == "backup"
    assert (await own.json())["origin"] == "file"
    assert "uuid" not in await own.json()  # a uuid can be the ping key, and `public = true` opens these reads
    await made(client, key, name="Made here", timeout=600)
    shown = await (await client.get("/api/v1/checks/made-here", headers=bearer(config))).json()
    assert shown["origin"] == "api"
    assert (await client.get("/api/v1/checks", headers=bearer(config))).status == 200
    theirs = await client.get(f"/api/v1/checks/{FILE_KEY}", headers=rw(key))
    assert theirs.status == 200 and (await theirs.json())["slug"] == "backup"
    paused = await client.post("/api/v1/checks/backup/pause", headers=bearer(config))
    assert paused.status == 200 and (await paused.json())["state"] == "paused"
    assert (await client.post(f"/api/v1/checks/{FILE_KEY}/resume", headers=rw(key))).status == 200


async def test_paths_without_their_final_slash_answer_as_healthchecks_redirect_does(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The Ansible collection asks {api}/checks first (401 is "Failed to login using API token"),
    # then checks, channels, badges, checks/<uuid>/pings and /flips, all without the final slash;
    # Healthchecks (Django) redirects each to the path with it.
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    for v in (1, 2, 3):
        listed = await client.get(f"/api/v{v}/checks?tag=prod", headers=rw(key))
        assert listed.status == 200 and [c["slug"] for c in (await listed.json())["checks"]] == ["backup"]
        assert listed.headers["Access-Control-Allow-Origin"] == "*"
        channels = await (await client.get(f"/api/v{v}/channels", headers=rw(key))).json()
        assert [c["name"] for c in channels["channels"]] == ["journal"]
        assert "*" in (await (await client.get(f"/api/v{v}/badges", headers=rw(key))).json())["badges"]
        shown = await (await client.get(f"/api/v{v}/checks/{FILE_KEY}/pings", headers=rw(key))).json()
        assert [p["type"] for p in shown["pings"]] == ["success"]
        assert "flips" in await (await client.get(f"/api/v{v}/checks/{FILE_KEY}/flips", headers=rw(key))).json()
        assert (await client.get(f"/api/v{v}/status")).status == 200
    in_body = await client.post("/api/v1/checks", json={"name": "No slash", "api_key": key})
    assert in_body.status == 201 and (await in_body.json())["slug"] == "no-slash"
    # Heartfly's own API keeps these paths for its token
    config = load_config(_path(client))
    own = await client.get("/api/v1/checks", headers=bearer(config))
    assert own.status == 200 and "backup" in [c["name"] for c in await own.json()]
    assert (await client.get("/api/v1/checks")).status == 401
    own_pings = await client.get("/api/v1/checks/backup/pings", headers=bearer(config))
    assert own_pings.status == 200 and [p["kind"] for p in await own_pings.json()] == ["success"]
    assert (await client.get("/api/v1/checks/backup/flips", headers=bearer(config))).status == 200


async def test_a_made_check_is_pinged_by_its_uuid_and_shows_pings_bodies_and_flips(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, name="ETL", timeout=60, grace=60, channels="*")
    uuid = check["uuid"]
    assert (await client.post(f"/ping/{uuid}/fail", data=b"exit 3: disk full")).status == 200
    assert (await client.post(f"/ping/{uuid}", data=b"")).status == 200
    got = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
    assert got["n_pings"] == 2 and got["status"] == "up" and got["channels"] != ""
    pings = (await (await client.get(f"/api/v3/checks/{uuid}/pings/", headers=rw(key))).json())["pings"]
    assert [p["type"] for p in pings] == ["success", "fail"] and pings[0]["body_url"] is None
    body = await client.get("/" + pings[1]["body_url"].split("/", 3)[3], headers=rw(key))
    assert body.status == 200 and await body.text() == "exit 3: disk full"
    other = await client.get(f"/api/v3/checks/{FILE_KEY}/pings/{pings[1]['n']}/body", headers=rw(key))
    assert other.status == 404  # a ping of another check
    flips = (await (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).json())["flips"]
    assert [f["up"] for f in flips] == [1, 0]  # newest first: failed, then back up
    assert (await client.get(f"/api/v3/checks/{uuid}/flips/?seconds=x", headers=rw(key))).status == 400
    blank = await client.get(f"/api/v3/checks/{uuid}/flips/?seconds=&start=", headers=rw(key))
    assert blank.status == 200 and len((await blank.json())["flips"]) == 2  # empty: not given


async def test_a_ping_body_is_served_as_utf_8_text(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    # Without a charset, text/plain is ISO-8859-1 to HTTP clients (requests' .text among them)
    client, key, _ = await start(aiohttp_client, write_config)
    message = "Sauvegarde terminée ✓"
    assert (await client.post(f"/ping/{FILE_KEY}", data=message.encode())).status == 200
    pings = (await (await client.get(f"/api/v3/checks/{FILE_KEY}/pings/", headers=rw(key))).json())["pings"]
    body = await client.get(f"/api/v3/checks/{FILE_KEY}/pings/{pings[0]['n']}/body", headers=rw(key))
    assert body.status == 200 and body.content_type == "text/plain" and body.charset == "utf-8"
    assert (await body.read()).decode(body.charset) == message


async def test_a_check_made_under_the_name_of_a_deleted_paused_one_is_watched_not_paused(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A new check is new: the name's history, and a pause among it, goes by the old row's tombstone
    # name; taken up, the pause would have left the new check deaf to its pings, never to alert.
    config = write_config(CHECKS, server=SERVER + "auto_provision = true")
    client: Client = await aiohttp_client(create_app(config))
    key = (config.path.parent / "hc-key").read_text().strip()
    for name in ("nightly", "renamed", "by-ping"):
        first = await made(client, key, name=name, timeout=600)
        assert (await client.post(f"/api/v3/checks/{first['uuid']}/pause", headers=rw(key))).status == 200
        assert (await client.delete(f"/api/v3/checks/{first['uuid']}", headers=rw(key))).status == 200
    again = await made(client, key, name="nightly", timeout=600)
    other = await made(client, key, name="other", timeout=600)
    renamed = await client.post(f"/api/v3/checks/{other['uuid']}", json={"slug": "renamed"}, headers=rw(key))
    assert again["status"] == "new" and (await renamed.json())["status"] == "new"
    assert (await client.get(f"/ping/{PING_KEY}/by-ping?create=1")).status == 201
    for slug in ("nightly", "renamed"):
        assert (await client.get(f"/ping/{PING_KEY}/{slug}")).status == 200
    listed = await (await client.get("/api/v3/checks/", headers=rw(key))).json()
    shown = {c["slug"]: c["status"] for c in listed["checks"]}
    assert [shown["nightly"], shown["renamed"], shown["by-ping"]] == ["up", "up", "up"]


async def test_a_pause_through_healthchecks_api_ends_no_more_at_an_end_set_before(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' pause is until a resume; the end a pause through Heartfly's API gave was kept,
    # and the check resumed then, under a script that had paused it "for good".
    client, key, _ = await start(aiohttp_client, write_config)
    config = load_config(_path(client))
    timed = await client.post("/api/v1/checks/backup/pause?until=2h", headers=bearer(config))
    assert (await timed.json())["paused_until"] is not None
    again = await client.post(f"/api/v3/checks/{FILE_KEY}/pause", headers=rw(key))
    assert again.status == 200 and (await again.json())["status"] == "paused"
    shown = await (await client.get("/api/v1/checks/backup", headers=bearer(config))).json()
    assert shown["state"] == "paused" and shown["paused_until"] is None


async def test_a_check_made_through_the_api_is_resumed_by_its_next_ping_unless_made_with_manual_resume(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' default: a script pauses a check for a deploy and the job's next ping ends the
    # pause. Left paused, the check would never alert again.
    client, key, _ = await start(aiohttp_client, write_config)
    config = load_config(_path(client))
    auto = await made(client, key, slug="deploy-job", timeout=3600)
    manual = await made(client, key, slug="manual-job", timeout=3600, manual_resume=True)
    assert (auto["manual_resume"], manual["manual_resume"]) == (False, True)
    for made_check in (auto, manual):
        assert (await client.post(f"/api/v3/checks/{made_check['uuid']}/pause", headers=rw(key))).status == 200
    timed = await client.post("/api/v1/checks/deploy-job/pause?until=2h", headers=bearer(config))
    assert (await timed.json())["paused_until"] is not None
    for made_check in (auto, manual):
        assert (await client.get(URL(made_check["ping_url"]).path)).status == 200
    listed = (await (await client.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
    assert {c["slug"]: c["status"] for c in listed if c["slug"] in ("deploy-job", "manual-job")} == {
        "deploy-job": "up",
        "manual-job": "paused",
    }
    flips = await (await client.get("/api/v1/checks/deploy-job/flips", headers=bearer(config))).json()
    assert [(f["old"], f["new"], f["detail"]) for f in flips][:2] == [
        ("new", "up", ""),
        ("paused", "new", "resumed by a ping (resume_on_ping)"),
    ]
    rt = client.app[RUNTIME] if client.app is not None else None
    assert rt is not None and rt.reader is not None
    assert await rt.reader.read_meta_prefix("pause_until:deploy-job") == {}  # its end went with the pause
    switched = await client.post(f"/api/v3/checks/{auto['uuid']}", json={"manual_resume": True}, headers=rw(key))
    assert (await switched.json())["manual_resume"] is True


async def test_a_made_check_survives_a_restart_and_a_reload_with_its_uuid(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, name="Disk usage", tags="ops", timeout=300)
    app = client.app
    assert app is not None
    count, problems = await control.reload_config(app)
    assert problems == [] and count == 3
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config)
    listed = (await (await again.get("/api/v3/checks/?tag=ops", headers=rw(key))).json())["checks"]
    assert [(c["slug"], c["uuid"], c["name"], c["timeout"]) for c in listed] == [
        ("disk-usage", check["uuid"], "Disk usage", 300)
    ]
    report = next(c for c in (await (await again.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
                  if c["slug"] == "report")  # fmt: skip
    assert report["uuid"] == check_uuid(load_config(_path(again)).checks["report"])  # uuid5 of its name


def _path(client: Client) -> Path:
    app = client.app
    assert app is not None
    path: Path = app[RUNTIME].config.path
    return path


async def test_a_name_in_the_file_and_made_through_the_api_is_a_clear_error(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    await made(client, key, slug="nightly", timeout=3600)
    path = _path(client)
    path.write_text(path.read_text() + f'\n[checks.nightly]\nkey = "{new_key()}"\nevery = "1d"\n')
    app = client.app
    assert app is not None
    count, problems = await control.reload_config(app)
    assert count == 0 and len(problems) == 1
    assert problems[0].startswith("checks.nightly: is defined in") and "heartfly export nightly" in problems[0]
    await client.close()
    with pytest.raises(ConfigError):  # a start meets the same clash (the daemon exits 2 with it)
        await aiohttp_client(create_app(load_config(path)))


async def test_an_update_renames_only_by_slug_and_keeps_the_uuid(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, name="Sync", timeout=600)
    retitled = await client.post(f"/api/v1/checks/{check['uuid']}", json={"name": "Sync users"}, headers=rw(key))
    assert retitled.status == 200
    assert (await retitled.json())["slug"] == "sync" and (await retitled.json())["name"] == "Sync users"
    renamed = await client.post(f"/api/v3/checks/{check['uuid']}", json={"slug": "user-sync"}, headers=rw(key))
    got = await renamed.json()
    assert renamed.status == 200 and got["slug"] == "user-sync" and got["uuid"] == check["uuid"]
    assert (await client.get(f"/ping/{check['uuid']}")).status == 200


async def test_two_creates_of_one_slug_at_once_make_one_check_and_refuse_the_other(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    answers = await asyncio.gather(
        *(client.post("/api/v3/checks/", json={"slug": "dup", "timeout": t}, headers=rw(key)) for t in (600, 1200))
    )
    assert sorted(a.status for a in answers) == [201, 400]
    made_one = next(a for a in answers if a.status == 201)
    listed = (await (await client.get("/api/v3/checks/?slug=dup", headers=rw(key))).json())["checks"]
    assert [c["uuid"] for c in listed] == [(await made_one.json())["uuid"]]  # the one answered 201 is the one kept


async def test_an_upsert_that_finds_a_files_check_as_asked_answers_200_and_one_that_would_change_it_403(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    same = await client.post(
        "/api/v3/checks/", json={"name": "backup", "timeout": 3600, "unique": ["name"]}, headers=rw(key)
    )
    assert same.status == 200 and (await same.json())["uuid"] == FILE_KEY
    other = await client.post(
        "/api/v3/checks/", json={"name": "backup", "timeout": 60, "unique": ["name"]}, headers=rw(key)
    )
    assert other.status == 403


async def test_an_upsert_whose_schedule_differs_only_in_spacing_finds_the_check_as_asked(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The file's "0 3 * * *" and a script's "0  3 * * *" are one schedule: the upsert was a 403
    # (the file's check "would change"), and a stored check's was written again at every run.
    client, key, _ = await start(aiohttp_client, write_config)
    body = {"name": "report", "schedule": " 0  3 * *\t* ", "tz": "Europe/Berlin", "unique": ["name"]}
    same = await client.post("/api/v3/checks/", json=body, headers=rw(key))
    assert same.status == 200 and (await same.json())["schedule"] == "0 3 * * *"


async def test_flips_are_bounded_by_start_end_and_seconds(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    uuid = (await made(client, key, slug="bounded", timeout=60))["uuid"]
    for event in ("/fail", ""):
        assert (await client.get(f"/ping/{uuid}{event}")).status == 200
    url = f"/api/v3/checks/{uuid}/flips/"
    assert len((await (await client.get(url, headers=rw(key))).json())["flips"]) == 2
    for query in ("?start=9999999999", "?end=1", "?seconds=1&end=2"):
        assert (await (await client.get(url + query, headers=rw(key))).json())["flips"] == [], query
    assert (await client.get(url + "?slug=", headers=rw(key))).status == 200


async def test_a_read_the_database_refuses_is_a_500_here_too_and_an_outage_a_503(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app's 503 middleware lets a StoreFault (a right taken away, a query's mistake) through
    # as a 500 with its traceback; Healthchecks' API turned every StoreError into a silent 503.
    from heartfly.store.api import StoreError, StoreFault

    client, key, _ = await start(aiohttp_client, write_config)
    uuid = (await made(client, key, slug="refused", timeout=60))["uuid"]
    reader = client.app[RUNTIME].reader
    for error, status in ((StoreFault("permission denied for table flips"), 500), (StoreError("gone"), 503)):

        async def refused(*args: Any, error: Exception = error, **kwargs: Any) -> Any:
            raise error

        monkeypatch.setattr(reader, "read_hc_flips", refused)
        assert (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).status == status, error


async def test_a_stored_check_that_no_longer_fits_the_file_is_left_out_at_start_and_logged(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    await made(client, key, slug="alerts-to-journal", timeout=600, channels="journal")
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config, body=WITHOUT_CHANNEL)
    listed = (await (await again.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
    assert sorted(c["slug"] for c in listed) == ["backup", "report"]  # served without it
    assert "checks.alerts-to-journal.channels: no channel journal" in caplog.text
    other = await again.post("/api/v3/checks/", json={"slug": "still-works", "timeout": 600}, headers=rw(key))
    assert other.status == 201  # the left-out one does not block other changes


@pytest.mark.both_stores
async def test_a_stored_check_left_out_at_a_start_is_not_logged_as_no_longer_in_the_config(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # Beside "a check made through the API is left out (fix the file, or delete it through the
    # API)", the engine said "check alerts-to-journal is no longer in the config", as of a table
    # taken out of the file: the words a reload says of such a check are said at a start too.
    client, key, _ = await start(aiohttp_client, write_config)
    await made(client, key, slug="alerts-to-journal", timeout=600, channels="journal")
    await client.close()
    caplog.clear()
    with caplog.at_level("INFO"):
        await start(aiohttp_client, write_config, body=WITHOUT_CHANNEL)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("check alerts-to-journal")]
    assert said == ["check alerts-to-journal (made through the API) is no longer served; its history is kept"]


async def test_a_stored_check_left_out_is_updated_to_fit_the_file_or_deleted_through_the_api(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # As docs/healthchecks.md and the start's log line say ("fix the file, or delete it through
    # the API"): both answered 404, so only putting the channel back was left.
    client, key, _ = await start(aiohttp_client, write_config)
    fits = await made(client, key, slug="to-fix", timeout=600, channels="journal")
    gone = await made(client, key, slug="to-delete", timeout=600, channels="journal")
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config, body=WITHOUT_CHANNEL + '\n[channels.pager]\ntype = "log"\n')
    still = await again.post(f"/api/v3/checks/{fits['uuid']}", json={"grace": 120}, headers=rw(key))
    assert still.status == 400 and "no channel journal" in await still.text()  # does not fit yet: why
    fixed = await again.post(f"/api/v3/checks/{fits['uuid']}", json={"channels": "pager"}, headers=rw(key))
    assert fixed.status == 200, await fixed.text()
    shown = await fixed.json()
    assert (shown["uuid"], shown["slug"], shown["channels"]) == (fits["uuid"], "to-fix", hcshape.channel_id("pager"))
    deleted = await again.delete(f"/api/v3/checks/{gone['uuid']}", headers=rw(key))
    assert deleted.status == 200  # as hc_openapi's LeftOutCheck: all a check not served has to show
    assert await deleted.json() == {"slug": "to-delete", "uuid": gone["uuid"], "channels": ""}
    assert (await again.delete(f"/api/v3/checks/{gone['uuid']}", headers=rw(key))).status == 404
    listed = (await (await again.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
    assert sorted(c["slug"] for c in listed) == ["backup", "report", "to-fix"]
    app = again.app
    assert app is not None
    assert await control.reload_config(app) == (3, [])  # nothing is left out any more


@pytest.mark.both_stores
async def test_a_stored_check_left_out_is_a_409_by_its_uuid_not_a_404_as_its_update_and_delete_find_it(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A GET by its uuid answered 404 while an update or a delete by the same uuid acted on it: a
    # Terraform-style tool read 404 as "deleted outside", dropped it from its state and made it
    # again, a 400 ("slug ... is taken") it could not get past. Its reads say why, as a conflict.
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, slug="to-fix", timeout=600, channels="journal")
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config, body=WITHOUT_CHANNEL)
    for method, path in (
        ("GET", ""),
        ("GET", "/pings/"),
        ("GET", "/flips/"),
        ("POST", "/pause"),
        ("POST", "/resume"),
    ):
        resp = await again.request(method, f"/api/v3/checks/{check['uuid']}{path}", headers=rw(key))
        assert resp.status == 409, (method, path, resp.status)
        error = (await resp.json())["error"]
        assert "to-fix" in error and "no longer fits" in error, error
    other = f"{'0' * 8}-0000-4000-8000-{'0' * 12}"
    assert (await again.get(f"/api/v3/checks/{other}", headers=rw(key))).status == 404  # no such check: as before
    deleted = await again.delete(f"/api/v3/checks/{check['uuid']}", headers=rw(key))
    assert deleted.status == 200
    assert (await again.get(f"/api/v3/checks/{check['uuid']}", headers=rw(key))).status == 404  # gone now


async def test_an_upsert_that_matches_a_stored_check_left_out_updates_it_rather_than_calling_its_slug_taken(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A create with `unique` is Healthchecks' upsert (what playbooks send to keep a check as
    # declared): one matching the left-out check is its update, the fix docs/healthchecks.md
    # gives. It answered 400 "slug ... is taken by another check", the check it named its own.
    client, key, _ = await start(aiohttp_client, write_config)
    fits = await made(client, key, slug="to-fix", timeout=600, channels="journal")
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config, body=WITHOUT_CHANNEL + '\n[channels.pager]\ntype = "log"\n')
    upsert = {"slug": "to-fix", "timeout": 600, "unique": ["slug", "timeout"]}
    still = await again.post("/api/v3/checks/", json=upsert, headers=rw(key))
    assert still.status == 400 and "no channel journal" in await still.text()  # does not fit yet: why
    fixed = await again.post("/api/v3/checks/", json={**upsert, "channels": "pager"}, headers=rw(key))
    assert fixed.status == 200, await fixed.text()
    shown = await fixed.json()
    assert (shown["uuid"], shown["slug"], shown["channels"]) == (fits["uuid"], "to-fix", hcshape.channel_id("pager"))
    other = await again.post("/api/v3/checks/", json={**upsert, "timeout": 60}, headers=rw(key))
    assert other.status == 400 and "is taken" in await other.text()  # no match: a create, refused as before


async def test_a_stored_check_left_out_because_the_file_took_its_key_under_another_name_is_deleted_by_its_uuid(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # `heartfly export nightly`, pasted into the file as [checks.nightly-job], then a restart:
    # the API's copy is left out (its key is the file's check's now), and the start's log says
    # "delete it through the API". Its uuid named the file's check, so the delete was a 403 and
    # nothing could clear it (its name stayed taken too).
    client, key, _ = await start(aiohttp_client, write_config)
    nightly = await made(client, key, slug="nightly", timeout=600)
    app = client.app
    assert app is not None
    table = stored_checks.to_toml("nightly-job", app[RUNTIME].stored["nightly"].table)
    await client.close()
    again, _, _ = await start(aiohttp_client, write_config, body=CHECKS + "\n" + table)
    deleted = await again.delete(f"/api/v3/checks/{nightly['uuid']}", headers=rw(key))
    assert deleted.status == 200, await deleted.text()
    assert await deleted.json() == {"slug": "nightly", "uuid": nightly["uuid"], "channels": ""}
    refused = await again.delete(f"/api/v3/checks/{nightly['uuid']}", headers=rw(key))
    assert refused.status == 403 and "nightly-job is defined in" in await refused.text()  # the file's, as before
    listed = (await (await again.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
    assert {c["slug"]: c["uuid"] for c in listed}["nightly-job"] == nightly["uuid"]
    assert (await again.post("/api/v3/checks/", json={"slug": "nightly"}, headers=rw(key))).status == 201


async def test_a_stored_check_left_out_keeps_its_name_no_create_rename_or_ping_takes_its_place(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Left out, it is still the API's, back once its channel is (docs/healthchecks.md). A create, a
    # rename or a ping's ?create=1 under its name was put in its place: its key, so its uuid and its
    # jobs' ping URL, gone without a word, and its history tombstoned.
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, slug="alerts-to-journal", timeout=600, channels="journal")
    other = await made(client, key, slug="other", timeout=600, channels="")
    await client.close()
    config = write_config(WITHOUT_CHANNEL, server=SERVER + "auto_provision = true\n")
    again: Client = await aiohttp_client(create_app(config))
    created = await again.post("/api/v3/checks/", json={"slug": "alerts-to-journal", "timeout": 60}, headers=rw(key))
    assert created.status == 400 and "is taken" in await created.text()
    renamed = await again.post(f"/api/v3/checks/{other['uuid']}", json={"slug": "alerts-to-journal"}, headers=rw(key))
    assert renamed.status == 400 and "is taken" in await renamed.text()
    assert (await again.get(f"/ping/{PING_KEY}/alerts-to-journal?create=1")).status == 404
    await again.close()
    back, _, _ = await start(aiohttp_client, write_config)  # the channel put back
    listed = {c["slug"]: c for c in (await (await back.get("/api/v3/checks/", headers=rw(key))).json())["checks"]}
    assert listed["alerts-to-journal"]["uuid"] == check["uuid"] and listed["alerts-to-journal"]["timeout"] == 600
    assert listed["other"]["uuid"] == other["uuid"]


async def test_two_pings_that_auto_provision_one_slug_at_once_make_it_once(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(CHECKS, server=SERVER + "auto_provision = true\n")
    client: Client = await aiohttp_client(create_app(config))
    answers = await asyncio.gather(*(client.get(f"/ping/{PING_KEY}/raced?create=1") for _ in range(2)))
    assert sorted(a.status for a in answers) == [200, 201]


async def test_requests_at_once_that_make_one_unique_check_make_it_once(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Provisioning tools (Terraform, a fleet's boot scripts) send them in parallel.
    client, key, _ = await start(aiohttp_client, write_config)
    for body in ({"name": "nightly", "timeout": 600, "unique": ["name"]}, {"tags": "host-17 db", "unique": ["tags"]}):
        answers = await asyncio.gather(*(client.post("/api/v3/checks/", json=body, headers=rw(key)) for _ in range(3)))
        assert sorted(a.status for a in answers) == [200, 200, 201], [a.status for a in answers]
        assert len({(await a.json())["uuid"] for a in answers}) == 1
    listed = (await (await client.get("/api/v3/checks/?tag=host-17", headers=rw(key))).json())["checks"]
    assert len(listed) == 1


async def test_changes_at_once_to_one_check_are_all_kept(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    uuid = (await made(client, key, slug="sync", timeout=600))["uuid"]
    for n in range(8):
        tags, grace = await asyncio.gather(
            client.post(f"/api/v3/checks/{uuid}", json={"tags": f"t{n}"}, headers=rw(key)),
            client.post(f"/api/v3/checks/{uuid}", json={"grace": 60 + n}, headers=rw(key)),
        )
        assert (tags.status, grace.status) == (200, 200)
        got = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
        assert (got["tags"], got["grace"]) == (f"t{n}", 60 + n)


async def test_a_unique_create_racing_a_ping_that_auto_provisions_the_same_slug_finds_the_made_check(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A fleet's boot script makes its check (unique by name) while its first cron run already
    # pings with ?create=1: both must end with the one check, neither with an error.
    config = write_config(CHECKS, server=SERVER + "auto_provision = true\n")
    app = create_app(config)
    client: Client = await aiohttp_client(app)
    key = (config.path.parent / "hc-key").read_text().strip()
    held = app[control.CONTROL].reload_lock
    await held.acquire()  # both requests decide, then wait here to store: the ping's first
    ping = asyncio.ensure_future(client.get(f"/ping/{PING_KEY}/fleet-boot?create=1"))
    for _ in range(200):  # until the ping waits to store (it holds the API's lock then), 2 s at most
        if app[control.CONTROL].api_writes.locked():
            break
        await asyncio.sleep(0.01)
    made = asyncio.ensure_future(
        client.post("/api/v3/checks/", json={"name": "fleet-boot", "unique": ["name"]}, headers=rw(key))
    )
    await asyncio.sleep(0.05)
    held.release()
    pinged, answer = await ping, await made
    assert pinged.status == 201
    assert answer.status == 200, await answer.text()  # found, as Healthchecks answers an existing unique match
    listed = (await (await client.get("/api/v3/checks/", headers=rw(key))).json())["checks"]
    assert [c["slug"] for c in listed].count("fleet-boot") == 1


async def test_text_with_lone_surrogates_is_stored_replaced_and_the_dashboard_still_shows_the_check(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Valid JSON; stored as it came, it made the index and the check's page a 500 until deleted.
    client, key, _ = await start(aiohttp_client, write_config)
    made = await client.post(
        "/api/v3/checks/", data='{"name": "sur", "desc": "\\ud800 x", "tags": "t\\udc80"}', headers=rw(key)
    )
    assert made.status == 201
    shown = await made.json()
    assert (shown["desc"], shown["tags"]) == ("\ufffd x", "t\ufffd")
    auth = bearer(client.app[RUNTIME].config)
    assert (await client.get("/", headers=auth)).status == 200
    assert (await client.get("/checks/sur", headers=auth)).status == 200


@pytest.mark.parametrize("bound", ["seconds", "start", "end"])
async def test_a_flips_bound_too_long_for_a_number_is_a_400(
    aiohttp_client: Any, write_config: ConfigWriter, bound: str
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    answer = await client.get(f"/api/v3/checks/{FILE_KEY}/flips/?{bound}=" + "1" * 5000, headers=rw(key))
    assert answer.status == 400  # int() refuses 4,300 digits and more: it was a 500


async def test_a_body_that_does_not_match_its_content_encoding_is_a_400(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    answer = await client.post(
        "/api/v3/checks/", data=b'{"name": "x"}', headers={**rw(key), "Content-Encoding": "gzip"}
    )
    assert answer.status == 400
    assert (await answer.json())["error"].startswith("cannot read the body")


async def test_a_body_that_never_finishes_is_answered_408_as_a_pings_is(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No key is needed to hold a handler: it may be in the body, which is read first.
    monkeypatch.setattr(pings, "BODY_TIMEOUT", 0.5)
    client, _, _ = await start(aiohttp_client, write_config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        head = "POST /api/v3/checks/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        writer.write(head.encode() + b'{"na')
        await writer.drain()
        assert b" 408 " in await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback_in_the_log(tmp_path: Path) -> None:
    config = tmp_path / "heartfly.toml"
    config.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndatabase = "h.db"\napi_token_file = "tok"\nhc_api_key_file = "hc-key"\n'
        f'[checks.backup]\nkey = "{FILE_KEY}"\nevery = "1h"\n'
    )
    with Server(config) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b'POST /api/v3/checks/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"na')
            time.sleep(0.3)
        time.sleep(1.0)
        assert "Traceback" not in server.log()


async def test_a_lone_surrogate_a_version_before_kept_in_the_database_no_longer_breaks_the_dashboard(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(CHECKS, server=SERVER)
    with monkeypatch.context() as before:
        before.setattr(hcshape, "storable", lambda text: text)  # the version that stored it as it came
        client = await aiohttp_client(create_app(config))
        key = (config.path.parent / "hc-key").read_text().strip()
        made = await client.post("/api/v3/checks/", data='{"name": "sur", "desc": "\\ud800 x"}', headers=rw(key))
        assert made.status == 201
        await client.close()
    client = await aiohttp_client(create_app(config))  # upgraded
    assert client.app[RUNTIME].stored["sur"].table["description"] == "\ufffd x"
    assert (await client.get("/", headers=bearer(config))).status == 200
    assert (await client.get("/checks/sur", headers=bearer(config))).status == 200


async def test_a_failure_that_makes_a_check_under_the_name_of_a_deleted_paused_one_takes_it_down(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The ping that makes the check is its first: the old check's pause (and its resumed_at) are
    # not the new one's, and the failure must not be taken for one sent during a pause.
    config = write_config(CHECKS, server=SERVER + "auto_provision = true")
    client: Client = await aiohttp_client(create_app(config))
    key = (config.path.parent / "hc-key").read_text().strip()
    first = await made(client, key, name="by-ping", timeout=600)
    assert (await client.post(f"/api/v3/checks/{first['uuid']}/pause", headers=rw(key))).status == 200
    assert (await client.delete(f"/api/v3/checks/{first['uuid']}", headers=rw(key))).status == 200
    assert (await client.get(f"/ping/{PING_KEY}/by-ping/fail?create=1")).status == 201
    listed = await (await client.get("/api/v3/checks/", headers=rw(key))).json()
    assert {c["slug"]: c["status"] for c in listed["checks"]}["by-ping"] == "down"


async def test_the_event_loop_turns_while_a_long_list_of_checks_is_made(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100k checks were seconds of Python and 95 MB of JSON in one turn of the loop: no ping answered meanwhile.
    body = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["t"]\n' for i in range(2500))
    client, key, _ = await start(aiohttp_client, write_config, body)
    turned = asyncio.Event()
    seen: list[bool] = []  # at each check shown: whether the loop has turned since the first one
    show = hcapi._shown

    def watching(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if not seen:
            asyncio.get_running_loop().call_soon(turned.set)
        seen.append(turned.is_set())
        return show(*args, **kwargs)

    monkeypatch.setattr(hcapi, "_shown", watching)
    resp = await client.get("/api/v3/checks/?tag=t", headers=rw(key))
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert len((await resp.json())["checks"]) == 2500
    assert any(seen)


async def _history(client: Client, key: str, uuid: str) -> tuple[str, int, list[Any]]:
    got = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
    flips = (await (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).json())["flips"]
    return got["status"], got["n_pings"], flips


@pytest.mark.both_stores
async def test_a_check_deleted_and_made_again_under_its_name_is_new_without_the_old_ones_history(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Terraform and Ansible delete and make a check again under one name: it came back down, with
    # the old check's pings and flips, and its first ping told a recovery nobody had waited for.
    client, key, _ = await start(aiohttp_client, write_config)
    first = await made(client, key, name="nightly", timeout=600)
    assert (await client.get(f"/ping/{first['uuid']}/fail")).status == 200
    assert (await _history(client, key, first["uuid"]))[0] == "down"
    assert (await client.delete(f"/api/v3/checks/{first['uuid']}", headers=rw(key))).status == 200
    again = await made(client, key, name="nightly", timeout=600)
    assert await _history(client, key, again["uuid"]) == ("new", 0, [])
    assert (await client.get(f"/ping/{again['uuid']}")).status == 200
    await client.close()
    restarted, _, _ = await start(aiohttp_client, write_config)  # the database says the same
    status, n_pings, flips = await _history(restarted, key, again["uuid"])
    assert (status, n_pings) == ("up", 1) and all(flip["up"] == 1 for flip in flips)


async def test_a_check_deleted_through_the_api_is_not_logged_as_removed_from_the_config(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # The log said "check nightly was removed from the config" beside "deleted through the API":
    # an operator looked for it in a file it was never in.
    client, key, _ = await start(aiohttp_client, write_config)
    uuid = (await made(client, key, name="nightly", timeout=600))["uuid"]
    with caplog.at_level("INFO"):
        assert (await client.delete(f"/api/v3/checks/{uuid}", headers=rw(key))).status == 200
    said = [r.getMessage() for r in caplog.records if "nightly" in r.getMessage()]
    assert said == [
        "check nightly (made through the API) is no longer served; its history is kept",
        "check nightly: deleted through the API",
    ]


@pytest.mark.both_stores
async def test_a_renamed_check_keeps_its_history_and_one_made_under_its_old_name_is_new(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    check = await made(client, key, name="nightly", timeout=600)
    assert (await client.get(f"/ping/{check['uuid']}/fail")).status == 200
    renamed = await client.post(f"/api/v3/checks/{check['uuid']}", json={"slug": "nightly-db"}, headers=rw(key))
    assert (await renamed.json())["slug"] == "nightly-db"
    status, n_pings, flips = await _history(client, key, check["uuid"])
    assert (status, n_pings, [flip["up"] for flip in flips]) == ("down", 1, [0])
    other = await made(client, key, name="nightly", timeout=600)
    assert await _history(client, key, other["uuid"]) == ("new", 0, [])
    await client.close()
    restarted, _, _ = await start(aiohttp_client, write_config)
    assert (await _history(restarted, key, check["uuid"]))[:2] == ("down", 1)
    assert await _history(restarted, key, other["uuid"]) == ("new", 0, [])


def test_stored_checks_tell_renamed_deleted_and_made_again_apart() -> None:
    def made_at(at: float, key: str) -> StoredCheck:
        return StoredCheck("x", "api", {"key": key, "every": "1d"}, at)

    a, b, c = made_at(1.0, "ka"), made_at(2.0, "kb"), made_at(3.0, "kc")
    changed = StoredCheck("x", "api", {"key": "ka", "every": "2d"}, 1.0)
    assert stored_checks.changes({"a": a}, {"a": changed}) == ({}, set())  # an update
    assert stored_checks.changes({"a": a, "b": b}, {"z": a, "b": b}) == ({"z": "a"}, set())
    assert stored_checks.changes({"a": a}, {}) == ({}, set())  # deleted: its history stays with its name
    assert stored_checks.changes({}, {"a": a}) == ({}, {"a"})  # made
    assert stored_checks.changes({"a": a}, {"a": c}) == ({}, {"a"})  # deleted and made again meanwhile
    assert stored_checks.changes({"a": a, "b": b}, {"b": a, "c": b}) == ({"b": "a", "c": "b"}, set())
    assert stored_checks.changes({"a": a}, {"a": c, "z": a}) == ({"z": "a"}, {"a"})  # renamed, then a new one
    assert stored_checks.changes({"a": a, "b": b}, {"a": b, "b": a}) == ({"a": "b", "b": "a"}, set())  # swapped


async def test_last_ping_is_the_last_success_or_failure_as_in_healthchecks_not_a_start_or_log(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' last_ping moves on success and fail pings only: a job that started (or logged)
    # and then hung still shows when it last finished.
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    finished = hcshape.iso(clock.now())
    clock.advance(120)
    assert (await client.post(f"/ping/{FILE_KEY}/log", data=b"step 2 of 3")).status == 200
    clock.advance(60)
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    got = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert got["started"] is True and got["last_ping"] == finished
    clock.advance(60)
    assert (await client.get(f"/ping/{FILE_KEY}/fail")).status == 200
    got = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert got["status"] == "down" and got["last_ping"] == hcshape.iso(clock.now())


async def test_the_badges_json_and_shields_urls_answer_in_healthchecks_shapes(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' "json" badge is {"status", "total", "grace", "down"}; its "shields" one a
    # shields.io endpoint whose message is up or down ("late" too in the 3-state ones)
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/fail")).status == 200
    listed = (await (await client.get("/api/v3/badges/", headers=rw(key))).json())["badges"]
    prod = {fmt: "/" + url.split("/", 3)[3] for fmt, url in listed["prod"].items()}
    for fmt in ("json", "json3"):
        resp = await client.get(prod[fmt])
        assert resp.status == 200 and await resp.json() == {"status": "down", "total": 1, "grace": 0, "down": 1}
    shields = await (await client.get(prod["shields3"])).json()
    assert shields == {"schemaVersion": 1, "label": "backup", "message": "down", "color": "critical"}
    for fmt in ("svg", "svg3"):
        resp = await client.get(prod[fmt])
        assert resp.status == 200 and resp.content_type == "image/svg+xml" and b">down<" in await resp.read()
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    assert await (await client.get(prod["json"])).json() == {"status": "up", "total": 1, "grace": 0, "down": 0}
    assert (await client.get(prod["json"].replace("/2/", "/4/"))).status == 404


async def test_version_1_reports_a_down_check_that_runs_again_as_started_as_healthchecks_does(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' API v2 notes: "if a check is down, but also has recently received a /start
    # signal", v1 says "started"; v2 and v3 say "down" with started: true
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/fail")).status == 200
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    shown = {}
    for version in (1, 2, 3):
        got = await (await client.get(f"/api/v{version}/checks/{FILE_KEY}", headers=rw(key))).json()
        shown[version] = (got["status"], got["started"])
    assert shown == {1: ("started", True), 2: ("down", True), 3: ("down", True)}
    assert (await client.post(f"/api/v1/checks/{FILE_KEY}/pause", headers=rw(key))).status == 200
    paused = await (await client.get(f"/api/v1/checks/{FILE_KEY}", headers=rw(key))).json()
    assert paused["status"] == "paused"


async def test_a_paused_check_is_not_shown_started_as_healthchecks_ends_the_run_at_a_pause(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    paused = await (await client.post(f"/api/v3/checks/{FILE_KEY}/pause", headers=rw(key))).json()
    assert paused["status"] == "paused" and paused["started"] is False and paused["next_ping"] is None
    listed = await (await client.get("/api/v3/checks/?slug=backup", headers=rw(key))).json()
    assert listed["checks"][0]["started"] is False


async def test_a_down_check_has_no_next_ping_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' docs show a down check with "next_ping": null: nothing is expected of it until
    # it is pinged again (a due time past already would read as a ping overdue)
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/fail")).status == 200
    down = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert down["status"] == "down" and down["last_ping"] is not None and down["next_ping"] is None
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    up = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert up["status"] == "up" and up["next_ping"] is not None


async def test_last_duration_is_shown_only_when_the_last_end_closed_a_run_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks clears last_duration at every success or failure and times only one that ends
    # a started run: a later plain ping does not carry an older run's duration
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    clock.advance(30)
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    timed = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert timed["last_duration"] == 30
    clock.advance(30)
    assert (await client.get(f"/ping/{FILE_KEY}/fail")).status == 200
    untimed = await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json()
    assert untimed["status"] == "down" and "last_duration" not in untimed


async def late_and_back(aiohttp_client: Any, write_config: ConfigWriter, runs: int) -> tuple[Client, str, str]:
    """A server whose minutely check flappy failed once, then ran `runs` times, each a little late
    (within grace): up, late, up again. Its client, the API key and flappy's uuid."""
    clock = FakeClock(1_780_000_000.0)
    config = write_config(
        CHECKS + f'\n[checks.flappy]\nkey = "{new_key()}"\nevery = "1m"\ngrace = "1m"\n', server=SERVER
    )
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    ping_key = engine.checks["flappy"].config.key
    assert (await client.get(f"/ping/{ping_key}/fail")).status == 200
    for _ in range(runs):
        assert (await client.get(f"/ping/{ping_key}")).status == 200
        clock.advance(61)
        engine.fire_due(clock.now())  # late: past due, within grace
        # This loop is the timer here, and marks itself alive as the timer does: on PostgreSQL the
        # lease's watchdog, reading a timer silent for 61 s, gave the lease up and pings got 503.
        engine.timer_alive.mark(clock.now())
    return client, key, check_uuid(engine.checks["flappy"].config)


@pytest.mark.both_stores
async def test_flips_list_a_down_behind_a_thousand_late_and_back_changes_they_do_not_show(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A job often a little late (within grace) makes two changes a run that Healthchecks' flips
    # leave out (up to late, back to up): they must not push its real downs out of the answer
    client, key, uuid = await late_and_back(aiohttp_client, write_config, 520)
    engine = client.app[RUNTIME].engine
    assert engine.checks["flappy"].state.status.value == "late"
    flips = (await (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).json())["flips"]
    assert [f["up"] for f in flips] == [1, 0]  # back up, after the failure
    since = f"/api/v3/checks/{uuid}/flips/?start=1780000000"
    windowed = (await (await client.get(since, headers=rw(key))).json())["flips"]
    assert [f["up"] for f in windowed] == [1, 0]


async def test_version_1_reports_a_job_that_started_and_hung_past_its_deadline_as_down_not_started(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' v1 says "started" only while the start is younger than the grace time
    # (get_status: now >= last_start + grace is "down"); a run that hung and made the check miss
    # its deadline is down there, in every version
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    clock.advance(1800)
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    clock.advance(4 * 3600)  # it never finishes: past the due time and its grace
    engine.fire_due(clock.now())
    assert engine.checks["backup"].state.status.value == "down" and engine.checks["backup"].state.runs
    shown = {}
    for version in (1, 2, 3):
        got = await (await client.get(f"/api/v{version}/checks/{FILE_KEY}", headers=rw(key))).json()
        shown[version] = (got["status"], got["started"])
    assert shown == {1: ("down", True), 2: ("down", True), 3: ("down", True)}


async def test_the_healthchecks_badges_are_readable_from_another_origin_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' badge views are @cors("GET"): a status page's script on another site reads the
    # json badge; without the header a browser hands it nothing
    client, key, _ = await start(aiohttp_client, write_config)
    listed = (await (await client.get("/api/v3/badges/", headers=rw(key))).json())["badges"]
    for url in listed["prod"].values():
        resp = await client.get("/" + url.split("/", 3)[3], headers={"Origin": "https://status.example"})
        assert resp.status == 200 and resp.headers.get("Access-Control-Allow-Origin") == "*", url


@pytest.mark.both_stores
async def test_flips_are_read_in_one_statement_however_many_late_and_back_changes_lie_behind_them(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page of 1000 at a time over the changes Healthchecks has no flip for cost a statement per
    # page, each seeking its cursor: a year of a minutely job's up <-> late (a million rows) took
    # minutes, with the server's one read connection held all along (the dashboard waited too)
    client, key, uuid = await late_and_back(aiohttp_client, write_config, 1100)
    db = client.app[RUNTIME].reader.db
    statements: list[str] = []
    real = db.execute_fetchall

    async def counted(sql: str, *args: Any) -> Any:
        statements.append(sql)
        return await real(sql, *args)

    monkeypatch.setattr(db, "execute_fetchall", counted)
    flips = (await (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).json())["flips"]
    assert [f["up"] for f in flips] == [1, 0]
    # (Not housekeeping's count of the history past keep_history, which shares the read connection.)
    read = [sql for sql in statements if "FROM flips" in sql and sql != queries._HISTORY_BEFORE]
    assert len(read) == 1, statements


async def test_a_new_check_that_started_but_never_finished_is_new_with_no_last_ping_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' status moves from "new" at a success or failure only, as last_ping does: a new
    # check's first /start leaves it "new" (v2, v3; v1 "started"), never "up" with no last ping
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/start")).status == 200
    shown = {}
    for version in (1, 2, 3):
        got = await (await client.get(f"/api/v{version}/checks/{FILE_KEY}", headers=rw(key))).json()
        shown[version] = (got["status"], got["started"], got["last_ping"])
    assert shown == {1: ("started", True, None), 2: ("new", True, None), 3: ("new", True, None)}
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    assert (await (await client.get(f"/api/v3/checks/{FILE_KEY}", headers=rw(key))).json())["status"] == "up"


@pytest.mark.parametrize("schedule", [{"schedule": "0 3 * * *", "tz": "UTC"}, {"timeout": 86400}])
async def test_a_job_that_starts_and_hangs_is_down_once_its_start_is_older_than_the_grace_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter, schedule: dict[str, Any]
) -> None:
    # Healthchecks: a started check is down once now >= last_start + grace (get_status, and
    # alert_after = min(next due, last_start) + grace). A nightly cron job made through the API
    # that started and hung was "up" and alerted nobody until the next night's tick plus grace.
    day = 86400.0
    clock = FakeClock(1_780_000_000.0 - 1_780_000_000.0 % day + 3 * 3600)  # 03:00 UTC
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="nightly", grace=3600, **schedule))["uuid"]
    assert (await client.get(f"/ping/{uuid}")).status == 200
    clock.advance(day if "schedule" in schedule else 300)
    assert (await client.get(f"/ping/{uuid}/start")).status == 200
    clock.advance(1800)
    engine.fire_due(clock.now())
    running = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
    assert (running["status"], running["started"]) == ("up", True)  # within its grace
    clock.advance(1801)
    engine.fire_due(clock.now())
    hung = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
    assert hung["status"] == "down"
    assert engine.checks["nightly"].state.reason is not None
    # the bound follows the grace an update gives it
    changed = await client.post(f"/api/v3/checks/{uuid}", json={"grace": 7200}, headers=rw(key))
    assert changed.status == 200
    assert engine.checks["nightly"].config.max_runtime == 7200


async def test_a_grace_no_longer_than_the_defaults_min_runtime_still_makes_a_check(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A check made through the API takes its grace as its max_runtime (Healthchecks' bound on a
    # run); where [defaults] asks every run to take longer than that, it is made without the bound,
    # not refused with a min_runtime its request never gave
    body = CHECKS.replace('channels = ["journal"]', 'channels = ["journal"]\nmin_runtime = "2m"')
    client, key, _ = await start(aiohttp_client, write_config, body)
    engine = client.app[RUNTIME].engine
    resp = await client.post("/api/v3/checks/", json={"slug": "quick", "grace": 60}, headers=rw(key))
    assert resp.status == 201, await resp.text()
    assert engine.checks["quick"].config.max_runtime is None
    await made(client, key, slug="slow", grace=3600)
    assert engine.checks["slow"].config.max_runtime == 3600


@pytest.mark.both_stores
async def test_the_pings_list_does_not_read_the_bodies_it_only_links_to(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The list shows a body_url per ping, not its body: it read the 100 newest bodies whole to
    # tell which had one, 1.6 GB of Python strings with body_limit = "16MiB"
    config = write_config(CHECKS, server=SERVER + 'body_limit = "2MiB"')
    client: Client = await aiohttp_client(create_app(config))
    key = (config.path.parent / "hc-key").read_text().strip()
    body = b"x" * config.server.body_limit
    for _ in range(25):
        assert (await client.post(f"/ping/{FILE_KEY}/log", data=body)).status == 200
    assert (await client.get(f"/ping/{FILE_KEY}")).status == 200
    tracemalloc.start()
    try:
        resp = await client.get(f"/api/v3/checks/{FILE_KEY}/pings/", headers=rw(key))
        pings = (await resp.json())["pings"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p["body_url"] is not None for p in pings] == [False] + [True] * 25
    assert peak < 5 * 1024 * 1024  # 50 MB of bodies were read before


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts the bytes read in /proc/self/io (Linux)")
async def test_the_pings_list_reads_the_rows_it_lists_not_every_kept_one(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Its statement sorted all of a check's kept pings (keep_pings, 1000) by time with method,
    # source and user_agent, which SQLite stores after the body and reaches by reading it whole:
    # 1000 bodies of 20 kB read for the 100 it lists, as the check page's list did (read_pings).
    client, key, _ = await start(aiohttp_client, write_config)
    check_id = client.app[RUNTIME].engine.checks["backup"].id
    now = client.app[RUNTIME].clock.now()
    storeutil.query(
        client.app[RUNTIME].config,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
        " INSERT INTO pings (check_id, at, received_at, kind, body, method)"
        " SELECT ?, ? - 1000 + (i / 2), ? - 1000 + i, 'log', hex(zeroblob(10000)), 'POST' FROM n",
        (check_id, now, now),
    )
    before = storeutil.bytes_read()
    pings = (await (await client.get(f"/api/v3/checks/{FILE_KEY}/pings/", headers=rw(key))).json())["pings"]
    read = storeutil.bytes_read() - before
    config = client.app[RUNTIME].config
    ids = [n for (n,) in storeutil.query(config, "SELECT id FROM pings ORDER BY at DESC, id DESC LIMIT 100")]
    assert [p["n"] for p in pings] == ids  # the newest 100 by event time, ties (the same at) by id
    assert read < 6_000_000, f"{read} bytes read for a list of {len(pings)} pings"


async def test_the_pings_list_shows_each_pings_user_agent_as_healthchecks_does(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Heartfly keeps a ping's User-Agent (its first 200 characters, as Healthchecks does), and the
    # list said "ua": "" for every ping
    client, key, _ = await start(aiohttp_client, write_config)
    assert (await client.get(f"/ping/{FILE_KEY}/start", headers={"User-Agent": "runitor/v1.2.0"})).status == 200
    assert (await client.post(f"/ping/{FILE_KEY}", data=b"done", headers={"User-Agent": "curl/8.5.0"})).status == 200
    pings = (await (await client.get(f"/api/v3/checks/{FILE_KEY}/pings/", headers=rw(key))).json())["pings"]
    assert [(p["type"], p["ua"]) for p in pings] == [("success", "curl/8.5.0"), ("start", "runitor/v1.2.0")]


@pytest.mark.both_stores
async def test_a_new_check_that_becomes_overdue_has_no_flip_up_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Heartfly watches a new check: never pinged, it goes late, then down. Its change to late was
    # listed as a flip "up": 1, a recovery at the moment it became overdue, though no ping ever came
    # (Healthchecks' flips go up only at a ping)
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="fresh", timeout=60, grace=60))["uuid"]
    url = f"/api/v3/checks/{uuid}"
    clock.advance(61)
    engine.fire_due(clock.now())
    engine.timer_alive.mark(clock.now())
    assert (await (await client.get(url, headers=rw(key))).json())["status"] == "grace"
    assert (await (await client.get(url + "/flips/", headers=rw(key))).json())["flips"] == []
    clock.advance(61)
    engine.fire_due(clock.now())
    engine.timer_alive.mark(clock.now())
    assert (await (await client.get(url, headers=rw(key))).json())["status"] == "down"
    assert (await client.get(f"/ping/{uuid}")).status == 200
    flips = (await (await client.get(url + "/flips/", headers=rw(key))).json())["flips"]
    assert [f["up"] for f in flips] == [1, 0]  # back up at its first ping, down before


async def test_a_file_check_whose_key_is_not_a_uuid_is_pinged_at_its_ping_url_not_at_its_uuid(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Its uuid is derived from its name, which anyone who knows the name can derive too: it names
    # the check in the API, never a ping (docs/healthchecks.md says to ping its ping_url's key)
    client, key, _ = await start(aiohttp_client, write_config)
    report = (await (await client.get("/api/v3/checks/?slug=report", headers=rw(key))).json())["checks"][0]
    assert not report["ping_url"].endswith(report["uuid"])
    assert (await client.get(f"/ping/{report['uuid']}")).status == 404
    assert (await client.get(URL(report["ping_url"]).path)).status == 200


async def test_flips_past_the_thousand_answered_are_read_by_the_next_window_as_the_docs_say(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks answers every flip it keeps; Heartfly the 1000 newest of the window, and the
    # rest with ?end= at the oldest one shown (docs/healthchecks.md)
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    for n in range(1003):  # a flip each: down at each failure, up at each success after one
        clock.advance(1)
        assert (await client.get(f"/ping/{FILE_KEY}" + ("/fail" if n % 2 == 0 else ""))).status == 200
    url = f"/api/v3/checks/{FILE_KEY}/flips/"
    first = (await (await client.get(url, headers=rw(key))).json())["flips"]
    assert len(first) == hcapi.FLIPS_SHOWN == 1000
    oldest = int(datetime.fromisoformat(first[-1]["timestamp"]).timestamp())
    rest = (await (await client.get(f"{url}?end={oldest}", headers=rw(key))).json())["flips"]
    assert len(first) + len(rest) == 1003 and [f["up"] for f in rest] == [0, 1, 0]


async def test_a_resumed_check_is_watched_again_from_then_as_the_docs_say_not_new_and_silent(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' resume makes a check "new" (next_ping null: no alert until its next ping);
    # Heartfly watches it again from the resume (docs/healthchecks.md, "A resume")
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="job", timeout=600, grace=60))["uuid"]
    assert (await client.get(f"/ping/{uuid}")).status == 200
    assert (await client.post(f"/api/v3/checks/{uuid}/pause", headers=rw(key))).status == 200
    clock.advance(86400)
    resumed = await (await client.post(f"/api/v3/checks/{uuid}/resume", headers=rw(key))).json()
    assert resumed["status"] == "up" and resumed["last_ping"] is not None
    assert resumed["next_ping"] == hcshape.iso(clock.now() + 600)
    resumed_at = clock.now()
    clock.advance(661)
    engine.fire_due(clock.now())
    assert (await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json())["status"] == "down"
    # its flips: the resume is a change to up (Healthchecks': to new, "up": 0), as the docs say
    flips = (await (await client.get(f"/api/v3/checks/{uuid}/flips/", headers=rw(key))).json())["flips"]
    assert [f["up"] for f in flips][:3] == [0, 1, 0]
    assert flips[1]["timestamp"] == hcshape.iso(resumed_at)


async def test_a_run_under_way_at_a_pause_is_still_watched_after_the_resume_as_the_docs_say(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' resume forgets a run (last_start null); Heartfly's keeps one younger than its
    # max_runtime (made through the API: its grace), which is its next_ping and takes it down once
    # older, not a period after the resume (docs/healthchecks.md, "A resume")
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="job", timeout=600, grace=300))["uuid"]
    older = (await made(client, key, slug="older", timeout=600, grace=300))["uuid"]
    started_at = clock.now()
    for each in (uuid, older):
        assert (await client.get(f"/ping/{each}/start")).status == 200
        assert (await client.post(f"/api/v3/checks/{each}/pause", headers=rw(key))).status == 200
    clock.advance(120)
    resumed = await (await client.post(f"/api/v3/checks/{uuid}/resume", headers=rw(key))).json()
    assert resumed["started"] is True and resumed["next_ping"] == hcshape.iso(started_at)
    clock.advance(181)  # past the run's start plus its grace, long before the resume's period ends
    engine.fire_due(clock.now())
    assert (await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json())["status"] == "down"
    # the other's run is older than its grace at its resume: forgotten, due a period later
    forgot = await (await client.post(f"/api/v3/checks/{older}/resume", headers=rw(key))).json()
    assert forgot["started"] is False and forgot["next_ping"] == hcshape.iso(clock.now() + 600)


async def test_a_key_in_the_body_behind_a_proxy_that_asks_for_basic_auth_still_reaches_healthchecks_api(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # nginx's auth_basic passes the client's Basic login on: it is the proxy's, not Heartfly's token,
    # so it must not send a request that carries its key in the body to Heartfly's own API (a 405).
    client, key, _ = await start(aiohttp_client, write_config)
    basic = {"Authorization": "Basic " + base64.b64encode(b"ops:proxy-password").decode()}
    made = await client.post("/api/v1/checks", json={"name": "Behind proxy", "api_key": key}, headers=basic)
    assert made.status == 201, await made.text()
    uuid = (await made.json())["update_url"].rsplit("/", 1)[1]
    paused = await client.post(f"/api/v1/checks/{uuid}/pause", json={"api_key": key}, headers=basic)
    assert paused.status == 200 and (await paused.json())["status"] == "paused"
    config = load_config(_path(client))  # Heartfly's own token, a Bearer, still gets Heartfly's API
    own = await client.get("/api/v1/checks", headers=bearer(config))
    assert own.status == 200 and "backup" in [c["name"] for c in await own.json()]


async def test_the_defaults_max_runtime_stays_the_bound_of_a_check_made_or_updated_through_the_api(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A grace is the run bound only where the operator set none: [defaults] max_runtime = "2h"
    # bounded every API check's runs before grace became one, and a [defaults] grace of 5 minutes
    # must not take down every run of the ten-minute jobs the operator allowed two hours
    body = CHECKS.replace('channels = ["journal"]', 'channels = ["journal"]\nmax_runtime = "2h"\ngrace = "5m"')
    client, key, _ = await start(aiohttp_client, write_config, body)
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="nightly"))["uuid"]
    assert engine.checks["nightly"].config.max_runtime == 7200
    await made(client, key, slug="hourly", grace=600)
    assert engine.checks["hourly"].config.max_runtime == 7200
    changed = await client.post(f"/api/v3/checks/{uuid}", json={"grace": 900}, headers=rw(key))
    assert changed.status == 200
    assert engine.checks["nightly"].config.max_runtime == 7200


async def test_a_checks_grace_from_the_defaults_and_its_run_bound_stay_one_after_the_defaults_change(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A check made without a grace took [defaults]' 10 minutes as its max_runtime and followed
    # [defaults] for its grace: after grace = "2h" and a reload it showed grace 7200 and still took
    # a run down after 10 minutes
    body = CHECKS.replace('channels = ["journal"]', 'channels = ["journal"]\ngrace = "10m"')
    client, key, _ = await start(aiohttp_client, write_config, body)
    app = client.app
    assert app is not None
    uuid = (await made(client, key, slug="nightly"))["uuid"]
    path = _path(client)
    path.write_text(path.read_text().replace('grace = "10m"', 'grace = "2h"'))
    assert (await control.reload_config(app))[1] == []
    cfg = app[RUNTIME].engine.checks["nightly"].config
    assert cfg.max_runtime == cfg.grace
    shown = await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json()
    assert shown["grace"] == cfg.grace


@pytest.mark.both_stores
async def test_a_new_checks_first_start_is_no_flip_and_its_first_success_is_its_flip_up_as_in_healthchecks(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' start changes no status (a new check stays new: no flip); its first success
    # is the flip up. Heartfly's new -> running was listed "up": 1 at the start, and its success
    # (running -> up) as none, so the flip up was dated at a start that may never have ended
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    uuid = (await made(client, key, slug="fresh", timeout=3600, grace=600))["uuid"]
    url = f"/api/v3/checks/{uuid}/flips/"
    clock.advance(10)
    assert (await client.get(f"/ping/{uuid}/start")).status == 200
    assert (await (await client.get(url, headers=rw(key))).json())["flips"] == []
    clock.advance(30)
    assert (await client.get(f"/ping/{uuid}")).status == 200
    for _ in range(2):  # routine runs after it are no flips
        clock.advance(60)
        assert (await client.get(f"/ping/{uuid}/start")).status == 200
        clock.advance(30)
        assert (await client.get(f"/ping/{uuid}")).status == 200
    flips = (await (await client.get(url, headers=rw(key))).json())["flips"]
    assert flips == [{"timestamp": hcshape.iso(1_780_000_040.0), "up": 1}]
    # a first success without a start, then routine runs; and one that came late (new -> late -> up)
    direct = (await made(client, key, slug="direct", timeout=3600, grace=600))["uuid"]
    late = (await made(client, key, slug="late", timeout=60, grace=600))["uuid"]
    assert (await client.get(f"/ping/{direct}")).status == 200
    at = clock.now()
    assert (await client.get(f"/ping/{direct}/start")).status == 200
    assert (await client.get(f"/ping/{direct}")).status == 200
    clock.advance(61)
    engine = client.app[RUNTIME].engine
    engine.fire_due(clock.now())
    assert (await (await client.get(f"/api/v3/checks/{late}", headers=rw(key))).json())["status"] == "grace"
    assert (await client.get(f"/ping/{late}")).status == 200
    shown = {
        code: (await (await client.get(f"/api/v3/checks/{code}/flips/", headers=rw(key))).json())["flips"]
        for code in (direct, late)
    }
    assert shown == {
        direct: [{"timestamp": hcshape.iso(at), "up": 1}],
        late: [{"timestamp": hcshape.iso(clock.now()), "up": 1}],
    }


async def test_a_check_made_by_a_create_ping_bounds_its_runs_by_its_grace_as_one_made_through_the_api(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' rule on a started run (down once older than the grace) is every check's there,
    # an auto-provisioned one's too: it started and hung "up" until the next day plus grace
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER + "auto_provision = true\n")
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    assert (await client.get(f"/ping/{PING_KEY}/nightly/start?create=1")).status == 201
    engine = client.app[RUNTIME].engine
    assert (engine.checks["nightly"].config.max_runtime, engine.checks["nightly"].config.resume_on_ping) == (
        3600,
        False,  # manual_resume: true, as docs/healthchecks.md says of auto-provisioned checks
    )
    clock.advance(3601)
    engine.fire_due(clock.now())
    uuid = check_uuid(engine.checks["nightly"].config)
    assert (await (await client.get(f"/api/v3/checks/{uuid}", headers=rw(key))).json())["status"] == "down"


async def test_a_defaults_min_runtime_set_after_a_check_was_made_lifts_its_grace_bound_not_the_reload(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A check made through the API has its grace (1h) as its max_runtime; [defaults] min_runtime =
    # "2h" set afterwards refused every reload (min_runtime must be shorter than max_runtime, a
    # max_runtime the operator never wrote) and at a start left the check out, watched by nobody
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    await made(client, key, slug="nightly", grace=3600)
    assert app[RUNTIME].engine.checks["nightly"].config.max_runtime == 3600
    path = _path(client)
    path.write_text(path.read_text().replace('channels = ["journal"]', 'channels = ["journal"]\nmin_runtime = "2h"', 1))
    assert await control.reload_config(app) == (3, [])
    cfg = app[RUNTIME].engine.checks["nightly"].config
    assert (cfg.max_runtime, cfg.min_runtime) == (None, 7200)
    exported = await report.read_exports(load_config(path), ["nightly"])
    assert "grace" in exported and "max_runtime" not in exported  # pasted into the file, it loads
    await client.close()
    again: Client = await aiohttp_client(create_app(load_config(path)))
    assert again.app is not None
    assert again.app[RUNTIME].engine.checks["nightly"].config.max_runtime is None


async def test_flips_read_a_thousand_at_a_time_by_end_come_whole_when_a_second_holds_several(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Timestamps are whole seconds and ?end= is "before": read as the docs say (?end= at the oldest
    # shown), the flips of the oldest shown second that the thousand left out were lost
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    for n in range(1004):  # two flips a second
        clock.advance(0.5)
        assert (await client.get(f"/ping/{FILE_KEY}" + ("/fail" if n % 2 == 0 else ""))).status == 200
    url = f"/api/v3/checks/{FILE_KEY}/flips/"
    read: list[dict[str, Any]] = []
    page = (await (await client.get(url, headers=rw(key))).json())["flips"]
    while page:
        read += page
        oldest = int(datetime.fromisoformat(page[-1]["timestamp"]).timestamp())
        page = (await (await client.get(f"{url}?end={oldest}", headers=rw(key))).json())["flips"]
    assert len(read) == 1004
    assert [f["up"] for f in read] == [n % 2 for n in range(1004)][::-1]


async def test_a_run_that_starts_late_has_its_grace_from_its_start_as_the_docs_say(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks takes a late start down at its due time plus grace (alert_after = min(due,
    # last_start) + grace); Heartfly's max_runtime counts from the start (docs/healthchecks.md)
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    engine = client.app[RUNTIME].engine
    uuid = (await made(client, key, slug="hourly", timeout=3600, grace=600))["uuid"]
    assert (await client.get(f"/ping/{uuid}")).status == 200
    clock.advance(3600 + 300)  # late, within its grace
    assert (await client.get(f"/ping/{uuid}/start")).status == 200
    url = f"/api/v3/checks/{uuid}"
    for step, shown in ((301, "up"), (300, "down")):  # past due + grace (Healthchecks' down), past start + grace
        clock.advance(step)
        engine.fire_due(clock.now())
        assert (await (await client.get(url, headers=rw(key))).json())["status"] == shown


async def test_a_schedule_made_through_the_api_without_tz_is_utc_as_in_healthchecks_not_the_defaults_zone(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks' tz defaults to UTC: a provisioning script that sends "schedule": "0 3 * * *"
    # alone means 03:00 UTC, when its job runs. The check took [defaults] timezone instead, and
    # on a server whose [defaults] say Europe/Berlin it was due at 02:00 UTC: down every night
    # an hour before the job ran, and up again at 03:00
    clock = FakeClock(1_780_000_000.0)  # 2026-05-28 20:26:40 UTC: Berlin is UTC+2
    body = CHECKS.replace('channels = ["journal"]', 'channels = ["journal"]\ntimezone = "Europe/Berlin"')
    config = write_config(body, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    nightly = await made(client, key, slug="nightly", schedule="0 3 * * *", grace=600)
    assert (nightly["tz"], nightly["next_ping"]) == ("UTC", "2026-05-29T03:00:00+00:00")
    hourly = await made(client, key, slug="hourly", timeout=3600)  # then made a schedule by an update
    changed = await client.post(f"/api/v3/checks/{hourly['uuid']}", json={"schedule": "30 4 * * *"}, headers=rw(key))
    assert (await changed.json())["tz"] == "UTC"
    berlin = await made(client, key, slug="berlin", schedule="0 3 * * *", tz="Europe/Berlin")  # a tz given is kept
    assert (berlin["tz"], berlin["next_ping"]) == ("Europe/Berlin", "2026-05-29T01:00:00+00:00")
    kept = await client.post(f"/api/v3/checks/{berlin['uuid']}", json={"schedule": "0 4 * * *"}, headers=rw(key))
    assert (await kept.json())["tz"] == "Europe/Berlin"  # a new schedule keeps the check's zone


@pytest.mark.both_stores
async def test_the_pings_list_gives_the_duration_of_a_run_at_the_ping_that_ended_it_as_healthchecks_does(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # runitor pings /start?rid=R, then /<exit status>?rid=R; Healthchecks' pings list gives the
    # end ping the run's `duration` (seconds), which scripts read to chart their jobs' run times.
    # Heartfly timed the run (its runs, last_duration) but the list had no duration at all
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    uuid = (await made(client, key, slug="job", timeout=3600, grace=600))["uuid"]
    runitor = {"Content-Type": "text/plain", "User-Agent": "runitor/v1.3.0"}
    runs = (("5b1e3c6a-0d7e-4f2b-9c1a-1e2f3a4b5c6d", 42.5, 0), ("9d8c7b6a-1234-4abc-8def-0123456789ab", 7, 3))
    for rid, took, status in runs:
        assert (await client.post(f"/ping/{uuid}/start?rid={rid}", headers=runitor)).status == 200
        clock.advance(took)
        assert (await client.post(f"/ping/{uuid}/log?rid={rid}", data=b"half way", headers=runitor)).status == 200
        ended = await client.post(f"/ping/{uuid}/{status}?rid={rid}", data=b"output", headers=runitor)
        assert ended.status == 200
        clock.advance(60)
    assert (await client.post(f"/ping/{uuid}", data=b"no start before it")).status == 200
    pings = (await (await client.get(f"/api/v3/checks/{uuid}/pings/", headers=rw(key))).json())["pings"]
    shown = [(p["type"], p.get("duration")) for p in pings]
    first, second = [("success", 42.5), ("log", None), ("start", None)], [("fail", 7), ("log", None), ("start", None)]
    assert shown == [("success", None), *second, *first]


async def test_a_schedule_with_a_field_too_few_or_too_many_is_refused_saying_so_not_called_oncalendar(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # "0 3 * *" (a field left out) and "0 0 3 * * *" (seconds first, as Quartz writes it) were
    # refused as "OnCalendar is not supported": a provisioning script's author looked for an
    # OnCalendar expression they never wrote, not for the field they miscounted
    client, key, _ = await start(aiohttp_client, write_config)
    for schedule, count in (("0 3 * *", 4), ("0 0 3 * * *", 6)):
        resp = await client.post("/api/v3/checks/", json={"slug": "x", "schedule": schedule}, headers=rw(key))
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error.startswith("json validation error: schedule is not a valid cron expression"), error
        assert f"{count} fields" in error and "5 (minute hour day month weekday)" in error, error
    oncalendar = await client.post("/api/v3/checks/", json={"schedule": "Mon *-*-* 02:00:00"}, headers=rw(key))
    assert "OnCalendar" in (await oncalendar.json())["error"]  # still named where it may be one
    # "@daily", which Heartfly's file takes, was "has 1 field" too: Healthchecks refuses it as well
    # (it reads a schedule of one field as OnCalendar, which has no "@daily"); the 400 says what to send
    macro = await client.post("/api/v3/checks/", json={"slug": "x", "schedule": "@Daily"}, headers=rw(key))
    assert macro.status == 400
    assert (await macro.json())["error"] == (
        'json validation error: schedule is not a valid cron expression ("@Daily" is a cron macro, which'
        ' Healthchecks refuses too: write "0 0 * * *")'
    )


async def test_a_reload_refused_for_a_check_made_through_the_api_says_it_is_not_in_the_file(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A channel taken out of the file that checks made through the API (or by ?create=1 pings)
    # still name: the reload was refused with "checks.nightly.channels: no channel pager in
    # heartfly.toml", and the operator searched the file for a [checks.nightly] it never had
    body = CHECKS + '\n[channels.pager]\ntype = "log"\n'
    client, key, _ = await start(aiohttp_client, write_config, body)
    await made(client, key, slug="nightly", timeout=3600, channels="pager")
    await client.post("/api/v3/checks/", json={"slug": "ok", "channels": "journal"}, headers=rw(key))  # fits still
    path = _path(client)
    path.write_text(path.read_text().replace('[channels.pager]\ntype = "log"\n', ""))
    app = client.app
    assert app is not None
    count, problems = await control.reload_config(app)
    assert count == 0 and len(problems) == 1, problems
    assert problems[0].startswith(f"checks.nightly.channels: no channel pager in {path} (")
    assert "nightly was made through the API, not in the file" in problems[0], problems


async def test_a_tag_longer_than_heartfly_keeps_is_refused_naming_the_field_sent_not_a_config_table(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks takes a tag of any length; Heartfly's are at most 50 characters. A longer one
    # was refused as 'checks.nightly.tags: "…" is not a tag', a config table no caller wrote, and
    # an update named the check's table the same way
    client, key, _ = await start(aiohttp_client, write_config)
    long_tag = "x" * 51
    resp = await client.post("/api/v3/checks/", json={"slug": "nightly", "tags": f"prod {long_tag}"}, headers=rw(key))
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        f'json validation error: tags: "{long_tag}" is longer than 50 characters, the most a tag may have here'
    )
    uuid = (await made(client, key, slug="nightly", tags="prod"))["uuid"]
    update = await client.post(f"/api/v3/checks/{uuid}", json={"tags": long_tag}, headers=rw(key))
    assert update.status == 400 and (await update.json())["error"].startswith("json validation error: tags: ")
    assert client.app[RUNTIME].engine.checks["nightly"].config.tags == ("prod",)


async def test_a_check_exported_into_the_file_takes_over_the_apis_copy_at_the_reload_with_no_gap_for_pings(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # docs/healthchecks.md moved a check into the file by deleting the API's copy, then reloading
    # (a reload with both was refused): in between, the check was served by neither, and its
    # pings answered 404 and were lost. The exported table has the check's name and key: the file
    # now takes the check over at the reload (or the start), and the API's copy is deleted
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    nightly = await made(client, key, slug="nightly", name="Nightly", timeout=3600)
    weekly = await made(client, key, slug="weekly", timeout=7 * 86400)
    assert (await client.post(f"/ping/{nightly['uuid']}", data=b"done")).status == 200
    path = _path(client)
    with path.open("a") as file:
        file.write("\n" + stored_checks.to_toml("nightly", rt.stored["nightly"].table, "Nightly"))
    assert await control.reload_config(app) == (4, [])
    cfg = rt.engine.checks["nightly"].config
    assert (cfg.origin, check_uuid(cfg)) == ("file", nightly["uuid"])
    assert "nightly" not in rt.stored and "check:nightly" not in await rt.reader.read_meta_prefix("check:")
    shown = await (await client.get(f"/api/v3/checks/{nightly['uuid']}", headers=rw(key))).json()
    assert (shown["status"], shown["n_pings"]) == ("up", 1)  # its state and history go on
    assert (await client.post(f"/ping/{nightly['uuid']}", data=b"again")).status == 200
    with path.open("a") as file:  # exported, then a restart rather than a reload: it starts
        file.write("\n" + stored_checks.to_toml("weekly", rt.stored["weekly"].table))
    await client.close()
    again: Client = await aiohttp_client(create_app(load_config(path)))
    assert again.app is not None
    assert again.app[RUNTIME].engine.checks["weekly"].config.origin == "file" and not again.app[RUNTIME].stored
    assert (await again.get(f"/ping/{weekly['uuid']}")).status == 200


async def test_a_timeout_or_grace_sent_as_a_whole_json_float_is_taken_and_one_with_a_fraction_refused(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A Python script sending timedelta(hours=1).total_seconds() writes 3600.0, a whole number of
    # seconds: taken (Healthchecks' strict schema refuses it as "is not a number"). 5400.4 was
    # rounded to 5400 and the check kept a grace other than the one sent, with a 201: refused
    # now, naming the field, and nothing is made
    client, key, _ = await start(aiohttp_client, write_config)
    body = b'{"slug": "hourly", "timeout": 3600.0, "grace": 5400.0}'
    resp = await client.post("/api/v3/checks/", data=body, headers=rw(key))
    assert resp.status == 201, await resp.text()
    shown = await resp.json()
    assert (shown["timeout"], shown["grace"]) == (3600, 5400)
    again = await client.post("/api/v3/checks/", data=body[:-1] + b', "unique": ["slug"]}', headers=rw(key))
    assert again.status == 200  # found as asked
    fraction = b'{"slug": "daily", "timeout": 86400, "grace": 5400.4}'
    refused = await client.post("/api/v3/checks/", data=fraction, headers=rw(key))
    assert refused.status == 400
    assert (await refused.json())["error"] == "json validation error: grace is not a whole number of seconds"
    assert "daily" not in client.app[RUNTIME].engine.checks
    changed = await client.post(f"/api/v3/checks/{shown['uuid']}", data=b'{"timeout": 3600.5}', headers=rw(key))
    assert changed.status == 400 and "timeout is not a whole number" in (await changed.json())["error"]
    for bad, error in ((b"NaN", "is not a number"), (b"59", "is too small"), (b'"60"', "is not a number")):
        refused = await client.post("/api/v3/checks/", data=b'{"grace": ' + bad + b"}", headers=rw(key))
        assert refused.status == 400 and (await refused.json())["error"] == f"json validation error: grace {error}"


@pytest.mark.both_stores
async def test_the_pings_list_gives_no_duration_for_a_run_longer_than_72_hours_and_rounds_one_to_hundredths(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Healthchecks gives an end ping the duration of a run started at most 72 hours before it, in
    # seconds to the hundredth. The list bounded only its scan (from the oldest listed end, less
    # 72 hours): a run of 80 hours ended by a newer ping showed "duration": 288000.0; and a run of
    # 42.37 s showed 42.36999988555908
    weekly = "0c2d8e4a-5b6f-4a7e-9d1c-2b3a4c5d6e7f"
    clock = FakeClock(1_780_000_000.7)
    config = write_config(CHECKS + f'\n[checks.weekly]\nkey = "{weekly}"\nevery = "30d"\n', server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    assert (await client.post(f"/ping/{weekly}")).status == 200  # the oldest listed end: no start
    clock.advance(3600)
    for rid, took in (
        ("5b1e3c6a-0d7e-4f2b-9c1a-1e2f3a4b5c6d", 80 * 3600.0),
        ("9d8c7b6a-1234-4abc-8def-0123456789ab", 42.37),
    ):
        assert (await client.post(f"/ping/{weekly}/start?rid={rid}")).status == 200
        clock.advance(took)
        assert (await client.post(f"/ping/{weekly}?rid={rid}")).status == 200
        clock.advance(60)
    pings = (await (await client.get(f"/api/v3/checks/{weekly}/pings/", headers=rw(key))).json())["pings"]
    shown = [(p["type"], p.get("duration")) for p in pings]
    assert shown == [("success", 42.37), ("start", None), ("success", None), ("start", None), ("success", None)]


async def test_a_takeover_by_an_export_older_than_a_change_made_through_the_api_warns_naming_what_differed(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # The file's table of the check's name and key takes the check over whatever else it says:
    # pasted from an export made before a provisioning script changed the check (its schedule,
    # its grace), it silently undid that change, the log saying only "took over"
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    nightly = await made(client, key, slug="nightly", timeout=3600, grace=600)
    weekly = await made(client, key, slug="weekly", timeout=7 * 86400)
    exported = {name: stored_checks.to_toml(name, rt.stored[name].table) for name in ("nightly", "weekly")}
    changed = await client.post(f"/api/v3/checks/{nightly['uuid']}", json={"schedule": "0 3 * * *"}, headers=rw(key))
    assert changed.status == 200
    path = _path(client)
    with path.open("a") as file:
        file.write("".join("\n" + text for text in exported.values()))
    with caplog.at_level("INFO", logger="heartfly.web.runtime"):
        assert await control.reload_config(app) == (4, [])
    assert rt.engine.checks["nightly"].config.every == 3600  # the file's, as the log says
    said = {
        r.getMessage().split(":")[0]: (r.levelname, r.getMessage()) for r in caplog.records if "took over" in r.message
    }
    assert said["check nightly"][0] == "WARNING"
    assert "its every, cron differed from the file's, whose are kept" in said["check nightly"][1], said
    assert said["check weekly"] == ("INFO", "check weekly: the file's [checks.weekly] (its key) took over the check"
                                    " made through the API, whose copy in the database is deleted")  # fmt: skip
    assert (await client.get(f"/ping/{weekly['uuid']}")).status == 200


@pytest.mark.both_stores
async def test_the_pings_list_gives_each_of_two_runs_that_ended_at_one_instant_its_own_duration(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Two concurrent runs of one check whose ends come at one instant (spooled and replayed with
    # ts, which is whole seconds): the durations were paired by end time alone, and both end
    # pings showed the one run's, a 10 s run and a 5 s run both "duration": 5.0
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    uuid = (await made(client, key, slug="job", timeout=3600, grace=600))["uuid"]
    long, short = "5b1e3c6a-0d7e-4f2b-9c1a-1e2f3a4b5c6d", "9D8C7B6A-1234-4ABC-8DEF-0123456789AB"  # upper case: one
    assert (await client.post(f"/ping/{uuid}/start?rid={long}")).status == 200
    clock.advance(5)
    assert (await client.post(f"/ping/{uuid}/start?rid={short}")).status == 200
    clock.advance(5)
    assert (await client.post(f"/ping/{uuid}/fail?rid={long}")).status == 200
    assert (await client.post(f"/ping/{uuid}?rid={short.lower()}")).status == 200
    pings = (await (await client.get(f"/api/v3/checks/{uuid}/pings/", headers=rw(key))).json())["pings"]
    shown = [(p["type"], p["rid"], p.get("duration")) for p in pings]
    assert shown == [
        ("success", short.lower(), 5.0),
        ("fail", long, 10.0),
        ("start", short.lower(), None),
        ("start", long, None),
    ]


@pytest.mark.both_stores
async def test_a_takeover_deletes_only_the_copy_it_took_over_not_a_check_another_node_made_since(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # In a cluster another node may delete the check and make another of its name (another key)
    # within the second before this node reads it; this node's reload, whose file has the old
    # check's table, took over what it had read and deleted the row by its name: the new check,
    # made through the API and answered 201 there, was gone, silently
    client, key, _ = await start(aiohttp_client, write_config)
    app = client.app
    assert app is not None
    rt = app[RUNTIME]
    await made(client, key, slug="nightly", timeout=3600)
    exported = stored_checks.to_toml("nightly", rt.stored["nightly"].table)
    other = StoredCheck("nightly", "api", {**rt.stored["nightly"].table, "key": stored_checks.new_key()}, 1.0)
    row = stored_checks.META_PREFIX + "nightly"
    assert rt.writer is not None  # as another node writes it (this one not following yet)
    await rt.writer.submit(store_rows.Write(statements=[store_rows.changed_meta_statement(row, other.encode())]))
    path = _path(client)
    with path.open("a") as file:
        file.write("\n" + exported)
    assert (await control.reload_config(app))[1] == []
    assert rt.engine.checks["nightly"].config.origin == "file"
    assert (await rt.reader.read_meta_prefix(row)).get(row) == other.encode()  # kept, for a clash to name


@pytest.mark.both_stores
async def test_the_pings_list_gives_a_run_whose_start_the_list_cut_off_its_duration(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The runs are read from the listed pings' oldest time, and of those started before it only
    # the newest few (not every run of the 72 hours before, 26,000 rows for a job run every 10 s):
    # a run whose start is older than the 100 pings listed, its log lines filling the list, still
    # has its duration at its end, beside older runs started before it
    clock = FakeClock(1_780_000_000.0)
    config = write_config(CHECKS, server=SERVER)
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    key = (config.path.parent / "hc-key").read_text().strip()
    uuid = (await made(client, key, slug="job", timeout=3600, grace=600))["uuid"]
    for _ in range(3):  # earlier runs, ended before the listed pings
        assert (await client.post(f"/ping/{uuid}/start")).status == 200
        clock.advance(2)
        assert (await client.post(f"/ping/{uuid}")).status == 200
        clock.advance(10)
    rid = "5b1e3c6a-0d7e-4f2b-9c1a-1e2f3a4b5c6d"
    assert (await client.post(f"/ping/{uuid}/start?rid={rid}")).status == 200
    for _ in range(hcapi.PINGS_SHOWN):
        clock.advance(1)
        assert (await client.post(f"/ping/{uuid}/log?rid={rid}", data=b"working")).status == 200
    clock.advance(0.5)
    assert (await client.post(f"/ping/{uuid}/0?rid={rid}")).status == 200
    pings = (await (await client.get(f"/api/v3/checks/{uuid}/pings/", headers=rw(key))).json())["pings"]
    assert len(pings) == hcapi.PINGS_SHOWN and "start" not in [p["type"] for p in pings]
    assert (pings[0]["type"], pings[0].get("duration")) == ("success", hcapi.PINGS_SHOWN + 0.5)
