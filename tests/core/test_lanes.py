"""Per-chat lanes: strict FIFO, one in flight, bounded, cancellation-safe, idle lanes freed."""

from __future__ import annotations

import asyncio

import pytest

from core.lanes import Lanes, QueueFull
from tests.waiting import until


async def test_turns_of_one_key_run_one_at_a_time_in_arrival_order():
    lanes = Lanes(max_pending=10)
    order: list[int] = []
    active = 0
    peak = 0
    gates = [asyncio.Event() for _ in range(5)]

    async def turn(i: int) -> None:
        nonlocal active, peak
        async with lanes.turn("chat"):
            active += 1
            peak = max(peak, active)
            order.append(i)
            await gates[i].wait()
            active -= 1

    tasks = [asyncio.create_task(turn(i)) for i in range(5)]
    for index, gate in enumerate(gates):  # release each one as soon as it has started
        await until(lambda i=index: len(order) > i)  # type: ignore[misc]
        gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert peak == 1
    assert lanes.depth("chat") == 0


async def test_slow_queued_notice_cannot_reorder_turns():
    lanes = Lanes(max_pending=10)
    order: list[str] = []
    hold = asyncio.Event()
    slow_notice = asyncio.Event()

    async def first() -> None:
        async with lanes.turn("c"):
            await hold.wait()
            order.append("first")

    async def second() -> None:
        async def notice(ahead: int) -> None:
            await slow_notice.wait()  # the platform call for "you are queued" is slow

        async with lanes.turn("c", on_queued=notice):
            order.append("second")

    async def third() -> None:
        async with lanes.turn("c"):
            order.append("third")

    tasks = [asyncio.create_task(f()) for f in (first, second, third)]
    await until(lambda: not (lanes.depth("c") < 3))
    hold.set()
    await until(lambda: not ("first" not in order))
    slow_notice.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "second", "third"]


async def test_queue_bound_refuses_before_waiting():
    lanes = Lanes(max_pending=2)
    hold = asyncio.Event()
    aheads: list[int] = []

    async def turn() -> None:
        async def queued(ahead: int) -> None:
            aheads.append(ahead)

        async with lanes.turn("c", on_queued=queued):
            await hold.wait()

    tasks = [asyncio.create_task(turn()) for _ in range(3)]
    await until(lambda: not (lanes.depth("c") < 3))
    with pytest.raises(QueueFull):
        async with lanes.turn("c"):
            pass
    async with lanes.turn("other"):  # other chats are unaffected
        pass
    hold.set()
    await asyncio.gather(*tasks)
    assert aheads == [1, 2]


async def test_unbounded_turn_ignores_the_limit():
    lanes = Lanes(max_pending=0)
    hold = asyncio.Event()
    first = asyncio.create_task(_hold(lanes, hold))
    await until(lambda: bool(lanes.depth("c")))
    with pytest.raises(QueueFull):
        async with lanes.turn("c"):
            pass
    waiter = asyncio.create_task(_enter(lanes, bounded=False))
    hold.set()
    await asyncio.gather(first, waiter)


async def test_cancelled_waiter_leaves_the_queue_and_order_holds():
    lanes = Lanes(max_pending=5)
    hold = asyncio.Event()
    order: list[str] = []
    first = asyncio.create_task(_hold(lanes, hold))
    await until(lambda: bool(lanes.depth("c")))
    doomed = asyncio.create_task(_enter(lanes, order=order, name="doomed"))
    last = asyncio.create_task(_enter(lanes, order=order, name="last"))
    await until(lambda: not (lanes.depth("c") < 3))
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert lanes.depth("c") == 2
    hold.set()
    await asyncio.gather(first, last)
    assert order == ["last"]
    assert lanes.depth("c") == 0


async def test_waiter_cancelled_just_after_handover_passes_the_lane_on():
    lanes = Lanes(max_pending=5)
    hold = asyncio.Event()
    order: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def first() -> None:
        async with lanes.turn("c"):
            await hold.wait()
        # The lane was just handed to "doomed", which has not resumed yet: cancel it now.
        tasks["doomed"].cancel()

    tasks["first"] = asyncio.create_task(first())
    await until(lambda: bool(lanes.depth("c")))
    tasks["doomed"] = asyncio.create_task(_enter(lanes, order=order, name="doomed"))
    tasks["last"] = asyncio.create_task(_enter(lanes, order=order, name="last"))
    await until(lambda: not (lanes.depth("c") < 3))
    hold.set()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert tasks["doomed"].cancelled()
    assert order == ["last"]
    assert lanes.depth("c") == 0


async def _hold(lanes: Lanes, hold: asyncio.Event) -> None:
    async with lanes.turn("c"):
        await hold.wait()


async def _enter(
    lanes: Lanes, *, bounded: bool = True, order: list[str] | None = None, name: str = ""
) -> None:
    async with lanes.turn("c", bounded=bounded):
        if order is not None:
            order.append(name)
