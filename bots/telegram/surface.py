"""How one reply appears in a Telegram chat: an animated draft, or a message edited in place.

Both modes keep ``sent``, the real messages of the reply in order, so the final text is always
made exact the same way: each rendered chunk (≤ 4096 UTF-16 units) is compared with the message
that holds it, differing ones are edited, missing ones sent, surplus ones deleted. Draft mode
commits a chunk as a real message as soon as the reply outgrows it and animates only the tail.

Buttons are part of a message's state too: while a reply streams by edits, each of its messages
carries ``stop`` (drafts cannot carry buttons); the final state has none but ``final_markup``
on the last message (Regenerate). A message whose text is final but whose buttons are not gets
only its keyboard edited.

Whenever the messages change (one sent or deleted, the last one's text edited), ``on_change``
hears their ids and the last one's text, so a crash record can say what the user saw; once the
final state is shown, ``settled`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters
from telegram.error import BadRequest, NetworkError, TelegramError

from bots.telegram.api import call
from bots.telegram.format import Chunk, split
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot, Message

__all__ = ["Target", "TelegramSurface"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # previews would jump around while streaming


@dataclass(frozen=True, slots=True)
class Target:
    """Where a reply goes: the chat, its forum topic, and the user's message it answers."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None

    def record(self, *, private: bool) -> dict[str, object]:
        """The target as a crash record keeps it (``core.inflight``; read by ``recovery``)."""
        return {
            "chat_id": self.chat_id,
            "thread_id": self.thread_id,
            "reply_to": self.reply_to,
            "private": private,
        }


class _DraftRefused(Exception):
    pass


