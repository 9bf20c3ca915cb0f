"""Token lifetime, mention mode and guild sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import Script
from tests.bots.discord.harness import COMMANDS
from tests.fakes.discord import CHANNEL_ID, GUILD_ID
from tests.waiting import until

if TYPE_CHECKING:
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord

REPLY = "".join(f"part{i} " for i in range(150))


def shown_text(dc: FakeDiscord, prompt: str) -> str:
    """The messages read in order, header removed, joined as a reader would."""
    contents = [m.content for m in dc.visible(CHANNEL_ID)]
    contents[0] = contents[0].removeprefix(f"> {prompt}\n")
    return "".join(contents)


async def finished(bot: Bot, dc: FakeDiscord) -> None:
    await dc.wait_for(lambda f: bool(f.interactions) and f.interactions[-1].acknowledged)
    await until(lambda: not bot.frontend.busy, timeout=30)


@pytest.mark.parametrize("settings_toml", ["interaction_budget_s = 1.0"])
async def test_reply_outliving_the_interaction_budget_continues_in_channel_messages(dc, fake, bot):
    fake.enqueue(Script(reply=REPLY, chunk_chars=6, delay_s=0.02))  # about 3 s
    dc.slash("chat", {"prompt": "long one"})
    await finished(bot, dc)
    kinds = (
        [m.kind for m in dc.visible(CHANNEL_ID)]
        if hasattr(dc.visible(CHANNEL_ID)[0], "kind")
        else None
    )
    assert len(dc.channel_messages(CHANNEL_ID)) >= 1  # continued as ordinary messages
    assert shown_text(dc, "long one").replace(" ", "") == REPLY.replace(" ", "")
    assert kinds is None or kinds


@pytest.mark.parametrize("dc_ttl", [1.0])
async def test_a_dead_interaction_token_switches_to_channel_messages_without_loss(dc, fake, bot):
    fake.enqueue(Script(reply=REPLY, chunk_chars=6, delay_s=0.02))
    dc.slash("chat", {"prompt": "long one"})
    await finished(bot, dc)
    assert any(c.code == 50027 for c in dc.calls)
    assert dc.channel_messages(CHANNEL_ID)
    assert shown_text(dc, "long one").replace(" ", "") == REPLY.replace(" ", "")


@pytest.mark.parametrize("settings_toml", ["reply_to_mentions = true"])
async def test_mentions_are_answered_in_the_channel_when_enabled(dc, fake, bot):
    fake.enqueue(Script(reply="answer to @everyone", chunk_chars=4, delay_s=0.01))
    asked = dc.message(CHANNEL_ID, "what is up?", mentions_bot=True)
    await dc.wait_for(
        lambda f: any(m.content == "answer to @everyone" for m in f.visible(CHANNEL_ID))
    )
    assert fake.requests[0].json["content"] == "what is up?"
    answer = dc.channel_messages(CHANNEL_ID)[-1]
    assert answer.reply_to == asked.id
    assert dc.pings == []


async def test_mentions_are_ignored_by_default(dc, fake, bot):
    dc.message(CHANNEL_ID, "hello?", mentions_bot=True)
    ran = dc.slash("help")
    await dc.wait_for(lambda f: ran.acknowledged)
    assert fake.requests == []


@pytest.mark.parametrize("settings_toml", [f"guild_ids = [{GUILD_ID}]"])
async def test_guild_ids_sync_commands_to_the_guild_at_once(dc, bot):
    assert [s.guild_id for s in dc.syncs] == [GUILD_ID]
    assert sorted(dc.syncs[0].names) == COMMANDS


async def test_commands_are_localised_and_the_prompt_is_required(dc, bot):
    chat = next(c for c in dc.syncs[-1].commands if c["name"] == "chat")
    assert chat["description_localizations"]["zh-CN"] == "向 Kamiya 提问，回复实时显示"
    prompt = chat["options"][0]
    assert prompt["required"] is True
    assert prompt["min_length"] == 1


async def test_a_forced_429_on_an_edit_is_waited_out_and_the_reply_completes(dc, fake, bot):
    fake.enqueue(Script(reply=REPLY[:300], chunk_chars=6, delay_s=0.01))
    dc.fail_next("PATCH", "edit_original", status=429, retry_after=1.0)
    ran = dc.slash("chat", {"prompt": "busy"})
    await finished(bot, dc)
    assert dc.count_429 == 1
    assert ran.original == "> busy\n" + REPLY[:300].strip()
