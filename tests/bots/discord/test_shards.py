"""A bot split over two processes by Discord sharding: each answers its own guilds only."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from core.fake_kamiya import FakeKamiya
from storage import SqlStore
from tests.bots.discord.harness import TOKEN, running_bot, write_config
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, Channel, FakeDiscord, Guild
from tests.waiting import until

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.bots.discord.harness import Bot

# (guild_id >> 22) % 2: GUILD_ID is on shard 0, this one on shard 1.
SHARD_ONE_GUILD = GUILD_ID + (1 << 22)
SHARD_ONE_CHANNEL = CHANNEL_ID + 1
PROMPTS = ["first", "second", "third"]


def guilds() -> tuple[Guild, ...]:
    return (
        Guild(GUILD_ID, "Shard Zero", (Channel(CHANNEL_ID, "general"),)),
        Guild(SHARD_ONE_GUILD, "Shard One", (Channel(SHARD_ONE_CHANNEL, "general"),)),
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
        bots: list[Bot] = []
        for shard_id, kamiya in [(0, fake), (1, other)]:
            folder = tmp_path / f"shard{shard_id}"
            folder.mkdir()
            config = write_config(
                folder,
                kamiya_url=kamiya.base_url,
                key=KEY,
                extra=f"shard_count = 2\nshard_ids = [{shard_id}]\n",
            )
            bots.append(await stack.enter_async_context(running_bot(config, store=store)))
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
