"""Inline keyboards of the Telegram bot and the data their buttons carry.

A button's ``callback_data`` is at most 64 bytes (Telegram answers ``BUTTON_DATA_INVALID``
otherwise), so it holds only a kind and an id, and everything else is looked up on the press:

* ``s:<turn_id>``: Stop a reply while it streams (edit mode only);
* ``g:<turns>:<conversation_id>``: Regenerate the last reply of a completions conversation;
  ``turns`` lets core tell a press after a newer turn from a current one;
* ``m:<model>``: switch the chat's model (``default``: Kamiya's own conversation);
* ``r:<conversation_id>``: resume an earlier conversation. An id too long for the data is sent
  as ``h:<digest>`` and found again among the chat's conversations.

Data is parsed without trusting it: a press may come from a message of an older version of
the bot, or from a client that sends anything at all.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bots.telegram.texts import say
from core import DEFAULT, entry_label, text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core import HistoryEntry, Reply

__all__ = [
    "MAX_DATA_BYTES",
    "Press",
    "digest",
    "model_keyboard",
    "parse",
    "regenerate_keyboard",
    "resume_keyboard",
    "stop_keyboard",
]

log = logging.getLogger(__name__)

MAX_DATA_BYTES = 64
STOP, REGENERATE, MODEL, RESUME, RESUME_DIGEST = "s", "g", "m", "r", "h"
_KINDS = frozenset({STOP, REGENERATE, MODEL, RESUME, RESUME_DIGEST})


@dataclass(frozen=True, slots=True)
class Press:
    """A pressed button: its ``kind`` (one letter, above), its ``value``, and for Regenerate
    the ``turns`` it was shown after."""

    kind: str
    value: str
    turns: int = 0


def parse(data: str | None) -> Press | None:
    """The press a button's data describes, or ``None`` for data this bot never sends."""
    if not data or len(data.encode()) > MAX_DATA_BYTES:
        return None
    kind, sep, value = data.partition(":")
    if not sep or kind not in _KINDS or not value:
        return None
    if kind != REGENERATE:
        return Press(kind, value)
    turns, sep, conversation_id = value.partition(":")
    if not sep or not turns.isdigit() or not conversation_id:
        return None
    return Press(kind, conversation_id, int(turns))


def _fits(data: str) -> bool:
    return 0 < len(data.encode()) <= MAX_DATA_BYTES


def _keyboard(rows: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button per row: labels can be long (titles), and a column reads well on phones."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data)] for label, data in rows]
    )


def stop_keyboard(turn_id: str, lang: str | None) -> InlineKeyboardMarkup:
    return _keyboard([(f"⏹ {text('stop', lang)}", f"{STOP}:{turn_id}")])


def regenerate_keyboard(reply: Reply, lang: str | None) -> InlineKeyboardMarkup | None:
    """The Regenerate button for a finished reply, if it may be regenerated at all."""
    data = f"{REGENERATE}:{reply.turns}:{reply.conversation_id}"
    if not reply.regenerable or not _fits(data):
        return None
    return _keyboard([(f"🔄 {text('regenerate', lang)}", data)])


def model_keyboard(
    models: Sequence[str], current: str | None, lang: str | None
) -> InlineKeyboardMarkup:
    """``default`` first, then every configured model; the chat's current one is ticked."""
    rows: list[tuple[str, str]] = []
    for name in (DEFAULT, *models):
        data = f"{MODEL}:{name}"
        if not _fits(data):
            log.warning("model %r is too long for a Telegram button; left out", name)
            continue
        label = say("model_button_default", lang) if name == DEFAULT else name
        chosen = current is None if name == DEFAULT else name == current
        rows.append((f"✓ {label}" if chosen else label, data))
    return _keyboard(rows)


def resume_keyboard(entries: Sequence[HistoryEntry], lang: str | None) -> InlineKeyboardMarkup:
    now = datetime.now(UTC)
    rows = []
    for entry in entries:
        conversation_id = entry.record.conversation_id
        data = f"{RESUME}:{conversation_id}"
        if not _fits(data):
            data = f"{RESUME_DIGEST}:{digest(conversation_id)}"
        rows.append((entry_label(entry, lang, now=now), data))
    return _keyboard(rows)


def digest(conversation_id: str) -> str:
    """A short stand-in for an id too long for a button (not a secret: a lookup key)."""
    return hashlib.sha256(conversation_id.encode()).hexdigest()[:32]
