"""``SqlStore``: the conversation store on any SQLAlchemy async engine.

SQLite and PostgreSQL get native upserts (``INSERT … ON CONFLICT``), so ``record_reply`` is one
transaction whose every statement is a write: concurrent callers, even in other processes, wait on
row locks (PostgreSQL) or the write lock (SQLite, within ``busy_timeout``) instead of losing an
increment or failing on a read-then-write upgrade. Other dialects get a select-then-write path.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.engine import StorageError, create_engine, create_schema, safe_url
from storage.models import Chat, Conversation, Usage, to_utc
from storage.protocol import ConversationRecord, UsageRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping
    from datetime import datetime
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from storage.models import Base

    _Insert = Callable[[type[Base]], postgresql.Insert | sqlite.Insert]

__all__ = ["SqlStore"]

P = ParamSpec("P")
T = TypeVar("T")
CLOSE_GRACE_S = 2.0


def _uncancellable(
    method: Callable[Concatenate[SqlStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SqlStore, P], Coroutine[Any, Any, T]]:
    """Run the operation in its own task, so cancelling the caller cannot cut it mid-way.

    A transaction cut by a cancellation (a shutdown, a stopped reply) leaves a pooled connection
    whose rollback is cancelled too; finishing the short operation is cleaner and keeps a
    completed turn's id stored. The caller still sees its cancellation at once.
    """

    async def run(self: SqlStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    functools.update_wrapper(run, method)
    return run


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # the caller may be gone; never leave an exception unretrieved


class SqlStore:
    """``ConversationStore`` on an ``AsyncEngine``; the store owns the engine and disposes it.

    Build it with ``await SqlStore.open(url)`` (engine and schema in one step), or pass an engine
    whose schema already exists. ``async with`` closes it.
    """

    __slots__ = ("_closed", "_engine", "_insert", "_sessions", "_work")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # expire_on_commit=False: records are built from rows after the commit, without reloading.
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._insert = _dialect_insert(engine.dialect.name)
        self._closed = False
        self._work: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(cls, url: str, *, connect_args: Mapping[str, object] | None = None) -> SqlStore:
        """Connect to ``url`` and create missing tables; the first start needs no setup step."""
        try:
            engine = create_engine(url, connect_args=connect_args)
        except Exception as exc:  # bad URL, unknown dialect, driver not installed
            raise StorageError(f"cannot use {safe_url(url)}: {_reason(exc, url)}") from None
        try:
            await create_schema(engine)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, Exception):
                raise StorageError(f"cannot open {safe_url(url)}: {_reason(exc, url)}") from None
            raise
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store owns, for health checks and tests; do not dispose it yourself."""
        return self._engine

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @_uncancellable
    async def current(self, chat_key: str) -> str | None:
        async with self._session() as session:
            query = select(Chat.conversation_id).where(Chat.chat_key == chat_key)
            return await session.scalar(query)

    @_uncancellable
    async def record_reply(
        self,
        chat_key: str,
        conversation_id: str,
        *,
        user_id: str,
        billed_chars: int,
        at: datetime,
    ) -> bool:
        at = to_utc(at)
        async with self._session() as session, session.begin():
            if self._insert is None:
                return await _record_generic(
                    session,
                    chat_key=chat_key,
                    conversation_id=conversation_id,
                    user_id=user_id,
                    billed_chars=billed_chars,
                    at=at,
                )
            return await _record_upsert(
                session,
                self._insert,
                chat_key=chat_key,
                conversation_id=conversation_id,
                user_id=user_id,
                billed_chars=billed_chars,
                at=at,
            )

    @_uncancellable
    async def reset(self, chat_key: str, *, at: datetime) -> None:
        # A chat without a row has no current conversation, so there is nothing to insert.
        statement = (
            update(Chat)
            .where(Chat.chat_key == chat_key)
            .values(conversation_id=None, updated_at=to_utc(at))
        )
        async with self._session() as session, session.begin():
            await session.execute(statement)

    @_uncancellable
    async def set_title(self, conversation_id: str, title: str) -> None:
        statement = (
            update(Conversation)
            .where(Conversation.conversation_id == conversation_id)
            .values(title=title)
        )
        async with self._session() as session, session.begin():
            await session.execute(statement)

    @_uncancellable
    async def conversation(self, conversation_id: str) -> ConversationRecord | None:
        async with self._session() as session:
            row = await session.get(Conversation, conversation_id)
            return None if row is None else _conversation_record(row)

    @_uncancellable
    async def conversations(self, chat_key: str, *, limit: int = 10) -> list[ConversationRecord]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = (
            select(Conversation)
            .where(Conversation.chat_key == chat_key)
            # Ties broken down to the id so every backend returns the same order.
            .order_by(
                Conversation.last_used_at.desc(),
                Conversation.created_at.desc(),
                Conversation.conversation_id.desc(),
            )
            .limit(limit)
        )
        async with self._session() as session:
            rows = await session.scalars(query)
            return [_conversation_record(row) for row in rows]

    @_uncancellable
    async def usage(self, chat_key: str) -> list[UsageRecord]:
        query = select(Usage).where(Usage.chat_key == chat_key).order_by(Usage.user_id)
        async with self._session() as session:
            rows = await session.scalars(query)
            return [
                UsageRecord(
                    chat_key=row.chat_key,
                    user_id=row.user_id,
                    billed_chars=row.billed_chars,
                    requests=row.requests,
                )
                for row in rows
            ]

    async def ping(self) -> None:
        self._check_open()
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def aclose(self) -> None:
        """Dispose the engine; later calls raise ``RuntimeError``. Closing twice is harmless.

        Work still running (from callers that were cancelled) gets a moment to finish first.
        """
        if self._closed:
            return
        self._closed = True
        if self._work:
            await asyncio.wait(set(self._work), timeout=CLOSE_GRACE_S)
        await self._engine.dispose()

    def _check_open(self) -> None:
        # A disposed engine would silently reconnect; refuse instead, as the protocol promises.
        if self._closed:
            raise RuntimeError("SqlStore is closed")

    def _session(self) -> AsyncSession:
        self._check_open()
        return self._sessions()


