"""Writes for ``SqlStore``: every statement that changes rows, and the upserts they rest on.

SQLite and PostgreSQL get native upserts (``INSERT … ON CONFLICT``), so every write is one
transaction that starts with a write: concurrent callers, even in other processes, wait on row
locks (PostgreSQL) or the write lock (SQLite, within ``busy_timeout``) instead of losing an
increment or failing on a read-then-write upgrade. Writes take rows in one order (chat,
conversation, turns, usage, usage by day), so they cannot deadlock. Other dialects get a
select-then-write path: ``dialect_insert`` is ``None`` there.

Each function runs in a transaction the caller has begun, with times already in UTC.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal

from sqlalchemy import String, and_, bindparam, case, exists, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BotMessage, Chat, Conversation, Turn, Usage, UsageDay, UtcDateTime
from storage.sql_reads import conversation_record

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql import Executable

    from storage.models import Base
    from storage.protocol import ConversationRecord, Mode

    Insert = Callable[[type[Base]], postgresql.Insert | sqlite.Insert]
    # Where a write runs: a plain connection where every statement is Core (dialects with
    # upserts: the ORM's unit of work would only add cost), else a session (``_orm``).
    Db = AsyncSession | AsyncConnection

__all__ = [
    "insert_for",
    "record_reply",
    "record_turn",
    "remember_messages",
    "reset",
    "resume",
    "set_chat_column",
    "set_title",
    "upsert_statement",
]


def insert_for(dialect_name: str) -> Insert | None:
    """The ``insert`` with ``ON CONFLICT`` support for this dialect, or ``None`` if it has none."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    return None


async def record_reply(
    session: Db,
    dialect_insert: Insert | None,
    chat_key: str,
    conversation_id: str,
    *,
    user_id: str,
    billed_chars: int,
    at: datetime,
) -> bool:
    # Chat, conversation, usage, always in this order, so concurrent writes cannot deadlock;
    # the chat goes first because the others refer to it.
    chat = {"chat_key": chat_key, "conversation_id": conversation_id, "updated_at": at}
    await _upsert(session, dialect_insert, Chat, chat, set_=("conversation_id", "updated_at"))
    created = await _create_or_touch(
        session, dialect_insert, chat_key, conversation_id, mode="server", model=None, at=at
    )
    await _count(session, dialect_insert, chat_key, user_id, at, billed=billed_chars, streamed=0)
    return created


async def record_turn(
    session: Db,
    dialect_insert: Insert | None,
    chat_key: str,
    conversation_id: str,
    *,
    model: str,
    user: str,
    assistant: str,
    user_id: str,
    at: datetime,
    replace_last: bool,
) -> bool:
    chat = {"chat_key": chat_key, "local_id": conversation_id, "updated_at": at}
    await _upsert(session, dialect_insert, Chat, chat, set_=("local_id", "updated_at"))
    created = await _create_or_touch(
        session, dialect_insert, chat_key, conversation_id, mode="completions", model=model, at=at
    )
    # Safe to read, then write: the conversation row written above is locked until the
    # commit, so turns of one conversation are stored one call at a time.
    last = None
    if replace_last:
        query = select(func.max(Turn.id)).where(Turn.conversation_id == conversation_id)
        last = await session.scalar(query)
    if last is None:
        turn = {"user_text": user, "assistant_text": assistant, "created_at": at}
        await session.execute(insert(Turn).values(conversation_id=conversation_id, **turn))
    else:
        await session.execute(update(Turn).where(Turn.id == last).values(assistant_text=assistant))
    await _count(session, dialect_insert, chat_key, user_id, at, billed=0, streamed=len(assistant))
    return created


async def reset(session: AsyncSession, chat_key: str, *, at: datetime) -> None:
    # A chat without a row has no current conversation, so there is nothing to insert.
    await session.execute(
        update(Chat)
        .where(Chat.chat_key == chat_key)
        .values(conversation_id=None, local_id=None, updated_at=at)
    )


