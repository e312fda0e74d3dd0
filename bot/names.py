"""Domain names as users type them: normalisation, IDNA, validation and the validation name.

Every name that reaches a checker has been through here, so checkers can trust it: lower case,
A-labels (IDNA), no trailing dot, no wildcard prefix, within DNS length limits, and not a special-use
name unless the settings allow private targets (tests and labs).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata

import idna
from publicsuffixlist import PublicSuffixList

from bot.cas import ALIASES, PROFILES, known_ca_names
from bot.model import CheckRequest, InputError, RecordType

DEFAULT_HOST_LABEL = "_dnsauth"
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_VALUE_LENGTH = 1024
"""No CA token comes near this (DigiCert/Alibaba tokens are ~32-64 characters); longer input is a paste
accident, and echoing it back would only flood the reply."""


# RFC 6761 and later special-use registrations, plus names that never exist on the public internet.
# A CA can never validate them, and checking them would only probe the bot's own network.
SPECIAL_USE_SUFFIXES: tuple[str, ...] = (
    "localhost",
    "local",
    "internal",
    "test",
    "invalid",
    "example",
    "onion",
    "alt",
    "home.arpa",
    "lan",
    "intranet",
    "corp",
    "private",
    "in-addr.arpa",
    "ip6.arpa",
)

_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_IPV4_LIKE = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$")


def _reject_control_characters(text: str, what: str) -> None:
    for char in text:
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} and char not in "\t":
            raise InputError(f"{what} contains a control character (U+{ord(char):04X})")


def _to_a_label(label: str, original: str) -> str:
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InputError(f"{original!r} is not a valid internationalised domain name ({exc})") from None


def _check_labels(labels: list[str], original: str, pattern: re.Pattern[str], kind: str) -> None:
    for label in labels:
        if not label:
            raise InputError(f"{original!r} has an empty label (two dots in a row?)")
        if len(label.encode()) > MAX_LABEL_LENGTH:
            raise InputError(f"{original!r} has a label longer than {MAX_LABEL_LENGTH} bytes")
        if not pattern.match(label):
            raise InputError(
                f"{original!r} contains characters a {kind} cannot carry in {label!r} "
                "(letters, digits and hyphens only, not at the start or end of a label)"
            )
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise InputError(f"{original!r}: label {label!r} has '--' in positions 3-4, reserved for IDNA")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                raise InputError(f"{original!r}: {label!r} is not valid punycode") from None


@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    # The ICANN section only, as the CA/B Forum BRs (3.2.2.6) and Boulder judge registrable names; the
    # list ships inside the package, so nothing is fetched at run time. Loading takes ~0.1 s, once.
    return PublicSuffixList(only_icann=True)


def is_public_suffix(name: str) -> bool:
    """True for a registry's name (``com``, ``co.uk``, ``com.cn``, any single label) or the root."""
    return name in {"", "."} or bool(_public_suffix_list().is_public(name))


def registered_domain(name: str) -> str:
    """The registrable domain of ``name`` (``shop.example.com.cn`` -> ``example.com.cn``)."""
    return str(_public_suffix_list().privatesuffix(name) or name)


def is_special_use(domain: str) -> bool:
    """True when ``domain`` (normalised) is or sits under a special-use name."""
    return any(domain == suffix or domain.endswith("." + suffix) for suffix in SPECIAL_USE_SUFFIXES)


