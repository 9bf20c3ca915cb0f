"""A running Discord bot, as ``kamiya-bot run`` builds it, for tests and benchmarks."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bots.discord.app import DiscordFrontend
from core import Conversations, KamiyaClient, load_config
from storage import SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from core import Config

TOKEN = "discord-test-token"


@dataclass
class Bot:
    frontend: DiscordFrontend
    conversations: Conversations
    store: SqlStore


def write_config(folder: Path, *, kamiya_url: str, key: str, extra: str = "") -> Config:
    path = folder / "bot.toml"
    path.write_text(
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{key}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{folder / "bot.db"}"\n'
        f'[discord]\ntoken = "{TOKEN}"\n{extra}\n',
        encoding="utf-8",
    )
    return load_config(path, {})


@asynccontextmanager
async def running_bot(config: Config) -> AsyncIterator[Bot]:
    """The fake's ``patch_discord`` must be in force (discord.py's endpoints are class-wide)."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as http,
        await SqlStore.open(config.storage.url) as store,
    ):
        key = config.kamiya.api_key.get_secret_value()
        client = KamiyaClient(http, base_url=config.kamiya.base_url, api_key=key)
        async with Conversations(client, store, titles=False) as conversations:
            frontend = DiscordFrontend(config, conversations, guild_ready_timeout=0.05)
            await frontend.start()
            try:
                yield Bot(frontend, conversations, store)
            finally:
                await frontend.stop()
