"""The gateway of the fake Discord: a websocket speaking Discord's opcodes to discord.py.

A connection gets HELLO, then the client IDENTIFYs (a new session: READY, then one
GUILD_CREATE per guild) or RESUMEs (the events it missed, replayed from its last sequence
number, then RESUMED). Every dispatch is kept with its ``s`` in the session, so events
sent while the bot is disconnected reach it on resume, as on Discord. ``disconnect`` closes
the socket with a resumable code, which is how tests check a reply in flight survives a
reconnect. Sharding is Discord's: IDENTIFY's ``shard: [id, count]`` makes a session of that
shard, which is greeted with and sent only the events of its guilds, ``(guild_id >> 22) %
count == id``; events without a guild (DMs) go to shard 0; ``shard_count`` is what
``/gateway/bot`` recommends. Frames go out through one writer task per connection, so
``dispatch`` is synchronous and keeps order. Close codes are Discord's (4004 authentication
failed, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fakes.discord_payloads import JsonObject

__all__ = ["Frame", "Gateway", "GatewayWorld", "Session"]

GUILDS = 1 << 0
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
_CLOSE_TIMEOUT_S = 1.0  # how long a server-side close waits for the client's close frame


class GatewayWorld(Protocol):
    """What the gateway needs from the world to greet a session."""

    def ready_payload(self) -> JsonObject: ...

    def guild_creates(self) -> list[JsonObject]: ...

    def member_chunk(self, guild_id: int, nonce: str | None) -> JsonObject | None: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One gateway frame, either way; ``at`` on the fake's clock."""

    direction: Literal["in", "out"]
    op: int
    t: str | None
    s: int | None
    at: float


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | _Close] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    session: Session | None = None
    closing: bool = False


@dataclass(eq=False)
class Session:
    """An identified session: its id, intents and every event dispatched in it."""

    id: str
    intents: int
    shard: list[int]
    seq: int = 0
    events: list[tuple[int, str]] = field(default_factory=list)
    connection: _Connection | None = None
    resumable: bool = True


