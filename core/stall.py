"""Noticing a Kamiya stream that stopped sending, without a timer per network read.

aiohttp's ``sock_read`` timeout cancels and re-arms a timer on every packet: at 1,000 chats
streaming, 25,000 timer operations a second, a tenth of the bot's CPU (``python -m
bench.load``). Once a stream's headers are in, ``watch`` turns that off and instead looks at
the bytes received every quarter of the timeout (at most every second): a stream that received
nothing for the whole timeout ends as aiohttp's own timeout would have ended it.
"""

from __future__ import annotations

import asyncio

import aiohttp

__all__ = ["Stall", "watch"]

_MAX_STEP_S = 1.0


class Stall:
    """The watch over one response body; ``cancel`` it once the body is closed."""

    __slots__ = (
        "_content",
        "_handle",
        "_loop",
        "_protocol",
        "_seen",
        "_since",
        "_step",
        "_timeout",
    )

    def __init__(
        self,
        content: aiohttp.StreamReader,
        protocol: aiohttp.client_proto.ResponseHandler,
        timeout: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._content = content
        self._protocol = protocol
        self._timeout = timeout
        self._step = min(timeout / 4, _MAX_STEP_S)
        self._seen = content.total_bytes
        self._since = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(self._step, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        content = self._content
        if content.is_eof() or content.exception() is not None:
            return
        now, total = self._loop.time(), content.total_bytes
        if total != self._seen:
            self._seen, self._since = total, now
        elif now - self._since >= self._timeout:
            error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            self._protocol.set_exception(error)  # the connection is not reused
            content.set_exception(error)
            return
        self._handle = self._loop.call_later(self._step, self._check)


def watch(response: aiohttp.ClientResponse, timeout: float | None) -> Stall | None:
    """Hand ``response``'s read timeout from aiohttp's per-read timer to a ``Stall``."""
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    if not timeout or protocol is None:
        return None
    protocol.read_timeout = None  # read per response: the connection's next one sets its own
    return Stall(response.content, protocol, timeout)
