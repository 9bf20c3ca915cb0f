"""``PgChatOrder``: one chat's turns one at a time, in arrival order, across processes.

Several bot processes share one PostgreSQL database (Telegram webhooks spread over them, Discord
shards), and messages of one chat may reach different processes. Each turn takes a numbered
place in ``chat_queue`` when its message arrives; it goes once it is the oldest place of its
chat whose process is alive, and it holds the chat's advisory lock (two-key form, class
``LOCK_CLASS``, key ``hashtext(chat_key)``; the migration lock's one-key space is apart).

Everything runs on one dedicated connection per process, whatever the number of chats: a
session-level advisory lock belongs to its session, so a process that dies releases its chats
with its connection, and its places stop counting at once (their ``owner`` is that session,
``pid:backend_start``, which ``pg_stat_activity`` no longer lists; they are swept). A place
that is done sends ``NOTIFY`` with its chat key, which wakes that chat's waiters in every
process; waiters also look again every ``POLL_S`` for the process that died without a word.
Session state is why this cannot run through a transaction-pooling PgBouncer.

One connection means one statement at a time, so requests are batched: whatever accumulated
while the last statement ran goes in the next one (all new places in one ``INSERT``, all
waiters' looks in one ``SELECT``, all places done in one ``DELETE``). A burst of a thousand
messages costs a handful of round trips, not three thousand (measured: ``python -m bench.load
--store postgresql``).
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
# Places numbered in the order given; positions grow with each insert, so sorted they match.
_INSERT = (
    "INSERT INTO chat_queue (chat_key, owner, created_at) "
    "SELECT key, $2, now() FROM unnest($1::text[]) WITH ORDINALITY AS t(key, n) ORDER BY n "
    "RETURNING position"
)
# For each (chat, place): is it the chat's oldest live place? Then try the chat's lock.
_TRY = (
    f"WITH alive AS (SELECT {_ALIVE} AS tokens) "  # noqa: S608
    "SELECT CASE WHEN (SELECT min(q.position) FROM chat_queue q, alive "
    "WHERE q.chat_key = a.key AND q.owner = ANY (alive.tokens)) = a.pos "
    f"THEN pg_try_advisory_lock({LOCK_CLASS}, hashtext(a.key)) ELSE false END "
    "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS a(key, pos, n) ORDER BY a.n"
)
# Places done, and their chats' places of dead processes, so none outlive the line.
_DONE = (
    "DELETE FROM chat_queue WHERE position = ANY ($1::bigint[]) "  # noqa: S608
    f"OR (chat_key = ANY ($2::text[]) AND owner <> ALL ({_ALIVE}))"
)
_SWEEP = (
    "DELETE FROM chat_queue WHERE chat_key = ANY ($1::text[]) "  # noqa: S608
    f"AND owner <> ALL ({_ALIVE})"
)
_RELEASE = (
    f"SELECT (SELECT count(pg_advisory_unlock({LOCK_CLASS}, hashtext(k))) "  # noqa: S608
    "FROM unnest($1::text[]) AS k), "
    f"(SELECT count(pg_notify('{CHANNEL}', k)) FROM unnest($2::text[]) AS k)"
)


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
        # Queued now, so places are numbered in the order ``place`` was called.
        self._position: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        order._request_insert(self)

    async def recorded(self) -> None:
        await asyncio.shield(self._position)

    async def wait(self) -> None:
        order, key = self._order, self._key
        position = await asyncio.shield(self._position)
        while True:
            woken = order._watch(key)
            try:
                # Shielded: the look goes on if this waiter is cancelled, and a lock it got is
                # noted on the place for ``done`` to release.
                if await asyncio.shield(order._request_try(self, position)):
                    return
                try:
                    async with asyncio.timeout(POLL_S):
                        await woken.wait()
                except TimeoutError:
                    order._request_sweep(key)
            finally:
                order._unwatch(key, woken)

    def done(self) -> None:
        if self._done:
            return
        self._done = True
        self._order._request_leave(self)


class PgChatOrder:
    """``ChatOrder`` on PostgreSQL; ``start`` before use, ``aclose`` at the end."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._session: _Session | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._closed = False
        # Requests waiting for the next round of statements, in arrival order.
        self._inserts: list[_PgPlace] = []
        self._tries: list[tuple[_PgPlace, int, asyncio.Future[bool]]] = []
        self._leaves: list[_PgPlace] = []
        self._sweeps: set[str] = set()
        self._pump: asyncio.Task[None] | None = None

    @property
    def owner(self) -> str | None:
        """This process' owner token (``None`` until started, or while reconnecting)."""
        return None if self._session is None else self._session.owner

    async def start(self) -> None:
        await self._connect()

    def place(self, chat_key: str) -> _PgPlace:
        return _PgPlace(self, chat_key)

    async def aclose(self) -> None:
        """Finish the places being left, then close the session (freeing its locks)."""
        self._closed = True
        pump = self._pump
        if pump is not None:
            await asyncio.wait({pump}, timeout=CLOSE_GRACE_S)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await self._disconnect()

    # Requests (never wait), served by the pump.

    def _request_insert(self, place: _PgPlace) -> None:
        self._inserts.append(place)
        self._kick()

    def _request_try(self, place: _PgPlace, position: int) -> asyncio.Future[bool]:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._tries.append((place, position, answer))
        self._kick()
        return answer

    def _request_leave(self, place: _PgPlace) -> None:
        self._leaves.append(place)
        self._kick()

    def _request_sweep(self, chat_key: str) -> None:
        self._sweeps.add(chat_key)
        self._kick()

    def _kick(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._run_pump())

    async def _run_pump(self) -> None:
        """Rounds of statements until nothing is asked: places, then leaves, looks, sweeps."""
        while self._inserts or self._leaves or self._tries or self._sweeps:
            inserts, self._inserts = self._inserts, []
            leaves, self._leaves = self._leaves, []
            tries, self._tries = self._tries, []
            sweeps, self._sweeps = self._sweeps, set()
            if inserts:
                await self._insert(inserts)
            if leaves:
                await self._leave(leaves)
            if tries:
                await self._try(tries)
            if sweeps:
                with contextlib.suppress(StorageError):  # logged by _run; the next sweep
                    session = await self._connected()
                    await self._run(session, "execute", _SWEEP, sorted(sweeps))

    async def _insert(self, places: list[_PgPlace]) -> None:
        try:
            session = await self._connected()
            rows = await self._run(
                session, "fetch", _INSERT, [p._key for p in places], session.owner
            )
        except Exception as exc:
            for place in places:
                if not place._position.done():
                    place._position.set_exception(exc)
                    place._position.exception()  # a place nobody waits on must not warn
            return
        for place, position in zip(places, sorted(row[0] for row in rows), strict=True):
            place._session = session
            place._position.set_result(position)

    async def _try(self, tries: list[tuple[_PgPlace, int, asyncio.Future[bool]]]) -> None:
        try:
            session = await self._connected()
        except Exception as exc:
            for _, _, answer in tries:
                answer.set_exception(exc)
            return
        asked = []
        for place, position, answer in tries:
            if place._session is not session:
                lost = StorageError("lost the database connection holding this chat's line")
                answer.set_exception(lost)
            else:
                asked.append((place, position, answer))
        if not asked:
            return
        try:
            rows = await self._run(
                session,
                "fetch",
                _TRY,
                [p._key for p, _, _ in asked],
                [position for _, position, _ in asked],
            )
        except Exception as exc:
            for _, _, answer in asked:
                answer.set_exception(exc)
            return
        for (place, _, answer), row in zip(asked, rows, strict=True):
            place._locked = bool(row[0])
            answer.set_result(place._locked)

    async def _leave(self, places: list[_PgPlace]) -> None:
        """Delete the places, unlock the chats they held, and tell every process."""
        session = self._session
        mine = [
            p
            for p in places
            if session is not None
            and p._session is session  # another session's places and locks went with it
            and p._position.done()
            and not p._position.cancelled()
            and p._position.exception() is None
        ]
        keys = sorted({p._key for p in places})
        try:
            if mine and session is not None:
                positions = [p._position.result() for p in mine]
                await self._run(session, "execute", _DONE, positions, keys)
                locked = [p._key for p in mine if p._locked]
                await self._run(session, "fetchval", _RELEASE, locked, keys)
        except StorageError:
            log.warning("could not leave the line of %d chats", len(keys), exc_info=True)
        finally:
            for key in keys:
                self._wake(key)

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
        if self._closed and self._session is None:
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
            log.warning("chat line: the database session failed: %r", exc)
            raise StorageError(f"lost the database connection of the chat line: {exc!r}") from exc
