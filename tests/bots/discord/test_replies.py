"""Replying to one of the bot's messages continues that message's conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import Script
from tests.bots.discord.harness import run, settled
from tests.fakes.discord import CHANNEL_ID
from tests.waiting import until

if TYPE_CHECKING:
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord, Msg

KEY = f"discord:{CHANNEL_ID}"
pytestmark = pytest.mark.parametrize("settings_toml", ["reply_to_mentions = true"])


async def asked(bot: Bot, dc: FakeDiscord, content: str, *, reply_to: Msg | None = None) -> Msg:
    """A user's message to the bot (a mention, or a reply); returns the bot's last answer."""
    before = len(dc.channel_messages(CHANNEL_ID))
    dc.message(CHANNEL_ID, content, mentions_bot=reply_to is None, reply_to=reply_to)
    await dc.wait_for(lambda f: len(f.channel_messages(CHANNEL_ID)) > before)
    await until(lambda: not bot.frontend.busy, timeout=30)
    return dc.channel_messages(CHANNEL_ID)[-1]


async def test_a_reply_to_an_earlier_answer_continues_its_conversation(dc, fake, bot):
    first = await asked(bot, dc, "first")
    first_id = fake.requests[-1].response_conversation_id
    await run(dc, "reset")
    await asked(bot, dc, "second")
    assert fake.requests[-1].conversation_id is None
    answer = await asked(bot, dc, "back to the first", reply_to=first)
    assert fake.requests[-1].conversation_id == first_id
    assert fake.requests[-1].json["content"] == "back to the first"
    notice = '-# ↪ Continuing the earlier conversation "Untitled".'
    assert answer.content == f"{notice}\n**Echo** (turn 2): back to the first"
    assert answer.reply_to is not None
    assert dc.messages[answer.reply_to].content == "back to the first"  # it answers the reply
    await asked(bot, dc, "and on")
    assert fake.requests[-1].conversation_id == first_id  # now the current one
    assert "Continuing" not in dc.channel_messages(CHANNEL_ID)[-1].content


async def test_a_reply_to_a_chat_commands_answer_continues_it_too(dc, fake, bot):
    ran = dc.slash("chat", {"prompt": "one"})
    await settled(bot, dc, ran)
    one_id = fake.requests[-1].response_conversation_id
    assert ran.original_message is not None
    await run(dc, "reset")
    await asked(bot, dc, "other")
    answer = await asked(bot, dc, "more on one", reply_to=ran.original_message)
    assert fake.requests[-1].conversation_id == one_id
    assert answer.content.startswith("-# ↪ Continuing the earlier conversation")


async def test_a_reply_to_the_current_conversation_needs_no_notice(dc, fake, bot):
    first = await asked(bot, dc, "first")
    answer = await asked(bot, dc, "go on", reply_to=first)
    assert fake.requests[-1].conversation_id == fake.requests[0].response_conversation_id
    assert answer.content == "**Echo** (turn 2): go on"


async def test_every_message_of_a_long_answer_is_remembered(dc, fake, bot):
    fake.enqueue(Script(reply="paragraph. " * 500, chunk_chars=400))
    await asked(bot, dc, "long")
    shown = dc.channel_messages(CHANNEL_ID)
    assert len(shown) >= 3
    conversation_id = fake.requests[-1].response_conversation_id
    for message in shown:
        assert await bot.store.message_conversation(KEY, str(message.id)) == conversation_id
    await run(dc, "reset")
    await asked(bot, dc, "from the middle", reply_to=shown[1])
    assert fake.requests[-1].conversation_id == conversation_id


async def test_messages_of_other_users_are_not_replies_to_the_bot(dc, fake, bot):
    other = dc.message(CHANNEL_ID, "just chatting")
    dc.message(CHANNEL_ID, "a reply to a human", reply_to=other)
    ran = dc.slash("help")
    await dc.wait_for(lambda f: ran.acknowledged)
    assert fake.requests == []
