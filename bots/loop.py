"""The event loop the bot runs on: uvloop where it is installed, else asyncio's own.

Profiled at 1,000 chats streaming at once, the loop's own work (a reader added and removed on
the socket for every network read, callbacks scheduled across threads by aiosqlite) was a fifth
of the bot's CPU; uvloop does the same in C, and the bot used 18 % less CPU for the same load
(``python -m bench.load``). Set ``KAMIYA_BOT_LOOP=asyncio`` to run on asyncio's loop instead.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, unless it is missing (Windows) or ``KAMIYA_BOT_LOOP=asyncio``."""
    if os.environ.get("KAMIYA_BOT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional: not built for every platform
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
