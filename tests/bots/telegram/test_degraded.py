"""Serving on with less: a database that refuses writes, and the bot at its stream bound."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from core import text
from core.fake_kamiya import Script
from storage import SqlStore
from tests.bots.telegram.chat import idle, says
from tests.bots.telegram.harness import running_bot, write_config
from tests.conftest import KEY
from tests.fakes.telegram import Limits

if TYPE_CHECKING:
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.fakes.telegram import FakeTelegram

NOT_SAVED = text("not_saved", "en")


@pytest.fixture
def tg_limits() -> Limits:
    return Limits(per_chat_burst=20)  # with [telegram] per_chat_burst: no waits between lines


async def test_a_database_that_refuses_writes_gets_one_line_per_reply_and_serving_goes_on(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya
) -> None:
    config = write_config(
        tmp_path,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        extra="per_chat_burst = 20",
    )
    await (await SqlStore.open(config.storage.url)).aclose()  # the schema, then read-only
    path = config.storage.url.removeprefix("sqlite+aiosqlite:///")
    read_only = await SqlStore.open(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    async with read_only, running_bot(config, store=read_only) as bot:
        tg.private_message(tg.user(5001), "hello")
        reply = await says(tg, 5001, "hello")
        line = await says(tg, 5001, NOT_SAVED)
        tg.private_message(tg.user(5002), "another chat")
        await says(tg, 5002, "another chat")
        await says(tg, 5002, NOT_SAVED)
        tg.private_message(tg.user(5001), "again")
        await says(tg, 5001, "again", after=line.message_id)
        await idle(bot)
        assert await bot.store.current("telegram:5001") is None
    assert reply.message_id < line.message_id
    assert line.text == NOT_SAVED
    assert [t for t in tg.visible_texts(5001) if t == NOT_SAVED] == [NOT_SAVED] * 2
    assert "conversationId" not in fake.requests[-1].json  # nothing was stored to continue


async def test_a_chat_beyond_the_stream_bound_is_told_it_waits_then_answered(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya
) -> None:
    config = write_config(
        tmp_path,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        bot="max_concurrent_streams = 1",
    )
    gate = asyncio.Event()
    fake.enqueue(Script(reply="First chat's answer.", gate=gate), Script(reply="Second's."))
    async with running_bot(config) as bot:
        tg.private_message(tg.user(5003), "first")
        await fake.wait_for_requests(1)
        tg.private_message(tg.user(5004), "second")
        await says(tg, 5004, text("busy_streams", "en"))
        assert len(fake.requests) == 1  # the second waits for the first's stream slot
        gate.set()
        await says(tg, 5003, "First chat's answer.")
        await says(tg, 5004, "Second's.")
        await idle(bot)
    assert tg.visible_texts(5004) == [text("busy_streams", "en"), "Second's."]
    assert fake.max_in_flight == 1
