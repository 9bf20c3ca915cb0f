"""The bot's event loop and garbage collection (``bots.loop``)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from bots.loop import NEVER, collect_garbage, loop_factory, tune_gc
from tests.waiting import until


class _Node:
    other: _Node | None = None


def _a_cycle() -> weakref.ref[_Node]:
    """Two objects only each other refers to: garbage only a collection frees."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


async def test_the_periodic_collection_frees_cycles_the_automatic_one_left():
    # The soak's leak: cycles that reached the oldest generation waited for a full collection.
    gc.disable()  # as if the automatic full collection never came
    collector = asyncio.create_task(collect_garbage(0.01))
    try:
        gone = _a_cycle()
        await until(lambda: gone() is None)
    finally:
        collector.cancel()
        gc.enable()


async def test_a_busy_bot_waits_for_its_full_collection_but_not_forever():
    # bench.load at 1,000 chats: full collections walked every live object, pauses of up to
    # 230 ms of every reply; while busy they wait, up to ``at_least_s``.
    gc.disable()
    loop = asyncio.get_running_loop()
    started = loop.time()
    collector = asyncio.create_task(collect_garbage(0.01, at_least_s=0.5, quiet_tasks=0))
    try:
        gone = _a_cycle()
        await until(lambda: gone() is None)
        assert loop.time() - started >= 0.5  # busy (more than 0 tasks): it waited
    finally:
        collector.cancel()
        gc.enable()


@pytest.fixture
def gc_settings():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_only_the_young_generation_is_collected_automatically(gc_settings):
    tune_gc()
    young, middle, oldest = gc.get_threshold()
    assert young > 700
    assert middle == oldest == NEVER


def test_uvloop_is_the_default_and_asyncio_can_be_chosen(monkeypatch):
    monkeypatch.delenv("KAMIYA_BOT_LOOP", raising=False)
    factory = loop_factory()
    assert factory is not None
    assert factory.__module__.startswith("uvloop")
    monkeypatch.setenv("KAMIYA_BOT_LOOP", "asyncio")
    assert loop_factory() is None
