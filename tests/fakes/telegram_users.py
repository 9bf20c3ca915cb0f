"""The users' side of the fake Telegram: what people do, as Update JSON queued for the bot.

Tests "type" messages with ``private_message``, ``group_message`` and friends; each builds a
Message like Telegram's (per-chat message ids, entities a client would attach, reply and topic
fields), stores it in the chat and queues an update for getUpdates.

Group chats honour privacy mode like Telegram: while ``can_read_all_group_messages`` is off,
a group message reaches the bot only if it is a command, mentions the bot or replies to the
bot; the others are still part of the chat but land in ``withheld``, not in an update.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Literal

from tests.fakes.telegram_text import JsonObject, auto_entities
from tests.fakes.telegram_world import Msg, TelegramWorld

__all__ = ["MediaKind", "TelegramUsers"]

MediaKind = Literal["photo", "sticker", "voice", "location", "document"]
_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post")


class TelegramUsers(TelegramWorld):
    """Building and queueing what users do: messages, edits, button presses."""

    def user(
        self,
        id: int,
        first_name: str = "Alice",
        language_code: str | None = "en",
        username: str | None = None,
    ) -> JsonObject:
        """A User object for a person (``is_bot`` false)."""
        user: JsonObject = {"id": id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def private_message(
        self,
        user: JsonObject,
        text: str,
        *,
        entities: list[JsonObject] | None = None,
        reply_to: JsonObject | Msg | None = None,
    ) -> JsonObject:
        """``user`` writes to the bot in their private chat; returns the Message object."""
        chat = self._private_chat(user)
        return self._user_message(
            chat, user, {"text": text}, entities=entities, reply_to=reply_to, thread_id=None
        )

    def group_message(
        self,
        chat_id: int,
        user: JsonObject,
        text: str,
        *,
        chat_type: Literal["group", "supergroup"] = "supergroup",
        title: str = "Group",
        reply_to: JsonObject | Msg | None = None,
        thread_id: int | None = None,
        is_forum: bool = False,
        entities: list[JsonObject] | None = None,
    ) -> JsonObject:
        """``user`` writes in a group; privacy mode may withhold it (see the module docstring)."""
        chat = self._group_chat(chat_id, chat_type, title, is_forum)
        return self._user_message(
            chat, user, {"text": text}, entities=entities, reply_to=reply_to, thread_id=thread_id
        )

    def media_message(
        self,
        chat_id: int,
        user: JsonObject,
        kind: MediaKind = "photo",
        caption: str | None = None,
        *,
        reply_to: JsonObject | Msg | None = None,
        thread_id: int | None = None,
    ) -> JsonObject:
        """A photo, sticker, voice note, location or document, in a chat the fake knows.

        ``chat_id`` equal to the user's id means their private chat; an unknown negative id
        becomes a supergroup.
        """
        if caption is not None and kind in ("sticker", "location"):
            raise ValueError(f"a {kind} has no caption")
        if chat_id == user["id"]:
            chat = self._private_chat(user)
        else:
            chat = self._chats.get(chat_id) or self._group_chat(chat_id, "supergroup", "Group")
        content = _media(kind, next(self._serials))
        if caption is not None:
            content["caption"] = caption
        return self._user_message(chat, user, content, reply_to=reply_to, thread_id=thread_id)

    def edited_message(
        self,
        original: JsonObject | Msg,
        new_text: str,
        *,
        entities: list[JsonObject] | None = None,
    ) -> JsonObject:
        """The user edits one of their messages: an ``edited_message`` update."""
        key = _key(original)
        old = self._messages.get(key)
        if old is None or old.from_bot:
            raise ValueError(f"no user message {key} to edit")
        payload = dict(old.payload)
        entities = auto_entities(new_text) if entities is None else entities
        payload.pop("entities", None)
        payload.update(text=new_text, edit_date=int(time.time()))
        if entities:
            payload["entities"] = entities
        self._messages[key] = replace(
            old, text=new_text, entities=entities, edits=old.edits + 1, payload=payload
        )
        self._deliver("edited_message", payload)
        return payload

    def callback_query(self, user: JsonObject, message: JsonObject | Msg, data: str) -> JsonObject:
        """``user`` presses an inline button with ``data`` under ``message``."""
        stored = self._messages.get(_key(message))
        payload = stored.payload if stored is not None else dict(_as_payload(message))
        query_id = f"cbq-{next(self._serials)}"
        self._callbacks[query_id] = False
        query: JsonObject = {
            "id": query_id,
            "from": user,
            "message": payload,
            "chat_instance": str(abs(payload["chat"]["id"]) * 7919),
            "data": data,
        }
        self._queue("callback_query", query)
        return query

    def press(self, user: JsonObject, message: JsonObject | Msg, label: str) -> JsonObject:
        """``user`` presses the button labelled ``label`` (or whose label contains it) that
        ``message`` shows now; a button it does not show is a test error, not a press."""
        key = _key(message)
        stored = self._messages.get(key)
        rows = (stored.reply_markup or {}).get("inline_keyboard") if stored else None
        buttons = [button for row in rows or [] for button in row]
        found = [b for b in buttons if b["text"] == label] or [
            b for b in buttons if label in b["text"]
        ]
        if len(found) != 1 or "callback_data" not in found[0]:
            shown = [b["text"] for b in buttons]
            raise ValueError(f"message {key} shows no single button {label!r}; it shows {shown}")
        return self.callback_query(user, message, found[0]["callback_data"])

    def send_update(self, update: JsonObject) -> JsonObject:
        """Queue any update as given (a bare Message is wrapped as ``message``); no filtering.

        Chats and messages in it become known to the fake, so the bot can reply to them.
        """
        if "message_id" in update and "chat" in update:
            update = {"message": update}
        body = {key: value for key, value in update.items() if key != "update_id"}
        for key in _MESSAGE_KEYS:
            if isinstance(message := body.get(key), dict):
                self._adopt(message)
        if len(body) != 1:
            raise ValueError(f"an update has exactly one payload, got {sorted(body)}")
        ((kind, value),) = body.items()
        return self._queue(kind, value)

    def send_raw(self, body: JsonObject) -> JsonObject:
        """Queue ``body`` (an update without ``update_id``) exactly as given: any kind, any
        fields or none, past ``allowed_updates``; for tests of input Telegram should never send.
        """
        update = {"update_id": next(self._update_ids), **body}
        self._raw_ids.add(update["update_id"])
        query = body.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self._callbacks.setdefault(query["id"], False)  # the bot may answer it, once
        self._updates.append(update)
        self._changed()
        return update

    def _private_chat(self, user: JsonObject) -> JsonObject:
        chat: JsonObject = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        self._chats[user["id"]] = chat
        return chat

    def _group_chat(
        self, chat_id: int, chat_type: str, title: str, is_forum: bool = False
    ) -> JsonObject:
        if chat_id >= 0:
            raise ValueError(f"group chat ids are negative, got {chat_id}")
        chat: JsonObject = {"id": chat_id, "type": chat_type, "title": title}
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return chat

    def _user_message(
        self,
        chat: JsonObject,
        user: JsonObject,
        content: JsonObject,
        *,
        entities: list[JsonObject] | None = None,
        reply_to: JsonObject | Msg | None,
        thread_id: int | None,
    ) -> JsonObject:
        chat_id = chat["id"]
        message: JsonObject = {
            "message_id": self._next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply_to is not None:
            if _key(reply_to)[0] != chat_id:
                raise ValueError("reply_to is a message of another chat")
            message["reply_to_message"] = self._reply_payload(*_key(reply_to)) or _as_payload(
                reply_to
            )
        elif thread_id is not None and chat.get("is_forum"):
            # Telegram quirk: a topic message replies to the topic's creation message.
            message["reply_to_message"] = _topic_created(chat, user, thread_id, message["date"])
        message.update(content)
        text_key = "text" if "text" in content else "caption"
        text = content.get(text_key)
        if isinstance(text, str):
            found = auto_entities(text) if entities is None else entities
            if found:
                message["entities" if text_key == "text" else "caption_entities"] = found
        self._store(message, from_bot=False)
        self._deliver("message", message)
        return message

    def _deliver(self, kind: str, message: JsonObject) -> None:
        if self._reaches_bot(message):
            self._queue(kind, message)
        else:
            self.withheld.append(message)
            self._changed()

    def _reaches_bot(self, message: JsonObject) -> bool:
        """Privacy mode: in groups only commands, mentions of the bot and replies to it."""
        if self.can_read_all_group_messages or message["chat"]["type"] not in (
            "group",
            "supergroup",
        ):
            return True
        text = message.get("text") or message.get("caption") or ""
        replied = message.get("reply_to_message") or {}
        return (
            text.startswith("/")
            or f"@{self.bot_user['username']}".lower() in text.lower()
            or replied.get("from", {}).get("id") == self.bot_user["id"]
        )

    def _adopt(self, message: JsonObject) -> None:
        """Learn the chat and message of a hand-built update."""
        chat_id = message["chat"]["id"]
        self._chats.setdefault(chat_id, message["chat"])
        last = self._last_message_id.get(chat_id, 0)
        self._last_message_id[chat_id] = max(last, int(message["message_id"]))
        from_bot = message.get("from", {}).get("id") == self.bot_user["id"]
        self._store(message, from_bot=from_bot)


def _key(message: JsonObject | Msg) -> tuple[int, int]:
    if isinstance(message, Msg):
        return message.chat_id, message.message_id
    return message["chat"]["id"], message["message_id"]


def _as_payload(message: JsonObject | Msg) -> JsonObject:
    return message.payload if isinstance(message, Msg) else message


def _topic_created(chat: JsonObject, user: JsonObject, thread_id: int, date: int) -> JsonObject:
    return {
        "message_id": thread_id,
        "from": user,
        "chat": chat,
        "date": date,
        "message_thread_id": thread_id,
        "is_topic_message": True,
        "forum_topic_created": {"name": f"Topic {thread_id}", "icon_color": 7322096},
    }


def _media(kind: MediaKind, serial: int) -> JsonObject:
    """Content fields of a media message, with file ids unique per message."""

    def file(**extra: object) -> JsonObject:
        return {"file_id": f"{kind}-{serial}", "file_unique_id": f"u-{kind}-{serial}", **extra}

    if kind == "photo":
        sizes = [(90, 67, 1200), (800, 600, 48000)]
        return {"photo": [file(width=w, height=h, file_size=s) for w, h, s in sizes]}
    if kind == "sticker":
        sticker = file(type="regular", width=512, height=512, is_animated=False, is_video=False)
        return {"sticker": {**sticker, "emoji": "👍", "set_name": "TestStickers"}}
    if kind == "voice":
        return {"voice": file(duration=3, mime_type="audio/ogg", file_size=8000)}
    if kind == "location":
        return {"location": {"latitude": 35.6895, "longitude": 139.6917}}
    return {"document": file(file_name="notes.txt", mime_type="text/plain", file_size=120)}
