"""Waiting in tests without sleeping as synchronisation: poll a condition under a deadline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Return as soon as ``condition()`` holds; ``TimeoutError`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        # A bounded poll, not a timed wait: the deadline above turns a hang into a failure.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


async def until_async(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """``until`` for a condition that must await (a query on another connection)."""
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 - bounded by the deadline above
            await asyncio.sleep(0.01)
