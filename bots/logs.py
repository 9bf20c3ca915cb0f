"""Logging for the process: one handler on stderr, every secret scrubbed from every line.

The scrubbing filter is a second line of defence: code never logs a key or token on purpose, but
libraries may (a URL with the Telegram token in it, an echoed header), so the handler rewrites any
record that contains one before it is written: its message, its traceback and any extra field.

A line logged during a turn carries the turn's chat and request id (``core.current_trace``):
`` [chat=… req=…]`` after a text line, ``"chat"`` and ``"req"`` fields of a JSON line. JSON lines
are written by a formatter of our own on orjson rather than python-json-logger, which formats
the traceback again from ``exc_info`` and so would write it unscrubbed.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import orjson

from core import current_trace

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["JsonFormatter", "SecretFilter", "TextFormatter", "TraceFilter", "configure_logging"]

MASK = "***"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every record has; anything else on a record is an extra field (``extra=``).
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# A Discord interaction's token is a secret no config names: for 15 minutes it lets whoever has
# it answer and edit the interaction's messages. discord.py logs its routes at DEBUG.
_INTERACTION_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")


class SecretFilter(logging.Filter):
    """Replaces each known secret in a record's final message (and traceback) with ``***``,
    and so every Discord interaction token in a webhook or interaction URL."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        for name, value in list(vars(record).items()):
            if name in _STANDARD or value is None or isinstance(value, bool | int | float):
                continue
            # An extra field: written as text by either formatter, so scrubbed as text.
            setattr(record, name, self._scrub(value if isinstance(value, str) else str(value)))
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if "/webhooks/" in text or "/interactions/" in text:
            text = _INTERACTION_TOKEN.sub(rf"\g<1>{MASK}", text)
        return text


class TraceFilter(logging.Filter):
    """Copies the current turn's chat key and request id onto the record (``chat``, ``req``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = current_trace()
        if trace is not None and not hasattr(record, "req"):
            record.chat = trace.chat
            record.req = trace.request_id
        return True


class TextFormatter(logging.Formatter):
    """The readable line, `` [chat=… req=…]`` appended when it was logged during a turn."""

    def __init__(self) -> None:
        super().__init__(_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        req = getattr(record, "req", None)
        return line if req is None else f"{line} [chat={getattr(record, 'chat', '')} req={req}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, chat and req during a
    turn, any extra field, and ``exc_info``: the traceback text the ``SecretFilter`` scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD:
                line[name] = value
        if record.exc_info and not record.exc_text:  # a record no SecretFilter saw
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(
    level: str, secrets: Iterable[str], fmt: Literal["text", "json"] = "text"
) -> None:
    """Install the stderr handler; quiet the libraries whose INFO lines carry URLs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(TraceFilter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Telegram's URLs contain the bot token.
    for name in ("httpx", "httpcore", "aiohttp.access", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Alembic names each plugin it loads at INFO; its "Running upgrade" lines stay.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
