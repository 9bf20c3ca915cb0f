"""``/metrics`` and ``/healthz`` on aiohttp.web, on the bot's own event loop.

Not prometheus-client's thread server: ``/healthz`` asks the database and the frontends, which
live on this loop. ``/healthz`` answers 200 when the database answers a cheap query within
``PING_TIMEOUT_S`` and every frontend says it is up (Telegram: the long poll or the webhook
listener; Discord: gateway connected), else 503 naming what failed. Its body holds component
names and ``ok`` / ``down`` only: never an exception's text, which could carry a database URL
with its password.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bots.listen import listen, url_host

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from prometheus_client import CollectorRegistry

__all__ = ["Healthy", "OpsServer"]

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0


class Healthy(Protocol):
    """A component ``/healthz`` asks: a frontend."""

    name: str

    def healthy(self) -> bool: ...


class OpsServer:
    """An async context manager serving on ``host:port`` while open (port 0: any free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        ping: Callable[[], Awaitable[None]],
        components: Sequence[Healthy] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._ping = ping
        self._components = components
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{url_host(self._host)}:{self.port}"

    async def __aenter__(self) -> OpsServer:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner, self.port = await listen(app, self._host, self._port)
        log.info("metrics and health on %s (/metrics, /healthz)", self.base_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        checks = {"database": "ok" if await self._database_ok() else "down"}
        for component in self._components:
            checks[component.name] = "ok" if _up(component) else "down"
        failing = [name for name, state in checks.items() if state != "ok"]
        body: dict[str, object] = {"status": "fail" if failing else "ok", "checks": checks}
        if failing:
            body["failing"] = failing
        return web.Response(
            body=orjson.dumps(body),
            status=503 if failing else 200,
            content_type="application/json",
        )

    async def _database_ok(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._ping()
        except Exception as exc:  # any failure means "down"; the reason goes to the log only
            log.warning("healthz: the database did not answer (%r)", exc)
            return False
        return True


def _up(component: Healthy) -> bool:
    try:
        return component.healthy()
    except Exception:
        log.exception("healthz: %s could not say whether it is up", component.name)
        return False
