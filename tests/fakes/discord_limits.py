"""Rate limits of the fake Discord: edits per message and creates per channel, in windows.

Discord never publishes its numbers and tells clients to read the ``X-RateLimit-*`` headers;
about 5 per 5 s per channel is what bots observe (PLATFORM_NOTES.md §3). Off by default,
so tests about something else run fast; a rate-limit test turns them on. A call over a limit
gets the 429 discord.py recognises as Discord's own (``Via`` present, ``retry_after`` float
in the body), so the library sleeps and retries by itself, as it would in production.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Limits", "RateLimiter", "Scope", "rate_limit_headers"]

Scope = Literal["edit", "create"]


@dataclass(frozen=True, slots=True)
class Limits:
    """At most ``per_message_edits`` edits of one message per ``per_message_window_s`` and
    ``per_channel_creates`` new messages in one channel per ``per_channel_window_s``; None
    is no limit. ``headers`` adds ``X-RateLimit-*`` to successful limited calls, which makes
    discord.py wait pre-emptively once ``Remaining`` reaches 0 (so it slows tests down).
    """

    per_message_edits: int | None = None
    per_message_window_s: float = 5.0
    per_channel_creates: int | None = None
    per_channel_window_s: float = 5.0
    headers: bool = False

    def __post_init__(self) -> None:
        for limit in (self.per_message_edits, self.per_channel_creates):
            if limit is not None and limit < 1:
                raise ValueError("limits must be at least 1 (or None for no limit)")
        if self.per_message_window_s <= 0 or self.per_channel_window_s <= 0:
            raise ValueError("windows must be positive")

    @classmethod
    def observed(cls, *, headers: bool = False) -> Limits:
        """The commonly observed numbers: 5 edits a message, 5 messages a channel, per 5 s."""
        return cls(5, 5.0, 5, 5.0, headers)

    def of(self, scope: Scope) -> tuple[int | None, float]:
        if scope == "edit":
            return self.per_message_edits, self.per_message_window_s
        return self.per_channel_creates, self.per_channel_window_s


@dataclass(frozen=True, slots=True)
class Budget:
    """A bucket's state after a call: for the headers, or ``retry_after`` if refused."""

    scope: Scope
    limit: int
    remaining: int
    reset_after: float
    retry_after: float | None = None


class RateLimiter:
    """Rolling windows per (scope, message or channel id), on the fake's clock."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._windows: dict[tuple[Scope, int], deque[float]] = {}

    def check(self, scope: Scope, key: int) -> Budget | None:
        """None if the scope is unlimited; a budget with ``retry_after`` if over the limit.

        Only checks: ``spend`` counts the call once it succeeded, as refused calls use none.
        """
        limit, window_s = self.limits.of(scope)
        if limit is None:
            return None
        now = self._clock()
        times = self._window(scope, key, now - window_s)
        reset_after = times[0] + window_s - now if times else window_s
        if len(times) < limit:
            return Budget(scope, limit, limit - len(times), reset_after)
        retry = max(0.001, round(reset_after, 3))
        return Budget(scope, limit, 0, reset_after, retry_after=retry)

    def spend(self, scope: Scope, key: int) -> Budget | None:
        """Count a successful call; the budget left, for ``X-RateLimit-*`` headers."""
        limit, window_s = self.limits.of(scope)
        if limit is None:
            return None
        now = self._clock()
        times = self._window(scope, key, now - window_s)
        times.append(now)
        return Budget(scope, limit, max(0, limit - len(times)), times[0] + window_s - now)

    def _window(self, scope: Scope, key: int, older_than: float) -> deque[float]:
        times = self._windows.setdefault((scope, key), deque())
        while times and times[0] <= older_than:
            times.popleft()
        return times


def rate_limit_headers(budget: Budget, *, with_bucket: bool) -> dict[str, str]:
    """What Discord sends: the 429 trio always on a refusal, the bucket state if enabled.

    ``Via`` is what makes discord.py trust a 429 as Discord's rather than Cloudflare's.
    """
    headers: dict[str, str] = {}
    if budget.retry_after is not None:
        headers |= {
            "Via": "1.1 google",
            "X-RateLimit-Scope": "user",
            "Retry-After": str(math.ceil(budget.retry_after)),
        }
    if with_bucket:
        headers |= {
            "X-RateLimit-Limit": str(budget.limit),
            "X-RateLimit-Remaining": str(budget.remaining),
            "X-RateLimit-Reset": f"{time.time() + budget.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{budget.reset_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{budget.scope}-bucket",
        }
    return headers
