"""The crash record of one reply (``core.inflight``), kept at the pace of Discord calls.

A reply is recorded once Discord has acknowledged the interaction (the deferral's "thinking…"
message, whose id the callback returns, is its first message) and before the reply's first
message call; a mention reply before its first message. Acknowledging comes first because
Discord allows only 3 s for it and recording awaits the database.

``target`` says where the reply is, for a process that has no interaction token: the channel,
the header the first message starts with and, for a mention, the message answered. The surface
notes the reply's messages whenever they change (a message sent or deleted, the last one's text
edited), a few writes a second per channel at most, never one per token. The record ends once
the reply's final text is on screen; one left open (the process died, or the final text never
reached Discord) is marked interrupted at the next start (``bots.discord.recovery``).
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
    """One reply's record: begun once, noted as it changes, ended once it is settled."""

    def __init__(self, log: InflightLog, chat: ChatKey, language: str | None) -> None:
        self._log = log
        self._chat = chat
        self._language = language
        self._id: str | None = None
        self._ended = False
        self._noted: tuple[tuple[int, ...], str] = ((), "")
        self._lock = asyncio.Lock()  # begin once, then notes in order

    async def begin(
        self, target: Mapping[str, object], message_ids: Sequence[int] = (), shown: str = ""
    ) -> None:
        """Record the reply (once) at ``target``, with the messages it already has."""
        async with self._lock:
            if self._id is None:
                self._id = await self._log.begin(self._chat, target, self._language)
            await self._note(message_ids, shown)

    async def note(self, message_ids: Sequence[int], shown: str) -> None:
        """The reply's messages now, and the text the last one shows; unchanged: no write."""
        async with self._lock:
            if self._id is not None and not self._ended:
                await self._note(message_ids, shown)

    async def end(self) -> None:
        """The reply is settled on screen: forget it (nothing to do if never recorded)."""
        async with self._lock:
            if self._id is not None and not self._ended:
                self._ended = True
                await self._log.end(self._id)

    async def _note(self, message_ids: Sequence[int], shown: str) -> None:
        state = (tuple(message_ids), shown)
        if state == self._noted or self._id is None:
            return
        self._noted = state
        await self._log.messages(self._id, state[0], shown)
