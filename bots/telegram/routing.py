"""Which messages the bot answers, and which conversation each belongs to.

Private chats: every text. Groups: a mention of the bot, a reply to one of its messages, or a
command. Forum topics are conversations of their own; ``group_scope = "user"`` gives each user of
a group their own conversation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from telegram.constants import ChatType, MessageEntityType

from core import ChatKey

if TYPE_CHECKING:
    from telegram import Message, User

__all__ = [
    "chat_key",
    "command_argument",
    "is_private",
    "prompt_text",
    "replied_bot_message",
    "thread_of",
    "triggered",
]


def is_private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


def thread_of(message: Message) -> int | None:
    """The forum topic of a message; ordinary reply threads in groups are not topics."""
    return message.message_thread_id if message.is_topic_message else None


def chat_key(message: Message, *, group_scope: str, user: User | None = None) -> ChatKey:
    """The conversation ``message`` belongs to; ``user`` (default: its sender) is whose it is
    when each user of a group has their own, as for a button under one of the bot's messages."""
    thread = thread_of(message)
    scope = None
    user = user or message.from_user
    if not is_private(message) and group_scope == "user" and user is not None:
        scope = f"u{user.id}"
    return ChatKey(
        "telegram", str(message.chat.id), None if thread is None else str(thread), scope
    )


def _mentions(message: Message, bot: User) -> bool:
    username = (bot.username or "").lower()
    entities = message.entities or message.caption_entities
    parsed = (
        message.parse_entities([MessageEntityType.MENTION])
        if message.text
        else message.parse_caption_entities([MessageEntityType.MENTION])
    )
    if entities and username:
        return any(value.lower() == f"@{username}" for value in parsed.values())
    return False


def _replies_to_bot(message: Message, bot: User) -> bool:
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return False  # in a topic every message "replies" to the topic's first message
    return replied.from_user is not None and replied.from_user.id == bot.id


def replied_bot_message(message: Message, bot: User) -> int | None:
    """The id of the bot's message this one replies to, if it does."""
    replied = message.reply_to_message
    return replied.message_id if replied is not None and _replies_to_bot(message, bot) else None


def command_argument(message: Message) -> str:
    """What follows the command (``/system  be brief`` → ``be brief``), line breaks kept."""
    body = message.text or message.caption or ""
    parts = body.split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


def triggered(message: Message, bot: User) -> bool:
    """Should the bot answer this (non-command) message?"""
    return is_private(message) or _mentions(message, bot) or _replies_to_bot(message, bot)


def prompt_text(message: Message, bot: User) -> str:
    """The text to send to Kamiya: text or caption, without the bot's own @mention."""
    body = message.text or message.caption or ""
    if bot.username and not is_private(message):
        body = re.sub(rf"@{re.escape(bot.username)}\b", "", body, flags=re.IGNORECASE)
    return body.strip()
