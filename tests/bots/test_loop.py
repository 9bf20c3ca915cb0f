"""The bot's event loop and garbage collection (``bots.loop``)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from bots.loop import collect_garbage, loop_factory
from tests.waiting import until


class _Node:
    other: _Node | None = None


async def test_the_periodic_collection_frees_cycles_the_automatic_one_left():
    # The soak's leak: cycles that reached the oldest generation waited for a full collection.
    gc.disable()  # as if the automatic full collection never came
    collector = asyncio.create_task(collect_garbage(0.01))
    try:
        first, second = _Node(), _Node()
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        await until(lambda: gone() is None)
    finally:
        collector.cancel()
        gc.enable()


def test_uvloop_is_the_default_and_asyncio_can_be_chosen(monkeypatch):
    monkeypatch.delenv("KAMIYA_BOT_LOOP", raising=False)
    factory = loop_factory()
    assert factory is not None
    assert factory.__module__.startswith("uvloop")
    monkeypatch.setenv("KAMIYA_BOT_LOOP", "asyncio")
    assert loop_factory() is None
