"""The contract's usage periods: UTC days, a user's sums per platform, the admins' stats.

Same backends as ``test_contract.py``. Periods are UTC calendar days, whatever zone ``at`` is
given in, so the boundaries below sit on UTC midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from storage import ChatUsage, UsageTotals
from tests.storage.test_contract import reply

if TYPE_CHECKING:
    from storage import ConversationStore

JAN_31 = date(2025, 1, 31)
FEB_1 = date(2025, 2, 1)
LAST_SECOND_OF_JAN = datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
FIRST_SECOND_OF_FEB = datetime(2025, 2, 1, tzinfo=UTC)


async def turn(
    store: ConversationStore,
    chat_key: str,
    assistant: str,
    *,
    user_id: str = "u1",
    when: datetime = FIRST_SECOND_OF_FEB,
) -> None:
    await store.record_turn(
        chat_key,
        f"l-{chat_key}",
        model="m",
        user="q",
        assistant=assistant,
        user_id=user_id,
        at=when,
    )


async def spent(
    store: ConversationStore,
    chat_key: str,
    billed_chars: int,
    *,
    user_id: str = "u1",
    when: datetime = FIRST_SECOND_OF_FEB,
) -> None:
    await reply(
        store,
        f"c-{chat_key}",
        chat_key=chat_key,
        user_id=user_id,
        billed_chars=billed_chars,
        when=when,
    )


# --- a user's usage ----------------------------------------------------------------------------


async def test_unknown_user_has_no_usage(store: ConversationStore) -> None:
    assert await store.user_usage("u1", platform="telegram", since=JAN_31) == UsageTotals()


async def test_user_usage_sums_replies_and_turns(store: ConversationStore) -> None:
    await spent(store, "telegram:1", 100)
    await turn(store, "telegram:2", "12345")
    await turn(store, "telegram:2", "京都")

    totals = await store.user_usage("u1", platform="telegram", since=FEB_1)

    assert totals == UsageTotals(requests=3, billed_chars=100, streamed_chars=7)
    assert totals.chars == 107


async def test_user_usage_counts_from_the_utc_day_of_each_record(
    store: ConversationStore,
) -> None:
    await spent(store, "telegram:1", 1, when=LAST_SECOND_OF_JAN)
    await spent(store, "telegram:1", 10, when=FIRST_SECOND_OF_FEB)
    # 08:00 on 1 February in Tokyo is still 31 January in UTC.
    tokyo = datetime(2025, 2, 1, 8, 0, tzinfo=timezone(timedelta(hours=9)))
    await spent(store, "telegram:1", 100, when=tokyo)

    assert await store.user_usage("u1", platform="telegram", since=FEB_1) == UsageTotals(1, 10)
    assert await store.user_usage("u1", platform="telegram", since=JAN_31) == UsageTotals(3, 111)
    since_tomorrow = await store.user_usage("u1", platform="telegram", since=date(2025, 2, 2))
    assert since_tomorrow == UsageTotals()


async def test_user_usage_since_the_first_of_the_month(store: ConversationStore) -> None:
    await spent(store, "telegram:1", 1, when=datetime(2024, 12, 31, 12, tzinfo=UTC))
    await spent(store, "telegram:1", 10, when=datetime(2025, 1, 1, tzinfo=UTC))
    await spent(store, "telegram:1", 100, when=LAST_SECOND_OF_JAN)
    await spent(store, "telegram:1", 1000, when=FIRST_SECOND_OF_FEB)

    january = await store.user_usage("u1", platform="telegram", since=date(2025, 1, 1))
    assert january == UsageTotals(3, 1110)
    assert await store.user_usage("u1", platform="telegram", since=FEB_1) == UsageTotals(1, 1000)


async def test_user_usage_counts_only_that_user_on_that_platform(
    store: ConversationStore,
) -> None:
    await spent(store, "telegram:1", 1)
    await spent(store, "telegram:-100200", 10)
    await spent(store, "telegram:1", 100, user_id="u2")
    await spent(store, "discord:1", 1000)
    await spent(store, "telegramx:1", 10_000)  # another platform whose name starts the same
    await spent(store, "Telegram:1", 100_000)  # platforms are case-sensitive (SQLite's LIKE isn't)
    await spent(store, "telegram_1", 1_000_000)  # "_" would match any character in LIKE

    assert await store.user_usage("u1", platform="telegram", since=FEB_1) == UsageTotals(2, 11)
    assert await store.user_usage("u1", platform="discord", since=FEB_1) == UsageTotals(1, 1000)
    assert await store.user_usage("u2", platform="telegram", since=FEB_1) == UsageTotals(1, 100)
    assert await store.user_usage("u1", platform="tele", since=FEB_1) == UsageTotals()


async def test_daily_usage_holds_counts_beyond_32_bits(store: ConversationStore) -> None:
    await spent(store, "telegram:1", 2**31)
    await spent(store, "telegram:1", 2**31)

    totals = await store.user_usage("u1", platform="telegram", since=FEB_1)
    assert totals.billed_chars == 2**32


# --- stats -------------------------------------------------------------------------------------


async def test_stats_of_an_unused_platform_are_empty(store: ConversationStore) -> None:
    await spent(store, "discord:1", 5)

    assert await store.stats(platform="telegram") == (UsageTotals(), [])
    assert await store.stats(platform="telegram", since=FEB_1) == (UsageTotals(), [])


async def test_stats_rank_chats_by_chars_then_requests_then_key(
    store: ConversationStore,
) -> None:
    await spent(store, "telegram:3", 50)
    await turn(store, "telegram:3", "x" * 50)  # 100 chars, 2 requests
    await spent(store, "telegram:2", 100)  # 100 chars, 1 request
    await spent(store, "telegram:1", 100)  # the same: chat key decides,
    await spent(store, "telegram:-100", 100)  # by code point, whatever the database's locale
    await spent(store, "telegram:9", 500, user_id="u2")
    await spent(store, "telegram:0", 1)
    await spent(store, "discord:1", 10_000)

    totals, top = await store.stats(platform="telegram", top=5)

    assert totals == UsageTotals(requests=7, billed_chars=851, streamed_chars=50)
    assert top == [
        ChatUsage("telegram:9", UsageTotals(1, 500)),
        ChatUsage("telegram:3", UsageTotals(2, 50, 50)),
        ChatUsage("telegram:-100", UsageTotals(1, 100)),
        ChatUsage("telegram:1", UsageTotals(1, 100)),
        ChatUsage("telegram:2", UsageTotals(1, 100)),
    ]


async def test_stats_top_limits_the_list_not_the_totals(store: ConversationStore) -> None:
    for n in range(7):
        await spent(store, f"telegram:{n}", 10 + n)

    totals, top = await store.stats(platform="telegram")
    assert totals == UsageTotals(7, sum(range(10, 17)))
    assert [c.chat_key for c in top] == [f"telegram:{n}" for n in range(6, 1, -1)]  # default 5
    assert await store.stats(platform="telegram", top=0) == (totals, [])
    with pytest.raises(ValueError, match="top"):
        await store.stats(platform="telegram", top=-1)


async def test_stats_since_a_day_count_only_from_that_day(store: ConversationStore) -> None:
    await spent(store, "telegram:1", 1, when=LAST_SECOND_OF_JAN)
    await spent(store, "telegram:2", 10, when=LAST_SECOND_OF_JAN)
    await spent(store, "telegram:2", 100, when=FIRST_SECOND_OF_FEB)
    await turn(store, "telegram:3", "abc", when=FIRST_SECOND_OF_FEB)

    assert await store.stats(platform="telegram", since=FEB_1) == (
        UsageTotals(2, 100, 3),
        [
            ChatUsage("telegram:2", UsageTotals(1, 100)),
            ChatUsage("telegram:3", UsageTotals(1, 0, 3)),
        ],
    )
    assert await store.stats(platform="telegram") == (
        UsageTotals(4, 111, 3),
        [
            ChatUsage("telegram:2", UsageTotals(2, 110)),
            ChatUsage("telegram:3", UsageTotals(1, 0, 3)),
            ChatUsage("telegram:1", UsageTotals(1, 1)),
        ],
    )
    assert await store.stats(platform="telegram", since=JAN_31) == await store.stats(
        platform="telegram"
    )


async def test_stats_keep_platforms_apart(store: ConversationStore) -> None:
    await spent(store, "telegram:1", 1)
    await spent(store, "telegramx:1", 10)
    await spent(store, "Telegram:1", 100)
    await spent(store, "discord:1", 1000)

    for since in (None, FEB_1):
        totals, top = await store.stats(platform="telegram", since=since)
        assert totals == UsageTotals(1, 1)
        assert [c.chat_key for c in top] == ["telegram:1"]
