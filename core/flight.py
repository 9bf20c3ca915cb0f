"""One reply's crash record (``core.inflight``), kept without ever holding up the reply.

A frontend begins the record before the reply's first platform call and awaits that: a crash
after it must find the reply. Notes of the reply's messages (sent, deleted, the last one's text
edited) are written behind: ``note`` returns at once, and a writer task stores the newest state
when the database has time, skipping states a newer one replaced. Awaiting each note inside the
platform call held the call's bot-wide slot for as long as the database took: at 1,000 chats,
a second and more of SQLite's queue, during which Telegram's budget went unused. ``end`` drops
notes not yet written (the record goes anyway) and forgets the reply once it is settled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from core.frontend import ChatKey
    from core.inflight import InflightLog

__all__ = ["Flight"]

_State = tuple[tuple[str, ...], str]


class Flight:
    """One reply's record: begun once, noted as it changes, ended once it is settled."""

    def __init__(
        self,
        log: InflightLog,
        chat: ChatKey,
        language: str | None,
        target: Mapping[str, object] | None = None,
    ) -> None:
        self._log = log
        self._chat = chat
        self._language = language
        self._target = dict(target or {})
        self._id: str | None = None
        self._ended = False
        self._noted: _State = ((), "")
        self._pending: _State | None = None
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # begin once; end after the note being written

    @property
    def recorded(self) -> bool:
        return self._id is not None

    async def begin(
        self,
        target: Mapping[str, object] | None = None,
        message_ids: Sequence[int | str] = (),
        shown: str = "",
    ) -> None:
        """Record the reply (once) at ``target`` (or the one given at construction), with the
        messages it already has; later calls only note those."""
        if self._id is None:
            async with self._lock:
                if self._id is None:
                    where = dict(target) if target is not None else self._target
                    self._id = await self._log.begin(self._chat, where, self._language)
        if message_ids or shown:
            self.note(message_ids, shown)

    def note(self, message_ids: Sequence[int | str], shown: str) -> None:
        """The reply's messages now, and the text the last one shows; never waits."""
        if self._id is None or self._ended:
            return
        state = (tuple(str(m) for m in message_ids), shown)
        if state == (self._pending or self._noted):
            return
        self._pending = state
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="flight-note")

    async def settle(self) -> None:
        """Wait until every note so far is stored (tests, and a reply handing over)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def end(self) -> None:
        """The reply is settled on screen: forget it (nothing to do if never recorded)."""
        self._pending = None
        async with self._lock:
            if self._id is not None and not self._ended:
                self._ended = True
                await self._log.end(self._id)

    async def _write(self) -> None:
        while (state := self._pending) is not None and self._id is not None:
            self._pending = None
            async with self._lock:
                if self._ended:
                    return
                self._noted = state
                await self._log.messages(self._id, state[0], state[1])
