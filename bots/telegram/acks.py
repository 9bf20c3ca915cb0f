"""Webhook acknowledgements that keep a chat's order across processes.

Telegram posts a bot's updates one after another and sends the next once the last got its 200;
behind a load balancer consecutive messages of one chat may reach different processes. Core
keeps a chat's turns in the order their places were recorded in the shared database, so a
message's update is acknowledged only once its turn's place is recorded (or, for an update that
starts no turn, once its handlers ran): the next message, wherever it lands, queues behind it.
A turn still waiting for its place after ``ACK_WAIT_S`` is acknowledged anyway, since Telegram
would otherwise send the update again, which is worse than a rare reordering.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Update

__all__ = ["ACK_WAIT_S", "Acks"]

ACK_WAIT_S = 5.0


class Acks:
    """Pending acknowledgements by update id: ``accept`` waits for one, handlers settle it."""

    def __init__(self, wait_s: float = ACK_WAIT_S) -> None:
        self._wait_s = wait_s
        self._pending: dict[int, asyncio.Future[None]] = {}  # not yet claimed by a turn

    async def accept(self, update: Update, enqueue: Callable[[Update], Awaitable[None]]) -> None:
        """Queue ``update`` and return once it is settled (or ``ACK_WAIT_S`` passed)."""
        settled = asyncio.get_running_loop().create_future()
        self._pending[update.update_id] = settled
        try:
            await enqueue(update)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(settled), self._wait_s)
        finally:
            self._pending.pop(update.update_id, None)

    def claim(self, update_id: int) -> Callable[[], None] | None:
        """A handler starts a turn for this update: returns what settles it once the turn's
        place is recorded (``None`` where no acknowledgement waits: polling)."""
        settled = self._pending.pop(update_id, None)
        return None if settled is None else lambda: _settle(settled)

    def handled(self, update_id: int) -> None:
        """The update's handlers ran; unless one claimed it, it is settled now."""
        settled = self._pending.get(update_id)
        if settled is not None:
            _settle(settled)


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)
