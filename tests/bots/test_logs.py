"""Secrets are scrubbed from every log line, whatever logs them, tracebacks included."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from typing import Literal

from bots.logs import SecretFilter, configure_logging
from core.observe import TurnTrace, in_trace

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


def handled(fmt: Literal["text", "json"], rec: logging.LogRecord) -> str:
    """``rec`` as ``configure_logging``'s handler writes it: its filters, then its format."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        configure_logging("DEBUG", [SECRET], fmt)
    (handler,) = root.handlers
    try:
        handler.handle(rec)
    finally:
        root.removeHandler(handler)
        for old in before:  # pytest's own
            root.addHandler(old)
        root.setLevel(level)
    return stream.getvalue()


def test_json_lines_are_scrubbed_in_message_traceback_and_extra_fields():
    rec = record("calling /bot%s/getMe", SECRET, exc=True)
    rec.url = f"https://api.telegram.org/bot{SECRET}/getMe"  # an extra= field
    rec.detail = {"token": SECRET}  # not text: written as text, so scrubbed as text
    line = handled("json", rec)
    assert SECRET not in line
    data = json.loads(line)
    assert data["message"] == "calling /bot***/getMe"
    assert "failed with ***" in data["exc_info"]
    assert data["url"] == "https://api.telegram.org/bot***/getMe"
    assert "***" in data["detail"]
    assert (data["level"], data["logger"]) == ("ERROR", "x")


def test_a_line_logged_during_a_turn_carries_its_chat_and_request_id():
    trace = TurnTrace("telegram:42", "telegram", "0123456789ab")
    with in_trace(trace):
        text = handled("text", record("a reply line"))
        data = json.loads(handled("json", record("a reply line")))
    assert text.rstrip("\n").endswith("a reply line [chat=telegram:42 req=0123456789ab]")
    assert (data["chat"], data["req"]) == ("telegram:42", "0123456789ab")
    outside = json.loads(handled("json", record("between turns")))
    assert "req" not in outside
    assert "[chat=" not in handled("text", record("between turns"))
