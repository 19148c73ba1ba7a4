"""The TOML file: every key of the contract, and one clear line per problem naming its key path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import rtoml

from heartfly.core import config as config_module
from heartfly.core import keyclash
from heartfly.core.checkconfig import Origin
from heartfly.core.clock import FakeClock
from heartfly.core.config import ConfigError, load_config, parse_config, with_stored_checks
from heartfly.core.dburl import PostgresDatabase
from heartfly.core.keyclash import key_id
from heartfly.core.stored_checks import check_uuid
from heartfly.core.units import UnitError, format_duration, parse_duration, parse_size
from heartfly.server import housekeeping
from tests.conftest import ConfigWriter, new_key, problems
from tests.proc import heartfly
from tests.storeutil import query
from tests.test_restart import ping, running


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), ("3s250ms", 3.25), ("0s", 0)],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1x", "30m1h", "5m5m", "-5m", "1.h", "١٥m", "１５m"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)


def test_durations_format_back_compactly() -> None:
    assert [format_duration(s) for s in (5400, 0.25, 0, 86400 + 1)] == ["1h30m", "250ms", "0s", "1d1s"]


def test_sizes_parse_with_decimal_and_binary_units() -> None:
    assert (parse_size("100KB"), parse_size("1MiB"), parse_size("512")) == (100_000, 1_048_576, 512)
    with pytest.raises(UnitError):
        parse_size("١٠٠KB")  # another script's digits are no number here


def test_the_example_config_is_valid_and_shows_every_key() -> None:
    path = Path(__file__).parent.parent / "heartfly.example.toml"
    config = load_config(path)
    backup = config.checks["nightly-backup"]
    assert backup.cron == "0 3 * * *" and backup.timezone == "Europe/Berlin"
    assert backup.max_runtime == 7200 and backup.min_runtime == 60 and backup.grace == 1800
    assert backup.start_key and backup.fail_key
    assert config.checks["user-sync"].every == 900
    text = path.read_text()
    from heartfly.core.config_alerts import _ALERT_KEYS, _CHANNEL_KEYS, _SMTP_KEYS
    from heartfly.core.config_keys import CHECK_KEYS, DEFAULT_KEYS, MAINTENANCE_KEYS, SERVER_KEYS

    channel_keys = set().union(*_CHANNEL_KEYS.values())
    for key in SERVER_KEYS | DEFAULT_KEYS | CHECK_KEYS | _SMTP_KEYS | _ALERT_KEYS | channel_keys | MAINTENANCE_KEYS:
        assert f"{key} =" in text or f"{key} = " in text, key


def test_defaults_are_inherited_and_overridden(write_config: ConfigWriter) -> None:
    config = write_config(
        f"""
        [defaults]
        grace = "10m"
        timezone = "Asia/Tokyo"
        [checks.a]
        key = "{new_key()}"
        cron = "0 * * * *"
        [checks.b]
        key = "{new_key()}"
        cron = "0 * * * *"
        grace = "1m"
        timezone = "UTC"
        """
    )
    a, b = config.checks["a"], config.checks["b"]
    assert (a.grace, a.timezone) == (600, "Asia/Tokyo")
    assert (b.grace, b.timezone) == (60, "UTC")


def test_a_check_of_the_common_shape_keeps_a_name_of_its_own_not_the_parsers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser's name strings sit among its document's, which die after the read: one kept per
    # check would keep their memory held (checkconfig._own). The map is keyed by the check's copy.
    documents: list[dict[str, Any]] = []
    real_loads = rtoml.loads

    def parse(text: str) -> dict[str, Any]:
        documents.append(real_loads(text))
        return documents[-1]

    path = tmp_path / "heartfly.toml"
    path.write_text(f'[checks.nightly-backup]\nkey = "{new_key()}"\nevery = "1d"\n', encoding="utf-8")
    monkeypatch.setattr(rtoml, "loads", parse)
    ((name, check),) = load_config(path).checks.items()
    parsers = next(iter(documents[0]["checks"]))
    assert name == parsers == "nightly-backup" and name is check.name and name is not parsers


def test_a_stored_check_whose_start_key_repeats_its_own_key_is_refused(write_config: ConfigWriter) -> None:
    # The file's checks are held to it by unique_keys; a check kept in the database is held to it here.
    config, key = write_config(""), new_key()
    tables: dict[str, tuple[Origin, dict[str, Any]]] = {"made": ("api", {"key": key, "start_key": key, "every": "1h"})}
    problem = "checks.made.start_key: the same key is already used by checks.made.key"
    with pytest.raises(ConfigError, match=re.escape(problem)):
        with_stored_checks(config, tables)
    left_out: list[str] = []
    assert "made" not in with_stored_checks(config, tables, left_out).checks and left_out == [problem]
    # Between two stored checks, the problem names the field the other one holds the key in.
    other: dict[str, tuple[Origin, dict[str, Any]]] = {
        "a": ("api", {"key": new_key(), "start_key": key, "every": "1h"}),
        "b": ("api", {"key": key, "every": "1h"}),
    }
    with pytest.raises(
        ConfigError, match=re.escape("checks.b.key: the same key is already used by checks.a.start_key")
    ):
        with_stored_checks(config, other)


def test_relative_paths_are_relative_to_the_config_file(write_config: ConfigWriter, tmp_path: Path) -> None:
    config = write_config("")
    assert config.server.database == (tmp_path / "heartfly.db").resolve()
    assert config.server.api_token_file == (tmp_path / "api-token").resolve()


def test_an_unknown_key_is_an_error_with_a_did_you_mean(write_config: ConfigWriter) -> None:
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\ngrase = "5m"\n')
    assert found == ['checks.a.grase: unknown key (did you mean "grace"?)']


@pytest.mark.parametrize(
    ("line", "meant"),
    [
        ('tz = "Europe/Berlin"', "timezone"),  # Healthchecks' names for a check's settings
        ('schedule = "0 3 * * *"', "cron"),
        ('desc = "nightly dump"', "description"),
        ('Grace = "5m"', "grace"),  # TOML keys are case-sensitive
    ],
)
def test_a_key_named_as_healthchecks_or_in_another_case_names_the_key_meant(
    write_config: ConfigWriter, line: str, meant: str
) -> None:
    # A newcomer writing a nightly job's zone as Healthchecks' `tz` read "checks.a.tz: unknown
    # key", with no word of what the key is called here.
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\ncron = "0 3 * * *"\n{line}\n')
    assert found == [f'checks.a.{line.split()[0]}: unknown key (did you mean "{meant}"?)']


def test_healthchecks_timeout_names_every_and_never_timezone(write_config: ConfigWriter) -> None:
    # Healthchecks' `timeout` is a check's period (docs/healthchecks.md: `every`); difflib found
    # "timezone" closest, and a newcomer moving a check over set its zone. In [defaults], which
    # has no `every`, nothing is the key meant: no hint rather than a wrong one.
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\ntimeout = 3600\n')
    assert 'checks.a.timeout: unknown key (did you mean "every"?)' in found, found
    found = problems(write_config, '[defaults]\ntimeout = 3600\nTZ = "UTC"\n')
    assert found == ["defaults.timeout: unknown key", 'defaults.TZ: unknown key (did you mean "timezone"?)'], found


def test_a_section_named_in_capitals_names_the_section_meant(write_config: ConfigWriter) -> None:
    found = problems(write_config, '[SMTP]\nhost = "mail.example.com"\n')
    assert found == ['SMTP: unknown key (did you mean "smtp"?)']


def test_unknown_sections_and_server_keys_are_errors(write_config: ConfigWriter) -> None:
    found = problems(write_config, "[sever]\nx = 1\n", server='lissten = "1.2.3.4:5"')
    assert 'server.lissten: unknown key (did you mean "listen"?)' in found
    assert any(p.startswith('sever: unknown key (did you mean "server"?)') for p in found)


def test_every_problem_is_reported_at_once_with_its_key_path(write_config: ConfigWriter) -> None:
    found = problems(
        write_config,
        """
        [checks.a]
        key = "short"
        every = "soon"
        [checks.b]
        key = "bbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        cron = "61 * * * *"
        timezone = "Mars/Olympus"
        [checks.c]
        key = "cccccccccccccccccccccccccccc"
        [checks.d]
        key = "dddddddddddddddddddddddddddd"
        every = "1h"
        cron = "* * * * *"
        grace = 5
        """,
    )
    joined = "\n".join(found)
    for path in (
        "checks.a.key:",
        "checks.a.every:",
        "checks.b.cron:",
        "checks.b.timezone:",
        "checks.c:",
        "checks.d:",
        "checks.d.grace: expected a string, got an integer",
    ):
        assert path in joined, path


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("every = 15m", 'durations and sizes are strings, in quotes: every = "15m"'),  # TOML: a number, then letters
        ("every = 1h30m  # nightly", 'in quotes: every = "1h30m"'),
        ("every = 60", 'checks.a.every: expected a string, got an integer: a duration is a string with its unit, like'
                       ' every = "60s"'),
        ("every = 1.5", 'like every = "1.5s"'),
    ],
)  # fmt: skip
def test_a_duration_written_without_quotes_is_refused_with_the_line_that_fixes_it(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "heartfly.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:0"\n[checks.a]\nkey = "{new_key()}"\n{line}\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_a_key_given_twice_in_a_table_is_named_with_both_its_lines(write_config: ConfigWriter) -> None:
    # Copied from heartfly.example.toml, which sets grace already, a second grace read "invalid
    # TOML: Cannot overwrite a value (at line 5, column 9)": which key, and where the first one is,
    # left to find.
    with pytest.raises(ConfigError) as info:
        write_config(f'[checks.a]\nkey = "{new_key()}"\ngrace = "5m"\nevery = "15m"\n  grace = "3m"  # more\n')
    (problem,) = info.value.problems
    assert "Cannot overwrite a value" in problem and problem.endswith(
        ": grace is set twice in this table, on lines 8 and 10: keep one"
    ), problem


@pytest.mark.parametrize(
    ("text", "told", "lines"),
    [
        # A line that reads as a key's inside a multi-line string is no setting of it: the first
        # grace is on line 2, not the description's line 4.
        ('[checks.a]\ngrace = "5m"\ndescription = """\ngrace = 1\n"""\ngrace = "3m"\n', "grace", (2, 6)),
        # The description is set twice; its second value ends on a line that reads as a grace.
        ('[checks.a]\ngrace = "5m"\ndescription = "a"\ndescription = """\ngrace = "2m""""\n', None, None),
        # Lines as TOML counts them: U+2028 and U+0085 inside a string or comment break no line.
        (
            '[checks.a]\ndescription = "one\u2028two" # \x85\nevery = "1h"\ngrace = "5m"\nevery = "2h"\n',
            "every",
            (3, 5),
        ),
        # Saved on Windows, with a byte order mark and CRLFs.
        ('\ufeff[checks.a]\r\ngrace = "5m"\r\nevery = "1h"\r\ngrace = "3m"\r\n', "grace", (2, 4)),
        ('[[maintenance]]\nname = "a"\n[[maintenance]]\nname = "b"\nname = "c"\n', "name", (4, 5)),
    ],
)
def test_a_key_given_twice_is_named_only_with_the_lines_toml_sets_it_on(
    tmp_path: Path, text: str, told: str | None, lines: tuple[int, int] | None
) -> None:
    path = tmp_path / "hb.toml"
    path.write_bytes(text.encode())
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "Cannot overwrite a value" in problem, problem
    if lines is None:
        assert "set twice" not in problem, problem
    else:
        assert problem.endswith(f": {told} is set twice in this table, on lines {lines[0]} and {lines[1]}: keep one")


@pytest.mark.parametrize("line", ["every = 15M", "every = 2H"])
def test_a_bare_duration_in_capitals_gets_no_fix_that_is_refused_in_turn(write_config: ConfigWriter, line: str) -> None:
    # Quoted, "15M" is refused again ('expected a duration like "90s", "15m"'): durations' units are
    # small letters (a size's, "100KB", are not), so `every = "15M"` would be a fix that fixes nothing.
    with pytest.raises(ConfigError) as info:
        write_config(f'[checks.a]\nkey = "{new_key()}"\n{line}\n')
    assert "Expected newline" in info.value.problems[0] and "in quotes" not in info.value.problems[0]


def test_a_number_where_a_path_or_zone_goes_gets_no_duration_advice(write_config: ConfigWriter) -> None:
    found = problems(
        write_config, f'[checks.a]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ntimezone = 1\n', server="database = 5"
    )
    assert found == [
        "server.database: expected a string, got an integer",
        "checks.a.timezone: expected a string, got an integer",
    ]


def test_min_runtime_must_be_shorter_than_max_runtime(write_config: ConfigWriter) -> None:
    found = problems(
        write_config, f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmax_runtime = "1m"\nmin_runtime = "2m"\n'
    )
    assert found == ["checks.a.min_runtime: must be shorter than max_runtime"]


@pytest.mark.parametrize(
    ("first_owner", "second", "server", "problem"),
    [
        ("key", "start_key", False, "checks.b.start_key: the same key is already used by checks.a.key"),
        ("", "fail_key", True, "checks.b.fail_key: the same key is already used by server.ping_key"),
    ],
)
def test_a_key_used_twice_is_an_error_naming_both_places(
    write_config: ConfigWriter, first_owner: str, second: str, server: bool, problem: str
) -> None:
    key = new_key()
    first = key if first_owner == "key" else new_key()
    found = problems(
        write_config,
        f'[checks.a]\nkey = "{first}"\nevery = "1h"\n'
        f'[checks.b]\nkey = "{new_key()}"\n{second} = "{key}"\nevery = "1h"\n',
        server=f'ping_key = "{key}"' if server else "",
    )
    assert found == [problem]


def test_one_uuid_as_two_checks_keys_in_upper_and_lower_case_is_refused(write_config: ConfigWriter) -> None:
    # A UUID key is the check's uuid in Healthchecks' API: "6F1C..." and "6f1c..." would give two
    # checks one uuid, and /api/v3/checks/<uuid> would read, pause or delete only one of them.
    key = str(uuid.uuid4())
    found = problems(
        write_config,
        f'[checks.a]\nkey = "{key}"\nevery = "1h"\n[checks.b]\nkey = "{key.upper()}"\nevery = "1h"\n',
    )
    assert found == ["checks.b.key: the same key is already used by checks.a.key"]
    config = write_config(f'[checks.a]\nkey = "{key.upper()}"\nevery = "1h"\n')
    tables: dict[str, tuple[Origin, dict[str, Any]]] = {"made": ("auto", {"key": key, "every": "1d"})}
    with pytest.raises(ConfigError, match=re.escape("checks.made.key: the same key is already used by checks.a.key")):
        with_stored_checks(config, tables)
    # Keys that are not UUIDs stay told apart by their case, as the ping URLs that carry them are.
    other = "k" * 36
    assert (
        len(
            write_config(
                f'[checks.a]\nkey = "{other}"\nevery = "1h"\n[checks.b]\nkey = "{other.upper()}"\nevery = "1h"\n'
            ).checks
        )
        == 2
    )


def test_a_key_of_a_uuids_digits_with_its_hyphens_moved_is_not_that_uuid(write_config: ConfigWriter) -> None:
    # uuid.UUID reads 32 digits with four hyphens anywhere: two checks keyed "01234567-89ab-..." and
    # "0123456789ab-cdef-..." had one uuid in Healthchecks' API, which reached only one of them.
    digits = uuid.uuid4().hex
    canonical = str(uuid.UUID(digits))
    moved = f"{digits[:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:24]}-{digits[24:]}"
    config = write_config(f'[checks.a]\nkey = "{canonical}"\nevery = "1h"\n[checks.b]\nkey = "{moved}"\nevery = "1h"\n')
    uuids = {name: check_uuid(check) for name, check in config.checks.items()}
    assert uuids["a"] == canonical and uuids["b"] != canonical, uuids


def test_keys_in_lower_case_are_told_apart_without_a_uuid_reading_per_key(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call per key (is it a UUID in upper case?) doubled the key check of a start of 100k checks
    # keyed by UUIDs (Healthchecks' keys, the API's), and added a quarter to the check of the keys
    # of every check made through the API: keys without a capital letter need none.
    calls: list[str] = []
    real = key_id

    def counted(key: str) -> str:
        calls.append(key)
        return real(key)

    monkeypatch.setattr(config_module, "key_id", counted)
    monkeypatch.setattr(keyclash, "key_id", counted)
    lower = [str(uuid.uuid4()) for _ in range(50)] + [new_key().lower() for _ in range(50)]
    body = "".join(f'[checks.c{i}]\nkey = "{key}"\nevery = "1h"\n' for i, key in enumerate(lower))
    config = write_config(body, server=f'ping_key = "{uuid.uuid4()}"')
    key = str(uuid.uuid4())
    made: dict[str, tuple[Origin, dict[str, Any]]] = {"made": ("api", {"key": key, "every": "1d"})}
    assert "made" in with_stored_checks(config, made).checks
    assert set(calls) <= {key}, calls  # the made check's own key, not the file's 100 and its ping_key


def test_a_check_name_must_be_url_safe(write_config: ConfigWriter) -> None:
    found = problems(write_config, f'[checks."my job/x"]\nkey = "{new_key()}"\nevery = "1h"\n')
    assert found[0].startswith("checks.my job/x: a check name uses")


def test_broken_toml_names_the_file_and_the_line(write_config: ConfigWriter, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server\nlisten = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "invalid TOML" in info.value.problems[0] and "line 1" in info.value.problems[0]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_file_that_is_not_utf8_is_refused_naming_the_line_of_the_first_bad_byte(tmp_path: Path, bom: bytes) -> None:
    # An editor that saved "café" as Latin-1: one byte among thousands, which the error must locate.
    path = tmp_path / "heartfly.toml"
    path.write_bytes(
        bom + f'[checks.a]\nkey = "{new_key()}"\ndescription = "caf\xe9"\nevery = "1h"\n'.encode("latin-1")
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2
    assert f"{path}: not UTF-8 text (line 3: byte 0xe9); save the file as UTF-8" in result.stderr, result.stderr


def test_an_integer_too_long_for_python_is_a_config_error_naming_its_line_not_a_traceback(tmp_path: Path) -> None:
    # tomli reads integers with int(), which refuses more than 4300 digits with a bare ValueError.
    path = tmp_path / "heartfly.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:0"\nkeep_pings = {"9" * 5000}\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{path}: invalid TOML: an integer of more than 4300 digits (line 3)" in result.stderr


def test_a_keep_pings_past_what_the_database_can_hold_is_refused(write_config: ConfigWriter) -> None:
    # 2**63 was taken, and the first prune's DELETE ... OFFSET 9223372036854775808 failed its commit
    # ("Python int too large to convert to SQLite INTEGER"), retried for ever: every ping got 503.
    huge = problems(write_config, "", server="keep_pings = 9223372036854775808")
    assert huge == ["server.keep_pings: must be at most 1000000000 (pings kept per check)"]
    assert write_config("", server="keep_pings = 1000000000").server.keep_pings == 1_000_000_000


async def test_the_largest_keep_pings_taken_prunes_and_pings_are_still_stored(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 1000000000")
    async with running(config, FakeClock()) as engine:
        await ping(engine, "a")
        await housekeeping.prune(engine)
        await engine.writer.flush()
        assert not engine.writer.failing
        await ping(engine, "a")
    assert query(config, "SELECT count(*) FROM pings") == [(2,)]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "cannot read" in info.value.problems[0]


def test_cron_macros_and_ipv6_listen_addresses_are_accepted(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\ncron = "@daily"\n', server='listen = "[::1]:9999"')
    assert config.checks["a"].cron == "@daily"
    assert (config.server.host, config.server.port) == ("::1", 9999)


def test_check_config_exits_2_and_prints_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[checks.a]\nkey = "x"\nevery = "1h"\ncolour = "red"\n')
    result = subprocess.run(
        [sys.executable, "-m", "heartfly", "check-config", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "error: checks.a.key:" in result.stderr and "error: checks.a.colour: unknown key" in result.stderr


@pytest.mark.parametrize("text", ["", "# heartfly\n\n   # nothing here yet\n"])
def test_check_config_refuses_an_empty_file_as_a_reload_of_it_would(tmp_path: Path, text: str) -> None:
    # A file truncated by accident (`> heartfly.toml`) passed check-config ("OK, 0 check(s)", exit
    # 0), and the reload that followed was refused: the two disagreed on whether the file is usable.
    path = tmp_path / "c.toml"
    path.write_text(text)
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: the file is empty or holds only comments;")
    assert "reload" in result.stderr


def test_check_config_lists_each_check_with_its_schedule_due_time_and_urls(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\npublic_url = "https://hb.example.com"\n'
        f'[checks.backup]\nkey = "{key}"\ncron = "30 2 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "heartfly", "check-config", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert 'backup: cron "30 2 * * *" (Europe/Berlin), grace 5 min' in result.stdout
    assert "next due if watching starts now:" in result.stdout and ("CET" in result.stdout or "CEST" in result.stdout)
    assert f"https://hb.example.com/ping/{key}/start" in result.stdout


def test_check_config_shows_no_grace_for_a_pipeline_step_which_is_due_by_within_alone(tmp_path: Path) -> None:
    # "etl-load: within 8 s of etl-transform's success, grace 5 min": a step is told step_missed
    # at its upstream's event plus `within`, no grace after it, so whoever read the line waited
    # 5 minutes more for an alert. A fan-in step without max_runtime has its batches judged by it.
    path = tmp_path / "c.toml"
    path.write_text(
        f'[checks.extract]\nkey = "{new_key()}"\nevery = "1d"\n'
        f'[checks.load]\nkey = "{new_key()}"\nafter = "extract.success"\nwithin = "8s"\n'
        f'[checks.shards]\nkey = "{new_key()}"\nafter = "extract"\nwithin = "1h"\nexpect = 2\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "heartfly", "check-config", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "extract: every day, grace 5 min" in lines
    assert "load: within 8 s of extract's success" in lines
    assert "shards: within 1 h of extract's start, grace 5 min" in lines


@pytest.mark.parametrize("escape", ["\\r", "\\n", "\\t", "\\u0000", "\\u007f", "\\u001b"])
def test_a_webhook_header_value_with_a_control_character_fails_check_config(tmp_path: Path, escape: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[channels.hook]\ntype = "webhook"\nurl = "https://example.com/h"\n'
        f'headers = {{ Authorization = "Bearer s3cret{escape}x" }}\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["hook"]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "heartfly", "check-config", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stdout
    assert "error: channels.hook.headers:" in result.stderr and "control character" in result.stderr
    assert "s3cret" not in result.stderr  # the value may be a credential


@pytest.mark.parametrize("name", ["Idempotency-Key", "idempotency-key"])
def test_a_webhook_header_that_would_replace_the_idempotency_key_is_a_config_error(
    write_config: ConfigWriter, name: str
) -> None:
    # Every alert would carry the same key, and a receiver that drops repeats would drop all but the first.
    found = problems(
        write_config,
        f'[channels.hook]\ntype = "webhook"\nurl = "https://example.com/h"\nheaders = {{ {name} = "x" }}\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["hook"]\n',
    )
    assert len(found) == 1 and found[0].startswith("channels.hook.headers:"), found
    assert "Idempotency-Key" in found[0] and "per alert" in found[0]


def _unusable(tmp_path: Path, what: str) -> str:
    """A config text that made load_config raise something other than ConfigError."""
    (tmp_path / "loop").symlink_to("loop")
    check = f'[checks.a]\nkey = "{new_key()}"\ncron = "0 3 * * *"\n'
    return {
        "zone": check + 'timezone = "Europe"\n',  # a folder of the zone database
        "home": '[server]\ndatabase = "~nosuchuser/x.db"\n',
        "loop": '[server]\ndatabase = "loop/x.db"\n',
        "deep": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    }[what]


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("zone", "checks.a.timezone: unknown time zone"),
        ("home", "server.database: "),
        ("loop", "server.database: "),
        ("deep", "nested too deeply"),
    ],
)
def test_check_config_reports_an_unusable_value_as_a_config_error_with_exit_2(
    tmp_path: Path, what: str, said: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_unusable(tmp_path, what))
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and said in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("europe/berlin", '(did you mean "Europe/Berlin"?)'),  # the database's names have their case
        ("Berlin", '(did you mean "Europe/Berlin"?)'),
        ("Europe/Berln", '(did you mean "Europe/Berlin"?)'),
        ("GMT+2", '(use an IANA name such as "Europe/Berlin")'),  # not Etc/GMT+2, which is UTC-2
    ],
)
def test_an_unknown_time_zone_is_refused_naming_the_zone_meant(
    write_config: ConfigWriter, zone: str, said: str
) -> None:
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ntimezone = "{zone}"\n')
    assert found == [f'checks.a.timezone: unknown time zone "{zone}" {said}']


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('every = "3000000d"', "checks.a.every: at most 3650d (10 years)"),
        (f'every = "{"9" * 400}s"', "checks.a.every: at most 3650d (10 years)"),
        ('every = "0.0001ms"', "checks.a.every: must be at least 1s"),
        ('every = "1h"\ngrace = "500ms"', "checks.a.grace: must be 0s (no late state) or at least 1s"),
        ('every = "1h"\nstall = "999ms"', "checks.a.stall: must be at least 1s"),
        ('every = "1h"\nrepeat = "50ms"', "checks.a.repeat: must be at least 1m"),
        ('every = "1h"\nrepeat = "59s"', "checks.a.repeat: must be at least 1m"),
        ('every = "1h"\nmax_runtime = "3651d"', "checks.a.max_runtime: at most 3650d (10 years)"),
    ],
)
def test_a_duration_outside_its_sane_range_is_refused_naming_the_limit(
    write_config: ConfigWriter, line: str, said: str
) -> None:
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\n{line}\n')
    assert len(found) == 1 and found[0].startswith(said), found


def test_durations_at_the_limits_are_accepted(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1s"\ngrace = "0s"\nstall = "1s"\nrepeat = "1m"\n'
        f'[checks.b]\nkey = "{new_key()}"\nevery = "3650d"\ngrace = "3650d"\n'
    )
    a, b = config.checks["a"], config.checks["b"]
    assert (a.every, a.grace, a.stall, a.repeat) == (1, 0, 1, 60)
    assert b.every == b.grace == 3650 * 86400


def test_a_bad_default_is_reported_once_not_once_per_check(write_config: ConfigWriter) -> None:
    checks = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(3))
    found = problems(write_config, '[defaults]\ngrace = "5x"\nrepeat = "1s"\nchannels = [1]\n' + checks)
    assert [p.split(":")[0] for p in found] == ["defaults.grace", "defaults.repeat", "defaults.channels"], found


def test_check_config_refuses_a_short_api_token_as_serve_does(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("short\n")
    path = tmp_path / "c.toml"
    path.write_text('[server]\napi_token_file = "token"\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 2, result.stdout
    assert f"error: server.api_token_file: the API token in {tmp_path / 'token'} is shorter than 16" in result.stderr


def test_a_random_cron_field_is_refused_and_macros_read_in_any_case(write_config: ConfigWriter) -> None:
    found = problems(write_config, f'[checks.a]\nkey = "{new_key()}"\ncron = "R 3 * * *"\n')
    assert found == ['checks.a.cron: "R 3 * * *" picks a random time (R); a schedule must be fixed']
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\ncron = "@DAILY"\n[checks.b]\nkey = "{new_key()}"\n'
                          'cron = "0 3 * mar,apr fri"\n')  # fmt: skip
    assert config.checks["a"].cron == "@daily"


def test_a_utf8_byte_order_mark_at_the_top_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbf[server]\nlisten = "127.0.0.1:0"\n')
    assert load_config(path).server.port == 0


def test_parsing_reads_no_files_and_loading_lists_secret_file_problems_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("short\n")
    text = (
        '[server]\napi_token_file = "token"\nkeep_pings = 0\n'
        '[smtp]\nhost = "mail"\nusername = "u"\npassword_file = "missing"\nport = 0\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    path = tmp_path / "heartfly.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as pure:
        parse_config(tomllib.loads(text), path)  # neither file read: only the file's own problems
    assert pure.value.problems == ["server.keep_pings: must be positive", "smtp.port: expected a port from 1 to 65535"]
    with pytest.raises(ConfigError) as loaded:
        load_config(path)
    assert loaded.value.problems == [
        f"server.api_token_file: the API token in {tmp_path / 'token'} is shorter than 16 characters",
        "server.keep_pings: must be positive",
        "smtp.port: expected a port from 1 to 65535",
        f"smtp.password_file: cannot read {tmp_path / 'missing'}: No such file or directory",
    ]
    (tmp_path / "secret").write_text("hunter2\n")
    good = text.replace('"missing"', '"secret"').replace("port = 0\n", "").replace("keep_pings = 0\n", "")
    (tmp_path / "token").write_text("x" * 16)
    path.write_text(good)
    smtp = parse_config(tomllib.loads(good), path).smtp
    assert smtp is not None and smtp.password is None and smtp.password_file == tmp_path / "secret"
    loaded_smtp = load_config(path).smtp
    assert loaded_smtp is not None and loaded_smtp.password == "hunter2"


def test_a_postgresql_url_is_the_database_and_its_password_file_is_read_with_the_secrets(
    write_config: ConfigWriter, tmp_path: Path
) -> None:
    (tmp_path / "db-password").write_text("s3cret\n")
    config = write_config(
        "", server='database = "postgresql://heartfly@db.example:5433/hf"\ndatabase_password_file = "db-password"'
    )
    database = config.server.database
    assert isinstance(database, PostgresDatabase)
    assert (database.url, database.password) == ("postgresql://heartfly@db.example:5433/hf", "s3cret")
    assert database.password_file == (tmp_path / "db-password").resolve()
    assert "s3cret" not in repr(config)


def test_a_password_in_the_url_never_shows_in_the_config_or_its_errors(write_config: ConfigWriter) -> None:
    config = write_config("", server='database = "postgres://hf:hunter2@db/hf?sslmode=require"')
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.server.database)
    assert str(config.server.database) == "postgres://hf:***@db/hf?sslmode=require"
    found = problems(write_config, "", server='database = "postgresql://hf:hunter2@db:port/hf?password=hunter2"')
    assert found == [
        "server.database: postgresql://hf:***@db:port/hf?password=*** is not a usable PostgreSQL URL"
        " (postgresql://user@host:port/dbname)"
    ]


def test_the_passphrase_of_a_client_key_in_the_url_never_shows_either(write_config: ConfigWriter) -> None:
    # libpq takes every connection parameter in the URL: sslpassword unlocks the client's key,
    # and the URL as shown (errors, and the log line of a new database) carried it in clear.
    url = "postgresql://hf@db/hf?sslmode=verify-full&sslkey=/etc/heartfly/hf.key&sslpassword=SECRET&application_name=x"
    config = write_config("", server=f'database = "{url}"')
    assert str(config.server.database) == url.replace("SECRET", "***")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://hf:pass/SECRET@db.example/hf",  # a "/" not percent-encoded: urlsplit reads the port "pass"
        "postgresql://hf:pass?SECRET@db.example/hf",
        "postgresql://hf:pass#SECRET@db.example/hf",
        "postgresql://hf:p@SECRET@db.example/hf",  # an "@" not percent-encoded
        # Digits then a "/": read as a port and a path, the URL refused, and its error said SECRET
        "postgresql://hf:2024/SECRET@db.example/hf",
        "postgresql://hf:2024/p@SECRET@db.example/hf",
    ],
)
def test_a_password_with_a_character_it_should_have_percent_encoded_never_shows_either(
    write_config: ConfigWriter, url: str
) -> None:
    try:  # the URL is refused (its error shown by check-config, a refused reload, the journal) or kept (and shown)
        shown = [str(write_config("", server=f'database = "{url}"').server.database)]
    except ConfigError as exc:
        shown = exc.problems
    assert not any("SECRET" in line for line in shown), shown
    assert any("postgresql://hf:***@db.example/hf" in line for line in shown), shown


def test_a_url_refused_for_a_password_it_did_not_percent_encode_says_how_to_write_it(
    write_config: ConfigWriter,
) -> None:
    # The error shows the URL with the password hidden, so it read "the database name is one path
    # segment" of a URL whose path, as shown, was one segment: the "/" that split it was hidden.
    found = problems(write_config, "", server='database = "postgresql://hf:2024/SECRET@db.example/hf"')
    assert found == [
        "server.database: postgresql://hf:***@db.example/hf: the database name is one path segment; a password's"
        ' "/", "@", "?" and "#" are written %2F, %40, %3F and %23 in the URL'
    ]
    found = problems(write_config, "", server='database = "postgresql://hf:pw@db.example/a/b"')
    assert found == ["server.database: postgresql://hf:***@db.example/a/b: the database name is one path segment"]


def test_check_config_shows_its_times_in_display_timezone_and_a_cron_checks_own_zone_beside_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\ndisplay_timezone = "Asia/Tokyo"\n'
        f'[checks.hourly]\nkey = "{new_key()}"\nevery = "1h"\n'
        f'[checks.backup]\nkey = "{new_key()}"\ncron = "30 2 * * *"\ntimezone = "Europe/Berlin"\n'
        '[[maintenance]]\nstart = "2030-01-01 09:00"\ntimezone = "Asia/Tokyo"\nduration = "1h"\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    hourly, backup, window = result.stdout.split("\n\n")[1:]
    assert re.search(r"next due if watching starts now: \S+ \S+ JST$", hourly, re.M), hourly
    assert re.search(r"next due if watching starts now: \S+ 10:30:00 JST \(\S+ 02:30:00 CES?T, the check's zone\)$",
                     backup, re.M), backup  # fmt: skip
    assert "once, at 2030-01-01 09:00:00 JST" in window


@pytest.mark.parametrize(
    ("server", "said"),
    [
        ('database = "postgresql://db:5432"', "server.database: postgresql://db:5432 names no database"),
        ('database = "postgresql://db/a/b"', "server.database: postgresql://db/a/b: the database name is one path"),
        ('database_password_file = "pw"', 'server.database_password_file: only applies to a "postgresql://" database'),
        (
            'database = "postgresql://u:p@db/hf"\ndatabase_password_file = "pw"',
            "server.database: has a password and database_password_file names one: give it once",
        ),
        ('database = "postgresql://db/hf"\nsynchronous = "full"', "server.synchronous: is SQLite's; PostgreSQL's"),
        ('database = "postgresql://db/hf"\ndatabase_password_file = "missing"', "cannot read"),
        ('database_pasword_file = "pw"', 'unknown key (did you mean "database_password_file"?)'),
    ],
)
def test_a_bad_postgresql_setting_is_one_clear_line(write_config: ConfigWriter, server: str, said: str) -> None:
    found = problems(write_config, "", server=server)
    assert len(found) == 1 and said in found[0], found


def test_a_body_limit_past_what_a_ping_may_carry_is_taken_as_16mib_with_a_warning_not_advertised(
    tmp_path: Path, write_config: ConfigWriter
) -> None:
    # 20MiB was taken and sent as Ping-Body-Limit, so runitor sent up to 20 MiB of output: every
    # body past 16 MiB is answered 413, and the job's end ping was lost. A config error instead
    # would leave an upgraded install unable to start at its next restart (the .deb's postinst
    # only declines to restart it): the most a ping may carry is used, and check-config says so.
    config = write_config("", server='body_limit = "20MiB"')
    assert config.server.body_limit == 16 * 1024 * 1024
    assert write_config("", server='body_limit = "16MiB"').server.body_limit == 16 * 1024 * 1024
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nbody_limit = "20MiB"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        "warning: server.body_limit: more than 16MiB, the most a ping's body may be (a longer one is refused):"
        " 16MiB is used and advertised" in result.stderr
    ), result.stderr


def test_the_body_limit_warning_is_given_also_when_every_check_is_made_through_the_api(
    write_config: ConfigWriter,
) -> None:
    # A file without checks (every check made through the API) got the "no checks" line alone:
    # the capped body_limit went unmentioned.
    from heartfly.core.config_advice import warnings

    found = warnings(write_config("", server='body_limit = "20MiB"'))
    assert any(w.startswith("server.body_limit: more than 16MiB") for w in found), found


def test_check_config_warns_of_a_cron_check_whose_grace_is_zero_as_every_run_would_be_told_down(
    write_config: ConfigWriter,
) -> None:
    # A cron job runs at its tick, so its ping comes after it: with grace 0s the tick is the
    # deadline, and every run on time is told down (missed), then recovered, a moment later.
    from heartfly.core.config_advice import warnings

    config = write_config(
        f'[defaults]\ngrace = "0s"\n[checks.a]\nkey = "{new_key()}"\ncron = "* * * * *"\n'
        f'[checks.b]\nkey = "{new_key()}"\ncron = "0 3 * * *"\ngrace = "5m"\n'
        f'[checks.c]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    found = [w for w in warnings(config) if "grace" in w]
    assert found == [
        "1 cron check(s) have grace 0s (a): a job pings after the tick it runs at, which is its deadline,"
        " so every run is told down and then up; give them a grace (how late a run may be)"
    ]


def test_check_config_lists_each_checks_whole_rule_set_not_only_its_schedule(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[channels.hook]\ntype = "webhook"\nurl = "https://example.com/h"\n'
        '[channels.ops]\ntype = "webhook"\nurl = "https://example.com/o"\n'
        f'[checks.backup]\nkey = "{new_key()}"\nevery = "1d"\nmax_runtime = "2h"\nmin_runtime = "1m"\n'
        'stall = "10m"\nassert = ["bytes > 0", "duration < 1h"]\nfailures_before_alert = 3\n'
        'channels = ["hook", "ops"]\nrepeat = "4h"\n'
        f'[checks.shards]\nkey = "{new_key()}"\ncron = "0 * * * *"\nexpect = 2\nmembers = ["w1", "w2"]\nchannels = []\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    backup, shards = result.stdout.split("\n\n")[1:]
    assert backup.splitlines()[1:6] == [
        "  max_runtime 2 h, min_runtime 1 min, stall 10 min",
        '  assert "bytes > 0", "duration < 1h"',
        "  down after 3 failures in a row (failures_before_alert)",
        "  alerts via hook, ops; reminders every 4 h while down",
        "  next due if watching starts now: " + backup.split("starts now: ")[1].splitlines()[0],
    ]
    assert shards.splitlines()[1:3] == [
        "  expect 2 successes per run id (members: w1, w2; a success naming none does not count)",
        "  alerts: none (no channels)",
    ]


def test_with_no_config_found_the_error_names_every_place_tried(tmp_path: Path) -> None:
    if Path("/etc/heartfly/heartfly.toml").exists():
        pytest.skip("this machine has /etc/heartfly/heartfly.toml, which the commands would read")
    env = {k: v for k, v in os.environ.items() if k != "HEARTFLY_CONFIG"}
    for command in (["status"], ["check-config"], ["history", "x"], ["resume", "x"], ["ping", "x"]):
        result = subprocess.run(
            [sys.executable, "-m", "heartfly", *command], capture_output=True, text=True, timeout=30,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert result.returncode == 2, (command, result.stderr)
        assert f"none at ./heartfly.toml ({tmp_path / 'heartfly.toml'}) or /etc/heartfly/heartfly.toml" in result.stderr
        assert "set HEARTFLY_CONFIG" in result.stderr
    named = subprocess.run(
        [sys.executable, "-m", "heartfly", "status"], capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={**env, "HEARTFLY_CONFIG": str(tmp_path / "missing.toml")},
    )  # fmt: skip
    assert named.returncode == 2
    assert f"none at {tmp_path / 'missing.toml'} (named by HEARTFLY_CONFIG;" in named.stderr
    given = heartfly("status", "-c", str(tmp_path / "gone.toml"))
    assert given.returncode == 2 and f"none at {tmp_path / 'gone.toml'} (named by -c/--config;" in given.stderr


def test_keep_history_is_a_duration_of_at_least_the_longest_record_window(write_config: ConfigWriter) -> None:
    assert write_config("").server.keep_history == 400 * 86400.0
    assert write_config("", server='keep_history = "90d"').server.keep_history == 90 * 86400.0
    assert problems(write_config, "", server='keep_history = "1d"') == ["server.keep_history: must be at least 30d"]
    assert problems(write_config, "", server="keep_history = 30")[0].startswith("server.keep_history:")


def test_check_config_refuses_a_file_check_named_like_one_made_through_the_api_as_serve_does(tmp_path: Path) -> None:
    # A file's check under the name of one made through the API: check-config said OK and exited
    # 0, then the start (the package's upgrade restarts on that OK) failed with exit 2. The table
    # `heartfly export` writes (the check's key too) takes the check over: both accept it.
    import json
    import urllib.request

    from tests.proc import Server

    path = tmp_path / "hb.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\nhc_api_key_file = "hc-key"\n')
    with Server(path) as server:
        body = json.dumps({"name": "nightly", "timeout": 3600}).encode()
        headers = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip(), "Content-Type": "application/json"}
        request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201
    exported = heartfly("export", "nightly", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    base = path.read_text()
    path.write_text(base + exported.stdout)
    assert heartfly("check-config", "-c", str(path)).returncode == 0  # heartfly export's: the file takes it over
    path.write_text(base + exported.stdout.replace('key = "', 'key = "other-key-'))  # the name, not the check
    checked = heartfly("check-config", "-c", str(path))
    assert checked.returncode == 2, checked.stdout
    # Told how the file takes the check over, not only "delete one of them": deleting the API's
    # copy first leaves the check served by neither until the reload (its pings answer 404)
    clash = (
        f"error: checks.nightly: is defined in {path} and was also made through the API, with another key; give"
        " the file's the API's key to take the check over (heartfly export nightly prints it), or delete one"
    )
    assert checked.stderr.startswith(clash), checked.stderr
    started = heartfly("serve", "-c", str(path))
    assert started.returncode == 2 and clash in started.stderr


def test_check_config_without_a_database_yet_does_not_make_one(tmp_path: Path) -> None:
    path = tmp_path / "hb.toml"
    path.write_text(f'[server]\ndatabase = "hb.db"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    checked = heartfly("check-config", "-c", str(path))
    assert checked.returncode == 0, checked.stderr
    assert not (tmp_path / "hb.db").exists()


def test_check_config_refuses_a_file_that_drops_the_channel_of_a_check_made_through_the_api(tmp_path: Path) -> None:
    # A reload refuses it (the stored check would lose its alerts); check-config said OK.
    import json
    import urllib.request

    from tests.proc import Server

    path = tmp_path / "hb.toml"
    server_table = '[server]\nlisten = "127.0.0.1:0"\ndatabase = "hb.db"\nhc_api_key_file = "hc-key"\n'
    path.write_text(server_table + '[channels.ops]\ntype = "log"\n')
    with Server(path) as server:
        body = json.dumps({"name": "nightly", "timeout": 3600, "channels": "ops"}).encode()
        headers = {"X-Api-Key": (tmp_path / "hc-key").read_text().strip(), "Content-Type": "application/json"}
        request = urllib.request.Request(f"{server.url}/api/v3/checks/", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201
    path.write_text(server_table + '[channels.oncall]\ntype = "log"\n')
    checked = heartfly("check-config", "-c", str(path))
    assert checked.returncode == 2, checked.stdout
    assert checked.stderr == (
        f"error: checks.nightly.channels: no channel ops in {path} (nightly was made through the API, not in the"
        " file: fix the file, or change or delete it through the API)\n"
    )


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("mail.example.org:587", 'smtp.host: "mail.example.org:587" is not a host name or address alone: set host'
                                 ' = "mail.example.org" and port = 587'),
        ("smtp://mail.example.org", 'smtp.host: "smtp://mail.example.org" is not a host name or address alone: set'
                                    ' host = "mail.example.org"'),
        # An IPv6 address written as in a URL: looked up as a name, as "mail.example.org:587" was
        ("[::1]", 'smtp.host: "[::1]" is not a host name or address alone: set host = "::1"'),
        ("[2001:db8::25]:587", 'smtp.host: "[2001:db8::25]:587" is not a host name or address alone: set host ='
                               ' "2001:db8::25" and port = 587'),
        ("smtps://mail.example.org:465", 'smtp.host: "smtps://mail.example.org:465" is not a host name or address'
                                         ' alone: set host = "mail.example.org", port = 465 and security = "tls"'),
        ("/run/postfix.sock", 'smtp.host: "/run/postfix.sock" is not a host name or address alone: a socket path'
                              ' is not taken: give the TCP address of the relay (host = "localhost" for one here)'),
        ("mail example.org", 'smtp.host: "mail example.org" is not a host name or address: give the name alone'
                             ' (host = "mail.example.com")'),
        ("", "smtp.host: missing"),
    ],
)  # fmt: skip
def test_an_smtp_host_with_a_port_or_a_scheme_in_it_is_refused_at_load_not_looked_up_for_a_day(
    host: str, problem: str
) -> None:
    # Taken as a name, it was looked up at every attempt: "cannot reach SMTP server", retried all day.
    text = f'[smtp]\nhost = "{host}"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    with pytest.raises(ConfigError) as refused:
        parse_config(tomllib.loads(text), Path("heartfly.toml"))
    assert refused.value.problems == [problem]


@pytest.mark.parametrize("host", ["mail.example.org", "mail.example.org.", "127.0.0.1", "::1", "fe80::1"])
def test_an_smtp_host_name_or_address_alone_is_taken(host: str) -> None:
    text = f'[smtp]\nhost = "{host}"\n[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n'
    assert parse_config(tomllib.loads(text), Path("heartfly.toml")).smtp.host == host  # type: ignore[union-attr]
