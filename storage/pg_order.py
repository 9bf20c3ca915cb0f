"""``PgChatOrder``: one chat's turns one at a time, in arrival order, across processes.

Several bot processes share one PostgreSQL database (Telegram webhooks spread over them, Discord
shards), and messages of one chat may reach different processes. Each turn takes a numbered
place in ``chat_queue`` when its message arrives; it goes once it is the oldest place of its
chat whose process is alive, and it holds the chat's advisory lock (two-key form, class
``LOCK_CLASS``, key ``hashtext(chat_key)``; the migration lock's one-key space is apart).

Everything runs on one dedicated connection per process, whatever the number of chats: a
session-level advisory lock belongs to its session, so a process that dies releases its chats
with its connection, and its places stop counting at once (their ``owner`` is that session,
``pid:backend_start``, which ``pg_stat_activity`` no longer lists; a waiter sweeps them). A
place that is done sends ``NOTIFY`` with its chat key, which wakes that chat's waiters in every
process; waiters also look again every ``POLL_S`` for the process that died without a word.
Session state is why this cannot run through a transaction-pooling PgBouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from storage.engine import StorageError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["ALIVE_TOKENS", "CHANNEL", "LOCK_CLASS", "POLL_S", "PgChatOrder"]

log = logging.getLogger(__name__)

CHANNEL = "kamiya_bot_chat_done"
LOCK_CLASS = 0x4B42  # "KB"
POLL_S = 1.0
CLOSE_GRACE_S = 2.0

# A session as ``owner``: a backend's pid alone is reused once it exits. The statements below
# are built from these constant fragments only; every value is a bind parameter ($n).
_SESSION_ID = (
    "pid::text || ':' || floor(extract(epoch FROM backend_start) * 1000000)::bigint::text"
)
ALIVE_TOKENS = (
    f"SELECT {_SESSION_ID} AS token FROM pg_stat_activity "  # noqa: S608
    "WHERE backend_start IS NOT NULL"
)
_ALIVE = f"ARRAY({ALIVE_TOKENS})"
_OWN = f"SELECT {_SESSION_ID} FROM pg_stat_activity WHERE pid = pg_backend_pid()"  # noqa: S608
_INSERT = (
    "INSERT INTO chat_queue (chat_key, owner, created_at) VALUES ($1, $2, now()) "
    "RETURNING position"
)
_TRY = (
    "SELECT CASE WHEN (SELECT min(position) FROM chat_queue "  # noqa: S608
    f"WHERE chat_key = $1 AND owner = ANY ({_ALIVE})) = $2 "
    f"THEN pg_try_advisory_lock({LOCK_CLASS}, hashtext($1)) ELSE false END"
)
_SWEEP = f"DELETE FROM chat_queue WHERE chat_key = $1 AND owner <> ALL ({_ALIVE})"  # noqa: S608
# A place done also sweeps its chat's places of dead processes, so none outlive the line.
_DONE = (
    "DELETE FROM chat_queue WHERE position = $1 "  # noqa: S608
    f"OR (chat_key = $2 AND owner <> ALL ({_ALIVE}))"
)
_UNLOCK = f"SELECT pg_advisory_unlock({LOCK_CLASS}, hashtext($1))"
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', $1)"


class _Session:
    """The process' connection for the line: its driver connection and owner token."""

    __slots__ = ("conn", "driver", "owner")

    def __init__(self, conn: AsyncConnection, driver: Any, owner: str) -> None:
        self.conn = conn
        self.driver = driver  # asyncpg.Connection: LISTEN and plain statements, no ORM
        self.owner = owner


class _PgPlace:
    __slots__ = ("_done", "_key", "_locked", "_order", "_position", "_session")

    def __init__(self, order: PgChatOrder, chat_key: str) -> None:
        self._order = order
        self._key = chat_key
        self._locked = False
        self._done = False
        self._session: _Session | None = None
        # Started now, so places are numbered in the order ``place`` was called.
        self._position = asyncio.ensure_future(order._insert(self))

    async def recorded(self) -> None:
        await asyncio.shield(self._position)

    async def wait(self) -> None:
        order, key = self._order, self._key
        position = await asyncio.shield(self._position)
        while True:
            woken = order._watch(key)
            try:
                # Shielded: a statement cut mid-way would cost the whole session (every chat's
                # lock); a cancelled waiter's lock, if it got it, is noted for ``done``.
                if await asyncio.shield(asyncio.ensure_future(order._try(self, position))):
                    return
                try:
                    async with asyncio.timeout(POLL_S):
                        await woken.wait()
                except TimeoutError:
                    await asyncio.shield(asyncio.ensure_future(order._sweep(self)))
            finally:
                order._unwatch(key, woken)

    def done(self) -> None:
        if self._done:
            return
        self._done = True
        self._order._finish(self)


