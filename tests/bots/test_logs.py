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
