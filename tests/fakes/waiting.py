"""Waiting on a fake's state, with a failure that says what the fake last saw."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def wait_or_explain(
    wait_until: Callable[[Callable[[], bool]], Awaitable[None]],
    condition: Callable[[], bool],
    *,
    name: str,
    within: float,
    recent: Callable[[], list[str]],
) -> None:
    """Await ``condition`` via the fake's own ``wait_until``; on timeout name it and the calls."""
    try:
        async with asyncio.timeout(within):
            await wait_until(condition)
    except TimeoutError:
        calls = ", ".join(recent()[-10:]) or "none"
        raise TimeoutError(f"{name} still false after {within} s; last calls: {calls}") from None
