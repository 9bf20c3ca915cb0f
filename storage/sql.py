"""``SqlStore``: the conversation store on any SQLAlchemy async engine.

SQLite and PostgreSQL get native upserts (``INSERT … ON CONFLICT``), so every write is one
transaction that starts with a write: concurrent callers, even in other processes, wait on row
locks (PostgreSQL) or the write lock (SQLite, within ``busy_timeout``) instead of losing an
increment or failing on a read-then-write upgrade. Writes take rows in one order (chat,
conversation, turns, usage, usage by day), so they cannot deadlock. Other dialects get a
select-then-write path.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import (
    String,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.engine import StorageError, create_engine, create_schema, safe_url
from storage.models import (
    BotMessage,
    Chat,
    Conversation,
    Turn,
    Usage,
    UsageDay,
    UtcDateTime,
    to_utc,
)
from storage.protocol import (
    ChatState,
    ChatUsage,
    ConversationRecord,
    TurnRecord,
    UsageRecord,
    UsageTotals,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence
    from datetime import date, datetime
    from types import TracebackType

    from sqlalchemy import ColumnElement, SQLColumnExpression
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from storage.models import Base
    from storage.protocol import Mode

    _Insert = Callable[[type[Base]], postgresql.Insert | sqlite.Insert]

__all__ = ["SqlStore"]

P = ParamSpec("P")
T = TypeVar("T")
CLOSE_GRACE_S = 2.0
_MODES: dict[str, Mode] = {"server": "server", "completions": "completions"}


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
    async def state(self, chat_key: str) -> ChatState:
        async with self._session() as session:
            row = await session.get(Chat, chat_key)
        if row is None:
            return ChatState()
        return ChatState(row.conversation_id, row.local_id, row.model, row.system_prompt)

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
        # Chat, conversation, usage, always in this order, so concurrent writes cannot deadlock;
        # the chat goes first because the others refer to it.
        async with self._session() as session, session.begin():
            chat = {"chat_key": chat_key, "conversation_id": conversation_id, "updated_at": at}
            await self._upsert(session, Chat, chat, set_=("conversation_id", "updated_at"))
            created = await self._create_or_touch(
                session, chat_key, conversation_id, mode="server", model=None, at=at
            )
            await self._count(session, chat_key, user_id, at, billed=billed_chars, streamed=0)
        return created

    @_uncancellable
    async def record_turn(
        self,
        chat_key: str,
        conversation_id: str,
        *,
        model: str,
        user: str,
        assistant: str,
        user_id: str,
        at: datetime,
        replace_last: bool = False,
    ) -> bool:
        at = to_utc(at)
        async with self._session() as session, session.begin():
            chat = {"chat_key": chat_key, "local_id": conversation_id, "updated_at": at}
            await self._upsert(session, Chat, chat, set_=("local_id", "updated_at"))
            created = await self._create_or_touch(
                session, chat_key, conversation_id, mode="completions", model=model, at=at
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
                await session.execute(
                    update(Turn).where(Turn.id == last).values(assistant_text=assistant)
                )
            await self._count(session, chat_key, user_id, at, billed=0, streamed=len(assistant))
        return created

    @_uncancellable
    async def turns(self, conversation_id: str) -> list[TurnRecord]:
        query = (
            select(Turn.user_text, Turn.assistant_text)
            .where(Turn.conversation_id == conversation_id)
            .order_by(Turn.id)
        )
        async with self._session() as session:
            rows = await session.execute(query)
            return [TurnRecord(user=user, assistant=assistant) for user, assistant in rows]

    @_uncancellable
    async def reset(self, chat_key: str, *, at: datetime) -> None:
        # A chat without a row has no current conversation, so there is nothing to insert.
        statement = (
            update(Chat)
            .where(Chat.chat_key == chat_key)
            .values(conversation_id=None, local_id=None, updated_at=to_utc(at))
        )
        async with self._session() as session, session.begin():
            await session.execute(statement)

    @_uncancellable
    async def set_model(self, chat_key: str, model: str | None, *, at: datetime) -> None:
        values = {"chat_key": chat_key, "model": model, "updated_at": to_utc(at)}
        async with self._session() as session, session.begin():
            await self._upsert(session, Chat, values, set_=("model", "updated_at"))

    @_uncancellable
    async def set_system_prompt(self, chat_key: str, prompt: str | None, *, at: datetime) -> None:
        values = {"chat_key": chat_key, "system_prompt": prompt, "updated_at": to_utc(at)}
        async with self._session() as session, session.begin():
            await self._upsert(session, Chat, values, set_=("system_prompt", "updated_at"))

    @_uncancellable
    async def resume(
        self, chat_key: str, conversation_id: str, *, at: datetime
    ) -> ConversationRecord | None:
        at = to_utc(at)
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
        async with self._session() as session, session.begin():
            await session.execute(statement)
            row = await session.get(Conversation, conversation_id)
            return None if row is None or row.chat_key != chat_key else _conversation_record(row)

    @_uncancellable
    async def remember_messages(
        self, chat_key: str, conversation_id: str, message_ids: Sequence[str], *, at: datetime
    ) -> None:
        at = to_utc(at)
        # dict: a message twice in one upsert is an error on PostgreSQL.
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return
        async with self._session() as session, session.begin():
            if self._insert is None:
                if await session.get(Conversation, conversation_id) is None:
                    return
                for message_id in ids:
                    values = {
                        "chat_key": chat_key,
                        "message_id": message_id,
                        "conversation_id": conversation_id,
                        "created_at": at,
                    }
                    await self._upsert(
                        session, BotMessage, values, set_=("conversation_id", "created_at")
                    )
                return
            # INSERT ... SELECT: nothing is inserted for an unknown conversation, and the
            # transaction starts with a write. One statement per message: a reply has a few.
            for message_id in ids:
                source = select(
                    literal(chat_key, String()),
                    literal(message_id, String()),
                    Conversation.conversation_id,
                    literal(at, UtcDateTime()),
                ).where(Conversation.conversation_id == conversation_id)
                statement = self._insert(BotMessage).from_select(
                    ["chat_key", "message_id", "conversation_id", "created_at"], source
                )
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[BotMessage.chat_key, BotMessage.message_id],
                        set_={
                            "conversation_id": statement.excluded.conversation_id,
                            "created_at": statement.excluded.created_at,
                        },
                    )
                )

    @_uncancellable
    async def message_conversation(self, chat_key: str, message_id: str) -> str | None:
        async with self._session() as session:
            row = await session.get(BotMessage, (chat_key, message_id))
            return None if row is None else row.conversation_id

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
        _check_limit("limit", limit)
        query = (
            select(Conversation)
            .where(Conversation.chat_key == chat_key)
            # Ties broken down to the id so every backend returns the same order.
            .order_by(
                Conversation.last_used_at.desc(),
                Conversation.created_at.desc(),
                self._bytewise(Conversation.conversation_id).desc(),
            )
            .limit(limit)
        )
        async with self._session() as session:
            rows = await session.scalars(query)
            return [_conversation_record(row) for row in rows]

    @_uncancellable
    async def usage(self, chat_key: str) -> list[UsageRecord]:
        query = (
            select(Usage).where(Usage.chat_key == chat_key).order_by(self._bytewise(Usage.user_id))
        )
        async with self._session() as session:
            rows = await session.scalars(query)
            return [
                UsageRecord(
                    chat_key=row.chat_key,
                    user_id=row.user_id,
                    billed_chars=row.billed_chars,
                    requests=row.requests,
                    streamed_chars=row.streamed_chars,
                )
                for row in rows
            ]

    @_uncancellable
    async def user_usage(self, user_id: str, *, platform: str, since: date) -> UsageTotals:
        query = select(*_sums(UsageDay)).where(
            UsageDay.user_id == user_id, UsageDay.day >= since, _of_platform(UsageDay, platform)
        )
        async with self._session() as session:
            return _totals(*(await session.execute(query)).one())

    @_uncancellable
    async def stats(
        self, *, platform: str, since: date | None = None, top: int = 5
    ) -> tuple[UsageTotals, list[ChatUsage]]:
        _check_limit("top", top)
        # All time from the running totals: usage_days starts with 0002, usage is older.
        source: type[Usage | UsageDay] = Usage if since is None else UsageDay
        where = [_of_platform(source, platform)]
        if since is not None:
            where.append(UsageDay.day >= since)
        per_chat = (
            select(*_sums(source), source.chat_key)
            .where(*where)
            .group_by(source.chat_key)
            .order_by(
                (func.sum(source.billed_chars) + func.sum(source.streamed_chars)).desc(),
                func.sum(source.requests).desc(),
                self._bytewise(source.chat_key),
            )
            .limit(top)
        )
        async with self._session() as session:
            totals = _totals(*(await session.execute(select(*_sums(source)).where(*where))).one())
            if top == 0:
                return totals, []
            rows = await session.execute(per_chat)
            return totals, [ChatUsage(chat, _totals(r, b, s)) for r, b, s, chat in rows]

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

    def _bytewise(self, column: SQLColumnExpression[str]) -> SQLColumnExpression[str]:
        """``column`` ordered by code point, as Python sorts: PostgreSQL's locale may not be."""
        return column.collate("C") if self._engine.dialect.name == "postgresql" else column

    async def _upsert(
        self,
        session: AsyncSession,
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
        keys = [column.name for column in table.__table__.primary_key]
        if self._insert is None:
            key = tuple(values[name] for name in keys)
            row = await session.get(table, key, with_for_update=True)
            if row is None:
                session.add(table(**values))
                await session.flush()  # now, so later rows can refer to it
                return
            for name in set_:
                setattr(row, name, values[name])
            for name in add:
                setattr(row, name, getattr(row, name) + values[name])
            return
        statement = self._insert(table).values(**values)
        changes: dict[str, object] = {name: statement.excluded[name] for name in set_}
        for name in add:
            changes[name] = table.__table__.c[name] + statement.excluded[name]
        await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))

    async def _create_or_touch(
        self,
        session: AsyncSession,
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
        if self._insert is None:
            created = (
                await session.get(Conversation, conversation_id, with_for_update=True) is None
            )
            if created:
                session.add(Conversation(**values))
                await session.flush()
        else:
            # DO NOTHING + RETURNING tells exactly one caller, across processes, that it is new.
            inserted = await session.execute(
                self._insert(Conversation)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[Conversation.conversation_id])
                .returning(Conversation.conversation_id)
            )
            created = inserted.first() is not None
        if created:
            return True
        touched: dict[str, object] = {"last_used_at": at}
        if model is not None:
            touched["model"] = model
        await session.execute(
            update(Conversation)
            .where(Conversation.conversation_id == conversation_id)
            .values(**touched)
        )
        return False

    async def _count(
        self,
        session: AsyncSession,
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
        await self._upsert(session, Usage, total, add=add)
        await self._upsert(session, UsageDay, {**total, "day": at.date()}, add=add)


def _dialect_insert(dialect_name: str) -> _Insert | None:
    """The ``insert`` with ``ON CONFLICT`` support for this dialect, or ``None`` if it has none."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    return None


def _conversation_record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=row.conversation_id,
        chat_key=row.chat_key,
        title=row.title,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        mode=_MODES[row.mode],
        model=row.model,
    )


def _of_platform(table: type[Usage | UsageDay], platform: str) -> ColumnElement[bool]:
    """Rows of the platform's chats; ``substr``, not ``LIKE``, which SQLite folds to any case."""
    prefix = f"{platform}:"
    return func.substr(table.chat_key, 1, len(prefix)) == prefix


def _sums(
    table: type[Usage | UsageDay],
) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
    """Sums of requests, billed and streamed characters; 0, not NULL, over no rows."""
    return (
        func.coalesce(func.sum(table.requests), 0),
        func.coalesce(func.sum(table.billed_chars), 0),
        func.coalesce(func.sum(table.streamed_chars), 0),
    )


def _totals(requests: int, billed: int, streamed: int) -> UsageTotals:
    # int(): PostgreSQL sums BIGINT as NUMERIC, which asyncpg returns as Decimal.
    return UsageTotals(int(requests), int(billed), int(streamed))


def _check_limit(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


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
