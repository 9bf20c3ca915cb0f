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

GC_YOUNG = 5_000
NEVER = 1_000_000_000  # a collection threshold never reached
FULL_GC_EVERY_S = 30.0
FULL_GC_AT_LEAST_S = 600.0
QUIET_TASKS = 100


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
    """Short garbage collections only: what is loaded by now (modules, classes, the libraries'
    tables) lives as long as the process, so the collector stops walking it (``gc.freeze``);
    the youngest generation is collected every 5,000 allocations, not 700; the older two
    never by the interpreter's own rules, only by ``collect_garbage``.

    Measured at 1,000 chats (``python -m bench.load``): the collector walks every object of a
    generation, and with a thousand replies in flight the middle generation took 100-190 ms
    and the oldest 80-230 ms, pauses of the whole event loop that every reply felt (the p99
    lag). The young generation's pauses stay under 10 ms. Little is left for the collector to
    free: nothing the bot does per request or per reply leaves a reference cycle (see
    ``core.client.AcyclicClient``, ``core.retries.retrying``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, NEVER, NEVER)


async def collect_garbage(
    every_s: float = FULL_GC_EVERY_S,
    *,
    at_least_s: float = FULL_GC_AT_LEAST_S,
    quiet_tasks: int = QUIET_TASKS,
) -> None:
    """A full collection every ``every_s`` seconds while the bot is quiet (at most
    ``quiet_tasks`` tasks: a few replies in flight), and at least every ``at_least_s``.

    Objects that survive a young collection (a reply's, while it streams) wait for a full one,
    and so does any reference cycle among them: a 10-minute soak at 100 chats (``python -m
    bench.soak``) grew 3.9 MB a minute when full collections were rare. A full collection
    walks every live object, a pause of 100 ms or more with a thousand replies in flight:
    that is when it waits, up to ``at_least_s``.
    """
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        await asyncio.sleep(every_s)
        if loop.time() - last >= at_least_s or len(asyncio.all_tasks()) <= quiet_tasks:
            gc.collect()
            last = loop.time()


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
