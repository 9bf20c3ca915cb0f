"""Retrying Kamiya before the first byte: 429 and 5xx are often gone a moment later.

Only a request that showed the user nothing is retried: once text is on screen a second request
would answer anew, and the conversation endpoint would add a second turn. stamina does the
backoff (exponential, with jitter, bounded in attempts and total time); a 429's Retry-After,
when given, is the wait instead, capped so a user never waits long for a reply that may not come.
Timeouts are not retried: the user has already waited the whole read timeout once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import stamina

from core.errors import RateLimited, Unreachable, UpstreamFailure

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["RetryPolicy", "first_byte_backoff", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` extra attempts (0: none), waits from ``wait_s`` doubling up to ``max_s``."""

    retries: int = 0
    wait_s: float = 0.5
    max_s: float = 10.0

    async def run(self, attempt: Callable[[], Awaitable[T]], shown: Callable[[], bool]) -> T:
        """``attempt()`` until it succeeds, fails for good, or ``shown()`` says text is out."""
        if self.retries <= 0:
            return await attempt()
        max_s = self.max_s

        def hook(exc: Exception) -> bool | float:
            return False if shown() else first_byte_backoff(exc, max_s)

        return await retrying(
            attempt,
            on=hook,
            attempts=self.retries + 1,
            timeout=None,
            wait_initial=self.wait_s,
            wait_max=self.max_s,
            wait_jitter=self.wait_s,
        )


async def retrying(
    make: Callable[[], Awaitable[T]], on: Callable[[Exception], bool | float], **backoff: Any
) -> T:
    """``make()`` under ``stamina.retry_context(on=on, **backoff)``, entered only once the
    first attempt failed in a way ``on`` retries.

    Nearly every call succeeds at once, and a retry context per call was a dozen objects in
    reference cycles, left to the garbage collector's pauses (``python -m bench.load``). The
    first failure enters stamina's loop as its first trial, so stamina waits and counts
    exactly as if it had made that attempt itself.
    """
    try:
        return await make()
    except Exception as exc:
        if on(exc) is False:
            raise
        failed: Exception | None = exc
    async for trial in stamina.retry_context(on=on, **backoff):
        with trial:
            if failed is not None:
                first, failed = failed, None
                raise first
            return await make()
    raise AssertionError("stamina ended without a result or an exception")  # pragma: no cover


def first_byte_backoff(exc: BaseException, max_s: float) -> bool | float:
    """Whether to retry ``exc``, or how long to wait first (a 429's Retry-After)."""
    if isinstance(exc, RateLimited):
        return min(exc.retry_after, max_s) if exc.retry_after else True
    if isinstance(exc, Unreachable):
        return True
    if isinstance(exc, UpstreamFailure):
        return exc.status is not None and exc.status >= 500
    return False
