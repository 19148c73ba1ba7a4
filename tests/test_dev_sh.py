"""The README's quick start, `./dev.sh run`, where it goes wrong: a .venv whose Python is gone, and
no network for pip. Real subprocesses: dev.sh, python3 -m venv and pip, with pip's index on a
loopback port nothing listens on (and no config files, no find-links), so nothing is downloaded."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """dev.sh and pyproject.toml in a folder of their own, and an environment in which pip cannot
    reach any index and apt-get (as root, dev.sh may run it) only notes that it was called."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dev.sh", "pyproject.toml"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    (repo / "dev.sh").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {tmp_path / "apt-calls"}\nexit 1\n')
    (bin_dir / "apt-get").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_FIND_LINKS": "",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple",
        "PIP_RETRIES": "0",
    }
    return repo, env


def dev_sh_run(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["./dev.sh", "run"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_a_venv_whose_python_is_gone_is_made_again_not_blamed_on_a_missing_python3_venv(tmp_path: Path) -> None:
    # .venv made by a Python that was removed or moved since (another pyenv version, a different
    # python3.11 path): its links dangle. `python3 -m venv` kept them and failed, and dev.sh took
    # that for a missing python3-venv: "install python3-venv", or as root apt-get, for nothing.
    repo, env = checkout(tmp_path)
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python3").symlink_to(tmp_path / "gone" / "bin" / "python3")
    (venv_bin / "python").symlink_to("python3")
    (repo / ".venv" / "pyvenv.cfg").write_text(f"home = {tmp_path / 'gone' / 'bin'}\n")
    result = dev_sh_run(repo, env)
    assert "python3-venv" not in result.stderr, result.stderr
    assert not (tmp_path / "apt-calls").exists()
    assert f"made by a Python that no longer runs ({tmp_path / 'gone' / 'bin' / 'python3'})" in result.stderr
    assert subprocess.run([str(venv_bin / "python"), "-c", "pass"]).returncode == 0  # a working .venv again


def test_no_network_for_pip_ends_in_one_line_saying_what_failed_and_what_to_do(tmp_path: Path) -> None:
    # pip -q's own last words on an index it cannot reach are "This error originates from a
    # subprocess, and is likely not a problem with pip", about setuptools: nothing said the
    # install of Heartfly failed, or that it needs the network.
    repo, env = checkout(tmp_path)
    first = dev_sh_run(repo, env)
    assert first.returncode == 1
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pip could not install Heartfly and its dependencies into .venv"), first.stderr
    assert "network" in last and "./dev.sh run" in last
    # Nothing counts as installed: the next run (the network back) tries again.
    assert not (repo / ".venv" / ".installed").exists()
    again = dev_sh_run(repo, env)
    assert again.returncode == 1
    assert "installing Heartfly and its dependencies" in again.stderr


def test_a_venv_made_by_another_python_version_is_made_again(tmp_path: Path) -> None:
    # A distribution upgrade (Debian 12 to 13: /usr/bin/python3 from 3.11 to 3.13) leaves the
    # .venv's links working, to the new python3, which finds none of the .venv's packages: dev.sh
    # took the .venv for a good one and ran `heartfly` there (No module named 'heartfly'). Here the
    # .venv of a python3.10 is made by renaming the real one's site-packages folder.
    repo, env = checkout(tmp_path)
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(repo / ".venv")], check=True, env=env)
    [lib] = (repo / ".venv" / "lib").iterdir()
    lib.rename(lib.with_name("python3.10"))
    result = dev_sh_run(repo, env)
    assert f"{lib.name} runs it now, which finds none of its packages: making it again" in result.stderr, result.stderr
    assert lib.is_dir() and not lib.with_name("python3.10").exists()  # made again, by python3 as it is now


def test_a_venv_whose_python_fails_for_another_reason_is_left_as_it_is(tmp_path: Path) -> None:
    # Only a python gone, or of another version, makes dev.sh remove the .venv: not one that could
    # not run just now (out of memory, a signal), whose packages would all have to be downloaded again.
    repo, env = checkout(tmp_path)
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text("#!/bin/sh\nexit 1\n")
    (venv_bin / "python").chmod(0o755)
    result = dev_sh_run(repo, env)
    assert result.returncode == 1
    assert "making it again" not in result.stderr and (venv_bin / "python").exists(), result.stderr
