"""SQLAlchemy tables behind ``SqlStore``.

Three tables, each answering one question: ``chats`` (which conversation a chat continues),
``conversations`` (what a chat has talked about, kept after a reset so it can be resumed) and
``usage`` (what each user of a chat has cost). Times go through ``UtcDateTime`` so every backend
hands back aware UTC datetimes, whatever it stores.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
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

__all__ = ["Base", "Chat", "Conversation", "Usage", "UtcDateTime", "to_utc"]

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
    """A chat and the conversation its next message continues (``NULL`` after a reset)."""

    __tablename__ = "chats"

    chat_key: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    # No foreign key to conversations: the row is written before the conversation in the same
    # transaction, and a cycle between the two tables would complicate create and drop.
    conversation_id: Mapped[str | None] = mapped_column(String(_KEY))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Conversation(Base):
    """One Kamiya conversation of a chat; outlives resets so it can be listed and resumed."""

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


class Usage(Base):
    """Running totals for one user in one chat: billed characters and requests."""

    __tablename__ = "usage"

    chat_key: Mapped[str] = mapped_column(
        String(_KEY), ForeignKey("chats.chat_key"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(_KEY), primary_key=True)
    # BigInteger: a busy user's character count can pass 2**31 over the bot's lifetime.
    billed_chars: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(Integer)
