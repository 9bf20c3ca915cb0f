"""All a frontend sees of core: the chat key, and the sink it implements to show a reply.

A frontend (terminal, Telegram, Discord) turns a user's message into ``Conversations.ask(key,
text, sink)``; core drives the sink through ``queued`` → ``started`` → ``progress``* → one of
``finished`` / ``failed``. ``progress`` always receives the whole reply so far, so a renderer may
drop any update and show the latest one without losing text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from core.errors import KamiyaError

__all__ = ["ChatKey", "Failure", "Reply", "ReplySink"]


@dataclass(frozen=True, slots=True)
class ChatKey:
    """Where a conversation lives: a platform chat, optionally a thread/topic within it.

    ``scope`` narrows it further, e.g. to one user of a group chat.
    """

    platform: str
    chat_id: str
    thread_id: str | None = None
    scope: str | None = None

    def __str__(self) -> str:
        key = f"{self.platform}:{self.chat_id}"
        if self.thread_id is not None:
            key += f":{self.thread_id}"
        if self.scope is not None:
            key += f"@{self.scope}"
        return key


@dataclass(frozen=True, slots=True)
class Reply:
    """A completed turn. ``text`` is what stays shown: ``fullContent`` (the billed reply) in
    server mode, the streamed completion in completions mode.

    ``context_expired``: the stored conversation was gone on the server, so this reply starts a
    new one; the frontend should say that the earlier context was lost. ``resumed``: the message
    replied to a bot message of an earlier conversation, which this turn continued (its title,
    for a one-line note). ``turns`` counts the completions conversation's turns after this one;
    with ``regenerable`` it is what a Regenerate button carries, so a press after a newer turn
    is recognised as stale.
    """

    text: str
    conversation_id: str
    new_conversation: bool
    context_expired: bool = False
    mode: str = "server"
    model: str | None = None
    turns: int = 0
    regenerable: bool = False
    resumed: str | None = None
    saved: bool = True  # False: the database refused the turn; say the context may be lost


@dataclass(frozen=True, slots=True)
class Failure:
    """A turn that did not complete. The stored conversation is unchanged.

    ``kind`` is an error kind from ``core.errors``, ``"busy"`` (the chat's queue is full),
    ``"stopped"`` (the user pressed Stop), ``"limit_rate"`` / ``"limit_daily"`` (a per-user
    limit; ``limit`` is its value, ``retry_after`` when the user may continue) or ``"stale"``
    (a Regenerate that no longer applies) or ``"storage"`` (the database could not be read, so
    nothing was asked). ``partial`` is the text already shown, which a
    frontend keeps and marks as cut off. ``mode`` and ``model`` say what was asked (``mode``
    ``"fresh"``: a server-mode turn that would have started the conversation).
    """

    kind: str
    partial: str = ""
    retry_after: float | None = None
    error: KamiyaError | None = None
    mode: str = "server"
    model: str | None = None
    limit: int | None = None


class ReplySink(Protocol):
    """How core shows one reply on a platform. Implemented by every frontend."""

    async def queued(self, ahead: int) -> None:
        """The message waits behind ``ahead`` earlier messages of the same chat."""
        ...

    async def busy(self) -> None:
        """The bot is at ``[bot] max_concurrent_streams``: the reply waits for a free slot."""
        ...

    async def started(self) -> None:
        """Kamiya is being asked now: a good moment for a typing indicator."""
        ...

    async def progress(self, text: str) -> None:
        """The reply so far, whole; called often, so render at the platform's pace."""
        ...

    def pause(self) -> Awaitable[None] | None:
        """Asked between network reads of the reply: ``None`` to read on, or something to
        await first, while newer text could not be shown anyway (the platform's pace holds the
        chat back). A stream left unread meanwhile is read in one go later: each token read
        as it came cost a wake-up of the event loop, most of a busy bot's CPU."""
        ...

    async def finished(self, reply: Reply) -> None:
        """The final text; replaces whatever ``progress`` showed."""
        ...

    async def failed(self, failure: Failure) -> None:
        """The turn failed; show ``core.texts.failure_text`` and keep ``partial``."""
        ...
