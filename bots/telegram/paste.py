"""Joining a long paste: Telegram cuts a text over 4096 characters into several messages.

A message near the limit, followed within ``window`` seconds by more from the same user in the
same chat, is held; the parts are joined (with a newline, as the cut fell at a line or word
boundary) and answered as one request once a part arrives that is not near the limit, or the
window passes. Anything else goes straight through.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

__all__ = ["NEAR_LIMIT", "PasteJoiner"]

NEAR_LIMIT = 3800  # Telegram cuts at 4096; a part this long is most likely a cut


@dataclass
class _Held:
    parts: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class PasteJoiner:
    """Feeds ``deliver(key, text)``: single messages at once, a paste's parts joined."""

    def __init__(
        self,
        deliver: Callable[[Hashable, str], None],
        *,
        window: float = 1.0,
        near_limit: int = NEAR_LIMIT,
    ) -> None:
        self._deliver = deliver
        self._window = window
        self._near = near_limit
        self._held: dict[Hashable, _Held] = {}

    def feed(self, key: Hashable, text: str) -> None:
        """A message from one user in one chat (``key``). Never waits."""
        held = self._held.get(key)
        near = len(text) >= self._near
        if held is None and not near:
            self._deliver(key, text)
            return
        if held is None:
            held = self._held[key] = _Held()
        held.parts.append(text)
        if held.timer is not None:
            held.timer.cancel()
        if near and self._window > 0:
            held.timer = asyncio.get_running_loop().call_later(self._window, self.flush, key)
        else:
            self.flush(key)

    def flush(self, key: Hashable) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        self._deliver(key, "\n".join(held.parts))

    def flush_all(self) -> None:
        for key in list(self._held):
            self.flush(key)
