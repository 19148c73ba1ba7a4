"""heartfly.client.lookup: a name's URL from a config file without the config parser, the same as
the full loader's answer wherever it gives one, and None (the full loader answers) elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartfly.client.jobside import resolve
from heartfly.client.lookup import url_in_file
from heartfly.client.transport import AddressError, config_url
from heartfly.core.config import ConfigError, load_config

KEY = "k" * 24
PING_KEY = "p" * 24
JOB = f'[checks.job]\nkey = "{KEY}"\nevery = "1h"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "heartfly.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("server", "name", "base_url", "ping_key"),
    [
        ('public_url = "https://hb.example.com/"', "job", None, None),
        ('public_url = "https://hb.example.com/base"', "job", None, None),
        ('listen = "0.0.0.0:9000"', "job", None, None),
        ('listen = "[::1]:9000"', "job", None, None),
        ("", "job", None, None),  # neither: the default address
        ('public_url = "https://hb.example.com"', "job", "http://10.0.0.1:8765/", None),
        (f'public_url = "https://hb.example.com"\nping_key = "{PING_KEY}"', "other", None, None),
        (f'ping_key = "{PING_KEY}"', "other", "http://10.0.0.1:8765", "e" * 22),
        ('public_url = "https://hb.example.com"', "other", None, "e" * 22),
        (f'ping_key = "{PING_KEY}"', "a.b-c_d", None, None),
    ],
)
def test_a_name_resolves_to_the_same_url_as_through_the_full_loader(
    tmp_path: Path, server: str, name: str, base_url: str | None, ping_key: str | None
) -> None:
    path = write(tmp_path, f"[server]\n{server}\n{JOB}")
    quick = url_in_file(path, name, base_url, ping_key)
    assert quick is not None
    assert quick == config_url(load_config(path), name, base_url, ping_key)


def test_a_file_with_a_byte_order_mark_reads_as_the_full_loader_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.toml"
    path.write_bytes(b"\xef\xbb\xbf" + f'[server]\npublic_url = "https://hb.example.com"\n{JOB}'.encode())
    assert url_in_file(path, "job", None, None) == f"https://hb.example.com/ping/{KEY}"


def test_a_mistake_elsewhere_in_the_file_does_not_hold_the_ping_back(tmp_path: Path) -> None:
    path = write(tmp_path, f'[server]\npublic_url = "https://hb.example.com"\n{JOB}[checks.broken]\nevery = "soon"\n')
    assert url_in_file(path, "job", None, None) == f"https://hb.example.com/ping/{KEY}"


@pytest.mark.parametrize(
    "text",
    [
        "[server\n",  # not TOML
        'server = "hb.example.com"\n',  # [server] not a table
        'checks = ["job"]\n',
        'checks.job = "k"\n',
        '[checks.job]\nkey = "short"\n',
        "[checks.job]\nkey = 42\n",
        "[checks.job]\nevery = '1h'\n",  # no key
        f'[server]\npublic_url = "hb.example.com"\n{JOB}',
        f"[server]\npublic_url = 8765\n{JOB}",
        f'[server]\nlisten = "localhost"\n{JOB}',
        f'[server]\nlisten = "127.0.0.1:99999"\n{JOB}',
        '[server]\nping_key = "short"\n',
        # A misspelt key would leave the default address: the full loader says "did you mean".
        f'[server]\npublc_url = "https://hb.example.com"\n{JOB}',
        f'[sever]\npublic_url = "https://hb.example.com"\n{JOB}',
        f'public_url = "https://hb.example.com"\n{JOB}',
        # A key another check or the ping_key also has: the ping would count for the other one.
        f'{JOB}[checks.copy]\nkey = "{KEY}"\nevery = "1h"\n',
        f'{JOB}[checks.other]\nkey = "{"o" * 24}"\nstart_key = "{KEY}"\nevery = "1h"\n',
        f'[server]\nping_key = "{KEY}"\n{JOB}',
        # urllib cannot read these, though they look like URLs.
        f'[server]\npublic_url = "https://[bad"\n{JOB}',
        f'[server]\npublic_url = "http://hb.example.com:web"\n{JOB}',
    ],
)
def test_what_it_cannot_vouch_for_is_left_to_the_full_loader(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    name = "other" if text.startswith('[server]\nping_key = "short"') else "job"
    assert url_in_file(path, name, None, None) is None
    with pytest.raises(ConfigError):  # and the full loader refuses the file, saying why
        load_config(path)


def test_a_name_the_file_lacks_without_a_ping_key_is_the_same_error_either_way(tmp_path: Path) -> None:
    path = write(tmp_path, f'[server]\npublic_url = "https://hb.example.com"\n{JOB}')
    with pytest.raises(AddressError) as quick:
        url_in_file(path, "other", None, None)
    with pytest.raises(AddressError) as full:
        config_url(load_config(path), "other")
    assert str(quick.value) == str(full.value) and 'no check "other"' in str(quick.value)


def test_a_small_client_file_with_keys_and_no_schedules_addresses_its_checks(tmp_path: Path) -> None:
    # docs/client.md suggests one for users who cannot read the server's own file.
    path = write(tmp_path, f'[server]\npublic_url = "https://hb.example.com"\n[checks.job]\nkey = "{KEY}"\n')
    assert url_in_file(path, "job", None, None) == f"https://hb.example.com/ping/{KEY}"


def test_a_bad_heartfly_url_or_ping_key_is_said_first_and_the_key_is_not_shown(tmp_path: Path) -> None:
    path = write(tmp_path, f'[server]\npublic_url = "https://hb.example.com"\n[checks.job]\nkey = "{KEY}"\n')
    with pytest.raises(AddressError, match="HEARTFLY_URL"):
        resolve("job", path, {"HEARTFLY_URL": "hb.example.com"})
    with pytest.raises(AddressError, match="is not a URL urllib can read"):
        resolve("job", path, {"HEARTFLY_URL": "https://[bad"})
    secret = "abc.defghijklmnopqrstuvwxyz0123"
    with pytest.raises(AddressError, match="HEARTFLY_PING_KEY is not a ping key") as info:
        resolve("other", path, {"HEARTFLY_PING_KEY": secret})
    assert secret not in str(info.value)
    assert resolve("job", path, {}) == f"https://hb.example.com/ping/{KEY}"


def test_a_bad_heartfly_url_or_an_unreadable_file_is_left_to_the_full_loader(tmp_path: Path) -> None:
    path = write(tmp_path, JOB)
    assert url_in_file(path, "job", "hb.example.com", None) is None
    assert url_in_file(tmp_path / "absent.toml", "job", None, None) is None
    assert url_in_file(tmp_path, "job", None, None) is None  # a folder
    path.write_bytes(b"\xff\xfe not utf-8")
    assert url_in_file(path, "job", None, None) is None
    path.write_text("a = " + "[" * 2000 + "]" * 2000 + "\n")
    assert url_in_file(path, "job", None, None) is None


def test_a_config_in_a_working_folder_this_user_may_not_search_does_not_hide_the_system_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `sudo -u heartfly heartfly status` run from /root (0700): ./heartfly.toml cannot be looked at,
    # only because the working folder may not be searched; the readable /etc/heartfly/heartfly.toml
    # is the config, as before 42fc992, not a 'cannot read: Permission denied' of ./heartfly.toml.
    import os

    from heartfly.client import transport

    system = tmp_path / "heartfly.toml"
    system.write_text("")
    monkeypatch.setattr(transport, "DEFAULT_CONFIGS", ("heartfly.toml", str(system)))
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path) == "heartfly.toml":
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    assert transport.config_path(None) == system
    assert transport.missing_config(None, {}) is None
