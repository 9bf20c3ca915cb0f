"""The contract's replies in flight: recorded before a reply is shown, gone once it settles.

Same backends as ``test_contract.py``. What a restart finds (``open_replies``) is what crash
recovery edits, so the SQL cases also reopen the database, cut callers off mid-call and run
many replies at once, as the hot path does.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from storage import InflightRecord
from tests.storage.test_contract import CHAT, OTHER_CHAT, T0, at
from tests.waiting import until

if TYPE_CHECKING:
    from storage import ConversationStore, SqlStore
    from tests.pg import SqlTarget

TARGET = json.dumps({"chat_id": 1001, "reply_to": 42})


async def begin(
    store: ConversationStore,
    reply_id: str,
    *,
    chat_key: str = CHAT,
    platform: str = "telegram",
    target: str = TARGET,
    language: str | None = "en",
    when: datetime = T0,
) -> None:
    await store.begin_reply(
        reply_id, chat_key, platform=platform, target=target, language=language, at=when
    )


def record(
    reply_id: str,
    *message_ids: str,
    chat_key: str = CHAT,
    platform: str = "telegram",
    target: str = TARGET,
    language: str | None = "en",
    when: datetime = T0,
    shown: str = "",
) -> InflightRecord:
    return InflightRecord(reply_id, chat_key, platform, target, message_ids, language, when, shown)


# --- recording ---------------------------------------------------------------------------------


async def test_no_replies_are_open_at_first(store: ConversationStore) -> None:
    assert await store.open_replies("telegram") == []


async def test_begun_reply_is_open_without_messages(store: ConversationStore) -> None:
    await begin(store, "r1")

    assert await store.open_replies("telegram") == [record("r1")]
    [found] = await store.open_replies("telegram")
    assert found.shown == ""


async def test_a_reply_needs_no_chat_row(store: ConversationStore) -> None:
    # A chat's first reply starts before anything else about the chat is stored.
    await begin(store, "r1", chat_key="telegram:never-seen", language=None)

    assert await store.open_replies("telegram") == [
        record("r1", chat_key="telegram:never-seen", language=None)
    ]
    assert await store.current("telegram:never-seen") is None
    assert await store.conversations("telegram:never-seen") == []


async def test_noted_messages_replace_the_previous_ones_in_order(
    store: ConversationStore,
) -> None:
    await begin(store, "r1")

    await store.note_reply_messages("r1", ["m1"])
    assert await store.open_replies("telegram") == [record("r1", "m1")]

    await store.note_reply_messages("r1", ["m1", "1234567890123456789", "m0"])
    assert await store.open_replies("telegram") == [
        record("r1", "m1", "1234567890123456789", "m0")
    ]

    await store.note_reply_messages("r1", [])
    assert await store.open_replies("telegram") == [record("r1")]


async def test_noted_shown_text_is_stored_with_the_ids(store: ConversationStore) -> None:
    await begin(store, "r1")

    await store.note_reply_messages("r1", ["m1"], "Hello")

    assert await store.open_replies("telegram") == [record("r1", "m1", shown="Hello")]


async def test_shown_text_is_replaced_not_appended(store: ConversationStore) -> None:
    await begin(store, "r1")
    await store.note_reply_messages("r1", ["m1"], "Hello")

    await store.note_reply_messages("r1", ["m1", "m2"], "world")
    assert await store.open_replies("telegram") == [record("r1", "m1", "m2", shown="world")]

    # Each note replaces both: left out, the text goes back to "" with the new ids.
    await store.note_reply_messages("r1", ["m1", "m2", "m3"])
    assert await store.open_replies("telegram") == [record("r1", "m1", "m2", "m3")]


async def test_long_unicode_shown_text_is_stored_whole(store: ConversationStore) -> None:
    # A full Telegram message: 4096 characters, with astral code points, line and paragraph
    # separators, quotes, backslashes, NUL-free control characters and trailing spaces.
    unit = '京都 😀 \u2028\u2029 "q" \\ \t\r\n\x7f é '
    shown = (unit * (4096 // len(unit) + 1))[:4095] + " "
    assert len(shown) == 4096
    await begin(store, "r1")

    await store.note_reply_messages("r1", ["m1"], shown)

    [found] = await store.open_replies("telegram")
    assert found.shown == shown


async def test_noting_messages_of_an_unknown_reply_does_nothing(
    store: ConversationStore,
) -> None:
    await store.note_reply_messages("r-unknown", ["m1"], "text")

    assert await store.open_replies("telegram") == []


async def test_one_string_as_message_ids_is_refused(store: ConversationStore) -> None:
    await begin(store, "r1")

    await store.note_reply_messages("r1", ["m1"], "kept")

    with pytest.raises(TypeError, match="message_ids"):
        await store.note_reply_messages("r1", "m123", "lost")
    assert await store.open_replies("telegram") == [record("r1", "m1", shown="kept")]


async def test_beginning_a_reply_again_replaces_its_row(store: ConversationStore) -> None:
    await begin(store, "r1", when=at(5))
    await store.note_reply_messages("r1", ["m1", "m2"], "old text")

    await begin(store, "r1", chat_key=OTHER_CHAT, target="{}", language=None, when=at(1))

    assert await store.open_replies("telegram") == [
        record("r1", chat_key=OTHER_CHAT, target="{}", language=None, when=at(1))
    ]


async def test_long_targets_and_many_unicode_ids_are_stored_whole(
    store: ConversationStore,
) -> None:
    target = json.dumps({"text": '京都 \u2028 "quoted" \\ ' * 500})
    ids = [f"メッセージ-{n}" for n in range(300)]
    await begin(store, "r1", target=target, language="zh-Hant-TW")
    await store.note_reply_messages("r1", ids)

    [found] = await store.open_replies("telegram")

    assert found.target == target
    assert found.message_ids == tuple(ids)
    assert found.language == "zh-Hant-TW"


async def test_start_times_come_back_in_utc(store: ConversationStore) -> None:
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    await begin(store, "r1", when=tokyo)

    [found] = await store.open_replies("telegram")

    assert found.started_at == T0
    assert found.started_at.utcoffset() == timedelta(0)


async def test_naive_start_time_is_refused(store: ConversationStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await begin(store, "r1", when=datetime(2025, 3, 14, 15, 9))  # noqa: DTZ001

    assert await store.open_replies("telegram") == []


# --- settling ----------------------------------------------------------------------------------


async def test_ended_reply_is_forgotten(store: ConversationStore) -> None:
    await begin(store, "r1")
    await begin(store, "r2", when=at(1))
    await store.note_reply_messages("r1", ["m1"])

    await store.end_reply("r1")

    assert await store.open_replies("telegram") == [record("r2", when=at(1))]


async def test_ending_an_unknown_or_ended_reply_is_harmless(store: ConversationStore) -> None:
    await store.end_reply("r-unknown")
    await begin(store, "r1")
    await store.end_reply("r1")
    await store.end_reply("r1")

    await store.note_reply_messages("r1", ["m1"], "late")  # must not bring it back

    assert await store.open_replies("telegram") == []


async def test_ending_a_reply_leaves_the_chat_alone(store: ConversationStore) -> None:
    await store.record_reply(CHAT, "c1", user_id="u1", billed_chars=3, at=T0)
    await begin(store, "r1")

    await store.end_reply("r1")

    assert await store.current(CHAT) == "c1"


# --- listing -----------------------------------------------------------------------------------


async def test_open_replies_are_oldest_first_then_by_id(store: ConversationStore) -> None:
    await begin(store, "r-late", when=at(10))
    await begin(store, "b", when=at(1))
    await begin(store, "a", when=at(1))
    await begin(store, "B", when=at(1))  # by code point, whatever the database's locale
    await begin(store, "-1", when=at(1))
    await begin(store, "r-early", when=T0)

    ids = [r.reply_id for r in await store.open_replies("telegram")]

    assert ids == ["r-early", "-1", "B", "a", "b", "r-late"]


async def test_open_replies_are_per_platform(store: ConversationStore) -> None:
    await begin(store, "r-tg")
    await begin(store, "r-dc", chat_key=OTHER_CHAT, platform="discord")
    await begin(store, "r-tgx", platform="telegramx")
    await begin(store, "r-TG", platform="Telegram")

    assert [r.reply_id for r in await store.open_replies("telegram")] == ["r-tg"]
    assert [r.reply_id for r in await store.open_replies("discord")] == ["r-dc"]
    assert await store.open_replies("tele") == []


async def test_closed_store_refuses_reply_calls(store: ConversationStore) -> None:
    await store.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await begin(store, "r1")
    with pytest.raises(RuntimeError, match="closed"):
        await store.note_reply_messages("r1", ["m1"])
    with pytest.raises(RuntimeError, match="closed"):
        await store.end_reply("r1")
    with pytest.raises(RuntimeError, match="closed"):
        await store.open_replies("telegram")


# --- SQL: restarts, cancellation, many at once -------------------------------------------------


async def test_open_replies_survive_a_restart(sql_target: SqlTarget) -> None:
    async with await sql_target.open() as store:
        await begin(store, "r1")
        await store.note_reply_messages("r1", ["m1", "m2"], "京都 so far")
        await begin(store, "r2", chat_key=OTHER_CHAT, platform="discord", when=at(1))
        await begin(store, "r3", when=at(2))
        await store.end_reply("r3")

    # The process that recorded them is gone; the next one finds what it left unfinished.
    async with await sql_target.open() as restarted:
        assert await restarted.open_replies("telegram") == [
            record("r1", "m1", "m2", shown="京都 so far")
        ]
        assert await restarted.open_replies("discord") == [
            record("r2", chat_key=OTHER_CHAT, platform="discord", when=at(1))
        ]
        await restarted.end_reply("r1")

    async with await sql_target.open() as again:
        assert await again.open_replies("telegram") == []


async def test_cancelled_callers_do_not_cut_reply_records(sqlite_target: SqlTarget) -> None:
    store: SqlStore
    async with await sqlite_target.open() as store:
        await begin(store, "r-ending")

        calls = [
            *(asyncio.create_task(begin(store, f"r{n:02d}")) for n in range(20)),
            asyncio.create_task(store.end_reply("r-ending")),
        ]
        await asyncio.sleep(0)  # let them start, then cut every caller
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await until(lambda: not store._work)

        assert [r.reply_id for r in await store.open_replies("telegram")] == [
            f"r{n:02d}" for n in range(20)
        ]


async def test_many_replies_at_once_across_two_stores(sql_target: SqlTarget) -> None:
    # Every reply records itself, notes its messages twice and ends, all interleaved; two
    # engines stand in for two processes sharing the database.
    async def one_reply(store: ConversationStore, n: int) -> None:
        await begin(store, f"r{n:03d}", when=at(n))
        await store.note_reply_messages(f"r{n:03d}", [f"m{n}"], f"text {n}")
        await store.note_reply_messages(f"r{n:03d}", [f"m{n}", f"m{n}b"], f"more {n}")
        if n % 10:
            await store.end_reply(f"r{n:03d}")

    async with await sql_target.open() as second:
        async with await sql_target.open() as first:
            await asyncio.gather(*(one_reply((first, second)[n % 2], n) for n in range(200)))
            while_first_runs = await second.open_replies("telegram")
        left = await second.open_replies("telegram")

    # Every reply left open is the first's (even n). On PostgreSQL, processes may share the
    # database, and a live process' replies are its own: the second takes over none of them
    # until the first is gone. SQLite is one process' database: all are left over.
    assert while_first_runs == ([] if sql_target.name == "postgresql" else left)
    assert left == [
        record(f"r{n:03d}", f"m{n}", f"m{n}b", when=at(n), shown=f"more {n}")
        for n in range(0, 200, 10)
    ]
