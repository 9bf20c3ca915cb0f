"""⏹ Stop and 🔄 Regenerate: pressed mid-stream, after the fact, twice, and after a restart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core import ChatKey
from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH, Script
from tests.bots.discord.harness import answer, run, running_bot, settled, write_config
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID
from tests.waiting import until

if TYPE_CHECKING:
    from core.fake_kamiya import FakeKamiya, RecordedRequest
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord, Interaction, Msg

LONG = "".join(f"word{i} " for i in range(400))  # about 14 s at the pace below


def slow(reply: str = LONG) -> Script:
    return Script(reply=reply, chunk_chars=4, delay_s=0.02)


GPT4 = "openai:gpt-4"


def asked(fake: FakeKamiya) -> list[RecordedRequest]:
    """The completions requests that answered users (not the one-token model probes)."""
    return [r for r in fake.requests if r.path == COMPLETIONS_PATH and "max_tokens" not in r.json]


def last_message(dc: FakeDiscord) -> Msg:
    return dc.visible(CHANNEL_ID)[-1]


async def streaming(dc: FakeDiscord, interaction: Interaction) -> Msg:
    """The reply's message once it shows text under a Stop button."""

    def stop_shown(fake: FakeDiscord) -> bool:
        message = interaction.original_message
        return message is not None and any(b.startswith("kamiya:stop:") for b in message.buttons)

    await dc.wait_for(stop_shown)
    message = interaction.original_message
    assert message is not None
    return message


async def completions(dc: FakeDiscord, bot: Bot) -> None:
    assert "Now using" in await run(dc, "model", {"name": GPT4})


async def test_stop_ends_the_request_keeps_the_partial_text_and_removes_the_button(dc, fake, bot):
    fake.enqueue(slow())
    ran = dc.slash("chat", {"prompt": "long"})
    message = await streaming(dc, ran)
    stop = dc.click(message, message.button("kamiya:stop:"))
    await settled(bot, dc, ran, stop)
    await until(lambda: fake.requests[0].finished is not None, timeout=3)  # long before 14 s
    assert stop.response_type == 6  # acknowledged quietly: the reply itself says it stopped
    shown = ran.original or ""
    assert "[stopped]" in shown
    assert "⏹ Stopped." in shown
    assert len(shown) < len(LONG)
    assert message.buttons == []
    ran = dc.slash("chat", {"prompt": "still there?"})
    await settled(bot, dc, ran)
    assert ran.original == "> still there?\n**Echo** (turn 1): still there?"


async def test_stop_in_completions_mode_keeps_the_history_unchanged(dc, fake, bot):
    await completions(dc, bot)
    fake.enqueue(slow(), endpoint="completions")
    ran = dc.slash("chat", {"prompt": "long"})
    message = await streaming(dc, ran)
    dc.click(message, message.button("kamiya:stop:"))
    await settled(bot, dc, ran)
    assert (ran.original or "").endswith("⏹ Stopped.")
    assert "Kamiya may still" not in (ran.original or "")
    ran = dc.slash("chat", {"prompt": "next"})
    await settled(bot, dc, ran)
    assert asked(fake)[-1].json["messages"] == [{"role": "user", "content": "next"}]


async def test_stop_command_stops_the_channel_and_says_when_nothing_runs(dc, fake, bot):
    assert await run(dc, "stop") == "Nothing is being answered right now."
    fake.enqueue(slow())
    ran = dc.slash("chat", {"prompt": "long"})
    await streaming(dc, ran)
    assert await run(dc, "stop") == "Stopped."
    await settled(bot, dc, ran)
    assert "[stopped]" in (ran.original or "")


async def test_a_stop_pressed_after_the_reply_ended_is_stale(dc, fake, bot):
    fake.enqueue(Script(reply="short " * 60, chunk_chars=6, delay_s=0.02))
    ran = dc.slash("chat", {"prompt": "short"})
    message = await streaming(dc, ran)
    custom_id = message.button("kamiya:stop:")
    await settled(bot, dc, ran)
    assert message.buttons == []
    late = dc.click(message, custom_id, stale_client=True)
    assert await answer(dc, late) == "That button is no longer valid."
    assert late.ephemeral


