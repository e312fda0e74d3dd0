"""Input normalisation and validation: every accepted form and every input error has a row here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from bot.model import InputError
from bot.names import dns_request, file_request, normalize_domain, validation_name


@pytest.mark.parametrize(
    ("typed", "domain", "wildcard"),
    [
        ("example.com", "example.com", False),
        ("EXAMPLE.COM", "example.com", False),
        ("example.com.", "example.com", False),
        ("  Example.Com.  ", "example.com", False),
        ("*.example.com", "example.com", True),
        ("*.Shop.Example.com.", "shop.example.com", True),
        ("bücher.example", None, False),  # special-use .example: refused by default (below)
        ("bücher.de", "xn--bcher-kva.de", False),
        ("例子.中国", "xn--fsqu00a.xn--fiqs8s", False),
        ("例子。中国", "xn--fsqu00a.xn--fiqs8s", False),
        ("xn--bcher-kva.de", "xn--bcher-kva.de", False),
    ],
)
def test_domains_are_normalised(typed: str, domain: str | None, wildcard: bool) -> None:
    if domain is None:
        with pytest.raises(InputError, match="special-use"):
            normalize_domain(typed)
        return
    assert normalize_domain(typed) == (domain, wildcard)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("*.", "empty"),
        ("example..com", "empty label"),
        (".example.com", "empty label"),
        ("a" * 64 + ".com", "longer than 63"),
        (".".join(["abcdefghi"] * 26) + ".com", "longer than the 253"),
        ("x" * 2000, "far longer"),
        ("192.0.2.1", "IP address"),
        ("2001:db8::1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("2130706433", "IP address"),
        ("0x7f000001", "IP address"),
        ("127.1", "IP address"),
        ("exa_mple.com", "characters"),
        ("exa mple.com", "not a domain"),
        ("-example.com", "characters"),
        ("example-.com", "characters"),
        ("ex!ample.com", "characters"),
        ("ab--cd.com", "reserved for IDNA"),
        ("xn--zz.com", "not valid punycode"),
        ("exa\x00mple.com", "control character"),
        ("example.com\n", "control character"),
        ("exa\u200bmple.com", "control character"),
        ("https://example.com/", "looks like a URL"),
        ("user@example.com", "not a domain"),
        ("example.com:443", "not a domain"),
        ("foo.*.example.com", "wildcard"),
        ("com", "single label"),
        ("example.123", "numeric label"),
        ("localhost", "single label"),
        ("printer.local", "special-use"),
        ("db.internal", "special-use"),
        ("example.test", "special-use"),
        ("x.invalid", "special-use"),
        ("a.localhost", "special-use"),
        ("router.home.arpa", "special-use"),
        ("hidden.onion", "special-use"),
        ("example.notatld", "top-level domain that exists"),
        ("co.uk", "public suffix"),
        ("*.com.cn", "public suffix"),
    ],
)
def test_bad_domains_are_refused_with_a_reason(typed: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        normalize_domain(typed)


def test_special_use_names_are_allowed_for_labs() -> None:
    assert normalize_domain("printer.local", allow_private=True) == ("printer.local", False)
    assert normalize_domain("example.test", allow_private=True) == ("example.test", False)


@pytest.mark.parametrize(
    ("host", "fqdn", "label"),
    [
        (None, "_dnsauth.example.com", "_dnsauth"),
        ("_dnsauth", "_dnsauth.example.com", "_dnsauth"),
        ("_DNSAUTH", "_dnsauth.example.com", "_dnsauth"),
        ("@", "example.com", "@"),
        ("", "example.com", "@"),
        ("_acme-challenge.www", "_acme-challenge.www.example.com", "_acme-challenge.www"),
        ("_dnsauth.example.com.", "_dnsauth.example.com", "_dnsauth"),
        ("_dnsauth.example.com", "_dnsauth.example.com", "_dnsauth"),  # pasted full name, no dot
        ("example.com.", "example.com", "@"),
    ],
)
def test_host_records(host: str | None, fqdn: str, label: str) -> None:
    assert validation_name("example.com", host) == (fqdn, label)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("_dnsauth.other.org.", "outside example.com"),
        ("bad host", "cannot carry"),
        ("*.x", "cannot carry"),
        ("a..b", "empty label"),
        ("x" * 64, "longer than 63"),
        ("_dnsauth\x07", "control character"),
        (".".join(["abcdefghi"] * 25), "longer than the 253"),
    ],
)
def test_bad_host_records(host: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        validation_name("example.com", host)


@pytest.mark.parametrize(
    ("value", "kwargs", "reason"),
    [
        ("", {}, "empty"),
        ("   ", {}, "empty"),
        ("x" * 1025, {}, "characters long"),
        ("tok\x1ben", {}, "control character"),
        ("abc", {"record_type": "MX"}, "not supported"),
        ("abc", {"ca": "no-such-ca"}, "unknown CA"),
        ("abc", {"ca": "bad ca!"}, "not a CA name"),
        ("not a name!", {"record_type": "CNAME"}, "not a domain"),
    ],
)
def test_bad_values_and_options(value: str, kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        dns_request("example.com", value, **kwargs)  # type: ignore[arg-type]


def test_request_carries_normalised_parts() -> None:
    request = dns_request("*.Example.com.", "  tok  ", host="_dnsauth", record_type="txt", ca="LE")
    assert (request.domain, request.wildcard, request.target) == ("example.com", True, "_dnsauth.example.com")
    assert (request.expected, request.record_type, request.ca) == ("tok", "TXT", "letsencrypt")
    assert request.display_domain == "*.example.com"
    cname = dns_request("example.com", "ABC.dcv.DigiCert.com.", record_type="CNAME", ca="digicert.com")
    assert (cname.expected, cname.ca) == ("abc.dcv.digicert.com", "digicert.com")


@settings(max_examples=300, deadline=None)
@given(domains(max_length=200))
def test_normalising_is_idempotent(name: str) -> None:
    try:
        once, wildcard = normalize_domain(name, allow_private=True)
    except InputError:
        return
    assert normalize_domain(once, allow_private=True) == (once, wildcard)
    assert once == once.lower() and not once.endswith(".") and len(once) <= 253


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_domain_or_an_input_error(text: str) -> None:
    try:
        domain, _ = normalize_domain(text)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert all(c.isascii() for c in domain)


_URLISH = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "http:/"]),
        st.one_of(domains(max_length=60), st.text(max_size=40)),
        st.one_of(st.just("/.well-known/pki-validation/fileauth.txt"), st.text(max_size=80)),
    ),
)


@settings(max_examples=400, deadline=None)
@given(_URLISH, st.one_of(st.none(), st.text(max_size=80)))
def test_file_targets_never_leave_the_validation_directory(target: str, path: str | None) -> None:
    """Whatever is typed, the URL the bot builds names the validated domain and a file directly under
    /.well-known/pki-validation/ (reliability.md R1), or the input is refused with a reason."""
    try:
        request = file_request(target, "content", path=path, allow_private=True)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert request.path is not None
    assert request.target == f"http://{request.domain}{request.path}"
    directory, _, name = request.path.rpartition("/")
    assert directory == "/.well-known/pki-validation"
    assert name and name not in {".", ".."} and not set(name) & set("%\\?#:@/")
