"""The usual arguments of `heartfly ping` and `heartfly run`, read without click (heartfly.entry).

It knows the same options and environment variables as heartfly.client.cli, and gives up (None)
on anything else: --help, an unknown option, a missing value, a bad exit code, `run` without
`--`. Then click reads the arguments and answers as it always does, so a mistake looks the same
either way; this reader never has to explain one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from heartfly.client import jobside

TYPE_CHECKING = False  # typing costs a cron tick ~5 ms; mypy reads this name as True
if TYPE_CHECKING:
    from typing import Any, NoReturn

COMMON = {"-c": "config_path", "--config": "config_path", "--spool": "spool_dir", "--retries": "retries",
          "--ping-budget": "ping_budget"}  # fmt: skip
ENV = {"config_path": "HEARTFLY_CONFIG", "spool_dir": "HEARTFLY_SPOOL", "retries": "HEARTFLY_RETRIES",
       "ping_budget": "HEARTFLY_PING_BUDGET"}  # fmt: skip
PING_FLAGS = {"--start": "start", "--fail": "fail", "--log": "log", "--progress": "progress", "--stdin": "from_stdin"}
PING_VALUES = {**COMMON, "--exit-code": "exit_code", "-m": "message", "--message": "message", "--rid": "rid"}
RUN_VALUES = {**COMMON, "--timeout": "timeout", "--kill-after": "kill_after", "--rid": "rid", "--tail": "tail_size"}


def parse(command: str, args: Sequence[str], env: Mapping[str, str]) -> Callable[[], NoReturn] | None:
    """A call of jobside.send_ping or run_job for these arguments, or None to leave them to click."""
    if command == "run":
        if "--" not in args:
            return None
        cut = list(args).index("--")
        read = _options(args[:cut], RUN_VALUES, {})
        if read is None or not args[cut + 1 :]:
            return None
        target, kwargs = read
        kwargs = _with_env(kwargs, env)
        return partial(jobside.run_job, target, list(args[cut + 1 :]), **kwargs)
    read = _options(args, PING_VALUES, PING_FLAGS, multiple={"--metric": "metrics"})
    if read is None:
        return None
    target, kwargs = read
    if "exit_code" in kwargs:
        code = kwargs["exit_code"]
        if not (code.isascii() and code.isdigit() and int(code) <= 255):
            return None
        kwargs["exit_code"] = int(code)
    kwargs = _with_env(kwargs, env)
    return partial(jobside.send_ping, target, **kwargs)


def _options(
    args: Sequence[str], values: Mapping[str, str], flags: Mapping[str, str], multiple: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(the one positional argument, the options by parameter name), or None for anything else."""
    multiple = multiple or {}
    kwargs: dict[str, Any] = {}
    target: str | None = None
    items = iter(args)
    for arg in items:
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in flags and not eq:
            kwargs[flags[name]] = True
        elif name in values or name in multiple:
            if not eq:
                value = next(items, None)  # type: ignore[assignment]
                if value is None:
                    return None
            if name in multiple:
                kwargs.setdefault(multiple[name], []).append(value)
            elif values[name] in kwargs:
                return None  # given twice: click's rule (the last wins) is not worth repeating here
            else:
                kwargs[values[name]] = value
        elif arg.startswith("-") or target is not None:
            return None
        else:
            target = arg
    return (target, kwargs) if target is not None else None


def _with_env(kwargs: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Options not given come from their environment variables (an empty one counts as unset)."""
    for name, var in ENV.items():
        if name not in kwargs and env.get(var):
            kwargs[name] = env[var]
    if "config_path" in kwargs or "spool_dir" in kwargs:
        from pathlib import Path  # not on a plain tick: ~10 ms

        for name in ("config_path", "spool_dir"):
            if name in kwargs:
                kwargs[name] = Path(kwargs[name])
    return kwargs
