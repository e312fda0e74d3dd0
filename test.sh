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

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # The interoperability tier: Knot, NSD, Unbound, nginx (tests/realservers).
  .ci/install-realservers.sh
  # The watch store's PostgreSQL tests start their own throw-away server; they need the binaries.
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "test.sh: installing postgresql"
    policy_created=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    if [ -n "$policy_created" ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
fi

exec .venv/bin/python -m pytest "$@"
