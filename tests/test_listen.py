"""Where `heartfly serve` listens: --listen and HEARTFLY_LISTEN over the file, a port in use, and
the quick start's first run. Real subprocesses throughout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from heartfly.core.config import load_config
from heartfly.core.listen import with_listen
from tests.conftest import new_key
from tests.proc import Server, heartfly

ROOT = Path(__file__).parent.parent


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def config(tmp_path: Path, port: int, key: str = "") -> Path:
    path = tmp_path / "hb.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\ndatabase = "hb.db"\napi_token_file = "token"\n'
        f'[checks.nightly]\nkey = "{key or new_key()}"\nevery = "1h"\n'
    )
    return path


def ping(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return int(resp.status)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_listen_outranks_the_files_listen(tmp_path: Path, taken: int) -> None:
    key = new_key()
    with Server(config(tmp_path, taken, key), args=("--listen", "127.0.0.1:0")) as server:
        assert not server.url.endswith(f":{taken}")
        assert ping(f"{server.url}/ping/{key}") == 200
        assert server.stop() == 0


def test_heartfly_listen_outranks_the_file_and_the_flag_outranks_it(tmp_path: Path, taken: int) -> None:
    key = new_key()
    path = config(tmp_path, taken, key)
    with Server(path, env={"HEARTFLY_LISTEN": "127.0.0.1:0"}) as server:
        assert ping(f"{server.url}/ping/{key}") == 200
        assert server.stop() == 0
    with Server(path, env={"HEARTFLY_LISTEN": f"127.0.0.1:{taken}"}, args=("--listen", "127.0.0.1:0")) as server:
        assert ping(f"{server.url}/ping/{key}") == 200
        assert server.stop() == 0


def test_serve_listens_on_an_ipv6_address_given_in_brackets(tmp_path: Path, taken: int) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 here")
    key = new_key()
    with Server(config(tmp_path, taken, key), args=("--listen", "[::1]:0")) as server:
        assert server.url.startswith("http://[::1]:")
        assert ping(f"{server.url}/ping/{key}") == 200


def test_a_reload_keeps_the_listen_given_on_the_command_line(tmp_path: Path, taken: int) -> None:
    key = new_key()
    path = config(tmp_path, taken, key)
    with Server(path, args=("--listen", "127.0.0.1:0")) as server:
        path.write_text(path.read_text() + f'[checks.other]\nkey = "{new_key()}"\nevery = "1h"\n')
        server.signal(signal.SIGHUP)
        assert server.wait_for_log(f"reloaded {path}: 2 checks")
        assert "take effect only after a restart" not in server.log()  # the file's listen is not news
        assert ping(f"{server.url}/ping/{key}") == 200


@pytest.mark.parametrize("value", ["nope", "127.0.0.1", "127.0.0.1:99999", "::1:8765", ""])
def test_a_bad_listen_is_a_usage_error_naming_the_flag(tmp_path: Path, value: str) -> None:
    path = config(tmp_path, 0)
    result = heartfly("serve", "-c", str(path), "--listen", value)
    assert result.returncode == 2 and "Invalid value for '--listen'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "hb.db").exists()


def test_a_bad_heartfly_listen_is_a_usage_error_naming_the_variable(tmp_path: Path) -> None:
    result = heartfly("serve", "-c", str(config(tmp_path, 0)), env={"HEARTFLY_LISTEN": "localhost"})
    assert result.returncode == 2 and "Invalid value for '--listen'" in result.stderr
    assert '"localhost" (from HEARTFLY_LISTEN)' in result.stderr


def test_a_port_in_use_is_one_line_saying_which_address_and_how_to_pick_another(tmp_path: Path, taken: int) -> None:
    path = config(tmp_path, 0)
    result = heartfly("serve", "-c", str(path), "--listen", f"127.0.0.1:{taken}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: cannot listen on 127.0.0.1:{taken}: address already in use")
    assert all(way in errors[0] for way in ("--listen HOST:PORT", "HEARTFLY_LISTEN", f"[server] of {path}"))


def test_the_command_line_finds_the_server_through_heartfly_listen_too(tmp_path: Path, taken: int) -> None:
    path = config(tmp_path, taken)
    env = {"HEARTFLY_LISTEN": f"127.0.0.1:{free_port()}"}
    with Server(path, env=env):
        result = heartfly("pause", "nightly", "-c", str(path), env=env)
        assert result.returncode == 0, result.stderr
        assert "paused nightly" in result.stdout
    bad = heartfly("resume", "nightly", "-c", str(path), env={"HEARTFLY_LISTEN": "x"})
    assert bad.returncode == 1 and bad.stderr.startswith("error: HEARTFLY_LISTEN: expected")


def test_a_public_url_derived_from_the_files_listen_follows_the_new_one_and_a_set_one_stays(tmp_path: Path) -> None:
    path = config(tmp_path, 8765)
    derived = with_listen(load_config(path), "[::1]:9000").server
    assert (derived.host, derived.port, derived.public_url) == ("::1", 9000, "http://[::1]:9000")
    path.write_text(path.read_text().replace("[server]\n", '[server]\npublic_url = "https://hb.example.com"\n'))
    assert with_listen(load_config(path), "0.0.0.0:9000").server.public_url == "https://hb.example.com"


def fake_python(bin_dir: Path) -> None:
    """A python3 whose `-m venv DIR` makes a venv of stand-ins (pip, heartfly) that log their
    arguments: dev.sh runs for real, with nothing downloaded."""
    stub = '#!/bin/sh\necho "$(basename "$0") $*" >> "$(dirname "$0")/calls"\n'
    script = f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
    mkdir -p "$3/bin"
    for tool in python pip heartfly; do printf '%s' '{stub}' > "$3/bin/$tool"; chmod +x "$3/bin/$tool"; done
    exit 0
fi
exec {sys.executable} "$@"
"""
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(script)
    (bin_dir / "python3").chmod(0o755)


def test_dev_sh_run_says_what_it_does_while_it_installs_and_nothing_once_installed(tmp_path: Path) -> None:
    for name in ("dev.sh", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "dev.sh").chmod(0o755)
    fake_python(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["./dev.sh", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        "creating .venv ...",
        "upgrading pip in .venv ...",
        "installing Heartfly and its dependencies into .venv (about a minute) ...",
        "installed",
    ]
    again = run()
    assert again.returncode == 0 and again.stderr == ""
    calls = (tmp_path / ".venv" / "bin" / "calls").read_text().splitlines()
    assert [call.split(";")[0] for call in calls] == [
        "pip install -q --upgrade pip",
        "pip install -q -e .",
        "heartfly serve -c heartfly.example.toml",
        "python -c import os, sys",  # the .venv's python is still the version that made it
        "heartfly serve -c heartfly.example.toml",
    ]
