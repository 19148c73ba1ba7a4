"""The `heartfly` command. `heartfly ping` and `heartfly run` start on every cron tick of every
job, so their usual invocations go straight to heartfly.client.jobside, read by heartfly.client.quickargs
without importing click (about a third of their start-up). Everything else, and anything
quickargs does not recognise (--help, a typo, an unusual form), goes to the click CLI, which
then says exactly what it always says.
"""

from __future__ import annotations

import contextlib
import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] in ("ping", "run"):
        from heartfly.client import jobside, quickargs

        call = quickargs.parse(args[0], args[1:], os.environ)
        if call is not None:
            # On a usage problem click reads the arguments again and reports it as a usage error.
            with contextlib.suppress(jobside.UsageProblem):
                call()
    from heartfly.cli.main import main as cli

    cli()
