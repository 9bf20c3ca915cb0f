"""The fake Telegram behaves like the Bot API for a real PTB ``Bot`` and ``Application``.

Every test drives it over loopback HTTP with python-telegram-bot itself (raw httpx only for
the transport), so a behaviour proven here is one PTB sees the same way against Telegram.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CommandHandler, MessageHandler, filters

from tests.fakes.telegram import FakeTelegram, Limits
from tests.fakes.telegram_text import ApiError, auto_entities, check_markup, utf16_len

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from telegram.ext import ContextTypes

TOKEN = "123456:TEST-TOKEN"
ALICE = 42
GROUP = -1001234567890


class Clock:
    """A clock the test moves by hand, so limits are tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB warns about int ``retry_after`` unless opted in to timedelta; warnings are errors."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def tg(clock: Clock) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN, clock=clock) as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{tg.base_url}/bot") as client:
        yield client


async def test_get_me_describes_the_bot_with_privacy_mode_on(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "kamiya_test_bot", True)
    assert me.can_read_all_group_messages is False


async def test_unknown_token_is_401_and_unknown_method_is_404(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient(base_url=tg.base_url) as http:
        wrong = await http.post("/bot999:WRONG/getMe")
        unknown = await http.post(f"/bot{TOKEN}/sendTelepathy")
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_json_and_form_bodies_decode_alike_and_texts_stay_strings(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient(base_url=f"{tg.base_url}/bot{TOKEN}") as http:
        form = await http.post("/sendMessage", data={"chat_id": "7", "text": "123"})
        body = await http.post("/sendMessage", json={"chat_id": 7, "text": "true"})
    assert form.json()["result"]["text"] == "123"
    assert body.json()["result"]["text"] == "true"
    assert [call.params["chat_id"] for call in tg.calls] == [7, 7]


async def test_edits_update_the_visible_message_and_repeats_are_not_modified(
    tg: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(ALICE, "Hel")
    await bot.edit_message_text("Hello", ALICE, sent.message_id)
    with pytest.raises(BadRequest) as caught:
        await bot.edit_message_text("Hello", ALICE, sent.message_id)
    assert "message is not modified" in caught.value.message.lower()
    bold = [MessageEntity(MessageEntity.BOLD, 0, 5)]
    await bot.edit_message_text("Hello", ALICE, sent.message_id, entities=bold)  # new entities
    [shown] = tg.visible(ALICE)
    assert (shown.text, shown.edits, shown.entities[0]["type"]) == ("Hello", 2, "bold")
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", ALICE, 999)


async def test_empty_and_too_long_texts_are_refused_in_utf16_units(bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ALICE, " \n ")
    emoji = "😀" * 2048  # 2048 characters, 4096 UTF-16 units: exactly the limit
    sent = await bot.send_message(ALICE, emoji)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ALICE, emoji + "!")
    # editMessageText words both errors its own way, as Telegram does.
    with pytest.raises(BadRequest, match=r"(?i)message_too_long"):
        await bot.edit_message_text(emoji + "!", ALICE, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)text must be non-empty"):
        await bot.edit_message_text("\n", ALICE, sent.message_id)


async def test_texts_are_trimmed_so_trailing_whitespace_is_no_change(bot: Bot) -> None:
    there = MessageEntity(MessageEntity.BOLD, 5, 5)
    sent = await bot.send_message(ALICE, "  Hi there\n", entities=[there])
    assert sent.text == "Hi there"
    assert (sent.entities[0].offset, sent.entities[0].length) == (3, 5)
    moved = MessageEntity(MessageEntity.BOLD, 3, 5)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Hi there \n", ALICE, sent.message_id, entities=[moved])


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("hi", MessageEntity("sparkle", 0, 2)),
        ("hi", MessageEntity(MessageEntity.BOLD, 0, 3)),
        ("😀 hi", MessageEntity(MessageEntity.BOLD, 5, 2)),  # UTF-8 bytes, not UTF-16 units
        ("hi", MessageEntity(MessageEntity.TEXT_LINK, 0, 2)),
        ("hi", MessageEntity(MessageEntity.ITALIC, 0, 0)),
    ],
)
async def test_bad_entities_are_refused(bot: Bot, text: str, entity: MessageEntity) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(ALICE, text, entities=[entity])


