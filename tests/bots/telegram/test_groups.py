"""Groups and forum topics: mention and reply triggers, scopes, topics kept apart, privacy note."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import Script
from tests.waiting import until

if TYPE_CHECKING:
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram

GROUP = -100500
BOT = "@kamiya_test_bot"


async def shown(
    tg: FakeTelegram, chat: int, n: int, thread: int | None = None, bot: Bot | None = None
) -> list[str]:
    """Wait for ``n`` bot messages; with ``bot``, also until its replies are complete."""
    await tg.wait_for(lambda f: len(f.visible(chat, thread)) >= n)
    if bot is not None:
        await until(lambda: not bot.frontend.busy)
    return tg.visible_texts(chat, thread)


async def test_mention_triggers_an_edited_reply_to_the_users_message(tg, fake, bot):
    fake.enqueue(Script(reply="group answer " * 20, chunk_chars=6, delay_s=0.01))
    alice = tg.user(3001)
    asked = tg.group_message(GROUP, alice, f"{BOT} what is up?")
    await shown(tg, GROUP, 1)
    await tg.wait_for(lambda f: f.visible_texts(GROUP) == [("group answer " * 20).strip()])
    assert fake.requests[0].json["content"] == "what is up?"
    reply = tg.visible(GROUP)[0]
    assert reply.reply_to == asked["message_id"]
    assert not tg.calls_of("sendMessageDraft")  # drafts are for private chats


async def test_ordinary_group_chatter_is_ignored_and_replies_to_the_bot_trigger(tg, fake, bot):
    alice, bob = tg.user(3002), tg.user(3003, first_name="Bob")
    tg.group_message(GROUP, alice, f"{BOT} hello")
    await shown(tg, GROUP, 1)
    tg.group_message(GROUP, bob, "just chatting, not for the bot")
    tg.group_message(GROUP, bob, "follow-up", reply_to=tg.visible(GROUP)[0])
    await shown(tg, GROUP, 2)
    assert [r.json["content"] for r in fake.requests] == ["hello", "follow-up"]
    assert fake.requests[1].json["conversationId"] == fake.requests[0].response_conversation_id


@pytest.mark.parametrize("settings_toml", ['group_scope = "user"'])
async def test_group_scope_user_gives_each_user_a_conversation(tg, fake, bot):
    tg.group_message(GROUP, tg.user(3004), f"{BOT} one")
    await shown(tg, GROUP, 1, bot=bot)
    tg.group_message(GROUP, tg.user(3005), f"{BOT} two")
    await shown(tg, GROUP, 2, bot=bot)
    assert "conversationId" not in fake.requests[1].json
    assert await bot.store.current(f"telegram:{GROUP}@u3004")
    assert await bot.store.current(f"telegram:{GROUP}@u3005")


async def test_one_conversation_per_group_by_default(tg, fake, bot):
    tg.group_message(GROUP, tg.user(3006), f"{BOT} one")
    await shown(tg, GROUP, 1)
    tg.group_message(GROUP, tg.user(3007), f"{BOT} two")
    await shown(tg, GROUP, 2)
    assert fake.requests[1].json["conversationId"] == fake.requests[0].response_conversation_id


async def test_forum_topics_are_separate_conversations_and_replies_stay_in_topic(tg, fake, bot):
    alice = tg.user(3008)
    tg.group_message(GROUP, alice, f"{BOT} in topic 7", thread_id=7, is_forum=True)
    tg.group_message(GROUP, alice, f"{BOT} in topic 9", thread_id=9, is_forum=True)
    await shown(tg, GROUP, 1, thread=7)
    await shown(tg, GROUP, 1, thread=9, bot=bot)
    assert "conversationId" not in fake.requests[0].json
    assert "conversationId" not in fake.requests[1].json
    assert await bot.store.current(f"telegram:{GROUP}:7")
    assert await bot.store.current(f"telegram:{GROUP}:9")
    tg.group_message(GROUP, alice, f"{BOT} again in 7", thread_id=7, is_forum=True)
    await shown(tg, GROUP, 2, thread=7, bot=bot)
    topic7 = await bot.store.current(f"telegram:{GROUP}:7")
    assert fake.requests[2].json["conversationId"] == topic7


async def test_help_in_a_group_explains_privacy_mode(tg, fake, bot):
    tg.group_message(GROUP, tg.user(3009), "/help@kamiya_test_bot")
    texts = await shown(tg, GROUP, 1)
    assert "mention me (@kamiya_test_bot)" in texts[0]
    assert fake.requests == []


async def test_reset_in_a_topic_resets_only_that_topic(tg, fake, bot):
    alice = tg.user(3010)
    for thread in (7, 9):
        tg.group_message(GROUP, alice, f"{BOT} hi", thread_id=thread, is_forum=True)
        await shown(tg, GROUP, 1, thread=thread, bot=bot)
    tg.group_message(GROUP, alice, "/reset", thread_id=7, is_forum=True)
    await shown(tg, GROUP, 2, thread=7, bot=bot)
    assert await bot.store.current(f"telegram:{GROUP}:7") is None
    assert await bot.store.current(f"telegram:{GROUP}:9")
