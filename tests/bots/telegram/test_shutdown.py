"""SIGTERM: ``kamiya-bot run`` takes no new updates, lets replies finish within
``[bot] shutdown_grace_s``, cuts the rest with a line saying so, and exits 0.

Black-box tests of the installed script against the fake Telegram and the fake Kamiya.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bots.telegram.format import split
from core import text
from core.fake_kamiya import CONVERSATION_PATH, Script
from tests.bots.cli import stored_ids
from tests.bots.telegram.chat import idle, says
from tests.bots.telegram.harness import write_config
from tests.bots.telegram.process import bot_process, open_replies
from tests.conftest import KEY
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram

MARGIN_S = 4.0  # bots.runner gives each frontend this beyond the grace


def config(
    folder: Path, tg: FakeTelegram, fake: FakeKamiya, *, grace: float, extra: str = ""
) -> Path:
    write_config(
        folder,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        extra=extra,
        grace_s=grace,
    )
    return folder / "bot.toml"


def questions(fake: FakeKamiya) -> list[str]:
    return [r.json["content"] for r in fake.requests if r.path == CONVERSATION_PATH]


async def test_a_reply_that_ends_within_the_grace_is_finished_and_its_update_confirmed(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya
) -> None:
    path = config(tmp_path, tg, fake, grace=8)
    reply = "".join(f"tok{i} " for i in range(20))
    fake.enqueue(Script(reply=reply, chunk_chars=6, delay_s=0.05))  # about 1 s
    async with bot_process(path) as bot:
        tg.private_message(tg.user(9001), "go")
        await tg.wait_for(lambda f: any(f.drafts(9001)), timeout=30)  # streaming now
        assert await bot.terminate() == 0, bot.stderr
    assert bot.stop_s < 8 + MARGIN_S
    assert tg.visible_texts(9001) == [c.text for c in split(reply)]
    assert tg.pending_updates == []  # every update fetched was confirmed to Telegram
    assert "Traceback" not in bot.stderr


async def test_a_restart_after_a_clean_stop_answers_nothing_twice(
    tg: FakeTelegram, fake: FakeKamiya, make_bot: Callable[[], AbstractAsyncContextManager[Bot]]
) -> None:
    async with make_bot():
        tg.private_message(tg.user(9002), "answer me once")
        await says(tg, 9002, "answer me once")
    assert tg.pending_updates == []  # confirmed when the bot stopped, if not before
    async with make_bot() as second:
        tg.private_message(tg.user(9005), "after the restart")
        await says(tg, 9005, "after the restart")
        await idle(second)
    assert questions(fake) == ["answer me once", "after the restart"]
    assert len(tg.visible(9002)) == 1


async def test_a_reply_longer_than_the_grace_is_cut_with_a_line_and_the_process_exits_0(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya
) -> None:
    path = config(tmp_path, tg, fake, grace=0.5, extra='stream_mode = "edit"')
    alice = tg.user(9003)
    slow = "".join(f"word{i} " for i in range(400))
    async with bot_process(path) as bot:
        tg.private_message(alice, "first")
        await says(tg, 9003, "first", timeout=30)
        await until(lambda: "telegram:9003" in stored_ids(tmp_path / "bot.db"), timeout=10)
        fake.enqueue(Script(reply=slow, chunk_chars=6, delay_s=0.05))  # about 20 s
        tg.private_message(alice, "long please")
        partial = await says(tg, 9003, "word1 ", after=1)
        assert await bot.terminate() == 0, bot.stderr
    assert bot.stop_s < 0.5 + MARGIN_S
    cut = tg.message(9003, partial.message_id)
    assert cut is not None
    assert cut.text is not None
    assert cut.text.startswith("word0 word1 ")
    cut_off = text("cut_off_mark", "en")
    assert cut.text.endswith(f" {cut_off}\n\n⚠️ {text('interrupted', 'en')}")
    assert tg.buttons(9003, partial.message_id) == []  # the Stop button went with it
    assert open_replies(tmp_path / "bot.db") == []  # settled: nothing for the next start
    first_id = fake.requests[0].response_conversation_id
    assert stored_ids(tmp_path / "bot.db")["telegram:9003"] == first_id
    assert "Traceback" not in bot.stderr
