"""Usage queries for ``SqlStore``: per-chat totals, a user's totals and platform stats.

Counting a request is a write and lives in ``storage.sql_writes``; this module only reads the
``usage`` running totals and the ``usage_days`` rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage.models import Usage, UsageDay
from storage.protocol import ChatUsage, UsageRecord, UsageTotals
from storage.sql_reads import bytewise

if TYPE_CHECKING:
    from datetime import date

    from sqlalchemy import ColumnElement
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["stats", "usage", "user_usage"]


async def usage(session: AsyncSession, chat_key: str, *, dialect: str) -> list[UsageRecord]:
    query = (
        select(Usage).where(Usage.chat_key == chat_key).order_by(bytewise(Usage.user_id, dialect))
    )
    rows = await session.scalars(query)
    return [
        UsageRecord(
            chat_key=row.chat_key,
            user_id=row.user_id,
            billed_chars=row.billed_chars,
            requests=row.requests,
            streamed_chars=row.streamed_chars,
        )
        for row in rows
    ]


async def user_usage(
    session: AsyncSession, user_id: str, *, platform: str, since: date
) -> UsageTotals:
    query = select(*_sums(UsageDay)).where(
        UsageDay.user_id == user_id, UsageDay.day >= since, _of_platform(UsageDay, platform)
    )
    return _totals(*(await session.execute(query)).one())


async def stats(
    session: AsyncSession, *, platform: str, since: date | None, top: int, dialect: str
) -> tuple[UsageTotals, list[ChatUsage]]:
    # All time from the running totals: usage_days starts with 0002, usage is older.
    source: type[Usage | UsageDay] = Usage if since is None else UsageDay
    where = [_of_platform(source, platform)]
    if since is not None:
        where.append(UsageDay.day >= since)
    per_chat = (
        select(*_sums(source), source.chat_key)
        .where(*where)
        .group_by(source.chat_key)
        .order_by(
            (func.sum(source.billed_chars) + func.sum(source.streamed_chars)).desc(),
            func.sum(source.requests).desc(),
            bytewise(source.chat_key, dialect),
        )
        .limit(top)
    )
    totals = _totals(*(await session.execute(select(*_sums(source)).where(*where))).one())
    if top == 0:
        return totals, []
    rows = await session.execute(per_chat)
    return totals, [ChatUsage(chat, _totals(r, b, s)) for r, b, s, chat in rows]


def _of_platform(table: type[Usage | UsageDay], platform: str) -> ColumnElement[bool]:
    """Rows of the platform's chats; ``substr``, not ``LIKE``, which SQLite folds to any case."""
    prefix = f"{platform}:"
    return func.substr(table.chat_key, 1, len(prefix)) == prefix


def _sums(
    table: type[Usage | UsageDay],
) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
    """Sums of requests, billed and streamed characters; 0, not NULL, over no rows."""
    return (
        func.coalesce(func.sum(table.requests), 0),
        func.coalesce(func.sum(table.billed_chars), 0),
        func.coalesce(func.sum(table.streamed_chars), 0),
    )


def _totals(requests: int, billed: int, streamed: int) -> UsageTotals:
    # int(): PostgreSQL sums BIGINT as NUMERIC, which asyncpg returns as Decimal.
    return UsageTotals(int(requests), int(billed), int(streamed))
