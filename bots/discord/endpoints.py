"""Point discord.py at the configured Discord endpoints (a proxy, or a test server).

discord.py keeps them as class attributes (``Route.BASE`` for REST, interaction callbacks and
webhooks alike; ``DiscordWebSocket.DEFAULT_GATEWAY`` for the gateway), so this is process-wide:
fine for a bot process, which talks to one Discord. Defaults are left untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from core import DiscordSettings

__all__ = ["use_endpoints"]

_DEFAULTS = ("https://discord.com/api/v10", "wss://gateway.discord.gg/")


def use_endpoints(settings: DiscordSettings) -> None:
    if settings.api_base_url != _DEFAULTS[0]:
        discord.http.Route.BASE = settings.api_base_url.rstrip("/")
    if settings.gateway_url != _DEFAULTS[1]:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)