async def test_parse_mode_with_unescaped_markup_is_refused(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.send_message(ALICE, "Done. *bold*", parse_mode="MarkdownV2")
    await bot.send_message(ALICE, r"Done\. *bold* `a.b` [link](https://x.org/a.b)", "MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await bot.send_message(ALICE, "<blink>hi</blink>", parse_mode="HTML")
    plain = [MessageEntity(MessageEntity.BOLD, 0, 4)]
    await bot.send_message(ALICE, "Done.", parse_mode="MarkdownV2", entities=plain)
    assert tg.visible(ALICE)[-1].parse_mode == "MarkdownV2"  # ignored, but recorded


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("a_b", "MarkdownV2", "Can't find end of Italic entity"),
        ("*a _b* c_", "MarkdownV2", "Can't find end of Italic entity"),
        ("1+1", "MarkdownV2", "Character '+' is reserved"),
        ("x\\_y *z* ||s|| __u__ ~t~\n>quote", "MarkdownV2", None),
        ("a < b", "HTML", "Unsupported start tag"),
        ("<b>x</i>", "HTML", "Unmatched end tag"),
        ("<b>x", "HTML", "Can't find end tag"),
        ('<b>x</b> <a href="https://x.org">y</a> &lt;', "HTML", None),
        ("*bold", "Markdown", "Can't find end of the entity"),
        ("*bold* _it_ `c` [l](https://x.org)", "Markdown", None),
        ("x", "Textile", "unsupported parse_mode"),
    ],
)
def test_markup_check_approximates_telegram(text: str, mode: str, error: str | None) -> None:
    if error is None:
        check_markup(text, mode)
        return
    with pytest.raises(ApiError, match=error.replace("+", r"\+")) as caught:
        check_markup(text, mode)
    assert caught.value.status == 400


