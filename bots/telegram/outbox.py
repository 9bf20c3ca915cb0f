"""Short answers the bot sends outside a streamed reply: a line, an edited line, a press's answer.

Each is best effort: the user asked for something small, and a failure to show it is logged,
never raised into the handler that asked. Lines and edits count against the chat's limits like
a reply's calls, so they go through the chat's gate, and a 429 waits its time and tries again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram import ReplyParameters
from telegram.error import BadRequest, TelegramError

from bots.telegram.api import call
from bots.telegram.routing import is_private, thread_of
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Message

    from core.throttle import ChatGate

__all__ = ["NOTICE_CHARS", "answer_query", "edit", "paced", "say"]

log = logging.getLogger(__name__)

NOTICE_CHARS = 200  # a callback query's answer text holds 0-200 characters
ATTEMPTS = 3


async def paced(gate: ChatGate, make: Callable[[], Awaitable[object]]) -> None:
    """One Bot API call when the chat's gate allows it; after a 429, again when that allows."""
    for attempt in range(1, ATTEMPTS + 1):
        # The gate knows how long until the chat may be sent to again; no event to wait for.
        while (delay := gate.reserve()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(max(delay, 0.005))
        try:
            await call(make)
        except RetryLater as exc:
            gate.penalize(exc.retry_after)
            if attempt == ATTEMPTS:
                raise
        else:
            return
        finally:
            gate.record()


async def say(
    bot: Bot,
    gate: ChatGate,
    message: Message,
    line: str,
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    """Answer ``message`` in its chat (and topic); in groups as a reply to it."""
    reply = None
    if not is_private(message):
        reply = ReplyParameters(message.message_id, allow_sending_without_reply=True)
    try:
        await paced(
            gate,
            lambda: bot.send_message(
                message.chat.id,
                line,
                message_thread_id=thread_of(message),
                reply_parameters=reply,
                reply_markup=keyboard,
            ),
        )
    except (TelegramError, RetryLater) as exc:
        log.warning("telegram: could not answer chat %s: %r", message.chat.id, exc)


async def edit(
    bot: Bot,
    gate: ChatGate,
    message: Message,
    line: str,
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    """Replace one of the bot's messages (and its buttons: none unless ``keyboard``)."""
    try:
        await paced(
            gate,
            lambda: bot.edit_message_text(
                line, chat_id=message.chat.id, message_id=message.message_id, reply_markup=keyboard
            ),
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
