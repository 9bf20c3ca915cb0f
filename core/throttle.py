"""Pacing a growing reply onto a platform: the latest text, in as few calls as limits allow.

A platform counts calls per chat (Telegram: about one a second per chat, 20 a minute per group,
30 a second per bot; Discord: about five per five seconds per message). ``ChatGate`` turns those
limits (data, from config) into "how long until the next call may go", and a 429's
``retry_after`` into a penalty window for that chat alone. ``LiveRenderer`` sits between the
Kamiya stream and the platform: ``update`` never waits (the stream is read at full speed),
a worker task sends the newest text whenever the gate allows, skips texts already shown, and
``finish`` delivers the final text as soon as the gate, and any penalty, allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable

__all__ = ["ChatGate", "Gates", "LiveRenderer", "PaceLimits", "RetryLater", "Surface"]

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The platform said 429: nothing more for this chat for ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:g} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PaceLimits:
    """A platform's limits for one chat, and for the whole bot.

    ``per_second`` with ``burst``: a token bucket per chat (short bursts, then a steady rate).
    ``window_calls`` per ``window_s``: a rolling cap per chat (Telegram groups: 20 a minute;
    Discord: 5 edits per 5 s). ``global_per_second``: a rolling one-second cap shared by every
    chat of the bot.
    """

    per_second: float = 1.0
    burst: int = 3
    window_calls: int | None = None
    window_s: float = 60.0
    global_per_second: float | None = None


class _Window:
    """A rolling-window counter: at most ``limit`` calls in any ``span`` seconds.

    A call counts from when it is reserved (in flight) until ``span`` after it completed: its
    arrival at the platform lies somewhere in between, and a busy loop or network can push it
    late, so counting from completion keeps the platform's own window under the limit.
    """

    __slots__ = ("_events", "in_flight", "limit", "span")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.in_flight = 0
        self._events: deque[float] = deque()

    def delay(self, now: float) -> float:
        while self._events and self._events[0] <= now - self.span:
            self._events.popleft()
        if len(self._events) + self.in_flight < self.limit:
            return 0.0
        if not self._events:
            return self.span / max(1, self.limit)  # all slots in flight: look again soon
        return self._events[0] + self.span - now

    def record(self, now: float) -> None:
        self._events.append(now)


class ChatGate:
    """When may the next call for one chat go? Token bucket + rolling caps + 429 penalty."""

    def __init__(
        self,
        limits: PaceLimits,
        *,
        shared: _Window | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._tokens = float(limits.burst)
        self._stamp = clock()
        self._window = (
            _Window(limits.window_calls, limits.window_s) if limits.window_calls else None
        )
        self._shared = shared
        self._reserved = 0
        self._penalty_until = 0.0

    def delay(self) -> float:
        """Seconds until a call is allowed (0: now)."""
        now = self._clock()
        self._refill(now)
        waits = [self._penalty_until - now, (1.0 - self._tokens) / self._limits.per_second]
        if self._window is not None:
            waits.append(self._window.delay(now))
        if self._shared is not None:
            waits.append(self._shared.delay(now))
        return max(0.0, *waits)

    def reserve(self) -> float:
        """Like ``delay``, but a 0 also takes the bot-wide slot at once.

        Chats share the bot-wide cap: without taking the slot when deciding, many chats could
        all see room and send together, far over the cap.
        """
        delay = self.delay()
        if delay == 0 and self._shared is not None:
            self._shared.in_flight += 1
            self._reserved += 1
        return delay

    def record(self, calls: int = 1) -> None:
        """Charge ``calls`` platform calls just made (a reserved bot-wide slot included)."""
        now = self._clock()
        self._refill(now)
        self._tokens -= calls
        for _ in range(calls):
            if self._window is not None:
                self._window.record(now)
            if self._shared is not None:
                self._shared.record(now)
        if self._shared is not None:
            self._shared.in_flight -= self._reserved
        self._reserved = 0

    def penalize(self, retry_after: float) -> None:
        """A 429: hold every call of this chat for ``retry_after`` seconds."""
        self._penalty_until = max(self._penalty_until, self._clock() + retry_after)

    @property
    def penalized(self) -> bool:
        return self._clock() < self._penalty_until

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(
            float(self._limits.burst), self._tokens + elapsed * self._limits.per_second
        )


class Gates:
    """One ``ChatGate`` per chat, sharing the bot-wide cap; limits may differ per chat kind."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._gates: dict[Hashable, ChatGate] = {}
        self._shared: dict[float, _Window] = {}

    def get(self, chat: Hashable, limits: PaceLimits) -> ChatGate:
        gate = self._gates.get(chat)
        if gate is None:
            shared = None
            if limits.global_per_second:
                rate = limits.global_per_second
                shared = self._shared.setdefault(rate, _Window(max(1, int(rate)), 1.0))
            gate = self._gates[chat] = ChatGate(limits, shared=shared, clock=self._clock)
        return gate


