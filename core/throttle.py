"""Pacing a growing reply onto a platform: the latest text, in as few calls as limits allow.

A platform counts calls per chat (Telegram: about one a second per chat, 20 a minute per group,
30 a second per bot; Discord: about five per five seconds per message). ``ChatGate`` turns those
limits (data, from config) into "how long until the next call may go", and a 429's
``retry_after`` into a penalty window for that chat alone. ``LiveRenderer`` sits between the
Kamiya stream and the platform: ``update`` never waits, a worker task sends the newest text
whenever the gate allows, skips texts already shown, and ``finish`` delivers the final text as
soon as the gate, and any penalty, allow. While the gate holds the chat back, ``pause`` lets the
stream's reader rest (its tokens pile up unread, to be read in one go), and a call that may go
wakes it first, so the call shows everything that came.

The bot-wide cap is shared by every chat, so chats waiting for it queue: when a slot frees, the
chat at the head of the queue is handed it and woken, and only that one. (Letting every waiting
chat sleep until the slot frees and race for it wakes them all each time: with a thousand chats
streaming, thirty thousand wake-ups a second.) When the cap is what holds replies back, what
matters most goes first (``Priority``): a finished reply's final text, then a reply's first
text, then updates of text already shown, first come first served within each. Calls that may
be skipped (a typing indicator) take a slot only if one is free and nobody waits (``spare``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from core.observe import NULL_OBSERVER, current_trace

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable

    from core.observe import Observer, TurnTrace

__all__ = ["ChatGate", "Gates", "LiveRenderer", "PaceLimits", "Priority", "RetryLater", "Surface"]

log = logging.getLogger(__name__)

_MIN_WAIT = 0.005  # s: the shortest sleep, so float rounding never becomes a busy loop
_POLL_S = 0.05  # s: how often a caller polling ``reserve`` looks whether its turn came
# A stream's reader rests while its chat cannot be shown newer text (``LiveRenderer.pause``):
_REST_MIN_S = 0.05  # not for less (a wake-up costs what it saves)
_REST_MAX_S = 0.25  # nor for more at a time: the reply's end is seen at most that late
_REST_LEAD_S = 0.02  # and it wakes this early, to have read all before the call may go


class Priority(IntEnum):
    """Order of service for the bot-wide cap; lower goes first."""

    FINAL = 0  # the reply is complete: the user waits for exactly this
    FIRST = 1  # nothing of the reply is visible yet
    UPDATE = 2  # more of a reply already on screen


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
    chat of the bot, handed out evenly: at most ``global_burst`` calls at once, then one per
    ``1 / global_per_second`` s. (Spent as a burst, a second's 30 slots freed together a
    second later and 30 chats went at once again: on one event loop the last of them waited
    for all the others' requests to be built, 45 ms with 1,000 chats streaming.)
    """

    per_second: float = 1.0
    burst: int = 3
    window_calls: int | None = None
    window_s: float = 60.0
    global_per_second: float | None = None
    global_burst: int = 3


class _Ticket:
    """A chat's place in the queue for the bot-wide cap; ``granted`` once a slot is its own."""

    __slots__ = ("claimed", "future", "granted_at", "revoked", "waking")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.granted_at = 0.0
        self.claimed = False
        self.revoked = False
        self.waking: Callable[[], None] | None = None  # called as the slot is handed over

    @property
    def granted(self) -> bool:
        return self.future.done() and not self.future.cancelled() and not self.revoked


