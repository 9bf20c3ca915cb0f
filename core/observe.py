"""What core tells an operator: the ``Observer`` seam, and the turn each log line belongs to.

Core reports events (a reply's outcome, a Kamiya error, the first token, the first visible
text, a platform's 429) to an ``Observer`` and hands it readers for the gauges (streams in
flight, queued messages, chats waiting for the bot-wide cap), which a backend calls when it is
scraped: nothing is counted per token. ``NULL_OBSERVER`` does nothing; the Prometheus backend
lives in ``bots.metrics`` (a library core need not know, like the platforms).

``TurnTrace`` is the turn in progress, in a context variable for the duration of the turn, so log
lines (``bots.logs``) and the Kamiya request (``X-Request-Id``) carry its chat and request id
without every call passing them along, and the renderer finds what to time its first text from.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "NULL_OBSERVER",
    "NullObserver",
    "Observer",
    "TurnTrace",
    "current_trace",
    "in_trace",
    "new_request_id",
]


class Observer(Protocol):
    """Where core's operational events go. Calls are cheap and never raise."""

    def replied(self, platform: str, outcome: str) -> None:
        """A turn ended: ``"ok"``, or its ``Failure.kind`` (``"stopped"``, ``"upstream"``…)."""
        ...

    def kamiya_error(self, error: str) -> None:
        """A Kamiya request failed with this ``core.errors`` class (retried ones too)."""
        ...

    def first_token(self, platform: str, seconds: float) -> None:
        """The first text of a reply arrived, ``seconds`` after Kamiya was asked."""
        ...

    def first_visible(self, platform: str, seconds: float) -> None:
        """A platform call first showed a reply's text, ``seconds`` after Kamiya was asked."""
        ...

    def rate_limited(self, platform: str) -> None:
        """The platform answered 429: the chat is held back for a while."""
        ...

    def watch_streams(self, read: Callable[[], int]) -> None:
        """``read()``: Kamiya streams in flight now."""
        ...

    def watch_queued(self, read: Callable[[], int]) -> None:
        """``read()``: messages waiting behind another turn of their chat."""
        ...

    def watch_cap_waiting(self, platform: str, read: Callable[[], int]) -> None:
        """``read()``: chats of ``platform`` waiting for a slot of the bot-wide cap."""
        ...


class NullObserver:
    """Observes nothing: metrics switched off, and tests that do not look."""

    def replied(self, platform: str, outcome: str) -> None:
        pass

    def kamiya_error(self, error: str) -> None:
        pass

    def first_token(self, platform: str, seconds: float) -> None:
        pass

    def first_visible(self, platform: str, seconds: float) -> None:
        pass

    def rate_limited(self, platform: str) -> None:
        pass

    def watch_streams(self, read: Callable[[], int]) -> None:
        pass

    def watch_queued(self, read: Callable[[], int]) -> None:
        pass

    def watch_cap_waiting(self, platform: str, read: Callable[[], int]) -> None:
        pass


NULL_OBSERVER: Observer = NullObserver()


@dataclass(slots=True)
class TurnTrace:
    """One turn in progress: its chat, its request id, and when Kamiya was asked.

    ``asked_at`` (``time.monotonic``) is set once the turn holds a stream slot; the first token
    and the first visible text are timed from it, each reported at most once.
    """

    chat: str
    platform: str
    request_id: str
    observer: Observer = NULL_OBSERVER
    asked_at: float | None = None
    _token_seen: bool = False
    _text_seen: bool = False

    def asked(self) -> None:
        self.asked_at = time.monotonic()

    def first_token(self) -> None:
        if self.asked_at is not None and not self._token_seen:
            self._token_seen = True
            self.observer.first_token(self.platform, time.monotonic() - self.asked_at)

    def first_visible(self) -> None:
        if self.asked_at is not None and not self._text_seen:
            self._text_seen = True
            self.observer.first_visible(self.platform, time.monotonic() - self.asked_at)


_current: ContextVar[TurnTrace | None] = ContextVar("kamiya_bot_turn", default=None)


def current_trace() -> TurnTrace | None:
    """The turn the running code belongs to, if any."""
    return _current.get()


def new_request_id() -> str:
    """12 hex characters: enough to find one turn in a day of logs."""
    return os.urandom(6).hex()


@contextmanager
def in_trace(trace: TurnTrace) -> Iterator[TurnTrace]:
    """``trace`` is current inside (and in the tasks started inside, which copy the context)."""
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)
