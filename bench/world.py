"""The bot's surroundings for the load benchmarks, in processes of their own.

The fake Kamiya runs in one process (``run_kamiya``); the fake Telegram (enforcing Telegram's
limits: per chat, per group, 30 a second bot-wide) and the users who write to the bot in
another (``run_world``). So the process being measured runs the bot alone, and Telegram's
clock (when a call arrived) is not held up by a thousand streams being written. ``bench.rig``
starts both and talks to them over pipes:

1. here → bot: the fake's base URL;
2. bot → world: ``"go"`` once the bot is polling;
3. world: every chat writes (``burst``: once; ``soak``: again as soon as its reply is final, for
   ``minutes``), waits until every reply is final or ``timeout_s`` passed, then sends a
   ``WorldReport``;
4. bot → here: ``"stop"``; the Kamiya process answers with its streams' (start, end) times.

Every reply is plain prose (no Markdown), derived from its prompt, so what Telegram shows of a
reply can be compared with it character for character.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bots.loop import loop_factory
from core import fake_kamiya_sse as wire
from core.fake_kamiya import FakeKamiya, Script
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from multiprocessing.connection import Connection

__all__ = [
    "CallRecord",
    "WorldOptions",
    "WorldReport",
    "reply_for",
    "run_kamiya",
    "run_world",
]

BOT_USERNAME = "kamiya_test_bot"
KAMIYA_KEY = "bench-key"
SHOWING = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})
_PROMPT = re.compile(r"chat (-?\d+) turn (\d+) asks for (\d+) characters")
_WORDS = tuple(
    " ".join(
        (
            "the quick model answers every question with care and a little patience while",
            "tokens arrive one by one over a long connection so the reply grows steadily on",
            "the screen of each user who asked something simple or something hard about",
            "weather code history food music travel science books and the small things of",
            "an ordinary day",
        )
    ).split(" ")
)
POLL_S = 0.25  # how often the users look at their chats


@dataclass(frozen=True, slots=True)
class WorldOptions:
    """What the users do. ``minutes`` None: one reply per chat (burst); else keep asking."""

    chats: int
    groups: float = 0.2
    rate: float = 25.0
    chunk_chars: int = 4
    min_chars: int = 300
    max_chars: int = 2000
    minutes: float | None = None
    timeout_s: float = 300.0
    seed: int = 7


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A Bot API call that may show text: ``shown`` its text's length (-1: none), ``prefix``
    whether that text is the start of the reply it belongs to; ``at`` on the shared monotonic
    clock (CLOCK_MONOTONIC is one clock for every process of the machine)."""

    chat_id: int
    method: str
    at: float
    status: int
    shown: int
    prefix: bool


@dataclass(slots=True)
class WorldReport:
    """What the users saw: finals, the calls, 429s, and the Kamiya streams' times."""

    began: float
    ended: float
    replies: int
    exact: int
    calls: list[CallRecord] = field(default_factory=list)
    limited: list[float] = field(default_factory=list)  # when each 429 was answered
    methods: dict[str, int] = field(default_factory=dict)  # every Bot API call, by method


def reply_for(chat_id: int, turn: int, chars: int) -> str:
    """The reply to a chat's turn: ``chars`` characters of plain prose, same every run."""
    rng = random.Random(chat_id * 1_000_003 + turn)  # noqa: S311 - text, not secrets
    parts: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        if rng.random() < 0.08:
            word += "."
        if parts:
            parts.append("\n\n" if rng.random() < 0.02 else " ")
        parts.append(word)
        size += len(word) + 1
    return "".join(parts)[:chars].rstrip(" .\n") + "."


def prompt_for(chat_id: int, turn: int, chars: int) -> str:
    return f"chat {chat_id} turn {turn} asks for {chars} characters"


