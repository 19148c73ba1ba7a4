"""README.md and docs/*.md: every shell example that pings Heartfly, run as written with bash.

One real `heartfly serve` serves a copy of heartfly.example.toml (the config the examples' keys
come from) on a free loopback port. Each ```sh block with a curl or `heartfly ping|run` line runs
under `bash -e -o pipefail` in a folder holding what a reader has beside it (the example config,
its api-token, a .venv/bin/heartfly, a job.log), after the doc's host names, placeholders and
system paths are substituted by the test server's (SUBSTITUTIONS). curl answers 400 with exit
status 0, so a curl on PATH that wraps the real one reports every HTTP status, and each must be 2xx.

Blocks that quote a job file from tests/guides or tests/recipes verbatim are run, with their own
assertions, by test_guides.py and test_recipes.py; here they are skipped, saying so.

The README's table of config keys is checked against the keys the config takes, and alerts.md's
webhook schema against the reasons a down alert can carry, and the docs against every command and
option of the command line, and every metric /metrics serves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.proc import Server
from tests.test_guides import GUIDES, closed_port, need
from tests.test_recipes import RECIPES

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PINGS = re.compile(r"\bcurl\b|\bheartfly (?:ping|run)\b")
CRON_LINE = re.compile(r"^(?:\S+\s+){5}(?:root\s+)?(?=heartfly\b)", re.MULTILINE)  # "m h dom mon dow [user] cmd"
HTTP_STATUS = re.compile(r"^curl-answered (\d{3}) (\S*)$", re.MULTILINE)

HC_UUID = "8116e449-d71c-4112-8f5d-a66f60902091"  # docs/client.md's Healthchecks check, migrated with its UUID
PING_KEY = "example-ping-key-change-me-0001"
# What the docs address that is not this test's server, in the order they are replaced.
SUBSTITUTIONS = [
    ("http://127.0.0.1:8765", "{url}"),  # the example config's own address
    ("https://hb.example.com", "{url}"),  # the docs' public URL
    ("https://hc-ping.com/<project-ping-key>/<slug>", "{url}/ping/" + PING_KEY + "/nightly-backup"),
    ("https://hc-ping.com/", "{url}/ping/"),  # Heartfly speaks Healthchecks' ping protocol
    ("/ping/6f1c2b0a-…", "/ping/example-key-nightly-backup-01"),
    ("/ping/KEY", "/ping/example-key-user-sync-0000001"),
    ("/etc/heartfly/api-token", "{home}/api-token"),
    ("/etc/heartfly/hc-api-key", "{home}/hc-api-key"),
    ("/usr/local/bin/backup.sh", "{home}/backup.sh"),
    ("/var/backups/", "{home}/"),
]
STAND_INS = {"pg_dump": "echo 'pg_dump: dumped 3 tables'", "backup.sh": "echo 'backup done'"}


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repository
    line: int  # of the opening fence
    code: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def ping_blocks() -> list[Block]:
    """Every shell block of the README and docs that has a curl or `heartfly ping|run` line."""
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if PINGS.search(match.group(1)):
                line = text.count("\n", 0, match.start()) + 1
                blocks.append(Block(str(path.relative_to(ROOT)), line, match.group(1)))
    return blocks


def quoted_job(block: Block) -> str | None:
    """The tests/guides or tests/recipes file the block quotes verbatim, if it does."""
    for folder in (GUIDES, RECIPES):
        for path in folder.iterdir():
            if path.is_file() and path.read_text(encoding="utf-8") == block.code:
                return f"tests/{folder.name}/{path.name}"
    return None


@dataclass
class Reader:
    """A reader's machine: a folder with the example config and a served Heartfly."""

    home: Path
    url: str
    env: dict[str, str]

    def script(self, block: Block) -> str:
        code = CRON_LINE.sub("", block.code)  # a crontab line: run its command
        for doc_text, ours in SUBSTITUTIONS:
            code = code.replace(doc_text, ours.format(url=self.url, home=self.home))
        return code


def stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def tools(home: Path) -> Path:
    """bin/: heartfly from this tree, curl that reports each answer's status, and stand-ins for
    the jobs the examples run."""
    bin_dir = home / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir, "heartfly", f'exec "{sys.executable}" -m heartfly "$@"')
    stand_in(
        bin_dir,
        "curl",
        f'exec "{need("curl")}" --write-out \'%{{stderr}}curl-answered %{{http_code}} %{{url_effective}}\\n\' "$@"',
    )
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "heartfly").symlink_to(bin_dir / "heartfly")
    for name, body in STAND_INS.items():
        stand_in(bin_dir if "." not in name else home, name, body)
    return bin_dir


