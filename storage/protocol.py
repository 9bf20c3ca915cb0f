"""The storage seam: everything core knows about persistence.

Chat keys are plain strings here (core builds them) so storage imports no project code. Times are
timezone-aware UTC datetimes going in and coming out, whatever the backend stores. Days (for
usage periods) are UTC calendar days.

A chat is in one of two modes. **Server** (``model`` is ``None``): Kamiya's simplified API keeps
the context and the chat continues ``conversation_id``. **Completions** (``model`` set): the bot
keeps the context as turns in storage and the chat continues ``local_id``. Each mode has its own
slot, so switching model and back returns to the conversation that was left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date, datetime

__all__ = [
    "ChatOrder",
    "ChatState",
    "ChatUsage",
    "ConversationRecord",
    "ConversationStore",
    "InflightRecord",
    "Mode",
    "Place",
    "TurnRecord",
    "UsageRecord",
    "UsageTotals",
]

Mode = Literal["server", "completions"]


@dataclass(frozen=True, slots=True)
class ChatState:
    """Where a chat's next message goes, and how; all ``None`` for a chat never seen."""

    conversation_id: str | None = None  # server mode: the Kamiya conversation to continue
    local_id: str | None = None  # completions mode: the stored conversation to continue
    model: str | None = None  # None: server mode
    system_prompt: str | None = None  # None: the configured default


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """One conversation a chat has had; kept after a reset so it can be resumed.

    ``mode`` says who keeps its context; ``model`` is the completions model it last used
    (``None`` for server conversations).
    """

    conversation_id: str
    chat_key: str
    title: str | None
    created_at: datetime
    last_used_at: datetime
    mode: Mode = "server"
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One stored completions-mode exchange: the user's message and the reply to it."""

    user: str
    assistant: str


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one user of one chat has cost in all: requests, billed and streamed characters."""

    chat_key: str
    user_id: str
    billed_chars: int
    requests: int
    streamed_chars: int = 0


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over some rows of usage; ``chars`` is what limits count (billed + streamed)."""

    requests: int = 0
    billed_chars: int = 0
    streamed_chars: int = 0

    @property
    def chars(self) -> int:
        return self.billed_chars + self.streamed_chars


@dataclass(frozen=True, slots=True)
class InflightRecord:
    """A reply that was being shown when the process stopped: where, and in which messages.

    ``target`` is the frontend's own description of where the reply goes (JSON text), so a new
    process can edit those messages to say the reply was interrupted. ``shown`` is the text of
    the last message as the platform shows it (``""`` until noted): an edit replaces a message's
    whole text, so the new process needs it to keep what the reader saw and add the notice.
    """

    reply_id: str
    chat_key: str
    platform: str
    target: str
    message_ids: tuple[str, ...]
    language: str | None
    started_at: datetime
    shown: str = ""


@dataclass(frozen=True, slots=True)
class ChatUsage:
    """One chat's sums over a period, for the admins' top list."""

    chat_key: str
    totals: UsageTotals


class Place(Protocol):
    """A turn's place in its chat's line, taken when ``ChatOrder.place`` was called."""

    async def recorded(self) -> None:
        """Return once the place is in the line every process sees (a platform update may be
        acknowledged then: a later message, wherever it lands, queues behind it). Raises if
        it could not be recorded."""
        ...

    async def wait(self) -> None:
        """Return once every earlier place of the chat, in any process, is done; the chat is
        then this turn's until ``done``. Raises if the line cannot be read (database down)."""
        ...

    def done(self) -> None:
        """Leave the line (the turn ended, failed, or never waited): the next place may go.
        Never waits and never raises, so it is safe in ``finally`` during a cancellation."""
        ...


class ChatOrder(Protocol):
    """Per-chat turns in arrival order across every process sharing the store.

    One process orders its own turns itself (core's lanes); this is the line between
    processes. A store used by one process only gives places that never wait.
    """

    def place(self, chat_key: str) -> Place:
        """Take the chat's next place now (synchronously: call it in arrival order)."""
        ...


