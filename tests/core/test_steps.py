"""``core.steps.StepGate``: a burst of openings spread over loop steps, in arrival order."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from core.steps import StepGate


class Steps:
    """Counts the event loop's steps: one tick per step (``sleep(0)`` yields exactly one)."""

    def __init__(self) -> None:
        self.now = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Steps:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            self.now += 1
            await asyncio.sleep(0)


async def passes(gate: StepGate, steps: Steps, order: list[int], at: list[int], n: int) -> None:
    await gate.passage()
    order.append(n)
    at.append(steps.now)


async def test_a_burst_passes_a_few_per_step_first_come_first_served():
    gate = StepGate(per_step=4)
    order: list[int] = []
    at: list[int] = []
    async with Steps() as steps:
        await asyncio.gather(*(passes(gate, steps, order, at, n) for n in range(30)))
    assert order == list(range(30))
    per_step = Counter(at)
    assert max(per_step.values()) <= 4
    assert len(per_step) >= 30 // 4  # spread over steps, not all at once


async def test_a_quiet_gate_never_makes_anyone_wait():
    gate = StepGate(per_step=2)
    for _ in range(5):  # one caller per step: each passes within its own step
        task = asyncio.ensure_future(gate.passage())
        await asyncio.sleep(0)
        assert task.done()
    assert gate.waiting == 0


async def test_a_caller_cancelled_while_waiting_leaves_the_line():
    gate = StepGate(per_step=1)
    callers = [asyncio.ensure_future(gate.passage()) for _ in range(10)]
    await asyncio.sleep(0)
    assert gate.waiting >= 8
    callers[-2].cancel()  # still in the line: one passes per step
    async with asyncio.timeout(5):
        await asyncio.gather(*callers, return_exceptions=True)
    assert [c.cancelled() for c in callers] == [False] * 8 + [True, False]
    assert gate.waiting == 0


def test_per_step_is_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        StepGate(per_step=0)


def test_a_gate_outlives_an_event_loop_closed_in_the_middle_of_a_step():
    """A step scheduled on a loop that closed before it ran must not leave the gate shut."""
    gate = StepGate(per_step=1)

    async def take_and_stop() -> None:
        asyncio.get_running_loop().stop()  # the loop ends with this batch of callbacks
        await gate.passage()  # takes the step's room, schedules the next step after it

    loop = asyncio.new_event_loop()
    task = loop.create_task(take_and_stop())
    loop.run_forever()
    assert task.done()
    loop.close()  # the gate's next step never ran

    async def later() -> None:
        async with asyncio.timeout(5):
            await asyncio.gather(*(gate.passage() for _ in range(3)))

    asyncio.run(later())
