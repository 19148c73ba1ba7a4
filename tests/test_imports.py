"""Every module of the package imports on its own, as the first of Heartfly's a process imports.

A cycle among the modules can stay hidden while every entry point imports them in an order that
happens to work (the CLI, the server, the tests' conftest), and break a script or a tool that
imports one of them first (bench/reorder_orders.py imported heartfly.core.states first and failed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import heartfly

ROOT = Path(heartfly.__file__).resolve().parent


def modules() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the CLI
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # One interpreter per module would take a minute; one that forgets Heartfly's modules between
    # imports takes seconds and catches the same cycles.
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {modules()!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'heartfly' or m.startswith('heartfly.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        failed.append(f'{name}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""