async def set_chat_column(
    session: AsyncSession,
    dialect_insert: Insert | None,
    chat_key: str,
    column: Literal["model", "system_prompt"],
    value: str | None,
    *,
    at: datetime,
) -> None:
    values = {"chat_key": chat_key, column: value, "updated_at": at}
    await _upsert(session, dialect_insert, Chat, values, set_=(column, "updated_at"))


async def resume(
    session: AsyncSession, chat_key: str, conversation_id: str, *, at: datetime
) -> ConversationRecord | None:
    of_chat = and_(
        Conversation.conversation_id == conversation_id, Conversation.chat_key == chat_key
    )
    mode = select(Conversation.mode).where(of_chat).scalar_subquery()
    model = select(Conversation.model).where(of_chat).scalar_subquery()
    server = mode == "server"
    # One UPDATE deciding from the conversation row, so the transaction starts with a write:
    # SQLite cannot upgrade a read transaction once another connection has written.
    statement = (
        update(Chat)
        .where(Chat.chat_key == chat_key, exists().where(of_chat))
        .values(
            conversation_id=case((server, conversation_id), else_=Chat.conversation_id),
            local_id=case((server, Chat.local_id), else_=conversation_id),
            model=case((server, null()), else_=model),
            updated_at=at,
        )
    )
    await session.execute(statement)
    row = await session.get(Conversation, conversation_id)
    return None if row is None or row.chat_key != chat_key else conversation_record(row)


async def remember_messages(
    session: Db,
    dialect_insert: Insert | None,
    chat_key: str,
    conversation_id: str,
    message_ids: Sequence[str],
    *,
    at: datetime,
) -> None:
    """Point each message at the conversation; ``message_ids`` must be distinct (PostgreSQL)."""
    if dialect_insert is None:
        if await _orm(session).get(Conversation, conversation_id) is None:
            return
        for message_id in message_ids:
            values = {
                "chat_key": chat_key,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "created_at": at,
            }
            await _upsert(
                session, dialect_insert, BotMessage, values, set_=("conversation_id", "created_at")
            )
        return
    rows = [
        {"m_chat": chat_key, "m_id": message_id, "m_at": at, "m_cid": conversation_id}
        for message_id in message_ids
    ]
    await session.execute(_remember_statement(dialect_insert), rows)


async def set_title(session: Db, conversation_id: str, title: str) -> None:
    await session.execute(_SET_TITLE, {"cid": conversation_id, "title_": title})


# Built once, run with parameters (see ``upsert_statement`` for why).
_SET_TITLE = (
    update(Conversation)
    .where(Conversation.conversation_id == bindparam("cid"))
    .values(title=bindparam("title_"))
)
_TOUCH = (
    update(Conversation)
    .where(Conversation.conversation_id == bindparam("cid"))
    .values(last_used_at=bindparam("at"))
)
_TOUCH_MODEL = _TOUCH.values(model=bindparam("model_"))


@functools.cache
def _create_statement(dialect_insert: Insert) -> Executable:
    # DO NOTHING + RETURNING tells exactly one caller, across processes, that it is new.
    return (
        dialect_insert(Conversation)
        .on_conflict_do_nothing(index_elements=[Conversation.conversation_id])
        .returning(Conversation.conversation_id)
    )


@functools.cache
def _remember_statement(dialect_insert: Insert) -> Executable:
    """INSERT ... SELECT: nothing is inserted for an unknown conversation, and the
    transaction starts with a write. Run once per message, as one ``executemany``."""
    source = select(
        bindparam("m_chat", type_=String()),
        bindparam("m_id", type_=String()),
        Conversation.conversation_id,
        bindparam("m_at", type_=UtcDateTime()),
    ).where(Conversation.conversation_id == bindparam("m_cid"))
    statement = dialect_insert(BotMessage).from_select(
        ["chat_key", "message_id", "conversation_id", "created_at"], source
    )
    return statement.on_conflict_do_update(
        index_elements=[BotMessage.chat_key, BotMessage.message_id],
        set_={
            "conversation_id": statement.excluded.conversation_id,
            "created_at": statement.excluded.created_at,
        },
    )


