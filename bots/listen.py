"""Serving an aiohttp app on a host and port: the metrics server and the Telegram webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.web_runner import AppRunner

__all__ = ["listen", "url_host"]


async def listen(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 60.0
) -> tuple[AppRunner, int]:
    """Serve ``app``; returns its runner (``cleanup()`` stops it) and the port it got (port 0
    asks for a free one). Raises ``OSError`` (a taken port) with nothing left running."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if port == 0 and addresses else port


def url_host(host: str) -> str:
    """``host`` as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host