async def test_regenerate_answers_the_last_message_again_as_a_new_reply(dc, fake, bot):
    await completions(dc, bot)
    fake.enqueue(
        Script(reply="first answer"), Script(reply="second answer"), endpoint="completions"
    )
    ran = dc.slash("chat", {"prompt": "q"})
    await settled(bot, dc, ran)
    first = last_message(dc)
    custom_id = first.button("kamiya:regen:")
    assert custom_id.startswith("kamiya:regen:1:local-")
    press = dc.click(first, custom_id)
    await settled(bot, dc, press)
    assert press.response_type == 7  # the press took the old button away
    assert first.buttons == []
    again = last_message(dc)
    assert again.content == "-# 🔄 Answered again\nsecond answer"
    assert again.button("kamiya:regen:") == custom_id  # still one turn: the last one replaced
    assert asked(fake)[-1].json["messages"] == [{"role": "user", "content": "q"}]
    ran = dc.slash("chat", {"prompt": "q2"})
    await settled(bot, dc, ran)
    views = bot.frontend.client._connection._view_store
    assert not views._views  # buttons of dynamic items only: no view is kept per message
    assert not views._synced_message_views
    assert asked(fake)[-1].json["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "q2"},
    ]


async def test_only_the_newest_reply_keeps_a_regenerate_button(dc, fake, bot):
    await completions(dc, bot)
    ran = dc.slash("chat", {"prompt": "one"})
    await settled(bot, dc, ran)
    one = last_message(dc)
    stale_id = one.button("kamiya:regen:")
    ran = dc.slash("chat", {"prompt": "two"})
    await settled(bot, dc, ran)
    two = last_message(dc)
    assert one.buttons == []
    assert two.button("kamiya:regen:").startswith("kamiya:regen:2:")
    late = dc.click(one, stale_id, stale_client=True)
    assert await answer(dc, late) == "That button is no longer valid."
    requests = len(fake.requests)
    await run(dc, "reset")
    assert two.buttons == []
    assert len(fake.requests) == requests


async def test_server_mode_replies_have_no_regenerate_button(dc, fake, bot):
    ran = dc.slash("chat", {"prompt": "hi"})
    await settled(bot, dc, ran)
    assert last_message(dc).buttons == []
    assert fake.requests[-1].path == CONVERSATION_PATH


async def test_switching_the_model_takes_the_regenerate_button_away(dc, fake, bot):
    await completions(dc, bot)
    ran = dc.slash("chat", {"prompt": "one"})
    await settled(bot, dc, ran)
    one = last_message(dc)
    assert one.buttons
    assert "Back to the default" in await run(dc, "model", {"name": "default"})
    assert one.buttons == []


async def test_a_regenerate_that_no_longer_applies_is_told_only_to_the_presser(dc, fake, bot):
    await completions(dc, bot)
    ran = dc.slash("chat", {"prompt": "one"})
    await settled(bot, dc, ran)
    one = last_message(dc)
    custom_id = one.button("kamiya:regen:")
    # A second bot process, or a lost edit, could leave the button: core still says stale.
    await bot.conversations.reset(ChatKey("discord", str(CHANNEL_ID)))
    press = dc.click(one, custom_id)
    await dc.wait_for(lambda f: bool(press.followups))
    await settled(bot, dc, press)
    [notice] = press.followups
    assert notice.ephemeral
    assert notice.content == "That button is no longer valid."
    assert [m.content for m in dc.visible(CHANNEL_ID)] == [ran.original]


@pytest.mark.parametrize("settings_toml", ["reply_to_mentions = true"])
async def test_buttons_work_on_mention_replies_too(dc, fake, bot):
    await completions(dc, bot)
    dc.message(CHANNEL_ID, "question", mentions_bot=True)
    await dc.wait_for(lambda f: bool(f.channel_messages(CHANNEL_ID)))
    await until(lambda: not bot.frontend.busy)
    reply = dc.channel_messages(CHANNEL_ID)[-1]
    press = dc.click(reply, reply.button("kamiya:regen:"))
    await settled(bot, dc, press)
    assert reply.buttons == []
    assert last_message(dc).content.startswith("-# 🔄 Answered again\n")


