"""The log redaction: tokens, hook URLs, response_url and legacy tokens never reach a handler."""

from __future__ import annotations

import logging

import pytest

from bot.slack.redact import install_log_redaction, redact

SAMPLES = [
    ("token xoxb-123-456-abcDEF in text", "xoxb-123"),
    ("app xapp-1-A0-123-abc", "xapp-1-A0"),
    ("refresh xoxe.xoxp-1-abc", "xoxe.xoxp"),
    ("url https://hooks.slack.com/commands/T1/2/secret", "secret"),
    ("form response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F2%2Fsecret&x=1", "secret"),
    ('json {"response_url": "http://127.0.0.1:9/commands/T1/2/abcdef"}', "abcdef"),
    ("form token=legacyverificationtoken123&team_id=T1", "legacyverificationtoken123"),
    ("header Authorization: Bearer xoxb-zzz", "xoxb-zzz"),
]


@pytest.mark.parametrize(("text", "secret"), SAMPLES)
def test_redact_patterns(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_installed_redaction_covers_every_logger_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    uninstall = install_log_redaction(["my-signing-secret-value"])
    try:
        caplog.set_level(logging.DEBUG)
        logging.getLogger("slack_sdk.web.async_base_client").debug("sending %s", "xoxb-1-2-3")
        logging.getLogger("some.other").info("secret my-signing-secret-value")
        try:
            raise RuntimeError("failed with https://hooks.slack.com/commands/T/1/topsecret")
        except RuntimeError:
            logging.getLogger("bot").exception("oops")
    finally:
        uninstall()
    assert "xoxb-1-2-3" not in caplog.text
    assert "my-signing-secret-value" not in caplog.text
    assert "topsecret" not in caplog.text
    assert "oops" in caplog.text and "RuntimeError" in caplog.text
    logging.getLogger("after").warning("xoxb-9-9-9")
    assert "xoxb-9-9-9" in caplog.text  # uninstalled
