"""Replies a killed process left unfinished are marked interrupted at the next start.

The in-process tests forge the crash record a killed process leaves (``Flight`` writes the same
through ``Conversations.inflight``); the last one kills a real ``kamiya-bot run`` with SIGKILL
in the middle of a streamed reply and starts another on the same database. One of them runs
on PostgreSQL too, the crash records then written and cleared there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bots.telegram.format import utf16_len
from bots.telegram.keyboards import stop_keyboard
from bots.telegram.recovery import interrupted_text
from core import ChatKey, text
from core.fake_kamiya import CONVERSATION_PATH, Script
from tests.bots.cli import stored_ids
from tests.bots.telegram.chat import becomes, idle, says
from tests.bots.telegram.harness import write_config
from tests.bots.telegram.process import bot_process, open_replies
from tests.conftest import KEY
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from storage import ConversationStore
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram
    from tests.pg import SqlTarget

INTERRUPTED = text("interrupted", "en")
CUT = text("cut_off_mark", "en")


@pytest.fixture
def shared_target(request: pytest.FixtureRequest) -> SqlTarget | None:
    """``None``: each bot opens the configured SQLite database, as ``kamiya-bot run`` does."""
    if getattr(request, "param", "configured") == "configured":
        return None
    target: SqlTarget = request.getfixturevalue("postgresql_target")
    return target


@pytest.fixture
async def bot_store(shared_target: SqlTarget | None) -> AsyncIterator[ConversationStore | None]:
    """With ``shared_target`` "postgresql", a PostgreSQL store the bots of the test share, as
    processes on one database would."""
    if shared_target is None:
        yield None
        return
    async with await shared_target.open() as store:
        yield store


def test_interrupted_text_marks_the_shown_text_cut_off_then_asks_to_resend():
    assert interrupted_text("Half an ans", "en") == f"Half an ans {CUT}\n\n⚠️ {INTERRUPTED}"
    assert interrupted_text("", "zh") == f"⚠️ {text('interrupted', 'zh')}"


def test_interrupted_text_fits_one_message_without_splitting_an_emoji():
    shown = "😀" * 2048  # a full message: 4096 UTF-16 units
    marked = interrupted_text(shown, "en")
    assert utf16_len(marked) <= 4096
    assert marked.endswith(f"… {CUT}\n\n⚠️ {INTERRUPTED}")
    assert set(marked.split("…")[0]) == {"😀"}


async def left_over(
    bot: Bot, chat: int, message_ids: list[int], shown: str, *, reply_to: int, lang: str = "en"
) -> None:
    """The crash record a reply leaves when its process dies while it shows ``shown``."""
    target = {"chat_id": chat, "thread_id": None, "reply_to": reply_to, "private": True}
    inflight = bot.conversations.inflight
    reply_id = await inflight.begin(ChatKey("telegram", str(chat)), target, lang)
    await inflight.messages(reply_id, message_ids, shown)


async def records(bot: Bot) -> int:
    return len(await bot.store.open_replies("telegram"))


@pytest.mark.parametrize("shared_target", ["configured", "postgresql"], indirect=True)
async def test_the_last_message_shows_the_cut_and_every_stop_button_goes(
    tg: FakeTelegram, make_bot: Callable[[], AbstractAsyncContextManager[Bot]]
) -> None:
    alice = tg.user(8001)
    async with make_bot() as first:
        asked = tg.private_message(alice, "question")
        await says(tg, 8001, "question")
        stop = stop_keyboard("0123456789abcdef", "en")
        parts = [await first.frontend.bot.send_message(8001, t, reply_markup=stop) for t in "AB"]
        await left_over(
            first, 8001, [m.message_id for m in parts], "B", reply_to=asked["message_id"]
        )
    async with make_bot() as second:
        last = tg.message(8001, parts[-1].message_id)
        assert last is not None
        await becomes(tg, last, INTERRUPTED)
        await idle(second)
        assert await records(second) == 0
    assert tg.visible_texts(8001)[-2:] == ["A", f"B {CUT}\n\n⚠️ {INTERRUPTED}"]
    assert [tg.buttons(8001, m.message_id) for m in parts] == [[], []]


@pytest.mark.parametrize(("message_ids", "lang"), [([], "zh"), ([999], "en")])
async def test_a_reply_without_a_message_left_gets_the_line_as_an_answer(
    tg: FakeTelegram,
    make_bot: Callable[[], AbstractAsyncContextManager[Bot]],
    message_ids: list[int],
    lang: str,
) -> None:
    """Never sent (it was queued), or sent and since deleted by the user."""
    alice = tg.user(8002, language_code=lang)
    async with make_bot() as first:
        asked = tg.private_message(alice, "question")
        answer = await says(tg, 8002, "question")
        await left_over(first, 8002, message_ids, "gone", reply_to=asked["message_id"], lang=lang)
    async with make_bot() as second:
        line = await says(tg, 8002, text("interrupted", lang), after=answer.message_id)
        await idle(second)
        assert await records(second) == 0
    assert line.text == f"⚠️ {text('interrupted', lang)}"
    assert line.reply_to == asked["message_id"]


async def test_telegram_down_at_start_leaves_the_record_for_the_next_start(
    tg: FakeTelegram, make_bot: Callable[[], AbstractAsyncContextManager[Bot]]
) -> None:
    alice = tg.user(8003)
    async with make_bot() as first:
        asked = tg.private_message(alice, "question")
        answer = await says(tg, 8003, "question")
        await left_over(first, 8003, [answer.message_id], "Echo", reply_to=asked["message_id"])
    tg.fail_next("editMessageText", status=502, description="Bad Gateway", times=3)
    async with make_bot() as second:
        await tg.wait_for(lambda f: [c.status for c in f.calls_of("editMessageText")] == [502] * 3)
        await idle(second)
        assert await records(second) == 1  # the next start tries again
    assert tg.message(8003, answer.message_id) == answer


async def test_sigkill_mid_reply_then_restart_marks_it_and_keeps_the_old_conversation(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya
) -> None:
    write_config(
        tmp_path,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        extra='stream_mode = "edit"',
    )
    db = tmp_path / "bot.db"
    alice = tg.user(8004)
    async with bot_process(tmp_path / "bot.toml") as first:
        tg.private_message(alice, "first")
        await says(tg, 8004, "first", timeout=30)
        await until(lambda: "telegram:8004" in stored_ids(db), timeout=10)
        before = stored_ids(db)["telegram:8004"]
        assert before == fake.requests[0].response_conversation_id
        slow = "".join(f"word{i} " for i in range(400))
        fake.enqueue(Script(reply=slow, chunk_chars=6, delay_s=0.05))  # about 20 s
        tg.private_message(alice, "second")
        partial = await says(tg, 8004, "word1 ")
        await until(lambda: any("word1" in shown for _, shown in open_replies(db)), timeout=10)
        assert tg.pending_updates == []  # "second" was confirmed: no restart answers it again
        await first.kill()
    assert stored_ids(db)["telegram:8004"] == before
    [(ids, shown)] = open_replies(db)
    assert str(partial.message_id) in ids
    assert shown.startswith("word0 word1 ")
    async with bot_process(tmp_path / "bot.toml") as second:
        marked = await becomes(tg, partial, INTERRUPTED, timeout=30)  # a cold start under load
        tg.private_message(alice, "third")
        third = await says(tg, 8004, "third", after=partial.message_id, timeout=30)
        assert await second.terminate() == 0
    assert marked.text is not None
    assert marked.text.startswith("word0 word1 ")
    assert marked.text.endswith(f" {CUT}\n\n⚠️ {INTERRUPTED}")
    assert tg.buttons(8004, partial.message_id) == []
    assert "(turn 3)" in (third.text or "")  # Kamiya's conversation went on from "first"
    questions = [r for r in fake.requests if r.path == CONVERSATION_PATH]  # no titles
    assert [r.json.get("content") for r in questions] == ["first", "second", "third"]
    assert questions[-1].json == {"content": "third", "conversationId": before}
    assert open_replies(db) == []
    for secret in (KEY, "TEST-TOKEN"):
        assert secret not in first.stderr + second.stderr
    assert "Traceback" not in second.stderr
