"""Flood control of the fake Bot API: Telegram's documented sending limits, on an injected clock.

The numbers are the Bot FAQ's (about 1 message/s per chat with short bursts, 20 per minute
per group, about 30 per second overall; see PLATFORM_NOTES.md §3). Telegram answers a call
over a limit with 429 and ``retry_after``, and keeps answering 429 for that chat until the
time is up, whatever the bot sends meanwhile: the penalty window. The clock is injected so
tests of the limiter step time instead of sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FloodControl", "Limits"]

_GROUP_WINDOW_S = 60.0
_GLOBAL_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits enforced on sendMessage and editMessageText (and drafts if ``drafts_count``).

    Per chat a token bucket of ``per_chat_burst`` refilled at ``per_chat_per_s``; per group
    (chat id < 0) at most ``per_group_per_min`` in any rolling 60 s; the whole bot at most
    ``global_per_s`` in any rolling second. Drafts are not counted by default: Telegram has
    documented no limit for them.
    """

    enabled: bool = True
    per_chat_burst: int = 3
    per_chat_per_s: float = 1.0
    per_group_per_min: int = 20
    global_per_s: int = 30
    drafts_count: bool = False

    def __post_init__(self) -> None:
        if self.per_chat_burst < 1 or self.per_group_per_min < 1 or self.global_per_s < 1:
            raise ValueError("burst and per-window limits must be at least 1")
        if self.per_chat_per_s <= 0:
            raise ValueError("per_chat_per_s must be positive")

    @classmethod
    def off(cls) -> Limits:
        """No flood control: for tests about something else that send fast."""
        return cls(enabled=False)


def retry_seconds(wait: float) -> int:
    """Telegram's ``retry_after``: whole seconds, rounded up, never 0 (PTB ignores 0)."""
    return max(1, math.ceil(wait - 1e-9))


class FloodControl:
    """Admits or refuses rate-limited calls; remembers penalty windows per chat."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # chat → (tokens, as of)
        self._groups: dict[int, deque[float]] = {}  # group chat → send times in the window
        self._global: deque[float] = deque()
        self._penalty: dict[int, float] = {}  # chat → refused until

    def admit(self, chat_id: int) -> int | None:
        """Count a call to ``chat_id``: None if it may go, else ``retry_after`` in seconds.

        A refused call uses no budget but opens (or, inside one, reports) the chat's
        penalty window, which lasts the ``retry_after`` it was told.
        """
        limits, now = self.limits, self._clock()
        if not limits.enabled:
            return None
        until = self._penalty.get(chat_id)
        if until is not None and now < until:
            return retry_seconds(until - now)
        tokens, as_of = self._buckets.get(chat_id, (float(limits.per_chat_burst), now))
        tokens = min(float(limits.per_chat_burst), tokens + (now - as_of) * limits.per_chat_per_s)
        waits: list[float] = []
        if tokens < 1.0:
            waits.append((1.0 - tokens) / limits.per_chat_per_s)
        group = self._groups.setdefault(chat_id, deque()) if chat_id < 0 else None
        if group is not None:
            _prune(group, now - _GROUP_WINDOW_S)
            if len(group) >= limits.per_group_per_min:
                waits.append(group[0] + _GROUP_WINDOW_S - now)
        _prune(self._global, now - _GLOBAL_WINDOW_S)
        if len(self._global) >= limits.global_per_s:
            waits.append(self._global[0] + _GLOBAL_WINDOW_S - now)
        if waits:
            self._buckets[chat_id] = (tokens, now)
            retry = retry_seconds(max(waits))
            self._penalty[chat_id] = now + retry
            return retry
        self._buckets[chat_id] = (tokens - 1.0, now)
        if group is not None:
            group.append(now)
        self._global.append(now)
        return None

    def penalty_until(self, chat_id: int) -> float | None:
        """When the chat's current penalty window ends (clock time), or None outside one."""
        until = self._penalty.get(chat_id)
        return until if until is not None and self._clock() < until else None


def _prune(times: deque[float], older_than: float) -> None:
    while times and times[0] <= older_than:
        times.popleft()
