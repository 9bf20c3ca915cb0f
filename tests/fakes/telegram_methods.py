"""The Bot API methods of the fake Telegram, checked and answered as Telegram does.

Each method validates its parameters in Telegram's order, raises ``ApiError`` with Telegram's
description for what Telegram refuses, applies flood control (``Limits``) to what sends or
edits, and updates the chat state of ``TelegramWorld``. getUpdates lives with the transport in
``telegram.py``, as long polling is about connections more than state.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from tests.fakes.telegram_limits import FloodControl, Limits
from tests.fakes.telegram_text import (
    MAX_TEXT_UTF16,
    ApiError,
    JsonObject,
    bad_request,
    check_markup,
    is_int,
    opt_int,
    utf16_len,
    validate_entities,
)
from tests.fakes.telegram_webhook import WebhookMethods
from tests.fakes.telegram_world import Draft, Msg

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NOT_MODIFIED", "BotMethods"]

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
    | {"upload_document", "choose_sticker", "find_location", "record_video_note"}
    | {"upload_video_note"}
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
MAX_CALLBACK_BYTES = 64
_BUTTON_ACTIONS = frozenset(
    {"callback_data", "url", "login_url", "switch_inline_query", "web_app", "pay"}
    | {"switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game"}
    | {"copy_text"}
)


class BotMethods(WebhookMethods):
    """The methods the bot calls, by lower-cased name in ``methods``; each takes decoded params."""

    def __init__(
        self,
        *,
        bot_user: JsonObject,
        can_read_all_group_messages: bool,
        clock: Callable[[], float],
        limits: Limits,
        drafts_enabled: bool,
    ) -> None:
        super().__init__(
            bot_user=bot_user,
            can_read_all_group_messages=can_read_all_group_messages,
            clock=clock,
        )
        self.limits = limits
        self.drafts_enabled = drafts_enabled
        self.flood = FloodControl(limits, clock)
        self._commands: dict[tuple[str, str], list[JsonObject]] = {}
        self.methods: dict[str, Callable[[JsonObject], object]] = {
            "getme": self._get_me,
            **self.webhook_methods(),
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "sendmessagedraft": self._send_message_draft,
            "sendchataction": self._send_chat_action,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
        }

    def commands(
        self, scope: JsonObject | None = None, language_code: str = ""
    ) -> list[JsonObject]:
        """The commands set for a scope (default scope if None) and language."""
        return list(self._commands.get((_scope_key(scope), language_code), []))

    def _get_me(self, params: JsonObject) -> JsonObject:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": False,
        }

    def _set_my_commands(self, params: JsonObject) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        stored: list[JsonObject] = []
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not _COMMAND_NAME.fullmatch(name):
                raise bad_request("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            stored.append({"command": name, "description": description})
        self._commands[_scope_key(params.get("scope")), _language(params)] = stored
        return True

    def _get_my_commands(self, params: JsonObject) -> list[JsonObject]:
        return list(self._commands.get((_scope_key(params.get("scope")), _language(params)), []))

    def _delete_my_commands(self, params: JsonObject) -> bool:
        self._commands.pop((_scope_key(params.get("scope")), _language(params)), None)
        return True

    def _send_message(self, params: JsonObject) -> JsonObject:
        chat = self._chat_param(params)
        thread_id = opt_int(params.get("message_thread_id"))
        text, entities, parse_mode = _text_param(params, empty_error="message text is empty")
        reply = self._reply_param(chat["id"], params)
        markup = _markup(params)
        self._throttle(chat["id"])
        message: JsonObject = {
            "message_id": self._next_message_id(chat["id"]),
            "from": self.bot_user,
            "chat": chat,
            "date": int(time.time()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply is not None:
            message["reply_to_message"] = self._reply_payload(*reply)
        _set_content(message, text, entities, markup)
        msg = self._store(message, from_bot=True, parse_mode=parse_mode, reply_markup=markup)
        self._drop_live_drafts(chat["id"], thread_id)
        return msg.payload

    def _edit_message_text(self, params: JsonObject) -> JsonObject:
        chat = self._chat_param(params)
        message_id = _message_id_param(params)
        text, entities, parse_mode = _text_param(
            params, empty_error="text must be non-empty", too_long_error="MESSAGE_TOO_LONG"
        )
        old = self._editable(chat["id"], message_id)
        markup = _markup(params)
        if (old.text, old.entities, old.parse_mode, old.reply_markup) == (
            text,
            entities,
            parse_mode,
            markup,
        ):
            raise bad_request(NOT_MODIFIED)
        self._throttle(chat["id"])
        return self._replace(old, text, entities, parse_mode, markup).payload

    def _edit_message_reply_markup(self, params: JsonObject) -> JsonObject:
        chat = self._chat_param(params)
        old = self._editable(chat["id"], _message_id_param(params))
        markup = _markup(params)
        if old.reply_markup == markup:
            raise bad_request(NOT_MODIFIED)
        return self._replace(old, old.text or "", old.entities, old.parse_mode, markup).payload

    def _send_message_draft(self, params: JsonObject) -> bool:
        if not self.drafts_enabled:
            raise bad_request("method is not available")
        chat = self._chat_param(params)
        if chat["type"] != "private":
            raise bad_request("draft can be sent only to private chats")
        draft_id = params.get("draft_id")
        if not is_int(draft_id) or draft_id == 0:
            raise bad_request("invalid draft_id")
        thread_id = opt_int(params.get("message_thread_id"))
        text, entities, parse_mode = _text_param(params, empty_error=None)
        if self.limits.drafts_count:
            self._throttle(chat["id"])
        draft = Draft(chat["id"], thread_id, draft_id, text, entities, parse_mode, self._clock())
        self._record_draft(draft)
        return True

    def _send_chat_action(self, params: JsonObject) -> bool:
        self._chat_param(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _delete_message(self, params: JsonObject) -> bool:
        chat = self._chat_param(params)
        key = (chat["id"], _message_id_param(params))
        msg = self._messages.get(key)
        if msg is None or msg.deleted:
            raise bad_request("message to delete not found")
        self._messages[key] = replace(msg, deleted=True)
        return True

    def _answer_callback_query(self, params: JsonObject) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or self._callbacks.get(query_id) is not False:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callbacks[query_id] = True
        answer: JsonObject = {k: params[k] for k in ("text", "show_alert", "url") if k in params}
        self.callback_answers[query_id] = answer
        return True

    # Helpers that need the state.

    def _chat_param(self, params: JsonObject) -> JsonObject:
        value = params.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, str):
            wanted = value.removeprefix("@").lower()
            for chat in self._chats.values():
                if str(chat.get("username", "")).lower() == wanted:
                    return chat
            raise bad_request("chat not found")
        if not is_int(value):
            raise bad_request("chat not found")
        return self._chat_for(value)

    def _reply_param(self, chat_id: int, params: JsonObject) -> tuple[int, int] | None:
        """The replied-to (chat, message) from reply_parameters or legacy reply_to_message_id."""
        reply = params.get("reply_parameters")
        allow = params.get("allow_sending_without_reply") is True
        if isinstance(reply, dict):
            message_id, target = reply.get("message_id"), reply.get("chat_id", chat_id)
            allow = allow or reply.get("allow_sending_without_reply") is True
        elif "reply_to_message_id" in params:
            message_id, target = params["reply_to_message_id"], chat_id
        else:
            return None
        if is_int(message_id) and is_int(target) and self._reply_payload(target, message_id):
            return target, message_id
        if allow:
            return None
        raise bad_request("message to be replied not found")

    def _editable(self, chat_id: int, message_id: int) -> Msg:
        msg = self._messages.get((chat_id, message_id))
        if msg is None or msg.deleted:
            raise bad_request("message to edit not found")
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        return msg

    def _replace(
        self,
        old: Msg,
        text: str,
        entities: list[JsonObject],
        parse_mode: str | None,
        markup: JsonObject | None,
    ) -> Msg:
        payload = {k: v for k, v in old.payload.items() if k not in ("entities", "reply_markup")}
        payload["edit_date"] = int(time.time())
        _set_content(payload, text, entities, markup)
        return self._store(
            payload,
            from_bot=True,
            parse_mode=parse_mode,
            reply_markup=markup,
            edits=old.edits + 1,
        )

    def _throttle(self, chat_id: int) -> None:
        retry_after = self.flood.admit(chat_id)
        if retry_after is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


def _text_param(
    params: JsonObject, *, empty_error: str | None, too_long_error: str = "message is too long"
) -> tuple[str, list[JsonObject], str | None]:
    """Text, entities and parse_mode of a send or edit, checked and trimmed as Telegram does.

    ``empty_error`` is the description for an empty text (None: empty is allowed). Telegram
    words errors differently per method: editMessageText says "text must be non-empty" and
    "MESSAGE_TOO_LONG" where sendMessage says "message text is empty" and "message is too long".
    """
    raw = params.get("text")
    text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
    parse_mode = params.get("parse_mode")
    parse_mode = parse_mode if isinstance(parse_mode, str) and parse_mode else None
    if empty_error is not None and not text.strip():
        raise bad_request(empty_error)
    if utf16_len(text.strip()) > MAX_TEXT_UTF16:
        raise bad_request(too_long_error)
    if "entities" in params:
        entities = validate_entities(text, params["entities"])
    else:
        entities = []
        if parse_mode is not None:
            check_markup(text, parse_mode)  # Telegram ignores parse_mode given entities
    return (*_trimmed(text, entities), parse_mode)


def _trimmed(text: str, entities: list[JsonObject]) -> tuple[str, list[JsonObject]]:
    """The text stripped of outer whitespace, entities moved along, as Telegram keeps it.

    So an edit that only adds a trailing space or newline is "not modified", as on Telegram.
    """
    kept = text.strip()
    lead, size = utf16_len(text) - utf16_len(text.lstrip()), utf16_len(kept)
    moved: list[JsonObject] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            moved.append({**entity, "offset": start, "length": end - start})
    return kept, moved


def _set_content(
    message: JsonObject, text: str, entities: list[JsonObject], markup: JsonObject | None
) -> None:
    message["text"] = text
    if entities:
        message["entities"] = entities
    if markup is not None and "inline_keyboard" in markup:
        message["reply_markup"] = markup  # only inline keyboards show in the Message object


def _message_id_param(params: JsonObject) -> int:
    message_id = params.get("message_id")
    if not is_int(message_id):
        raise bad_request("message identifier is not specified")
    return int(message_id)


def _markup(params: JsonObject) -> JsonObject | None:
    markup = params.get("reply_markup")
    if not isinstance(markup, dict):
        return None
    keyboard = markup.get("inline_keyboard")
    if keyboard is not None:
        _check_inline_keyboard(keyboard)
    return markup


def _check_inline_keyboard(keyboard: object) -> None:
    """Buttons as Telegram checks them: a label, and callback data of 1-64 bytes."""
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardMarkup must be an array"
        )
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Text must be a string")
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_BYTES
            ):
                raise bad_request("BUTTON_DATA_INVALID")
            if not (_BUTTON_ACTIONS & button.keys()):
                raise bad_request("text buttons are unallowed in the inline keyboard")


def _scope_key(scope: object) -> str:
    return json.dumps(scope if isinstance(scope, dict) else {"type": "default"}, sort_keys=True)


def _language(params: JsonObject) -> str:
    code = params.get("language_code")
    return code if isinstance(code, str) else ""
