"""Transport, fault-injection and query-accounting machinery shared by the in-process DNS servers.

A :class:`DnsServerBase` listens on UDP and TCP on the same loopback ``(address, port)``; subclasses only
implement :meth:`DnsServerBase.build_response`, which turns a parsed query into a response message.
Everything else — faults, counters, EDNS payload limits, truncation, TCP framing — lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .zones import to_name, to_rdtype

__all__ = [
    "DnsServerBase",
    "Fault",
    "FaultKind",
    "QueryRecord",
    "Transport",
    "is_loopback",
]

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]

#: EDNS UDP payload size the servers advertise (DNS flag day 2020 value).
OUR_PAYLOAD = 1232


def is_loopback(address: str) -> bool:
    """True if *address* is in 127.0.0.0/8 or is ::1 (the only places test traffic may go)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class FaultKind(enum.StrEnum):
    """What a :class:`Fault` does to a matching query."""

    #: Sleep ``value`` seconds (async) before answering. Combines with the other kinds (delays add up).
    DELAY = "delay"
    #: Never answer (UDP and TCP).
    DROP = "drop"
    #: Never answer over UDP; TCP is answered normally.
    DROP_UDP_ONLY = "drop_udp_only"
    #: Over UDP always answer with TC=1 and empty sections, even if the answer fits; TCP gets it all.
    TRUNCATE = "truncate"
    #: Answer REFUSED.
    REFUSE = "refuse"
    #: Answer SERVFAIL.
    SERVFAIL = "servfail"
    #: Answer NOTIMP (typically restricted to one qtype, e.g. ``qtype="CAA"``).
    NOTIMP = "notimp"
    #: Answer FORMERR.
    FORMERR = "formerr"
    #: Answer normally but with another message ID (``value`` = the ID, default ``id ^ 0x5555``).
    WRONG_ID = "wrong_id"
    #: Answer normally but with another question name (``value`` = the name, default ``wrong.<qname>``).
    WRONG_QUESTION = "wrong_question"
    #: Send garbage bytes (``value`` = the bytes; default: the query ID then an unparsable message).
    MALFORMED = "malformed"
    #: Answer normally but without the AA flag.
    NOT_AUTHORITATIVE = "not_authoritative"
    #: Answer with an upward referral to the root (NOERROR, no AA, empty answer, ``. NS`` in authority),
    #: the classic reply of a lame server.
    UPWARD_REFERRAL = "upward_referral"


@dataclass
class QueryInfo:
    """What a fault predicate gets to look at."""

    qname: dns.name.Name
    qtype: dns.rdatatype.RdataType
    transport: Transport
    message: dns.message.Message


@dataclass
class Fault:
    """One fault injected into a server; build with :meth:`DnsServerBase.add_fault`.

    It applies to queries matching *all* given restrictions: ``qname`` (exact name, case-insensitive;
    ``subtree=True`` makes it match names below it too), ``qtype``, ``transport`` and ``predicate``.
    ``times`` (if not ``None``) is how many more queries it applies to; it then stops matching.
    """

    kind: FaultKind
    value: Any = None
    qname: dns.name.Name | None = None
    subtree: bool = False
    qtype: dns.rdatatype.RdataType | None = None
    transport: Transport | None = None
    predicate: Callable[[QueryInfo], bool] | None = None
    times: int | None = None
    #: How many queries this fault has been applied to.
    hits: int = 0

    def matches(self, info: QueryInfo) -> bool:
        """True if this fault applies to the query described by *info* (ignores transport-only kinds)."""
        if self.times is not None and self.times <= 0:
            return False
        if self.qname is not None:
            if self.subtree:
                if not info.qname.is_subdomain(self.qname):
                    return False
            elif info.qname != self.qname:
                return False
        if self.qtype is not None and info.qtype != self.qtype:
            return False
        if self.transport is not None and info.transport != self.transport:
            return False
        if self.kind in (FaultKind.DROP_UDP_ONLY, FaultKind.TRUNCATE) and info.transport != "udp":
            return False
        return self.predicate is None or self.predicate(info)

    def consume(self) -> None:
        """Record one application of this fault."""
        self.hits += 1
        if self.times is not None:
            self.times -= 1


