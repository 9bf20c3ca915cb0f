"""A fake Kamiya relay: a real aiohttp server on loopback, scriptable with faults.

Every test talks to it over real HTTP, so the client, its SSE decoding and its error mapping are
exercised byte for byte; ``kamiya-bot chat --offline`` runs it as a demo for users without a key,
which is why it lives in the package and imports nothing test-only.

Without a script it answers like Kamiya: the conversation endpoint keeps history per id and
answers 404 for an id it does not know (or no longer knows: ``forget``); completions check the
model against ``allowed_models`` and allow blocking calls only for gpt-3.5-turbo. A ``Script``
queued with ``enqueue`` shapes the next answer: its text, status, speed, and the faults
``KAMIYA_PROTOCOL.md`` says a client must survive. ``requests``, ``overlaps`` and
``max_in_flight`` record what clients did, for tests to assert on.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from core import fake_kamiya_sse as wire

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from types import TracebackType

__all__ = ["COMPLETIONS_PATH", "CONVERSATION_PATH", "FakeKamiya", "RecordedRequest", "Script"]

CONVERSATION_PATH = "/api/openai/chatgpt/conversation"
COMPLETIONS_PATH = "/api/openai/chat/completions"
DEFAULT_MODELS = frozenset({"openai:gpt-3.5-turbo", "gpt-3.5-turbo", "openai:gpt-4"})
Endpoint = Literal["conversation", "completions"]


@dataclass(frozen=True, slots=True)
class Script:
    """How the fake answers one request; the defaults give a normal answer.

    ``status`` answers that status with ``body`` (a JSON value, or a ``str`` sent as is; default
    a Kamiya-style error) and ``headers`` instead of a stream. ``drop_after`` lets that many
    deltas through, then cuts the TCP connection; ``no_done`` ends cleanly after the deltas;
    ``no_kamiya_info`` stops after ``[DONE]``. ``conversation_id`` and ``full_content`` make
    ``kamiyaInfo`` disagree with the request and the deltas. ``split_bytes``, ``line_ending``,
    ``malformed`` and ``comments`` bend the SSE framing. ``gate`` holds the answer until set,
    so a test decides when a request in flight ends.
    """

    reply: str | None = None
    chunk_chars: int = 4
    delay_s: float = 0.0
    status: int | None = None
    body: object | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    no_done: bool = False
    no_kamiya_info: bool = False
    conversation_id: str | None = None
    full_content: str | None = None
    split_bytes: int | None = None
    line_ending: str = "\n"
    malformed: bool = False
    gate: asyncio.Event | None = None
    comments: bool = False

    def __post_init__(self) -> None:
        if self.line_ending not in ("\n", "\r\n", "\r"):
            raise ValueError(f"line_ending must be an SSE line ending, not {self.line_ending!r}")
        if self.chunk_chars < 1 or (self.split_bytes is not None and self.split_bytes < 1):
            raise ValueError("chunk_chars and split_bytes must be at least 1")


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake saw it; times are ``time.monotonic()``."""

    path: str
    json: dict[str, Any]  # the parsed body ({} if it was not a JSON object): tests index it
    conversation_id: str | None
    authorized: bool
    started: float
    finished: float | None = None
    response_conversation_id: str | None = None
    request_id: str | None = None  # the X-Request-Id header


