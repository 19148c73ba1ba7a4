#!/bin/sh
# Quick start: `./dev.sh run` serves the example config; `./dev.sh test` runs lint, types and tests.
# Creates its own virtualenv in .venv (Debian's python3 refuses system-wide pip installs).
set -eu
cd "$(dirname "$0")"
VENV=.venv
COMMAND="${1:-}"

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "error: Heartfly needs Python 3.11 or newer (python3 is $(python3 -V 2>&1))" >&2
    exit 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ]; then
        # Its python3 may be another version now (a distribution upgrade: /usr/bin/python3 from 3.11
        # to 3.13), which finds none of the .venv's packages: exit 3. Any other failure (it could
        # not run just now) leaves the .venv as it is: its packages are not downloaded again.
        "$VENV/bin/python" -c 'import os, sys; sys.exit(0 if os.path.isdir(os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")) else 3)' && return 0
        [ $? = 3 ] || return 0
        echo "$VENV was made by another Python version: $("$VENV/bin/python" -c 'import sys; print("python%d.%d" % sys.version_info[:2])') runs it now, which finds none of its packages: making it again" >&2
        rm -rf "$VENV"
    elif [ -e "$VENV" ] || [ -L "$VENV" ]; then
        # Made by a Python that is gone (a pyenv version removed, an interpreter moved): `python3 -m
        # venv` keeps its dangling links and fails, which read as a missing python3-venv.
        echo "$VENV was made by a Python that no longer runs ($(readlink "$VENV/bin/python3" || echo none)): making it again" >&2
        rm -rf "$VENV"
    fi
    echo "creating $VENV ..." >&2
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing Debian's python3-venv ..." >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        else
            echo "error: python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    echo "upgrading pip in $VENV ..." >&2
    "$VENV/bin/pip" install -q --upgrade pip
}

# Runs pip; if it fails, says what could not be installed and what to do, last: pip's own last
# words on an index it cannot reach are about setuptools and "likely not a problem with pip".
pip_or_say() {
    what="$1"
    shift
    "$@" && return 0
    echo "error: pip could not install $what into $VENV (pip's words above). It downloads them from PyPI, or the index pip is set up with: check the network (or pip's proxy, PIP_INDEX_URL), then run ./dev.sh $COMMAND again" >&2
    exit 1
}

# Reinstall only when the dependency list changed.
install() {
    extra="$1"
    stamp="$VENV/.installed$extra"
    want="$(cat pyproject.toml | cksum)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        # pip -q says nothing for a minute or so: say what is going on, and when it is done.
        if [ -n "$extra" ]; then what="Heartfly, its dependencies and the $extra tools"; else what="Heartfly and its dependencies"; fi
        echo "installing $what into $VENV (about a minute) ..." >&2
        pip_or_say "$what" "$VENV/bin/pip" install -q -e ".$extra"
        echo "$want" > "$stamp"
        echo "installed" >&2
    fi
}

# The healthchecks-io client, which tests/test_hc_api.py drives against Heartfly: a virtualenv of
# its own, as its users would have (it pins croniter < 4, older than Heartfly's).
install_hcio() {
    "$VENV/hcio/bin/python" -c 'import healthchecks_io' >/dev/null 2>&1 && return 0
    echo "installing the healthchecks-io client into $VENV/hcio (for tests/test_hc_api.py) ..." >&2
    python3 -m venv "$VENV/hcio"
    pip_or_say "the healthchecks-io client" "$VENV/hcio/bin/pip" install -q "healthchecks-io==0.4.4"
}

case "${1:-}" in
    run)
        ensure_venv
        install ""
        shift
        exec "$VENV/bin/heartfly" serve -c heartfly.example.toml "$@"
        ;;
    test)
        ensure_venv
        install "[test]"
        install_hcio
        shift
        "$VENV/bin/ruff" check heartfly tests bench
        "$VENV/bin/ruff" format --check heartfly tests
        "$VENV/bin/mypy"
        layers="$("$VENV/bin/lint-imports" --no-cache 2>&1)" || { echo "$layers"; exit 1; }
        echo "$layers" | grep -E "^Contracts:"
        exec "$VENV/bin/pytest" -q "$@"
        ;;
    *)
        echo "usage: ./dev.sh run | test [pytest args]" >&2
        exit 2
        ;;
esac
