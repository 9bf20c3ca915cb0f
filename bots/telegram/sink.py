"""``ReplySink`` for Telegram: typing and a "Thinking…" draft until text shows, then the pacer.

The reply's crash record (``Flight``) begins at its first sign of life (queued, waiting for a
stream slot, or started), so it exists before the first Bot API call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from telegram.constants import ChatAction
from telegram.error import TelegramError

from bots.telegram.api import call
from bots.telegram.keyboards import regenerate_keyboard
from bots.telegram.outbox import paced
from bots.telegram.texts import say
from core import failure_markdown, text
from core.throttle import LiveRenderer, RetryLater

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot

    from bots.telegram.surface import Target, TelegramSurface
    from core import Failure, Reply
    from core.flight import Flight
    from core.throttle import ChatGate

__all__ = ["TelegramReply"]

log = logging.getLogger(__name__)

TYPING_EVERY_S = 4.5  # a chat action shows for 5 s
DRAFT_EVERY_S = 20.0  # a draft lapses after 30 s


class TelegramReply:
    """Shows one reply in one chat. Created per message; core drives it."""

    def __init__(
        self,
        bot: Bot,
        target: Target,
        surface: TelegramSurface,
        gate: ChatGate,
        flight: Flight,
        *,
        language_code: str | None,
    ) -> None:
        self._bot = bot
        self._flight = flight
        self._target = target
        self._surface = surface
        self._gate = gate
        self._renderer = LiveRenderer(surface, gate)
        self._lang = language_code
        self._activity: asyncio.Task[None] | None = None

    async def queued(self, ahead: int) -> None:
        # Nothing to show (the chat is already watching the reply ahead of this one), but a
        # crash while it waits must still tell the user to send it again.
        await self._flight.begin()

    async def busy(self) -> None:
        await self._flight.begin()
        await self._notice(text("busy_streams", self._lang))

    async def started(self) -> None:
        await self._flight.begin()
        self._activity = asyncio.create_task(self._show_activity(), name="telegram-activity")

    async def progress(self, text: str) -> None:
        self._renderer.update(text)

    def pause(self) -> Awaitable[None] | None:
        return self._renderer.pause()

    async def finished(self, reply: Reply) -> None:
        self._surface.final_markup = regenerate_keyboard(reply, self._lang)
        await self._end(reply.text)
        if reply.context_expired:
            await self._notice(say("expired", self._lang))
        if reply.resumed is not None:
            await self._notice(text("continued", self._lang, title=reply.resumed))
        if not reply.saved:
            await self._notice(text("not_saved", self._lang))

    async def failed(self, failure: Failure) -> None:
        self._surface.final_markup = None
        await self._end(failure_markdown(failure, self._lang))

    async def aclose(self) -> None:
        """Shutdown: stop the activity and the renderer without sending anything more."""
        await self._stop_activity()
        await self._renderer.aclose()

    async def _end(self, final: str) -> None:
        try:
            await self._renderer.finish(final)
        finally:
            await self._stop_activity()

    async def _notice(self, line: str) -> None:
        target = self._target
        with contextlib.suppress(TelegramError, RetryLater):
            await paced(
                self._gate,
                lambda: self._bot.send_message(
                    target.chat_id, line, message_thread_id=target.thread_id
                ),
            )

    async def _show_activity(self) -> None:
        """Typing (and an empty draft) from acceptance until the first text is visible."""
        try:
            await self._keep_active()
        except Exception:  # an indicator must never break the reply it decorates
            log.warning("telegram: typing indicator failed", exc_info=True)

    async def _keep_active(self) -> None:
        """Each indicator takes a bot-wide slot only if one is spare (``ChatGate.spare``): when
        Telegram's 30 calls a second are what replies wait for, text goes and typing does not.
        (At 1,000 chats, typing every 4.5 s alone would be 220 calls a second.)"""
        loop = asyncio.get_running_loop()
        next_draft = loop.time()
        while not self._surface.visible.is_set():
            drafting = self._surface.drafting and loop.time() >= next_draft
            if drafting and await self._if_spare(self._surface.placeholder):
                next_draft = loop.time() + DRAFT_EVERY_S
            await self._if_spare(self._typing)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TYPING_EVERY_S):
                    await self._surface.visible.wait()

    async def _if_spare(self, indicate: Callable[[], Awaitable[None]]) -> bool:
        """Run ``indicate`` in a spare bot-wide slot, if there is one; whether it ran."""
        if not self._gate.spare():
            return False
        try:
            await indicate()
        finally:
            self._gate.spent()
        return True

    async def _typing(self) -> None:
        try:
            await call(
                lambda: self._bot.send_chat_action(
                    self._target.chat_id,
                    ChatAction.TYPING,
                    message_thread_id=self._target.thread_id,
                )
            )
        except (TelegramError, RetryLater) as exc:
            log.debug("chat action failed: %r", exc)

    async def _stop_activity(self) -> None:
        if self._activity is not None:
            self._activity.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._activity
            self._activity = None
