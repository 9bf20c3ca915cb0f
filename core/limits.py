"""Per-user limits, checked before a Kamiya request is made.

Requests per minute are counted in this process over a sliding minute (a user's messages reach
one bot process: the platform delivers each update once). Characters per day are summed from
storage, so they hold across restarts and processes; a day is a UTC calendar day.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.frontend import Failure

if TYPE_CHECKING:
    from collections.abc import Callable

    from storage.protocol import ConversationStore

__all__ = ["Limits"]

WINDOW = timedelta(minutes=1)


class Limits:
    """``check`` answers ``None`` (go ahead, and the request is counted) or the ``Failure``."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        requests_per_minute: int,
        chars_per_day: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._per_minute = requests_per_minute
        self._per_day = chars_per_day
        self._clock = clock
        self._recent: dict[tuple[str, str], deque[datetime]] = {}

    async def check(self, platform: str, user_id: str) -> Failure | None:
        if not user_id or not (self._per_minute or self._per_day):
            return None
        now = self._clock()
        if self._per_day:
            used = await self._store.user_usage(user_id, platform=platform, since=now.date())
            if used.chars >= self._per_day:
                midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
                wait = (midnight.replace(tzinfo=now.tzinfo) - now).total_seconds()
                return Failure("limit_daily", retry_after=wait, limit=self._per_day)
        if self._per_minute:
            recent = self._recent.setdefault((platform, user_id), deque())
            while recent and now - recent[0] >= WINDOW:
                recent.popleft()
            if len(recent) >= self._per_minute:
                wait = (recent[0] + WINDOW - now).total_seconds()
                return Failure("limit_rate", retry_after=max(1.0, wait), limit=self._per_minute)
            recent.append(now)
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: datetime) -> None:
        """Drop users idle for a minute, so the table holds only active users."""
        if len(self._recent) < 1024:
            return
        for key in [k for k, v in self._recent.items() if not v or now - v[-1] >= WINDOW]:
            del self._recent[key]
