"""Webhook mode: Telegram POSTs each update to an aiohttp.web listener of the bot.

The listener answers 200 only once ``accept(update)`` has returned: the update is then the
bot's (by default queued for the PTB Application, as the poller queues what it fetches), so
a 200 never covers an update the process could still lose, and an ``accept`` that fails is a
500 that Telegram retries. PTB's own ``start_webhook`` (tornado) answers before handing the
update on and offers no such seam.

A request must carry ``X-Telegram-Bot-Api-Secret-Token`` equal to the configured secret
(compared in constant time), else 403 and nothing of it is read. Bodies are capped; a body
that is not a JSON object with an ``update_id`` is a 400; one PTB cannot read is accepted as a
bare update (``updates.readable``), as in polling. Several processes may serve one public URL,
so stopping never deletes the webhook: it answers 503 to requests still arriving (Telegram
delivers them again, to another process or later), waits for the accepts in progress and
closes the listener.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, TypeAlias

from aiohttp import web
from telegram import Update
from telegram.error import TelegramError

from bots.listen import listen, url_host
from bots.runner import StartFailed
from bots.telegram.updates import readable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot

    from core import TelegramSettings

__all__ = ["MAX_BODY_BYTES", "SECRET_HEADER", "Accept", "WebhookServer", "open_webhook"]

log = logging.getLogger(__name__)

#: Takes an update for the bot; returns once it is the bot's to handle, raises if it is not.
Accept: TypeAlias = "Callable[[Update], Awaitable[None]]"

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# An update is a few kilobytes (a 4096-character message with its entities and the message it
# replies to); anything near this is not from Telegram.
MAX_BODY_BYTES = 1024 * 1024
CLOSE_TIMEOUT_S = 1.0  # for keep-alive connections once nothing is in progress


class WebhookServer:
    """The listener: ``start`` binds ``host:port``, ``stop`` closes it; see the module doc."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str,
        secret: str,
        bot: Bot,
        accept: Accept,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._secret = secret.encode()
        self._bot = bot
        self._accept = accept
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._in_progress = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        return self._port

    @property
    def closing(self) -> bool:
        """``stop`` has begun: requests get 503."""
        return self._closing

    @property
    def url(self) -> str:
        """Where the listener serves, as plain HTTP (TLS is the proxy's in front of it)."""
        return f"http://{url_host(self._host)}:{self._port}{self._path}"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(self._path, self._handle)
        self._runner, self._port = await listen(
            app, self._host, self._port, shutdown_timeout=CLOSE_TIMEOUT_S
        )
        log.info("telegram: webhook listening on %s:%d%s", self._host, self._port, self._path)

    async def stop(self) -> None:
        """503 from now on; wait for the accepts in progress; close the listener."""
        self._closing = True
        await self._idle.wait()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode(errors="surrogateescape")
        if not hmac.compare_digest(given, self._secret):
            return web.Response(status=403, text="forbidden")
        if self._closing:
            return web.Response(status=503, text="shutting down")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return web.Response(status=413, text="too large")
        self._in_progress += 1
        self._idle.clear()
        try:
            return await self._take(request)
        finally:
            self._in_progress -= 1
            if not self._in_progress:
                self._idle.set()

    async def _take(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        try:
            data = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        raw = readable(data)
        if raw is None:
            return web.Response(status=400, text="not an update")
        update = Update.de_json(raw, self._bot)
        try:
            await self._accept(update)
        except Exception:
            log.exception(
                "telegram: update %s was not accepted; Telegram will retry", raw["update_id"]
            )
            return web.Response(status=500, text="not accepted")
        return web.Response(text="ok")


async def open_webhook(
    bot: Bot, settings: TelegramSettings, accept: Accept, allowed: list[str]
) -> WebhookServer:
    """The listener started, then ``setWebhook`` (idempotent: every process of the bot calls
    it at start, with the update kinds polling asks for); ``StartFailed`` if either fails."""
    host, port = settings.webhook_host_port
    server = WebhookServer(
        host=host,
        port=port,
        path=settings.webhook_route,
        secret=settings.webhook_secret.get_secret_value(),
        bot=bot,
        accept=accept,
    )
    try:
        await server.start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartFailed(
            f"telegram: cannot listen on {settings.webhook_listen}: {reason}"
        ) from None
    try:
        await bot.set_webhook(
            url=settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=allowed,
        )
    except TelegramError as exc:
        await server.stop()
        raise StartFailed(f"telegram: setWebhook failed: {exc.message}") from None
    log.info("telegram: webhook set for %s", settings.webhook_url)
    return server