class Gateway:
    """Sessions and sockets; counts of identifies, resumes and heartbeats for tests."""

    def __init__(
        self,
        world: GatewayWorld,
        *,
        token: str,
        heartbeat_ms: int,
        disallowed_intents: int,
        clock: Callable[[], float],
        on_change: Callable[[], None],
        shard_count: int = 1,
    ) -> None:
        self.world = world
        self.shard_count = shard_count
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.disallowed_intents = disallowed_intents
        self.url = ""  # set once the server listens; READY's resume_gateway_url
        self.sessions: dict[int, Session] = {}  # by shard id
        self.frames: list[Frame] = []
        self.identify_count = 0
        self.resume_count = 0
        self.heartbeat_count = 0
        self.connection_count = 0
        self._clock = clock
        self._on_change = on_change
        self._connections: set[_Connection] = set()

    @property
    def session(self) -> Session | None:
        """Shard 0's session: the only one of an unsharded bot, and where DMs go."""
        return self.sessions.get(0)

    def session_for(self, guild_id: int | None) -> Session | None:
        """The session of the shard that gets ``guild_id``'s events (shard 0 for None)."""
        if guild_id is None:
            return self.session
        return next((s for s in self.sessions.values() if _on_shard(guild_id, s.shard)), None)

    @property
    def connected(self) -> bool:
        """Every session is live on an open socket: dispatched events arrive at once."""
        sessions = self.sessions.values()
        return bool(sessions) and all(s.connection is not None for s in sessions)

    def dispatch(self, event: str, data: JsonObject, *, intent: int | None = None) -> int | None:
        """Send an event in the session of its guild's shard (``data["guild_id"]``, shard 0
        without one); None if the session's intents exclude it.

        Kept for replay whether or not a socket is attached now.
        """
        guild_id = _guild_of(data)
        session = self.session_for(guild_id)
        if session is None:
            raise RuntimeError(
                f"no gateway session for guild {guild_id}'s shard: the bot has not connected"
                " and identified"
            )
        return self._dispatch_in(session, event, data, intent)

    def _dispatch_in(
        self, session: Session, event: str, data: JsonObject, intent: int | None = None
    ) -> int | None:
        if intent is not None and not session.intents & intent:
            return None
        # Discord sends JSON: no NaN or infinity (discord.py's orjson refuses them).
        frame = json.dumps({"op": 0, "t": event, "s": session.seq + 1, "d": data}, allow_nan=False)
        session.seq += 1
        session.events.append((session.seq, frame))
        if session.connection is not None:
            session.connection.queue.put_nowait(frame)
        self._log("out", 0, event, session.seq)
        return session.seq

    async def disconnect(
        self, code: int = 4000, *, resumable: bool = True, reason: str = ""
    ) -> None:
        """Close the bot's socket as Discord does when it drops a connection; wait until shut.

        With ``resumable=False`` a RESUME is then refused (op 9), so the bot identifies anew.
        """
        if not resumable:
            for session in self.sessions.values():
                session.resumable = False
        for connection in list(self._connections):
            await self._close(connection, code, reason)

    def request_reconnect(self) -> None:
        """Op 7 RECONNECT: the client should close and resume, as Discord asks before restarts."""
        for session in self.sessions.values():
            if session.connection is not None:
                self._send(session.connection, {"op": 7, "d": None})

    async def close_all(self, code: int = 1001) -> None:
        await asyncio.gather(*(self._close(c, code, "") for c in list(self._connections)))

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One websocket: HELLO, then the client's opcodes until either side closes."""
        ws = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT_S, max_msg_size=0)
        await ws.prepare(request)
        connection = _Connection(ws)
        self._connections.add(connection)
        self.connection_count += 1
        writer = asyncio.create_task(self._write(connection))
        self._send(connection, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    self._queue_close(connection, 4002, "Error while decoding payload.")
                    break
                self._receive(connection, message.data)
        finally:
            if connection.closing:
                await writer  # finishing the close handshake, bounded by _CLOSE_TIMEOUT_S
            else:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            self._detach(connection)
            connection.done.set()
            self._on_change()
        return ws

    def _receive(self, connection: _Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
            op, data = int(message["op"]), message.get("d")
        except (ValueError, KeyError, TypeError):
            self._queue_close(connection, 4002, "Error while decoding payload.")
            return
        self._log("in", op, None, None)
        if op == 1:
            self.heartbeat_count += 1
            self._send(connection, {"op": 11})
        elif op == 2:
            self._identify(connection, data if isinstance(data, dict) else {})
        elif op == 6:
            self._resume(connection, data if isinstance(data, dict) else {})
        elif connection.session is None:
            self._queue_close(connection, 4003, "Not authenticated.")
        elif op == 8 and isinstance(data, dict):
            nonce = data.get("nonce")
            chunk = self.world.member_chunk(int(data["guild_id"]), nonce)
            if chunk is not None:
                self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        elif op not in (3, 4):  # presence and voice state updates are accepted, unused
            self._queue_close(connection, 4001, "Unknown opcode.")
        self._on_change()

    def _identify(self, connection: _Connection, data: JsonObject) -> None:
        if connection.session is not None:
            self._queue_close(connection, 4005, "Already authenticated.")
            return
        if data.get("token") != self.token:
            self._queue_close(connection, 4004, "Authentication failed.")
            return
        intents = int(data.get("intents") or 0)
        if intents & self.disallowed_intents:
            self._queue_close(connection, 4014, "Disallowed intent(s).")
            return
        shard = data.get("shard") or [0, 1]
        if not _valid_shard(shard):
            self._queue_close(connection, 4010, "Invalid shard.")
            return
        old = self.sessions.get(shard[0])
        if old is not None:
            old.resumable = False
        session = Session(secrets.token_hex(16), intents, list(shard))
        self.sessions[shard[0]] = session
        self._attach(connection, session)
        self.identify_count += 1
        ready = self.world.ready_payload()
        ready |= {
            "v": 10,
            "guilds": [g for g in ready["guilds"] if _on_shard(int(g["id"]), session.shard)],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "shard": session.shard,
        }
        self._dispatch_in(session, "READY", ready)
        for guild in self.world.guild_creates():
            if _on_shard(int(guild["id"]), session.shard):
                self._dispatch_in(session, "GUILD_CREATE", guild, GUILDS)

    def _resume(self, connection: _Connection, data: JsonObject) -> None:
        if data.get("token") != self.token:
            self._queue_close(connection, 4004, "Authentication failed.")
            return
        wanted = data.get("session_id")
        session = next((s for s in self.sessions.values() if s.id == wanted), None)
        if session is None or not session.resumable:
            self._send(connection, {"op": 9, "d": False})
            return
        self._attach(connection, session)
        after = data.get("seq")
        for seq, frame in session.events:
            if after is None or seq > int(after):
                connection.queue.put_nowait(frame)
        self.resume_count += 1
        self._dispatch_in(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})

    def _attach(self, connection: _Connection, session: Session) -> None:
        previous = session.connection
        if previous is not None and previous is not connection:
            previous.session = None
            self._queue_close(previous, 4000, "Session resumed elsewhere.")
        connection.session = session
        session.connection = connection

    def _detach(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None
        connection.session = None

    def _send(self, connection: _Connection, payload: JsonObject) -> None:
        connection.queue.put_nowait(json.dumps(payload))
        self._log("out", int(payload["op"]), None, None)

    def _queue_close(self, connection: _Connection, code: int, reason: str) -> None:
        connection.queue.put_nowait(_Close(code, reason))

    async def _close(self, connection: _Connection, code: int, reason: str) -> None:
        self._queue_close(connection, code, reason)
        await connection.done.wait()

    async def _write(self, connection: _Connection) -> None:
        """Send queued frames in order; a close item closes the socket (which ends the reader)."""
        ws = connection.ws
        while True:
            item = await connection.queue.get()
            if isinstance(item, _Close):
                connection.closing = True
                self._detach(connection)
                await ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await ws.send_str(item)
            except ConnectionError:
                return

    def _log(self, direction: Literal["in", "out"], op: int, t: str | None, s: int | None) -> None:
        self.frames.append(Frame(direction, op, t, s, self._clock()))


def _valid_shard(shard: object) -> bool:
    """``[id, count]`` with ``0 <= id < count``, as Discord checks (4010 otherwise)."""
    if not isinstance(shard, list) or len(shard) != 2:
        return False
    shard_id, count = shard
    return isinstance(shard_id, int) and isinstance(count, int) and 0 <= shard_id < count


def _guild_of(data: object) -> int | None:
    """An event's guild id; None for none (or one no shard could be told from: shard 0)."""
    raw = data.get("guild_id") if isinstance(data, dict) else None
    try:
        return None if raw is None else int(raw)
    except (TypeError, ValueError, OverflowError):
        return None


def _on_shard(guild_id: int, shard: list[int]) -> bool:
    """Whether a session of ``shard`` ([id, count]) gets the events of ``guild_id``."""
    shard_id, count = shard
    return (guild_id >> 22) % count == shard_id
