"""One contract for every ``ConversationStore``: memory, SQLite and PostgreSQL must agree.

Cases taking ``store`` run on all three backends; ``sql_target`` cases on SQLite and
PostgreSQL (concurrency across engines, schema reuse); ``sqlite_target`` cases on SQLite only
(the file, WAL, pragmas). This file holds server conversations, history, titles and all-time
usage, and the helpers the others import; chat modes and completions turns are in
``test_contract_modes.py``, usage periods in ``test_contract_usage.py``, and random sequences of
every operation in ``test_model_check.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from storage import ConversationRecord, MemoryStore, SqlStore, UsageRecord

if TYPE_CHECKING:
    from storage import ConversationStore
    from tests.pg import SqlTarget

T0 = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
CHAT = "telegram:1001"
OTHER_CHAT = "discord:2002"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def reply(
    store: ConversationStore,
    conversation_id: str,
    *,
    chat_key: str = CHAT,
    user_id: str = "u1",
    billed_chars: int = 10,
    when: datetime = T0,
) -> bool:
    return await store.record_reply(
        chat_key, conversation_id, user_id=user_id, billed_chars=billed_chars, at=when
    )


# --- current conversation ----------------------------------------------------------------------


async def test_new_chat_has_no_current_conversation(store: ConversationStore) -> None:
    assert await store.current(CHAT) is None
    assert await store.conversations(CHAT) == []
    assert await store.usage(CHAT) == []
    assert await store.conversation("c-unknown") is None


async def test_first_reply_creates_conversation_and_makes_it_current(
    store: ConversationStore,
) -> None:
    assert await reply(store, "c1") is True

    assert await store.current(CHAT) == "c1"
    assert await store.conversation("c1") == ConversationRecord(
        conversation_id="c1", chat_key=CHAT, title=None, created_at=T0, last_used_at=T0
    )


async def test_reply_on_known_conversation_returns_false(store: ConversationStore) -> None:
    assert await reply(store, "c1") is True
    assert await reply(store, "c1", when=at(1)) is False
    assert await reply(store, "c1", when=at(2)) is False


async def test_repeat_reply_advances_last_used_and_keeps_created_at(
    store: ConversationStore,
) -> None:
    await reply(store, "c1", when=T0)
    await reply(store, "c1", when=at(5))

    record = await store.conversation("c1")
    assert record is not None
    assert record.created_at == T0
    assert record.last_used_at == at(5)


async def test_new_conversation_id_becomes_current_and_both_stay_in_history(
    store: ConversationStore,
) -> None:
    await reply(store, "c1", when=T0)
    assert await reply(store, "c2", when=at(1)) is True

    assert await store.current(CHAT) == "c2"
    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c2", "c1"]


async def test_chats_have_separate_current_conversations(store: ConversationStore) -> None:
    await reply(store, "c1", chat_key=CHAT)
    await reply(store, "c2", chat_key=OTHER_CHAT)

    assert await store.current(CHAT) == "c1"
    assert await store.current(OTHER_CHAT) == "c2"


# --- reset -------------------------------------------------------------------------------------


async def test_reset_clears_current_and_keeps_history(store: ConversationStore) -> None:
    await reply(store, "c1", when=T0)

    await store.reset(CHAT, at=at(1))

    assert await store.current(CHAT) is None
    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c1"]
    assert await store.usage(CHAT) == [UsageRecord(CHAT, "u1", billed_chars=10, requests=1)]


async def test_resuming_after_reset_reuses_the_conversation_row(store: ConversationStore) -> None:
    await reply(store, "c1", when=T0)
    await store.reset(CHAT, at=at(1))

    assert await reply(store, "c1", when=at(2)) is False
    assert await store.current(CHAT) == "c1"


async def test_reset_of_unknown_chat_leaves_it_without_conversation(
    store: ConversationStore,
) -> None:
    await store.reset(CHAT, at=T0)

    assert await store.current(CHAT) is None
    assert await store.conversations(CHAT) == []


async def test_reset_only_touches_its_chat(store: ConversationStore) -> None:
    await reply(store, "c1", chat_key=CHAT)
    await reply(store, "c2", chat_key=OTHER_CHAT)

    await store.reset(CHAT, at=at(1))

    assert await store.current(OTHER_CHAT) == "c2"


# --- history -----------------------------------------------------------------------------------


async def test_conversations_are_most_recently_used_first(store: ConversationStore) -> None:
    for minute, conversation_id in enumerate(["c1", "c2", "c3"]):
        await reply(store, conversation_id, when=at(minute))
    await reply(store, "c1", when=at(10))  # Using an old conversation moves it to the front.

    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c1", "c3", "c2"]


async def test_conversations_with_equal_last_use_put_newer_first(store: ConversationStore) -> None:
    await reply(store, "c-old", when=T0)
    await reply(store, "c-new", when=at(1))
    await reply(store, "c-old", when=at(1))

    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c-new", "c-old"]


async def test_conversations_limit_keeps_the_most_recent(store: ConversationStore) -> None:
    for minute in range(5):
        await reply(store, f"c{minute}", when=at(minute))

    assert [c.conversation_id for c in await store.conversations(CHAT, limit=2)] == ["c4", "c3"]
    assert len(await store.conversations(CHAT)) == 5
    assert await store.conversations(CHAT, limit=0) == []


async def test_conversations_default_limit_is_ten(store: ConversationStore) -> None:
    for minute in range(12):
        await reply(store, f"c{minute:02d}", when=at(minute))

    recent = await store.conversations(CHAT)
    assert [c.conversation_id for c in recent] == [f"c{m:02d}" for m in range(11, 1, -1)]


async def test_negative_conversations_limit_is_refused(store: ConversationStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.conversations(CHAT, limit=-1)


async def test_conversations_are_scoped_to_the_chat(store: ConversationStore) -> None:
    await reply(store, "c1", chat_key=CHAT)
    await reply(store, "c2", chat_key=OTHER_CHAT, when=at(1))

    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c1"]
    assert [c.conversation_id for c in await store.conversations(OTHER_CHAT)] == ["c2"]


# --- titles ------------------------------------------------------------------------------------


async def test_set_title_is_stored(store: ConversationStore) -> None:
    await reply(store, "c1")

    await store.set_title("c1", "Ramen in Kyoto — 京都のラーメン")

    record = await store.conversation("c1")
    assert record is not None
    assert record.title == "Ramen in Kyoto — 京都のラーメン"
    assert (await store.conversations(CHAT))[0].title == "Ramen in Kyoto — 京都のラーメン"


async def test_set_title_can_replace_a_title(store: ConversationStore) -> None:
    await reply(store, "c1")
    await store.set_title("c1", "first")
    await store.set_title("c1", "second")

    record = await store.conversation("c1")
    assert record is not None
    assert record.title == "second"


async def test_set_title_on_unknown_conversation_is_ignored(store: ConversationStore) -> None:
    await store.set_title("c-unknown", "nobody")

    assert await store.conversation("c-unknown") is None
    assert await store.conversations(CHAT) == []


async def test_long_title_is_stored_whole(store: ConversationStore) -> None:
    await reply(store, "c1")
    await store.set_title("c1", "t" * 2000)

    record = await store.conversation("c1")
    assert record is not None
    assert record.title == "t" * 2000


# --- usage -------------------------------------------------------------------------------------


async def test_usage_accumulates_per_chat_and_user(store: ConversationStore) -> None:
    await reply(store, "c1", user_id="u2", billed_chars=7)
    await reply(store, "c1", user_id="u1", billed_chars=100)
    await reply(store, "c2", user_id="u1", billed_chars=23, when=at(1))
    await reply(store, "c3", chat_key=OTHER_CHAT, user_id="u1", billed_chars=1000)

    assert await store.usage(CHAT) == [
        UsageRecord(CHAT, "u1", billed_chars=123, requests=2),
        UsageRecord(CHAT, "u2", billed_chars=7, requests=1),
    ]
    assert await store.usage(OTHER_CHAT) == [
        UsageRecord(OTHER_CHAT, "u1", billed_chars=1000, requests=1)
    ]


async def test_usage_counts_replies_that_bill_nothing(store: ConversationStore) -> None:
    await reply(store, "c1", billed_chars=0)

    assert await store.usage(CHAT) == [UsageRecord(CHAT, "u1", billed_chars=0, requests=1)]


async def test_usage_holds_counts_beyond_32_bits(store: ConversationStore) -> None:
    await reply(store, "c1", billed_chars=2**31)
    await reply(store, "c1", billed_chars=2**31)

    assert (await store.usage(CHAT))[0].billed_chars == 2**32


# --- time --------------------------------------------------------------------------------------


async def test_datetimes_come_back_aware_utc_and_equal_to_the_microsecond(
    store: ConversationStore,
) -> None:
    # Given in +09:00 with microseconds: nothing may be shifted or truncated on any backend.
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2025, 1, 1, 8, 59, 59, 999999, tzinfo=tokyo)
    used = datetime(2025, 1, 1, 9, 0, 0, 1, tzinfo=tokyo)
    await reply(store, "c1", when=created)
    await reply(store, "c1", when=used)

    for record in [await store.conversation("c1"), *(await store.conversations(CHAT))]:
        assert record is not None
        assert record.created_at.tzinfo is UTC
        assert record.last_used_at.tzinfo is UTC
        assert record.created_at == created
        assert record.last_used_at == used
        assert record.created_at.microsecond == 999999
        assert record.last_used_at.microsecond == 1


async def test_naive_datetimes_are_refused(store: ConversationStore) -> None:
    naive = datetime(2025, 1, 1, 12, 0)  # noqa: DTZ001 - the point of the test

    with pytest.raises(ValueError, match="naive"):
        await reply(store, "c1", when=naive)
    with pytest.raises(ValueError, match="naive"):
        await store.reset(CHAT, at=naive)

    assert await store.current(CHAT) is None
    assert await store.usage(CHAT) == []


# --- concurrency -------------------------------------------------------------------------------


async def test_concurrent_replies_lose_no_usage_increments(store: ConversationStore) -> None:
    created = await asyncio.gather(
        *(reply(store, "c1", billed_chars=n, when=at(n)) for n in range(1, 21))
    )

    assert created.count(True) == 1
    assert await store.usage(CHAT) == [
        UsageRecord(CHAT, "u1", billed_chars=sum(range(1, 21)), requests=20)
    ]
    assert [c.conversation_id for c in await store.conversations(CHAT)] == ["c1"]


async def test_concurrent_new_conversations_are_each_created_once(
    store: ConversationStore,
) -> None:
    created = await asyncio.gather(
        *(reply(store, f"c{n:02d}", user_id=f"u{n % 3}", when=at(n)) for n in range(20))
    )

    assert created == [True] * 20
    assert len(await store.conversations(CHAT, limit=50)) == 20
    assert await store.current(CHAT) in {f"c{n:02d}" for n in range(20)}
    assert sum(u.requests for u in await store.usage(CHAT)) == 20


async def test_two_engines_on_one_database_lose_no_increments(sql_target: SqlTarget) -> None:
    # Two stores, two engines, two connection pools: as close to two processes as one test gets.
    async with await sql_target.open() as first, await sql_target.open() as second:
        created = await asyncio.gather(
            *(
                reply(store, "c1", billed_chars=1, when=at(n))
                for n in range(10)
                for store in (first, second)
            )
        )

        assert created.count(True) == 1
        assert await first.usage(CHAT) == [UsageRecord(CHAT, "u1", billed_chars=20, requests=20)]
        assert await second.usage(CHAT) == await first.usage(CHAT)


# --- lifecycle ---------------------------------------------------------------------------------


async def test_ping_succeeds_on_an_open_store(store: ConversationStore) -> None:
    await store.ping()


async def test_closed_store_refuses_calls(store: ConversationStore) -> None:
    await store.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await store.ping()
    with pytest.raises(RuntimeError, match="closed"):
        await store.current(CHAT)
    await store.aclose()  # Closing twice is harmless (the fixture closes again, too).


async def test_memory_store_is_an_async_context_manager() -> None:
    async with MemoryStore() as store:
        await reply(store, "c1")
    with pytest.raises(RuntimeError, match="closed"):
        await store.ping()


async def test_reopening_keeps_schema_and_data(sql_target: SqlTarget) -> None:
    async with await sql_target.open() as store:
        await reply(store, "c1")
        await store.set_title("c1", "kept")

    # Opening again runs create_schema on existing tables: it must neither fail nor wipe them.
    async with await sql_target.open() as store:
        assert await store.current(CHAT) == "c1"
        record = await store.conversation("c1")
        assert record is not None
        assert record.title == "kept"


# --- SQLite specifics --------------------------------------------------------------------------


async def test_sqlite_data_survives_restart(sqlite_target: SqlTarget) -> None:
    store = await sqlite_target.open()
    await reply(store, "c1", when=T0)
    await reply(store, "c2", when=at(1), billed_chars=5)
    await store.reset(CHAT, at=at(2))
    await store.aclose()

    async with await sqlite_target.open() as restarted:
        assert await restarted.current(CHAT) is None
        assert [c.conversation_id for c in await restarted.conversations(CHAT)] == ["c2", "c1"]
        assert await restarted.usage(CHAT) == [
            UsageRecord(CHAT, "u1", billed_chars=15, requests=2)
        ]


async def test_sqlite_creates_the_missing_parent_directory(sqlite_target: SqlTarget) -> None:
    database = make_url(sqlite_target.url).database
    assert database is not None
    file = Path(database)
    assert not await asyncio.to_thread(file.parent.exists)

    async with await sqlite_target.open() as store:
        await store.ping()

    assert await asyncio.to_thread(file.exists)


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(
    sqlite_target: SqlTarget,
) -> None:
    async with await sqlite_target.open() as store, store.engine.connect() as conn:
        assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await conn.scalar(text("PRAGMA busy_timeout")) == 15000
        assert await conn.scalar(text("PRAGMA synchronous")) == 1  # NORMAL
        assert await conn.scalar(text("PRAGMA foreign_keys")) == 1

    # WAL is a property of the file: a plain engine without our pragmas sees it too.
    plain = create_async_engine(sqlite_target.url)
    try:
        async with plain.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
    finally:
        await plain.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_works(url: str) -> None:
    # One shared connection, or each session would see its own empty database.
    async with await SqlStore.open(url) as store:
        assert await reply(store, "c1") is True
        assert await store.current(CHAT) == "c1"
        await store.ping()