class PgChatOrder:
    """``ChatOrder`` on PostgreSQL; ``start`` before use, ``aclose`` at the end."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._session: _Session | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the session, first come first
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def owner(self) -> str | None:
        """This process' owner token (``None`` until started, or while reconnecting)."""
        return None if self._session is None else self._session.owner

    async def start(self) -> None:
        async with self._lock:
            await self._connect()

    def place(self, chat_key: str) -> _PgPlace:
        return _PgPlace(self, chat_key)

    async def aclose(self) -> None:
        """Finish what is being finished, then close the session (freeing its locks)."""
        self._closed = True
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=CLOSE_GRACE_S)
        async with self._lock:
            await self._disconnect()

    # On the session, one statement at a time.

    async def _insert(self, place: _PgPlace) -> int:
        async with self._lock:
            session = await self._connected()
            place._session = session
            position: int = await self._run(
                session, "fetchval", _INSERT, place._key, session.owner
            )
            return position

    async def _try(self, place: _PgPlace, position: int) -> bool:
        async with self._lock:
            session = await self._connected()
            if session is not place._session:
                raise StorageError("lost the database connection holding this chat's line")
            ok: bool = await self._run(session, "fetchval", _TRY, place._key, position)
            place._locked = ok
            return ok

    async def _sweep(self, place: _PgPlace) -> None:
        async with self._lock:
            session = await self._connected()
            await self._run(session, "execute", _SWEEP, place._key)

    def _finish(self, place: _PgPlace) -> None:
        task = asyncio.ensure_future(self._leave(place))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _leave(self, place: _PgPlace) -> None:
        """Delete the place, unlock its chat if it held it, and tell every process."""
        try:
            position = await place._position
        except Exception:  # never got a place: nothing to leave
            return
        try:
            async with self._lock:
                session = self._session
                if session is None or session is not place._session:
                    return  # that session is gone, and its places and locks with it
                await self._run(session, "execute", _DONE, position, place._key)
                if place._locked:
                    await self._run(session, "fetchval", _UNLOCK, place._key)
                await self._run(session, "fetchval", _NOTIFY, place._key)
        except Exception:
            log.warning("chat %s: could not leave its line", place._key, exc_info=True)
        finally:
            self._wake(place._key)

    # Waking.

    def _watch(self, chat_key: str) -> asyncio.Event:
        event = asyncio.Event()
        self._watchers.setdefault(chat_key, set()).add(event)
        return event

    def _unwatch(self, chat_key: str, event: asyncio.Event) -> None:
        events = self._watchers.get(chat_key)
        if events is not None:
            events.discard(event)
            if not events:
                del self._watchers[chat_key]

    def _wake(self, chat_key: str) -> None:
        for event in self._watchers.get(chat_key, ()):
            event.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._wake(payload)

    # The session.

    async def _connected(self) -> _Session:
        if self._closed:
            raise StorageError("the store is closed")
        if self._session is None:
            await self._connect()
        assert self._session is not None  # noqa: S101 - _connect sets it or raises
        return self._session

    async def _connect(self) -> None:
        conn = await self._engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg.Connection
            owner = await driver.fetchval(_OWN)
            await driver.add_listener(CHANNEL, self._notified)
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        self._session = _Session(conn, driver, str(owner))
        for key in self._watchers:
            self._wake(key)  # notifications may have been missed: look again

    async def _disconnect(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with contextlib.suppress(Exception):
            await session.driver.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await session.conn.close()

    async def _run(self, session: _Session, method: str, query: str, *args: object) -> Any:
        """One statement; on any failure the session is dropped (a new one is made on next
        use), since its state (locks, LISTEN) can no longer be trusted."""
        try:
            return await getattr(session.driver, method)(query, *args)
        except Exception as exc:
            if self._session is session:
                self._session = None
                with contextlib.suppress(Exception):
                    await session.conn.invalidate()
                with contextlib.suppress(Exception):
                    await session.conn.close()
            raise StorageError(f"lost the database connection of the chat line: {exc!r}") from exc
