"""A running Telegram bot, as ``kamiya-bot run`` builds it, for tests and benchmarks."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bots.telegram.app import TelegramFrontend
from core import Conversations, KamiyaClient, load_config
from storage import SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from core import Config

TOKEN = "123456:TEST-TOKEN"
KAMIYA_KEY = "sk-kamiya-test-0123456789abcdef"


@dataclass
class Bot:
    """One running bot process' objects."""

    frontend: TelegramFrontend
    conversations: Conversations
    store: SqlStore


def write_config(
    folder: Path, *, kamiya_url: str, telegram_url: str, extra: str = "", key: str = KAMIYA_KEY
) -> Config:
    path = folder / "bot.toml"
    path.write_text(
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{key}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{folder / "bot.db"}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram_url}/bot"\n'
        f"poll_timeout_s = 1\n{extra}\n",
        encoding="utf-8",
    )
    return load_config(path, {})


@asynccontextmanager
async def running_bot(config: Config, *, titles: bool = False) -> AsyncIterator[Bot]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as http,
        await SqlStore.open(config.storage.url) as store,
    ):
        key = config.kamiya.api_key.get_secret_value()
        client = KamiyaClient(http, base_url=config.kamiya.base_url, api_key=key)
        async with Conversations(client, store, titles=titles) as conversations:
            frontend = TelegramFrontend(config, conversations)
            await frontend.start()
            try:
                yield Bot(frontend, conversations, store)
            finally:
                await frontend.stop()
