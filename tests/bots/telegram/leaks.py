"""Every log line of a test, at DEBUG everywhere, as ``kamiya-bot run`` would write it.

``capture_logs`` installs the process' own logging (``bots.logs.configure_logging``, with its
``SecretFilter``) writing to memory, then turns up the libraries it quiets (httpx logs every
request URL, and a Telegram URL holds the bot token) so the filter is what stands between a
secret and the log. It also keeps what the project's own loggers said before any scrubbing:
they must never need the filter.
"""

from __future__ import annotations

import contextlib
import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bots.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

LOUD = ("httpx", "httpcore", "telegram", "asyncio", "aiohttp")
# aiosqlite logs every database call with its arguments at DEBUG, most of a test's records:
# nothing secret goes to the database, so it speaks from INFO up to keep the tests quick.
QUIET = ("aiosqlite",)
PROJECT = ("bots", "core", "storage")


@dataclass
class Captured:
    written: io.StringIO = field(default_factory=io.StringIO)  # the handler's output
    project: list[str] = field(default_factory=list)  # our loggers, before the filter

    @property
    def text(self) -> str:
        return self.written.getvalue()


class _Raw(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in PROJECT:
            self._into.append(record.getMessage())
            if record.exc_info:
                self._into.append(logging.Formatter().formatException(record.exc_info))


@contextmanager
def capture_logs(
    secrets: Sequence[str], fmt: Literal["text", "json"] = "text"
) -> Iterator[Captured]:
    captured = Captured()
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LOUD + QUIET}
    with contextlib.redirect_stderr(captured.written):
        configure_logging("DEBUG", secrets, fmt)  # replaces the root's handlers with its own
    ours = list(root.handlers)
    raw = _Raw(captured.project)
    root.handlers[:0] = [raw]  # before the filter, which rewrites records in place
    for handler in before:  # pytest's own, after ours
        root.addHandler(handler)
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield captured
    finally:
        for handler in [raw, *ours]:
            root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def leaks(captured: Captured, secrets: Sequence[str]) -> list[str]:
    """Lines that show a secret, or any part of one after its first ``:`` (a bot token's
    secret half), whether written or said by our own code."""
    needles = set(secrets) | {s.split(":", 1)[1] for s in secrets if ":" in s}
    lines = captured.text.splitlines() + captured.project
    return [line for line in lines if any(needle in line for needle in needles)]
