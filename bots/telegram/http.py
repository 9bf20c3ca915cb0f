"""The Bot API client for every call but long polling: httpx's API on aiohttp's transport.

python-telegram-bot speaks httpx; the transport underneath is httpx-aiohttp's, as for Kamiya
(``core.client.http_client``). At 1,000 chats, httpcore's pool took up to 1.3 s (p99) to hand a
call a connection while the event loop was busy with the streams; aiohttp's pool does the same
work in less Python. The client is ``core.client.AcyclicClient``: httpx's own left every call's
response in a reference cycle for the garbage collector. Long polling keeps PTB's own client
(one connection, one request at a time).
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport
from telegram.request import HTTPXRequest

from core.client import AcyclicClient

__all__ = ["POOL_SIZE", "BotRequest", "bot_request"]

POOL_SIZE = 256  # PTB's own default


class BotRequest(HTTPXRequest):
    """PTB's request class on ``AcyclicClient``."""

    __slots__ = ()

    def _build_client(self) -> httpx.AsyncClient:
        # PTB builds its client here (and again after a shutdown), from the kwargs it keeps.
        return AcyclicClient(**self._client_kwargs)


def bot_request() -> BotRequest:
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    return BotRequest(
        connection_pool_size=POOL_SIZE,
        httpx_kwargs={"transport": AiohttpTransport(limits=limits)},
    )
