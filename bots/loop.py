"""The event loop the bot runs on: uvloop where it is installed, else asyncio's own.

Profiled at 1,000 chats streaming at once, the loop's own work (a reader added and removed on
the socket for every network read, callbacks scheduled across threads by aiosqlite) was a fifth
of the bot's CPU; uvloop does the same in C, and the bot used 18 % less CPU for the same load
(``python -m bench.load``). Set ``KAMIYA_BOT_LOOP=asyncio`` to run on asyncio's loop instead.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["collect_garbage", "loop_factory", "run", "tune_gc"]

T = TypeVar("T")

GC_YOUNG = 20_000
FULL_GC_EVERY_S = 30.0


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, unless it is missing (Windows) or ``KAMIYA_BOT_LOOP=asyncio``."""
    if os.environ.get("KAMIYA_BOT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional: not built for every platform
    except ImportError:
        return None
    return uvloop.new_event_loop


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: what is loaded by now (modules, classes, the
    libraries' tables) lives as long as the process, so the collector stops walking it
    (``gc.freeze``), and the youngest generation is collected every 20,000 allocations, not 700.

    Measured at 1,000 chats (``python -m bench.load``): 11 % of the bot's CPU went to
    collections, the longest a 324 ms pause of the whole event loop, which every reply felt.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, middle, oldest)


async def collect_garbage(every_s: float = FULL_GC_EVERY_S) -> None:
    """A full collection every ``every_s`` seconds, for as long as the bot runs.

    A reply's objects outlive several young collections while it streams, so they reach the
    oldest generation, and those in reference cycles (tasks, exceptions and their tracebacks)
    wait there for a full collection, which the collector's own rules made rare: a 10-minute
    soak at 100 chats (``python -m bench.soak``) grew 3.9 MB a minute, flat with this
    (about 50,000 objects freed a minute, in a pause of a few milliseconds).
    """
    while True:
        await asyncio.sleep(every_s)
        gc.collect()


async def _main_with_collector(main: Coroutine[Any, Any, T]) -> T:
    collector = asyncio.create_task(collect_garbage(), name="garbage-collector")
    try:
        return await main
    finally:
        collector.cancel()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` picks, with ``tune_gc`` applied and
    ``collect_garbage`` running beside it."""
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_main_with_collector(main))
