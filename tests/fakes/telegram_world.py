"""The state behind the fake Bot API: chats, messages, drafts and the update queue.

The layers of the fake stack on it, one job each: ``telegram_users`` plays the users (builds
and queues updates), ``telegram_methods`` answers the bot's Bot API methods, ``telegram``
serves them over HTTP. Inspection lives here: ``visible`` shows the bot's messages as the chat
now shows them, the draft helpers what a user sees of the bot's drafts.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fakes.telegram_text import JsonObject

__all__ = ["DRAFT_TTL_S", "Draft", "Msg", "TelegramWorld"]

DRAFT_TTL_S = 30.0  # a draft is an ephemeral preview; the client drops it after about 30 s
# Telegram leaves these out unless allowed_updates names them.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass(frozen=True, slots=True)
class Msg:
    """A message as the chat now shows it; a new snapshot replaces it on every edit."""

    chat_id: int
    message_id: int
    text: str | None  # the text, or the caption of a media message
    entities: list[JsonObject]
    from_bot: bool
    reply_to: int | None
    thread_id: int | None
    parse_mode: str | None = None
    reply_markup: JsonObject | None = None
    edits: int = 0
    deleted: bool = False
    payload: JsonObject = field(default_factory=dict)  # the Message object Telegram would send


@dataclass(frozen=True, slots=True)
class Draft:
    """One sendMessageDraft as received; ``at`` is on the fake's clock."""

    chat_id: int
    thread_id: int | None
    draft_id: int
    text: str
    entities: list[JsonObject]
    parse_mode: str | None
    at: float


