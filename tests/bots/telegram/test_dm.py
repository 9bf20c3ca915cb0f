"""Private chats end to end: drafts, edits, ids, reset, restart, order, faults, bad input."""

from __future__ import annotations

import asyncio
import gc
import itertools
from typing import TYPE_CHECKING

import pytest

from bots.telegram.format import split
from core.fake_kamiya import Script

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram


def rendered(markdown: str) -> list[str]:
    return [chunk.text for chunk in split(markdown)]


async def reply_shown(tg: FakeTelegram, chat_id: int, n: int = 1) -> list[str]:
    await tg.wait_for(lambda f: len(f.visible(chat_id)) >= n)
    return tg.visible_texts(chat_id)


async def test_dm_round_trip_streams_a_draft_then_commits_full_content(tg, fake, bot):
    reply = "Hello **there**! Here is `code` and a [link](https://example.org)."
    fake.enqueue(Script(reply=reply, chunk_chars=3, delay_s=0.02, full_content=reply + " Done."))
    alice = tg.user(1001)
    tg.private_message(alice, "hi")
    texts = await reply_shown(tg, 1001)
    assert texts == rendered(reply + " Done.")
    assert tg.drafts(1001)  # it streamed as a draft first
    assert tg.calls_of("sendChatAction")
    assert len(tg.calls_of("sendMessage")) == 1
    assert not tg.calls_of("editMessageText")
    assert fake.requests[0].json == {"content": "hi"}


async def test_a_reply_leaves_no_http_or_retry_objects_in_reference_cycles(tg, fake, bot):
    # bench.load at 1,000 chats: each Kamiya and Bot API request left its httpx response in a
    # reference cycle, and each call a stamina retry context; the collections that freed them
    # paused the event loop, and every reply with it, for up to 0.5 s.
    alice = tg.user(1050)
    tg.private_message(alice, "warm up")
    await reply_shown(tg, 1050, 1)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        tg.private_message(alice, "and again")
        await reply_shown(tg, 1050, 2)
        gc.collect()
        cyclic = {f"{type(o).__module__}.{type(o).__name__}" for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not {name for name in cyclic if name.startswith(("httpx", "tenacity", "stamina"))}


async def test_conversation_id_is_reused_and_reset_starts_fresh(tg, fake, bot):
    alice = tg.user(1002)
    tg.private_message(alice, "one")
    await reply_shown(tg, 1002, 1)
    tg.private_message(alice, "two")
    await reply_shown(tg, 1002, 2)
    first_id = fake.requests[0].response_conversation_id
    assert fake.requests[1].json["conversationId"] == first_id
    tg.private_message(alice, "/reset")
    await tg.wait_for(lambda f: any("new conversation" in t for t in f.visible_texts(1002)))
    tg.private_message(alice, "three")
    await reply_shown(tg, 1002, 4)
    assert "conversationId" not in fake.requests[2].json


async def test_restart_keeps_the_conversation(tg, fake, make_bot):
    alice = tg.user(1003)
    async with make_bot():
        tg.private_message(alice, "remember")
        await reply_shown(tg, 1003, 1)
    async with make_bot():
        tg.private_message(alice, "still?")
        await reply_shown(tg, 1003, 2)
    assert fake.requests[1].json["conversationId"] == fake.requests[0].response_conversation_id


async def test_two_users_in_parallel(tg, fake, bot):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="for one", gate=gate), Script(reply="for two", gate=gate))
    tg.private_message(tg.user(2001), "a")
    tg.private_message(tg.user(2002), "b")
    await fake.wait_for_requests(2)
    assert fake.in_flight == 2
    gate.set()
    await reply_shown(tg, 2001)
    await reply_shown(tg, 2002)


async def test_three_rapid_messages_are_answered_in_order(tg, fake, bot):
    alice = tg.user(1004)
    fake.enqueue(*(Script(reply=f"answer {i}", delay_s=0.01) for i in range(3)))
    for i in range(3):
        tg.private_message(alice, f"question {i}")
    texts = await reply_shown(tg, 1004, 3)
    assert texts == ["answer 0", "answer 1", "answer 2"]
    assert [r.json["content"] for r in fake.requests] == [f"question {i}" for i in range(3)]
    assert fake.overlaps == []


