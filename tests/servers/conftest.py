"""Make the DNS server fixtures available to the tests in this directory (the lead wires them globally)."""

from .fixtures import auth_server, caching_resolver, dns_lab, fake_clock, loopback

__all__ = ["auth_server", "caching_resolver", "dns_lab", "fake_clock", "loopback"]