class BenchKamiya(FakeKamiya):
    """The fake Kamiya answering a benchmark prompt with its ``reply_for`` text.

    A thousand streams at 25 tokens a second took the test fake a whole core (a timer, a
    task's wake-up and a JSON encoding per token), so it fell behind its own pace and took
    the CPU the bot was measured on. Here a conversation's events are encoded once, when it
    starts, and one ticker writes every stream's due pieces, at each stream's own times.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ticker = _Ticker()

    def _reply(self, script: Script | None, content: str, turn: int) -> str:
        found = _PROMPT.search(content)
        if found is None:
            return super()._reply(script, content, turn)  # a title, say
        return reply_for(int(found[1]), int(found[2]), int(found[3]))

    async def _stream(
        self,
        request: web.Request,
        model: str,
        reply: str,
        script: Script | None,
        info: str | None,
    ) -> web.StreamResponse:
        if info is None or script is None or not script.delay_s:
            return await super()._stream(request, model, reply, script, info)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        steps = _steps(model, reply, script.chunk_chars, info)
        with contextlib.suppress(ConnectionResetError):
            await self._ticker.play(response, steps, script.delay_s)
            await response.write_eof()
        return response


def _steps(model: str, reply: str, size: int, info: str) -> list[bytes]:
    """What the fake writes at each token time: the role chunk with the first piece, one
    piece a step, and the stop chunk, ``[DONE]`` and ``kamiyaInfo`` with the last."""
    chat_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def event(delta: dict[str, str], finish: str | None = None) -> bytes:
        data = wire.to_json(wire.chunk(chat_id, created, model, delta, finish))
        return f"data: {data}\n\n".encode()

    steps = [event({"content": part}) for part in wire.pieces(reply, size)] or [b""]
    steps[0] = event({"role": "assistant"}) + steps[0]
    steps[-1] += event({}, "stop") + b"data: [DONE]\n\n" + f"data: {info}\n\n".encode()
    return steps


class _Ticker:
    """Writes each stream's next step when it is due, from one task, every ``TICK_S``."""

    TICK_S = 0.005

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Playing]] = []  # a heap by due time
        self._count = 0
        self._task: asyncio.Task[None] | None = None

    async def play(self, response: web.StreamResponse, steps: list[bytes], every: float) -> None:
        loop = asyncio.get_running_loop()
        playing = _Playing(response, steps, every, loop.create_future())
        await response.write(steps[0])
        if len(steps) > 1:
            self._push(loop.time() + every, playing)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run())
            await playing.done

    def _push(self, due: float, playing: _Playing) -> None:
        self._count += 1
        heapq.heappush(self._due, (due, self._count, playing))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            await asyncio.sleep(self.TICK_S)
            now = loop.time()
            while self._due and self._due[0][0] <= now:
                due, _, playing = heapq.heappop(self._due)
                playing.index += 1
                try:
                    await playing.response.write(playing.steps[playing.index])
                except Exception as exc:  # the client went away
                    if not playing.done.done():
                        playing.done.set_exception(exc)
                    continue
                if playing.index + 1 < len(playing.steps):
                    self._push(due + playing.every, playing)
                elif not playing.done.done():
                    playing.done.set_result(None)


@dataclass(slots=True)
class _Playing:
    response: web.StreamResponse
    steps: list[bytes]
    every: float
    done: asyncio.Future[None]
    index: int = 0


@dataclass(slots=True)
class _Chat:
    chat_id: int
    group: bool
    rng: random.Random
    turn: int = 0
    expected: str = ""
    prompt_id: int = 0
    done: bool = True
    exact: int = 0
    replies: dict[int, str] = field(default_factory=dict)  # turn → reply


