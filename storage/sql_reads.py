"""Reads for ``SqlStore``: a chat's state, its conversations, their turns and bot messages.

Each function runs one query in a session the caller owns; none writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select

from storage.models import BotMessage, Chat, Conversation, Turn
from storage.protocol import ChatState, ConversationRecord, TurnRecord

if TYPE_CHECKING:
    from sqlalchemy import SQLColumnExpression
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from storage.protocol import Mode

__all__ = [
    "bytewise",
    "chat_state",
    "conversation",
    "conversation_record",
    "conversations",
    "current",
    "message_conversation",
    "turns",
]

_MODES: dict[str, Mode] = {"server": "server", "completions": "completions"}


def bytewise(column: SQLColumnExpression[str], dialect: str) -> SQLColumnExpression[str]:
    """``column`` ordered by code point, as Python sorts: PostgreSQL's locale may not be."""
    return column.collate("C") if dialect == "postgresql" else column


def conversation_record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=row.conversation_id,
        chat_key=row.chat_key,
        title=row.title,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        mode=_MODES[row.mode],
        model=row.model,
    )


async def current(session: AsyncSession, chat_key: str) -> str | None:
    return await session.scalar(select(Chat.conversation_id).where(Chat.chat_key == chat_key))


async def chat_state(conn: AsyncConnection, chat_key: str) -> ChatState:
    """On a plain connection: read at every turn, and the ORM would only add cost."""
    row = (await conn.execute(_STATE, {"key": chat_key})).first()
    if row is None:
        return ChatState()
    return ChatState(*row)


_STATE = select(Chat.conversation_id, Chat.local_id, Chat.model, Chat.system_prompt).where(
    Chat.chat_key == bindparam("key")
)


async def turns(session: AsyncSession, conversation_id: str) -> list[TurnRecord]:
    query = (
        select(Turn.user_text, Turn.assistant_text)
        .where(Turn.conversation_id == conversation_id)
        .order_by(Turn.id)
    )
    rows = await session.execute(query)
    return [TurnRecord(user=user, assistant=assistant) for user, assistant in rows]


async def message_conversation(
    session: AsyncSession, chat_key: str, message_id: str
) -> str | None:
    row = await session.get(BotMessage, (chat_key, message_id))
    return None if row is None else row.conversation_id


async def conversation(session: AsyncSession, conversation_id: str) -> ConversationRecord | None:
    row = await session.get(Conversation, conversation_id)
    return None if row is None else conversation_record(row)


async def conversations(
    session: AsyncSession, chat_key: str, *, limit: int, dialect: str
) -> list[ConversationRecord]:
    query = (
        select(Conversation)
        .where(Conversation.chat_key == chat_key)
        # Ties broken down to the id so every backend returns the same order.
        .order_by(
            Conversation.last_used_at.desc(),
            Conversation.created_at.desc(),
            bytewise(Conversation.conversation_id, dialect).desc(),
        )
        .limit(limit)
    )
    rows = await session.scalars(query)
    return [conversation_record(row) for row in rows]