def example_config(home: Path, port: int) -> Path:
    """heartfly.example.toml on the test's port, its webhook pointed at a closed local port (no
    alert leaves the machine), and one check migrated from Healthchecks with its UUID as key."""
    text = (ROOT / "heartfly.example.toml").read_text(encoding="utf-8")
    text = text.replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    text = text.replace("https://example.com/heartfly", f"http://127.0.0.1:{closed_port()}/heartfly")
    text += f'\n[checks.migrated-from-healthchecks]\nkey = "{HC_UUID}"\nevery = "1d"\n'
    text = text.replace('# hc_api_key_file = "hc-api-key"', 'hc_api_key_file = "hc-api-key"')  # docs/healthchecks.md
    config = home / "heartfly.example.toml"
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    home = tmp_path_factory.mktemp("reader")
    bin_dir = tools(home)
    config = example_config(home, closed_port())
    (home / "job.log").write_text("rows: 1200\nfinished\n", encoding="utf-8")
    with Server(config) as server:
        token = (home / "api-token").read_text(encoding="utf-8").strip()
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(home),
            "HEARTFLY_CONFIG": str(config),
            "HEARTFLY_SPOOL": str(home / "spool"),
            # What the examples take from the reader's own job and install:
            "TOKEN": token,
            "PING_KEY": PING_KEY,
            "SUMMARY": "rows: 1200",
        }
        yield Reader(home, server.url, env)


def run_block(reader: Reader, block: Block) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", reader.script(block)],
        cwd=reader.home,
        env={**os.environ, **reader.env},
        capture_output=True,
        text=True,
        timeout=60,
    )


BLOCKS = ping_blocks()


def test_the_docs_have_ping_examples_to_run_and_none_names_a_fixed_unix_time() -> None:
    assert len(BLOCKS) >= 8, [str(b) for b in BLOCKS]
    fixed = [str(b) for b in BLOCKS if re.search(r"\b1[7-9]\d{8}\b", b.code)]
    assert not fixed, f"refused once older than max_ping_age (7 days): {fixed}"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_each_shell_example_in_the_docs_runs_as_written_and_every_ping_is_answered_2xx(
    reader: Reader, block: Block
) -> None:
    quoted = quoted_job(block)
    if quoted is not None:
        pytest.skip(f"quotes {quoted} verbatim: run by test_guides.py / test_recipes.py")
    result = run_block(reader, block)
    answers = HTTP_STATUS.findall(result.stderr)
    assert result.returncode == 0, f"{block} exited {result.returncode}:\n{result.stderr}"
    assert not re.search(r"^heartfly: (?:error|warning):", result.stderr, re.MULTILINE), result.stderr
    assert all(status.startswith("2") for status, _ in answers), f"{block}: {answers}\n{result.stderr}"
    assert answers or "heartfly " in block.code, f"{block} made no request"


def test_the_stand_ins_are_only_for_jobs_the_examples_run() -> None:
    code = "\n".join(b.code for b in BLOCKS)
    assert all(name in code for name in STAND_INS)


def test_the_readmes_config_table_names_every_key_the_config_takes() -> None:
    from heartfly.core import config_alerts, config_keys

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table_row = re.compile(r"^\| `\[\[?(\S+?)\]\]?` \| (.*) \|$", re.MULTILINE)
    rows = {m[1]: set(re.findall(r"`([^`]+)`", m[2])) for m in table_row.finditer(text)}
    taken = {
        "server": config_keys.SERVER_KEYS,
        "defaults": config_keys.DEFAULT_KEYS,
        "checks.NAME": config_keys.CHECK_KEYS,
        "maintenance": config_keys.MAINTENANCE_KEYS,
        "smtp": config_alerts._SMTP_KEYS,
        "alerts": config_alerts._ALERT_KEYS,
        "channels.NAME": set().union(*config_alerts._CHANNEL_KEYS.values()),
    }
    missing = {table: sorted(keys - rows.get(table, set())) for table, keys in taken.items()}
    assert missing == {table: [] for table in taken}


def test_the_webhook_schema_names_every_reason_a_down_alert_can_carry() -> None:
    from heartfly.core.statetypes import Reason

    text = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    line = text[text.index("- `reason` is") :].split("\n- ", 1)[0]
    assert [r.value for r in Reason if f"`{r.value}`" not in line] == []


def test_the_webhook_schema_names_every_field_of_the_json_body() -> None:
    # A receiver is written from the docs: a field they leave out (a pipeline's step) is not read.
    from heartfly.notify.message import Alert, webhook_json

    text = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    schema = text[text.index("### webhook") : text.index("The presets send")]
    alert = Alert(key="flip-1", event="down", payload={"check": "load"}, last_ping=None, link="https://x/checks/load")
    assert [key for key in webhook_json(alert) if f'"{key}"' not in schema and f"`{key}`" not in schema] == []


def test_the_docs_name_every_command_and_every_option_the_command_line_takes() -> None:
    import click

    from heartfly.cli.main import main

    docs = "".join(path.read_text(encoding="utf-8") for path in DOCS)
    commands = [("", main), *main.commands.items()]
    unnamed = [name for name, _ in commands if name and f"heartfly {name}" not in docs]
    options = [(name, p.opts) for name, command in commands for p in command.params if isinstance(p, click.Option)]
    unmentioned = [(name, opts) for name, opts in options if "--help" not in opts and not any(o in docs for o in opts)]
    assert (unnamed, unmentioned) == ([], [])


def test_the_readme_names_every_metric_the_server_serves() -> None:
    source = (ROOT / "heartfly" / "web" / "metrics.py").read_text(encoding="utf-8")
    docs = "".join(path.read_text(encoding="utf-8") for path in DOCS).replace("`…_", "`heartfly_check_")
    served = set(re.findall(r'"(heartfly_[a-z_]+)"', source))  # the family names (_total, _info added on)
    assert len(served) > 10 and sorted(name for name in served if name not in docs) == []
