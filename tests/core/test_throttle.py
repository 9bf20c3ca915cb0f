"""The pacer: latest text only, never twice, within limits, 429 penalties per chat, final always.

Runs on looptime's fast-forwarded event loop time: sleeps are instant yet the clock is consistent,
so rates are asserted as call counts over virtual seconds, not measured.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import TYPE_CHECKING

import pytest

from core.observe import NullObserver
from core.throttle import ChatGate, Gates, LiveRenderer, PaceLimits, Priority, RetryLater

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.looptime


class Recorder:
    """A surface that records (time, kind, text); scripted 429s."""

    def __init__(self, *, fail_at: dict[int, float] | None = None) -> None:
        self.shown: list[tuple[float, str, str]] = []
        self._fail_at = dict(fail_at or {})
        self._attempts = 0

    async def show(self, text: str) -> int:
        return self._call("show", text)

    async def final(self, text: str) -> int:
        return self._call("final", text)

    def _call(self, kind: str, text: str) -> int:
        self._attempts += 1
        if self._attempts in self._fail_at:
            raise RetryLater(self._fail_at.pop(self._attempts))
        self.shown.append((asyncio.get_running_loop().time(), kind, text))
        return 1


def gate(limits: PaceLimits) -> ChatGate:
    return ChatGate(limits, clock=asyncio.get_running_loop().time)


async def stream(renderer: LiveRenderer, chunks: int, every: float) -> str:
    text = ""
    for i in range(chunks):
        text += f"w{i} "
        renderer.update(text)
        await asyncio.sleep(every)
    return text


async def test_fast_stream_is_coalesced_to_the_allowed_rate_and_ends_exact():
    surface = Recorder()
    renderer = LiveRenderer(surface, gate(PaceLimits(per_second=1.0, burst=3)))
    loop = asyncio.get_running_loop()
    start = loop.time()
    text = await stream(renderer, 200, 0.05)  # 20 tokens/s for 10 virtual seconds
    await renderer.finish(text + "end")
    shows = [s for s in surface.shown if s[1] == "show"]
    elapsed = loop.time() - start
    assert len(shows) <= 3 + elapsed + 1  # burst, then one a second
    assert len(shows) >= 0.9 * (3 + elapsed - 1)  # and the budget is used, not wasted
    texts = [s[2] for s in shows]
    assert len(texts) == len(set(texts))  # never the same text twice
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert surface.shown[-1][1:] == ("final", text + "end")


async def test_update_never_waits_for_the_platform():
    class Slow(Recorder):
        async def show(self, text: str) -> int:
            await asyncio.sleep(30)  # a platform call that hangs for 30 s
            return self._call("show", text)

    renderer = LiveRenderer(Slow(), gate(PaceLimits()))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(1000):
        renderer.update(f"text {i}")
    assert loop.time() == start
    await renderer.aclose()


async def test_first_update_goes_out_at_once():
    surface = Recorder()
    renderer = LiveRenderer(surface, gate(PaceLimits()))
    loop = asyncio.get_running_loop()
    start = loop.time()
    renderer.update("first")
    await asyncio.sleep(0.5)  # virtual time: the next token is half a second away
    await renderer.finish("first and last")
    assert surface.shown[0] == (start, "show", "first")


async def test_retry_after_opens_a_penalty_window_and_the_final_follows_it():
    surface = Recorder(fail_at={2: 5.0})  # the second call gets "retry after 5 s"
    limits = PaceLimits(per_second=1.0, burst=3)
    renderer = LiveRenderer(surface, gate(limits))
    loop = asyncio.get_running_loop()
    start = loop.time()
    text = await stream(renderer, 40, 0.1)  # 4 virtual seconds of tokens
    await renderer.finish(text)
    times = [t - start for t, _, _ in surface.shown]
    assert times[0] == 0
    penalty_start = 0.1  # second attempt happened at the second token
    assert all(not (penalty_start < t < penalty_start + 5.0) for t in times[1:])
    assert surface.shown[-1][1:] == ("final", text)
    assert times[-1] == pytest.approx(penalty_start + 5.0, abs=0.2)


async def test_penalty_in_one_chat_does_not_slow_another():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits()
    gates.get("a", limits).penalize(60)
    assert gates.get("a", limits).delay() == pytest.approx(60)
    assert gates.get("b", limits).delay() == 0


async def test_group_minute_cap_holds():
    g = gate(PaceLimits(per_second=10.0, burst=10, window_calls=20, window_s=60.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while loop.time() - start < 60:
        delay = g.delay()
        if delay:
            await asyncio.sleep(max(delay, 0.005))
            continue
        g.record()
        sent += 1
    assert sent == 20


async def test_bot_wide_cap_is_shared_by_all_chats():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=5.0, burst=5, global_per_second=30, global_burst=30)
    for chat in range(30):
        gate_ = gates.get(chat, limits)
        assert gate_.delay() == 0
        gate_.record()
    assert gates.get(99, limits).delay() > 0


async def test_open_says_whether_delay_is_zero_whatever_the_queue_and_limits():
    loop = asyncio.get_running_loop()
    gates = Gates(clock=loop.time)
    private = PaceLimits(per_second=1.0, burst=2, global_per_second=5)
    group = PaceLimits(per_second=1.0, burst=3, window_calls=4, window_s=10.0, global_per_second=5)
    chats = [gates.get(n, group if n % 3 == 0 else private) for n in range(12)]
    seen: set[bool] = set()
    mismatches = 0

    def check() -> None:
        nonlocal mismatches
        for gate_ in chats:
            answer = gate_.open()
            seen.add(answer)
            mismatches += answer != (gate_.delay() == 0)

    async def chat(n: int) -> None:
        gate_ = chats[n]
        for turn in range(6):
            await gate_.acquire(priority=Priority(turn % 3))
            check()
            await asyncio.sleep(0.05 * (n % 4))
            if (n + turn) % 5 == 0:
                gate_.release()
            else:
                gate_.record()
            if (n + turn) % 7 == 0:
                gate_.penalize(0.5)
            check()

    async def watch() -> None:
        for _ in range(300):
            check()
            await asyncio.sleep(0.03)

    await asyncio.gather(watch(), *(chat(n) for n in range(12)))
    assert mismatches == 0
    assert seen == {True, False}


async def test_final_is_delivered_even_if_unchanged_and_updates_after_it_are_ignored():
    surface = Recorder()
    renderer = LiveRenderer(surface, gate(PaceLimits()))
    renderer.update("same")
    await asyncio.sleep(0.5)
    await renderer.finish("same")
    renderer.update("too late")
    assert [s[1:] for s in surface.shown] == [("show", "same"), ("final", "same")]


async def test_surface_errors_do_not_kill_the_reply():
    class Flaky(Recorder):
        async def show(self, text: str) -> int:
            raise ConnectionError("platform hiccup")

    surface = Flaky()
    renderer = LiveRenderer(surface, gate(PaceLimits()))
    renderer.update("x")
    await asyncio.sleep(0.5)
    await renderer.finish("final text")
    assert surface.shown[-1][1:] == ("final", "final text")


async def test_chats_waiting_for_the_bot_wide_cap_are_served_in_turn_each_woken_once():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=5.0, burst=5, global_per_second=30)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[tuple[float, int]] = []
    sleeps = 0

    async def sleep(delay: float) -> None:
        nonlocal sleeps
        sleeps += 1
        await asyncio.sleep(delay)

    async def chat(n: int) -> None:
        gate_ = gates.get(n, limits)
        await gate_.acquire(sleep)
        sent.append((loop.time() - start, n))
        gate_.record()

    await asyncio.gather(*(chat(n) for n in range(95)))
    assert [n for _, n in sent] == list(range(95))  # first come, first served
    times = [t for t, _ in sent]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[30:], strict=False))
    # Three at once, then one every 1/30 s, no slot left idle.
    assert times[-1] == pytest.approx((95 - 3) / 30, abs=0.05)
    assert sleeps == 0  # the queue wakes each chat once; nobody polls


async def test_the_bot_wide_cap_is_handed_out_evenly_not_in_bursts():
    # Found by bench.load at 1,000 chats: a second's 30 slots were taken at once, freed
    # together a second later and taken at once again, and the 30th call of each burst waited
    # ~45 ms for the others to be built on the one event loop (the p99 lag).
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=5.0, burst=5, global_per_second=30)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[float] = []

    async def chat(n: int) -> None:
        gate_ = gates.get(n, limits)
        await gate_.acquire()
        sent.append(loop.time() - start)
        gate_.record()

    await asyncio.gather(*(chat(n) for n in range(40)))
    assert sent[:3] == pytest.approx([0.0, 0.0, 0.0], abs=0.01)  # a short burst at once
    assert sent[3] - sent[2] == pytest.approx(1 / 30, abs=0.01)  # then one every 1/30 s
    for i, first in enumerate(sent):  # never more than 3 at once + 30 a second after
        for j in range(i + 1, len(sent)):
            assert j - i + 1 <= 3 + (sent[j] - first) * 30 + 0.5
    assert max(sum(1 for t in sent if w <= t < w + 1.0) for w in sent) <= 30  # cap kept


async def test_a_chat_that_stops_waiting_gives_its_turn_to_the_next():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(global_per_second=1)
    first = gates.get("a", limits)
    await first.acquire()
    first.record()
    waiting = asyncio.create_task(gates.get("b", limits).acquire())
    after = asyncio.create_task(gates.get("c", limits).acquire())
    await asyncio.sleep(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    async with asyncio.timeout(0.6):
        await after  # c gets the slot that frees at 1 s


async def test_a_caller_polling_reserve_keeps_its_place_in_the_queue():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=5.0, burst=5, global_per_second=2)
    loop = asyncio.get_running_loop()
    for chat in ("a", "b"):
        gates.get(chat, limits).reserve()
        gates.get(chat, limits).record()
    poller = gates.get("p", limits)
    assert poller.reserve() > 0  # queued first
    renderers = [asyncio.create_task(gates.get(n, limits).acquire()) for n in range(3)]
    while (delay := poller.reserve()) > 0:  # noqa: ASYNC110 - polling is what is tested
        await asyncio.sleep(delay)
    assert loop.time() == pytest.approx(1.0, abs=0.06)  # the first slot to free was its
    poller.record()
    for task in renderers:
        task.cancel()
    await asyncio.gather(*renderers, return_exceptions=True)


async def test_a_slot_taken_but_not_used_goes_back():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(global_per_second=1)
    taken = gates.get("a", limits)
    assert taken.reserve() == 0
    assert gates.get("b", limits).delay() > 0
    taken.release()
    assert gates.get("b", limits).delay() == 0


async def full_window(*, per_second: int, taken: int = 1) -> tuple[Gates, PaceLimits]:
    """Gates sharing a bot-wide cap of ``per_second``, with ``taken`` calls just made."""
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=5.0, burst=5, global_per_second=per_second)
    for n in range(taken):
        made = gates.get(f"made-{n}", limits)
        await made.acquire()
        made.record()
    return gates, limits


async def test_the_bot_wide_cap_serves_finals_then_first_texts_then_updates():
    # Found by bench.load at 1,000 chats: first come first served let drafts of streaming
    # replies take Telegram's 30 calls a second while finished replies waited a minute.
    gates, limits = await full_window(per_second=1)
    loop = asyncio.get_running_loop()
    served: list[str] = []

    async def chat(name: str, priority: Priority) -> None:
        gate_ = gates.get(name, limits)
        await gate_.acquire(priority=priority)
        served.append(name)
        gate_.record()

    tasks = [
        asyncio.create_task(chat("update", Priority.UPDATE)),
        asyncio.create_task(chat("first", Priority.FIRST)),
        asyncio.create_task(chat("final", Priority.FINAL)),
    ]
    await asyncio.sleep(0.1)  # all three queue, in that order, behind the full window
    await asyncio.gather(*tasks)
    assert served == ["final", "first", "update"]
    assert loop.time() == pytest.approx(3.0, abs=0.05)


async def test_a_reply_that_finishes_while_it_waits_moves_up_the_queue():
    gates, limits = await full_window(per_second=1)
    others = [asyncio.create_task(gates.get(n, limits).acquire()) for n in range(3)]
    surface = Recorder()
    renderer = LiveRenderer(surface, gates.get("late", limits))
    renderer.update("partial")  # queues behind the three others for its first text
    await asyncio.sleep(0.1)
    done = asyncio.create_task(renderer.finish("complete"))
    await asyncio.sleep(0.1)
    async with asyncio.timeout(1.0):  # the next slot (at 1 s) is its, not the others'
        await done
    assert [s[1:] for s in surface.shown] == [("final", "complete")]
    assert not any(task.done() for task in others)
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def test_a_spare_slot_is_taken_only_when_nobody_waits_for_one():
    gates, limits = await full_window(per_second=2, taken=0)
    typing = gates.get("typing", limits)
    assert typing.spare()
    typing.spent()
    text = gates.get("text", limits)
    await text.acquire()
    text.record()
    assert not typing.spare()  # the window is full: the indicator gives way
    waiting = asyncio.create_task(gates.get("waiting", limits).acquire())
    await asyncio.sleep(1.1)  # the window frees; the queued reply is served first
    assert waiting.done()
    assert typing.spare()  # served: the slot left is spare again
    typing.spent()
    assert not typing.spare()


class Watching(NullObserver):
    """Keeps what ``Gates`` hands an observer: its cap-waiting reader, its 429s."""

    def __init__(self) -> None:
        self.limited: list[str] = []
        self.waiting: dict[str, Callable[[], int]] = {}

    def rate_limited(self, platform: str) -> None:
        self.limited.append(platform)

    def watch_cap_waiting(self, platform: str, read: Callable[[], int]) -> None:
        self.waiting[platform] = read


async def test_gates_count_chats_waiting_for_the_bot_wide_cap_and_report_each_429():
    observer = Watching()
    gates = Gates(clock=asyncio.get_running_loop().time, observer=observer, platform="tg")
    limits = PaceLimits(global_per_second=1)
    first = gates.get("a", limits)
    await first.acquire()
    first.record()
    queued = [asyncio.create_task(gates.get(c, limits).acquire()) for c in "bc"]
    await asyncio.sleep(0.1)
    assert observer.waiting["tg"]() == 2
    gates.get("b", limits).hurry(Priority.FINAL)  # two places in line, one chat
    assert observer.waiting["tg"]() == 2
    await queued[0]
    assert observer.waiting["tg"]() == 1
    queued[1].cancel()
    await asyncio.gather(queued[1], return_exceptions=True)
    assert observer.waiting["tg"]() == 0
    assert observer.limited == []
    first.penalize(3.0)
    assert observer.limited == ["tg"]


async def test_hold_says_how_long_no_call_can_go():
    gates = Gates(clock=asyncio.get_running_loop().time)
    limits = PaceLimits(per_second=1.0, burst=1, global_per_second=2, global_burst=2)
    holder, other, late = (gates.get(n, limits) for n in ("holder", "other", "late"))
    assert holder.reserve() == 0
    assert other.reserve() == 0
    assert late.reserve() > 0  # queued for the bot-wide cap
    assert holder.hold() == 0  # its slot is taken: its call may go
    assert late.hold() == math.inf  # behind the queue, for as long as that takes
    holder.record()
    assert holder.hold() == math.inf  # its next call queues behind "late"
    solo = gate(PaceLimits(per_second=1.0, burst=1))
    assert solo.reserve() == 0
    solo.record()
    assert 0.9 < solo.hold() <= 1.0  # its own pace: one call a second


@pytest.mark.parametrize("held_by", ["its own pace", "the bot-wide queue"])
async def test_a_held_back_reader_rests_and_a_call_shows_what_came_meanwhile(held_by):
    # bench.load at 1,000 chats: reading each token as it came (25 a second per chat) was
    # most of the bot's CPU, while a chat may show new text about once a second.
    loop = asyncio.get_running_loop()
    surface = Recorder()
    gates = Gates(clock=loop.time)
    if held_by == "its own pace":
        renderer = LiveRenderer(surface, gate(PaceLimits(per_second=1.0, burst=1)))
    else:  # another chat takes turns with it for the bot-wide cap: when its turn comes is
        # not known ahead, so the call must wake the resting reader before taking the text
        limits = PaceLimits(per_second=5.0, burst=5, global_per_second=2, global_burst=1)
        renderer = LiveRenderer(surface, gates.get("me", limits))
        other = gates.get("other", limits)

        async def compete() -> None:
            while True:
                await other.acquire()
                other.record()

        competitor = asyncio.create_task(compete())
    arrived: list[tuple[float, str]] = []  # the network: a token every 40 ms
    more = asyncio.Event()

    async def network() -> None:
        text = ""
        for i in range(100):
            await asyncio.sleep(0.04)
            text += f"w{i} "
            arrived.append((loop.time(), text))
            more.set()

    sender = asyncio.create_task(network())
    reads = 0
    text = ""
    while not (sender.done() and text == arrived[-1][1]):  # the reader
        await more.wait()  # all that is buffered, in one read
        more.clear()
        reads += 1
        text = arrived[-1][1]
        renderer.update(text)
        if (rest := renderer.pause()) is not None:
            await rest
    await renderer.finish(text)
    if held_by != "its own pace":
        competitor.cancel()
    assert surface.shown[-1][1:] == ("final", text)
    assert len(surface.shown) > 3
    assert reads < 40  # not 100: it rested while the chat could show nothing new
    for at, kind, shown in surface.shown:
        if kind == "show":  # each call showed what had come by then, one token late at most
            newest = [t for when, t in arrived if when <= at]
            assert shown in newest[-2:]
