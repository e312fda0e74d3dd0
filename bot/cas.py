"""What differs between certificate authorities: CAA identifiers, redirect rules, token lifetimes.

Sources: shared/research/dcv-anchors.md section 0.5 (vendor docs) and C (numbers). ``--ca`` takes a
profile name below, or a CAA issuer domain itself (a value containing a dot), which then gets the
default rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CaProfile:
    """Rules of one CA that change the verdict."""

    key: str
    name: str
    caa_domains: tuple[str, ...]
    """Issuer domain names that authorise this CA in a CAA ``issue``/``issuewild`` property."""
    max_redirects: int | None
    """Redirects followed for file validation (``None``: unknown, judged by the default rule)."""
    redirects_same_domain: bool = False
    """Redirects must stay within the same registered domain (Tencent's rule for TrustAsia)."""
    file_validity_hours: float | None = None
    """How long a downloaded validation file / value stays valid."""


PROFILES: dict[str, CaProfile] = {
    "letsencrypt": CaProfile("letsencrypt", "Let's Encrypt", ("letsencrypt.org",), 10, False, 7 * 24),
    "digicert": CaProfile(
        "digicert",
        "DigiCert",
        (
            "digicert.com",
            "geotrust.com",
            "rapidssl.com",
            "thawte.com",
            "symantec.com",
            "digitalcertvalidation.com",
        ),
        1,
        False,
        30 * 24,
    ),
    "globalsign": CaProfile("globalsign", "GlobalSign", ("globalsign.com",), None, False, 30 * 24),
    "sectigo": CaProfile(
        "sectigo",
        "Sectigo",
        ("sectigo.com", "comodoca.com", "comodo.com", "trust-provider.com"),
        0,
        False,
        30 * 24,
    ),
    "alibaba": CaProfile(
        "alibaba",
        "Alibaba Cloud (DigiCert, GlobalSign and other brands)",
        ("digicert.com", "globalsign.com", "sectigo.com", "trust-provider.com", "geotrust.com"),
        0,
        False,
        72,
    ),
    "trustasia": CaProfile("trustasia", "TrustAsia", ("trustasia.com", "digicert.com"), 2, True, 72),
    "tencent": CaProfile(
        "tencent",
        "Tencent Cloud (TrustAsia and other brands)",
        ("trustasia.com", "digicert.com"),
        2,
        True,
        72,
    ),
}

ALIASES = {"le": "letsencrypt", "lets-encrypt": "letsencrypt", "aliyun": "alibaba", "alibabacloud": "alibaba"}

DEFAULT_MAX_REDIRECTS = 0
"""Without ``--ca``: the strictest common rule (Alibaba and Sectigo follow none) that still lets the
user act, since removing a redirect on the validation path satisfies every CA."""


def profile_for(ca: str | None) -> CaProfile | None:
    """The profile for ``--ca`` (a key, alias or CAA issuer domain), or ``None`` without ``--ca``."""
    if not ca:
        return None
    key = ALIASES.get(ca, ca)
    if key in PROFILES:
        return PROFILES[key]
    if "." in key:
        return CaProfile(key, key, (key,), None)
    return CaProfile(key, key, (), None)


def known_ca_names() -> list[str]:
    return sorted(PROFILES)
