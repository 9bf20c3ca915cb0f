"""Replies a stopped process left in flight, marked by the next one (in process).

The records are written as a process that died would have left them (through
``Conversations.inflight``), pointing at real messages of the fake Discord; the next bot marks
them through the channel route once ready. ``test_restart`` does the same with ``kill -9``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bots.discord.format import MAX_CHARS
from bots.discord.recovery import interrupted_markdown
from core import ChatKey, text
from core.fake_kamiya import Script
from storage import MemoryStore
from tests.bots.discord.harness import running_bot, settled, write_config
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from core import Config
    from core.fake_kamiya import FakeKamiya
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord, Msg

CHAT = ChatKey("discord", str(CHANNEL_ID))
CUT = text("cut_off_mark")
LINE = f"⚠️ {text('interrupted')}"


# What the last message is edited to.


def test_the_text_shown_gets_the_cut_off_mark_and_the_line() -> None:
    assert interrupted_markdown("> q\nHalf an ans", "> q\n", None) == (
        f"> q\nHalf an ans {CUT}\n\n{LINE}"
    )


def test_a_message_that_showed_none_of_the_reply_keeps_only_its_header() -> None:
    assert interrupted_markdown("> q\n", "> q\n", None) == f"> q\n{LINE}"
    assert interrupted_markdown("", "", None) == LINE


def test_a_closing_fence_keeps_its_own_line() -> None:
    shown = "Code:\n```py\nprint(1)\n```"
    assert interrupted_markdown(shown, "", None) == f"{shown}\n{CUT}\n\n{LINE}"


def test_chinese_users_get_chinese() -> None:
    assert interrupted_markdown("一半", "", "zh-CN") == (
        f"一半 {text('cut_off_mark', 'zh')}\n\n⚠️ {text('interrupted', 'zh')}"
    )


@pytest.mark.parametrize("length", [MAX_CHARS - len(f" {CUT}\n\n{LINE}"), MAX_CHARS])
def test_no_more_than_a_message_holds(length: int) -> None:
    marked = interrupted_markdown("x" * length, "", None)
    assert marked is None if length == MAX_CHARS else len(marked or "") == MAX_CHARS


# The next start.


async def leave(
    config: Config, *records: tuple[dict[str, object], Sequence[int], str, str | None]
) -> None:
    """Records as a process killed mid-reply leaves them: (target, message ids, shown, lang)."""
    async with running_bot(config) as bot:
        inflight = bot.conversations.inflight
        for target, ids, shown, language in records:
            reply_id = await inflight.begin(CHAT, target, language)
            await inflight.messages(reply_id, ids, shown)


async def open_records(bot: Bot) -> int:
    return len(await bot.store.open_replies("discord"))


async def answered(bot: Bot, dc: FakeDiscord, prompt: str) -> Msg:
    ran = dc.slash("chat", {"prompt": prompt})
    await settled(bot, dc, ran)
    assert ran.original_message is not None
    return ran.original_message


def target(header: str = "", **more: object) -> dict[str, object]:
    return {"channel_id": str(CHANNEL_ID), "header": header, **more}


async def test_the_next_start_marks_each_last_message_and_ends_the_records(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config) as bot:
        first = await answered(bot, dc, "one")
        second = await answered(bot, dc, "two")
        third = await answered(bot, dc, "three")
    await leave(
        config,
        (target("> one\n"), [first.id], "> one\nHalf", None),
        (target("> two\n"), [second.id], "> two\n", None),  # still "thinking…"
        (target("> q\n"), [first.id, third.id], "the second message", "zh-CN"),
    )
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
        assert await open_records(bot) == 0
    assert first.content == f"> one\nHalf {CUT}\n\n{LINE}"
    assert second.content == f"> two\n{LINE}"
    assert third.content == (
        f"the second message {text('cut_off_mark', 'zh')}\n\n⚠️ {text('interrupted', 'zh')}"
    )
    assert all(m.buttons == [] for m in (first, second, third))
    assert len(dc.visible(CHANNEL_ID)) == 3  # edited in place, nothing new


async def test_a_full_last_message_keeps_its_text_and_the_line_follows_it(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config) as bot:
        last = await answered(bot, dc, "long")
    before = last.content
    await leave(config, (target(), [last.id], "y" * MAX_CHARS, None))
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
    assert last.content == before
    line = dc.channel_messages(CHANNEL_ID)[-1]
    assert (line.content, line.reply_to) == (LINE, last.id)
    assert dc.pings == []


async def test_a_mention_answered_with_nothing_yet_gets_the_line_as_a_reply(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config):
        asked = dc.message(CHANNEL_ID, "are you there?")
    await leave(config, (target(reply_to=str(asked.id)), [], "", None))
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
        assert await open_records(bot) == 0
    [line] = dc.channel_messages(CHANNEL_ID)
    assert (line.content, line.reply_to) == (LINE, asked.id)
    assert dc.pings == []  # the user is not pinged by the reply


async def test_a_deleted_message_or_an_unreadable_target_only_ends_the_record(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    await leave(
        config,
        (target(), [dc.snowflake()], "gone", None),
        ({"channel": "nowhere"}, [1], "x", None),
    )
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
        assert await open_records(bot) == 0
    assert dc.visible(CHANNEL_ID) == []


async def test_a_passing_failure_keeps_the_record_for_the_start_after(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    async with running_bot(config) as bot:
        last = await answered(bot, dc, "one")
    await leave(config, (target("> one\n"), [last.id], "> one\nHalf", None))
    dc.fail_next("PATCH", "edit_message", status=429, via=False)  # Cloudflare's: no retry
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
        assert await open_records(bot) == 1
    assert last.content == "> one\n**Echo** (turn 1): one"
    async with running_bot(config) as bot:
        await until(lambda: not bot.frontend.busy)
        assert await open_records(bot) == 0
    assert last.content == f"> one\nHalf {CUT}\n\n{LINE}"


# While a reply streams.


class _Counting(MemoryStore):
    """Counts the crash record's writes."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[tuple[list[str], str]] = []

    async def note_reply_messages(
        self, reply_id: str, message_ids: Sequence[str], shown: str = ""
    ) -> None:
        self.notes.append((list(message_ids), shown))
        await super().note_reply_messages(reply_id, message_ids, shown)


async def test_a_reply_is_recorded_while_it_streams_at_the_pace_of_discord_calls(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = write_config(tmp_path, kamiya_url=fake.base_url, key=KEY)
    store = _Counting()
    reply = "".join(f"tok{i} " for i in range(250))  # 250 words in 375 deltas, about 2 s
    fake.enqueue(Script(reply=reply, chunk_chars=4, delay_s=0.005))
    async with running_bot(config, store=store) as bot:
        ran = dc.slash("chat", {"prompt": "q"})
        await dc.wait_for(lambda f: "tok1 " in (ran.original or ""))
        await until(lambda: any("tok1 " in shown for _, shown in store.notes))  # after the call
        [record] = await store.open_replies("discord")
        assert ran.original_message is not None
        assert record.message_ids == (str(ran.original_message.id),)
        assert record.shown.startswith("> q\ntok0 tok1 ")
        assert record.chat_key == str(CHAT)
        await settled(bot, dc, ran)
        assert await store.open_replies("discord") == []
    edits = dc.calls_of("edit_original")
    assert 3 <= len(edits) < 20
    assert len(store.notes) == 1 + len(edits)  # the "thinking…" message, then one per edit
    assert store.notes[0] == ([str(ran.original_message.id)], "> q\n")
    assert store.notes[-1][1] == ran.original == "> q\n" + reply.strip()
