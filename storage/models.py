"""SQLAlchemy tables behind ``SqlStore``.

Each table answers one question: ``chats`` (where a chat's next message goes: its mode, model,
prompt and the current conversation of each mode), ``conversations`` (what a chat has talked
about, kept after a reset so it can be resumed), ``turns`` (the context of completions-mode
conversations, which the bot keeps itself), ``bot_messages`` (which conversation a bot message
belongs to, for replies to it), ``usage`` (what each user of a chat has cost in all),
``usage_days`` (the same per UTC day, for limits and stats over a period) and
``replies_in_flight`` (replies being shown, so a restart can mark those a crash cut off) and
``chat_queue`` (each chat's turns in arrival order, for processes sharing PostgreSQL).
Times go through ``UtcDateTime`` so every backend hands back aware UTC datetimes, whatever it
stores.

Columns added by a migration come last in their class, in the order the migration adds them:
that is where ``ALTER TABLE`` puts them, and the migration test compares the order too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "BotMessage",
    "Chat",
    "ChatQueue",
    "Conversation",
    "ReplyInFlight",
    "Turn",
    "Usage",
    "UsageDay",
    "UtcDateTime",
    "to_utc",
]

# Deterministic constraint and index names, so a later migration tool can refer to them.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Room for any platform's chat key or Kamiya's ids; bounded so PostgreSQL indexes stay small.
_KEY = 255


def to_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are refused.

    A naive datetime has no defined instant, and SQLite would store its wall time as if it were
    UTC while PostgreSQL would read it in the server's zone, so the two backends would disagree.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: storage needs timezone-aware times")
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always returns aware UTC.

    SQLite has no time zone type: SQLAlchemy writes the wall time and drops the offset, and reads
    back naive values. Normalising to UTC on the way in and attaching UTC on the way out makes
    SQLite and PostgreSQL (``timestamptz``) behave the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the one ``MetaData`` that ``create_schema`` creates."""

    metadata = MetaData(naming_convention=_NAMING)


class Chat(Base):
    """A chat's mode and the conversation each mode continues (``NULL`` after a reset).

    ``model`` ``NULL`` is server mode (``conversation_id`` continues); a model is completions
    mode (``local_id`` continues). Both slots are kept, so switching back resumes the other.
    """

    __tablename__ = "chats"

    chat_key: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    # No foreign key to conversations: the row is written before the conversation in the same
    # transaction, and a cycle between the two tables would complicate create and drop.
    conversation_id: Mapped[str | None] = mapped_column(String(_KEY))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0002: completions mode.
    local_id: Mapped[str | None] = mapped_column(String(_KEY))
    model: Mapped[str | None] = mapped_column(String(_KEY))
    system_prompt: Mapped[str | None] = mapped_column(Text)


class Conversation(Base):
    """One conversation of a chat; outlives resets so it can be listed and resumed.

    ``mode`` says who keeps the context: Kamiya (``server``) or ``turns`` (``completions``,
    with ``model`` the model it last used).
    """

    __tablename__ = "conversations"
    # Serves both "this chat's conversations, most recent first" and lookups by chat_key alone
    # (its prefix), so chat_key needs no index of its own.
    __table_args__ = (Index("ix_conversations_chat_key_last_used_at", "chat_key", "last_used_at"),)

    conversation_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    chat_key: Mapped[str] = mapped_column(String(_KEY), ForeignKey("chats.chat_key"))
    # Text, not String(n): titles come from the model and must never make a write fail.
    title: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0002: rows from before completions mode are server conversations.
    mode: Mapped[str] = mapped_column(String(16), server_default="server")
    model: Mapped[str | None] = mapped_column(String(_KEY))


class Usage(Base):
    """Running totals for one user in one chat: requests, billed and streamed characters."""

    __tablename__ = "usage"

    chat_key: Mapped[str] = mapped_column(
        String(_KEY), ForeignKey("chats.chat_key"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    # BigInteger: a busy user's character count can pass 2**31 over the bot's lifetime.
    billed_chars: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(Integer)
    # 0002: characters of completions-mode replies, which Kamiya does not bill per conversation.
    streamed_chars: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Turn(Base):
    """One completions-mode exchange; a conversation's turns in ``id`` order are its context."""

    __tablename__ = "turns"
    # Serves "this conversation's turns in order" and "its last turn" (a regenerate).
    __table_args__ = (Index("ix_turns_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(_KEY), ForeignKey("conversations.conversation_id")
    )
    # Text: messages and replies have no length a column could promise.
    user_text: Mapped[str] = mapped_column(Text)
    assistant_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BotMessage(Base):
    """A platform message the bot sent, and the conversation it belongs to.

    A user replying to an old message continues that message's conversation. Message ids are
    unique only within their chat, hence the pair as key.
    """

    __tablename__ = "bot_messages"

    chat_key: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(_KEY), ForeignKey("conversations.conversation_id")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UsageDay(Base):
    """One user's usage in one chat on one UTC day, for limits and stats over a period.

    No foreign key: these are counters, written next to ``usage`` in the same transaction.
    """

    __tablename__ = "usage_days"
    # Serves a user's sums across chats since a day (their limit); stats scan by day.
    __table_args__ = (Index("ix_usage_days_user_id_day", "user_id", "day"),)

    chat_key: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    billed_chars: Mapped[int] = mapped_column(BigInteger)
    streamed_chars: Mapped[int] = mapped_column(BigInteger)


class ReplyInFlight(Base):
    """A reply being shown: written before its first platform call, deleted once it settles.

    Rows still here at start were cut off by a crash; the frontend edits their messages to say
    so. No foreign key to ``chats``: a reply may start before its chat has a row.
    """

    __tablename__ = "replies_in_flight"
    # Serves "this platform's open replies, oldest first", the one query at start.
    __table_args__ = (Index("ix_replies_in_flight_platform_started_at", "platform", "started_at"),)

    reply_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    chat_key: Mapped[str] = mapped_column(String(_KEY))
    platform: Mapped[str] = mapped_column(String(32))
    # Text: the frontend's own JSON, and the ids of a reply that may span many messages.
    target: Mapped[str] = mapped_column(Text)
    message_ids: Mapped[str] = mapped_column(Text)  # JSON list of strings
    language: Mapped[str | None] = mapped_column(String(35))  # a BCP 47 tag fits in 35
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The last message's text as shown: a Telegram message is up to 4096 characters, and more
    # once formatting is counted, so Text, not a String of some length.
    shown: Mapped[str] = mapped_column(Text, server_default="")
    # 0004: the process showing it, when several share the database (``storage.pg_order``
    # owner token); ``NULL``: the only process. A restart takes over only replies whose owner
    # is gone, never those another live process is still showing.
    owner: Mapped[str | None] = mapped_column(String(64))


class ChatQueue(Base):
    """A turn's place in its chat's line, across processes (``storage.pg_order``).

    ``position`` orders arrivals; a place goes when it is the oldest of its chat whose ``owner``
    (the process' lock session) is alive; it is deleted once done, or found dead and swept.
    """

    __tablename__ = "chat_queue"
    # Serves "the oldest place of this chat", once per turn and per wake-up.
    __table_args__ = (Index("ix_chat_queue_chat_key_position", "chat_key", "position"),)

    position: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    chat_key: Mapped[str] = mapped_column(String(_KEY))
    owner: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