def normalize_domain(text: str, *, allow_private: bool = False) -> tuple[str, bool]:
    """Return ``(domain, wildcard)`` for a certificate domain as a user types it.

    Accepts any case, surrounding white space, a trailing dot, a leading ``*.`` and Unicode names;
    returns the A-label form without the trailing dot. Raises :class:`InputError` with a one-line reason.
    """
    original = text
    _reject_control_characters(text, "the domain")
    text = text.strip()
    if not text:
        raise InputError("the domain is empty")
    if len(text) > 4 * MAX_NAME_LENGTH:
        raise InputError(f"the domain is far longer than the {MAX_NAME_LENGTH} characters DNS allows")
    if "://" in text or "/" in text:
        raise InputError(f"{original!r} looks like a URL; give just the domain name, e.g. example.com")
    if text.startswith("[") or _is_ip_literal(text.rstrip(".")):
        raise InputError(f"{original!r} is an IP address; certificates validated by DCV name a domain")
    if any(c in text for c in " @:?#\\%"):
        raise InputError(f"{original!r} is not a domain name (unexpected character)")
    # Full-width and ideographic dots are label separators in IDNA (UTS #46).
    text = text.replace("\u3002", ".").replace("\uff0e", ".").replace("\uff61", ".")
    wildcard = False
    if text.startswith("*."):
        wildcard = True
        text = text[2:]
    if text.endswith("."):
        text = text[:-1]
    if "*" in text:
        raise InputError(f"{original!r}: a wildcard is only allowed as the whole first label ('*.')")
    if not text:
        raise InputError("the domain is empty")
    if text.startswith("[") or _is_ip_literal(text):
        raise InputError(f"{original!r} is an IP address; certificates validated by DCV name a domain")
    labels = [_to_a_label(label, original) for label in text.split(".")]
    _check_labels(labels, original, _LDH_LABEL, "domain name")
    domain = ".".join(labels)
    if len(domain) > MAX_NAME_LENGTH:
        raise InputError(f"{original!r} is longer than the {MAX_NAME_LENGTH} characters DNS allows")
    if len(labels) < 2:
        raise InputError(f"{original!r} is a single label; give a registered domain such as example.com")
    if labels[-1].isdigit():
        raise InputError(f"{original!r} ends in a numeric label, which no top-level domain is")
    if not allow_private:
        if is_special_use(domain):
            raise InputError(
                f"{domain} is a special-use name that never resolves on the public internet, so no CA can "
                "validate it (set DCV_ALLOW_PRIVATE=1 only for test labs)"
            )
        if _public_suffix_list().publicsuffix(domain, accept_unknown=False) is None:
            raise InputError(
                f"{domain} does not end in a top-level domain that exists on the public internet"
            )
        if is_public_suffix(domain):
            raise InputError(
                f"{domain} is a public suffix (a registry's zone); give a domain registered under it"
            )
    return domain, wildcard


def _is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        # Also refuse the legacy numeric forms (127.1, 0x7f000001, 2130706433) that resolvers accept.
        return bool(_NUMERIC_IPV4_LIKE.match(text.lower()))
    return True


def validation_name(domain: str, host: str | None = None) -> tuple[str, str]:
    """Return ``(fqdn, host_label)`` of the record the CA reads.

    ``host`` is relative to ``domain`` (default ``_dnsauth``); ``@`` or empty means ``domain`` itself;
    a name ending in a dot is absolute. A relative name that already ends in ``domain`` is taken as
    absolute too: people paste the full name from the CA console, and appending the zone again would
    build exactly the doubled name this tool warns about.
    """
    raw = DEFAULT_HOST_LABEL if host is None else host
    _reject_control_characters(raw, "the host record")
    raw = raw.strip()
    if raw in {"", "@"}:
        return domain, "@"
    if len(raw) > 4 * MAX_NAME_LENGTH:
        raise InputError("the host record is far longer than DNS allows")
    absolute = raw.endswith(".")
    text = raw.rstrip(".").lower() if absolute else raw.lower()
    if "*" in text or any(c in text for c in " /:@?#\\%"):
        raise InputError(f"host record {raw!r} contains characters DNS names cannot carry")
    labels = [_to_a_label(label, raw) for label in text.split(".")]
    _check_labels(labels, raw, _HOST_LABEL, "host record")
    text = ".".join(labels)
    fqdn = text if absolute or text == domain or text.endswith("." + domain) else f"{text}.{domain}"
    if len(fqdn) > MAX_NAME_LENGTH:
        raise InputError(
            f"the validation name {fqdn} is longer than the {MAX_NAME_LENGTH} characters DNS allows"
        )
    if fqdn != domain and not fqdn.endswith("." + domain):
        raise InputError(f"host record {raw!r} is outside {domain}; the CA only reads names under the domain")
    label = "@" if fqdn == domain else fqdn[: -len(domain) - 1]
    return fqdn, label


