"""Per-chat FIFO lanes: one turn in flight per chat, the rest wait in arrival order.

A hand-rolled ticket queue rather than ``asyncio.Lock`` because the place in the queue must be
taken synchronously, before the first ``await`` (telling the user they are queued is an await,
and two messages must not swap places during it), and because the bound needs the queue length.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

__all__ = ["Lanes", "QueueFull"]


class QueueFull(Exception):
    """The chat already has ``max_pending`` messages waiting; the caller should ask to wait."""


class _Lane:
    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: deque[asyncio.Future[None]] = deque()


class Lanes:
    """Serialises turns per key; different keys never wait on each other."""

    def __init__(self, max_pending: int = 5) -> None:
        self._max_pending = max_pending
        self._lanes: dict[Hashable, _Lane] = {}

    def depth(self, key: Hashable) -> int:
        """Turns in flight plus waiting for ``key``."""
        lane = self._lanes.get(key)
        return 0 if lane is None else int(lane.busy) + len(lane.waiting)

    def queued(self) -> int:
        """Turns waiting behind another of their key, over every key (read when scraped)."""
        return sum(len(lane.waiting) for lane in self._lanes.values())

    @asynccontextmanager
    async def turn(
        self,
        key: Hashable,
        *,
        on_queued: Callable[[int], Awaitable[None]] | None = None,
        bounded: bool = True,
    ) -> AsyncIterator[None]:
        """Hold ``key``'s lane for the body. ``on_queued(ahead)`` runs if this turn must wait.

        Raises ``QueueFull`` (before waiting) when ``bounded`` and the queue is full.
        """
        lane = self._lanes.setdefault(key, _Lane())
        if lane.busy:
            if bounded and len(lane.waiting) >= self._max_pending:
                raise QueueFull(key)
            ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            lane.waiting.append(ticket)
            try:
                if on_queued is not None:
                    await on_queued(len(lane.waiting))
                await ticket
            except BaseException:
                if ticket.done() and not ticket.cancelled():
                    self._release(key, lane)  # the lane was handed over: pass it on
                else:
                    ticket.cancel()
                    if ticket in lane.waiting:
                        lane.waiting.remove(ticket)
                raise
        else:
            lane.busy = True
        try:
            yield
        finally:
            self._release(key, lane)

    def _release(self, key: Hashable, lane: _Lane) -> None:
        while lane.waiting:
            ticket = lane.waiting.popleft()
            if not ticket.done():
                ticket.set_result(None)  # ownership moves to the next waiter; busy stays True
                return
        lane.busy = False
        self._lanes.pop(key, None)  # idle lanes cost nothing: thousands of chats come and go
