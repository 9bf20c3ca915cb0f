"""``SqlStore``: the conversation store on any SQLAlchemy async engine.

This module owns the engine, the sessions and transactions, argument checks and cancellation;
the statements live beside it: ``storage.sql_writes`` (upserts, and why every write is one
transaction starting with a write), ``storage.sql_reads`` (chats, conversations, turns),
``storage.sql_usage`` (usage and stats) and ``storage.sql_replies`` (replies in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import sql_reads, sql_replies, sql_usage, sql_writes
from storage.engine import (
    SchemaMismatch,
    StorageError,
    create_engine,
    safe_reason,
    safe_url,
)
from storage.models import to_utc
from storage.order import LocalOrder
from storage.pg_order import PgChatOrder
from storage.sql_batch import Batcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
    from datetime import date, datetime
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    from storage.protocol import (
        ChatOrder,
        ChatState,
        ChatUsage,
        ConversationRecord,
        InflightRecord,
        TurnRecord,
        UsageRecord,
        UsageTotals,
    )

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
        self._track(task)
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

    Each operation checks its arguments, then opens a session (a transaction for writes) and
    hands it to ``sql_reads``, ``sql_writes`` or ``sql_usage``; replies in flight, on every
    reply's path, take a plain connection to ``sql_replies``.
    """

    __slots__ = (
        "_closed",
        "_engine",
        "_insert",
        "_order",
        "_reply_batches",
        "_sessions",
        "_work",
        "_writer",
    )

    def __init__(self, engine: AsyncEngine, *, order: PgChatOrder | None = None) -> None:
        self._engine = engine
        # Processes sharing PostgreSQL take turns per chat through it; one process on SQLite
        # orders its turns itself.
        self._order = order
        # expire_on_commit=False: records are built from rows after the commit, without reloading.
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._insert = sql_writes.insert_for(engine.dialect.name)
        self._closed = False
        self._work: set[asyncio.Task[Any]] = set()
        # SQLite has one writer at a time. Left to itself, each pooled connection that finds the
        # file locked sleeps and retries (busy_timeout, in steps of up to 100 ms) while holding
        # its pool slot: with hundreds of replies writing at once the pool ran dry and writers
        # gave up ("database is locked", QueuePool timeouts). Taking turns here first costs
        # nothing (the file allows no more) and leaves busy_timeout for other processes.
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._reply_batches = Batcher(self._write_replies, self._track)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_args: Mapping[str, object] | None = None,
        schema: str | None = None,
        upgrade: bool = True,
    ) -> SqlStore:
        """Connect to ``url`` and bring its schema to head; the first start needs no setup step.

        ``upgrade=False`` is how a bot starts: a new database is created at head, but an
        existing one must already be there (``SchemaMismatch`` otherwise), so that upgrading a
        deployment stays the operator's decision (``kamiya-bot migrate``), not a side effect
        of a restart. ``schema``: see ``create_engine``.
        """
        # Imported here: storage.migrate loads Alembic, which only opening a database needs.
        from storage import migrate  # noqa: PLC0415

        engine = create_engine(url, connect_args=connect_args, schema=schema)
        order = PgChatOrder(engine) if engine.dialect.name == "postgresql" else None
        try:
            if upgrade:
                await migrate.upgrade(engine, schema=schema)
            else:
                await migrate.install(engine, schema=schema)
            if order is not None:
                await order.start()
        except BaseException as exc:
            if order is not None:
                await order.aclose()
            await engine.dispose()
            if isinstance(exc, SchemaMismatch):
                raise
            if isinstance(exc, Exception):
                reason = safe_reason(exc, url)
                raise StorageError(f"cannot open {safe_url(url)}: {reason}") from None
            raise
        return cls(engine, order=order)

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
            return await sql_reads.current(session, chat_key)

    @_uncancellable
    async def state(self, chat_key: str) -> ChatState:
        async with self._connection() as conn:
            return await sql_reads.chat_state(conn, chat_key)

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
        async with self._writing(), self._transaction() as session:
            return await sql_writes.record_reply(
                session,
                self._insert,
                chat_key,
                conversation_id,
                user_id=user_id,
                billed_chars=billed_chars,
                at=at,
            )

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
        async with self._writing(), self._transaction() as session:
            return await sql_writes.record_turn(
                session,
                self._insert,
                chat_key,
                conversation_id,
                model=model,
                user=user,
                assistant=assistant,
                user_id=user_id,
                at=at,
                replace_last=replace_last,
            )

    @_uncancellable
    async def turns(self, conversation_id: str) -> list[TurnRecord]:
        async with self._session() as session:
            return await sql_reads.turns(session, conversation_id)

    @_uncancellable
    async def reset(self, chat_key: str, *, at: datetime) -> None:
        at = to_utc(at)
        async with self._writing(), self._session() as session, session.begin():
            await sql_writes.reset(session, chat_key, at=at)

    @_uncancellable
    async def set_model(self, chat_key: str, model: str | None, *, at: datetime) -> None:
        at = to_utc(at)
        async with self._writing(), self._session() as session, session.begin():
            await sql_writes.set_chat_column(
                session, self._insert, chat_key, "model", model, at=at
            )

    @_uncancellable
    async def set_system_prompt(self, chat_key: str, prompt: str | None, *, at: datetime) -> None:
        at = to_utc(at)
        async with self._writing(), self._session() as session, session.begin():
            await sql_writes.set_chat_column(
                session, self._insert, chat_key, "system_prompt", prompt, at=at
            )

    @_uncancellable
    async def resume(
        self, chat_key: str, conversation_id: str, *, at: datetime
    ) -> ConversationRecord | None:
        at = to_utc(at)
        async with self._writing(), self._session() as session, session.begin():
            return await sql_writes.resume(session, chat_key, conversation_id, at=at)

    @_uncancellable
    async def remember_messages(
        self, chat_key: str, conversation_id: str, message_ids: Sequence[str], *, at: datetime
    ) -> None:
        at = to_utc(at)
        # dict: a message twice in one upsert is an error on PostgreSQL.
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return
        async with self._writing(), self._transaction() as session:
            await sql_writes.remember_messages(
                session, self._insert, chat_key, conversation_id, ids, at=at
            )

    @_uncancellable
    async def message_conversation(self, chat_key: str, message_id: str) -> str | None:
        async with self._session() as session:
            return await sql_reads.message_conversation(session, chat_key, message_id)

    @_uncancellable
    async def set_title(self, conversation_id: str, title: str) -> None:
        async with self._writing(), self._transaction() as session:
            await sql_writes.set_title(session, conversation_id, title)

    @_uncancellable
    async def conversation(self, conversation_id: str) -> ConversationRecord | None:
        async with self._session() as session:
            return await sql_reads.conversation(session, conversation_id)

    @_uncancellable
    async def conversations(self, chat_key: str, *, limit: int = 10) -> list[ConversationRecord]:
        _check_limit("limit", limit)
        async with self._session() as session:
            return await sql_reads.conversations(
                session, chat_key, limit=limit, dialect=self._dialect
            )

    @_uncancellable
    async def usage(self, chat_key: str) -> list[UsageRecord]:
        async with self._session() as session:
            return await sql_usage.usage(session, chat_key, dialect=self._dialect)

    @_uncancellable
    async def user_usage(self, user_id: str, *, platform: str, since: date) -> UsageTotals:
        async with self._session() as session:
            return await sql_usage.user_usage(session, user_id, platform=platform, since=since)

    @_uncancellable
    async def stats(
        self, *, platform: str, since: date | None = None, top: int = 5
    ) -> tuple[UsageTotals, list[ChatUsage]]:
        _check_limit("top", top)
        async with self._session() as session:
            return await sql_usage.stats(
                session, platform=platform, since=since, top=top, dialect=self._dialect
            )

    @_uncancellable
    async def begin_reply(
        self,
        reply_id: str,
        chat_key: str,
        *,
        platform: str,
        target: str,
        language: str | None,
        at: datetime,
    ) -> None:
        row = sql_replies.reply_row(
            reply_id,
            chat_key,
            platform=platform,
            target=target,
            language=language,
            at=to_utc(at),
            owner=None if self._order is None else self._order.owner,
        )
        await self._reply_batches.submit(("begin", reply_id, row))

    @_uncancellable
    async def note_reply_messages(
        self, reply_id: str, message_ids: Sequence[str], shown: str = ""
    ) -> None:
        encoded = sql_replies.encode_ids(message_ids)
        await self._reply_batches.submit(("note", reply_id, {"ids": encoded, "shown": shown}))

    @_uncancellable
    async def end_reply(self, reply_id: str) -> None:
        await self._reply_batches.submit(("end", reply_id, {}))

    async def _write_replies(self, ops: list[sql_replies.ReplyOp]) -> None:
        async with self._writing(), self._connection() as conn, conn.begin():
            await sql_replies.apply(conn, self._insert, ops)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        task.add_done_callback(_retrieve)

    @_uncancellable
    async def open_replies(self, platform: str) -> list[InflightRecord]:
        async with self._connection() as conn:
            owner = None if self._order is None else self._order.owner
            return await sql_replies.open_replies(
                conn, platform, dialect=self._dialect, owner=owner
            )

    def chat_order(self) -> ChatOrder:
        return self._order if self._order is not None else LocalOrder()

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
        if self._order is not None:
            await self._order.aclose()
        await self._engine.dispose()

    @property
    def _dialect(self) -> str:
        return self._engine.dialect.name

    def _check_open(self) -> None:
        # A disposed engine would silently reconnect; refuse instead, as the protocol promises.
        if self._closed:
            raise RuntimeError("SqlStore is closed")

    def _session(self) -> AsyncSession:
        self._check_open()
        return self._sessions()

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        """This process' turn to write (SQLite), or nothing to wait for (PostgreSQL)."""
        return self._writer if self._writer is not None else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession | AsyncConnection]:
        """A write transaction on a plain connection where every write is a Core statement
        (the dialects with upserts; a session's unit of work and ORM execution path were most
        of a reply's database CPU), else on a session."""
        if self._insert is None:
            async with self._session() as session, session.begin():
                yield session
        else:
            async with self._connection() as conn, conn.begin():
                yield conn

    def _connection(self) -> AsyncConnection:
        """A plain connection, for statements that need no ORM (see ``storage.sql_replies``)."""
        self._check_open()
        return self._engine.connect()


def _check_limit(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
