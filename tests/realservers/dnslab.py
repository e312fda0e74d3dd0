"""The DNS half of the lab: NSD for the root and TLD, Knot primary, NSD secondary, a lame NSD, two Unbounds.

See :mod:`tests.realservers.zones` for the address plan and the zones. Each daemon gets its own config
and working directory under the lab's temporary directory; :meth:`DnsLab.stop` stops exactly the
processes :meth:`DnsLab.start` launched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from . import zones
from .dnssec import SignedZone, sign_zone_text
from .netns import Firewall
from .procs import Daemon, program, run, wait_for


def query(
    address: str,
    name: str,
    rdtype: str = "SOA",
    *,
    recursive: bool = False,
    cd: bool = False,
    dnssec: bool = False,
    timeout: float = 1.0,
    tcp: bool = False,
) -> dns.message.Message:
    """One DNS query to ``address``:53 with EDNS (1232 bytes); RD only when ``recursive``."""
    msg = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, want_dnssec=dnssec)
    if not recursive:
        msg.flags &= ~dns.flags.RD
    if cd:
        msg.flags |= dns.flags.CD
    if tcp:
        return dns.query.tcp(msg, address, port=53, timeout=timeout)
    return dns.query.udp_with_fallback(msg, address, port=53, timeout=timeout)[0]


def txt_values(msg: dns.message.Message, name: str) -> list[str]:
    """The TXT strings at ``name`` in the answer (each record's strings joined, undecoded)."""
    values = []
    target = dns.name.from_text(name)
    for rrset in msg.answer:
        if rrset.name == target and rrset.rdtype == dns.rdatatype.TXT:
            values += [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset]
    return values


def serial_of(msg: dns.message.Message) -> int | None:
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


class DnsLab:
    def __init__(self, root: Path, *, netns: str | None = None, call: Callable[..., object] | None = None):
        self.root = root
        self.netns = netns
        # run a function where the lab's addresses are reachable (a netns worker thread, or right here)
        self._call = call or (lambda fn, *a, **k: fn(*a, **k))
        self.firewall = Firewall(netns)
        self.daemons: list[Daemon] = []
        self.signed: SignedZone | None = None
        self._held: tuple[str, list[str]] | None = None
        self._held_udp: tuple[str, list[str]] | None = None

    # -- queries, run where the lab lives ---------------------------------------------------------------

    def query(self, address: str, name: str, rdtype: str = "SOA", **kwargs: object) -> dns.message.Message:
        return self._call(query, address, name, rdtype, **kwargs)  # type: ignore[return-value]

    def serial(self, address: str, zone: str) -> int | None:
        msg = self.query(address, zone, "SOA", timeout=0.5)
        return serial_of(msg) if msg.rcode() == dns.rcode.NOERROR else None

    def wait_serial(self, address: str, zone: str, serial: int, timeout: float = 10.0) -> None:
        """Wait until ``address`` serves ``zone`` with ``serial`` or newer."""
        wait_for(
            lambda: (self.serial(address, zone) or 0) >= serial,
            timeout=timeout,
            what=f"{address} to serve {zone} serial {serial}",
        )

    def resolve(self, name: str, rdtype: str = "TXT", resolver: str = zones.RESOLVER, **kw: object):
        return self.query(resolver, name, rdtype, recursive=True, timeout=3.0, **kw)

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._write_parent()
            self._write_knot()
            self._write_secondary()
            self._write_lame()
            self._write_unbound("resolver", zones.RESOLVER, validator=False)
            self._write_unbound("validator", zones.VALIDATOR, validator=True)
            # the dead server: nothing listens there, and everything sent there is dropped silently
            self.firewall.drop_address(zones.DEAD)
            for daemon in self.daemons:
                daemon.start()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.firewall.clear()

    def _daemon(self, name: str, argv: list[str]) -> Daemon:
        daemon = Daemon(name, argv, self.root / name, netns=self.netns)
        daemon.workdir.mkdir(parents=True, exist_ok=True)
        self.daemons.append(daemon)
        return daemon

    def _wait_ready(self) -> None:
        checks: list[tuple[Daemon, Callable[[], object]]] = []
        by_name = {d.name: d for d in self.daemons}
        checks.append((by_name["parent"], lambda: self.serial(zones.ROOT, "lab.")))
        for zone in zones.PRIMARY_ZONES:
            checks.append((by_name["knot"], lambda z=zone: self.serial(zones.NS1, z)))
        for zone in zones.SECONDARY_ZONES:
            checks.append((by_name["secondary"], lambda z=zone: self.serial(zones.NS2, z)))
        checks.append(
            (
                by_name["lame"],
                lambda: self.query(zones.LAME, "lab.", timeout=0.5).rcode() == dns.rcode.REFUSED,
            )
        )
        for name, address in (("resolver", zones.RESOLVER), ("validator", zones.VALIDATOR)):
            checks.append(
                (
                    by_name[name],
                    lambda a=address: txt_values(self.resolve("ready.dyn.lab", resolver=a), "ready.dyn.lab"),
                )
            )
        for daemon, check in checks:

            def ready(daemon: Daemon = daemon, check: Callable[[], object] = check) -> object:
                daemon.check_alive()
                return check()

            try:
                wait_for(ready, timeout=15, what=f"{daemon.name} to answer")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}\n{daemon.name} log:\n{daemon.log_tail()}") from None

    # -- the registry: NSD for "." and "lab." ---------------------------------------------------------

    def _nsd_conf(self, workdir: Path, address: str, zone_clauses: str, extra: str = "") -> Path:
        conf = workdir / "nsd.conf"
        conf.write_text(
            f"""server:
    ip-address: {address}
    port: 53
    username: ""
    chroot: ""
    zonesdir: "{workdir}"
    database: ""
    zonelistfile: "{workdir}/zone.list"
    xfrdfile: "{workdir}/xfrd.state"
    xfrdir: "{workdir}"
    pidfile: "{workdir}/nsd.pid"
    logfile: "{workdir}/nsd-server.log"
    verbosity: 2
    server-count: 1
    reuseport: no
    do-ip6: no
    refuse-any: yes
    tcp-count: 64
{extra}
remote-control:
    control-enable: yes
    control-interface: "{workdir}/ctl.sock"

{zone_clauses}
"""
        )
        return conf

    def _write_parent(self) -> None:
        daemon = self._daemon("parent", [])
        workdir = daemon.workdir
        (workdir / "root.zone").write_text(zones.root_zone())
        (workdir / "lab.zone").write_text(zones.tld_zone())
        (workdir / "net.zone").write_text(zones.net_zone())
        clauses = (
            'zone:\n    name: "."\n    zonefile: "root.zone"\n\n'
            'zone:\n    name: "lab."\n    zonefile: "lab.zone"\n\n'
            'zone:\n    name: "net."\n    zonefile: "net.zone"\n'
        )
        conf = self._nsd_conf(workdir, zones.ROOT, clauses)
        daemon.argv = [program("nsd"), "-d", "-c", str(conf)]

    def _write_lame(self) -> None:
        daemon = self._daemon("lame", [])
        conf = self._nsd_conf(daemon.workdir, zones.LAME, "")
        daemon.argv = [program("nsd"), "-d", "-c", str(conf)]

    # -- the provider: Knot primary, NSD secondary ------------------------------------------------------

    def _write_knot(self) -> None:
        daemon = self._daemon("knot", [])
        workdir = daemon.workdir
        zonedir = workdir / "zones"
        zonedir.mkdir(exist_ok=True)
        (workdir / "db").mkdir(exist_ok=True)  # knotd does not create its journal/timer directory
        for zone, make in zones.CHILD_ZONES.items():
            (zonedir / f"{zone}.zone").write_text(make())
        self.signed = sign_zone_text(
            "signed.lab.", zones.signed_zone_unsigned(), expired=zones.SIGNED_EXPIRED
        )
        (zonedir / "signed.lab.zone").write_text(self.signed.text)
        zone_lines = []
        for zone in zones.PRIMARY_ZONES:
            notify = "\n    notify: secondary" if zone in zones.SECONDARY_ZONES else ""
            zone_lines.append(f"  - domain: {zone}.{notify}")
        conf = workdir / "knot.conf"
        conf.write_text(
            f"""server:
    rundir: "{workdir}"
    listen: {zones.NS1}@53
    tcp-workers: 2
    udp-workers: 2
    background-workers: 1

log:
  - target: stdout
    any: info

database:
    storage: "{workdir}/db"

control:
    listen: "{workdir}/ctl.sock"

remote:
  - id: secondary
    address: {zones.NS2}@53
    via: {zones.NS1}

acl:
  - id: transfer
    address: 127.53.0.0/16
    action: transfer

template:
  - id: default
    storage: "{zonedir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    serial-policy: increment
    semantic-checks: off
    acl: transfer

zone:
"""
            + "\n".join(zone_lines)
            + "\n"
        )
        self.knot_socket = str(workdir / "ctl.sock")
        daemon.argv = [program("knotd"), "-c", str(conf)]

    def _write_secondary(self) -> None:
        daemon = self._daemon("secondary", [])
        clauses = []
        for zone in zones.SECONDARY_ZONES:
            # xfrd sends its SOA checks and transfer requests from NS2, so hold_secondary() can block
            # exactly that traffic; retries stay short so a released secondary catches up at once
            clauses.append(
                f"""zone:
    name: "{zone}"
    zonefile: "{zone}.zone"
    outgoing-interface: {zones.NS2}
    request-xfr: {zones.NS1} NOKEY
    allow-notify: 127.53.0.0/16 NOKEY
    min-retry-time: 1
    max-retry-time: 2
"""
            )
        (daemon.workdir / "nsd.lab.zone").write_text(zones.nsd_zone())
        clauses.append('zone:\n    name: "nsd.lab"\n    zonefile: "nsd.lab.zone"\n')
        conf = self._nsd_conf(
            daemon.workdir, zones.NS2, "\n".join(clauses), extra="    xfrd-reload-timeout: 0"
        )
        self.nsd_secondary_conf = str(conf)
        daemon.argv = [program("nsd"), "-d", "-c", str(conf)]

    # -- resolvers ---------------------------------------------------------------------------------------

    def _write_unbound(self, name: str, address: str, *, validator: bool) -> None:
        daemon = self._daemon(name, [])
        workdir = daemon.workdir
        (workdir / "root.hints").write_text(
            f".  3600000 IN NS ns.nic.lab.\nns.nic.lab. 3600000 IN A {zones.ROOT}\n"
        )
        if validator:
            assert self.signed is not None
            dnssec = (
                '    module-config: "validator iterator"\n'
                f'    trust-anchor: "{self.signed.trust_anchor}"\n'
                "    val-log-level: 2\n"
            )
        else:
            dnssec = '    module-config: "iterator"\n'
        conf = workdir / "unbound.conf"
        conf.write_text(
            f"""server:
    interface: {address}
    port: 53
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    root-hints: "{workdir}/root.hints"
    discard-timeout: 0
    infra-host-ttl: 2
    infra-cache-min-rtt: 50
    outgoing-interface: {address}
    prefetch: no
    serve-expired: no
    qname-minimisation: yes
    harden-referral-path: no
    cache-min-ttl: 0
    val-override-date: 0
{dnssec}
remote-control:
    control-enable: yes
    control-interface: "{workdir}/ctl.sock"
    control-use-cert: no
"""
        )
        setattr(self, f"{name}_conf", str(conf))
        daemon.argv = [program("unbound"), "-d", "-c", str(conf)]

    # -- runtime changes -------------------------------------------------------------------------------

    def knotc(self, *args: str) -> str:
        return run(["knotc", "-s", self.knot_socket, "-t", "10", *args], netns=self.netns).stdout

    def edit(
        self,
        zone: str,
        *,
        add: Iterable[tuple[str, str, str]] = (),
        remove: Iterable[tuple[str, str]] = (),
        ttl: int = zones.DYN_RECORD_TTL,
        wait: bool = True,
    ) -> int:
        """Change ``zone`` on the Knot primary in one transaction; returns the new SOA serial.

        ``add``: (owner, type, rdata in zone-file syntax); ``remove``: (owner, type), all records of
        that type.
        With ``wait`` (default), also wait until the secondary serves the new serial, unless it is held.
        """

        def absolute(owner: str) -> str:
            # knotc takes a name without the final dot as relative to the zone (and appends it)
            return owner if owner.endswith(".") else owner + "."

        self.knotc("zone-begin", zone)
        try:
            for owner, rdtype in remove:
                self.knotc("zone-unset", zone, absolute(owner), rdtype)
            for owner, rdtype, rdata in add:
                self.knotc("zone-set", zone, absolute(owner), str(ttl), rdtype, rdata)
            self.knotc("zone-commit", zone)
        except BaseException:
            run(["knotc", "-s", self.knot_socket, "zone-abort", zone], netns=self.netns, check=False)
            raise
        serial = self.serial(zones.NS1, zone)
        assert serial is not None
        if wait and self._held is None and zone in zones.SECONDARY_ZONES:
            self.wait_serial(zones.NS2, zone, serial)
        return serial

    def set_txt(self, name: str, *values: str, ttl: int = zones.DYN_RECORD_TTL, wait: bool = True) -> int:
        """Replace the TXT records at ``name`` (in dyn.lab) by ``values``; returns the new serial."""
        quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
        return self.edit(
            "dyn.lab",
            remove=[(name, "TXT")] if self._exists(name, "TXT") else [],
            add=[(name, "TXT", q) for q in quoted],
            ttl=ttl,
            wait=wait,
        )

    def _exists(self, name: str, rdtype: str) -> bool:
        msg = self.query(zones.NS1, name, rdtype)
        return any(r.rdtype == dns.rdatatype.from_text(rdtype) for r in msg.answer)

    # -- holding the secondary back ------------------------------------------------------------------

    def hold_secondary(self) -> None:
        """Make the NSD secondary unable to reach the primary: NOTIFYs arrive, its refresh fails.

        The rules REJECT (TCP reset, ICMP unreachable) rather than DROP, so xfrd gives up at once instead
        of sitting on a half-open transfer connection that would delay :meth:`release_secondary`.
        """
        if self._held is not None:
            return
        self._held = self.firewall.add(
            "INPUT", *f"-s {zones.NS2} -d {zones.NS1} -p tcp -j REJECT --reject-with tcp-reset".split()
        )
        self._held_udp = self.firewall.add("INPUT", "-s", zones.NS2, "-d", zones.NS1, "-j", "REJECT")

    def release_secondary(self, zone: str | None = None, timeout: float = 10.0) -> None:
        """Lift :meth:`hold_secondary`, ask NSD to refresh now, and wait until it has the primary's serial."""
        if self._held is not None:
            self.firewall.delete(self._held)
            self._held = None
        if self._held_udp is not None:
            self.firewall.delete(self._held_udp)
            self._held_udp = None
        for z in [zone] if zone else zones.SECONDARY_ZONES:
            run(["nsd-control", "-c", self.nsd_secondary_conf, "transfer", z], netns=self.netns)
            primary = self.serial(zones.NS1, z)
            assert primary is not None
            self.wait_serial(zones.NS2, z, primary, timeout=timeout)

    @contextmanager
    def secondary_held(self) -> Iterator[None]:
        self.hold_secondary()
        try:
            yield
        finally:
            self.release_secondary()

    # -- resolver caches ---------------------------------------------------------------------------------

    def unbound_control(self, which: str, *args: str) -> str:
        conf = getattr(self, f"{which}_conf")
        return run(["unbound-control", "-c", conf, *args], netns=self.netns).stdout

    def flush(self, name: str) -> None:
        """Forget everything the resolvers cached at and below ``name`` (positive, negative, infra)."""
        for which in ("resolver", "validator"):
            self.unbound_control(which, "flush_zone", name)
            self.unbound_control(which, "flush_infra", "all")

    def prime(self, name: str, rdtype: str = "TXT") -> list[dns.message.Message]:
        """Ask both resolvers for ``name`` so they cache the current answer (or the current NXDOMAIN)."""
        return [self.resolve(name, rdtype, resolver=r) for r in (zones.RESOLVER, zones.VALIDATOR)]