class ConversationStore(Protocol):
    """Chat state, the conversation history (with completions turns), messages, and usage.

    Implementations: ``storage.memory.MemoryStore`` and ``storage.sql.SqlStore`` (any SQLAlchemy
    async URL); both pass the same contract suite. Every write is one transaction.
    """

    async def current(self, chat_key: str) -> str | None:
        """The server conversationId the chat's next message continues; ``None``: a new one."""
        ...

    async def state(self, chat_key: str) -> ChatState:
        """The chat's mode, model, system prompt and both current conversations."""
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
        """Store a completed server-mode turn atomically.

        Makes ``conversation_id`` the chat's current server conversation, creates (mode
        ``server``) or touches its conversation row and adds one request and ``billed_chars`` to
        the user's usage (total and ``at``'s day). ``True`` when the row is new (a title is due).
        """
        ...

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
        """Store a completed completions-mode turn atomically.

        Makes ``conversation_id`` the chat's current local conversation, creates (mode
        ``completions``) or touches its row and sets its ``model``, appends the turn (or, with
        ``replace_last``, replaces the last turn's reply: a regenerate) and adds one request and
        ``len(assistant)`` streamed characters to the user's usage. ``True`` when the row is new.
        """
        ...

    async def turns(self, conversation_id: str) -> list[TurnRecord]:
        """A completions conversation's turns, oldest first; ``[]`` for unknown ids."""
        ...

    async def reset(self, chat_key: str, *, at: datetime) -> None:
        """Forget both current conversations (model and prompt stay); the rows stay in history."""
        ...

    async def set_model(self, chat_key: str, model: str | None, *, at: datetime) -> None:
        """Switch the chat's mode: a completions model, or ``None`` for server mode."""
        ...

    async def set_system_prompt(self, chat_key: str, prompt: str | None, *, at: datetime) -> None:
        """The chat's system prompt for completions mode; ``None`` returns to the default."""
        ...

    async def resume(
        self, chat_key: str, conversation_id: str, *, at: datetime
    ) -> ConversationRecord | None:
        """Make one of the chat's conversations current again, in its own mode.

        A server conversation becomes ``conversation_id`` with ``model`` ``None``; a completions
        one becomes ``local_id`` with ``model`` set to the one it last used. ``None`` (and no
        change) when the conversation is unknown or belongs to another chat.
        """
        ...

    async def remember_messages(
        self, chat_key: str, conversation_id: str, message_ids: Sequence[str], *, at: datetime
    ) -> None:
        """Note which conversation the bot's platform messages belong to (for replies to them)."""
        ...

    async def message_conversation(self, chat_key: str, message_id: str) -> str | None:
        """The conversation a bot message of this chat belongs to, if it was remembered."""
        ...

    async def set_title(self, conversation_id: str, title: str) -> None:
        """Name a conversation; unknown ids are ignored."""
        ...

    async def conversation(self, conversation_id: str) -> ConversationRecord | None: ...

    async def conversations(self, chat_key: str, *, limit: int = 10) -> list[ConversationRecord]:
        """The chat's conversations, most recently used first."""
        ...

    async def usage(self, chat_key: str) -> list[UsageRecord]:
        """All-time usage rows of the chat, ordered by user id."""
        ...

    async def user_usage(self, user_id: str, *, platform: str, since: date) -> UsageTotals:
        """One user's sums over every chat of ``platform`` from day ``since`` (inclusive) on."""
        ...

    async def stats(
        self, *, platform: str, since: date | None = None, top: int = 5
    ) -> tuple[UsageTotals, list[ChatUsage]]:
        """The platform's totals from ``since`` (all time if ``None``) and its ``top`` chats by
        characters (billed + streamed), then requests, then chat key."""
        ...

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
        """Record a reply about to be shown (before its first platform call)."""
        ...

    async def note_reply_messages(
        self, reply_id: str, message_ids: Sequence[str], shown: str = ""
    ) -> None:
        """Replace the reply's platform message ids and shown text (as it grows).

        ``shown`` is the text of the last message as the platform shows it (after formatting),
        kept whole, so a restart can edit that message to it plus an "interrupted" notice. Both
        are replaced together, never merged; unknown reply ids are ignored.
        """
        ...

    async def end_reply(self, reply_id: str) -> None:
        """The reply is settled (finished, failed or marked interrupted): forget it."""
        ...

    async def open_replies(self, platform: str) -> list[InflightRecord]:
        """Replies of ``platform`` still recorded: those a stopped process left unfinished,
        oldest first."""
        ...

    def chat_order(self) -> ChatOrder:
        """The line turns of one chat take across processes sharing this store."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
