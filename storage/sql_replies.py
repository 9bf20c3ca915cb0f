"""Replies in flight for ``SqlStore``: record one, note its messages, forget it, list the open.

These run on every reply, several times, so ``SqlStore`` gathers them from many replies into
one transaction (``storage.sql_batch``) and ``apply`` writes each batch as at most three
statements, each run for many rows: upserts, ``UPDATE``s and ``DELETE``s by primary key. They
run on a plain connection, not a session: with nothing to load or track, the ORM's unit of work
would only add cost. A row left behind is a reply a crash cut off; ``open_replies`` finds them
at start through the (platform, started_at) index. Message ids are stored as a JSON list in one
column: a reply's ids are always read and replaced together, never queried one by one. The
shown text goes in the same ``UPDATE`` as the ids it belongs to, so a restart never pairs one
note's ids with another's text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, column, delete, insert, or_, select, text, true, update

from storage import pg_order
from storage.models import ReplyInFlight
from storage.protocol import InflightRecord
from storage.sql_reads import bytewise
from storage.sql_writes import upsert_statement

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import ColumnElement
    from sqlalchemy.ext.asyncio import AsyncConnection

    from storage.sql_writes import Insert

__all__ = [
    "ReplyOp",
    "apply",
    "encode_ids",
    "open_replies",
    "reply_row",
]

# ("begin", reply_id, the row) | ("note", reply_id, {"ids": …, "shown": …}) | ("end", reply_id, {})
ReplyOp = tuple[str, str, dict[str, object]]


def encode_ids(message_ids: Sequence[str]) -> str:
    """The column's JSON; a lone ``str`` is refused, since it would pass as its characters."""
    if isinstance(message_ids, str):
        raise TypeError("message_ids must be a sequence of ids, not one string")
    return json.dumps(list(message_ids), separators=(",", ":"))


def reply_row(
    reply_id: str,
    chat_key: str,
    *,
    platform: str,
    target: str,
    language: str | None,
    at: datetime,
    owner: str | None = None,
) -> dict[str, object]:
    """A new reply's row: no messages yet; ``owner`` the process showing it, if several
    share the database."""
    return {
        "reply_id": reply_id,
        "chat_key": chat_key,
        "platform": platform,
        "target": target,
        "message_ids": encode_ids(()),
        "language": language,
        "started_at": at,
        "shown": "",
        "owner": owner,
    }


async def apply(conn: AsyncConnection, dialect_insert: Insert | None, ops: list[ReplyOp]) -> None:
    """Many replies' operations, in order, as at most three statements (each run for many rows):
    per reply the end state of its operations is what is written. A begin replaces the row; a
    note after it is folded into it; an end deletes whatever came before it in the batch."""
    rows: dict[str, dict[str, object]] = {}  # reply → a row to write whole
    notes: dict[str, dict[str, object]] = {}  # reply → ids and text for its existing row
    ends: dict[str, None] = {}
    for kind, reply_id, values in ops:
        if kind == "begin":
            ends.pop(reply_id, None)
            notes.pop(reply_id, None)
            rows[reply_id] = dict(values)
        elif kind == "note":
            if reply_id in rows:
                rows[reply_id].update(message_ids=values["ids"], shown=values["shown"])
            elif reply_id not in ends:
                notes[reply_id] = {"rid": reply_id, **values}
        else:
            rows.pop(reply_id, None)
            notes.pop(reply_id, None)
            ends[reply_id] = None
    if ends:
        await conn.execute(_END, [{"rid": reply_id} for reply_id in ends])
    if rows:
        many = list(rows.values())
        if dialect_insert is None:
            await conn.execute(_END, [{"rid": row["reply_id"]} for row in many])
            await conn.execute(insert(ReplyInFlight), many)
        else:
            replaced = tuple(name for name in many[0] if name != "reply_id")
            statement = upsert_statement(dialect_insert, ReplyInFlight, replaced)
            await conn.execute(statement, many)
    if notes:
        await conn.execute(_NOTE, list(notes.values()))


# Built once: these run several times per reply (see ``upsert_statement`` for why).
_NOTE = (
    update(ReplyInFlight)
    .where(ReplyInFlight.reply_id == bindparam("rid"))
    .values(message_ids=bindparam("ids"), shown=bindparam("shown"))
)
_END = delete(ReplyInFlight).where(ReplyInFlight.reply_id == bindparam("rid"))


async def open_replies(
    conn: AsyncConnection, platform: str, *, dialect: str, owner: str | None = None
) -> list[InflightRecord]:
    """The platform's replies left in flight, oldest first: all of them, except, when
    processes share PostgreSQL, those another live process (not ``owner``) is showing."""
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
        .where(_ours(dialect, owner))
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


def _ours(dialect: str, owner: str | None) -> ColumnElement[bool]:
    """Replies this process may take over: all of them, unless processes share PostgreSQL,
    where a reply another live process is showing stays its own (``storage.pg_order``)."""
    if dialect != "postgresql":
        return true()
    return or_(
        ReplyInFlight.owner.is_(None),
        ReplyInFlight.owner == owner,
        ReplyInFlight.owner.not_in(text(pg_order.ALIVE_TOKENS).columns(column("token"))),
    )


def _decode(message_ids: str) -> tuple[str, ...]:
    return tuple(str(each) for each in json.loads(message_ids))
