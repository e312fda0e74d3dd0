"""Parse the text of a ``/dcv`` slash command into a typed command, or raise :class:`CommandError`.

This module is pure: no Slack API, no network, no clock. It runs inside the listener before ``ack()``,
so everything that can be wrong with the user's input is found here and answered at once with the
usage text (an ephemeral reply, no API call). Names and values are validated through
:mod:`bot.names`, the same code the command line uses, so Slack and the terminal accept exactly the
same input.

What Slack does to the text, and what we undo (defensively; the manifest sets ``should_escape: false``):

* ``&``, ``<`` and ``>`` typed by the user arrive as ``&amp;``, ``&lt;`` and ``&gt;``;
* a name or URL the client auto-linked arrives as ``<http://example.com|example.com>`` (or
  ``<mailto:a@example.com|a@example.com>``); we keep the label, i.e. what the user typed;
* desktop clients turn ``"`` into “smart” quotes and ``--`` into an en or em dash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot import names
from bot.model import CheckRequest, DcvError, InputError
from bot.remedies import faq_entries

MAX_TEXT_LENGTH = 512
"""Longest command text accepted; CA values are short, so longer text is a paste accident."""

USAGE_LINES: dict[str, str] = {
    "dns": "/dcv dns DOMAIN VALUE [--name HOST] [--type TXT|CNAME] [--ca CA]",
    "file": "/dcv file TARGET CONTENT [--path PATH] [--ca CA]",
    "watch": "/dcv watch dns DOMAIN VALUE [...] | /dcv watch file TARGET CONTENT [...]",
    "unwatch": "/dcv unwatch DOMAIN|ID",
    "subscribe": "/dcv subscribe DOMAIN",
    "unsubscribe": "/dcv unsubscribe DOMAIN",
    "list": "/dcv list",
    "faq": "/dcv faq [TOPIC]",
    "help": "/dcv help",
}

# Opening quote -> the closing quotes that end it. Clients pair “ with ”, but people also paste text
# whose quotes were "smartened" in other ways, so any double quote closes a double-quoted value.
_DOUBLE = '"“”„'
_SINGLE = "'‘’‚"
_QUOTES = {q: _DOUBLE for q in _DOUBLE} | {q: _SINGLE for q in _SINGLE}
_SLACK_LINK = re.compile(r"<((?:https?://|mailto:)[^<>|\s]*)(?:\|([^<>]*))?>", re.IGNORECASE)
_DASHES = ("—", "–", "−")  # em dash, en dash, minus sign: what autocorrect makes of "--"
_WATCH_ID = re.compile(r"^#?([A-Za-z0-9_-]{1,64})$")


class CommandError(DcvError):
    """The command text cannot be understood; ``reason`` says why, ``usage`` shows the right form.

    Both are plain text containing user input: escape them before putting them into a message.
    """

    def __init__(self, reason: str, usage: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or "\n".join(USAGE_LINES.values())


@dataclass(frozen=True, slots=True)
class CheckCommand:
    """``/dcv dns ...`` or ``/dcv file ...``: run one check now."""

    request: CheckRequest


@dataclass(frozen=True, slots=True)
class WatchCommand:
    """``/dcv watch dns|file ...``: keep checking until it passes (handled by the watch service)."""

    request: CheckRequest


@dataclass(frozen=True, slots=True)
class UnwatchCommand:
    """``/dcv unwatch DOMAIN|ID``: exactly one of ``domain`` (normalised) and ``watch_id`` is set."""

    domain: str | None = None
    watch_id: str | None = None


@dataclass(frozen=True, slots=True)
class SubscribeCommand:
    """``/dcv subscribe DOMAIN`` (``domain`` normalised: lower case, A-label, no ``*.``)."""

    domain: str


@dataclass(frozen=True, slots=True)
class UnsubscribeCommand:
    domain: str


@dataclass(frozen=True, slots=True)
class ListCommand:
    """``/dcv list``: the channel's watches and subscriptions."""


@dataclass(frozen=True, slots=True)
class HelpCommand:
    """``/dcv``, ``/dcv help``."""


@dataclass(frozen=True, slots=True)
class FaqCommand:
    """``/dcv faq [TOPIC]``: ``keys`` are the FAQ entries that match; empty means "list the topics"."""

    keys: tuple[str, ...] = ()


Command = (
    CheckCommand
    | WatchCommand
    | UnwatchCommand
    | SubscribeCommand
    | UnsubscribeCommand
    | ListCommand
    | HelpCommand
    | FaqCommand
)
WATCH_COMMANDS = (WatchCommand, UnwatchCommand, SubscribeCommand, UnsubscribeCommand, ListCommand)
"""Commands handled by the watch service (issue 6); the Slack app only parses and routes them."""


