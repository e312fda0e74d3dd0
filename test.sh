#!/usr/bin/env bash
# Install dcv-bot with its test dependencies into ./.venv and run the whole test suite.
# As root on Debian it also installs the real server software the interoperability tier and the
# database tests use (Knot, NSD, Unbound, nginx, PostgreSQL); elsewhere those tests are skipped
# with the reason. Extra arguments go to pytest (e.g. ./test.sh -k dns -x).
set -euo pipefail
cd "$(dirname "$0")"

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "test.sh: Python's venv module is missing (Debian: sudo apt-get install python3-venv)" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed-dev ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch .venv/.installed-dev
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -x .ci/install-realservers.sh ]; then
  .ci/install-realservers.sh
fi

exec .venv/bin/python -m pytest "$@"
