"""Logging for the process: one handler on stderr, every secret scrubbed from every line.

The scrubbing filter is a second line of defence: code never logs a key or token on purpose, but
libraries may (a URL with the Telegram token in it, an echoed header), so the handler rewrites any
record that contains one before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SecretFilter", "configure_logging"]

MASK = "***"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
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
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if "/webhooks/" in text or "/interactions/" in text:
            text = _INTERACTION_TOKEN.sub(rf"\g<1>{MASK}", text)
        return text


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Install the stderr handler; quiet the libraries whose INFO lines carry URLs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
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
