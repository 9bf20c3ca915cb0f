"""Logging as ``kamiya-bot run`` sets it up, at DEBUG everywhere, searched for secrets.

``configure_logging`` installs the process's handler (with its ``SecretFilter``); every library
logger that could see a secret is turned to DEBUG. Two things are kept: each record as logged,
before any filter (so a secret a library logs is caught even though the filter would scrub it)
and the lines the handler wrote. pytest's own capture stays in place.
"""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bots.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

LOGGERS = (
    "discord",
    "discord.client",
    "discord.gateway",
    "discord.http",
    "discord.state",
    "discord.webhook.async_",
    "discord.app_commands.tree",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "httpx",
    "httpcore",
    "hpack",
    "asyncio",
    "bots",
    "core",
    "storage",
)


class _Raw(logging.Handler):
    """Every record's text (message and traceback) as logged, before the secret filter."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self._into.append(f"{record.name} {record.levelname}: {text}")


@dataclass
class Logged:
    secrets: Sequence[str]
    raw: list[str] = field(default_factory=list)
    written: io.StringIO = field(default_factory=io.StringIO)

    def leaks(self) -> list[str]:
        """Records or written lines that show a secret."""
        lines = [*self.raw, *self.written.getvalue().splitlines()]
        return [line for line in lines if any(secret in line for secret in self.secrets)]


@contextmanager
def debug_logging(secrets: Sequence[str]) -> Iterator[Logged]:
    """Log as the bot does, at DEBUG for every library; restore everything after."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    logged = Logged(secrets)
    configure_logging("DEBUG", secrets)
    installed = [handler for handler in root.handlers if handler not in before]
    for handler in installed:
        root.removeHandler(handler)
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(logged.written)
    raw = _Raw(logged.raw)
    # The raw recorder first: the secret filter rewrites a record for every later handler.
    for handler in (raw, *installed, *before):
        root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield logged
    finally:
        for handler in (raw, *installed):
            root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)
