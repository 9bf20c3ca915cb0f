"""A bot under measurement in this process, its world (``bench.world``) in another.

The bot is wired as ``kamiya-bot run`` wires it (SQLite store, one pooled Kamiya client,
``conversations_from_config``, the real Telegram frontend), with one addition: its Kamiya client
notes when each text delta of a benchmark prompt arrives, and whether the chat's pace would have
allowed a platform call at that moment (``Arrivals``). Process figures come from ``/proc/self``:
this process runs the bot and nothing else of weight, so they are the bot's.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import time
from array import array
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from telegram.request import HTTPXRequest

from bench.world import KAMIYA_KEY, SHOWING, WorldOptions, WorldReport, run_kamiya, run_world
from bots import fds
from bots.telegram.app import TelegramFrontend
from core import (
    MAX_CONNECTIONS,
    KamiyaClient,
    TextDelta,
    build_http_client,
    conversations_from_config,
    load_config,
)
from core.client import CONVERSATION_PATH, Pace
from core.events import StreamReader
from core.throttle import ChatGate, LiveRenderer, Priority
from storage import MemoryStore, SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
    from contextlib import AbstractContextManager
    from multiprocessing.connection import Connection
    from pathlib import Path

    import httpx
    from telegram.request import RequestData

    from core import Config, Event
    from core.sse import SseEvent
    from storage import ConversationStore

__all__ = [
    "Arrivals",
    "Meter",
    "World",
    "peak_rss_mb",
    "prepare_process",
    "rss_mb",
    "running_bot",
    "streams_for",
    "timed_attempts",
    "timed_requests",
    "timed_slots",
    "world",
    "write_config",
]

_CHAT = re.compile(r"chat (-?\d+) turn")
TOKEN = "123456:TEST-TOKEN"  # noqa: S105 - the fake's token


@dataclass(slots=True)
class Track:
    """One chat's deltas: arrival times, whether its gate was open then, and ``visible``: the
    length of the reply so far without trailing blanks (what a call showing it contains)."""

    times: array[float] = field(default_factory=lambda: array("d"))
    open: array[int] = field(default_factory=lambda: array("b"))
    visible: array[int] = field(default_factory=lambda: array("l"))
    total: int = 0
    last: int = 0
    gate: ChatGate | None = None  # the chat's pace, looked up once (this runs per delta)
    slot_at: float = 0.0  # when the chat's latest call slot was granted (``timed_slots``)
    catching_up: bool = False  # its reader reads what came while it rested, for a call


class Arrivals:
    """Per chat, when each text delta arrived in core; ``keep=False`` only counts them."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.count = 0
        self.tracks: dict[int, Track] = {}
        self.attempts: dict[int, array[float]] = {}  # chat → when the pacer let a call go
        # (chat, Bot API method) → when each request of it left the bot (``timed_requests``)
        self.sends: dict[tuple[int, str], array[float]] = {}
        self.gate_of: Callable[[int], ChatGate] | None = None
        self.by_gate: dict[int, Track] = {}  # id(gate) → its chat's track

    def track(self, chat_id: int) -> Track | None:
        """The chat's record, made at its first delta; ``None`` when only counting."""
        if not self.keep:
            return None
        track = self.tracks.get(chat_id)
        if track is None:
            track = self.tracks[chat_id] = Track()
            track.gate = self.gate_of(chat_id) if self.gate_of is not None else None
            if track.gate is not None:
                self.by_gate[id(track.gate)] = track
        return track

    def note(self, track: Track | None, text: str) -> None:
        """A delta of ``track``'s chat arrived now (the chat looked up once per reply).

        Read once the chat's call slot was granted, before the call (it came while the reader
        rested, and the grant or the call woke it), it counts from the grant: when the pace
        allowed showing it."""
        now = time.monotonic()
        self.count += 1
        if track is None:
            return
        gate = track.gate
        ticket = gate._ticket if gate is not None else None
        if ticket is not None and ticket.granted:  # woken as its queued slot was granted
            track.times.append(min(now, ticket.granted_at))
            track.open.append(True)
        elif track.catching_up:  # read for the call about to go, on the slot granted for it
            track.times.append(min(now, track.slot_at))
            track.open.append(True)
        else:
            track.times.append(now)
            track.open.append(gate is not None and gate.open())
        if text and not text.isspace():
            track.last = track.total + len(text.rstrip())
        track.total += len(text)
        track.visible.append(track.last)


