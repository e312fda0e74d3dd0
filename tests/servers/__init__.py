"""In-process DNS servers for the test suite: authoritative servers, a caching resolver, and fixtures.

* :class:`AuthServer` (``dnsserver.py``): authoritative server on one loopback address, UDP+TCP.
* :class:`CachingResolver` (``resolver.py``): caching recursive resolver forwarding to AuthServers.
* ``zones.py``: :func:`zone_text` and zone-editing helpers.
* ``fixtures.py``: pytest fixtures ``dns_lab``, ``caching_resolver``, ``auth_server``, ``fake_clock``.
"""

from ._base import Fault, FaultKind, QueryInfo, QueryRecord, is_loopback
from .dnsserver import AuthServer
from .resolver import CachingResolver, FakeClock
from .zones import bump_serial, get_serial, nameservers_for, parse_zone, zone_text

__all__ = [
    "AuthServer",
    "CachingResolver",
    "FakeClock",
    "Fault",
    "FaultKind",
    "QueryInfo",
    "QueryRecord",
    "bump_serial",
    "get_serial",
    "is_loopback",
    "nameservers_for",
    "parse_zone",
    "zone_text",
]
