"""A few Kamiya requests opened per step of the event loop, so a crowd of new turns cannot
stall the replies already streaming.

Long polling hands the bot up to 100 messages at once (a webhook burst does the same). Each
turn's request is about a millisecond of Python before its first wait (httpx builds it, aiohttp
opens a connection), and all of them ran in one step of the loop: pauses of 70-200 ms, in which
no reply in flight was read or shown (``python -m bench.load --chats 1000``, the worst lags of
a run). Let through a few per step, the rest follow in order in the next steps, and whatever
else is due (a reply's edit, a network read) runs in between. A quiet bot never waits.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["OPENS_PER_STEP", "StepGate"]

OPENS_PER_STEP = 8  # ~8 ms of work per step at most, 1,000 openings a second or more


class StepGate:
    """``await gate.passage()`` returns at once for the first ``per_step`` callers of a loop
    step; later ones wait, first come first served, for a step with room.

    Exact for a burst; callers arriving one by one just as a step ends may make it up to twice
    ``per_step`` in one step (a step's start is only seen when its first callback runs).
    """

    def __init__(self, per_step: int = OPENS_PER_STEP) -> None:
        if per_step < 1:
            raise ValueError("per_step must be at least 1")
        self._per_step = per_step
        self._left = per_step
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._next: asyncio.Handle | None = None
        self._next_on: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def passage(self) -> None:
        if self._left > 0 and not self._waiting:
            self._left -= 1
            self._step_later()
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append(granted)
        self._step_later()
        try:
            await granted
        except asyncio.CancelledError:
            if granted in self._waiting:  # cancelled while waiting: out of the line
                self._waiting.remove(granted)
            raise

    def _step_later(self) -> None:
        loop = asyncio.get_running_loop()
        if self._next is None or self._next_on is not loop:  # (a loop closed before it ran)
            self._next = loop.call_soon(self._step)
            self._next_on = loop

    def _step(self) -> None:
        """A new step of the loop: room again, handed first to the longest waiting."""
        self._next = None
        self._left = self._per_step
        while self._left > 0 and self._waiting:
            granted = self._waiting.popleft()
            if not granted.done():
                granted.set_result(None)
                self._left -= 1
        if self._waiting or self._left < self._per_step:
            self._step_later()