async def test_drafts_only_to_private_chats_with_nonzero_ids(
    tg: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    tg.group_message(GROUP, tg.user(ALICE), "/ask hi")
    with pytest.raises(BadRequest, match=r"(?i)only to private chats"):
        await bot.send_message_draft(GROUP, 1, "Hel")
    with pytest.raises(BadRequest, match=r"(?i)invalid draft_id"):
        await bot.send_message_draft(ALICE, 0, "Hel")
    assert await bot.send_message_draft(ALICE, 7) is True  # no text: "Thinking…"
    clock.now += 2.0
    assert await bot.send_message_draft(ALICE, 7, "Hello") is True
    assert tg.drafts(ALICE) == ["", "Hello"]
    assert tg.draft_age(ALICE) == 0.0
    clock.now += 31.0
    assert tg.draft_age(ALICE) == 31.0
    assert tg.live_drafts(ALICE) == []  # lapsed after 30 s
    await bot.send_message_draft(ALICE, 7, "Hello again")
    assert [d.text for d in tg.live_drafts(ALICE)] == ["Hello again"]
    await bot.send_message(ALICE, "Hello again")
    assert tg.live_drafts(ALICE) == []  # the sent message replaced it
    assert tg.last_draft(ALICE) is not None


async def test_drafts_disabled_are_refused_for_the_fallback_to_edits(clock: Clock) -> None:
    async with (
        FakeTelegram(TOKEN, drafts_enabled=False, clock=clock) as tg,
        Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot,
    ):
        with pytest.raises(BadRequest, match=r"(?i)method is not available"):
            await bot.send_message_draft(ALICE, 1, "Hel")
        assert tg.drafts(ALICE) == []


async def test_a_burst_of_edits_gets_retry_after_and_a_penalty_window(
    tg: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    sent = await bot.send_message(ALICE, "a")
    await bot.edit_message_text("ab", ALICE, sent.message_id)
    await bot.edit_message_text("abc", ALICE, sent.message_id)  # the burst of 3 is spent
    with pytest.raises(RetryAfter) as caught:
        await bot.edit_message_text("abcd", ALICE, sent.message_id)
    assert caught.value.retry_after == dt.timedelta(seconds=1)
    await bot.send_message(ALICE + 1, "other chats are not limited")
    clock.now += 1.0
    await bot.edit_message_text("abcd", ALICE, sent.message_id)  # one token refilled
    clock.now += 0.5  # half a token: refused, and a 1 s penalty window opens
    with pytest.raises(RetryAfter):
        await bot.edit_message_text("abcde", ALICE, sent.message_id)
    clock.now += 0.5  # the bucket would allow it now; the window does not
    with pytest.raises(RetryAfter):
        await bot.edit_message_text("abcde", ALICE, sent.message_id)
    clock.now += 0.5
    await bot.edit_message_text("abcde", ALICE, sent.message_id)
    assert tg.count_429 == 3
    assert tg.visible_texts(ALICE) == ["abcde"]


async def test_a_group_gets_twenty_messages_a_minute(clock: Clock) -> None:
    fast_chat = Limits(per_chat_burst=100, per_chat_per_s=100.0)
    async with (
        FakeTelegram(TOKEN, limits=fast_chat, clock=clock) as tg,
        Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot,
    ):
        for n in range(20):
            await bot.send_message(GROUP, f"m{n}")
            clock.now += 1.0
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(GROUP, "one too many")
        assert caught.value.retry_after == dt.timedelta(seconds=40)  # first send + 60 s
        clock.now += 40.0
        await bot.send_message(GROUP, "allowed again")
        assert len(tg.visible(GROUP)) == 21


async def test_the_bot_gets_thirty_messages_a_second_and_limits_can_be_off(clock: Clock) -> None:
    async with (
        FakeTelegram(TOKEN, clock=clock) as tg,
        Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot,
    ):
        for chat in range(1, 31):
            await bot.send_message(chat, "hi")
        with pytest.raises(RetryAfter):
            await bot.send_message(31, "hi")
    async with (
        FakeTelegram(TOKEN, limits=Limits.off(), clock=clock) as tg,
        Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot,
    ):
        sent = await bot.send_message(ALICE, "0")
        for n in range(1, 40):
            await bot.edit_message_text(str(n), ALICE, sent.message_id)
        assert tg.count_429 == 0


async def test_scripted_faults_map_to_ptb_errors_then_clear(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", status=502)
    tg.fail_next("editMessageText", status=429, retry_after=3)
    with pytest.raises(NetworkError) as network:
        await bot.send_message(ALICE, "hi")
    assert not isinstance(network.value, BadRequest)
    assert "Bad Gateway" in network.value.message
    sent = await bot.send_message(ALICE, "hi")
    with pytest.raises(RetryAfter) as flood:
        await bot.edit_message_text("hi!", ALICE, sent.message_id)
    assert flood.value.retry_after == dt.timedelta(seconds=3)
    await bot.edit_message_text("hi!", ALICE, sent.message_id)
    assert [c.status for c in tg.calls_of("sendMessage")] == [502, 200]
    assert tg.count_429 == 1


async def test_a_fault_for_one_chat_leaves_other_chats_alone(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", status=502, chat_id=ALICE)
    await bot.send_message(ALICE + 1, "other chat first")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(ALICE, "hi")
    await bot.send_message(ALICE, "hi")
    assert [(c.chat_id, c.status) for c in tg.calls_of("sendMessage")] == [
        (ALICE + 1, 200),
        (ALICE, 502),
        (ALICE, 200),
    ]


async def test_a_dropped_call_is_a_network_error_with_no_answer(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.drop_next("sendMessage")
    with pytest.raises(NetworkError) as dropped:
        await bot.send_message(ALICE, "lost")
    assert not isinstance(dropped.value, BadRequest)
    assert tg.dropped == ["sendMessage"]
    assert tg.visible(ALICE) == []
    await bot.send_message(ALICE, "through")
    assert tg.visible_texts(ALICE) == ["through"]


async def test_dropping_polls_cuts_a_waiting_long_poll_and_keeps_its_updates(
    tg: FakeTelegram, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await tg.wait_for(lambda fake: fake.waiting_polls == 1)
    tg.drop_polls()
    with pytest.raises(NetworkError):
        async with asyncio.timeout(5):
            await poll
    assert tg.dropped == ["getUpdates"]
    tg.private_message(tg.user(ALICE), "after the drop")
    [update] = await bot.get_updates(timeout=5)
    assert update.message is not None
    assert update.message.text == "after the drop"


async def test_raw_updates_are_delivered_as_given_past_allowed_updates(
    tg: FakeTelegram, bot: Bot
) -> None:
    assert await bot.get_updates(timeout=0, allowed_updates=["message"]) == ()
    queued = tg.send_raw({"channel_post": {"message_id": 1}})  # no chat, no date
    async with httpx.AsyncClient(base_url=f"{tg.base_url}/bot{TOKEN}") as http:
        answer = await http.post("/getUpdates", data={"timeout": "0"})
    assert answer.json()["result"] == [queued]
    assert queued == {"update_id": queued["update_id"], "channel_post": {"message_id": 1}}
    tg.send_raw({"callback_query": {"id": "raw-press", "data": "x"}})  # no user, no message
    assert await bot.answer_callback_query("raw-press") is True  # a press, answered once
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("raw-press")


async def test_long_polling_delivers_updates_and_honours_offset(
    tg: FakeTelegram, bot: Bot
) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=0) == ()
    assert time.monotonic() - started < 1.0
    message = tg.private_message(tg.user(ALICE), "hello")
    [update] = await bot.get_updates(timeout=5)
    assert update.message is not None
    assert (update.message.text, update.message.message_id) == ("hello", message["message_id"])
    assert len(await bot.get_updates(offset=update.update_id)) == 1  # not yet confirmed
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert tg.pending_updates == []


async def test_a_pending_long_poll_wakes_on_a_new_update(tg: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.wait_for(lambda fake: fake.waiting_polls == 1)
    tg.private_message(tg.user(ALICE), "wake up")
    async with asyncio.timeout(5):
        [update] = await poll
    assert update.message is not None
    assert update.message.text == "wake up"


async def test_stop_is_quick_while_a_long_poll_waits(clock: Clock) -> None:
    tg = FakeTelegram(TOKEN, clock=clock)
    await tg.start()
    async with Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await tg.wait_for(lambda fake: fake.waiting_polls == 1)
        started = time.monotonic()
        await tg.stop()
        assert time.monotonic() - started < 1.0
        assert await poll == ()


async def test_an_application_answers_a_user_and_the_chat_shows_it(tg: FakeTelegram) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        reply = ReplyParameters(message.message_id)
        await context.bot.send_message(
            message.chat_id, f"echo: {message.text}", reply_parameters=reply
        )

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, f"args: {context.args}")

    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{tg.base_url}/bot")
        .base_file_url(f"{tg.base_url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    await app.initialize()
    await app.updater.start_polling(timeout=1)  # type: ignore[union-attr]
    await app.start()
    try:
        alice = tg.user(ALICE)
        hello = tg.private_message(alice, "hello")
        tg.private_message(alice, "/start now")
        await tg.wait_for(lambda fake: len(fake.visible(ALICE)) == 2)
    finally:
        await app.updater.stop()  # type: ignore[union-attr]
        await app.stop()
        await app.shutdown()
    first, second = tg.visible(ALICE)
    assert (first.text, first.reply_to) == ("echo: hello", hello["message_id"])
    assert second.text == "args: ['now']"
    assert tg.pending_updates == []  # both confirmed by the last getUpdates offset


async def test_commands_and_mentions_get_entities_in_utf16_units(tg: FakeTelegram) -> None:
    text = "/ask@kamiya_test_bot 😀 hi @kamiya_test_bot see https://x.org/a."
    message = tg.group_message(GROUP, tg.user(ALICE), text)
    units = text.encode("utf-16-le")
    found = [
        (e["type"], units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"))
        for e in message["entities"]
    ]
    assert found == [
        ("bot_command", "/ask@kamiya_test_bot"),
        ("mention", "@kamiya_test_bot"),
        ("url", "https://x.org/a"),
    ]


@given(st.text(alphabet="ab😀👩‍💻 é\n", max_size=12))
def test_auto_entities_point_at_the_mention_whatever_precedes_it(prefix: str) -> None:
    text = f"{prefix} @kamiya_test_bot"
    [mention] = [e for e in auto_entities(text) if e["type"] == "mention"]
    assert mention["offset"] + mention["length"] == utf16_len(text)
    assert mention["length"] == len("@kamiya_test_bot")


async def test_privacy_mode_withholds_plain_group_chatter(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user(ALICE)
    tg.group_message(GROUP, alice, "just chatting")
    tg.media_message(GROUP, alice, "sticker")
    command = tg.group_message(GROUP, alice, "/ask hi")
    mention = tg.group_message(GROUP, alice, "hey @Kamiya_Test_Bot")
    sent = await bot.send_message(GROUP, "answer", reply_parameters=ReplyParameters(1))
    reply = tg.group_message(GROUP, alice, "thanks", reply_to=tg.visible(GROUP)[0])
    assert reply["reply_to_message"]["from"]["id"] == sent.from_user.id  # type: ignore[union-attr]
    updates = await bot.get_updates(timeout=0)
    delivered = [u.message.message_id for u in updates if u.message]
    assert delivered == [command["message_id"], mention["message_id"], reply["message_id"]]
    assert [m.get("text") for m in tg.withheld] == ["just chatting", None]


async def test_forum_topics_and_media_and_edits_parse_in_ptb(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user(ALICE, username="alice")
    topic = tg.group_message(GROUP, alice, "/ask in topic", thread_id=5, is_forum=True)
    photo = tg.media_message(ALICE, alice, "photo", caption="/describe this")
    edited = tg.edited_message(tg.private_message(alice, "typo"), "fixed")
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 4
    messages = [u.message or u.edited_message for u in updates]
    by_text = {m.text or m.caption: m for m in messages if m is not None}
    in_topic = by_text["/ask in topic"]
    assert (in_topic.message_thread_id, in_topic.is_topic_message) == (5, True)
    assert in_topic.reply_to_message is not None
    assert in_topic.reply_to_message.forum_topic_created is not None  # Telegram's quirk
    assert topic["message_thread_id"] == 5
    described = by_text["/describe this"]
    assert described.photo
    assert described.caption_entities[0].type == "bot_command"
    assert photo["photo"][-1]["width"] == 800
    assert updates[-1].edited_message is not None
    assert updates[-1].edited_message.text == "fixed"
    assert edited["edit_date"] >= edited["date"]
    await bot.send_message(GROUP, "in topic", message_thread_id=5)
    assert tg.visible_texts(GROUP, thread_id=5) == ["in topic"]
    assert tg.visible_texts(GROUP, thread_id=6) == []


async def test_replies_chat_actions_deletes_and_callback_answers(
    tg: FakeTelegram, bot: Bot
) -> None:
    asked = tg.private_message(tg.user(ALICE), "question")
    sent = await bot.send_message(
        ALICE, "answer", reply_parameters=ReplyParameters(asked["message_id"])
    )
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.text == "question"
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(ALICE, "x", reply_parameters=ReplyParameters(999))
    assert await bot.send_chat_action(ALICE, "typing") is True
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(ALICE, "dancing")
    query = tg.callback_query(tg.user(ALICE), tg.visible(ALICE)[0], "again")
    assert await bot.answer_callback_query(query["id"]) is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    assert await bot.delete_message(ALICE, sent.message_id) is True
    assert tg.visible(ALICE) == []
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)


async def test_commands_are_stored_per_scope_and_language(tg: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("ask", "Ask Kamiya")])
    scope = BotCommandScopeChat(ALICE)
    await bot.set_my_commands([BotCommand("new", "Neues Gespräch")], scope, "de")
    assert [c.command for c in await bot.get_my_commands()] == ["ask"]
    assert [c.command for c in await bot.get_my_commands(scope, "de")] == ["new"]
    assert tg.commands({"type": "chat", "chat_id": ALICE}, "de")[0]["command"] == "new"
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Ask", "uppercase is not allowed")])
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()


async def test_drop_pending_updates_and_wait_for_timeouts_explain(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.private_message(tg.user(ALICE), "stale")
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == ()
    call = await tg.wait_for_call("deleteWebhook")
    assert call.params == {"drop_pending_updates": True}
    with pytest.raises(TimeoutError, match=r"sendMessage called 1 time\(s\).*getUpdates"):
        await tg.wait_for_call("sendMessage", timeout=0.05)


async def test_inline_keyboards_are_checked_shown_pressed_and_answered_once(
    tg: FakeTelegram, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Stop", callback_data="s:1")]])
    sent = await bot.send_message(ALICE, "streaming", reply_markup=keyboard)
    assert tg.buttons(ALICE, sent.message_id) == ["Stop"]
    assert sent.reply_markup == keyboard
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(ALICE, "x", reply_markup=too_long)
    wide = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="数" * 22)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):  # 66 bytes, 22 characters
        await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=wide)
    with pytest.raises(ValueError, match="no single button 'Go'"):
        tg.press(tg.user(ALICE), tg.visible(ALICE)[0], "Go")
    query = tg.press(tg.user(ALICE), tg.visible(ALICE)[0], "Stop")
    assert query["data"] == "s:1"
    assert tg.answered(query) is None
    updates = await bot.get_updates(timeout=0)
    pressed = updates[-1].callback_query
    assert pressed is not None
    assert pressed.data == "s:1"
    assert pressed.message is not None
    assert pressed.message.message_id == sent.message_id
    assert await pressed.answer("Stopped") is True
    assert tg.answered(query) == {"text": "Stopped"}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await pressed.answer()
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("no-such-query")
    # Editing the text without reply_markup drops the buttons, as on Telegram.
    await bot.edit_message_text("final", chat_id=ALICE, message_id=sent.message_id)
    assert tg.buttons(ALICE, sent.message_id) == []
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=None)
    await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=keyboard)
    assert tg.buttons(ALICE, sent.message_id) == ["Stop"]


async def test_callback_queries_reach_the_bot_only_when_allowed(
    tg: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(
        ALICE,
        "pick",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]]),
    )
    assert await bot.get_updates(timeout=0, allowed_updates=["message"]) == ()
    tg.press(tg.user(ALICE), tg.visible(ALICE)[0], "A")
    assert await bot.get_updates(timeout=0) == ()  # still only messages
    updates = await bot.get_updates(timeout=0, allowed_updates=["message", "callback_query"])
    assert [u.callback_query.data for u in updates if u.callback_query] == ["a"]
    assert sent.message_id == updates[0].callback_query.message.message_id  # type: ignore[union-attr]
