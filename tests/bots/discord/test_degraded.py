"""Serving on with less: a database that refuses writes or reads, the bot at its stream bound."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from core import text
from core.fake_kamiya import Script
from storage import MemoryStore, SqlStore
from tests.bots.discord.harness import running_bot, settled, write_config
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID, THREAD_ID

if TYPE_CHECKING:
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from storage.protocol import ChatState
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord

NOT_SAVED = text("not_saved", "en")


async def test_a_database_that_refuses_writes_gets_one_line_per_reply_and_serving_goes_on(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    await (await SqlStore.open(config.storage.url)).aclose()  # the schema, then read-only
    path = config.storage.url.removeprefix("sqlite+aiosqlite:///")
    read_only = await SqlStore.open(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    async with read_only, running_bot(config, store=read_only) as bot:
        one = dc.slash("chat", {"prompt": "hello"})
        other = dc.slash("chat", {"prompt": "elsewhere"}, thread=True)
        await settled(bot, dc, one, other)
        again = dc.slash("chat", {"prompt": "again"})
        await settled(bot, dc, again)
        assert await bot.store.current(f"discord:{CHANNEL_ID}") is None
    for ran, prompt in ((one, "hello"), (other, "elsewhere"), (again, "again")):
        assert ran.original == f"> {prompt}\n**Echo** (turn 1): {prompt}"
        assert [(m.content, m.ephemeral) for m in ran.followups] == [(NOT_SAVED, True)]
    assert "conversationId" not in fake.requests[-1].json  # nothing was stored to continue


@pytest.mark.parametrize("settings_toml", ["[bot]\nmax_concurrent_streams = 1"])
async def test_a_chat_beyond_the_stream_bound_is_told_it_waits_then_answered(
    dc: FakeDiscord, fake: FakeKamiya, bot: Bot
) -> None:
    gate = asyncio.Event()
    fake.enqueue(Script(reply="First channel's answer.", gate=gate), Script(reply="Second's."))
    first = dc.slash("chat", {"prompt": "first"})
    await fake.wait_for_requests(1)
    second = dc.slash("chat", {"prompt": "second"}, thread=True)
    waiting = f"> second\n{text('busy_streams', 'en')}"
    await dc.wait_for(lambda f: second.original == waiting)
    assert len(fake.requests) == 1  # the second waits for the first's stream slot
    gate.set()
    await settled(bot, dc, first, second)
    assert first.original == "> first\nFirst channel's answer."
    assert second.original == "> second\nSecond's."
    assert [m.content for m in dc.visible(THREAD_ID)] == ["> second\nSecond's."]
    assert fake.max_in_flight == 1


class _Unreadable(MemoryStore):
    """A database that cannot be read: every chat's state fails."""

    async def state(self, chat_key: str) -> ChatState:
        raise OSError("disk I/O error")


async def test_a_database_that_cannot_be_read_is_one_line_and_kamiya_is_not_asked(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config, store=_Unreadable()) as bot:
        ran = dc.slash("chat", {"prompt": "hello"})
        await settled(bot, dc, ran)
        other = dc.slash("chat", {"prompt": "and here"}, thread=True)
        await settled(bot, dc, other)
    for asked, prompt in ((ran, "hello"), (other, "and here")):
        assert asked.original == f"> {prompt}\n⚠️ {text('storage', 'en')}"
        assert asked.original_message is not None
        assert asked.original_message.buttons == []
    assert fake.requests == []
