"""/model, /system, /history, /resume, /usage, /stats and per-user limits, end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH, Script
from tests.bots.discord.harness import run, settled
from tests.fakes.discord import ALICE, BOB, CHANNEL_ID

if TYPE_CHECKING:
    from core.fake_kamiya import FakeKamiya, RecordedRequest
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord, Interaction, User
    from tests.fakes.discord_payloads import JsonObject

GPT4 = "openai:gpt-4"
KEY = f"discord:{CHANNEL_ID}"


def asked(fake: FakeKamiya) -> list[RecordedRequest]:
    """Requests that answered users: not the one-token probes of a model switch."""
    return [r for r in fake.requests if "max_tokens" not in r.json]


async def chat(
    bot: Bot, dc: FakeDiscord, prompt: str, *, user: User = ALICE, locale: str = "en-US"
) -> Interaction:
    ran = dc.slash("chat", {"prompt": prompt}, user=user, locale=locale)
    await settled(bot, dc, ran)
    return ran


async def choices(
    dc: FakeDiscord, command: str, option: str, typed: str, *, locale: str = "en-US"
) -> list[JsonObject]:
    """What autocomplete offers while the user has typed ``typed`` into ``option``."""
    typing = dc.autocomplete(command, {option: typed}, focused=option, locale=locale)
    await dc.wait_for(lambda f: typing.acknowledged)
    assert typing.response_type == 8
    return typing.choices or []


# /model


async def test_switching_to_a_model_and_back_keeps_each_modes_conversation(dc, fake, bot):
    await chat(bot, dc, "in server mode")
    server_id = fake.requests[0].response_conversation_id
    assert await run(dc, "model", {"name": GPT4}) == (
        f"Now using {GPT4}. I keep this chat's history myself and send it with each message."
    )
    probe = fake.requests[-1]
    assert (probe.path, probe.json["model"], probe.json["max_tokens"]) == (
        COMPLETIONS_PATH,
        GPT4,
        1,
    )
    await chat(bot, dc, "one")
    await chat(bot, dc, "two")
    one, two = asked(fake)[-2:]
    assert (two.path, two.json["model"], two.json["stream"]) == (COMPLETIONS_PATH, GPT4, True)
    assert one.json["messages"] == [{"role": "user", "content": "one"}]
    assert two.json["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "**Echo** (turn 1): one"},
        {"role": "user", "content": "two"},
    ]
    assert await run(dc, "model") == f"Model: {GPT4}."
    assert await run(dc, "model", {"name": "default"}) == (
        "Back to the default: Kamiya's own conversation."
    )
    await chat(bot, dc, "back")
    back = fake.requests[-1]
    assert (back.path, back.conversation_id) == (CONVERSATION_PATH, server_id)
    assert await run(dc, "model", {"name": "gpt-4"}) == (  # the bare name will do
        f"Now using {GPT4}. I keep this chat's history myself and send it with each message."
    )
    await chat(bot, dc, "three")
    assert [m["content"] for m in asked(fake)[-1].json["messages"]][-1] == "three"
    assert len(asked(fake)[-1].json["messages"]) == 5  # one, two and their answers, three


async def test_model_autocomplete_offers_default_first_and_marks_the_current_one(dc, fake, bot):
    offered = await choices(dc, "model", "name", "")
    assert [c["value"] for c in offered] == [
        "default",
        "openai:gpt-3.5-turbo",
        GPT4,
        "anthropic:claude-1",
    ]
    assert offered[0]["name"].startswith("default · the default (Kamiya's conversation")
    assert offered[0]["name"].endswith(" · current")
    await run(dc, "model", {"name": GPT4})
    offered = await choices(dc, "model", "name", "GPT")
    assert [(c["name"], c["value"]) for c in offered] == [
        ("openai:gpt-3.5-turbo", "openai:gpt-3.5-turbo"),
        (f"{GPT4} · current", GPT4),
    ]


async def test_a_model_the_key_may_not_use_is_refused_and_the_channel_stays(dc, fake, bot):
    await run(dc, "model", {"name": GPT4})
    refused = await run(dc, "model", {"name": "anthropic:claude-1"})
    assert refused == (
        f"The bot's Kamiya key may not use anthropic:claude-1, so the chat stays on {GPT4}. "
        "The default always works."
    )
    assert await run(dc, "model") == f"Model: {GPT4}."
    await chat(bot, dc, "still gpt-4?")
    assert asked(fake)[-1].json["model"] == GPT4


async def test_an_unknown_model_lists_the_choices(dc, fake, bot):
    answer = await run(dc, "model", {"name": "gpt-9"})
    assert answer == (
        'Unknown model "gpt-9". Available: default, openai:gpt-3.5-turbo, openai:gpt-4, '
        "anthropic:claude-1."
    )
    assert fake.requests == []


# /system


@pytest.mark.parametrize("settings_toml", ["[conversation]\nhistory_chars = 500"])
async def test_the_system_prompt_is_sent_and_kept_when_history_is_trimmed(dc, fake, bot):
    await run(dc, "model", {"name": GPT4})
    assert await run(dc, "system", {"text": "You are terse."}) == "System prompt set."
    assert await run(dc, "system") == (
        "System prompt (used with /model other than the default):\nYou are terse."
    )
    long = "x" * 200
    fake.enqueue(*(Script(reply=long) for _ in range(4)), endpoint="completions")
    for n in range(4):
        await chat(bot, dc, f"question {n}")
    messages = asked(fake)[-1].json["messages"]
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert messages[-1] == {"role": "user", "content": "question 3"}
    assert {"role": "user", "content": "question 0"} not in messages  # trimmed, oldest first
    assert sum(len(m["content"]) for m in messages) <= 500
    assert await run(dc, "system", {"text": "reset"}) == "System prompt reset to the default."
    assert await run(dc, "system") == "No system prompt is set. Set one with /system <text>."
    await chat(bot, dc, "no system now")
    assert asked(fake)[-1].json["messages"][0]["role"] == "user"


async def test_system_in_server_mode_says_where_it_applies(dc, fake, bot):
    assert await run(dc, "system", {"text": "Be kind."}) == (
        "System prompt set.\nIt applies in completions mode (pick a model with /model); "
        "the default conversation has its own."
    )


# /history and /resume


async def test_history_lists_the_channels_conversations_newest_first(dc, fake, bot):
    assert await run(dc, "history") == "No conversations yet."
    await chat(bot, dc, "first")
    await run(dc, "reset")
    await run(dc, "model", {"name": GPT4})
    await chat(bot, dc, "second")
    lines = (await run(dc, "history")).splitlines()
    assert lines[0] == "Your last conversations:"
    assert len(lines) == 3
    assert lines[1].startswith("1. Untitled · ")
    assert lines[1].endswith(f" · {GPT4} · current")
    assert lines[2].startswith("2. Untitled · ")
    assert lines[2].endswith(" UTC · conversation")


async def test_resume_picks_a_server_conversation_from_autocomplete(dc, fake, bot):
    await chat(bot, dc, "first")
    first_id = fake.requests[-1].response_conversation_id
    await run(dc, "reset")
    await chat(bot, dc, "second")
    offered = await choices(dc, "resume", "conversation", "")
    assert [c["value"] for c in offered] == [fake.requests[-1].response_conversation_id, first_id]
    assert offered[0]["name"].endswith(" · current")
    assert all(len(c["name"]) <= 100 for c in offered)
    answer = await run(dc, "resume", {"conversation": offered[1]["value"]})
    assert answer == 'Continuing "Untitled".'
    await chat(bot, dc, "third")
    assert fake.requests[-1].conversation_id == first_id
    again = await run(dc, "resume", {"conversation": first_id})
    assert again == '"Untitled" is already the current conversation.'


async def test_resume_switches_to_a_completions_conversation_and_its_model(dc, fake, bot):
    await run(dc, "model", {"name": GPT4})
    await chat(bot, dc, "c1")
    await run(dc, "reset")
    await chat(bot, dc, "c2")
    await run(dc, "model", {"name": "default"})
    offered = await choices(dc, "resume", "conversation", "gpt-4")
    assert len(offered) == 2
    assert all(GPT4 in c["name"] for c in offered)
    older = offered[1]["value"]
    assert older.startswith("local-")
    assert await run(dc, "resume", {"conversation": older}) == 'Continuing "Untitled".'
    await chat(bot, dc, "c3")
    assert asked(fake)[-1].json["messages"] == [
        {"role": "user", "content": "c1"},
        {"role": "assistant", "content": "**Echo** (turn 1): c1"},
        {"role": "user", "content": "c3"},
    ]


async def test_expired_conversations_are_listed_but_cannot_be_resumed(dc, fake, bot, clock):
    await chat(bot, dc, "old")
    old_id = fake.requests[-1].response_conversation_id
    await run(dc, "reset")
    clock.advance(hours=49)
    offered = await choices(dc, "resume", "conversation", "")
    assert [c["value"] for c in offered] == [old_id]
    assert offered[0]["name"].endswith(" · expired")
    answer = await run(dc, "resume", {"conversation": old_id})
    assert answer == (
        '"Untitled" has expired (Kamiya keeps conversations for 48 hours), so it can\'t be '
        "continued."
    )
    await chat(bot, dc, "new")
    assert fake.requests[-1].conversation_id is None


async def test_resume_with_nothing_to_resume_or_a_typed_unknown_id(dc, fake, bot):
    assert await choices(dc, "resume", "conversation", "") == []
    assert await run(dc, "resume", {"conversation": "whatever"}) == "Nothing to resume yet."
    await chat(bot, dc, "one")
    answer = await run(dc, "resume", {"conversation": "not-an-id"})
    assert answer == "That conversation is not in this chat's history."


# /usage, /stats, limits


async def test_usage_counts_the_billed_characters_of_the_callers_replies(dc, fake, bot):
    fake.enqueue(Script(reply="short", full_content="a" * 1234))
    fake.enqueue(Script(reply="other", full_content="b" * 66))
    await chat(bot, dc, "one")
    await chat(bot, dc, "two", user=BOB)
    mine = await run(dc, "usage")
    assert mine == (
        "Your usage: today 1 requests, 1234 characters; this month 1 requests, 1234 characters."
    )
    assert "66 characters" in await run(dc, "usage", user=BOB)


@pytest.mark.parametrize("settings_toml", [f"admin_user_ids = [{ALICE.id}]"])
async def test_stats_are_for_admins_only(dc, fake, bot):
    fake.enqueue(Script(reply="r", full_content="c" * 10))
    await chat(bot, dc, "one")
    stats = (await run(dc, "stats")).splitlines()
    assert stats[0] == "Usage (discord):"
    assert stats[1] == "Today: 1 requests, 10 billed + 0 streamed characters"
    assert stats[-1] == f"{KEY}: 1 requests, 10 characters"
    assert await run(dc, "stats", user=BOB) == "Only the bot's admins can see that."


@pytest.mark.parametrize("settings_toml", ["[limits]\nrequests_per_minute = 1"])
async def test_a_user_over_the_per_minute_limit_is_refused_without_a_request(dc, fake, bot):
    await chat(bot, dc, "one")
    refused = await chat(bot, dc, "two")
    assert "You have reached the limit of 1 messages a minute. You can continue in" in (
        refused.original or ""
    )
    assert len(fake.requests) == 1
    await chat(bot, dc, "bob may", user=BOB)
    assert len(fake.requests) == 2


# Chinese


async def test_chinese_clients_get_chinese_controls_and_buttons(dc, fake, bot):
    zh = "zh-CN"
    assert await run(dc, "history", locale=zh) == "还没有对话。"
    assert await run(dc, "stop", locale=zh) == "当前没有正在进行的回答。"
    default = "默认（Kamiya 对话，由服务器保存上下文）"
    assert await run(dc, "model", locale=zh) == f"当前模型：{default}。"
    offered = await choices(dc, "model", "name", "", locale=zh)
    assert offered[0]["name"] == f"default · {default} · 当前"
    assert (await run(dc, "model", {"name": GPT4}, locale=zh)).startswith(f"已切换到 {GPT4}")
    ran = await chat(bot, dc, "你好", locale=zh)
    assert ran.original_message is not None
    buttons = ran.original_message.components[0]["components"]
    assert [(b["label"], b["emoji"]["name"]) for b in buttons] == [("重新生成", "🔄")]


async def test_control_commands_and_options_are_described_in_chinese(dc, bot):
    commands = {c["name"]: c for c in dc.syncs[-1].commands}
    assert commands["model"]["description_localizations"]["zh-CN"] == "查看或切换本频道的模型"
    [name] = commands["model"]["options"]
    assert name["autocomplete"] is True
    assert name["required"] is False
    assert name["description_localizations"]["zh-CN"].startswith("default 或要切换")
    [conversation] = commands["resume"]["options"]
    assert (conversation["autocomplete"], conversation["required"]) == (True, True)
    for command in commands.values():
        assert command["description_localizations"]["zh-CN"]