class TelegramSurface:
    """A ``core.throttle.Surface`` for one reply. Safe to call from several tasks."""

    def __init__(
        self,
        bot: Bot,
        target: Target,
        *,
        draft: bool,
        on_draft_refused: Callable[[], None] = lambda: None,
        stop: InlineKeyboardMarkup | None = None,
        on_change: Callable[[list[int], str], None] | None = None,
    ) -> None:
        self._bot = bot
        self._target = target
        self._draft = draft
        self._draft_id = random.randint(1, 2**31 - 1)  # noqa: S311 - an id, not a secret
        self._on_draft_refused = on_draft_refused
        self._stop = stop
        self.final_markup: InlineKeyboardMarkup | None = None  # on the last message, at the end
        self._sent: list[tuple[int, Chunk, InlineKeyboardMarkup | None]] = []
        self._last_draft: Chunk | None = None
        self._lock = asyncio.Lock()
        self._on_change = on_change
        self.visible = asyncio.Event()
        self.settled = False  # the final state is shown

    @property
    def drafting(self) -> bool:
        return self._draft

    @property
    def message_ids(self) -> list[int]:
        return [message_id for message_id, _, _ in self._sent]

    async def placeholder(self) -> None:
        """An empty draft: Telegram shows its own "Thinking…" until text arrives."""
        async with self._lock:
            if not self._draft or self.visible.is_set():
                return
            try:
                await self._send_draft(None)
            except _DraftRefused:
                self._fall_back()
            except (TelegramError, RetryLater) as exc:  # a placeholder is only a nicety
                log.debug("placeholder draft failed: %r", exc)

    async def show(self, markdown: str) -> int:
        async with self._lock:
            chunks = split(markdown, partial=True)
            if not chunks:
                return 0
            if self._draft:
                try:
                    return await self._show_draft(chunks)
                except _DraftRefused:
                    self._fall_back()
            return await self._sync(chunks, [self._stop] * len(chunks))

    async def final(self, markdown: str) -> int:
        async with self._lock:
            chunks = split(markdown) or [Chunk("…", ())]
            markups = [None] * (len(chunks) - 1) + [self.final_markup]
            calls = await self._sync(chunks, markups)
            self.settled = True
            return calls

    def _fall_back(self) -> None:
        log.info("chat %s: drafts refused, streaming by edits", self._target.chat_id)
        self._draft = False
        self._on_draft_refused()

    async def _show_draft(self, chunks: list[Chunk]) -> int:
        calls = 0
        try:
            while len(self._sent) < len(chunks) - 1:  # the reply outgrew a message: commit it
                calls += await self._put(len(self._sent), chunks[len(self._sent)], None)
        finally:
            await self._noted()
        tail = chunks[-1]
        if tail != self._last_draft:
            await self._send_draft(tail)
            calls += 1
        self.visible.set()
        return calls

    async def _send_draft(self, chunk: Chunk | None) -> None:
        target = self._target
        try:
            await call(
                lambda: self._bot.send_message_draft(
                    chat_id=target.chat_id,
                    draft_id=self._draft_id,
                    text=chunk.text if chunk else None,
                    entities=chunk.entities if chunk else None,
                    message_thread_id=target.thread_id,
                )
            )
        except RetryLater:
            raise
        except NetworkError as exc:
            if not isinstance(exc, BadRequest):
                raise  # transient (already retried): not a refusal
            raise _DraftRefused from exc
        except TelegramError as exc:  # Forbidden, or a Bot API without the method (404)
            raise _DraftRefused from exc
        self._last_draft = chunk

    async def _sync(self, chunks: list[Chunk], markups: list[InlineKeyboardMarkup | None]) -> int:
        try:
            return await self._sync_all(chunks, markups)
        finally:
            await self._noted()

    async def _noted(self) -> None:
        if self._on_change is not None:
            shown = self._sent[-1][1].text if self._sent else ""
            self._on_change(self.message_ids, shown)  # written behind: never waits

    async def _sync_all(
        self, chunks: list[Chunk], markups: list[InlineKeyboardMarkup | None]
    ) -> int:
        calls = 0
        for index, (chunk, markup) in enumerate(zip(chunks, markups, strict=True)):
            if index < len(self._sent) and self._sent[index][1] == chunk:
                if self._sent[index][2] != markup:
                    calls += await self._mark(index, markup)
                continue
            calls += await self._put(index, chunk, markup)
        while len(self._sent) > len(chunks):
            message_id, _, _ = self._sent.pop()
            calls += 1
            try:
                await call(partial(self._bot.delete_message, self._target.chat_id, message_id))
            except TelegramError:
                log.warning("could not delete surplus message %s", message_id)
        self.visible.set()
        return calls

    async def _put(self, index: int, chunk: Chunk, markup: InlineKeyboardMarkup | None) -> int:
        """Make message ``index`` show ``chunk``: edit it if it exists, else send it."""
        if index < len(self._sent):
            message_id = self._sent[index][0]
            try:
                await self._edit(message_id, chunk, markup)
            except BadRequest as exc:
                if "not found" not in exc.message.lower():
                    raise
                sent = await self._send(chunk, markup, first=index == 0)
                self._sent[index] = (sent, chunk, markup)
                return 2
            self._sent[index] = (message_id, chunk, markup)
            return 1
        self._sent.append((await self._send(chunk, markup, first=index == 0), chunk, markup))
        return 1

    async def _mark(self, index: int, markup: InlineKeyboardMarkup | None) -> int:
        """Only the buttons of message ``index`` change (its text is already right)."""
        message_id, chunk, _ = self._sent[index]
        try:
            await call(
                lambda: self._bot.edit_message_reply_markup(
                    self._target.chat_id, message_id, reply_markup=markup
                )
            )
        except BadRequest as exc:
            reason = exc.message.lower()
            if "not found" in reason:
                return 1 + await self._put(index, chunk, markup)  # sends it anew
            if "not modified" not in reason:
                raise
        self._sent[index] = (message_id, chunk, markup)
        return 1

    async def _send(
        self, chunk: Chunk, markup: InlineKeyboardMarkup | None, *, first: bool
    ) -> int:
        target = self._target
        reply = None
        if first and target.reply_to is not None:
            reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True)

        async def send(entities: bool) -> Message:
            return await self._bot.send_message(
                target.chat_id,
                chunk.text,
                entities=chunk.entities if entities else None,
                message_thread_id=target.thread_id,
                reply_parameters=reply,
                link_preview_options=_NO_PREVIEW,
                reply_markup=markup,
            )

        message = await _entities_or_plain(send)
        return message.message_id

    async def _edit(
        self, message_id: int, chunk: Chunk, markup: InlineKeyboardMarkup | None
    ) -> None:
        async def edit(entities: bool) -> object:
            # Without reply_markup Telegram removes the message's buttons, which is meant.
            return await self._bot.edit_message_text(
                chunk.text,
                chat_id=self._target.chat_id,
                message_id=message_id,
                entities=chunk.entities if entities else None,
                link_preview_options=_NO_PREVIEW,
                reply_markup=markup,
            )

        try:
            await _entities_or_plain(edit)
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise


async def _entities_or_plain(send: Callable[[bool], Awaitable[T]]) -> T:
    """Send with entities; should Telegram ever refuse them, send the same text plain."""
    try:
        return await call(lambda: send(True))
    except BadRequest as exc:
        if "can't parse entities" not in exc.message.lower():
            raise
        log.warning("Telegram refused entities (%s); sending plain text", exc.message)
        return await call(lambda: send(False))