async def test_buttons_sent_before_a_restart_are_answered_after_it(dc, fake, tmp_path):
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config) as first:
        assert "Now using" in await run(dc, "model", {"name": GPT4})
        fake.enqueue(Script(reply="a " * 200, chunk_chars=4, delay_s=0.01), endpoint="completions")
        ran = dc.slash("chat", {"prompt": "q"})
        message = await streaming(dc, ran)
        stop_id = message.button("kamiya:stop:")
        await settled(first, dc, ran)
    async with running_bot(config) as second:
        late = dc.click(message, stop_id, stale_client=True)
        assert await answer(dc, late) == "That button is no longer valid."
        press = dc.click(message, message.button("kamiya:regen:"))
        await settled(second, dc, press)
        assert last_message(dc).content == "-# 🔄 Answered again\n**Echo** (turn 1): q"
    assert all(i.acknowledged for i in dc.interactions)  # no "This interaction failed"


async def test_the_buttons_follow_a_long_reply_to_its_newest_message(dc, fake, bot):
    await completions(dc, bot)
    paragraphs = "\n\n".join(f"Paragraph {i}. " + "words and more words " * 12 for i in range(12))
    fake.enqueue(Script(reply=paragraphs, chunk_chars=40, delay_s=0.01), endpoint="completions")
    ran = dc.slash("chat", {"prompt": "long"})

    def stop_on_a_followup(fake: FakeDiscord) -> bool:
        return any(m.buttons for m in ran.followups)

    await dc.wait_for(stop_on_a_followup)
    assert ran.original_message is not None
    assert ran.original_message.buttons == []  # it moved on with the text
    await settled(bot, dc, ran)
    shown = dc.visible(CHANNEL_ID)
    assert len(shown) >= 2
    assert [bool(m.buttons) for m in shown] == [False] * (len(shown) - 1) + [True]
    assert shown[-1].button("kamiya:regen:")
    assert ran.original_message.history[1].buttons[0].startswith("kamiya:stop:")


@pytest.mark.parametrize("settings_toml", ["interaction_budget_s = 1.0"])
async def test_a_reply_continued_in_channel_messages_leaves_no_stop_behind(dc, fake, bot):
    parts = "".join(f"part{i} " for i in range(150))
    fake.enqueue(Script(reply=parts, chunk_chars=6, delay_s=0.02))  # about 3 s
    ran = dc.slash("chat", {"prompt": "long one"})
    await dc.wait_for(lambda f: bool(f.channel_messages(CHANNEL_ID)), timeout=15)
    await settled(bot, dc, ran)
    assert ran.original_message is not None
    assert any(r.buttons for r in ran.original_message.history)  # it had the Stop once
    assert all(m.buttons == [] for m in dc.visible(CHANNEL_ID))
    stripped = [
        c
        for c in dc.calls_of("edit_message")
        if isinstance(c.json, dict) and c.json.get("components") == [] and "content" not in c.json
    ]
    assert stripped  # the frozen response lost its Stop through the channel
    assert all(c.ok for c in stripped)


async def test_a_regenerate_that_fails_or_is_stopped_gives_the_button_back(dc, fake, bot):
    await completions(dc, bot)
    ran = dc.slash("chat", {"prompt": "q"})
    await settled(bot, dc, ran)
    first = last_message(dc)
    custom_id = first.button("kamiya:regen:")
    fake.enqueue(Script(status=500), endpoint="completions")
    press = dc.click(first, custom_id)
    await settled(bot, dc, press)
    assert "Kamiya is not answering right now" in last_message(dc).content
    assert first.buttons == [custom_id]  # still the last answer: it can be tried again
    fake.enqueue(slow(), endpoint="completions")
    press = dc.click(first, custom_id)
    await dc.wait_for(lambda f: any(m.buttons for m in press.followups))
    [growing] = press.followups
    dc.click(growing, growing.button("kamiya:stop:"))
    await settled(bot, dc, press)
    assert first.buttons == [custom_id]
    press = dc.click(first, custom_id)
    await settled(bot, dc, press)
    assert last_message(dc).content == "-# 🔄 Answered again\n**Echo** (turn 1): q"
    assert first.buttons == []


async def test_resuming_another_conversation_takes_the_regenerate_button_away(dc, fake, bot):
    await completions(dc, bot)
    ran = dc.slash("chat", {"prompt": "c1"})
    await settled(bot, dc, ran)
    older = await bot.store.state(f"discord:{CHANNEL_ID}")
    await run(dc, "reset")
    ran = dc.slash("chat", {"prompt": "c2"})
    await settled(bot, dc, ran)
    c2 = last_message(dc)
    assert c2.buttons
    assert older.local_id is not None
    assert await run(dc, "resume", {"conversation": older.local_id}) == 'Continuing "Untitled".'
    assert c2.buttons == []
