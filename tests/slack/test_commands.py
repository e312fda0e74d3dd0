"""The /dcv parser: every form it accepts, every way it refuses, and a fuzz of arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.commands import (
    MAX_TEXT_LENGTH,
    CheckCommand,
    CommandError,
    FaqCommand,
    HelpCommand,
    ListCommand,
    SubscribeCommand,
    UnsubscribeCommand,
    UnwatchCommand,
    WatchCommand,
    parse_command,
    tokenize,
)


def check(text: str) -> CheckCommand:
    command = parse_command(text)
    assert isinstance(command, CheckCommand)
    return command


def test_dns_defaults() -> None:
    request = check("dns Example.COM. abc123").request
    assert (request.method, request.domain, request.target) == ("dns", "example.com", "_dnsauth.example.com")
    assert (request.expected, request.record_type, request.host_label) == ("abc123", "TXT", "_dnsauth")


@pytest.mark.parametrize(
    ("text", "target", "rtype", "ca"),
    [
        ("dns example.com v --name _acme-challenge", "_acme-challenge.example.com", "TXT", None),
        ("dns example.com v --name=@", "example.com", "TXT", None),
        ("dns example.com dcv.digicert.com --type cname --name _x1", "_x1.example.com", "CNAME", None),
        ("dns example.com v --ca letsencrypt", "_dnsauth.example.com", "TXT", "letsencrypt"),
        ("DNS *.example.com v —name _acme-challenge", "_acme-challenge.example.com", "TXT", None),
        ("dns example.com v –ca=digicert.com", "_dnsauth.example.com", "TXT", "digicert.com"),
    ],
)
def test_dns_options(text: str, target: str, rtype: str, ca: str | None) -> None:
    request = check(text).request
    assert (request.target, request.record_type, request.ca) == (target, rtype, ca)


@pytest.mark.parametrize(
    "text",
    [
        'dns example.com "two words"',
        "dns example.com “two words”",
        "dns example.com ‘two words’",
        "dns example.com 'two words'",
        "dns example.com „two words“",
    ],
)
def test_quoted_values_and_smart_quotes(text: str) -> None:
    assert check(text).request.expected == "two words"


def test_slack_link_wrapping_and_entities_are_undone() -> None:
    request = check("dns <http://example.com|example.com> a&amp;b&lt;c&gt;").request
    assert (request.domain, request.expected) == ("example.com", "a&b<c>")
    request = check("dns <http://www.example.com|www.example.com> value").request
    assert request.domain == "www.example.com"
    with pytest.raises(CommandError, match="looks like a URL"):
        parse_command("dns <http://www.example.com> value")  # the user typed a URL, not a domain
    request = check(
        "dns example.com <http://dcv.digicert.com|dcv.digicert.com> --type CNAME --name _a"
    ).request
    assert request.expected == "dcv.digicert.com"


def test_file_command_with_url_and_path() -> None:
    request = check("file https://example.com/.well-known/pki-validation/abc.txt CONTENT").request
    assert (request.method, request.domain, request.path) == (
        "file",
        "example.com",
        "/.well-known/pki-validation/abc.txt",
    )
    request = check("file <https://example.com/.well-known/pki-validation/abc.txt> CONTENT").request
    assert request.path == "/.well-known/pki-validation/abc.txt"
    request = check(
        "file example.com CONTENT --path /.well-known/pki-validation/fileauth.txt --ca digicert"
    ).request
    assert request.ca == "digicert"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dns", "DOMAIN is missing"),
        ("dns example.com", "VALUE is missing"),
        ("dns example.com two words", "quotes"),
        ('dns example.com "unclosed', "closing quote"),
        ('dns example.com "a"b', "space after a closing quote"),
        ("dns example.com v --bogus x", "unknown option --bogus"),
        ("dns example.com v --name", "--name needs a value"),
        ("dns example.com v --ca a --ca b", "twice"),
        ("dns example.com v --type MX", "not supported"),
        ("dns localhost v", "single label"),
        ("dns printer.local v", "special-use"),
        ("dns 127.0.0.1 v", "IP address"),
        ("dns <!channel> v", "not"),
        ("file example.com", "CONTENT is missing"),
        ("file http://example.com/other/path x", ""),
        ("file example.com x --name y", "unknown option --name"),
        ("watch example.com v", "watch dns"),
        ("subscribe", "one domain"),
        ("subscribe a.example.com b.example.com", "one domain"),
        ("list everything", "nothing"),
        ("faq no-such-topic-at-all", "no FAQ topic"),
        ("frobnicate", "unknown command"),
        ("x" * (MAX_TEXT_LENGTH + 1), "at most 512"),
    ],
)
def test_refusals(text: str, reason: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(text)
    assert reason in info.value.reason
    assert info.value.usage.startswith("/dcv")


def test_special_use_names_allowed_in_labs() -> None:
    assert check_private("dns printer.local v").request.domain == "printer.local"


def check_private(text: str) -> CheckCommand:
    command = parse_command(text, allow_private=True)
    assert isinstance(command, CheckCommand)
    return command


def test_help_and_empty() -> None:
    for text in ("", "   ", "help", "HELP me", "?", "--help"):
        assert parse_command(text) == HelpCommand()


def test_faq_topics() -> None:
    assert parse_command("faq") == FaqCommand(())
    assert parse_command("faq propagation") == FaqCommand(("propagation",))
    timeouts = parse_command("faq timeout")
    assert isinstance(timeouts, FaqCommand)
    assert set(timeouts.keys) == {"dns-timeout", "file-timeout"}


def test_watch_family() -> None:
    watch = parse_command("watch dns example.com v --name _acme-challenge")
    assert isinstance(watch, WatchCommand) and watch.request.target == "_acme-challenge.example.com"
    watch = parse_command("watch file example.com content")
    assert isinstance(watch, WatchCommand) and watch.request.method == "file"
    assert parse_command("unwatch Example.com") == UnwatchCommand(domain="example.com")
    assert parse_command("unwatch 42") == UnwatchCommand(watch_id="42")
    assert parse_command("unwatch #w-7f3a") == UnwatchCommand(watch_id="w-7f3a")
    assert parse_command("subscribe *.Example.com") == SubscribeCommand("example.com")
    assert parse_command("unsubscribe example.com") == UnsubscribeCommand("example.com")
    assert parse_command("list") == ListCommand()


def test_tokenize() -> None:
    assert tokenize('  a  "b c"  d ') == ["a", "b c", "d"]
    assert tokenize("don't stop") == ["don't", "stop"]
    assert tokenize("<mailto:a@example.com|a@example.com>") == ["a@example.com"]


_words = st.sampled_from(
    [
        "dns",
        "file",
        "watch",
        "unwatch",
        "subscribe",
        "unsubscribe",
        "list",
        "faq",
        "help",
        "--name",
        "--type",
        "--ca",
        "--path",
        "—name",
        "--",
        "@",
        "TXT",
        "CNAME",
        "example.com",
        "*.example.com",
        "xn--",
        "_dnsauth",
        '"',
        "“",
        "”",
        "'",
        "<http://example.com|example.com>",
        "<!channel>",
        "&lt;",
        "http://example.com/.well-known/pki-validation/a.txt",
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.text(max_size=700), st.lists(st.one_of(_words, st.text(max_size=20)), max_size=12).map(" ".join)
    )
)
def test_fuzz_command_or_command_error(text: str) -> None:
    """Any text gives a command or a CommandError, never another exception."""
    try:
        result = parse_command(text)
    except CommandError as exc:
        assert exc.reason and exc.usage
        return
    assert isinstance(
        result,
        CheckCommand
        | WatchCommand
        | UnwatchCommand
        | SubscribeCommand
        | UnsubscribeCommand
        | ListCommand
        | HelpCommand
        | FaqCommand,
    )
