"""Which message of each chat carries the Regenerate button, so it goes when it stops applying.

Only a chat's latest completions reply can be regenerated. When a newer reply arrives, or
/reset, /model or /resume changes the conversation, the button on the older message is taken
away (editMessageReplyMarkup). This is kept in memory only: after a restart every old button is
stale, which a press learns from ``holds`` (core would refuse it too).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram.error import BadRequest, TelegramError

from bots.telegram.api import call
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Callable

    from telegram import Bot, InlineKeyboardMarkup

    from core import ChatKey

__all__ = ["RegenerateMarks", "drop_keyboard"]

log = logging.getLogger(__name__)

Where = tuple[int, int]  # (chat id, message id)


class RegenerateMarks:
    def __init__(self, bot: Callable[[], Bot]) -> None:
        self._bot = bot
        self._marks: dict[str, Where] = {}

    def holds(self, chat: ChatKey, chat_id: int, message_id: int) -> bool:
        """Is this message the chat's current Regenerate button?"""
        return self._marks.get(str(chat)) == (chat_id, message_id)

    def take(self, chat: ChatKey) -> Where | None:
        """Forget the chat's button (synchronously, so a second press finds it gone)."""
        return self._marks.pop(str(chat), None)

    async def move(self, chat: ChatKey, where: Where | None) -> None:
        """The chat's button is now on ``where`` (``None``: on no message); the old one goes."""
        key = str(chat)
        old = self._marks.pop(key, None)
        if where is not None:
            self._marks[key] = where
        if old is not None and old != where:
            await drop_keyboard(self._bot(), *old)

    async def remove(self, chat: ChatKey) -> None:
        await self.move(chat, None)

    async def restore(self, chat: ChatKey, where: Where, keyboard: InlineKeyboardMarkup) -> None:
        """A Regenerate that failed leaves the reply current: its button comes back, unless a
        newer reply has one by now."""
        key = str(chat)
        if key in self._marks:
            return
        self._marks[key] = where
        bot = self._bot()
        try:
            await call(lambda: bot.edit_message_reply_markup(*where, reply_markup=keyboard))
        except (TelegramError, RetryLater) as exc:
            log.warning("could not put the Regenerate button back on %s: %r", where, exc)
            if self._marks.get(key) == where:
                del self._marks[key]


async def drop_keyboard(bot: Bot, chat_id: int, message_id: int) -> None:
    """Take the inline keyboard off a message; one already bare or gone is fine."""
    try:
        await call(lambda: bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None))
    except BadRequest as exc:
        reason = exc.message.lower()
        if "not modified" not in reason and "not found" not in reason:
            log.warning("could not remove the buttons of message %s: %s", message_id, exc)
    except (TelegramError, RetryLater) as exc:
        log.warning("could not remove the buttons of message %s: %r", message_id, exc)