def timed_attempts(arrivals: Arrivals) -> AbstractContextManager[object]:
    """Note when each reply's pacer lets a platform call go (``LiveRenderer._attempt`` starts:
    its slot is granted, the text read), per chat: instrumentation, patched in for the run."""
    original = LiveRenderer._attempt

    async def attempt(
        self: LiveRenderer, call: Callable[[str], Awaitable[int]], text: str
    ) -> bool:
        chat = getattr(getattr(self._surface, "_target", None), "chat_id", None)
        if arrivals.keep and isinstance(chat, int):
            arrivals.attempts.setdefault(chat, array("d")).append(time.monotonic())
        return await original(self, call, text)

    return patch.object(LiveRenderer, "_attempt", attempt)


def timed_slots(arrivals: Arrivals) -> AbstractContextManager[object]:
    """Note when each chat's call slot was granted (``ChatGate.reserve`` returns 0: at once,
    or once its queued ticket was granted, then at the grant) and when its reader catches up
    for the call (``LiveRenderer._catch_up``): instrumentation, patched in for the run."""
    reserve, catch_up = ChatGate.reserve, LiveRenderer._catch_up

    def timed_reserve(self: ChatGate, priority: Priority = Priority.UPDATE) -> float:
        ticket = self._ticket
        granted = ticket.granted_at if ticket is not None and ticket.granted else None
        wait = reserve(self, priority)
        track = arrivals.by_gate.get(id(self))
        if wait == 0 and track is not None:
            track.slot_at = granted if granted is not None else time.monotonic()
        return wait

    async def timed_catch_up(self: LiveRenderer) -> None:
        track = arrivals.by_gate.get(id(self._gate))
        if track is None:
            return await catch_up(self)
        track.catching_up = True
        try:
            await catch_up(self)
        finally:
            track.catching_up = False
        return None

    stack = ExitStack()
    stack.enter_context(patch.object(ChatGate, "reserve", timed_reserve))
    stack.enter_context(patch.object(LiveRenderer, "_catch_up", timed_catch_up))
    return stack


def timed_requests(arrivals: Arrivals) -> AbstractContextManager[object]:
    """Note when each Bot API request that may show text leaves the bot (handed to its HTTP
    client), per chat and method: the platform call as the bot makes it. The fake Telegram's
    arrival time adds the fakes' own delays on a machine they share with the bot."""
    original = HTTPXRequest.do_request

    async def do_request(
        self: HTTPXRequest,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        if arrivals.keep and name in SHOWING and request_data is not None:
            chat = request_data.parameters.get("chat_id")
            if isinstance(chat, int):
                times = arrivals.sends.setdefault((chat, name), array("d"))
                times.append(time.monotonic())
        return await original(self, url, method, request_data, *args, **kwargs)

    return patch.object(HTTPXRequest, "do_request", do_request)


class TimedClient(KamiyaClient):
    """``KamiyaClient`` noting each delta of a benchmark prompt as it leaves the client.

    The note is taken where the client makes the delta (``_TimedReader``), in the same step of
    the event loop as it yields it: wrapping the client's generator in another one cost a
    layer per token, a fifth of what the instrumentation cost.
    """

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, api_key: str, arrivals: Arrivals
    ) -> None:
        super().__init__(http, base_url=base_url, api_key=api_key)
        self._arrivals = arrivals

    def conversation(
        self, content: str, conversation_id: str | None = None, *, pace: Pace | None = None
    ) -> AsyncGenerator[Event]:
        found = _CHAT.search(content)
        if found is None:
            return super().conversation(content, conversation_id, pace=pace)
        body: dict[str, object] = {"content": content}
        if conversation_id is not None:
            body["conversationId"] = conversation_id
        reader = _TimedReader(self._arrivals, int(found[1]))
        return self._stream(CONVERSATION_PATH, body, reader, conversation_id, pace)


class _TimedReader(StreamReader):
    """The conversation endpoint's reader, noting each ``TextDelta`` as it makes it."""

    def __init__(self, arrivals: Arrivals, chat_id: int) -> None:
        super().__init__(expect_info=True)
        self._arrivals = arrivals
        self._track = arrivals.track(chat_id)

    def feed(self, sse: SseEvent) -> Event | None:
        event = super().feed(sse)
        if type(event) is TextDelta:
            self._arrivals.note(self._track, event.text)
        return event


def streams_for(chats: int) -> int:
    """``[bot] max_concurrent_streams`` for a bench of ``chats`` chats."""
    return max(200, chats)


def prepare_process(chats: int) -> None:
    """What ``kamiya-bot run`` does before its event loop starts (``bots.fds``)."""
    fds.prepare(min(streams_for(chats), MAX_CONNECTIONS))


def write_config(
    folder: Path, *, kamiya_url: str, telegram_url: str, streams: int, storage: str = ""
) -> Config:
    """The shipped defaults, but for the fakes' URLs and ``max_concurrent_streams``;
    ``storage``: a ``[storage]`` table (default: SQLite in ``folder``)."""
    path = folder / "bot.toml"
    storage = storage or f'[storage]\nurl = "sqlite+aiosqlite:///{folder / "bot.db"}"\n'
    path.write_text(
        f"[bot]\nmax_concurrent_streams = {streams}\n"
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{KAMIYA_KEY}"\n'
        f"{storage}"
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram_url}/bot"\n',
        encoding="utf-8",
    )
    return load_config(path, {})