class _Window:
    """A rolling-window counter: at most ``limit`` calls in any ``span`` seconds.

    A call counts from when it is reserved (in flight) until ``span`` after it completed: its
    arrival at the platform lies somewhere in between, and a busy loop or network can push it
    late, so counting from completion keeps the platform's own window under the limit.

    Shared by chats (the bot-wide cap), it also keeps the queue of chats waiting for a slot and
    hands free slots out in order (``enqueue``); a slot handed out counts as in flight. With a
    ``burst``, slots are also spread out: a token bucket of that size, refilled at
    ``limit / span`` a second, must hold one for each slot taken.
    """

    __slots__ = (
        "_burst",
        "_clock",
        "_events",
        "_granted",
        "_queues",
        "_stamp",
        "_timer",
        "_tokens",
        "in_flight",
        "limit",
        "span",
    )

    def __init__(
        self,
        limit: int,
        span: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        burst: int | None = None,
    ) -> None:
        self.limit = limit
        self.span = span
        self.in_flight = 0
        self._clock = clock
        self._burst = burst
        self._tokens = float(burst or 0)
        self._stamp = clock()
        self._events: deque[float] = deque()
        self._queues: tuple[deque[_Ticket], ...] = tuple(deque() for _ in Priority)
        self._granted: deque[_Ticket] = deque()  # handed out, maybe not yet claimed
        self._timer: asyncio.TimerHandle | None = None

    def room(self, now: float) -> int:
        """Slots free now (negative: over, after a burst of reservations)."""
        events = self._events
        horizon = now - self.span
        while events and events[0] <= horizon:
            events.popleft()
        free = self.limit - len(events) - self.in_flight
        if self._burst is not None:
            free = min(free, int(self._refill(now)))
        return free

    def delay(self, now: float) -> float:
        if self.room(now) > 0:
            return 0.0
        wait = 0.0
        if len(self._events) + self.in_flight >= self.limit:
            if self._events:
                wait = self._events[0] + self.span - now
            else:
                wait = self.span / max(1, self.limit)  # all slots in flight: look again soon
        if self._burst is not None and self._tokens < 1.0:
            wait = max(wait, (1.0 - self._tokens) * self.span / self.limit)
        return wait

    def take(self) -> None:
        """A slot is taken now (``room`` was positive)."""
        self.in_flight += 1
        self._tokens -= 1.0

    def charge(self, calls: int) -> None:
        """Calls made without a slot taken first still spend the bucket."""
        self._tokens -= calls

    def _refill(self, now: float) -> float:
        burst = self._burst or 0
        if self._tokens < burst and now > self._stamp:
            self._tokens = min(burst, self._tokens + (now - self._stamp) * self.limit / self.span)
        self._stamp = now
        return self._tokens

    def _give_back(self, slots: int) -> None:
        self.in_flight -= slots
        if self._burst is not None:
            self._tokens = min(float(self._burst), self._tokens + slots)

    def record(self, now: float) -> None:
        self._events.append(now)

    @property
    def queued(self) -> bool:
        """Whether a chat is waiting for a slot (a newcomer goes behind it)."""
        return self._head() is not None

    def waiting(self) -> int:
        """Chats waiting for a slot now (a promoted ticket stands in two queues: once)."""
        return len({id(t) for queue in self._queues for t in queue if not t.future.done()})

    def _head(self) -> deque[_Ticket] | None:
        """The queue to serve next: the most urgent one with a ticket still waiting."""
        for queue in self._queues:
            while queue and queue[0].future.done():
                queue.popleft()  # a ticket given up, or served from a more urgent queue
            if queue:
                return queue
        return None

    def enqueue(self, priority: Priority = Priority.UPDATE) -> _Ticket:
        """Join the queue; the ticket's future is done once a slot is reserved for it."""
        ticket = _Ticket(asyncio.get_running_loop().create_future())
        self._queues[priority].append(ticket)
        self._serve()
        return ticket

    def promote(self, ticket: _Ticket, priority: Priority) -> None:
        """Move a waiting ticket up (its reply finished while it waited); it keeps its future,
        and its old place is skipped once that is done."""
        if not ticket.future.done():
            self._queues[priority].append(ticket)
            self._serve()

    def release(self, slots: int = 1) -> None:
        """Reserved slots went unused: free them, and hand them on."""
        self._give_back(slots)
        if self.queued:
            self._serve()

    def _serve(self) -> None:
        """Hand free slots to waiting chats, oldest first; come back when the next one frees."""
        now = self._clock()
        granted = self._granted
        while granted and (granted[0].claimed or granted[0].granted_at <= now - self.span):
            stale = granted.popleft()
            if not stale.claimed:  # its chat never came for it (its task ended): take it back
                stale.revoked = True
                self._give_back(1)
        room = self.room(now)
        while room > 0 and (queue := self._head()) is not None:
            ticket = queue.popleft()
            self.take()
            room -= 1
            ticket.granted_at = now
            if ticket.waking is not None:
                ticket.waking()  # before the chat's own wake-up: it runs first
            ticket.future.set_result(None)
            granted.append(ticket)
        if self.queued and self._timer is None:
            wait = max(self.delay(now), 0.001)
            self._timer = asyncio.get_running_loop().call_later(wait, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._serve()


class ChatGate:
    """When may the next call for one chat go? Token bucket + rolling caps + 429 penalty."""

    def __init__(
        self,
        limits: PaceLimits,
        *,
        shared: _Window | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_penalty: Callable[[], None] | None = None,
    ) -> None:
        self._limits = limits
        self._on_penalty = on_penalty
        self._clock = clock
        self._tokens = float(limits.burst)
        self._stamp = clock()
        self._window = (
            _Window(limits.window_calls, limits.window_s, clock) if limits.window_calls else None
        )
        self._shared = shared
        self._reserved = 0
        self._ticket: _Ticket | None = None
        self._penalty_until = 0.0

    def delay(self) -> float:
        """Seconds until a call is allowed (0: now; not while other chats queue for the
        bot-wide cap, unless this chat's turn has come)."""
        now = self._clock()
        wait = self._own_delay(now)
        shared = self._shared
        if shared is not None:
            ticket = self._ticket
            if ticket is not None and ticket.granted:
                pass
            elif ticket is not None or shared.queued:
                wait = max(wait, shared.delay(now), _MIN_WAIT)
            else:
                wait = max(wait, shared.delay(now))
        return max(0.0, wait)

    def hold(self) -> float:
        """``delay``, but ``inf`` while queued behind other chats for the bot-wide cap (for as
        long as that takes), and only its own limits while it holds a slot."""
        shared, ticket = self._shared, self._ticket
        if shared is None or self._reserved:
            return max(0.0, self._own_delay(self._clock()))
        if (ticket is None and shared.queued) or (ticket is not None and not ticket.granted):
            return math.inf
        return self.delay()

    def open(self) -> bool:
        """``delay() == 0``, answered from the cheapest facts first: while other chats queue for
        the bot-wide cap (most of the time under load), without looking at this chat's own."""
        shared = self._shared
        ticket = self._ticket
        if shared is not None:
            if ticket is not None:
                if not ticket.granted:
                    return False
            elif shared.queued:
                return False
        now = self._clock()
        if self._own_delay(now) > 0:
            return False
        return shared is None or ticket is not None or shared.delay(now) <= 0

    def reserve(self, priority: Priority = Priority.UPDATE) -> float:
        """Like ``delay``, but a 0 also takes the bot-wide slot at once.

        Chats share the bot-wide cap: without taking the slot when deciding, many chats could
        all see room and send together, far over the cap. A chat held back only by that cap
        queues for it; its slot is kept for it once its turn comes (``acquire`` waits for that
        without polling; a caller that polls gets it on its next ``reserve``).
        """
        now = self._clock()
        own = max(0.0, self._own_delay(now))
        shared = self._shared
        if shared is None or own > 0:
            self._drop_ticket()  # no use holding a place for the bot-wide cap meanwhile
            return own
        if self._ticket is None or self._ticket.revoked:
            self._ticket = None  # a revoked ticket was not claimed in time: queue again
            if shared.room(now) > 0 and not shared.queued:
                shared.take()
                self._reserved += 1
                return 0.0
            try:
                self._ticket = shared.enqueue(priority)
            except RuntimeError:  # no running event loop: plain polling
                return max(shared.delay(now), _MIN_WAIT)
        if self._ticket.granted:
            self._ticket.claimed = True
            self._ticket = None
            self._reserved += 1
            return 0.0
        return min(_POLL_S, max(shared.delay(now), _MIN_WAIT))  # still queued

    async def acquire(
        self,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        priority: Priority = Priority.UPDATE,
        waking: Callable[[], None] | None = None,
    ) -> None:
        """Wait until a call may go, then hold its slot, as ``reserve`` returning 0 does.

        Waits for this chat's own limits by sleeping, and for the bot-wide cap in its queue,
        woken once when its turn comes; ``waking`` is called as the slot is handed over, in
        the same step, so whatever it wakes runs before this does.
        """
        while (delay := self.reserve(priority)) > 0:
            ticket = self._ticket
            if ticket is None or ticket.future.done():
                # A floor: float rounding can leave nanoseconds, which must not busy-loop.
                await sleep(max(delay, _MIN_WAIT))
                continue
            ticket.waking = waking
            try:
                await ticket.future
            except asyncio.CancelledError:
                self._drop_ticket()
                raise

    def hurry(self, priority: Priority) -> None:
        """This chat's place in the queue for the bot-wide cap, if it has one, moves up."""
        ticket = self._ticket
        if ticket is not None and self._shared is not None:
            self._shared.promote(ticket, priority)

    def spare(self) -> bool:
        """Take a bot-wide slot for a call that may be skipped, only if one is free now and no
        chat waits for one; ``spent`` must follow the call. A typing indicator never delays a
        reply's text, and under load it is what gives way."""
        shared = self._shared
        if shared is None:
            return True
        if shared.queued or shared.room(self._clock()) <= 0:
            return False
        shared.take()
        return True

    def spent(self) -> None:
        """The call a ``spare`` slot was taken for is done (or failed): count it."""
        shared = self._shared
        if shared is not None:
            shared.in_flight -= 1
            shared.record(self._clock())

    def release(self) -> None:
        """Give back a slot ``reserve`` or ``acquire`` took, for a call not made after all."""
        self._drop_ticket()
        if self._shared is not None and self._reserved:
            self._shared.release(self._reserved)
            self._reserved = 0

    def record(self, calls: int = 1) -> None:
        """Charge ``calls`` platform calls just made (a reserved bot-wide slot included)."""
        now = self._clock()
        self._refill(now)
        self._tokens -= calls
        window, shared = self._window, self._shared
        for _ in range(calls):
            if window is not None:
                window.record(now)
            if shared is not None:
                shared.record(now)
        if shared is not None:
            shared.in_flight -= self._reserved
            if calls > self._reserved:
                shared.charge(calls - self._reserved)
        self._reserved = 0

    def penalize(self, retry_after: float) -> None:
        """A 429: hold every call of this chat for ``retry_after`` seconds."""
        self._penalty_until = max(self._penalty_until, self._clock() + retry_after)
        if self._on_penalty is not None:
            self._on_penalty()

    @property
    def penalized(self) -> bool:
        return self._clock() < self._penalty_until

    def _own_delay(self, now: float) -> float:
        """This chat's own limits: its bucket, its rolling cap, its penalty (may be < 0)."""
        self._refill(now)
        limits = self._limits
        wait = self._penalty_until - now
        if self._tokens < 1.0:
            wait = max(wait, (1.0 - self._tokens) / limits.per_second)
        if self._window is not None:
            wait = max(wait, self._window.delay(now))
        return wait

    def _drop_ticket(self) -> None:
        """Leave the queue; a slot already handed to this chat goes back."""
        ticket, self._ticket = self._ticket, None
        if ticket is None or self._shared is None:
            return
        if not ticket.future.done():
            ticket.future.cancel()
        elif ticket.granted and not ticket.claimed:
            ticket.claimed = True
            self._shared.release()

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed <= 0:
            return
        self._stamp = now
        burst = float(self._limits.burst)
        if self._tokens < burst:
            self._tokens = min(burst, self._tokens + elapsed * self._limits.per_second)


class Gates:
    """One ``ChatGate`` per chat, sharing the bot-wide cap; limits may differ per chat kind.

    ``observer`` hears each 429 of ``platform`` (a chat penalised), and reads how many chats
    wait for the bot-wide cap when it is scraped.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: Observer = NULL_OBSERVER,
        platform: str = "",
    ) -> None:
        self._clock = clock
        self._gates: dict[Hashable, ChatGate] = {}
        self._shared: dict[float, _Window] = {}
        self._on_penalty = lambda: observer.rate_limited(platform)
        observer.watch_cap_waiting(platform, self.waiting)

    def waiting(self) -> int:
        """Chats waiting for a slot of the bot-wide cap now."""
        return sum(window.waiting() for window in self._shared.values())

    def get(self, chat: Hashable, limits: PaceLimits) -> ChatGate:
        gate = self._gates.get(chat)
        if gate is None:
            shared = None
            if limits.global_per_second:
                rate = limits.global_per_second
                shared = self._shared.get(rate)
                if shared is None:
                    shared = self._shared[rate] = _Window(
                        max(1, int(rate)), 1.0, self._clock, burst=limits.global_burst
                    )
            gate = self._gates[chat] = ChatGate(
                limits, shared=shared, clock=self._clock, on_penalty=self._on_penalty
            )
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
        self._resting: asyncio.Future[None] | None = None  # the stream's reader, resting
        self._trace: TurnTrace | None = None  # whose first text this shows, once text came
        self.calls = 0
        self.updates_shown = 0

    def update(self, text: str) -> None:
        """The reply so far. Never waits: the newest text replaces any not yet shown."""
        if self._final is not None:
            return
        self._latest = text
        self._wake.set()
        if self._task is None:  # the reply's first text: timed once, nothing per token
            self._trace = current_trace()
            if self._trace is not None:
                self._trace.first_token()
            self._task = asyncio.create_task(self._run(), name="live-renderer")

    def pause(self) -> Awaitable[None] | None:
        """``ReplySink.pause``: rest while the chat's pace holds it back, never past the
        moment a call may go; a call that may go wakes the reader first (``_catch_up``)."""
        if self._task is None or self._final is not None or self._resting is not None:
            return None  # the first text goes at once; the end is shown as it comes
        hold = self._gate.hold() - _REST_LEAD_S
        if hold < _REST_MIN_S:
            return None
        return self._rest(min(hold, _REST_MAX_S))

    async def _rest(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        resting = self._resting = loop.create_future()
        timer = loop.call_later(seconds, _settle, resting)
        try:
            await resting
        finally:
            timer.cancel()
            self._resting = None

    async def _catch_up(self) -> None:
        """A call may go: a resting reader first reads what came meanwhile. Its wake-up is
        queued before this task's, and it reads all that is buffered without waiting. (A slot
        handed over from the bot-wide queue woke it already, with ``_wake_reader``: one step
        of the event loop sooner.)"""
        if self._resting is not None:
            self._wake_reader()
            await asyncio.sleep(0)

    def _wake_reader(self) -> None:
        if self._resting is not None:
            _settle(self._resting)

    async def finish(self, text: str) -> None:
        """Show ``text`` as the final state; returns once it is delivered (or given up on)."""
        self._final = text
        self._wake.set()
        self._gate.hurry(Priority.FINAL)  # if it waits for the bot-wide cap, it goes first
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
        held = False  # a slot taken for an update, kept for the final that came meanwhile
        while self._final_text() is None:
            await self._wake.wait()
            self._wake.clear()
            await self._pace(Priority.UPDATE if self._shown is not None else Priority.FIRST)
            await self._catch_up()
            if self._final_text() is not None:
                held = True
                break
            text = self._latest
            if text is None or text == self._shown:
                self._gate.release()
                continue
            if await self._attempt(self._surface.show, text):
                self._shown = text
                self.updates_shown += 1
            elif self._gate.penalized:
                self._wake.set()  # come back with whatever is newest once the penalty ends
        final = self._final_text() or ""
        for _ in range(self._max_final_attempts):
            if not held:
                await self._pace(Priority.FINAL)
            held = False
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
        if made and self._trace is not None:
            self._trace.first_visible()  # the reply's text is on screen
            self._trace = None
        return True

    async def _pace(self, priority: Priority) -> None:
        await self._gate.acquire(self._sleep, priority, self._wake_reader)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
