"""Fixtures of the real-server tier: one lab per session (Knot, NSD, Unbound, nginx on 127.53.0.0/16).

The tier needs root (port 53, iptables, network namespaces) and the Debian packages installed by
``.ci/install-realservers.sh``. Outside CI a missing piece skips the tier with the reason; with ``CI``
set it fails instead, so a CI run can never pass by skipping everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .lab import Lab
from .netns import Netns
from .procs import REQUIRED_PROGRAMS, missing_programs

INSTALL_HINT = "run .ci/install-realservers.sh"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable_reason() -> str | None:
    missing = missing_programs()
    if missing:
        packages = sorted({REQUIRED_PROGRAMS[m] for m in missing})
        return f"{', '.join(missing)} not installed (Debian packages: {' '.join(packages)}): {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "the real-server tier needs root (port 53, iptables, network namespaces)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    mine = [item for item in items if str(item.fspath).startswith(here)]
    for item in mine:
        item.add_marker(pytest.mark.realservers)
    if not mine:
        return
    reason = _unavailable_reason()
    if reason and not _in_ci():
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


def _require() -> None:
    reason = _unavailable_reason()
    if reason:
        # only reached in CI (elsewhere the items were skipped at collection)
        pytest.fail(f"real-server tier cannot run in CI: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    _require()
    the_lab = Lab().start()
    try:
        yield the_lab
    finally:
        the_lab.stop()


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A fresh, empty network namespace (loopback only), deleted after the test."""
    _require()
    ns = Netns()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A DNS label unique to this test, for names nobody else has asked about (no cache to inherit)."""
    import uuid

    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:30].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"
