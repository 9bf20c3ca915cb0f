"""One Bot API call, made robust: transient failures retried, 429 turned into core's RetryLater.

Network errors and 5xx (PTB raises ``NetworkError``, of which ``BadRequest`` and ``TimedOut`` are
subclasses) are retried with jittered backoff by stamina, a bounded number of times; a
``BadRequest`` is an answer, not a failure, and is never retried. ``RetryAfter`` is not retried
here at all: the caller's pacer owns waiting, so a chat's penalty never blocks a stream reader.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import TYPE_CHECKING, TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter

from core.retries import retrying
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["call", "retry_seconds"]

T = TypeVar("T")

ATTEMPTS = 3


def _transient(exc: Exception) -> bool:
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)


async def call(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` (a Bot API call); raise ``RetryLater`` on 429."""
    try:
        return await retrying(
            make, on=_transient, attempts=ATTEMPTS, wait_initial=0.2, wait_max=2.0, timeout=15.0
        )
    except RetryAfter as exc:
        raise RetryLater(retry_seconds(exc)) from None


def retry_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns about the int → timedelta migration
        value = exc.retry_after
    if isinstance(value, dt.timedelta):
        return max(1.0, value.total_seconds())
    return max(1.0, float(value))