class Surface(Protocol):
    """Where a reply is shown. Each method returns the number of platform calls it made.

    Raise ``RetryLater`` on a 429; keep your own state consistent with what was really sent.
    """

    async def show(self, text: str) -> int: ...

    async def final(self, text: str) -> int: ...


class LiveRenderer:
    """One per reply: paces ``Surface.show`` with the newest text, then ``Surface.final``."""

    def __init__(
        self,
        surface: Surface,
        gate: ChatGate,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_final_attempts: int = 5,
    ) -> None:
        self._surface = surface
        self._gate = gate
        self._sleep = sleep
        self._latest: str | None = None
        self._shown: str | None = None
        self._final: str | None = None
        self._wake = asyncio.Event()
        self._max_final_attempts = max_final_attempts
        self._task: asyncio.Task[None] | None = None
        self.calls = 0
        self.updates_shown = 0

    def update(self, text: str) -> None:
        """The reply so far. Never waits: the newest text replaces any not yet shown."""
        if self._final is not None:
            return
        self._latest = text
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-renderer")

    async def finish(self, text: str) -> None:
        """Show ``text`` as the final state; returns once it is delivered (or given up on)."""
        self._final = text
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-renderer")
        await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Stop at once (shutdown): nothing more is sent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _final_text(self) -> str | None:
        return self._final  # a method, so type narrowing cannot outlive an ``await``

    async def _run(self) -> None:
        while self._final_text() is None:
            await self._wake.wait()
            self._wake.clear()
            await self._pace()
            if self._final_text() is not None:
                break
            text = self._latest
            if text is None or text == self._shown:
                continue
            if await self._attempt(self._surface.show, text):
                self._shown = text
                self.updates_shown += 1
            elif self._gate.penalized:
                self._wake.set()  # come back with whatever is newest once the penalty ends
        final = self._final_text() or ""
        for _ in range(self._max_final_attempts):
            await self._pace()
            if await self._attempt(self._surface.final, final):
                return
        log.warning("final text not delivered after %d attempts", self._max_final_attempts)

    async def _attempt(self, call: Callable[[str], Awaitable[int]], text: str) -> bool:
        made = 1  # a failed or cancelled attempt still cost the platform a call
        try:
            made = await call(text)
        except RetryLater as exc:
            log.info("platform asked to wait %.1f s; skipping updates meanwhile", exc.retry_after)
            self._gate.penalize(exc.retry_after)
            return False
        except Exception:
            log.exception("showing a reply failed")
            return False
        finally:
            self._gate.record(made)  # also releases the bot-wide slot ``reserve`` took
        self.calls += made
        return True

    async def _pace(self) -> None:
        while (delay := self._gate.reserve()) > 0:
            # A floor: float rounding can leave nanoseconds, which must not become a busy loop.
            await self._sleep(max(delay, 0.005))