@asynccontextmanager
async def running_bot(
    config: Config, arrivals: Arrivals, *, memory: bool = False
) -> AsyncIterator[TelegramFrontend]:
    """The bot as ``kamiya-bot run`` builds it, with a ``TimedClient``; polling when yielded.

    ``memory``: a ``MemoryStore`` instead of the configured database, to tell the database's
    share of a figure from the rest.
    """
    async with AsyncExitStack() as stack:
        store: ConversationStore
        if memory:
            store = MemoryStore()
        else:
            store = await SqlStore.open(config.storage.url, schema=config.storage.pg_schema)
            stack.push_async_callback(store.aclose)
        http = await stack.enter_async_context(build_http_client(config.kamiya))
        key = config.kamiya.api_key.get_secret_value()
        client = TimedClient(http, base_url=config.kamiya.base_url, api_key=key, arrivals=arrivals)
        conversations = await stack.enter_async_context(
            conversations_from_config(client, store, config)
        )
        frontend = TelegramFrontend(config, conversations)
        stack.enter_context(timed_attempts(arrivals))
        stack.enter_context(timed_requests(arrivals))
        stack.enter_context(timed_slots(arrivals))
        await frontend.start()
        # The chat's pace as the frontend keeps it (a bench may look at private parts).
        replies = frontend._replies
        arrivals.gate_of = lambda chat_id: replies.gate(chat_id, private=chat_id > 0)
        try:
            yield frontend
        finally:
            await frontend.stop()


@dataclass(slots=True)
class World:
    """The world's processes, seen from the bot's side."""

    kamiya_url: str
    telegram_url: str
    _users: Connection
    _kamiya: Connection
    streams: list[tuple[float, float]] = field(default_factory=list)  # Kamiya (start, end)

    async def run(self) -> WorldReport:
        """Let the users write; returns once every reply is final (or the world gave up)."""
        self._users.send("go")
        report = await asyncio.to_thread(self._users.recv)
        if not isinstance(report, WorldReport):
            raise TypeError(f"the world sent {type(report).__name__}")
        return report


@asynccontextmanager
async def world(options: WorldOptions) -> AsyncIterator[World]:
    """Start the fake Kamiya, and the fake Telegram with its users, in fresh processes; on
    exit, stop them and keep Kamiya's stream times in ``World.streams``."""
    context = multiprocessing.get_context("spawn")
    started: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for target in (run_kamiya, run_world):
            here, there = context.Pipe()
            process = context.Process(target=target, args=(there, options), daemon=True)
            process.start()
            started.append((process, here))
        (_, kamiya), (_, users) = started
        kamiya_url = await asyncio.to_thread(kamiya.recv)
        telegram_url = await asyncio.to_thread(users.recv)
        handle = World(kamiya_url, telegram_url, users, kamiya)
        yield handle
        kamiya.send("stop")
        handle.streams = await asyncio.to_thread(kamiya.recv)
    finally:
        for child, conn in started:
            with contextlib.suppress(OSError):
                conn.send("stop")
            await asyncio.to_thread(child.join, 10)
            if child.is_alive():
                child.terminate()


class Meter:
    """This process' CPU, memory and file descriptors, sampled every ``every`` seconds."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.samples: list[tuple[float, float, float, int]] = []  # (wall, cpu, rss MB, fds)
        self.loop_lags: list[float] = []  # s: how late each sampling sleep woke (a busy loop)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> tuple[float, float, float, int]:
        row = (time.monotonic(), time.process_time(), rss_mb(), len(os.listdir("/proc/self/fd")))
        self.samples.append(row)
        return row

    async def __aenter__(self) -> Meter:
        self.sample()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.every
            await asyncio.sleep(self.every)
            self.loop_lags.append(self.sample()[0] - due)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds spent between two wall times, interpolated between samples."""
        return _interpolate(self.samples, end) - _interpolate(self.samples, start)


def _interpolate(samples: list[tuple[float, float, float, int]], when: float) -> float:
    before = [s for s in samples if s[0] <= when]
    after = [s for s in samples if s[0] >= when]
    if not before:
        return samples[0][1]
    if not after:
        return samples[-1][1]
    (t0, c0, _, _), (t1, c1, _, _) = before[-1], after[0]
    return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def _status_mb(field_name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name):
                return int(line.split()[1]) / 1024  # kB
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """The process' high-water mark of resident memory."""
    return _status_mb("VmHWM:")