async def test_long_reply_is_split_and_reads_as_full_content(tg, fake, bot):
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 6
    reply = "\n\n".join(f"{i}. {paragraph}" for i in range(27))  # about 9,000 characters
    reply += "\n\n```python\n" + "print('x')\n" * 60 + "```\n"
    assert len(reply) > 9000
    fake.enqueue(Script(reply=reply, chunk_chars=200))
    tg.private_message(tg.user(1005), "long please")
    expected = rendered(reply)
    texts = await reply_shown(tg, 1005, len(expected))
    assert texts == expected
    assert all(len(t.encode("utf-16-le")) // 2 <= 4096 for t in texts)
    assert tg.count_429 == 0


@pytest.mark.parametrize("tg_drafts", [False])
async def test_refused_drafts_fall_back_to_edits_without_losing_text(tg, fake, bot):
    reply = "word " * 60
    fake.enqueue(Script(reply=reply, chunk_chars=5, delay_s=0.02))
    tg.private_message(tg.user(1006), "hi")
    await reply_shown(tg, 1006)
    await tg.wait_for(lambda f: f.visible_texts(1006) == rendered(reply))
    assert tg.calls_of("sendMessageDraft")  # it tried
    tg.private_message(tg.user(1006), "again")
    await reply_shown(tg, 1006, 2)
    drafts_after = [
        c for c in tg.calls_of("sendMessageDraft") if c.at > tg.calls_of("sendMessage")[0].at
    ]
    assert drafts_after == []  # the chat is remembered as draft-less


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Script(status=401), "not set up correctly"),
        (Script(status=402), "credit"),
        (Script(status=429, headers={"Retry-After": "30"}), "30 s"),
        (Script(status=503), "not answering"),
        (
            Script(reply="partial answer that", chunk_chars=4, delay_s=0.01, drop_after=3),
            "cut off",
        ),
    ],
)
async def test_kamiya_faults_become_one_clear_line(tg, fake, bot, script, expected):
    fake.enqueue(Script(reply="ok"), script)
    alice = tg.user(1007)
    tg.private_message(alice, "first")
    await reply_shown(tg, 1007, 1)
    stored = await bot.store.current("telegram:1007")
    tg.private_message(alice, "second")
    texts = await reply_shown(tg, 1007, 2)
    assert expected in texts[-1]
    assert "Traceback" not in texts[-1]
    assert await bot.store.current("telegram:1007") == stored


async def test_expired_conversation_restarts_and_says_so(tg, fake, bot):
    alice = tg.user(1008)
    tg.private_message(alice, "first")
    await reply_shown(tg, 1008, 1)
    fake.forget(fake.requests[0].response_conversation_id or "")
    tg.private_message(alice, "after two days")
    texts = await reply_shown(tg, 1008, 3)
    assert "expired" in texts[-1]


async def test_bad_input_gets_one_line_or_silence(tg, fake, bot):
    alice = tg.user(1009)
    tg.media_message(1009, alice, kind="sticker")
    tg.media_message(1009, alice, kind="voice")
    tg.private_message(alice, "   ")
    original = tg.private_message(alice, "hello")
    await reply_shown(tg, 1009, 3)
    tg.edited_message(original, "hello, edited")
    tg.media_message(1009, alice, kind="photo", caption="what is this?")
    texts = await reply_shown(tg, 1009, 4)
    assert texts[0].startswith("I can only read text")
    assert texts[1].startswith("I can only read text")
    assert [r.json["content"] for r in fake.requests] == ["hello", "what is this?"]
    assert len(texts) == 4


@pytest.mark.parametrize("settings_toml", ["allowed_user_ids = [77]"])
async def test_users_outside_the_allow_list_get_one_polite_refusal(tg, fake, bot):
    stranger = tg.user(1010)
    tg.private_message(stranger, "let me in")
    tg.private_message(stranger, "please")
    await reply_shown(tg, 1010, 1)
    tg.private_message(tg.user(77), "hi")
    await reply_shown(tg, 77, 1)
    assert tg.visible_texts(1010) == ["Sorry, this bot is private and not open to you."]
    assert [r.json["content"] for r in fake.requests] == ["hi"]


async def test_start_and_help_follow_the_users_language(tg, fake, bot):
    tg.private_message(tg.user(1011, language_code="zh-hans"), "/start")
    tg.private_message(tg.user(1012, language_code="en"), "/help")
    zh = await reply_shown(tg, 1011)
    en = await reply_shown(tg, 1012)
    assert "你好" in zh[0]
    assert "/reset" in en[0]
    assert fake.requests == []


