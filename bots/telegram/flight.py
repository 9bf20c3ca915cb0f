"""The crash record of one reply (``core.inflight``), kept at the pace of Bot API calls.

A reply is recorded when it first has something to show the user (it is queued, waits for a
stream slot, or starts), before its first Bot API call, and not earlier: recording awaits the
database, and a reply must take its chat's place in line before its first ``await``. A reply
that is only a one-line failure is never recorded: there is nothing to mark interrupted.

The surface notes the reply's messages whenever they change (a message sent or deleted, the
last one's text edited): a few writes a second per chat at most, never one per token. The
reply's owner ends the record once the user sees the reply settled; a record left open (the
process died, or the final state never reached Telegram) is marked interrupted at the next
start (``recovery``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from core import ChatKey
    from core.inflight import InflightLog

__all__ = ["Flight"]


class Flight:
    def __init__(
        self,
        log: InflightLog,
        chat: ChatKey,
        target: Mapping[str, object],
        language: str | None,
    ) -> None:
        self._log = log
        self._chat = chat
        self._target = dict(target)
        self._language = language
        self._id: str | None = None
        self._noted: tuple[tuple[int, ...], str] = ((), "")
        self._lock = asyncio.Lock()  # begin once, and notes in order

    @property
    def recorded(self) -> bool:
        return self._id is not None

    async def begin(self) -> None:
        """Record the reply, once; later calls return at once."""
        if self._id is not None:
            return
        async with self._lock:
            await self._begin()

    async def note(self, message_ids: Sequence[int], shown: str) -> None:
        """The reply's messages now, and the text the last one shows; no write if unchanged,
        or if the reply was never recorded (a one-line failure)."""
        state = (tuple(message_ids), shown)
        async with self._lock:
            if self._id is None or state == self._noted:
                return
            self._noted = state
            await self._log.messages(self._id, state[0], shown)

    async def end(self) -> None:
        """The user sees the reply settled: forget it (nothing to do if never recorded)."""
        async with self._lock:
            if self._id is not None:
                await self._log.end(self._id)

    async def _begin(self) -> None:
        if self._id is None:
            self._id = await self._log.begin(self._chat, self._target, self._language)
