"""A ReplySink that records what core told it, for asserting on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from core.frontend import Failure, Reply


@dataclass
class RecordingSink:
    calls: list[str] = field(default_factory=list)
    progress_texts: list[str] = field(default_factory=list)
    queued_ahead: list[int] = field(default_factory=list)
    reply: Reply | None = None
    failure: Failure | None = None
    started_event: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def queued(self, ahead: int) -> None:
        self.calls.append("queued")
        self.queued_ahead.append(ahead)

    async def busy(self) -> None:
        self.calls.append("busy")

    async def started(self) -> None:
        self.calls.append("started")
        self.started_event.set()

    async def progress(self, text: str) -> None:
        self.calls.append("progress")
        self.progress_texts.append(text)

    def pause(self) -> Awaitable[None] | None:
        return None

    async def finished(self, reply: Reply) -> None:
        self.calls.append("finished")
        self.reply = reply
        self.done.set()

    async def failed(self, failure: Failure) -> None:
        self.calls.append("failed")
        self.failure = failure
        self.done.set()
