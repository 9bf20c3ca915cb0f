"""A bot split over two processes by Discord sharding: each answers its own guilds only."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from core import ChatKey, text
from core.fake_kamiya import FakeKamiya, Script
from storage import SqlStore
from tests.bots.discord.harness import TOKEN, running_bot, write_config
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, Channel, FakeDiscord, Guild
from tests.waiting import until, until_async

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from core import Config

# (guild_id >> 22) % 2: GUILD_ID is on shard 0, this one on shard 1.
SHARD_ONE_GUILD = GUILD_ID + (1 << 22)
SHARD_ONE_CHANNEL = CHANNEL_ID + 1
PROMPTS = ["first", "second", "third"]
CUT = text("cut_off_mark")
LINE = f"⚠️ {text('interrupted')}"


def guilds() -> tuple[Guild, ...]:
    return (
        Guild(GUILD_ID, "Shard Zero", (Channel(CHANNEL_ID, "general"),)),
        Guild(SHARD_ONE_GUILD, "Shard One", (Channel(SHARD_ONE_CHANNEL, "general"),)),
    )


def shard(folder: Path, shard_id: int, kamiya: FakeKamiya) -> Config:
    """The config of the process that runs shard ``shard_id`` of 2."""
    path = folder / f"shard{shard_id}"
    path.mkdir(exist_ok=True)
    return write_config(
        path,
        kamiya_url=kamiya.base_url,
        key=KEY,
        extra=f"shard_count = 2\nshard_ids = [{shard_id}]\n",
    )


async def test_two_processes_each_answer_only_their_shard_in_order(
    tmp_path: Path, fake: FakeKamiya, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each "process" (a frontend with its own Kamiya, sharing one database) gets and answers
    only its shard's interactions; a channel's messages are answered one at a time, in order."""
    async with AsyncExitStack() as stack:
        dc = await stack.enter_async_context(FakeDiscord(TOKEN, guilds=guilds()))
        dc.patch_discord(monkeypatch)
        other = await stack.enter_async_context(FakeKamiya(api_key=KEY))
        store = await stack.enter_async_context(
            await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
        )
        bots = [
            await stack.enter_async_context(running_bot(config, store=store))
            for config in (shard(tmp_path, 0, fake), shard(tmp_path, 1, other))
        ]
        assert [s.shard for s in dc.gateway.sessions.values()] == [[0, 2], [1, 2]]

        asked = [
            (dc.slash("chat", {"prompt": f"{p} {where}"}, channel_id=channel, guild_id=guild))
            for p in PROMPTS
            for where, guild, channel in [
                ("zero", GUILD_ID, CHANNEL_ID),
                ("one", SHARD_ONE_GUILD, SHARD_ONE_CHANNEL),
            ]
        ]
        await dc.wait_for(lambda f: all(i.acknowledged for i in asked), timeout=20)
        await until(lambda: not any(bot.frontend.busy for bot in bots), timeout=30)

    assert [r.json["content"] for r in fake.requests] == [f"{p} zero" for p in PROMPTS]
    assert [r.json["content"] for r in other.requests] == [f"{p} one" for p in PROMPTS]
    assert fake.overlaps == other.overlaps == []  # never two requests of a channel at once
    for channel, where in [(CHANNEL_ID, "zero"), (SHARD_ONE_CHANNEL, "one")]:
        shown = [m.content for m in dc.visible(channel)]
        assert shown == [
            f"> {p} {where}\n**Echo** (turn {turn}): {p} {where}"
            for turn, p in enumerate(PROMPTS, start=1)
        ]


async def test_a_process_marks_only_its_own_shards_replies_left_in_flight(
    tmp_path: Path, fake: FakeKamiya, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start a process marks the replies a crash left unfinished; with sharding, only those
    of its own guilds: another shard's may be streaming in a live process right now."""
    async with AsyncExitStack() as stack:
        dc = await stack.enter_async_context(FakeDiscord(TOKEN, guilds=guilds()))
        dc.patch_discord(monkeypatch)
        store = await stack.enter_async_context(
            await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
        )
        zero, one = shard(tmp_path, 0, fake), shard(tmp_path, 1, fake)
        gate = asyncio.Event()
        fake.enqueue(Script(gate=gate), Script(gate=gate))
        async with running_bot(zero, store=store), running_bot(one, store=store) as bot:
            asked = [
                dc.slash("chat", {"prompt": "zero"}, channel_id=CHANNEL_ID, guild_id=GUILD_ID),
                dc.slash(
                    "chat",
                    {"prompt": "one"},
                    channel_id=SHARD_ONE_CHANNEL,
                    guild_id=SHARD_ONE_GUILD,
                ),
            ]
            await fake.wait_for_requests(2)

            async def both_recorded() -> bool:  # crash records are written behind the calls
                return len(await store.open_replies("discord")) == 2

            await until_async(both_recorded)
            records = {
                r.chat_key: json.loads(r.target) for r in await store.open_replies("discord")
            }
            assert {chat: t.get("guild_id") for chat, t in records.items()} == {
                f"discord:{CHANNEL_ID}": str(GUILD_ID),
                f"discord:{SHARD_ONE_CHANNEL}": str(SHARD_ONE_GUILD),
            }
            gate.set()
            await dc.wait_for(lambda f: all(i.original and "Echo" in i.original for i in asked))
            for interaction in asked:  # as a killed process would have left them
                message = interaction.original_message
                assert message is not None
                chat = ChatKey("discord", str(interaction.channel_id))
                target = {
                    "channel_id": str(interaction.channel_id),
                    "header": "",
                    "guild_id": str(interaction.guild_id),
                }
                reply_id = await bot.conversations.inflight.begin(chat, target, None)
                await bot.conversations.inflight.messages(reply_id, [message.id], "Half")
        async with running_bot(zero, store=store) as bot:
            await until(lambda: not bot.frontend.busy)
        [left] = await store.open_replies("discord")
        assert left.chat_key == f"discord:{SHARD_ONE_CHANNEL}"
        assert [m.content for m in dc.visible(CHANNEL_ID)] == [f"Half {CUT}\n\n{LINE}"]
        async with running_bot(one, store=store) as bot:
            await until(lambda: not bot.frontend.busy)
        assert await store.open_replies("discord") == []
        assert [m.content for m in dc.visible(SHARD_ONE_CHANNEL)] == [f"Half {CUT}\n\n{LINE}"]
