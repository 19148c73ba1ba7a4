"""The files a config names whose content is secret: the API token file, the Healthchecks API key
files, smtp.password_file and server.database_password_file.

Read in a step of their own, after the pure parse (config.parse_config reads no files): the
loader calls read_secrets with the files the parse found. A problem reading one is listed where
the parse would have met it, so the file's problems keep their order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HC_KEY_LENGTH = 32  # Healthchecks' API keys are 32 characters; some of its clients check
MIN_TOKEN = 16  # characters of an API token (here when loading, and in web.runtime.load_token when serving)


@dataclass(frozen=True, slots=True)
class SecretFile:
    """A secret file named at key path `where`; `at` is how many problems the parse had listed before it."""

    where: str
    path: Path
    at: int


@dataclass(frozen=True, slots=True)
class Secrets:
    password: str | None  # smtp.password_file's content
    database_password: str | None  # server.database_password_file's content
    problems: list[str]  # already merged into the parse's problems, in the file's order


def read_secrets(found: Sequence[SecretFile], problems: Sequence[str]) -> Secrets:
    """Check the API token file and read the passwords; `problems` are the parse's, merged with these."""
    password = database_password = None
    merged = list(problems)
    for secret in reversed(found):  # from the last, so an earlier `at` still points where it did
        try:
            if secret.where == "server.api_token_file":
                _token_file(secret.path, check_token)
            elif secret.where.startswith("server.hc_api_key"):
                _token_file(secret.path, check_hc_key)
            elif secret.where == "server.database_password_file":
                database_password = _read_secret(secret.path)
            else:
                password = _read_secret(secret.path)
        except ValueError as exc:
            merged.insert(secret.at, f"{secret.where}: {exc}")
    return Secrets(password, database_password, merged)


def _token_file(path: Path, check: Callable[[str, Path], str]) -> None:
    """An API token or key file, checked as `serve` reads it (a missing one is created there)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    check(token, path)


def check_token(token: str, path: Path) -> str:
    """The API token read from `path`, if long enough to be one; ValueError if not."""
    if len(token) < MIN_TOKEN:
        raise ValueError(f"the API token in {path} is shorter than {MIN_TOKEN} characters")
    return token


def check_hc_key(key: str, path: Path) -> str:
    """A Healthchecks API key read from `path`: 32 characters, as Healthchecks' clients expect."""
    if len(key) != HC_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
        raise ValueError(f"the key in {path} is not a Healthchecks API key ({HC_KEY_LENGTH} characters, no spaces)")
    return key


def _read_secret(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def open_to_all(files: Sequence[tuple[str, Path | None]]) -> list[str]:
    """A warning for each secret file (its setting, its path) that any user of this machine may read
    or write: a token written by hand with umask 022 is 0644, and whoever reads it uses the whole
    API (or the SMTP login, the database). One that cannot be looked at says nothing here."""
    found = []
    for where, path in files:
        try:
            mode = path.stat().st_mode if path is not None else 0
        except (OSError, ValueError):
            continue
        if mode & 0o006:
            may = "read" if mode & 0o004 else "write"
            found.append(
                f"{where}: any user of this machine may {may} {path} (mode {mode & 0o777:04o}):"
                f" chmod o-rwx {path}, and replace what it holds if someone may have read it"
            )
    return found
