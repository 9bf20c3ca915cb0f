"""A real TelegramFrontend (PTB, long polling) against the fake Bot API and the fake Kamiya."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from bots.telegram.app import TelegramFrontend
from core import Conversations, KamiyaClient, load_config
from storage import SqlStore
from tests.conftest import KEY
from tests.fakes.telegram import FakeTelegram, Limits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya

TOKEN = "123456:TEST-TOKEN"


@dataclass
class Bot:
    """One running bot process' objects."""

    frontend: TelegramFrontend
    conversations: Conversations
    store: SqlStore


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg_limits() -> Limits:
    return Limits()


@pytest.fixture
def tg_drafts() -> bool:
    return True


@pytest.fixture
async def tg(tg_limits: Limits, tg_drafts: bool) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN, limits=tg_limits, drafts_enabled=tg_drafts) as server:
        yield server


@pytest.fixture
def settings_toml() -> str:
    """Extra [telegram] lines for a test."""
    return ""


@pytest.fixture
def make_bot(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path, settings_toml: str
) -> Callable[[], AbstractAsyncContextManager[Bot]]:
    """Build a bot on the same database each time: calling it twice is a restart."""
    from contextlib import asynccontextmanager  # noqa: PLC0415

    path = tmp_path / "bot.toml"
    path.write_text(
        f'[kamiya]\nbase_url = "{fake.base_url}"\napi_key = "{KEY}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{tg.base_url}/bot"\n'
        f"poll_timeout_s = 1\n{settings_toml}\n",
        encoding="utf-8",
    )
    config = load_config(path, {})

    @asynccontextmanager
    async def running() -> AsyncIterator[Bot]:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as http,
            await SqlStore.open(config.storage.url) as store,
        ):
            client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
            async with Conversations(client, store, titles=False) as conversations:
                frontend = TelegramFrontend(config, conversations)
                await frontend.start()
                try:
                    yield Bot(frontend, conversations, store)
                finally:
                    await frontend.stop()

    return running


@pytest.fixture
async def bot(make_bot: Callable[[], AbstractAsyncContextManager[Bot]]) -> AsyncIterator[Bot]:
    async with make_bot() as running:
        yield running