def normalize_value(text: str, record_type: RecordType) -> str:
    """Validate the value the CA console shows; CNAME targets are normalised as names."""
    _reject_control_characters(text, "the record value")
    value = text.strip()
    if not value:
        raise InputError("the record value is empty: paste the Record Value the CA console shows")
    if len(value) > MAX_VALUE_LENGTH:
        raise InputError(f"the record value is {len(value)} characters long; CA values are far shorter")
    if record_type == "CNAME":
        target, _ = normalize_domain(value, allow_private=True)
        return target
    return value


def normalize_record_type(text: str | None) -> RecordType:
    rtype = (text or "TXT").strip().upper()
    if rtype == "TXT":
        return "TXT"
    if rtype == "CNAME":
        return "CNAME"
    raise InputError(f"record type {text!r} is not supported; use TXT or CNAME")


def normalize_ca(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    ca = text.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,62}", ca):
        raise InputError(f"CA {text!r} is not a CA name (e.g. digicert, letsencrypt) or a CAA domain")
    if "." not in ca and ALIASES.get(ca, ca) not in PROFILES:
        raise InputError(
            f"unknown CA {text!r}: use one of {', '.join(known_ca_names())}, or the CA's CAA domain "
            "(e.g. --ca digicert.com)"
        )
    return ALIASES.get(ca, ca)


def dns_request(
    domain: str,
    value: str,
    *,
    host: str | None = None,
    record_type: str | None = None,
    ca: str | None = None,
    allow_private: bool = False,
) -> CheckRequest:
    """Build a DNS-method :class:`CheckRequest` from user input, or raise :class:`InputError`."""
    name, wildcard = normalize_domain(domain, allow_private=allow_private)
    rtype = normalize_record_type(record_type)
    fqdn, label = validation_name(name, host)
    return CheckRequest(
        method="dns",
        domain=name,
        target=fqdn,
        expected=normalize_value(value, rtype),
        record_type=rtype,
        wildcard=wildcard,
        ca=normalize_ca(ca),
        host_label=label,
    )


# ------------------------------------------------------------------------------------------------------
# File method: TARGET (a domain or the file's URL), --path and the expected content.

VALIDATION_DIR = "/.well-known/pki-validation/"
DEFAULT_FILE_PATH = VALIDATION_DIR + "fileauth.txt"
MAX_FILE_CONTENT = 4096
"""The most a validation file holds is a few lines (Sectigo: hash, CA domain, unique value); the checker
reads at most this many bytes of a response, so longer expected content could never match."""

_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _file_path(text: str) -> str:
    """Validate a file path under ``/.well-known/pki-validation/`` (BR 3.2.2.4.18); a bare file name is
    taken as a name in that directory."""
    _reject_control_characters(text, "the file path")
    raw = text.strip()
    if not raw:
        raise InputError("the file path is empty")
    if len(raw) > 256:
        raise InputError("the file path is too long for a validation file")
    if "\\" in raw:
        raise InputError(f"file path {raw!r} contains a backslash; use the URL path with '/'")
    if "%" in raw:
        raise InputError(f"file path {raw!r} contains a percent-escape; give the path unencoded")
    if any(c in raw for c in "?#"):
        raise InputError(f"file path {raw!r} has a query string or fragment; CAs fetch the bare path")
    path = raw if raw.startswith("/") else VALIDATION_DIR + raw
    if not path.startswith(VALIDATION_DIR):
        if path.lower().startswith(VALIDATION_DIR):
            raise InputError(
                f"file path {raw!r}: the directory is {VALIDATION_DIR} in lower case "
                "(URL paths are case-sensitive)"
            )
        raise InputError(f"file path {raw!r} is not under {VALIDATION_DIR}, the only place CAs look")
    name = path[len(VALIDATION_DIR) :]
    if name in {"", ".", ".."} or "/" in name or not _FILE_NAME.match(name):
        raise InputError(
            f"file path {raw!r}: the file name must be 1-128 letters, digits, '.', '_' or '-', "
            f"directly in {VALIDATION_DIR}"
        )
    return path