def _orm(session: Db) -> AsyncSession:
    """The session the select-then-write path needs (dialects without upserts get one)."""
    if not isinstance(session, AsyncSession):
        raise TypeError("writes without upserts need an ORM session")
    return session


async def _upsert(
    session: Db,
    dialect_insert: Insert | None,
    table: type[Base],
    values: Mapping[str, object],
    *,
    set_: Sequence[str] = (),
    add: Sequence[str] = (),
) -> None:
    """Insert ``values``, or overwrite the ``set_`` and add to the ``add`` columns of the row.

    One write statement where the dialect has ``ON CONFLICT``; increments are computed in SQL
    from the stored row, never from a value read earlier, so none is lost to a race.

    Other dialects select for update, then write: correct for one writer; two processes
    creating the same row at once may see a unique-key error and should retry.
    """
    if dialect_insert is None:
        orm = _orm(session)
        key = tuple(values[column.name] for column in table.__table__.primary_key)
        row = await orm.get(table, key, with_for_update=True)
        if row is None:
            orm.add(table(**values))
            await orm.flush()  # now, so later rows can refer to it
            return
        for name in set_:
            setattr(row, name, values[name])
        for name in add:
            setattr(row, name, getattr(row, name) + values[name])
        return
    statement = upsert_statement(dialect_insert, table, tuple(set_), tuple(add))
    await session.execute(statement, dict(values))


@functools.cache
def upsert_statement(
    dialect_insert: Insert,
    table: type[Base],
    set_: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
) -> Executable:
    """The upsert of ``_upsert``, built once per shape and executed with the row as parameters
    (which say the columns inserted).

    Building it per call (``values``, ``excluded``, the compiled-cache key) was most of a
    write's CPU: at 1,000 chats, SQLite's single writer spent its time in Python, not in SQLite.
    """
    keys = [column.name for column in table.__table__.primary_key]
    statement = dialect_insert(table)
    changes: dict[str, object] = {name: statement.excluded[name] for name in set_}
    for name in add:
        changes[name] = table.__table__.c[name] + statement.excluded[name]
    if not changes:
        return statement.on_conflict_do_nothing(index_elements=keys)
    return statement.on_conflict_do_update(index_elements=keys, set_=changes)


async def _create_or_touch(
    session: Db,
    dialect_insert: Insert | None,
    chat_key: str,
    conversation_id: str,
    *,
    mode: Mode,
    model: str | None,
    at: datetime,
) -> bool:
    """Create the conversation row or advance its last use (and model); ``True`` if new.

    An existing row keeps the chat and mode that created it.
    """
    values = {
        "conversation_id": conversation_id,
        "chat_key": chat_key,
        "title": None,
        "created_at": at,
        "last_used_at": at,
        "mode": mode,
        "model": model,
    }
    if dialect_insert is None:
        orm = _orm(session)
        created = await orm.get(Conversation, conversation_id, with_for_update=True) is None
        if created:
            orm.add(Conversation(**values))
            await orm.flush()
    else:
        inserted = await session.execute(_create_statement(dialect_insert), values)
        created = inserted.first() is not None
    if created:
        return True
    if model is None:
        await session.execute(_TOUCH, {"cid": conversation_id, "at": at})
    else:
        await session.execute(_TOUCH_MODEL, {"cid": conversation_id, "at": at, "model_": model})
    return False


async def _count(
    session: Db,
    dialect_insert: Insert | None,
    chat_key: str,
    user_id: str,
    at: datetime,
    *,
    billed: int,
    streamed: int,
) -> None:
    """One request and its characters, added to the user's total and to ``at``'s UTC day."""
    counts = {"requests": 1, "billed_chars": billed, "streamed_chars": streamed}
    add = tuple(counts)
    total = {"chat_key": chat_key, "user_id": user_id, **counts}
    await _upsert(session, dialect_insert, Usage, total, add=add)
    await _upsert(session, dialect_insert, UsageDay, {**total, "day": at.date()}, add=add)