@dataclass(frozen=True)
class QueryRecord:
    """One query a server received (recorded before any fault is applied)."""

    qname: dns.name.Name
    qtype: dns.rdatatype.RdataType
    transport: Transport
    id: int
    rd: bool
    cd: bool
    #: EDNS version, or -1 if the query had no OPT record.
    edns: int
    #: The client's advertised EDNS UDP payload size (0 without EDNS).
    payload: int
    do: bool
    peer: tuple[str, int]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def qname_text(self) -> str:
        """The qname as text, as sent (case preserved)."""
        return self.qname.to_text()


def _header_only_reply(data: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """A bare reply header for a query we could not parse (None if even the header is missing)."""
    if len(data) < 12:
        return None
    flags = dns.flags.QR | (int.from_bytes(data[2:4], "big") & (dns.flags.RD | 0x7800)) | int(rcode)
    return data[:2] + flags.to_bytes(2, "big") + b"\x00" * 8


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServerBase) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._spawn(self._handle(data, addr))

    async def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self.server._process(data, "udp", addr)
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable from a gone client
        log.debug("UDP error on %s: %s", self.server, exc)


class DnsServerBase:
    """UDP+TCP DNS listener on one loopback address with faults and query accounting.

    Use as ``async with Server(...) as s:`` or ``await s.start()`` / ``await s.stop()``. With ``port=0``
    an ephemeral port is picked for UDP and TCP is bound to the same number (retrying on a clash).
    """

    #: Set RA in responses (resolvers).
    recursion_available = False

    def __init__(self, address: str = "127.0.0.1", port: int = 0, *, name: str | None = None) -> None:
        if not is_loopback(address):
            raise ValueError(f"test DNS servers may only listen on loopback, not {address!r}")
        self.address = address
        self._requested_port = port
        self._port: int | None = None
        self.name = name or f"{type(self).__name__}@{address}"
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.faults: list[Fault] = []
        #: Every query received, in order.
        self.queries: list[QueryRecord] = []
        #: Queries currently being answered (received, not yet answered or dropped).
        self.in_flight = 0
        #: The highest value :attr:`in_flight` has reached since start / :meth:`reset_stats`.
        self.max_in_flight = 0
        #: Datagrams/messages that could not be parsed as DNS queries.
        self.unparsable = 0

    def __repr__(self) -> str:
        return f"<{self.name} port={self._port}>"

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The UDP/TCP port; only valid once started."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    @property
    def endpoint(self) -> tuple[str, int]:
        """``(address, port)``."""
        return (self.address, self.port)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._udp is not None

    async def start(self) -> Self:
        """Bind UDP and TCP on ``(address, port)``; with port 0 both share one ephemeral port.

        A server that was stopped restarts on the port it had (so a lab's shared port stays valid)."""
        if self.running:
            return self
        loop = asyncio.get_running_loop()
        wanted = self._port if self._port is not None else self._requested_port
        attempts = 1 if wanted else 50
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.address, wanted)
            )
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(
                    self._handle_tcp, host=self.address, port=port, reuse_address=True
                )
            except OSError as e:
                udp.close()
                if e.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            self._udp = udp
            self._port = port
            log.debug("%s listening on %s port %d", self.name, self.address, port)
            return self
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        """Close all sockets (listeners and open TCP connections) and cancel pending answers.

        The server can be started again (on the same port) with :meth:`start`."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
            self._tcp = None
        # Transports close their sockets in a loop callback: let that happen before we return.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: error while answering", self.name, exc_info=task.exception())

    async def _handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        lock = asyncio.Lock()

        async def answer(data: bytes) -> None:
            wire = await self._process(data, "tcp", (peer[0], peer[1]))
            if wire is None or writer.is_closing():
                return
            async with lock:
                writer.write(len(wire).to_bytes(2, "big") + wire)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                task = self._spawn(answer(await reader.readexactly(size)))
                pending.add(task)
                task.add_done_callback(pending.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The client half-closed or went away: let answers still being worked on finish first.
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._writers.discard(writer)
            writer.close()

    # ---------------------------------------------------------------- faults

    def add_fault(
        self,
        kind: FaultKind | str,
        value: Any = None,
        *,
        qname: str | dns.name.Name | None = None,
        subtree: bool = False,
        qtype: str | int | None = None,
        transport: Transport | None = None,
        predicate: Callable[[QueryInfo], bool] | None = None,
        times: int | None = None,
    ) -> Fault:
        """Inject a fault (see :class:`FaultKind`) for matching queries; returns it for :meth:`remove_fault`.

        Examples: ``add_fault("delay", 0.5)``, ``add_fault("notimp", qtype="CAA")``,
        ``add_fault("drop", qname="_acme-challenge.example.test.", times=1)``.
        """
        fault = Fault(
            kind=FaultKind(kind),
            value=value,
            qname=None if qname is None else to_name(qname),
            subtree=subtree,
            qtype=None if qtype is None else to_rdtype(qtype),
            transport=transport,
            predicate=predicate,
            times=times,
        )
        if fault.kind is FaultKind.DELAY and not isinstance(value, int | float):
            raise TypeError("a delay fault needs the delay in seconds as value")
        self.faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        """Remove one fault added with :meth:`add_fault` (no error if already gone)."""
        with contextlib.suppress(ValueError):
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        """Remove all faults."""
        self.faults.clear()

    @contextlib.contextmanager
    def fault(self, kind: FaultKind | str, value: Any = None, **match: Any) -> Iterator[Fault]:
        """``with server.fault("servfail"): ...`` — a fault active only inside the block."""
        f = self.add_fault(kind, value, **match)
        try:
            yield f
        finally:
            self.remove_fault(f)

    # ---------------------------------------------------------------- statistics

    def reset_stats(self) -> None:
        """Forget recorded queries and the in-flight maximum."""
        self.queries.clear()
        self.max_in_flight = self.in_flight
        self.unparsable = 0

    def queries_for(
        self,
        qname: str | dns.name.Name | None = None,
        qtype: str | int | None = None,
        transport: Transport | None = None,
    ) -> list[QueryRecord]:
        """Recorded queries matching all given filters (qname compared case-insensitively)."""
        name = None if qname is None else to_name(qname)
        rdtype = None if qtype is None else to_rdtype(qtype)
        return [
            q
            for q in self.queries
            if (name is None or q.qname == name)
            and (rdtype is None or q.qtype == rdtype)
            and (transport is None or q.transport == transport)
        ]

    def count(
        self,
        qname: str | dns.name.Name | None = None,
        qtype: str | int | None = None,
        transport: Transport | None = None,
    ) -> int:
        """Number of recorded queries matching all given filters."""
        return len(self.queries_for(qname, qtype, transport))

    # ---------------------------------------------------------------- answering

    def build_response(self, query: dns.message.Message, transport: Transport) -> dns.message.Message:
        """Return the normal (fault-free) response to *query*. Subclasses override this or
        :meth:`build_response_async`."""
        raise NotImplementedError

    async def build_response_async(
        self, query: dns.message.Message, transport: Transport
    ) -> dns.message.Message:
        """Async variant of :meth:`build_response` (a resolver needs to await its upstreams)."""
        return self.build_response(query, transport)

    def make_reply(self, query: dns.message.Message, rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
        """An empty response to *query*: same ID and question (case kept), RD and CD copied, EDNS (payload
        1232, DO copied) if the query had EDNS, RA if this server is a resolver."""
        response = dns.message.make_response(
            query, recursion_available=self.recursion_available, our_payload=OUR_PAYLOAD, pad=0
        )
        response.flags |= query.flags & dns.flags.CD
        if query.edns >= 0:
            response.use_edns(0, query.ednsflags & dns.flags.DO, OUR_PAYLOAD)
        response.set_rcode(dns.rcode.Rcode.make(rcode))
        return response

    async def _process(self, data: bytes, transport: Transport, peer: tuple[str, int]) -> bytes | None:
        """Parse one query, record it, apply faults, answer. Returns the wire reply or None (no reply)."""
        try:
            query = dns.message.from_wire(data)
        except Exception:
            self.unparsable += 1
            return _header_only_reply(data, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        if len(query.question) != 1:
            return self.make_reply(query, dns.rcode.FORMERR).to_wire()
        q = query.question[0]
        record = QueryRecord(
            qname=q.name,
            qtype=dns.rdatatype.RdataType.make(q.rdtype),
            transport=transport,
            id=query.id,
            rd=bool(query.flags & dns.flags.RD),
            cd=bool(query.flags & dns.flags.CD),
            edns=query.edns,
            payload=query.payload if query.edns >= 0 else 0,
            do=bool(query.ednsflags & dns.flags.DO),
            peer=peer,
        )
        self.queries.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(query, record, transport)
        finally:
            self.in_flight -= 1

    async def _answer(
        self, query: dns.message.Message, record: QueryRecord, transport: Transport
    ) -> bytes | None:
        info = QueryInfo(record.qname, record.qtype, transport, query)
        delay = 0.0
        action: Fault | None = None
        for fault in list(self.faults):
            if not fault.matches(info):
                continue
            if fault.kind is FaultKind.DELAY:
                delay += float(fault.value)
                fault.consume()
            elif action is None:
                action = fault
                fault.consume()
        if delay > 0:
            await asyncio.sleep(delay)
        kind = action.kind if action is not None else None
        if kind in (FaultKind.DROP, FaultKind.DROP_UDP_ONLY):
            return None
        if kind is FaultKind.MALFORMED:
            assert action is not None
            if action.value is not None:
                return bytes(action.value)
            # ID + QR|RD|RA, qdcount=1 ancount=5, then a question that runs off the end.
            return query.id.to_bytes(2, "big") + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\x07garb"
        simple_rcodes = {
            FaultKind.REFUSE: dns.rcode.REFUSED,
            FaultKind.SERVFAIL: dns.rcode.SERVFAIL,
            FaultKind.NOTIMP: dns.rcode.NOTIMP,
            FaultKind.FORMERR: dns.rcode.FORMERR,
        }
        if kind in simple_rcodes:
            response = self.make_reply(query, simple_rcodes[kind])
        elif kind is FaultKind.TRUNCATE:
            response = self.make_reply(query)
            response.flags |= dns.flags.TC
        elif kind is FaultKind.UPWARD_REFERRAL:
            response = self.make_reply(query)
            response.authority.append(
                dns.rrset.from_text(dns.name.root, 518400, "IN", "NS", "a.root-servers.net.")
            )
        else:
            if query.opcode() != dns.opcode.QUERY:
                response = self.make_reply(query, dns.rcode.NOTIMP)
            elif query.edns > 0:
                response = self.make_reply(query, dns.rcode.BADVERS)
            else:
                response = await self.build_response_async(query, transport)
            if kind is FaultKind.NOT_AUTHORITATIVE:
                response.flags &= ~dns.flags.AA
            elif kind is FaultKind.WRONG_ID:
                assert action is not None
                response.id = int(action.value) if action.value is not None else query.id ^ 0x5555
            elif kind is FaultKind.WRONG_QUESTION:
                assert action is not None
                q = query.question[0]
                wrong = (
                    to_name(action.value)
                    if action.value is not None
                    else dns.name.Name((b"wrong", *q.name.labels))
                )
                response.question = [dns.rrset.RRset(wrong, q.rdclass, q.rdtype)]
        return self._render(query, response, transport)

    def _render(
        self, query: dns.message.Message, response: dns.message.Message, transport: Transport
    ) -> bytes:
        """Wire format of *response*; over UDP limited to 512 (no EDNS) or the client's payload size,
        and replaced by an empty TC=1 reply when it does not fit."""
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=min(limit, 65535))
        except dns.exception.TooBig:
            truncated = self.make_reply(query, response.rcode())
            truncated.flags = response.flags | dns.flags.TC
            truncated.question = list(response.question)
            return truncated.to_wire(max_size=512)