def parse_command(text: str, *, allow_private: bool = False) -> Command:
    """Parse ``/dcv`` text. Returns a command or raises :class:`CommandError`; never anything else.

    ``allow_private`` is ``Settings.allow_private`` (special-use names for tests and labs).
    """
    if len(text) > MAX_TEXT_LENGTH:
        raise CommandError(
            f"the command is {len(text)} characters long; at most {MAX_TEXT_LENGTH} are accepted"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("the command contains characters that are not valid text") from None
    tokens = tokenize(text)
    if not tokens:
        return HelpCommand()
    verb, args = tokens[0].lower(), tokens[1:]
    if verb in ("help", "-h", "--help", "?", "usage"):
        return HelpCommand()
    if verb in ("dns", "file"):
        return CheckCommand(_check_request(verb, args, allow_private))
    if verb == "watch":
        if not args or args[0].lower() not in ("dns", "file"):
            raise CommandError("say what to watch: `watch dns ...` or `watch file ...`", USAGE_LINES["watch"])
        return WatchCommand(_check_request(args[0].lower(), args[1:], allow_private, prefix="watch "))
    if verb == "unwatch":
        return _unwatch(args, allow_private)
    if verb in ("subscribe", "unsubscribe"):
        positional = _only_positional(args, 1, verb)
        domain = _domain(positional[0], allow_private, USAGE_LINES[verb])
        return SubscribeCommand(domain) if verb == "subscribe" else UnsubscribeCommand(domain)
    if verb in ("list", "ls"):
        _only_positional(args, 0, "list")
        return ListCommand()
    if verb == "faq":
        return FaqCommand(_faq_keys(" ".join(args)))
    raise CommandError(f"unknown command {tokens[0]!r}")


def tokenize(text: str) -> list[str]:
    """Split command text into words, honouring quotes; undo Slack's link wrapping and entities."""
    text = _SLACK_LINK.sub(lambda m: m.group(2) if m.group(2) else _strip_mailto(m.group(1)), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in _QUOTES:
            closers = _QUOTES[text[i]]
            end = next((j for j in range(i + 1, n) if text[j] in closers), -1)
            if end == -1:
                raise CommandError("a quoted value is missing its closing quote")
            if end + 1 < n and not text[end + 1].isspace():
                raise CommandError("put a space after a closing quote")
            tokens.append(text[i + 1 : end])
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def _strip_mailto(url: str) -> str:
    return url[len("mailto:") :] if url.lower().startswith("mailto:") else url


def _option_name(token: str) -> str | None:
    """``--name`` / ``—name`` (autocorrected) -> ``name``; anything else is not an option."""
    for dash in _DASHES:
        if token.startswith(dash) and len(token) > 1:
            return token[1:]
    if token.startswith("--") and len(token) > 2:
        return token[2:]
    return None


def _split_options(args: list[str], allowed: tuple[str, ...], usage: str) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            positional.extend(args[i + 1 :])
            break
        name = _option_name(word)
        if name is None:
            positional.append(word)
            i += 1
            continue
        name, has_value, value = name.partition("=")
        name = name.lower()
        if name not in allowed:
            valid = ", ".join(f"--{a}" for a in allowed)
            raise CommandError(f"unknown option --{name} (valid here: {valid})", usage)
        if name in options:
            raise CommandError(f"--{name} is given twice", usage)
        if not has_value:
            if i + 1 >= len(args):
                raise CommandError(f"--{name} needs a value", usage)
            i += 1
            value = args[i]
        options[name] = value
        i += 1
    return positional, options


def _check_request(method: str, args: list[str], allow_private: bool, prefix: str = "") -> CheckRequest:
    usage = ("/dcv " + prefix + USAGE_LINES[method].removeprefix("/dcv ")) if prefix else USAGE_LINES[method]
    allowed = ("name", "type", "ca") if method == "dns" else ("path", "ca")
    positional, options = _split_options(args, allowed, usage)
    first, second = ("DOMAIN", "VALUE") if method == "dns" else ("TARGET", "CONTENT")
    if len(positional) < 2:
        missing = first if not positional else second
        raise CommandError(f"{missing} is missing", usage)
    if len(positional) > 2:
        raise CommandError(
            f"expected {first} and {second}, got {len(positional)} words; "
            "put a value containing spaces in quotes",
            usage,
        )
    build: Callable[[], CheckRequest]
    if method == "dns":

        def build() -> CheckRequest:
            return names.dns_request(
                positional[0],
                positional[1],
                host=options.get("name"),
                record_type=options.get("type"),
                ca=options.get("ca"),
                allow_private=allow_private,
            )

    else:

        def build() -> CheckRequest:
            return names.file_request(
                positional[0],
                positional[1],
                path=options.get("path"),
                ca=options.get("ca"),
                allow_private=allow_private,
            )

    try:
        return build()
    except InputError as exc:
        raise CommandError(str(exc), usage) from None


def _only_positional(args: list[str], count: int, verb: str) -> list[str]:
    usage = USAGE_LINES[verb]
    if any(_option_name(a) is not None for a in args):
        raise CommandError(f"`{verb}` takes no options", usage)
    if len(args) != count:
        what = "nothing" if count == 0 else ("one domain" if count == 1 else f"{count} words")
        raise CommandError(f"`{verb}` takes {what}", usage)
    return args


def _domain(text: str, allow_private: bool, usage: str) -> str:
    try:
        domain, _wildcard = names.normalize_domain(text, allow_private=allow_private)
    except InputError as exc:
        raise CommandError(str(exc), usage) from None
    return domain


def _unwatch(args: list[str], allow_private: bool) -> UnwatchCommand:
    (target,) = _only_positional(args, 1, "unwatch")
    match = _WATCH_ID.match(target)
    if match and "." not in target:
        return UnwatchCommand(watch_id=match.group(1))
    return UnwatchCommand(domain=_domain(target, allow_private, USAGE_LINES["unwatch"]))


def _faq_keys(topic: str) -> tuple[str, ...]:
    topic = " ".join(topic.lower().split())
    if not topic:
        return ()
    entries = faq_entries()
    if topic in entries:
        return (topic,)
    words = topic.replace("-", " ").split()
    matches = tuple(
        key for key, entry in entries.items() if all(w in key or w in entry.title.lower() for w in words)
    )
    if not matches:
        raise CommandError(
            f"no FAQ topic matches {topic!r}; topics: {', '.join(entries)}", USAGE_LINES["faq"]
        )
    return matches