async def test_command_menu_is_registered_in_english_and_chinese(tg, bot):
    calls = tg.calls_of("setMyCommands")
    languages = {c.params.get("language_code") for c in calls}
    assert languages == {None, "zh"}
    for call in calls:
        names = [c["command"] for c in call.params["commands"]]
        assert names == [
            *("start", "help", "reset", "new", "model", "system", "history", "resume"),
            *("usage", "stats", "stop"),
        ]
    zh = next(c for c in calls if c.params.get("language_code") == "zh")
    assert zh.params["commands"][4]["description"] == "查看或切换模型"


async def test_long_paste_cut_by_telegram_is_one_request(tg, fake, bot):
    alice = tg.user(1013)
    part1 = ("a" * 99 + " ") * 40  # 4000 characters
    part2 = ("b" * 99 + " ") * 40
    tg.private_message(alice, part1.strip())
    tg.private_message(alice, part2.strip())
    tg.private_message(alice, "end of paste")
    await reply_shown(tg, 1013, 1)
    assert len(fake.requests) == 1
    assert fake.requests[0].json["content"] == "\n".join(
        [part1.strip(), part2.strip(), "end of paste"]
    )


async def test_silent_kamiya_keeps_typing_and_the_thinking_draft_alive(tg, fake, bot, monkeypatch):
    monkeypatch.setattr("bots.telegram.sink.TYPING_EVERY_S", 0.2)
    monkeypatch.setattr("bots.telegram.sink.DRAFT_EVERY_S", 0.3)
    gate = asyncio.Event()
    fake.enqueue(Script(reply="finally", gate=gate))
    tg.private_message(tg.user(1014), "think hard")
    await tg.wait_for(lambda f: len(f.calls_of("sendMessageDraft")) >= 3)
    await tg.wait_for(lambda f: len(f.calls_of("sendChatAction")) >= 3)
    assert all(not c.params.get("text") for c in tg.calls_of("sendMessageDraft"))
    gate.set()
    await reply_shown(tg, 1014)
    settled = len(tg.calls_of("sendChatAction"))
    tg.private_message(tg.user(1014), "/help")  # any later call: typing has stopped
    await reply_shown(tg, 1014, 2)
    assert len(tg.calls_of("sendChatAction")) == settled


async def test_shutdown_mid_reply_says_so_and_keeps_the_conversation(tg, fake, make_bot):
    gate = asyncio.Event()
    alice = tg.user(1015)
    async with make_bot() as running:
        tg.private_message(alice, "first")
        await reply_shown(tg, 1015, 1)
        stored = await running.store.current("telegram:1015")
        fake.enqueue(Script(reply="never finished", gate=gate))
        tg.private_message(alice, "slow one")
        await fake.wait_for_requests(2)
    texts = tg.visible_texts(1015)
    assert "restarted before this reply finished" in texts[-1]
    async with make_bot() as running:
        assert await running.store.current("telegram:1015") == stored


async def test_a_bot_api_without_drafts_404_falls_back_to_edits(tg, fake, bot):
    tg.fail_next("sendMessageDraft", status=404, description="Not Found", times=50)
    reply = "word " * 30
    fake.enqueue(Script(reply=reply, chunk_chars=5, delay_s=0.01))
    tg.private_message(tg.user(1016), "hi")
    await tg.wait_for(lambda f: f.visible_texts(1016) == rendered(reply))
    assert tg.calls_of("editMessageText")  # it streamed by edits instead


@pytest.mark.parametrize("settings_toml", ["global_per_s = 1"])
async def test_typing_and_thinking_drafts_only_take_spare_bot_wide_slots(
    tg, fake, bot, monkeypatch
):
    # Found by bench.load at 1,000 chats: indicators every 4.5 s for every waiting chat were
    # 220 calls a second, far beyond the bot-wide budget. They now never exceed it.
    monkeypatch.setattr("bots.telegram.sink.TYPING_EVERY_S", 0.1)
    monkeypatch.setattr("bots.telegram.sink.DRAFT_EVERY_S", 0.1)
    gate = asyncio.Event()
    for chat in (1101, 1102, 1103):
        fake.enqueue(Script(reply="later", gate=gate))
        tg.private_message(tg.user(chat), "think")

    def indicators() -> list[float]:
        return sorted(
            call.at
            for call in tg.calls
            if call.method in {"sendChatAction", "sendMessageDraft"}
            and not call.params.get("text")
        )

    await tg.wait_for(lambda f: len(indicators()) >= 4)
    gate.set()
    for chat in (1101, 1102, 1103):
        await reply_shown(tg, chat)
    shown = indicators()
    # Unpaced, three chats asking every 0.1 s would send ~30 a second; the cap allows 1.
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(shown))
