"""KamiyaClient: the two Kamiya endpoints over one shared ``httpx.AsyncClient``, as typed events.

Every failure leaves here as a ``core.errors.KamiyaError`` whose text was scrubbed of the key; the
key travels only in the ``Authorization`` header of each request, never in the URL, so httpx's
own exceptions and logs cannot carry it either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from core.errors import (
    BlockingNotSupported,
    ConversationNotFound,
    IncompleteStream,
    KamiyaError,
    MalformedEvent,
    Unreachable,
    UpstreamFailure,
)
from core.events import Event, StreamReader, TextDelta, error_from_body
from core.observe import current_trace
from core.sse import SseStream
from core.stall import Stall, watch

if TYPE_CHECKING:
    from core.config import KamiyaSettings

__all__ = [
    "MAX_CONNECTIONS",
    "AcyclicClient",
    "KamiyaClient",
    "Message",
    "Pace",
    "build_http_client",
    "can_block",
    "http_client",
]

CONVERSATION_PATH = "/api/openai/chatgpt/conversation"
COMPLETIONS_PATH = "/api/openai/chat/completions"
_MAX_ERROR_BODY = 64 * 1024

#: One chat message as the Chat Completions API takes it: {"role": ..., "content": ...}.
Message = Mapping[str, str]
#: Asked after each network read of a stream: ``None`` to read on, or an awaitable to rest on
#: first (``ReplySink.pause``).
Pace = Callable[[], Awaitable[None] | None]


MAX_CONNECTIONS = 1024  # to Kamiya at once: streams beyond wait for one


def build_http_client(settings: KamiyaSettings) -> httpx.AsyncClient:
    """The one pooled client for Kamiya: a long read timeout (replies stream slowly), a short
    connect timeout (an unreachable relay should fail fast), room for many parallel streams."""
    return http_client(
        httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    )


def http_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An ``httpx`` client on aiohttp's transport (httpx-aiohttp): httpx's API, aiohttp's HTTP.

    Each network read of a stream cost httpcore a timeout scope and several layers of Python;
    at 1,000 chats streaming at once that was a third of the bot's CPU, and aiohttp's reader
    (its parser in C) needs a third less CPU per reply in all (``python -m bench.load``).
    """
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    return AcyclicClient(
        timeout=timeout, transport=_Transport(limits=limits), follow_redirects=False
    )


class AcyclicClient(httpx.AsyncClient):
    """httpx's client, minus a reference cycle per response.

    httpx binds each response's stream to the response (``BoundAsyncStream``), a cycle only
    the garbage collector frees. At 1,000 chats streaming (``python -m bench.load``) those
    were 60 objects per request, freed in collections that paused the event loop, and every
    reply with it, for up to 0.5 s. A response read whole gets an empty stream instead (its
    body stays in ``content``); a streamed one keeps just the transport's own stream
    (``_Body``, which knows nothing of the response), one generator fewer per network read.
    """

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: httpx._types.AuthTypes | httpx._client.UseClientDefault | None = (
            httpx.USE_CLIENT_DEFAULT
        ),
        follow_redirects: bool | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        response = await super().send(
            request, stream=stream, auth=auth, follow_redirects=follow_redirects
        )
        if not stream:
            response.stream = _READ
        else:
            # httpx keeps the transport's stream in a private attribute: should it move, the
            # bound stream stays, and only the cycle with it.
            inner = getattr(response.stream, "_stream", None)
            if isinstance(inner, _Body):
                response.stream = inner
        return response


_READ = httpx.ByteStream(b"")  # the stream of every response whose body was read whole


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, with response bodies read by ``_Body``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        # The library keeps the aiohttp response in a private attribute: should it move, its
        # own (slower) stream stays in place and nothing else changes.
        raw = getattr(stream, "_aiohttp_response", None)
        if isinstance(stream, AiohttpResponseStream) and isinstance(raw, aiohttp.ClientResponse):
            read = request.extensions.get("timeout", {}).get("read")
            response.stream = _Body(stream, raw.content, watch(raw, read))
        return response