class FakeKamiya:
    """The fake server; an async context manager that serves on ``base_url`` while open.

    ``api_key=None`` accepts any key. ``allowed_models=None`` permits every model.
    ``accept_unknown_ids`` adopts an unknown conversation id instead of answering 404 (the
    offline demo keeps ids across runs, while the fake forgets them). ``demo`` streams a
    friendly text word by word, ``word_delay_s`` apart. ``default_script`` answers the
    requests no queued script is left for (benchmarks: every answer at a token rate).
    """

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        allowed_models: Collection[str] | None = DEFAULT_MODELS,
        accept_unknown_ids: bool = False,
        demo: bool = False,
        word_delay_s: float = 0.03,
        default_script: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.allowed_models = None if allowed_models is None else frozenset(allowed_models)
        self.accept_unknown_ids = accept_unknown_ids
        self.demo = demo
        self.word_delay_s = word_delay_s
        self.default_script = default_script
        self.requests: list[RecordedRequest] = []
        self.overlaps: list[str] = []
        self.max_in_flight = 0
        self.conversations: dict[str, list[tuple[str, str]]] = {}
        self._host, self._port = host, port
        self._queues: dict[str, deque[Script]] = {"conversation": deque(), "completions": deque()}
        self._active: dict[str, int] = {}  # conversation id → requests in flight
        self._in_flight = 0
        self._changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeKamiya is not started")
        return self._base_url

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(CONVERSATION_PATH, self._handle)
        app.router.add_post(COMPLETIONS_PATH, self._handle)
        # Handlers held at a gate are cancelled by stop(); the short timeout is a backstop.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base_url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        """Cancel requests in flight (a gate may never open), then close the server."""
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            runner, self._runner, self._base_url = self._runner, None, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeKamiya:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def enqueue(self, *scripts: Script, endpoint: Endpoint = "conversation") -> None:
        """Queue scripts for the next requests to ``endpoint`` that pass auth, one each."""
        if endpoint not in self._queues:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        self._queues[endpoint].extend(scripts)

    def forget(self, conversation_id: str) -> None:
        """Drop a conversation, as Kamiya does after 48 hours."""
        self.conversations.pop(conversation_id, None)

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once ``n`` requests have started.

        The timeout is built in so a request that never comes fails its test in seconds,
        not at the suite's timeout; it raises ``TimeoutError``.
        """
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= n)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Bookkeeping around every request: the log, in-flight counts, overlaps."""
        body = await _read_json(request)
        endpoint: Endpoint = "conversation" if request.path == CONVERSATION_PATH else "completions"
        sent_id = body.get("conversationId") if body and endpoint == "conversation" else None
        record = RecordedRequest(
            path=request.path,
            json=body if body is not None else {},
            conversation_id=sent_id if isinstance(sent_id, str) else None,
            authorized=self.api_key is None
            or request.headers.get("Authorization") == f"Bearer {self.api_key}",
            started=time.monotonic(),
            request_id=request.headers.get("X-Request-Id"),
        )
        cid = record.conversation_id
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        async with self._changed:
            self.requests.append(record)
            if cid is not None:
                if self._active.get(cid):
                    self.overlaps.append(cid)
                self._active[cid] = self._active.get(cid, 0) + 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._changed.notify_all()
        try:
            return await self._answer(request, endpoint, body, record)
        finally:
            record.finished = time.monotonic()
            self._in_flight -= 1
            if cid is not None and (left := self._active.pop(cid) - 1):
                self._active[cid] = left
            if task is not None:
                self._handlers.discard(task)

    async def _answer(
        self,
        request: web.Request,
        endpoint: Endpoint,
        body: dict[str, Any] | None,
        record: RecordedRequest,
    ) -> web.StreamResponse:
        if not record.authorized:
            return _error(401, "invalid api key")
        if body is None:
            return _error(400, "malformed JSON body")
        queue = self._queues[endpoint]
        script = queue.popleft() if queue else self.default_script
        if script is not None and script.gate is not None:
            await script.gate.wait()
        if script is not None and script.status is not None:
            return _scripted(script.status, script.body, script.headers)
        if endpoint == "conversation":
            return await self._conversation(request, body, record, script)
        return await self._completion(request, body, script)

    async def _conversation(
        self,
        request: web.Request,
        body: dict[str, Any],
        record: RecordedRequest,
        script: Script | None,
    ) -> web.StreamResponse:
        content = body.get("content")
        if not isinstance(content, str):
            return _error(400, "content must be a string")
        cid = record.conversation_id
        if cid is None:
            cid = str(uuid.uuid4())
        elif cid not in self.conversations and not self.accept_unknown_ids:
            return _error(404, "conversation not found")
        turns = self.conversations.setdefault(cid, [])
        reply = self._reply(script, content, len(turns) + 1)
        full = reply if script is None or script.full_content is None else script.full_content
        if script is not None and script.conversation_id not in (None, cid):
            # The server moved the chat to a fresh context under another id.
            cid, turns = script.conversation_id, []
            self.conversations[cid] = turns
        turns.append((content, full))  # stored as the answer starts, even if it is then cut
        record.response_conversation_id = cid
        return await self._stream(
            request, "gpt-3.5-turbo", reply, script, wire.to_json(wire.kamiya_info(cid, full))
        )

    async def _completion(
        self, request: web.Request, body: dict[str, Any], script: Script | None
    ) -> web.StreamResponse:
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list):
            return _error(400, "model and messages are required")
        if self.allowed_models is not None and model not in self.allowed_models:
            return _error(403, f"no permission for model {model}")
        streaming = body.get("stream") is True
        if not streaming and not wire.can_block(model):
            return _error(400, f"model {model} is served only with stream: true")
        users = [m.get("content") for m in messages if _is_user(m)]
        last = users[-1] if users and isinstance(users[-1], str) else ""
        if script is None or script.reply is None:
            reply = self._reply(script, last, max(len(users), 1))
            if last.startswith("Generate a title"):
                reply = wire.title_for(last)
        else:
            reply = script.reply
        if streaming:
            return await self._stream(request, model, reply, script, info=None)
        if script is not None and script.drop_after is not None:
            _cut(request)
        return web.json_response(
            wire.completion(_chat_id(), int(time.time()), model, reply, last),
            dumps=wire.to_json,
        )

    def _reply(self, script: Script | None, content: str, turn: int) -> str:
        if script is not None and script.reply is not None:
            return script.reply
        return (wire.demo_reply if self.demo else wire.echo_reply)(content, turn)

    async def _stream(
        self,
        request: web.Request,
        model: str,
        reply: str,
        script: Script | None,
        info: str | None,
    ) -> web.StreamResponse:
        """The SSE answer: role chunk, deltas, stop chunk, ``[DONE]``, ``kamiyaInfo`` if any."""
        if script is None and self.demo:
            parts, delay, script = wire.words(reply), self.word_delay_s, Script()
        else:
            script = script or Script()
            parts, delay = wire.pieces(reply, script.chunk_chars), script.delay_s
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        response = web.StreamResponse(headers={**headers, **script.headers})
        out = wire.SseWire(
            response,
            line_ending=script.line_ending,
            split_bytes=script.split_bytes,
            comments=script.comments,
        )
        chat_id, created = _chat_id(), int(time.time())

        def payload(delta: dict[str, str], finish: str | None = None) -> str:
            data = wire.chunk(chat_id, created, model, delta, finish)
            return wire.to_json(data, multiline=script.comments)

        try:
            await response.prepare(request)
            await out.event(payload({"role": "assistant"}))
            for index, part in enumerate(parts):
                if index == script.drop_after:
                    break
                if script.malformed and index == max(len(parts) // 2, 1):
                    await out.event("{not json")
                if index and delay:
                    await out.flush()
                    await asyncio.sleep(delay)
                await out.event(payload({"content": part}))
            if script.malformed and len(parts) < 2:
                await out.event("{not json")
            if script.drop_after is not None:
                await out.flush()
                _cut(request)
                return response
            if not script.no_done:
                await out.event(payload({}, "stop"))
                await out.event("[DONE]")
                if info is not None and not script.no_kamiya_info:
                    await out.event(info)
            await out.flush()
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away (a test's timeout, say); nobody is left to answer
        return response


async def _read_json(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _is_user(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"


def _chat_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _cut(request: web.Request) -> None:
    """Close the TCP connection mid-answer: no chunked terminator, so the client sees a drop."""
    if request.transport is not None:
        request.transport.close()


def _error(status: int, message: str) -> web.Response:
    return web.json_response(wire.error_body(status, message), status=status)


def _scripted(status: int, body: object | None, headers: Mapping[str, str]) -> web.Response:
    if body is None:
        try:
            message = HTTPStatus(status).phrase.lower()
        except ValueError:
            message = "scripted error"
        body = wire.error_body(status, message)
    if isinstance(body, str):
        data, kind = body.encode(), "text/plain; charset=utf-8"
    else:
        data, kind = wire.to_json(body).encode(), "application/json"
    return web.Response(body=data, status=status, headers={"Content-Type": kind, **headers})
