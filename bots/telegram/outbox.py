"""Short answers the bot sends outside a streamed reply: a line, an edited line, a press's answer.

Each is best effort: the user asked for something small, and a failure to show it is logged,
never raised into the handler that asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import ReplyParameters
from telegram.error import BadRequest, TelegramError

from bots.telegram.api import call
from bots.telegram.routing import is_private, thread_of
from core.throttle import RetryLater

if TYPE_CHECKING:
    from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Message

__all__ = ["NOTICE_CHARS", "answer_query", "edit", "say"]

log = logging.getLogger(__name__)

NOTICE_CHARS = 200  # a callback query's answer text holds 0-200 characters


async def say(
    bot: Bot, message: Message, line: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    """Answer ``message`` in its chat (and topic); in groups as a reply to it."""
    reply = None
    if not is_private(message):
        reply = ReplyParameters(message.message_id, allow_sending_without_reply=True)
    try:
        await call(
            lambda: bot.send_message(
                message.chat.id,
                line,
                message_thread_id=thread_of(message),
                reply_parameters=reply,
                reply_markup=keyboard,
            )
        )
    except (TelegramError, RetryLater) as exc:
        log.warning("telegram: could not answer chat %s: %r", message.chat.id, exc)


async def edit(
    bot: Bot, message: Message, line: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    """Replace one of the bot's messages (and its buttons: none unless ``keyboard``)."""
    try:
        await call(
            lambda: bot.edit_message_text(
                line, chat_id=message.chat.id, message_id=message.message_id, reply_markup=keyboard
            )
        )
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            log.warning("telegram: could not edit message %s: %s", message.message_id, exc)
    except (TelegramError, RetryLater) as exc:
        log.warning("telegram: could not edit message %s: %r", message.message_id, exc)


async def answer_query(query: CallbackQuery, notice: str | None = None) -> None:
    """Every press is answered (the client shows a spinner until then), with a notice or not."""
    shown = None
    if notice:
        shown = notice if len(notice) <= NOTICE_CHARS else notice[: NOTICE_CHARS - 1] + "…"
    try:
        await call(lambda: query.answer(shown))
    except (TelegramError, RetryLater) as exc:
        log.info("telegram: could not answer a button press: %r", exc)
