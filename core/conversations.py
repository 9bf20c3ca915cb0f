"""The adapter: a chat's messages → Kamiya turns, in order, with the conversationId kept right.

Rules it enforces (see ``../shared/KAMIYA_PROTOCOL.md``): one turn in flight per chat; the stored
conversationId changes only when a turn completes (``kamiyaInfo`` is the truth); an id the server
no longer knows restarts the conversation once and says so; failures leave the store untouched.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.background import Background
from core.errors import ConversationNotFound, KamiyaError
from core.events import Final, TextDelta
from core.frontend import ChatKey, Failure, Reply, ReplySink
from core.lanes import Lanes, QueueFull
from core.titles import fallback_title, guess_language, tidy_title, title_prompt

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from core.client import KamiyaClient
    from storage.protocol import ConversationRecord, ConversationStore

__all__ = ["Conversations"]

log = logging.getLogger(__name__)

TITLE_TIMEOUT_S = 60.0
INTERRUPT_GRACE_S = 1.0  # how long a shutdown waits to mark a cut-off reply


def utc_now() -> datetime:
    return datetime.now(UTC)


class Conversations:
    """What every frontend calls. An async context manager: leaving it cancels title tasks."""

    def __init__(
        self,
        client: KamiyaClient,
        store: ConversationStore,
        *,
        max_pending: int = 5,
        titles: bool = True,
        title_model: str = "openai:gpt-3.5-turbo",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._store = store
        self._lanes = Lanes(max_pending)
        self._titles = titles
        self._title_model = title_model
        self._clock = clock
        self._background = Background("titles")

    async def __aenter__(self) -> Conversations:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ask(
        self,
        chat: ChatKey,
        content: str,
        sink: ReplySink,
        *,
        user_id: str = "",
        language: str | None = None,
    ) -> Reply | Failure:
        """Answer one message. Never raises for a Kamiya failure: the sink hears it instead.

        Must be called in arrival order: the chat's place in line is taken before the first
        ``await``. ``language`` (the user's platform language) guides the title's language.
        """
        key = str(chat)
        shown: list[str] = []
        try:
            async with self._lanes.turn(key, on_queued=lambda ahead: _quiet(sink.queued(ahead))):
                return await self._turn(key, content, sink, user_id, language, shown=shown)
        except QueueFull:
            failure = Failure("busy")
            await _quiet(sink.failed(failure))
            return failure
        except asyncio.CancelledError:
            # Shutdown: say so, briefly, so the user knows to send the message again.
            await _interrupted(sink, Failure("interrupted", "".join(shown)))
            raise

    async def reset(self, chat: ChatKey) -> None:
        """The chat's next message starts a new conversation; the old one stays in history.

        Waits for turns already queued, so a reset never lands in the middle of a reply whose
        ``kamiyaInfo`` would otherwise bring the old conversation back.
        """
        key = str(chat)
        async with self._lanes.turn(key, bounded=False):
            await self._store.reset(key, at=self._clock())

    async def current(self, chat: ChatKey) -> str | None:
        return await self._store.current(str(chat))

    async def history(self, chat: ChatKey, *, limit: int = 10) -> list[ConversationRecord]:
        return await self._store.conversations(str(chat), limit=limit)

    def pending(self, chat: ChatKey) -> int:
        """Turns in flight or waiting for this chat."""
        return self._lanes.depth(str(chat))

    async def wait_background(self) -> None:
        """Wait until every background title task has finished (tests, orderly shutdown)."""
        await self._background.wait()

    async def aclose(self) -> None:
        await self._background.cancel()

    async def _turn(
        self,
        key: str,
        content: str,
        sink: ReplySink,
        user_id: str,
        language: str | None,
        *,
        shown: list[str],
    ) -> Reply | Failure:
        stored = await self._store.current(key)
        await _quiet(sink.started())
        expired = False
        try:
            try:
                final = await self._stream(content, stored, sink, shown)
            except ConversationNotFound:
                if stored is None or shown:
                    raise
                log.info("chat %s: conversation %s unknown upstream, starting anew", key, stored)
                expired = True
                final = await self._stream(content, None, sink, shown)
        except KamiyaError as exc:
            log.warning("chat %s: turn failed: %r", key, exc)
            retry_after = getattr(exc, "retry_after", None)
            failure = Failure(exc.kind, "".join(shown), retry_after, exc)
            await _quiet(sink.failed(failure))
            return failure
        if stored is not None and final.conversation_id != stored:
            log.info("chat %s: Kamiya moved %s to %s", key, stored, final.conversation_id)
            expired = True
        try:
            new = await self._store.record_reply(
                key,
                final.conversation_id,
                user_id=user_id,
                billed_chars=len(final.full_content),
                at=self._clock(),
            )
        except Exception:
            # The reply exists upstream; showing it beats hiding it. The old id stays stored.
            log.exception("chat %s: could not store conversation %s", key, final.conversation_id)
            new = False
        reply = Reply(final.full_content, final.conversation_id, new, expired)
        await _quiet(sink.finished(reply))
        if new and self._titles:
            self._background.spawn(
                self._name(final.conversation_id, content, final.full_content, language)
            )
        return reply

    async def _stream(
        self, content: str, conversation_id: str | None, sink: ReplySink, shown: list[str]
    ) -> Final:
        final: Final | None = None
        async with aclosing(self._client.conversation(content, conversation_id)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    shown.append(event.text)
                    await _quiet(sink.progress("".join(shown)))
                else:
                    final = event
        if final is None:  # the client guarantees a Final or an error; be loud if not
            raise AssertionError("conversation stream ended without Final")
        return final

    async def _name(
        self, conversation_id: str, content: str, reply: str, hint: str | None
    ) -> None:
        lang = guess_language(content + "\n" + reply, hint)
        messages = [{"role": "user", "content": title_prompt(content, reply, lang)}]
        try:
            async with asyncio.timeout(TITLE_TIMEOUT_S):
                title = tidy_title(await self._client.complete(messages, self._title_model))
        except (KamiyaError, TimeoutError) as exc:
            log.info("conversation %s: no title from Kamiya (%r)", conversation_id, exc)
            title = ""
        await self._store.set_title(conversation_id, title or fallback_title(content))


async def _interrupted(sink: ReplySink, failure: Failure) -> None:
    """Tell the sink, within a short grace period, that shutdown cut this turn."""
    try:
        async with asyncio.timeout(INTERRUPT_GRACE_S):
            await asyncio.shield(sink.failed(failure))
    except Exception:  # a best effort while the process stops
        log.info("could not show an interrupted reply", exc_info=True)


async def _quiet(call: Awaitable[None]) -> None:
    """Run a sink call; a frontend's display failure must not lose the turn or its id."""
    try:
        await call
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("frontend sink failed")
