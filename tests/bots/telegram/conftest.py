"""A real TelegramFrontend (PTB, long polling) against the fake Bot API and the fake Kamiya."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.bots.telegram.harness import TOKEN, Bot, running_bot, write_config
from tests.conftest import KEY
from tests.fakes.telegram import FakeTelegram, Limits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from storage import ConversationStore


class Clock:
    """Core's clock: the real time, moved on by hand (``advance``) to skip hours."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by


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
def core_clock() -> Clock:
    return Clock()


@pytest.fixture
def bot_store() -> ConversationStore | None:
    """The store the bots of a test share; ``None``: the configured SQLite database, as
    ``kamiya-bot run`` uses it (a test may override this with a ``MemoryStore``)."""
    return None


@pytest.fixture
def make_bot(  # noqa: PLR0917 - pytest passes fixtures by name
    tg: FakeTelegram,
    fake: FakeKamiya,
    tmp_path: Path,
    settings_toml: str,
    core_clock: Clock,
    bot_store: ConversationStore | None,
) -> Callable[[], AbstractAsyncContextManager[Bot]]:
    """Build a bot on the same storage each time: calling it twice is a restart."""
    config = write_config(
        tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, extra=settings_toml, key=KEY
    )
    return lambda: running_bot(config, clock=core_clock, store=bot_store)


@pytest.fixture
async def bot(make_bot: Callable[[], AbstractAsyncContextManager[Bot]]) -> AsyncIterator[Bot]:
    async with make_bot() as running:
        yield running
