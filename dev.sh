#!/usr/bin/env bash
# One entry point for newcomers and CI:
#   ./dev.sh demo   set up (first time), make a synthetic workspace, open JupyterLab on it
#   ./dev.sh test   set up (first time), run the whole test suite
# Set-up makes .venv and installs jupyter-guard with its test extras; pip builds the
# JupyterLab extension with the jlpm that ships in jupyterlab (Node.js 18+ needed to build
# from source only; users installing the wheel need no Node.js).
set -euo pipefail
cd "$(dirname "$0")"

VENV=${JUPYTER_GUARD_VENV:-.venv}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  local stamp="$VENV/.jupyter-guard-installed"
  local sources
  sources=$( (cat pyproject.toml package.json yarn.lock; find labextension -type f -not -path '*/__tests__/*' | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sources" ] || [ -n "${CI:-}" ]; then
    python -m pip install -q --upgrade pip
    python -m pip install -q -e ".[test]"
    echo "$sources" > "$stamp"
  fi
  # pip installed the built labextension and the server-extension config (shared-data),
  # exactly as a user's `pip install jupyter-guard` does; no `labextension develop` needed
}

case "${1:-}" in
  demo)
    shift
    setup
    exec jupyter guard demo "$@"
    ;;
  test)
    shift
    setup
    # exit code 5 (no tests collected) fails like any other failure
    python -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [--dir DIR] [--port N] [--no-browser] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