class TelegramWorld:
    """Chats, messages, drafts and pending updates; what tests inspect."""

    def __init__(
        self,
        *,
        bot_user: JsonObject,
        can_read_all_group_messages: bool,
        clock: Callable[[], float],
    ) -> None:
        self.bot_user = bot_user
        self.can_read_all_group_messages = can_read_all_group_messages
        self.withheld: list[JsonObject] = []
        self._clock = clock
        self._chats: dict[int, JsonObject] = {}
        self._messages: dict[tuple[int, int], Msg] = {}
        self._last_message_id: dict[int, int] = {}
        self._updates: list[JsonObject] = []
        self._update_ids = itertools.count(1)
        self._raw_ids: set[int] = set()  # updates queued as given, delivered unfiltered
        self._allowed: frozenset[str] | None = None
        self._draft_log: dict[int, list[Draft]] = {}
        self._live_drafts: dict[tuple[int, int | None, int], Draft] = {}
        self._callbacks: dict[str, bool] = {}  # query id → answered
        self.callback_answers: dict[str, JsonObject] = {}  # query id → answerCallbackQuery
        self._serials = itertools.count(1)
        self._wakeup = asyncio.Event()

    # Inspection.

    def chat(self, chat_id: int) -> JsonObject | None:
        """The Chat object the fake knows for ``chat_id``, if any."""
        return self._chats.get(chat_id)

    def message(self, chat_id: int, message_id: int) -> Msg | None:
        return self._messages.get((chat_id, message_id))

    def visible(self, chat_id: int, thread_id: int | None = None) -> list[Msg]:
        """The bot's messages the chat shows now, oldest first; ``thread_id=None``: all topics."""
        return [
            msg
            for (chat, _), msg in sorted(self._messages.items())
            if chat == chat_id
            and msg.from_bot
            and not msg.deleted
            and (thread_id is None or msg.thread_id == thread_id)
        ]

    def visible_texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        return [msg.text or "" for msg in self.visible(chat_id, thread_id)]

    def drafts(self, chat_id: int) -> list[str]:
        """Every draft text sent to the chat, in order ("" for a text-less "Thinking…")."""
        return [draft.text for draft in self._draft_log.get(chat_id, [])]

    def draft_log(self, chat_id: int) -> list[Draft]:
        return list(self._draft_log.get(chat_id, []))

    def last_draft(self, chat_id: int) -> Draft | None:
        log = self._draft_log.get(chat_id)
        return log[-1] if log else None

    def draft_age(self, chat_id: int) -> float | None:
        """Seconds since the chat's latest draft (on the fake's clock); > 30 means it lapsed."""
        last = self.last_draft(chat_id)
        return None if last is None else self._clock() - last.at

    def live_drafts(self, chat_id: int) -> list[Draft]:
        """Drafts the user still sees: younger than 30 s and not replaced by a sent message."""
        now = self._clock()
        return [
            draft
            for (chat, _, _), draft in self._live_drafts.items()
            if chat == chat_id and now - draft.at < DRAFT_TTL_S
        ]

    def buttons(self, chat_id: int, message_id: int) -> list[str]:
        """The labels of a message's inline buttons as the chat shows them now, row by row."""
        msg = self._messages.get((chat_id, message_id))
        markup = msg.reply_markup if msg is not None and not msg.deleted else None
        rows = (markup or {}).get("inline_keyboard") or []
        return [button["text"] for row in rows for button in row]

    def answered(self, query: JsonObject) -> JsonObject | None:
        """How the bot answered a callback query (``{}``: without text), ``None``: not yet."""
        return self.callback_answers.get(query["id"])

    @property
    def pending_updates(self) -> list[JsonObject]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # Internals shared with the server.

    def _changed(self) -> None:
        """Wake every waiter after a change.

        An event swapped per change, not an ``asyncio.Condition``: the users' API is
        synchronous, and a Condition can only be notified with its lock held.
        """
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, re-checking after every change; no deadline."""
        while not predicate():
            await self._wakeup.wait()

    def _queue(self, kind: str, value: JsonObject) -> JsonObject:
        update = {"update_id": next(self._update_ids), kind: value}
        self._updates.append(update)
        self._changed()
        return update

    def _take_updates(self, offset: int, limit: int, allowed: object) -> list[JsonObject]:
        """getUpdates: confirm below ``offset``, then the next ``limit`` allowed updates."""
        self._set_allowed(allowed)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        return [u for u in self._updates if self._is_allowed(u)][:limit]

    def _set_allowed(self, allowed: object) -> None:
        """``allowed_updates`` of getUpdates or setWebhook: a list replaces the last one
        (empty: the default kinds), anything else keeps it."""
        if isinstance(allowed, list):
            self._allowed = frozenset(str(kind) for kind in allowed) or None

    def _is_allowed(self, update: JsonObject) -> bool:
        if update["update_id"] in self._raw_ids:
            return True
        kind = next(key for key in update if key != "update_id")
        return kind in self._allowed if self._allowed else kind not in _OPT_IN_UPDATES

    def _chat_for(self, chat_id: int) -> JsonObject:
        """The chat the bot addresses; one never seen is private if > 0, else a group."""
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": "User"}
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                chat = {"id": chat_id, "type": kind, "title": "Group"}
            self._chats[chat_id] = chat
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _reply_payload(self, chat_id: int, message_id: int) -> JsonObject | None:
        """A replied-to message as Telegram embeds it: current state, one level deep."""
        msg = self._messages.get((chat_id, message_id))
        if msg is None or msg.deleted:
            return None
        return {key: value for key, value in msg.payload.items() if key != "reply_to_message"}

    def _store(
        self,
        message: JsonObject,
        *,
        from_bot: bool,
        parse_mode: str | None = None,
        reply_markup: JsonObject | None = None,
        edits: int = 0,
    ) -> Msg:
        text = message.get("text", message.get("caption"))
        replied = message.get("reply_to_message")
        msg = Msg(
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=text,
            entities=message.get("entities") or message.get("caption_entities") or [],
            from_bot=from_bot,
            reply_to=replied["message_id"] if replied else None,
            thread_id=message.get("message_thread_id"),
            parse_mode=parse_mode,
            reply_markup=reply_markup,
            edits=edits,
            payload=message,
        )
        self._messages[msg.chat_id, msg.message_id] = msg
        return msg

    def _record_draft(self, draft: Draft) -> None:
        self._draft_log.setdefault(draft.chat_id, []).append(draft)
        self._live_drafts[draft.chat_id, draft.thread_id, draft.draft_id] = draft

    def _drop_live_drafts(self, chat_id: int, thread_id: int | None) -> None:
        """A sent message replaces the drafts the user was watching in that chat or topic."""
        for key in [k for k in self._live_drafts if k[:2] == (chat_id, thread_id)]:
            del self._live_drafts[key]
