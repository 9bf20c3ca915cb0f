"""What the chat controls (/model, /system, /history, /resume, /usage, /stats) get back from core.

Plain data, so each frontend lays it out its own way with the shared wording of ``core.texts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from storage.protocol import ChatUsage, ConversationRecord, UsageTotals

__all__ = ["ChatView", "HistoryEntry", "ModelChange", "ResumeOutcome", "Stats", "UserUsage"]


@dataclass(frozen=True, slots=True)
class ChatView:
    """A chat's settings: ``model`` ``None`` is the server-side conversation (the default)."""

    model: str | None
    system_prompt: str  # the prompt completions mode sends ("" for none)
    custom_prompt: bool  # set with /system, not the configured default


@dataclass(frozen=True, slots=True)
class ModelChange:
    """``unknown``: not a configured model; ``forbidden``: the key may not use it (the chat
    stays on ``model``, its previous one); ``same``: nothing to change."""

    status: Literal["ok", "same", "unknown", "forbidden"]
    model: str | None
    asked: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    record: ConversationRecord
    current: bool  # the conversation the chat's next message continues
    resumable: bool  # server conversations expire 48 hours after their last use


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    status: Literal["ok", "current", "expired", "unknown"]
    record: ConversationRecord | None


@dataclass(frozen=True, slots=True)
class UserUsage:
    today: UsageTotals
    month: UsageTotals


@dataclass(frozen=True, slots=True)
class Stats:
    today: UsageTotals
    month: UsageTotals
    all_time: UsageTotals
    top: list[ChatUsage]  # this month's busiest chats