class _Users:
    """The people writing to the bot, one per chat, and what they see."""

    def __init__(self, tg: FakeTelegram, options: WorldOptions) -> None:
        self._tg = tg
        self._options = options
        rng = random.Random(options.seed)  # noqa: S311
        groups = set(rng.sample(range(options.chats), round(options.chats * options.groups)))
        self.chats = [
            _Chat(
                -1_000_000_000_000 - i if i in groups else 100_000 + i,
                i in groups,
                random.Random(options.seed * 7919 + i),  # noqa: S311
            )
            for i in range(options.chats)
        ]

    def ask(self, chat: _Chat) -> None:
        options = self._options
        chat.turn += 1
        chars = chat.rng.randint(options.min_chars, options.max_chars)
        chat.expected = chat.replies[chat.turn] = reply_for(chat.chat_id, chat.turn, chars)
        prompt = prompt_for(chat.chat_id, chat.turn, chars)
        if chat.group:
            user = self._tg.user(-chat.chat_id % 10**9 + 1)
            message = self._tg.group_message(chat.chat_id, user, f"@{BOT_USERNAME} {prompt}")
        else:
            message = self._tg.private_message(self._tg.user(chat.chat_id), prompt)
        chat.prompt_id = message["message_id"]
        chat.done = False

    def final(self, chat: _Chat) -> bool | None:
        """None while the reply streams; then whether the chat shows exactly the reply."""
        tg = self._tg
        first = tg.message(chat.chat_id, chat.prompt_id + 1)
        if first is None or _has_stop(first.reply_markup):
            return None
        if tg.message(chat.chat_id, chat.prompt_id + 2) is not None:
            return False  # more messages than a reply of this size needs
        return first.text == chat.expected

    async def run(self) -> WorldReport:
        options = self._options
        began = time.monotonic()
        deadline = began + (options.minutes or 0) * 60
        for chat in self.chats:
            self.ask(chat)
        replies = exact = 0
        give_up = began + options.timeout_s + (options.minutes or 0) * 60
        while any(not c.done for c in self.chats) and time.monotonic() < give_up:
            await asyncio.sleep(POLL_S)
            for chat in self.chats:
                if chat.done:
                    continue
                shown = self.final(chat)
                if shown is None:
                    continue
                chat.done = True
                replies += 1
                exact += shown
                if options.minutes is not None and time.monotonic() < deadline:
                    self.ask(chat)
        replies += sum(not c.done for c in self.chats)  # timed out: not exact
        return WorldReport(began, time.monotonic(), replies, exact)

    def calls(self, since: float) -> tuple[list[CallRecord], list[float]]:
        """The calls that show text, checked against the replies; when 429s were answered."""
        by_id = {chat.chat_id: chat for chat in self.chats}
        records: list[CallRecord] = []
        limited: list[float] = []
        for call in self._tg.calls:
            if call.at < since:
                continue
            if call.status == 429:
                limited.append(call.at)
            chat = by_id.get(call.chat_id or 0)
            if chat is None or call.method not in SHOWING:
                continue
            text = call.params.get("text")
            shown = len(text) if isinstance(text, str) else -1
            # Only the chat's latest turn is checked (burst runs have one).
            prefix = isinstance(text, str) and chat.expected.startswith(text)
            records.append(
                CallRecord(chat.chat_id, call.method, call.at, call.status, shown, prefix)
            )
        return records, limited


def _has_stop(markup: object) -> bool:
    if not isinstance(markup, dict):
        return False
    rows = markup.get("inline_keyboard") or []
    return any(str(b.get("callback_data", "")).startswith("s:") for row in rows for b in row)


async def _world(conn: Connection, options: WorldOptions) -> None:
    async with FakeTelegram(bot_username=BOT_USERNAME) as tg:
        conn.send(tg.base_url)
        if await asyncio.to_thread(conn.recv) != "go":
            return
        users = _Users(tg, options)
        report = await users.run()
        report.calls, report.limited = users.calls(report.began)
        report.methods = dict(Counter(c.method for c in tg.calls if c.at >= report.began))
        conn.send(report)
        await asyncio.to_thread(conn.recv)  # "stop": the bot has shut down


async def _kamiya(conn: Connection, options: WorldOptions) -> None:
    script = Script(chunk_chars=options.chunk_chars, delay_s=1 / options.rate)
    async with BenchKamiya(api_key=KAMIYA_KEY, default_script=script) as kamiya:
        conn.send(kamiya.base_url)
        await asyncio.to_thread(conn.recv)  # "stop"
        conn.send(
            [
                (r.started, r.finished or time.monotonic())
                for r in kamiya.requests
                if r.path.endswith("/conversation")
            ]
        )


def run_world(conn: Connection, options: WorldOptions) -> None:
    """The fake Telegram and the users: a child process' entry point."""
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    _run(_world(conn, options))


def run_kamiya(conn: Connection, options: WorldOptions) -> None:
    """The fake Kamiya: a child process' entry point."""
    _run(_kamiya(conn, options))


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On the bot's loop (uvloop): the fakes share the machine's cores with the bot, and the
    less CPU they take, the less their own delays weigh in the bot's figures."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)
