"""The Bot API client for every call but long polling: httpx's API on aiohttp's transport.

python-telegram-bot speaks httpx; the transport underneath is httpx-aiohttp's, as for Kamiya
(``core.client.http_client``). At 1,000 chats, httpcore's pool took up to 1.3 s (p99) to hand a
call a connection while the event loop was busy with the streams; aiohttp's pool does the same
work in less Python. Long polling keeps PTB's own client (one connection, one request at a time).
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport
from telegram.request import HTTPXRequest

__all__ = ["POOL_SIZE", "bot_request"]

POOL_SIZE = 256  # PTB's own default


def bot_request() -> HTTPXRequest:
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    return HTTPXRequest(
        connection_pool_size=POOL_SIZE,
        httpx_kwargs={"transport": AiohttpTransport(limits=limits)},
    )
