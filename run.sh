#!/usr/bin/env bash
# Install dcv-bot into ./.venv (on first run, or when pyproject.toml changed) and start the Slack bot.
# Arguments are passed to `dcv serve`; run `./run.sh --help` for the command line.
set -euo pipefail
cd "$(dirname "$0")"

ensure_venv() {
  if python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "run.sh: Python's venv module is missing; install it (Debian: sudo apt-get install python3-venv)" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/dcv ] || [ pyproject.toml -nt .venv/.installed ]; then
  ensure_venv
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[postgres]"
  touch .venv/.installed
fi

if [ "${1:-}" = "--help" ]; then exec .venv/bin/dcv --help; fi
exec .venv/bin/dcv serve "$@"
