"""The chat controls end to end: /model (keyboard), /system, /history, /resume, /usage, /stats,
per-user limits, and Chinese wording, against the fake Telegram and the fake Kamiya."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import ChatKey
from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH, Script
from tests.bots.telegram.chat import answer_to, asked, becomes, idle, says

DEFAULT_PICKED = ["✓ default", "openai:gpt-3.5-turbo", "openai:gpt-4", "anthropic:claude-1"]


async def test_model_keyboard_switches_to_completions_and_back_to_default(tg, fake, bot):
    alice = tg.user(5001)
    tg.private_message(alice, "/model")
    menu = await says(tg, 5001, "Pick a model:")
    assert (menu.text or "").startswith("Model: the default (Kamiya's conversation")
    assert tg.buttons(5001, menu.message_id) == DEFAULT_PICKED
    pressed = tg.press(alice, menu, "openai:gpt-4")
    await becomes(tg, menu, "Now using openai:gpt-4.")
    assert tg.answered(pressed) == {}
    assert tg.buttons(5001, menu.message_id) == []  # the keyboard became the outcome

    first = tg.private_message(alice, "first question")
    await answer_to(tg, first, bot)
    second = tg.private_message(alice, "second question")
    await answer_to(tg, second, bot)
    requests = asked(fake)
    assert [r.path for r in requests] == [COMPLETIONS_PATH, COMPLETIONS_PATH]
    assert requests[1].json["model"] == "openai:gpt-4"
    assert requests[1].json["stream"] is True
    assert requests[1].json["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "**Echo** (turn 1): first question"},
        {"role": "user", "content": "second question"},
    ]

    tg.private_message(alice, "/model")
    menu = await says(tg, 5001, "Pick a model:", after=menu.message_id)
    assert "✓ openai:gpt-4" in tg.buttons(5001, menu.message_id)
    tg.press(alice, menu, "default")
    await becomes(tg, menu, "Back to the default")
    third = tg.private_message(alice, "third question")
    await answer_to(tg, third, bot)
    assert asked(fake)[-1].path == CONVERSATION_PATH
    assert asked(fake)[-1].json == {"content": "third question"}


async def test_a_model_the_key_may_not_use_is_refused_and_the_chat_stays(tg, fake, bot):
    alice = tg.user(5002)
    tg.private_message(alice, "/model")
    menu = await says(tg, 5002, "Pick a model:")
    tg.press(alice, menu, "anthropic:claude-1")  # the fake's key may not use it: 403
    refused = await becomes(tg, menu, "may not use anthropic:claude-1")
    assert "stays on the default" in (refused.text or "")
    assert "The default always works." in (refused.text or "")
    tg.private_message(alice, "/model openai:gpt-4")
    await says(tg, 5002, "Now using openai:gpt-4.")
    tg.private_message(alice, "/model anthropic:claude-1")
    refused = await says(tg, 5002, "stays on openai:gpt-4")
    question = tg.private_message(alice, "still there?")
    await answer_to(tg, question, bot)
    assert asked(fake)[-1].json["model"] == "openai:gpt-4"
    assert (await bot.conversations.settings(ChatKey("telegram", "5002"))).model == "openai:gpt-4"


@pytest.mark.parametrize("settings_toml", ["[conversation]\nhistory_chars = 500"])
async def test_system_prompt_goes_first_and_survives_trimming(tg, fake, bot):
    alice = tg.user(5003)
    tg.private_message(alice, "/system")
    shown = await says(tg, 5003, "No system prompt is set.")
    assert "It applies in completions mode" in (shown.text or "")  # the chat is in server mode
    tg.private_message(alice, "/model openai:gpt-4")
    await says(tg, 5003, "Now using openai:gpt-4.")
    tg.private_message(alice, "/system Answer like a pirate.\nKeep it short.")
    await says(tg, 5003, "System prompt set.")
    tg.private_message(alice, "/system")
    shown = await says(tg, 5003, "System prompt (used with /model")
    assert (shown.text or "").endswith("Answer like a pirate.\nKeep it short.")
    assert "It applies in completions mode" not in (shown.text or "")
    system = {"role": "system", "content": "Answer like a pirate.\nKeep it short."}
    long_one = "tell me about ships " * 10  # 200 characters: two turns overflow 500
    first = tg.private_message(alice, long_one.strip())
    await answer_to(tg, first, bot)
    second = tg.private_message(alice, "and " + long_one.strip())
    await answer_to(tg, second, bot)
    third = tg.private_message(alice, "short one")
    await answer_to(tg, third, bot)
    requests = asked(fake)
    assert requests[0].json["messages"][0] == system
    assert requests[1].json["messages"][0] == system
    trimmed = requests[2].json["messages"]
    assert trimmed[0] == system  # kept, while the oldest turn went
    assert [m["role"] for m in trimmed] == ["system", "user", "assistant", "user"]
    assert trimmed[1]["content"] == "and " + long_one.strip()
    tg.private_message(alice, "/system reset")
    await says(tg, 5003, "System prompt reset to the default.")
    fourth = tg.private_message(alice, "plain again")
    await answer_to(tg, fourth, bot)
    assert asked(fake)[-1].json["messages"][0]["role"] == "user"


async def test_history_lists_both_modes_newest_first(tg, fake, bot):
    alice = tg.user(5004)
    tg.private_message(alice, "/history")
    await says(tg, 5004, "No conversations yet.")
    await answer_to(tg, tg.private_message(alice, "on the server"), bot)
    tg.private_message(alice, "/model openai:gpt-4")
    await says(tg, 5004, "Now using openai:gpt-4.")
    await answer_to(tg, tg.private_message(alice, "kept by the bot"), bot)
    tg.private_message(alice, "/history")
    listing = await says(tg, 5004, "Your last conversations:")
    lines = (listing.text or "").splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("1. Untitled · ")
    assert lines[1].endswith(" · openai:gpt-4 · current")
    assert lines[2].startswith("2. Untitled · ")
    assert lines[2].endswith(" · conversation")


async def test_resume_switches_between_modes_and_refuses_expired(tg, fake, bot, core_clock):
    alice = tg.user(5005)
    await answer_to(tg, tg.private_message(alice, "server talk"), bot)
    server_id = fake.requests[0].response_conversation_id
    tg.private_message(alice, "/model openai:gpt-4")
    await says(tg, 5005, "Now using openai:gpt-4.")
    await answer_to(tg, tg.private_message(alice, "local talk"), bot)
    tg.private_message(alice, "/reset")
    reset = await says(tg, 5005, "Started a new conversation.")

    tg.private_message(alice, "/resume")
    menu = await says(tg, 5005, "Pick a conversation to continue:", after=reset.message_id)
    labels = tg.buttons(5005, menu.message_id)
    assert len(labels) == 2
    assert labels[0].endswith(" · openai:gpt-4")
    assert labels[1].endswith(" · conversation")
    pressed = tg.press(alice, menu, "conversation")
    await becomes(tg, menu, 'Continuing "Untitled".')
    assert tg.answered(pressed) == {}
    await answer_to(tg, tg.private_message(alice, "server again"), bot)
    assert asked(fake)[-1].path == CONVERSATION_PATH
    assert asked(fake)[-1].json["conversationId"] == server_id

    tg.private_message(alice, "/resume")
    menu = await says(tg, 5005, "Pick a conversation to continue:", after=menu.message_id)
    tg.press(alice, menu, "openai:gpt-4")
    await becomes(tg, menu, 'Continuing "Untitled".')
    await answer_to(tg, tg.private_message(alice, "local again"), bot)
    assert asked(fake)[-1].json["model"] == "openai:gpt-4"
    assert asked(fake)[-1].json["messages"][0] == {"role": "user", "content": "local talk"}

    core_clock.advance(timedelta(hours=49))
    tg.private_message(alice, "/resume")
    menu = await says(tg, 5005, "Pick a conversation to continue:", after=menu.message_id)
    assert tg.buttons(5005, menu.message_id)[1].endswith(" · conversation · expired")
    pressed = tg.press(alice, menu, "expired")
    await tg.wait_for(lambda f: f.answered(pressed) is not None)
    assert "has expired" in tg.answered(pressed)["text"]
    assert len(tg.buttons(5005, menu.message_id)) == 2  # still there: pick another
    tg.private_message(alice, "/resume 2")
    await says(tg, 5005, "has expired", after=menu.message_id)
    await answer_to(tg, tg.private_message(alice, "still local"), bot)
    assert asked(fake)[-1].path == COMPLETIONS_PATH


async def test_resume_with_nothing_to_resume(tg, fake, bot):
    tg.private_message(tg.user(5006), "/resume")
    await says(tg, 5006, "Nothing to resume yet.")


async def test_usage_counts_billed_and_streamed_characters(tg, fake, bot):
    alice = tg.user(5007)
    fake.enqueue(Script(reply="short", full_content="the billed content"))  # 18 characters
    await answer_to(tg, tg.private_message(alice, "server"), bot)
    tg.private_message(alice, "/model openai:gpt-4")
    await says(tg, 5007, "Now using openai:gpt-4.")
    fake.enqueue(Script(reply="streamed!"), endpoint="completions")  # 9 characters
    await answer_to(tg, tg.private_message(alice, "local"), bot)
    tg.private_message(alice, "/usage")
    usage = await says(tg, 5007, "Your usage:")
    assert usage.text == (
        "Your usage: today 2 requests, 27 characters; this month 2 requests, 27 characters."
    )
    tg.private_message(tg.user(5008), "/usage")
    other = await says(tg, 5008, "Your usage:")
    assert "today 0 requests, 0 characters" in (other.text or "")


@pytest.mark.parametrize("settings_toml", ["admin_user_ids = [5010]"])
async def test_stats_are_for_admins_only(tg, fake, bot):
    await answer_to(tg, tg.private_message(tg.user(5009), "hello"), bot)
    tg.private_message(tg.user(5009), "/stats")
    await says(tg, 5009, "Only the bot's admins can see that.")
    tg.private_message(tg.user(5010), "/stats")
    stats = await says(tg, 5010, "Usage (Telegram):")
    lines = (stats.text or "").splitlines()
    assert lines[1].startswith("Today: 1 requests, ")
    assert "telegram:5009: 1 requests" in (stats.text or "")


@pytest.mark.parametrize("settings_toml", ["[limits]\nrequests_per_minute = 1"])
async def test_a_user_over_the_rate_limit_is_refused_without_a_kamiya_request(tg, fake, bot):
    alice = tg.user(5011)
    await answer_to(tg, tg.private_message(alice, "one"), bot)
    refused = tg.private_message(alice, "two")
    (line,) = await answer_to(tg, refused, bot)
    assert "limit of 1 messages a minute" in (line.text or "")
    assert "continue in" in (line.text or "")
    assert len(fake.requests) == 1


async def test_controls_speak_chinese_to_a_chinese_user(tg, fake, bot):
    li = tg.user(5012, first_name="Li", language_code="zh-hans")
    tg.private_message(li, "/model")
    menu = await says(tg, 5012, "选择模型：")
    assert (menu.text or "").startswith("当前模型：默认")
    assert tg.buttons(5012, menu.message_id)[0] == "✓ 默认"
    tg.press(li, menu, "openai:gpt-4")
    await becomes(tg, menu, "已切换到 openai:gpt-4")
    tg.private_message(li, "/stop")
    await says(tg, 5012, "当前没有正在进行的回答。")
    tg.private_message(li, "/system")
    await says(tg, 5012, "尚未设置系统提示词。")
    tg.private_message(li, "/usage")
    await says(tg, 5012, "你的用量：今天 0 次请求")
    tg.private_message(li, "/stats")
    await says(tg, 5012, "只有机器人管理员可以查看。")
    await idle(bot)