class _Body(httpx.AsyncByteStream):
    """A response body as aiohttp buffered it: each step hands over every byte received so far.

    A Kamiya stream arrives a network read per token; the library's stream reads it through
    two async generators and ``read(16 KiB)``, and ``Response.aiter_raw`` adds a third. One
    ``readany`` per step, mapped to httpx's errors as the library maps them, is all a reply
    needs (``python -m bench.load``: the read path was an eighth of the bot's CPU).
    """

    def __init__(
        self, inner: AiohttpResponseStream, content: aiohttp.StreamReader, stall: Stall | None
    ) -> None:
        self._inner = inner
        self._content = content
        self._stall = stall

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Reads(self._content)

    async def aclose(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
        await self._inner.aclose()


class _Reads:
    """The iterator of ``_Body``: a class, not a generator, so a step is one call deep."""

    __slots__ = ("_content",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    def __aiter__(self) -> _Reads:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._content.readany()
        except Exception:
            with map_aiohttp_exceptions():
                raise
        if not data:
            raise StopAsyncIteration
        return data


def can_block(model: str) -> bool:
    """Kamiya serves blocking (non-stream) completions only for gpt-3.5-turbo models."""
    bare = model.rsplit(":", 1)[-1].strip().lower()
    return bare == "gpt-3.5-turbo" or bare.startswith("gpt-3.5-turbo-")


class KamiyaClient:
    """Typed access to Kamiya. Owns nothing: the caller owns and closes the ``httpx`` client."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, api_key: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self.__key = api_key

    def __repr__(self) -> str:
        return f"KamiyaClient(base_url={self._base!r})"

    @property
    def base_url(self) -> str:
        return self._base

    def conversation(
        self, content: str, conversation_id: str | None = None, *, pace: Pace | None = None
    ) -> AsyncGenerator[Event]:
        """One turn of the simplified chat API: ``TextDelta``* then exactly one ``Final``.

        Raises ``ConversationNotFound`` when the server rejects the ``conversation_id`` sent.
        Use under ``contextlib.aclosing`` so an early exit closes the connection at once.
        (The stream's own generator, not one more around it: this runs per token.)
        ``pace`` is asked after each network read (``Pace``).
        """
        body: dict[str, object] = {"content": content}
        if conversation_id is not None:
            body["conversationId"] = conversation_id
        reader = StreamReader(expect_info=True)
        return self._stream(CONVERSATION_PATH, body, reader, conversation_id, pace)

    async def stream_completion(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        pace: Pace | None = None,
        **params: object,
    ) -> AsyncGenerator[TextDelta]:
        """A streamed Chat Completion for any model Kamiya serves: ``TextDelta``* until [DONE]."""
        body: dict[str, object] = {**params, "messages": list(messages), "model": model}
        body["stream"] = True
        reader = StreamReader(expect_info=False)
        async for event in self._stream(COMPLETIONS_PATH, body, reader, None, pace):
            if isinstance(event, TextDelta):
                yield event

    async def complete(self, messages: Sequence[Message], model: str, **params: object) -> str:
        """A blocking Chat Completion; only gpt-3.5-turbo models allow it (checked locally)."""
        if not can_block(model):
            raise BlockingNotSupported(
                f"{model} is served only as a stream; blocking calls need gpt-3.5-turbo"
            )
        body: dict[str, object] = {**params, "messages": list(messages), "model": model}
        body.pop("stream", None)
        try:
            response = await self._http.post(
                self._base + COMPLETIONS_PATH, json=body, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise self._scrub(_transport_error(exc, streaming=False)) from None
        if response.status_code != 200:
            raise self._scrub(_status_error(response, response.content, None))
        try:
            payload = response.json()
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise MalformedEvent("Kamiya sent a completion that could not be read") from None
        if not isinstance(content, str):
            raise MalformedEvent("Kamiya sent a completion without text")
        return content

    async def _stream(
        self,
        path: str,
        body: dict[str, object],
        reader: StreamReader,
        conversation_id: str | None,
        pace: Pace | None = None,
    ) -> AsyncGenerator[Event]:
        # identity: a compressed stream would reach us in the compressor's blocks, not as
        # written, and lets the body be read raw (``Response.stream``, the transport's bytes
        # as they come, ``_Body`` above) without a decoding layer.
        headers = {
            **self._headers(),
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
            "Cache-Control": "no-store",
        }
        streaming = False
        try:
            async with self._http.stream(
                "POST", self._base + path, json=body, headers=headers
            ) as response:
                if response.status_code != 200:
                    raw = await _read_capped(response)
                    raise _status_error(response, raw, conversation_id)
                if _is_json(response):
                    raise _status_error(response, await _read_capped(response), conversation_id)
                streaming = True
                sse = SseStream()
                stream = response.stream  # raw bytes: asked for identity, above
                chunks = (
                    stream if isinstance(stream, httpx.AsyncByteStream) else response.aiter_raw()
                )
                async for chunk in chunks:
                    for item in sse.feed(chunk):
                        event = reader.feed(item)
                        if event is not None:
                            yield event
                    if pace is not None and (rest := pace()) is not None:
                        await rest
                for item in sse.close():
                    event = reader.feed(item)
                    if event is not None:
                        yield event
                reader.finish()
        except KamiyaError as exc:
            raise self._scrub(exc) from None
        except httpx.HTTPError as exc:
            raise self._scrub(_transport_error(exc, streaming=streaming)) from None

    def _headers(self) -> dict[str, str]:
        trace = current_trace()  # once per request: so Kamiya's logs match ours
        if trace is None:
            return {"Authorization": f"Bearer {self.__key}"}
        return {"Authorization": f"Bearer {self.__key}", "X-Request-Id": trace.request_id}

    def _scrub(self, error: KamiyaError) -> KamiyaError:
        """Upstream text is echoed to users; make sure it can never carry the key."""
        if self.__key and self.__key in error.message:
            error.message = error.message.replace(self.__key, "***")
            error.args = (error.message,)
        return error


async def _read_capped(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > _MAX_ERROR_BODY:
            break
    return bytes(data[:_MAX_ERROR_BODY])


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "").lower()


def _status_error(
    response: httpx.Response, raw: bytes, conversation_id: str | None
) -> KamiyaError:
    """A non-stream answer: an error status, or a JSON body where a stream was due."""
    status = response.status_code
    text = raw.decode("utf-8", errors="replace")
    body: object
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    if status == 200:
        if isinstance(body, dict) and "error" in body:
            return error_from_body(None, body)
        return MalformedEvent("Kamiya answered JSON where a stream was expected")
    if conversation_id is not None and _means_unknown_conversation(status, text):
        return ConversationNotFound("Kamiya no longer knows this conversation", status=status)
    return error_from_body(status, body, retry_after=_retry_after(response))


def _means_unknown_conversation(status: int, text: str) -> bool:
    # The docs do not say how an expired id is reported. 404/410 are the natural answers; any
    # other failure that talks about the conversation counts too (a relay may well say 400 or
    # 500 "conversation not found"), except the statuses that mean something else entirely.
    if status in {404, 410}:
        return True
    return status not in {401, 402, 403, 429} and "conversation" in text.lower()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to let the caller choose its own pause


def _transport_error(exc: httpx.HTTPError, *, streaming: bool) -> KamiyaError:
    timed_out = _timed_out(exc)
    if streaming:
        if timed_out:
            return IncompleteStream("Kamiya stopped sending mid-reply (timed out)")
        return IncompleteStream("the connection to Kamiya dropped mid-reply")
    if timed_out:
        return UpstreamFailure("Kamiya did not answer in time")
    name = type(exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc).__name__
    return Unreachable(f"could not reach Kamiya ({name})")


def _timed_out(exc: httpx.HTTPError) -> bool:
    """Whether a timeout ended it. The aiohttp transport maps every connection error to
    ``httpx.ConnectTimeout`` (a refused connection too), so its own exception decides."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError | TimeoutError):
        return isinstance(cause, aiohttp.ServerTimeoutError | TimeoutError)
    return isinstance(exc, httpx.TimeoutException)