def _parse_file_url(url: str) -> tuple[str, str | None]:
    """Split ``http(s)://DOMAIN[/.well-known/pki-validation/FILE]`` into ``(host, path or None)``."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in _DEFAULT_PORTS:
        raise InputError(f"{url!r}: only http:// and https:// URLs can be checked")
    for char, why in (
        ("\\", "a backslash"),
        ("%", "a percent-escape"),
        ("?", "a query string"),
        ("#", "a fragment"),
        ("@", "user information"),
    ):
        if char in rest:
            raise InputError(f"{url!r} contains {why}; give the plain file URL the CA console shows")
    host, slash, path = rest.partition("/")
    if ":" in host:
        host, _, port_text = host.rpartition(":")
        if not port_text.isdigit() or int(port_text) != _DEFAULT_PORTS[scheme.lower()]:
            raise InputError(f"{url!r}: CAs fetch the file on ports 80 and 443 only, not on port {port_text}")
    if not slash or not path:
        return host, None
    if ".." in path.split("/") or "//" in path:
        raise InputError(f"{url!r}: the path may not contain '..' or empty segments")
    return host, _file_path("/" + path)


def _validate_content(content: str) -> str:
    for char in content:
        if char in "\r\n\t":
            continue
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}:
            raise InputError(
                f"the file content contains an invisible or control character (U+{ord(char):04X}); "
                "paste the content the CA console shows"
            )
    if not content.strip():
        raise InputError("the file content is empty: paste the content of the verification file")
    if len(content.encode("utf-8")) > MAX_FILE_CONTENT:
        raise InputError(
            f"the file content is longer than {MAX_FILE_CONTENT} bytes; validation files are far shorter"
        )
    return content


def file_request(
    target: str,
    content: str,
    *,
    path: str | None = None,
    ca: str | None = None,
    allow_private: bool = False,
) -> CheckRequest:
    """Build a file-method :class:`CheckRequest` from user input, or raise :class:`InputError`.

    ``target`` is a domain or ``http(s)://DOMAIN/.well-known/pki-validation/FILE``; anything else (other
    paths, user info, ports other than 80/443, query strings, fragments, ``..``, percent-escapes,
    backslashes) is refused, since the bot builds the URL itself and never fetches a URL as given.
    ``path`` defaults to ``/.well-known/pki-validation/fileauth.txt``. ``content`` is the expected file
    content as pasted (nothing is stripped here). A wildcard domain is accepted with ``wildcard=True``;
    the diagnosis then says to use DNS validation.
    """
    _reject_control_characters(target, "the target")
    text = target.strip()
    url_path = None
    if "://" in text:
        host, url_path = _parse_file_url(text)
    else:
        host = text
    domain, wildcard = normalize_domain(host, allow_private=allow_private)
    file_path = _file_path(path) if path is not None else None
    if url_path is not None and file_path is not None and url_path != file_path:
        raise InputError(f"the URL's path {url_path} and --path {file_path} disagree; give one of them")
    final_path = url_path or file_path or DEFAULT_FILE_PATH
    return CheckRequest(
        method="file",
        domain=domain,
        target=f"http://{domain}{final_path}",
        expected=_validate_content(content),
        wildcard=wildcard,
        ca=normalize_ca(ca),
        path=final_path,
    )
