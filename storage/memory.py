"""``MemoryStore``: the conversation store in dicts, for tests and ``chat --offline``.

It passes the same contract suite as ``SqlStore``, so core's unit tests exercise the behaviour a
deployment gets. Every method finishes without awaiting, which makes each call atomic on the
event loop, as a transaction is in SQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING, Self

from storage.protocol import ConversationRecord, UsageRecord

if TYPE_CHECKING:
    from datetime import datetime
    from types import TracebackType

__all__ = ["MemoryStore"]


class MemoryStore:
    """``ConversationStore`` in process memory; nothing survives the process."""

    __slots__ = ("_closed", "_conversations", "_current", "_usage")

    def __init__(self) -> None:
        self._current: dict[str, str | None] = {}
        self._conversations: dict[str, ConversationRecord] = {}
        self._usage: dict[tuple[str, str], UsageRecord] = {}
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def current(self, chat_key: str) -> str | None:
        self._check_open()
        return self._current.get(chat_key)

    async def record_reply(
        self,
        chat_key: str,
        conversation_id: str,
        *,
        user_id: str,
        billed_chars: int,
        at: datetime,
    ) -> bool:
        self._check_open()
        at = _to_utc(at)
        self._current[chat_key] = conversation_id

        existing = self._conversations.get(conversation_id)
        if existing is None:
            self._conversations[conversation_id] = ConversationRecord(
                conversation_id=conversation_id,
                chat_key=chat_key,
                title=None,
                created_at=at,
                last_used_at=at,
            )
        else:
            # The row keeps the chat that created it, as SqlStore's upsert does.
            self._conversations[conversation_id] = replace(existing, last_used_at=at)

        key = (chat_key, user_id)
        usage = self._usage.get(key, UsageRecord(chat_key, user_id, billed_chars=0, requests=0))
        self._usage[key] = replace(
            usage, billed_chars=usage.billed_chars + billed_chars, requests=usage.requests + 1
        )
        return existing is None

    async def reset(self, chat_key: str, *, at: datetime) -> None:
        self._check_open()
        _to_utc(at)  # Refuse naive times here too, so tests catch them on either backend.
        if chat_key in self._current:
            self._current[chat_key] = None

    async def set_title(self, conversation_id: str, title: str) -> None:
        self._check_open()
        existing = self._conversations.get(conversation_id)
        if existing is not None:
            self._conversations[conversation_id] = replace(existing, title=title)

    async def conversation(self, conversation_id: str) -> ConversationRecord | None:
        self._check_open()
        return self._conversations.get(conversation_id)

    async def conversations(self, chat_key: str, *, limit: int = 10) -> list[ConversationRecord]:
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        mine = [c for c in self._conversations.values() if c.chat_key == chat_key]
        # Same order as SqlStore: last used, then created, then id, all descending.
        mine.sort(key=lambda c: (c.last_used_at, c.created_at, c.conversation_id), reverse=True)
        return mine[:limit]

    async def usage(self, chat_key: str) -> list[UsageRecord]:
        self._check_open()
        return sorted(
            (u for u in self._usage.values() if u.chat_key == chat_key), key=lambda u: u.user_id
        )

    async def ping(self) -> None:
        self._check_open()

    async def aclose(self) -> None:
        """Mark the store closed: later calls raise ``RuntimeError``, as ``SqlStore``'s do."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryStore is closed")


def _to_utc(value: datetime) -> datetime:
    """Aware UTC, refusing naive values; ``storage.models.to_utc`` without importing SQLAlchemy."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: storage needs timezone-aware times")
    return value.astimezone(UTC)