def _dialect_insert(dialect_name: str) -> _Insert | None:
    """The ``insert`` with ``ON CONFLICT`` support for this dialect, or ``None`` if it has none."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    return None


async def _record_upsert(
    session: AsyncSession,
    insert: _Insert,
    *,
    chat_key: str,
    conversation_id: str,
    user_id: str,
    billed_chars: int,
    at: datetime,
) -> bool:
    """``record_reply`` as three upserts, always locking chat, conversation, usage in that order.

    The fixed order keeps concurrent calls from deadlocking; the chat row goes first because the
    other two tables refer to it.
    """
    chat = insert(Chat).values(chat_key=chat_key, conversation_id=conversation_id, updated_at=at)
    await session.execute(
        chat.on_conflict_do_update(
            index_elements=[Chat.chat_key],
            set_={"conversation_id": chat.excluded.conversation_id, "updated_at": at},
        )
    )

    # DO NOTHING + RETURNING tells exactly one caller, across processes, that the row is new.
    created_row = await session.execute(
        insert(Conversation)
        .values(
            conversation_id=conversation_id,
            chat_key=chat_key,
            title=None,
            created_at=at,
            last_used_at=at,
        )
        .on_conflict_do_nothing(index_elements=[Conversation.conversation_id])
        .returning(Conversation.conversation_id)
    )
    created = created_row.first() is not None
    if not created:
        await session.execute(
            update(Conversation)
            .where(Conversation.conversation_id == conversation_id)
            .values(last_used_at=at)
        )

    usage = insert(Usage).values(
        chat_key=chat_key, user_id=user_id, billed_chars=billed_chars, requests=1
    )
    # Increments computed in SQL from the stored row, never from a value read earlier.
    await session.execute(
        usage.on_conflict_do_update(
            index_elements=[Usage.chat_key, Usage.user_id],
            set_={
                "billed_chars": Usage.billed_chars + usage.excluded.billed_chars,
                "requests": Usage.requests + 1,
            },
        )
    )
    return created


async def _record_generic(
    session: AsyncSession,
    *,
    chat_key: str,
    conversation_id: str,
    user_id: str,
    billed_chars: int,
    at: datetime,
) -> bool:
    """``record_reply`` for dialects without upserts: select (for update where supported), write.

    Correct for one writer; two processes creating the same row at once may see a unique-key
    error and should retry.
    """
    chat = await session.get(Chat, chat_key, with_for_update=True)
    if chat is None:
        session.add(Chat(chat_key=chat_key, conversation_id=conversation_id, updated_at=at))
    else:
        chat.conversation_id = conversation_id
        chat.updated_at = at
    await session.flush()

    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    created = conversation is None
    if conversation is None:
        session.add(
            Conversation(
                conversation_id=conversation_id,
                chat_key=chat_key,
                title=None,
                created_at=at,
                last_used_at=at,
            )
        )
    else:
        conversation.last_used_at = at

    usage = await session.get(Usage, (chat_key, user_id), with_for_update=True)
    if usage is None:
        session.add(
            Usage(chat_key=chat_key, user_id=user_id, billed_chars=billed_chars, requests=1)
        )
    else:
        usage.billed_chars += billed_chars
        usage.requests += 1
    return created


def _conversation_record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=row.conversation_id,
        chat_key=row.chat_key,
        title=row.title,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


def _reason(exc: Exception, url: str) -> str:
    """One line about why, with the URL's password (if any) masked."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split()) or type(exc).__name__
    try:
        password = make_url(url).password
    except Exception:  # unparsable: nothing to mask beyond what safe_url already hides
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text if len(text) <= 200 else text[:197] + "..."
