"""Auto-provisioning and checks kept in the database, through real processes: `curl` and
`heartfly ping` make checks with ?create=1 on a real `heartfly serve`; the cap; `heartfly status`
and `heartfly export` see them; the export pasted into the file takes over the same check."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import pytest

from heartfly.core.config import load_config
from tests.conftest import new_key
from tests.proc import Server, heartfly

PING_KEY = "provision-ping-key-0123456789"


def config_file(folder: Path, extra: str = "", checks: str = "") -> Path:
    path = folder / "hb.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'ping_key = "{PING_KEY}"\nhc_api_key_file = "hc-key"\n{extra}\n'
        f'[defaults]\ngrace = "10m"\nchannels = ["journal"]\n[channels.journal]\ntype = "log"\n'
        f'[checks.file-job]\nkey = "{new_key()}"\nevery = "1h"\n{checks}'
    )
    return path


def hc_checks(server: Server) -> dict[str, dict[str, object]]:
    key = (server.config.parent / "hc-key").read_text().strip()
    request = urllib.request.Request(f"{server.url}/api/v3/checks/", headers={"X-Api-Key": key})
    with urllib.request.urlopen(request) as resp:
        return {c["slug"]: c for c in json.load(resp)["checks"]}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_and_heartfly_ping_make_a_missing_check_with_create_1_up_to_the_cap(tmp_path: Path) -> None:
    path = config_file(tmp_path, "auto_provision = true\nauto_provision_max = 2")
    with Server(path) as server:
        url = f"{server.url}/ping/{PING_KEY}"

        def curl(tail: str) -> tuple[str, str]:
            out = subprocess.run(
                ["curl", "-s", "-w", " %{http_code}", f"{url}/{tail}"], capture_output=True, text=True, timeout=30
            ).stdout
            body, _, code = out.rpartition(" ")
            return code, body

        assert curl("nightly-db/start?create=1") == ("201", "Created")
        assert curl("nightly-db?create=1") == ("200", "OK")  # it exists now
        assert curl("not-made") == ("404", "not found\n")  # without create=1
        env = {"HEARTFLY_SPOOL": str(tmp_path / "spool"), "HEARTFLY_RETRIES": "0"}
        ping = heartfly("ping", f"{url}/made-by-client?create=1", "-m", "hello", env=env)
        assert ping.returncode == 0, ping.stderr
        assert curl("one-too-many?create=1") == ("404", "not found\n")  # past auto_provision_max
        assert curl("one-more-still?create=1")[0] == "404"
        bad = curl("Bad%20Name?create=1")  # no check's name, nor an event: as under any key
        assert bad[0] == "400" and "check's name" in bad[1] and '"_", "." and "-"' in bad[1], bad
        checks = hc_checks(server)
        assert sorted(checks) == ["file-job", "made-by-client", "nightly-db"]
        made = checks["nightly-db"]
        assert made["timeout"] == 86400 and made["grace"] == 600  # every day; grace from [defaults]
        assert made["status"] == "up" and made["channels"] != ""  # [defaults] channels, as every check
        assert server.log().count("auto_provision: 2 checks made by pings already") == 1  # logged once

        status = heartfly("status", "-c", str(path), "--json")
        assert status.returncode == 0, status.stderr
        assert {c["name"] for c in json.loads(status.stdout)} == {"file-job", "made-by-client", "nightly-db"}


def test_without_auto_provision_create_1_is_a_404(tmp_path: Path) -> None:
    with Server(config_file(tmp_path)) as server:
        request = urllib.request.Request(f"{server.url}/ping/{PING_KEY}/newjob?create=1")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == 404
        assert sorted(hc_checks(server)) == ["file-job"]


def test_export_prints_a_made_check_as_toml_that_the_file_can_take_over(tmp_path: Path) -> None:
    path = config_file(tmp_path, "auto_provision = true")
    with Server(path) as server:
        urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/backup-db?create=1").read()
        uuid = hc_checks(server)["backup-db"]["uuid"]
    exported = heartfly("export", "backup-db", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("\n[checks.backup-db]\n") and f'key = "{uuid}"' in exported.stdout
    assert heartfly("export", "file-job", "-c", str(path)).returncode == 1
    missing = heartfly("export", "nope", "-c", str(path))
    assert missing.returncode == 1 and 'no check "nope"' in missing.stderr
    # Pasted into the file while the API's copy still exists: the file's table, with the check's
    # key, takes it over at the start (a start failed with exit 2 here, and a reload was refused
    # until the copy was deleted: in between, the check was served by neither)
    path.write_text(path.read_text() + exported.stdout)
    assert load_config(path).checks["backup-db"].key == uuid
    with Server(path) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        taken = hc_checks(server)["backup-db"]
        assert taken["uuid"] == uuid and taken["status"] == "up"  # the same check, its history kept
        request = urllib.request.Request(f"{server.url}/api/v3/checks/{uuid}", data=b"{}", headers={"X-Api-Key": key})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == 403  # now the file's: read-only through the API
        assert server.wait_for_log("check backup-db: the file's [checks.backup-db] (its key) took over")
    assert heartfly("export", "backup-db", "-c", str(path)).returncode == 1  # the API's copy is deleted


def test_status_and_history_show_the_api_made_checks_served_beside_one_that_no_longer_fits_the_file(
    tmp_path: Path,
) -> None:
    # The server leaves a stored check whose channel left the file out (logged) and serves the
    # others; `heartfly status` listed none of them then (a down one too), and `heartfly history`
    # said "no longer in the config" of a check the server watches.
    path = config_file(tmp_path, checks='[channels.other]\ntype = "log"\n')
    with Server(path) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        for body in ({"slug": "to-other", "timeout": 3600, "channels": "other"}, {"slug": "nightly", "timeout": 3600}):
            data = json.dumps(body).encode()
            request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=data, headers={"X-Api-Key": key})
            assert urllib.request.urlopen(request).status == 201
        urllib.request.urlopen(f"{server.url}/ping/{hc_checks(server)['nightly']['uuid']}/fail").read()
    path = config_file(tmp_path)  # [channels.other] taken out of the file
    with Server(path) as server:
        assert sorted(hc_checks(server)) == ["file-job", "nightly"]  # to-other left out
    status = heartfly("status", "--json", "-c", str(path))
    assert status.returncode == 0, status.stderr
    assert {c["name"]: c["state"] for c in json.loads(status.stdout)} == {"file-job": "new", "nightly": "down"}
    history = heartfly("history", "nightly", "-c", str(path))
    assert history.returncode == 0, history.stderr
    assert "no longer in the config" not in history.stdout and "every hour" in history.stdout


def made_then_left_out(tmp_path: Path, slugs: list[str]) -> Path:
    """Checks made through the API on channel "other", then a start on the file without that
    channel, which leaves them out: the file's path."""
    path = config_file(tmp_path, checks='[channels.other]\ntype = "log"\n')
    with Server(path) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        for slug in slugs:
            data = json.dumps({"slug": slug, "timeout": 3600, "channels": "other"}).encode()
            request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=data, headers={"X-Api-Key": key})
            assert urllib.request.urlopen(request).status == 201
    path = config_file(tmp_path)  # [channels.other] taken out of the file
    with Server(path):
        pass
    return path


