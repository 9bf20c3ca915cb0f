"""Stop and Regenerate buttons, /stop, and replying to an earlier answer to continue it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH, Script
from tests.bots.telegram.chat import answer_to, asked, button_data, idle, says
from tests.waiting import until

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.telegram_text import JsonObject

GROUP = -100700
BOT = "@kamiya_test_bot"
STALE = "That button is no longer valid."
LONG = "".join(f"word{i} " for i in range(300))  # 300 deltas of 6: seconds of streaming


async def test_stop_button_cuts_a_streaming_group_reply(tg, fake, bot):
    fake.enqueue(Script(reply=LONG, chunk_chars=6, delay_s=0.02))
    alice = tg.user(6001)
    question = tg.group_message(GROUP, alice, f"{BOT} talk a lot")
    await tg.wait_for(lambda f: any(f.buttons(GROUP, m.message_id) for m in f.visible(GROUP)))
    streaming = tg.visible(GROUP)[0]
    assert tg.buttons(GROUP, streaming.message_id) == ["⏹ Stop"]
    pressed_at = time.monotonic()
    pressed = tg.press(alice, streaming, "Stop")
    (stopped,) = await answer_to(tg, question, bot)
    assert tg.answered(pressed) == {}
    text = stopped.text or ""
    assert "[stopped]" in text
    assert text.endswith("⏹ Stopped.")  # a first reply: no conversation to continue
    assert text.startswith("word0")
    assert len(text) < len(LONG)
    assert tg.buttons(GROUP, stopped.message_id) == []  # the final state has no Stop
    request = fake.requests[0]
    await until(lambda: request.finished is not None)
    assert request.finished is not None
    assert request.finished - pressed_at < 2  # the whole answer would take 6 s
    assert await bot.store.current(f"telegram:{GROUP}") is None  # a stop stores nothing
    again = tg.group_message(GROUP, alice, f"{BOT} short please")
    (reply,) = await answer_to(tg, again, bot)
    assert reply.text == "Echo (turn 1): short please"


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_every_message_of_a_long_streaming_reply_has_stop_until_the_end(tg, fake, bot):
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8
    reply = "\n\n".join(paragraph for _ in range(16))  # over 7,000 characters: two messages
    fake.enqueue(Script(reply=reply, chunk_chars=150, delay_s=0.1))  # about 5 s
    question = tg.private_message(tg.user(6002), "long please")
    messages = await answer_to(tg, question, bot, n=2)
    assert len(messages) == 2
    assert [tg.buttons(6002, m.message_id) for m in messages] == [[], []]
    with_stop = {
        c.result["message_id"]
        for c in tg.calls
        if c.method in ("sendMessage", "editMessageText")
        and c.ok
        and c.chat_id == 6002
        and "reply_markup" in c.params
    }
    assert with_stop == {m.message_id for m in messages}  # both had Stop while streaming


async def test_stop_command_stops_a_draft_reply(tg, fake, bot):
    fake.enqueue(Script(reply=LONG, chunk_chars=6, delay_s=0.02))
    alice = tg.user(6003)
    question = tg.private_message(alice, "talk a lot")
    await tg.wait_for(lambda f: any(f.drafts(6003)))
    assert not tg.calls_of("editMessageText")  # drafts: no message to put a button on
    tg.private_message(alice, "/stop")
    (stopped,) = await answer_to(tg, question, bot)
    assert "[stopped]" in (stopped.text or "")
    assert tg.buttons(6003, stopped.message_id) == []
    tg.private_message(alice, "/stop")
    await says(tg, 6003, "Nothing is being answered right now.")


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_stop_after_the_reply_finished_is_stale(tg, fake, bot):
    alice = tg.user(6004)
    fake.enqueue(Script(reply="some words " * 20, chunk_chars=8, delay_s=0.02))
    (reply,) = await answer_to(tg, tg.private_message(alice, "hi"), bot)
    (stop,) = set(button_data(tg, "sendMessage", "s:"))
    pressed = tg.callback_query(alice, reply, stop)
    await tg.wait_for(lambda f: f.answered(pressed) is not None)
    assert tg.answered(pressed) == {"text": STALE}
    assert tg.message(6004, reply.message_id).text == reply.text  # untouched


async def switch_to_gpt4(tg: FakeTelegram, chat: int, user: JsonObject) -> None:
    tg.private_message(user, "/model openai:gpt-4")
    await says(tg, chat, "Now using openai:gpt-4.")


async def test_regenerate_answers_the_last_message_again_and_replaces_the_turn(tg, fake, bot):
    alice = tg.user(6005)
    await switch_to_gpt4(tg, 6005, alice)
    (first,) = await answer_to(tg, tg.private_message(alice, "q1"), bot)
    assert tg.buttons(6005, first.message_id) == ["🔄 Regenerate"]
    asked_q2 = tg.private_message(alice, "q2")
    (second,) = await answer_to(tg, asked_q2, bot)
    assert tg.buttons(6005, first.message_id) == []  # only the latest reply may regenerate
    assert tg.buttons(6005, second.message_id) == ["🔄 Regenerate"]

    fake.enqueue(Script(reply="a better answer"), endpoint="completions")
    pressed = tg.press(alice, second, "Regenerate")
    again = await says(tg, 6005, "a better answer", after=second.message_id)
    await idle(bot)
    assert tg.answered(pressed) == {}
    assert again.reply_to == asked_q2["message_id"]
    assert tg.buttons(6005, second.message_id) == []
    assert tg.buttons(6005, again.message_id) == ["🔄 Regenerate"]
    assert asked(fake)[-1].json["messages"] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "**Echo** (turn 1): q1"},
        {"role": "user", "content": "q2"},
    ]
    state = await bot.store.state("telegram:6005")
    assert state.local_id is not None
    turns = await bot.store.turns(state.local_id)
    assert [(t.user, t.assistant) for t in turns] == [
        ("q1", "**Echo** (turn 1): q1"),
        ("q2", "a better answer"),
    ]
    (third,) = await answer_to(tg, tg.private_message(alice, "q3"), bot)
    assert asked(fake)[-1].json["messages"][3] == {
        "role": "assistant",
        "content": "a better answer",
    }
    assert tg.buttons(6005, again.message_id) == []
    assert tg.buttons(6005, third.message_id) == ["🔄 Regenerate"]


async def test_a_failed_regenerate_gives_the_button_back(tg, fake, bot):
    alice = tg.user(6011)
    await switch_to_gpt4(tg, 6011, alice)
    (reply,) = await answer_to(tg, tg.private_message(alice, "q1"), bot)
    fake.enqueue(Script(status=503), endpoint="completions")
    tg.press(alice, reply, "Regenerate")
    failed = await says(tg, 6011, "not answering", after=reply.message_id)
    await idle(bot)
    assert tg.buttons(6011, failed.message_id) == []
    assert tg.buttons(6011, reply.message_id) == ["🔄 Regenerate"]
    fake.enqueue(Script(reply="second try"), endpoint="completions")
    tg.press(alice, reply, "Regenerate")
    again = await says(tg, 6011, "second try", after=failed.message_id)
    await idle(bot)
    assert tg.buttons(6011, again.message_id) == ["🔄 Regenerate"]
    assert tg.buttons(6011, reply.message_id) == []


async def test_regenerate_of_an_older_reply_is_stale(tg, fake, bot):
    alice = tg.user(6006)
    await switch_to_gpt4(tg, 6006, alice)
    (first,) = await answer_to(tg, tg.private_message(alice, "q1"), bot)
    (old,) = button_data(tg, "sendMessage", "g:")
    await answer_to(tg, tg.private_message(alice, "q2"), bot)
    requests = len(fake.requests)
    pressed = tg.callback_query(alice, first, old)  # a client that still shows the button
    await tg.wait_for(lambda f: f.answered(pressed) is not None)
    assert tg.answered(pressed) == {"text": STALE}
    await idle(bot)
    assert len(fake.requests) == requests


async def test_regenerate_buttons_go_when_the_conversation_changes(tg, fake, bot):
    alice = tg.user(6007)
    await switch_to_gpt4(tg, 6007, alice)
    (reply,) = await answer_to(tg, tg.private_message(alice, "q1"), bot)
    assert tg.buttons(6007, reply.message_id) == ["🔄 Regenerate"]
    tg.private_message(alice, "/reset")
    await says(tg, 6007, "Started a new conversation.")
    assert tg.buttons(6007, reply.message_id) == []
    (reply,) = await answer_to(tg, tg.private_message(alice, "q2"), bot)
    tg.private_message(alice, "/model default")
    await says(tg, 6007, "Back to the default")
    assert tg.buttons(6007, reply.message_id) == []
    (server,) = await answer_to(tg, tg.private_message(alice, "on the server"), bot)
    assert tg.buttons(6007, server.message_id) == []  # server replies cannot regenerate


async def test_regenerate_after_a_restart_is_stale_and_the_button_goes(tg, fake, make_bot):
    alice = tg.user(6008)
    async with make_bot() as running:
        await switch_to_gpt4(tg, 6008, alice)
        (reply,) = await answer_to(tg, tg.private_message(alice, "q1"), running)
    async with make_bot() as running:
        requests = len(fake.requests)
        pressed = tg.press(alice, reply, "Regenerate")
        await tg.wait_for(lambda f: f.answered(pressed) is not None)
        assert tg.answered(pressed) == {"text": STALE}
        await tg.wait_for(lambda f: f.buttons(6008, reply.message_id) == [])
        await idle(running)
        assert len(fake.requests) == requests


async def test_replying_to_an_earlier_answer_continues_its_conversation(tg, fake, bot):
    alice = tg.user(6009)
    (old,) = await answer_to(tg, tg.private_message(alice, "about cats"), bot)
    cats = fake.requests[-1].response_conversation_id
    tg.private_message(alice, "/reset")
    await says(tg, 6009, "Started a new conversation.")
    await answer_to(tg, tg.private_message(alice, "about dogs"), bot)
    assert "conversationId" not in fake.requests[-1].json
    back = tg.private_message(alice, "more about cats", reply_to=old)
    await answer_to(tg, back, bot, n=2)
    assert fake.requests[-1].json == {"content": "more about cats", "conversationId": cats}
    notice = await says(tg, 6009, "Continuing the earlier conversation")
    assert notice.text == 'Continuing the earlier conversation "Untitled".'
    follow = tg.private_message(alice, "and then?")  # the chat stays in it
    await answer_to(tg, follow, bot)
    assert fake.requests[-1].json["conversationId"] == cats


async def test_replying_to_a_completions_answer_in_a_group_continues_it(tg, fake, bot):
    alice = tg.user(6010)
    tg.group_message(GROUP, alice, "/model openai:gpt-4")
    await says(tg, GROUP, "Now using openai:gpt-4.")
    question = tg.group_message(GROUP, alice, f"{BOT} remember 42")
    (old,) = await answer_to(tg, question, bot)
    tg.group_message(GROUP, alice, "/reset")
    await says(tg, GROUP, "Started a new conversation.")
    back = tg.group_message(GROUP, alice, "what number?", reply_to=old)
    await answer_to(tg, back, bot, n=2)
    assert asked(fake)[-1].path == COMPLETIONS_PATH
    assert asked(fake)[-1].json["messages"][:2] == [
        {"role": "user", "content": "remember 42"},
        {"role": "assistant", "content": "**Echo** (turn 1): remember 42"},
    ]
    assert all(r.path != CONVERSATION_PATH for r in asked(fake))
