"""The getUpdates connection, made safe against an update python-telegram-bot cannot read.

PTB parses a whole getUpdates answer at once; one update it cannot parse (a field missing, a
newer Bot API shape) fails the lot, and as the offset then never moves past it, the same answer
comes back on every poll: the bot would answer nobody again. Here each update is checked on its
own, and one that does not parse is passed on as a bare update (its id only): PTB confirms it
like any other and no handler sees it. So is one that parses but lacks what PTB's types promise
and it does not check (a message's chat, a button press's user): handlers may rely on those.

This request object serves getUpdates only (``ApplicationBuilder.get_updates_request``), so the
bot's other calls pay nothing for the check.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import Chat, Message, Update, User

if TYPE_CHECKING:
    from telegram import CallbackQuery
from telegram.request import HTTPXRequest

from bots.telegram.http import BotRequest

__all__ = ["ReadableUpdates", "readable"]

log = logging.getLogger(__name__)


class ReadableUpdates(BotRequest):
    """The request class for long polling; unreadable updates come out empty."""

    __slots__ = ()

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, object]:
        data: dict[str, object] = HTTPXRequest.parse_json_payload(payload)
        result = data.get("result")
        if data.get("ok") is True and isinstance(result, list):
            data["result"] = [u for u in (readable(raw) for raw in result) if u is not None]
        return data


def readable(raw: object) -> dict[str, object] | None:
    """``raw`` if PTB can read it; else its id alone; ``None`` if it has no id to confirm."""
    if not isinstance(raw, dict):
        log.warning("telegram: skipped an update that is not an object")
        return None
    update_id = raw.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        log.warning("telegram: skipped an update without an id")
        return None
    try:
        update = Update.de_json(raw, None)
        _check(update)
    except Exception as exc:  # any shape PTB cannot build objects from
        log.warning("telegram: update %s could not be read (%r); skipped", update_id, exc)
        return {"update_id": update_id}
    return raw


def _check(update: Update) -> None:
    """Raise if a field that PTB types as always there is missing."""
    query: CallbackQuery | None = update.callback_query
    messages: list[Message | None] = [
        update.message,
        update.edited_message,
        update.channel_post,
        update.edited_channel_post,
    ]
    if query is not None:
        user: User | None = query.from_user
        if user is None:
            raise ValueError("a button press without a user")
        if isinstance(query.message, Message):
            messages.append(query.message)
    for outer in messages:
        message = outer
        while message is not None:  # and the message it replies to
            chat: Chat | None = message.chat
            if chat is None:
                raise ValueError("a message without a chat")
            message = message.reply_to_message
