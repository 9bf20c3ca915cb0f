"""``MemoryStore``: the conversation store in dicts, for tests and ``chat --offline``.

It passes the same contract suite as ``SqlStore``, so core's unit tests exercise the behaviour a
deployment gets. Every method finishes without awaiting, which makes each call atomic on the
event loop, as a transaction is in SQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING, Self

from storage.order import LocalOrder
from storage.protocol import (
    ChatState,
    ChatUsage,
    ConversationRecord,
    InflightRecord,
    TurnRecord,
    UsageRecord,
    UsageTotals,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date, datetime
    from types import TracebackType

    from storage.protocol import Mode

__all__ = ["MemoryStore"]


class MemoryStore:
    """``ConversationStore`` in process memory; nothing survives the process."""

    __slots__ = (
        "_chats",
        "_closed",
        "_conversations",
        "_days",
        "_messages",
        "_replies",
        "_turns",
        "_usage",
    )

    def __init__(self) -> None:
        self._chats: dict[str, ChatState] = {}
        self._conversations: dict[str, ConversationRecord] = {}
        self._turns: dict[str, list[TurnRecord]] = {}
        self._usage: dict[tuple[str, str], UsageRecord] = {}
        self._days: dict[tuple[str, str, date], UsageTotals] = {}
        self._messages: dict[tuple[str, str], str] = {}
        self._replies: dict[str, InflightRecord] = {}
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
        return self._chats.get(chat_key, ChatState()).conversation_id

    async def state(self, chat_key: str) -> ChatState:
        self._check_open()
        return self._chats.get(chat_key, ChatState())

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
        self._update_chat(chat_key, conversation_id=conversation_id)
        created = self._touch(chat_key, conversation_id, "server", None, at)
        self._count(chat_key, user_id, at, billed_chars=billed_chars, streamed_chars=0)
        return created

    async def record_turn(
        self,
        chat_key: str,
        conversation_id: str,
        *,
        model: str,
        user: str,
        assistant: str,
        user_id: str,
        at: datetime,
        replace_last: bool = False,
    ) -> bool:
        self._check_open()
        at = _to_utc(at)
        self._update_chat(chat_key, local_id=conversation_id)
        created = self._touch(chat_key, conversation_id, "completions", model, at)
        turns = self._turns.setdefault(conversation_id, [])
        if replace_last and turns:
            # A regenerate: the same question, a new answer.
            turns[-1] = replace(turns[-1], assistant=assistant)
        else:
            turns.append(TurnRecord(user=user, assistant=assistant))
        self._count(chat_key, user_id, at, billed_chars=0, streamed_chars=len(assistant))
        return created

    async def turns(self, conversation_id: str) -> list[TurnRecord]:
        self._check_open()
        return list(self._turns.get(conversation_id, []))

    async def reset(self, chat_key: str, *, at: datetime) -> None:
        self._check_open()
        _to_utc(at)  # Refuse naive times here too, so tests catch them on either backend.
        if chat_key in self._chats:
            self._update_chat(chat_key, conversation_id=None, local_id=None)

    async def set_model(self, chat_key: str, model: str | None, *, at: datetime) -> None:
        self._check_open()
        _to_utc(at)
        self._update_chat(chat_key, model=model)

    async def set_system_prompt(self, chat_key: str, prompt: str | None, *, at: datetime) -> None:
        self._check_open()
        _to_utc(at)
        self._update_chat(chat_key, system_prompt=prompt)

    async def resume(
        self, chat_key: str, conversation_id: str, *, at: datetime
    ) -> ConversationRecord | None:
        self._check_open()
        _to_utc(at)
        record = self._conversations.get(conversation_id)
        if record is None or record.chat_key != chat_key:
            return None
        if record.mode == "server":
            self._update_chat(chat_key, conversation_id=conversation_id, model=None)
        else:
            self._update_chat(chat_key, local_id=conversation_id, model=record.model)
        return record

    async def remember_messages(
        self, chat_key: str, conversation_id: str, message_ids: Sequence[str], *, at: datetime
    ) -> None:
        self._check_open()
        _to_utc(at)
        if conversation_id not in self._conversations:
            return  # As SqlStore: a message can only point at a stored conversation.
        for message_id in message_ids:
            self._messages[chat_key, message_id] = conversation_id

    async def message_conversation(self, chat_key: str, message_id: str) -> str | None:
        self._check_open()
        return self._messages.get((chat_key, message_id))

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
        _check_limit("limit", limit)
        mine = [c for c in self._conversations.values() if c.chat_key == chat_key]
        # Same order as SqlStore: last used, then created, then id, all descending.
        mine.sort(key=lambda c: (c.last_used_at, c.created_at, c.conversation_id), reverse=True)
        return mine[:limit]

    async def usage(self, chat_key: str) -> list[UsageRecord]:
        self._check_open()
        return sorted(
            (u for u in self._usage.values() if u.chat_key == chat_key), key=lambda u: u.user_id
        )

    async def user_usage(self, user_id: str, *, platform: str, since: date) -> UsageTotals:
        self._check_open()
        prefix = f"{platform}:"
        return _sum(
            totals
            for (chat_key, user, day), totals in self._days.items()
            if user == user_id and chat_key.startswith(prefix) and day >= since
        )

    async def stats(
        self, *, platform: str, since: date | None = None, top: int = 5
    ) -> tuple[UsageTotals, list[ChatUsage]]:
        self._check_open()
        _check_limit("top", top)
        prefix = f"{platform}:"
        rows: list[tuple[str, UsageTotals]]
        if since is None:
            rows = [
                (u.chat_key, UsageTotals(u.requests, u.billed_chars, u.streamed_chars))
                for u in self._usage.values()
            ]
        else:
            rows = [(chat, t) for (chat, _, day), t in self._days.items() if day >= since]
        per_chat: dict[str, list[UsageTotals]] = {}
        for chat_key, totals in rows:
            if chat_key.startswith(prefix):
                per_chat.setdefault(chat_key, []).append(totals)
        chats = [ChatUsage(chat_key, _sum(totals)) for chat_key, totals in per_chat.items()]
        chats.sort(key=lambda c: (-c.totals.chars, -c.totals.requests, c.chat_key))
        return _sum(c.totals for c in chats), chats[:top]

    async def begin_reply(
        self,
        reply_id: str,
        chat_key: str,
        *,
        platform: str,
        target: str,
        language: str | None,
        at: datetime,
    ) -> None:
        self._check_open()
        self._replies[reply_id] = InflightRecord(
            reply_id=reply_id,
            chat_key=chat_key,
            platform=platform,
            target=target,
            message_ids=(),
            language=language,
            started_at=_to_utc(at),
        )

    async def note_reply_messages(
        self, reply_id: str, message_ids: Sequence[str], shown: str = ""
    ) -> None:
        self._check_open()
        if isinstance(message_ids, str):  # as SqlStore: one id would pass as its characters
            raise TypeError("message_ids must be a sequence of ids, not one string")
        existing = self._replies.get(reply_id)
        if existing is not None:
            self._replies[reply_id] = replace(
                existing, message_ids=tuple(message_ids), shown=shown
            )

    async def end_reply(self, reply_id: str) -> None:
        self._check_open()
        self._replies.pop(reply_id, None)

    async def open_replies(self, platform: str) -> list[InflightRecord]:
        self._check_open()
        mine = [r for r in self._replies.values() if r.platform == platform]
        # Same order as SqlStore: started, then id by code point.
        mine.sort(key=lambda r: (r.started_at, r.reply_id))
        return mine

    def chat_order(self) -> LocalOrder:
        return LocalOrder()

    async def ping(self) -> None:
        self._check_open()

    async def aclose(self) -> None:
        """Mark the store closed: later calls raise ``RuntimeError``, as ``SqlStore``'s do."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryStore is closed")

    def _update_chat(self, chat_key: str, **changes: str | None) -> None:
        """Change some of a chat's fields, creating its state (as SqlStore's upserts do)."""
        self._chats[chat_key] = replace(self._chats.get(chat_key, ChatState()), **changes)

    def _touch(
        self, chat_key: str, conversation_id: str, mode: Mode, model: str | None, at: datetime
    ) -> bool:
        """Create or touch the conversation row; ``True`` if it is new.

        An existing row keeps the chat and mode that created it, as SqlStore's upsert does; a
        completions turn updates the model it last used.
        """
        existing = self._conversations.get(conversation_id)
        if existing is None:
            self._conversations[conversation_id] = ConversationRecord(
                conversation_id=conversation_id,
                chat_key=chat_key,
                title=None,
                created_at=at,
                last_used_at=at,
                mode=mode,
                model=model,
            )
            return True
        changed = replace(existing, last_used_at=at)
        if model is not None:
            changed = replace(changed, model=model)
        self._conversations[conversation_id] = changed
        return False

    def _count(
        self, chat_key: str, user_id: str, at: datetime, *, billed_chars: int, streamed_chars: int
    ) -> None:
        """Add one request and the characters to the user's all-time and daily usage."""
        key = (chat_key, user_id)
        usage = self._usage.get(key, UsageRecord(chat_key, user_id, billed_chars=0, requests=0))
        self._usage[key] = replace(
            usage,
            billed_chars=usage.billed_chars + billed_chars,
            requests=usage.requests + 1,
            streamed_chars=usage.streamed_chars + streamed_chars,
        )
        day = (chat_key, user_id, at.date())
        self._days[day] = _sum(
            [self._days.get(day, UsageTotals()), UsageTotals(1, billed_chars, streamed_chars)]
        )


def _sum(totals: Iterable[UsageTotals]) -> UsageTotals:
    requests = billed = streamed = 0
    for each in totals:
        requests += each.requests
        billed += each.billed_chars
        streamed += each.streamed_chars
    return UsageTotals(requests=requests, billed_chars=billed, streamed_chars=streamed)


def _check_limit(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


def _to_utc(value: datetime) -> datetime:
    """Aware UTC, refusing naive values; ``storage.models.to_utc`` without importing SQLAlchemy."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: storage needs timezone-aware times")
    return value.astimezone(UTC)
