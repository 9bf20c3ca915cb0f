"""Replies in flight for ``SqlStore``: record one, note its messages, forget it, list the open.

These run on every reply, several times, so each is one statement in its own short
transaction: an upsert, an ``UPDATE`` or a ``DELETE`` by primary key. They run on a plain
connection, not a session: with nothing to load or track, the ORM's unit of work would only add
about a millisecond to every call. A row left behind is a reply a crash cut off;
``open_replies`` finds them at start through the (platform, started_at) index. Message ids are
stored as a JSON list in one column: a reply's ids are always read and replaced together, never
queried one by one. The shown text goes in the same ``UPDATE`` as the ids it belongs to, so a
restart never pairs one note's ids with another's text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, insert, select, update

from storage.models import ReplyInFlight
from storage.protocol import InflightRecord
from storage.sql_reads import bytewise
from storage.sql_writes import upsert_statement

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncConnection

    from storage.sql_writes import Insert

__all__ = ["begin_reply", "encode_ids", "end_reply", "note_reply_messages", "open_replies"]


def encode_ids(message_ids: Sequence[str]) -> str:
    """The column's JSON; a lone ``str`` is refused, since it would pass as its characters."""
    if isinstance(message_ids, str):
        raise TypeError("message_ids must be a sequence of ids, not one string")
    return json.dumps(list(message_ids), separators=(",", ":"))


async def begin_reply(
    conn: AsyncConnection,
    dialect_insert: Insert | None,
    reply_id: str,
    chat_key: str,
    *,
    platform: str,
    target: str,
    language: str | None,
    at: datetime,
) -> None:
    """Write the reply's row with no messages yet, replacing any row of the same id."""
    values = {
        "reply_id": reply_id,
        "chat_key": chat_key,
        "platform": platform,
        "target": target,
        "message_ids": encode_ids(()),
        "language": language,
        "started_at": at,
        "shown": "",
    }
    if dialect_insert is None:
        # No ON CONFLICT here: two statements, still one transaction.
        await conn.execute(delete(ReplyInFlight).where(ReplyInFlight.reply_id == reply_id))
        await conn.execute(insert(ReplyInFlight).values(**values))
        return
    replaced = tuple(name for name in values if name != "reply_id")
    await conn.execute(
        upsert_statement(dialect_insert, ReplyInFlight, tuple(values), replaced), values
    )


# Built once: these run several times per reply (see ``upsert_statement`` for why).
_NOTE = (
    update(ReplyInFlight)
    .where(ReplyInFlight.reply_id == bindparam("rid"))
    .values(message_ids=bindparam("ids"), shown=bindparam("shown"))
)
_END = delete(ReplyInFlight).where(ReplyInFlight.reply_id == bindparam("rid"))


async def note_reply_messages(
    conn: AsyncConnection, reply_id: str, encoded_ids: str, shown: str
) -> None:
    """Replace the reply's message ids (already JSON) and shown text in one statement; an
    unknown reply matches no row."""
    await conn.execute(_NOTE, {"rid": reply_id, "ids": encoded_ids, "shown": shown})


async def end_reply(conn: AsyncConnection, reply_id: str) -> None:
    await conn.execute(_END, {"rid": reply_id})


async def open_replies(
    conn: AsyncConnection, platform: str, *, dialect: str
) -> list[InflightRecord]:
    query = (
        select(
            ReplyInFlight.reply_id,
            ReplyInFlight.chat_key,
            ReplyInFlight.platform,
            ReplyInFlight.target,
            ReplyInFlight.message_ids,
            ReplyInFlight.language,
            ReplyInFlight.started_at,
            ReplyInFlight.shown,
        )
        .where(ReplyInFlight.platform == platform)
        # Ties broken by id, by code point, so every backend returns the same order.
        .order_by(ReplyInFlight.started_at, bytewise(ReplyInFlight.reply_id, dialect))
    )
    rows = await conn.execute(query)
    return [
        InflightRecord(
            reply_id, chat_key, platform, target, _decode(ids), language, started_at, shown
        )
        for reply_id, chat_key, platform, target, ids, language, started_at, shown in rows
    ]


def _decode(message_ids: str) -> tuple[str, ...]:
    return tuple(str(each) for each in json.loads(message_ids))