def test_status_says_that_an_api_made_check_that_no_longer_fits_the_file_is_not_watched(tmp_path: Path) -> None:
    # The server leaves it out (an error logged at its start), and `heartfly status` left it out
    # of its list without a word, where a check of the file not loaded yet gets a note: a check
    # watched by nobody, and the operator asking was not told.
    path = made_then_left_out(tmp_path, ["to-other"])
    status = heartfly("status", "--json", "-c", str(path))
    assert status.returncode == 0, status.stderr
    assert [c["name"] for c in json.loads(status.stdout)] == ["file-job"]  # stdout stays the list
    assert "not watched" in status.stderr and "checks.to-other.channels: no channel other" in status.stderr
    plain = heartfly("status", "-c", str(path))
    assert plain.returncode == 0 and "checks.to-other.channels: no channel other" in plain.stderr


def test_status_names_the_first_ten_api_made_checks_the_file_no_longer_fits_and_counts_the_rest(tmp_path: Path) -> None:
    # Checks made by ?create=1 pings or a playbook all on one channel, then that channel renamed in
    # the file: every one was named on one stderr line at each `heartfly status` (thousands of
    # problems), where its note of the file's checks not loaded yet names ten and counts the rest.
    path = made_then_left_out(tmp_path, [f"to-other-{n:02}" for n in range(12)])
    status = heartfly("status", "--json", "-c", str(path))
    assert status.returncode == 0, status.stderr
    [note] = [line for line in status.stderr.splitlines() if "not watched" in line]
    assert "checks.to-other-09.channels: no channel other" in note and "to-other-10" not in note, note
    assert note.endswith("no channel other in " + str(path) + " and 2 more"), note


def test_history_of_an_api_made_check_that_no_longer_fits_the_file_says_why_it_is_not_watched(tmp_path: Path) -> None:
    # Its table is still stored (the API's to fix or delete), but `heartfly history` said "no
    # longer in the config", as of a check deleted or taken out of the file.
    path = made_then_left_out(tmp_path, ["to-other"])
    history = heartfly("history", "to-other", "-c", str(path))
    assert history.returncode == 0, history.stderr
    assert "no longer in the config" not in history.stdout
    assert "not watched by the server: checks.to-other.channels: no channel other" in history.stdout


