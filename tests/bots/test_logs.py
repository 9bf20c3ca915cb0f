"""Secrets are scrubbed from every log line, whatever logs them, tracebacks included."""

from __future__ import annotations

import logging

from bots.logs import SecretFilter

SECRET = "sk-never-in-logs-0123456789"


def fail() -> None:
    raise RuntimeError(f"failed with {SECRET}")


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            fail()
        except RuntimeError as error:
            exc_info = (type(error), error, error.__traceback__)
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_secret_in_message_or_args_is_masked():
    rec = record("calling %s/bot%s/getMe", "https://api.telegram.org", SECRET)
    SecretFilter([SECRET]).filter(rec)
    assert rec.getMessage() == "calling https://api.telegram.org/bot***/getMe"


def test_secret_in_a_traceback_is_masked():
    rec = record("boom", exc=True)
    SecretFilter([SECRET]).filter(rec)
    formatted = logging.Formatter().format(rec)
    assert SECRET not in formatted
    assert "failed with ***" in formatted


def test_no_secrets_configured_leaves_records_alone():
    rec = record("plain %s", "text")
    assert SecretFilter(["", ""]).filter(rec)
    assert rec.getMessage() == "plain text"


def test_discord_interaction_tokens_in_urls_are_masked():
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZmdoaWprbG1ub3A"
    rec = record(
        "PATCH https://discord.com/api/v10/webhooks/%s/%s/messages/@original and "
        "POST /interactions/%s/%s/callback",
        "1234567890",
        token,
        "987654321",
        token,
    )
    SecretFilter([]).filter(rec)
    message = rec.getMessage()
    assert token not in message
    assert "/webhooks/1234567890/***/messages/@original" in message
    assert "/interactions/987654321/***/callback" in message
