"""Keep Slack credentials and capabilities out of the logs.

What must never be logged (shared/research/reliability.md, R27 and R48): bot, user and app tokens
(``xoxb-``, ``xoxp-``, ``xapp-``, refresh tokens ``xoxe.``), the signing secret, and ``response_url``
hooks (a bearer capability to post into the channel for 30 minutes). They reach the logs by routes we
do not control: slack_sdk logs request and response bodies at DEBUG, ``SlackApiError.__str__`` embeds
the whole response, and Bolt logs the full body of a request that failed signature verification.

:class:`RedactingFilter` rewrites a record's message, arguments and traceback text.
:func:`install_log_redaction` applies it to *every* record the process creates, by wrapping the
log-record factory: a filter on a handler only protects that handler, and a filter on a logger does
not see records of its child loggers, whereas the factory covers handlers added later as well.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), "xox?-" + REDACTED),
    (re.compile(r"\bxoxe\.[A-Za-z0-9.-]+"), "xoxe." + REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), "xapp-" + REDACTED),
    (re.compile(r"hooks\.slack\.com[^\s'\"&,}\]]*", re.IGNORECASE), "hooks.slack.com/" + REDACTED),
    # response_url in JSON ("response_url": "...") and in form bodies (response_url=...), whatever host.
    (re.compile(r"(response_url[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+", re.IGNORECASE), r"\1" + REDACTED),
    # The legacy verification token of form bodies (token=...), and Authorization headers.
    (re.compile(r"((?<![A-Za-z_])token[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+", re.IGNORECASE), r"\1" + REDACTED),
    (re.compile(r"(Bearer\s+)[^\s\"',}]+", re.IGNORECASE), r"\1" + REDACTED),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with tokens, hook URLs and the given ``secrets`` replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no formatter or handler can see the secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s and len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


_install_lock = threading.Lock()


def install_log_redaction(secrets: Iterable[str] = ()) -> Callable[[], None]:
    """Redact every log record created from now on; returns a function that undoes it.

    ``secrets`` are exact strings to hide besides the token patterns (the signing secret).
    """
    redactor = RedactingFilter(secrets)
    with _install_lock:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redactor.filter(record)
            return record

        logging.setLogRecordFactory(factory)

    def uninstall() -> None:
        with _install_lock:
            if logging.getLogRecordFactory() is factory:
                logging.setLogRecordFactory(previous)

    return uninstall
