"""Sign a lab zone offline (dnspython), with one RRset's signature deliberately broken.

The zone is signed with one ECDSA P-256 key (a combined signing key, SEP flag set) and an NSEC chain,
so a validating resolver given the key as trust anchor can prove both answers and denials. The RRsets
named in ``expired`` get an RRSIG whose validity ended a day ago: the signature is genuine, only
out of date, which is what a zone whose signer stopped re-signing serves, and every validator
treats as bogus (RFC 4035 section 5.3.1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

DAY = 86400


@dataclass(frozen=True)
class SignedZone:
    text: str
    trust_anchor: str
    """An Unbound ``trust-anchor:`` value (a DS record in presentation form)."""


def sign_zone_text(
    origin: str, text: str, *, expired: tuple[tuple[str, str], ...] = (), lifetime: int = 30 * DAY
) -> SignedZone:
    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(private_key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    now = int(time.time())
    dns.dnssec.sign_zone(zone, keys=[(private_key, dnskey)], inception=now - DAY, lifetime=lifetime + DAY)
    with zone.writer() as txn:
        for owner, rdtype_text in expired:
            name = dns.name.from_text(owner)
            rdtype = dns.rdatatype.from_text(rdtype_text)
            rdataset = txn.get(name, rdtype)
            if rdataset is None:
                raise KeyError(f"{owner} {rdtype_text} is not in zone {origin}")
            stale = dns.dnssec.sign(
                (name, rdataset),
                private_key,
                signer=dns.name.from_text(origin),
                dnskey=dnskey,
                inception=now - 10 * DAY,
                expiration=now - DAY,
            )
            txn.delete(name, dns.rdatatype.RRSIG, rdtype)
            txn.add(name, rdataset.ttl, stale)
    ds = dns.dnssec.make_ds(origin, dnskey, "SHA256")
    return SignedZone(
        text=zone.to_text(relativize=False),
        trust_anchor=f"{origin} DS {ds.to_text()}",
    )