def test_status_midway_through_moving_a_check_into_the_file_still_lists_the_other_api_made_checks(
    tmp_path: Path,
) -> None:
    # docs/healthchecks.md's move: `heartfly export NAME >> the file`, then delete the API's copy.
    # Between the two steps the name is in both places, and `heartfly status` fell back to the
    # file's checks alone: every other check made through the API was missing, a down one too.
    path = config_file(tmp_path, "auto_provision = true")
    with Server(path) as server:
        for name in ("nightly", "hourly"):
            urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/{name}?create=1").read()
        urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/hourly/fail").read()
    exported = heartfly("export", "nightly", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    path.write_text(path.read_text() + exported.stdout)
    status = heartfly("status", "--json", "-c", str(path))
    assert status.returncode == 0, status.stderr
    states = {c["name"]: c["state"] for c in json.loads(status.stdout)}
    assert states == {"file-job": "new", "nightly": "up", "hourly": "down"}


@pytest.mark.parametrize("last_line", ['every = "1h"', "# the end"])
def test_export_appended_to_a_file_without_a_final_newline_leaves_a_file_that_loads(
    tmp_path: Path, last_line: str
) -> None:
    # `heartfly export NAME >> heartfly.toml`, as docs/healthchecks.md says, onto a file an editor
    # saved without a final newline: the table's header went onto its last line, `every =
    # "1h"[checks.backup-db]` (invalid TOML), or into its last comment (its keys then the table's before).
    path = config_file(tmp_path, "auto_provision = true", "# the end\n" if last_line.startswith("#") else "")
    with Server(path) as server:
        urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/backup-db?create=1").read()
        uuid = hc_checks(server)["backup-db"]["uuid"]
    exported = heartfly("export", "backup-db", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    moved = tmp_path / "moved.toml"
    text = path.read_text().rstrip("\n")
    assert text.endswith(last_line)
    moved.write_text(text + exported.stdout)
    config = load_config(moved)
    assert config.checks["backup-db"].key == uuid and config.checks["file-job"].every == 3600


def test_export_of_a_check_whose_name_or_description_holds_control_characters_is_valid_toml_and_escaped(
    tmp_path: Path,
) -> None:
    # DEL is forbidden raw in TOML (strings and comments alike); a C1 CSI or a bidi override raw in
    # the output would reach the operator's terminal, and then the file.
    title, description = "Nightly \x7f\u009b2J \u202eDB", 'a "quoted"\nline\x7f \u009b31m \u2028 \U000e0001 é ✓'
    path = config_file(tmp_path)
    with Server(path) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        body = json.dumps({"name": title, "slug": "nightly-db", "desc": description, "timeout": 3600}).encode()
        request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=body, headers={"X-Api-Key": key})
        assert urllib.request.urlopen(request).status == 201
    exported = heartfly("export", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    assert not {"\x7f", "\u009b", "\u202e", "\u2028", "\U000e0001"} & set(exported.stdout)
    assert '"Nightly \\u007f\\u009b2J \\u202eDB"' in exported.stdout  # the title's comment, escaped too
    table = tomllib.loads(exported.stdout)["checks"]["nightly-db"]
    assert table["description"] == description


def test_pause_of_a_check_made_through_the_api_says_its_next_ping_resumes_it(tmp_path: Path) -> None:
    # Such a check has resume_on_ping = true (Healthchecks' default), which the file does not say:
    # "until `heartfly resume`" was wrong, and the next ping watched it again.
    path = config_file(tmp_path)
    with Server(path) as server:
        key = (tmp_path / "hc-key").read_text().strip()
        body = json.dumps({"name": "made", "timeout": 3600}).encode()
        request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=body, headers={"X-Api-Key": key})
        assert urllib.request.urlopen(request).status == 201
        port = server.url.rsplit(":", 1)[1]  # the commands find the server through the file
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        paused = heartfly("pause", "made", "-c", str(path))
        assert paused.returncode == 0, paused.stderr
        assert "or its next start, success or failure ping (resume_on_ping)" in paused.stdout, paused.stdout
        from_file = heartfly("pause", "file-job", "-c", str(path))
        assert from_file.returncode == 0 and "resume_on_ping" not in from_file.stdout


def test_export_of_a_name_given_twice_prints_its_table_once_so_the_file_still_loads(tmp_path: Path) -> None:
    # `heartfly export a b a >> heartfly.toml` wrote [checks.a] twice: the file then failed to load
    # ("Cannot declare ('checks', 'a') twice"), and every reload and restart was refused.
    path = config_file(tmp_path, "auto_provision = true")
    with Server(path) as server:
        urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/backup-db?create=1").read()
        urllib.request.urlopen(f"{server.url}/ping/{PING_KEY}/vacuum-db?create=1").read()
    exported = heartfly("export", "backup-db", "vacuum-db", "backup-db", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count("[checks.backup-db]") == 1, exported.stdout
    assert list(tomllib.loads(exported.stdout)["checks"]) == ["backup-db", "vacuum-db"]


def test_export_help_shows_its_names_as_optional_as_they_are() -> None:
    # The usage line said `export [OPTIONS] NAME...`, as if a name were needed, where none
    # exports every check made through the API (README: `heartfly export [NAME…]`).
    result = heartfly("export", "--help")
    assert result.returncode == 0, result.stderr
    assert " export [OPTIONS] [NAME]...\n" in result.stdout, result.stdout  # after "Usage: python -m heartfly"


def test_export_help_says_to_reload_not_to_delete_the_apis_copy_first() -> None:
    # It said "then delete them through the API and reload", the way that left each check served
    # by neither until the reload (its pings answered 404): the file's table takes the check over
    # at the reload, which deletes the API's copy
    result = heartfly("export", "--help")
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    assert "delete them through the API" not in words, words
    assert "then reload: each table takes its check over, and the API's copy is deleted" in words, words
