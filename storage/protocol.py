"""The storage seam: everything core knows about persistence.

Chat keys are plain strings here (core builds them) so storage imports no project code. Times are
timezone-aware UTC datetimes going in and coming out, whatever the backend stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["ConversationRecord", "ConversationStore", "UsageRecord"]


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """One Kamiya conversation a chat has had; kept after a reset so it can be resumed."""

    conversation_id: str
    chat_key: str
    title: str | None
    created_at: datetime
    last_used_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one user of one chat has cost: billed characters of ``fullContent`` and requests."""

    chat_key: str
    user_id: str
    billed_chars: int
    requests: int


class ConversationStore(Protocol):
    """Chat → current conversationId, the conversation history, and usage.

    Implementations: ``storage.memory.MemoryStore`` and ``storage.sql.SqlStore`` (any SQLAlchemy
    async URL); both pass the same contract suite.
    """

    async def current(self, chat_key: str) -> str | None:
        """The conversationId the chat's next message continues; ``None`` starts a new one."""
        ...

    async def record_reply(
        self,
        chat_key: str,
        conversation_id: str,
        *,
        user_id: str,
        billed_chars: int,
        at: datetime,
    ) -> bool:
        """Store a completed turn atomically.

        Makes ``conversation_id`` the chat's current one, creates or touches its conversation row
        and adds one request and ``billed_chars`` to the user's usage. Returns ``True`` when the
        conversation row is new, so the caller knows a title is due.
        """
        ...

    async def reset(self, chat_key: str, *, at: datetime) -> None:
        """Forget the chat's current conversation; its row stays in the history."""
        ...

    async def set_title(self, conversation_id: str, title: str) -> None:
        """Name a conversation; unknown ids are ignored."""
        ...

    async def conversation(self, conversation_id: str) -> ConversationRecord | None: ...

    async def conversations(self, chat_key: str, *, limit: int = 10) -> list[ConversationRecord]:
        """The chat's conversations, most recently used first."""
        ...

    async def usage(self, chat_key: str) -> list[UsageRecord]:
        """Usage rows of the chat, ordered by user id."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
