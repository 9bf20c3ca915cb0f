"""/chat, /reset, /help end to end against the fake Discord and the fake Kamiya."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from bots.discord.format import split
from core.fake_kamiya import Script
from tests.bots.discord.harness import COMMANDS
from tests.fakes.discord import CHANNEL_ID, THREAD_ID
from tests.waiting import until

if TYPE_CHECKING:
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord, Interaction


def texts(dc: FakeDiscord, channel: int) -> list[str]:
    return [m.content for m in dc.visible(channel)]


async def settled(bot: Bot, dc: FakeDiscord, *interactions: Interaction) -> None:
    """Wait until each interaction was acknowledged and every reply has finished."""
    await dc.wait_for(lambda f: all(i.acknowledged for i in interactions))
    await until(lambda: not bot.frontend.busy, timeout=30)


async def test_commands_are_synced_globally_at_start(dc, bot):
    assert dc.syncs
    assert sorted(dc.syncs[-1].names) == COMMANDS
    assert dc.syncs[-1].guild_id is None


async def test_chat_round_trip_defers_then_edits_to_full_content(dc, fake, bot):
    reply = "Hello **there**, here is `code`."
    fake.enqueue(Script(reply=reply, chunk_chars=3, delay_s=0.02, full_content=reply + " Done."))
    interaction = dc.slash("chat", {"prompt": "say hello"})
    await settled(bot, dc, interaction)
    assert interaction.deferred
    assert texts(dc, CHANNEL_ID) == [f"> say hello\n{reply} Done."]
    assert fake.requests[0].json == {"content": "say hello"}
    assert len(interaction.original_history) >= 2  # it grew while streaming


async def test_conversation_is_reused_per_channel_and_reset_starts_fresh(dc, fake, bot):
    ran = dc.slash("chat", {"prompt": "one"})
    await settled(bot, dc, ran)
    ran = dc.slash("chat", {"prompt": "two"})
    await settled(bot, dc, ran)
    assert fake.requests[1].json["conversationId"] == fake.requests[0].response_conversation_id
    reset = dc.slash("reset")
    await settled(bot, dc, reset)
    await dc.wait_for(lambda f: reset.ephemeral and bool(reset.original))
    assert "new conversation" in (reset.original or "")
    ran = dc.slash("chat", {"prompt": "three"})
    await settled(bot, dc, ran)
    assert "conversationId" not in fake.requests[2].json


async def test_a_thread_is_its_own_conversation_and_channels_run_in_parallel(dc, fake, bot):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="in channel", gate=gate), Script(reply="in thread", gate=gate))
    ran = dc.slash("chat", {"prompt": "a"})
    await fake.wait_for_requests(1)  # the scripts go to the requests in order
    ran = dc.slash("chat", {"prompt": "b"}, thread=True)
    await fake.wait_for_requests(2)
    assert fake.in_flight == 2
    gate.set()
    await settled(bot, dc, ran)
    assert "conversationId" not in fake.requests[1].json
    assert texts(dc, CHANNEL_ID)[-1].endswith("in channel")
    assert texts(dc, THREAD_ID)[-1].endswith("in thread")
    assert await bot.store.current(f"discord:{THREAD_ID}") != await bot.store.current(
        f"discord:{CHANNEL_ID}"
    )


async def test_a_second_chat_while_streaming_is_queued_and_says_so(dc, fake, bot):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="first", gate=gate), Script(reply="second"))
    dc.slash("chat", {"prompt": "first"})
    await fake.wait_for_requests(1)
    second = dc.slash("chat", {"prompt": "second"})
    await dc.wait_for(lambda f: "Queued" in (second.original or ""))
    gate.set()
    await settled(bot, dc, second)
    assert second.original == "> second\nsecond"
    assert [r.json["content"] for r in fake.requests] == ["first", "second"]


async def test_long_reply_continues_in_followups_with_fences_intact(dc, fake, bot):
    prose = "\n\n".join(f"Paragraph {i}. " + "words and more words " * 12 for i in range(12))
    code = "```python\n" + "".join(f"print('line {i}')\n" for i in range(120)) + "```"
    reply = f"{prose}\n\n{code}\n\nThe end."
    assert len(reply) > 5000
    fake.enqueue(Script(reply=reply, chunk_chars=250))
    interaction = dc.slash("chat", {"prompt": "long"})
    await settled(bot, dc, interaction)
    shown = texts(dc, CHANNEL_ID)
    assert len(shown) >= 3
    assert all(0 < len(t) <= 2000 for t in shown)
    assert shown == [
        "> long\n" + p if i == 0 else p
        for i, p in enumerate(split(reply, first_limit=2000 - len("> long\n")))
    ]
    assert all(t.count("```") % 2 == 0 for t in shown)  # every message's fences balance
    assert len(interaction.followups) == len(shown) - 1


async def test_a_slow_stream_shows_progressive_edits_within_the_pace(dc, fake, bot):
    reply = "".join(f"tok{i} " for i in range(120))
    fake.enqueue(Script(reply=reply, chunk_chars=5, delay_s=0.03))  # about 3.5 s
    interaction = dc.slash("chat", {"prompt": "slow"})
    await settled(bot, dc, interaction)
    history = [r for r in interaction.original_history if r.action == "edit"]
    assert len(history) >= 4
    times = [r.at for r in history]
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 4.9  # never more than 5 edits in 5 s
    assert dc.count_429 == 0
    contents = [r.content for r in history]
    assert len(contents) == len(set(contents))


async def test_nobody_is_pinged_whatever_the_reply_or_prompt_says(dc, fake, bot):
    fake.enqueue(Script(reply="Hey @everyone and @here, <@123> and <@&456>!"))
    ran = dc.slash("chat", {"prompt": "ping <@789> @everyone"})
    await settled(bot, dc, ran)
    assert "@everyone" in texts(dc, CHANNEL_ID)[0]
    assert dc.pings == []


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Script(status=401), "not set up correctly"),
        (Script(status=402), "credit"),
        (Script(status=403), "may not use this model"),
        (Script(status=429, headers={"Retry-After": "20"}), "20 s"),
        (Script(status=500), "not answering"),
        (Script(reply="partial text here", chunk_chars=3, delay_s=0.01, drop_after=3), "cut off"),
        (Script(reply="garbled", malformed=True), "could not read"),
    ],
)
async def test_kamiya_faults_become_one_line_and_keep_the_conversation(
    dc, fake, bot, script, expected
):
    ran = dc.slash("chat", {"prompt": "first"})
    await settled(bot, dc, ran)
    stored = await bot.store.current(f"discord:{CHANNEL_ID}")
    fake.enqueue(script)
    ran = dc.slash("chat", {"prompt": "second"})
    await settled(bot, dc, ran)
    last = texts(dc, CHANNEL_ID)[-1]
    assert expected in last
    assert await bot.store.current(f"discord:{CHANNEL_ID}") == stored


async def test_chinese_locale_gets_chinese_texts(dc, fake, bot):
    fake.enqueue(Script(status=402))
    ran = dc.slash("chat", {"prompt": "你好"}, locale="zh-CN")
    await settled(bot, dc, ran)
    assert "额度" in texts(dc, CHANNEL_ID)[-1]


async def test_prompt_over_4000_characters_is_refused_ephemerally(dc, fake, bot):
    interaction = dc.slash("chat", {"prompt": "x" * 4001})
    await dc.wait_for(lambda f: interaction.acknowledged)
    assert interaction.ephemeral
    assert "too long" in (interaction.original or "")
    assert fake.requests == []


async def test_help_is_ephemeral(dc, fake, bot):
    interaction = dc.slash("help")
    await dc.wait_for(lambda f: interaction.acknowledged)
    assert interaction.ephemeral
    assert "/chat" in (interaction.original or "")


async def test_reply_survives_a_gateway_reconnect(dc, fake, bot):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="still here after the reconnect", chunk_chars=4, gate=gate))
    ran = dc.slash("chat", {"prompt": "hold on"})
    await fake.wait_for_requests(1)
    await dc.disconnect()
    gate.set()
    await settled(bot, dc, ran)
    assert texts(dc, CHANNEL_ID) == ["> hold on\nstill here after the reconnect"]


async def test_a_code_block_the_model_never_closed_still_renders_closed(dc, fake, bot):
    fake.enqueue(Script(reply="Here:\n```python\nprint('hi')", chunk_chars=5))
    ran = dc.slash("chat", {"prompt": "code"})
    await settled(bot, dc, ran)
    assert ran.original == "> code\nHere:\n```python\nprint('hi')\n```"
