"""The REST API of the fake Discord: the routes discord.py calls, answered as Discord does.

Routes are matched on the path after ``/api/v10`` and named by a ``kind`` ("edit_original",
"send_message", ...) that the call log and ``fail_next`` use. Bot routes need
``Authorization: Bot <token>``; interaction and webhook routes are authorised by the
interaction token in the path, which lives ``token_ttl_s`` (15 min on Discord) and needs an
initial response within ``response_deadline_s`` (3 s). A deferred response's "thinking…"
message is replaced by the first follow-up, as on Discord. The 400s for a callback type
that does not fit the interaction are a guess at Discord's wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from tests.fakes import discord_payloads as p
from tests.fakes.discord_limits import rate_limit_headers
from tests.fakes.discord_messages import EPHEMERAL, Interaction, Msg, Sync
from tests.fakes.discord_users import DiscordUsers

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tests.fakes.discord_limits import Scope
    from tests.fakes.discord_payloads import JsonObject

__all__ = ["ROUTES", "DiscordRest", "Reply", "Request"]

_ID = r"(?P<{}>\d+)"
_TOKEN = r"(?P<token>[^/]+)"
_WEBHOOK = rf"/webhooks/{_ID.format('app')}/{_TOKEN}"
_COMMANDS = rf"/applications/{_ID.format('app')}(?:/guilds/{_ID.format('guild')})?/commands"
_CHANNEL_MESSAGE = rf"/channels/{_ID.format('channel')}/messages/{_ID.format('message')}"
# (method, path pattern, kind, needs the bot token)
ROUTES: list[tuple[str, re.Pattern[str], str, bool]] = [
    (method, re.compile(pattern), kind, auth)
    for method, pattern, kind, auth in [
        ("GET", r"/users/@me", "get_me", True),
        ("POST", r"/users/@me/channels", "create_dm", True),
        ("GET", r"/oauth2/applications/@me", "application_info", True),
        ("GET", r"/gateway", "get_gateway", False),
        ("GET", r"/gateway/bot", "get_gateway_bot", True),
        ("PUT", _COMMANDS, "sync_commands", True),
        ("GET", _COMMANDS, "get_commands", True),
        ("POST", rf"/interactions/{_ID.format('id')}/{_TOKEN}/callback", "callback", False),
        ("GET", rf"{_WEBHOOK}/messages/@original", "get_original", False),
        ("PATCH", rf"{_WEBHOOK}/messages/@original", "edit_original", False),
        ("DELETE", rf"{_WEBHOOK}/messages/@original", "delete_original", False),
        ("POST", _WEBHOOK, "followup", False),
        ("GET", rf"{_WEBHOOK}/messages/{_ID.format('message')}", "get_followup", False),
        ("PATCH", rf"{_WEBHOOK}/messages/{_ID.format('message')}", "edit_followup", False),
        ("DELETE", rf"{_WEBHOOK}/messages/{_ID.format('message')}", "delete_followup", False),
        ("GET", rf"/channels/{_ID.format('channel')}", "get_channel", True),
        ("POST", rf"/channels/{_ID.format('channel')}/messages", "send_message", True),
        ("GET", _CHANNEL_MESSAGE, "get_message", True),
        ("PATCH", _CHANNEL_MESSAGE, "edit_message", True),
        ("DELETE", _CHANNEL_MESSAGE, "delete_message", True),
        ("POST", rf"/channels/{_ID.format('channel')}/typing", "typing", True),
    ]
]
WEBHOOK_KINDS = frozenset(
    {"get_original", "edit_original", "delete_original", "followup"}
    | {"get_followup", "edit_followup", "delete_followup"}
)
# Which initial responses fit which interaction type (2 command, 3 component, 4 autocomplete).
_CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}}
_COMMAND_NAME = re.compile(r"[-_\w]{1,32}")


@dataclass(frozen=True, slots=True)
class Request:
    """A REST call as a handler sees it: path parameters, JSON body, query."""

    params: Mapping[str, str]
    body: object
    query: Mapping[str, str]

    @property
    def json(self) -> JsonObject:
        return self.body if isinstance(self.body, dict) else {}

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")


@dataclass(frozen=True, slots=True)
class Reply:
    """A success: 200 with ``body`` as JSON, or 204 when ``body`` is None."""

    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


class DiscordRest(DiscordUsers):
    """The route handlers, by kind in ``handlers``."""

    @cached_property
    def handlers(self) -> dict[str, Callable[[Request], Reply]]:
        """Each route kind's handler; it returns a ``Reply`` or raises ``ApiError``."""
        return {
            "get_me": lambda _: Reply(
                self.bot.payload() | {"verified": True, "mfa_enabled": False}
            ),
            "create_dm": self._create_dm,
            "application_info": lambda _: Reply(
                p.application_payload(self.app_id, self.bot, p.ALICE)
            ),
            "get_gateway": lambda _: Reply({"url": self.gateway.url}),
            "get_gateway_bot": self._gateway_bot,
            "sync_commands": self._sync_commands,
            "get_commands": self._get_commands,
            "callback": self._callback,
            "get_original": lambda r: self._read(self._original(r)),
            "edit_original": lambda r: self._edit(self._original(r), r),
            "delete_original": lambda r: self._delete(self._original(r)),
            "followup": self._followup,
            "get_followup": lambda r: self._read(self._followup_message(r)),
            "edit_followup": lambda r: self._edit(self._followup_message(r), r),
            "delete_followup": lambda r: self._delete(self._followup_message(r)),
            "get_channel": lambda r: Reply(self._channel_payload(int(r.params["channel"]))),
            "send_message": self._send_message,
            "get_message": lambda r: self._read(self._channel_message(r)),
            "edit_message": self._edit_channel_message,
            "delete_message": lambda r: self._delete(self._channel_message(r)),
            "typing": self._typing,
        }

    # Gateway and users.

    def _gateway_bot(self, request: Request) -> Reply:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        shards = self.gateway.shard_count  # the count Discord recommends for the bot
        return Reply({"url": self.gateway.url, "shards": shards, "session_start_limit": limit})

    def _create_dm(self, request: Request) -> Reply:
        recipient = int(request.json.get("recipient_id") or 0)
        return Reply(self._channel_payload(self.dm_channel_id(self.user(recipient))))

    # Commands.

    def _scope(self, request: Request) -> int | None:
        if int(request.params["app"]) != self.app_id:
            raise p.ApiError.of(404, "Unknown Application", 10002)
        guild = request.params.get("guild")
        if guild is None:
            return None
        if all(g.id != int(guild) for g in self.guilds):
            raise p.ApiError.of(403, "Missing Access", 50001)
        return int(guild)

    def _get_commands(self, request: Request) -> Reply:
        return Reply(self.commands(self._scope(request)))

    def _sync_commands(self, request: Request) -> Reply:
        """Bulk overwrite: ids stay for commands kept by name, versions change with them."""
        scope = self._scope(request)
        if not isinstance(request.body, list):
            raise p.form_error((), "BASE_TYPE_ARRAY", "Must be an array.")
        if len(request.body) > 100:
            raise p.form_error((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        previous = {(c["name"], c["type"]): c for c in self._commands.get(scope, [])}
        echoed: list[JsonObject] = []
        seen: set[tuple[str, int]] = set()
        for index, command in enumerate(request.body):
            echoed.append(self._check_command(index, command, scope, previous, seen))
        self._commands[scope] = echoed
        self.syncs.append(Sync(scope, echoed, self._clock()))
        return Reply(echoed)

    def _check_command(
        self,
        index: int,
        command: object,
        scope: int | None,
        previous: dict[tuple[str, int], JsonObject],
        seen: set[tuple[str, int]],
    ) -> JsonObject:
        if not isinstance(command, dict):
            raise p.form_error(
                (str(index),), "DICT_TYPE_CONVERT", "Only dictionaries may be used."
            )
        kind = int(command.get("type") or 1)
        name = str(command.get("name") or "")
        description = str(command.get("description") or "")
        if kind == 1 and not (_COMMAND_NAME.fullmatch(name) and name == name.lower()):
            where = (str(index), "name")
            raise p.form_error(
                where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if kind == 1 and not 1 <= len(description) <= 100:
            where = (str(index), "description")
            raise p.form_error(
                where, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if (name, kind) in seen:
            where = (str(index), "name")
            raise p.form_error(
                where,
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name}",
            )
        seen.add((name, kind))
        echo: JsonObject = {
            "name_localizations": None,
            "description_localizations": None,
            "default_member_permissions": None,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            "options": [],
        }
        echo |= {k: v for k, v in command.items() if k not in ("id", "version")}
        echo |= {"type": kind, "name": name, "description": description}
        old = previous.get((name, kind))
        echo["id"] = old["id"] if old else str(self.snowflake())
        same = old is not None and all(old.get(k) == echo.get(k) for k in command)
        echo["version"] = old["version"] if same and old else str(self.snowflake())
        echo["application_id"] = str(self.app_id)
        if scope is not None:
            echo["guild_id"] = str(scope)
            echo.pop("dm_permission", None)
        return echo

    # Interaction callback.

    def _callback(self, request: Request) -> Reply:
        """The initial response: once, within the deadline, of a type that fits."""
        inter = self._interactions.get(int(request.params["id"]))
        if inter is None or inter.token != request.params["token"]:
            raise p.unknown_interaction()
        if inter.acknowledged:
            raise p.already_acknowledged()
        if self._clock() > inter.deadline_at:
            raise p.unknown_interaction()
        body = request.json
        kind = int(body.get("type") or 0)
        raw = body.get("data")
        data: JsonObject = dict(raw) if isinstance(raw, dict) else {}
        if kind not in _CALLBACKS.get(inter.type, set()):
            raise p.form_error(
                ("type",),
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Callback type {kind} is not valid for interaction type {inter.type}.",
            )
        data |= {k: v for k, v in body.items() if k.startswith("_")}  # uploaded files
        message: Msg | None = None
        if kind == 4:
            message = self._new_message(
                "original", inter.channel_id, data, author=self.bot, interaction=inter
            )
        elif kind == 5:
            defer = {"flags": int(data.get("flags") or 0) & EPHEMERAL}
            message = self._new_message(
                "original",
                inter.channel_id,
                defer,
                author=self.bot,
                interaction=inter,
                action="defer",
            )
        elif kind in (6, 7) and inter.message is not None:
            message = inter.message
            if kind == 7:
                self._edit_message(message, data)
        elif kind == 8:
            inter.choices = _checked_choices(data.get("choices") or [])
        inter.original_message = message
        inter.responses.append(body)
        inter.acknowledged_at = self._clock()
        self._changed()
        if not request.flag("with_response"):
            return Reply()
        return Reply(self._callback_response(inter, kind, message))

    def _callback_response(self, inter: Interaction, kind: int, message: Msg | None) -> JsonObject:
        summary: JsonObject = {"id": str(inter.id), "type": inter.type}
        resource: JsonObject = {"type": kind}
        if message is not None and kind in (4, 5, 7):
            summary |= {
                "response_message_id": str(message.id),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": message.ephemeral,
            }
            resource["message"] = self._message_payload(message)
        return {"interaction": summary, "resource": resource}

    # Interaction webhook.

    def _interaction_of_token(self, request: Request) -> Interaction:
        """The live, answered interaction of the path's token.

        50027 once expired (or never issued); 10015 before the initial response, as there
        is no webhook message to act on yet.
        """
        if int(request.params["app"]) != self.app_id:
            raise p.unknown_webhook()
        inter = self._interactions.get(request.params["token"])
        if inter is None or self._clock() >= inter.expires_at:
            raise p.invalid_webhook_token()
        if not inter.acknowledged:
            raise p.unknown_webhook()
        return inter

    def _original(self, request: Request) -> Msg:
        found = self._interaction_of_token(request).original_message
        if found is None or found.deleted:
            raise p.unknown_message()
        return found

    def _followup_message(self, request: Request) -> Msg:
        inter = self._interaction_of_token(request)
        found = self._message(int(request.params["message"]))
        if found.interaction_id != inter.id and found is not inter.original_message:
            raise p.unknown_message()
        return found

    def _followup(self, request: Request) -> Reply:
        inter = self._interaction_of_token(request)
        original = inter.original_message
        body = request.json
        if original is not None and original.loading and not original.deleted:
            # The first follow-up after a deferral fills the "thinking…" message.
            self._admit("edit", original.id)
            message = self._edit_message(original, body)
            headers = self._spend("edit", original.id)
        else:
            self._admit("create", inter.channel_id)
            message = self._new_message(
                "followup", inter.channel_id, body, author=self.bot, interaction=inter
            )
            inter.followup_messages.append(message)
            headers = self._spend("create", inter.channel_id)
        payload = self._message_payload(message) if request.flag("wait") else None
        return Reply(payload, headers)

    # Channels.

    def _channel_message(self, request: Request) -> Msg:
        """A message by id through its channel: an interaction's response too (the bot wrote
        it, so the bot can edit it after the token died), but not an ephemeral one."""
        self._channel(int(request.params["channel"]))
        found = self._message(int(request.params["message"]), int(request.params["channel"]))
        if found.ephemeral:
            raise p.unknown_message()
        return found

    def _send_message(self, request: Request) -> Reply:
        channel_id = int(request.params["channel"])
        self._channel(channel_id)
        body = request.json
        nonce = body.get("nonce")
        if body.get("enforce_nonce") and nonce is not None:
            again = self._nonces.get((channel_id, str(nonce)))
            if again is not None:
                return Reply(self._message_payload(again))
        self._admit("create", channel_id)
        message = self._new_message("channel", channel_id, body, author=self.bot)
        if nonce is not None:
            self._nonces[(channel_id, str(nonce))] = message
        return Reply(self._message_payload(message), self._spend("create", channel_id))

    def _edit_channel_message(self, request: Request) -> Reply:
        message = self._channel_message(request)
        if message.author.id != self.bot.id:
            raise p.not_author()
        return self._edit(message, request)

    def _typing(self, request: Request) -> Reply:
        channel_id = int(request.params["channel"])
        self._channel(channel_id)
        self.typing.append((channel_id, self._clock()))
        return Reply()

    # Shared.

    def _read(self, message: Msg) -> Reply:
        return Reply(self._message_payload(message))

    def _edit(self, message: Msg, request: Request) -> Reply:
        self._admit("edit", message.id)
        self._edit_message(message, request.json)
        return Reply(self._message_payload(message), self._spend("edit", message.id))

    def _delete(self, message: Msg) -> Reply:
        message.deleted = True
        self._changed()
        return Reply()

    def _admit(self, scope: Scope, key: int) -> None:
        """Refuse with Discord's 429 if the call would go over the limit."""
        budget = self.rate_limiter.check(scope, key)
        if budget is not None and budget.retry_after is not None:
            headers = rate_limit_headers(budget, with_bucket=self.limits.headers)
            raise p.ApiError(429, p.rate_limited(budget.retry_after), headers)

    def _spend(self, scope: Scope, key: int) -> dict[str, str]:
        """Count a call that succeeded; the ``X-RateLimit-*`` headers if they are on."""
        budget = self.rate_limiter.spend(scope, key)
        if budget is None or not self.limits.headers:
            return {}
        return rate_limit_headers(budget, with_bucket=True)


def _checked_choices(choices: object) -> list[JsonObject]:
    """Autocomplete's answer: at most 25 choices, names 1-100 characters, string values at
    most 100."""
    where = ("data", "choices")
    if not isinstance(choices, list):
        raise p.form_error(where, "BASE_TYPE_ARRAY", "Must be an array.")
    if len(choices) > 25:
        raise p.form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for index, choice in enumerate(choices):
        at = (*where, str(index))
        if not isinstance(choice, dict):
            raise p.form_error(at, "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
        name, value = str(choice.get("name") or ""), choice.get("value")
        if not 1 <= len(name) <= 100:
            raise p.form_error(
                (*at, "name"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if isinstance(value, str) and len(value) > 100:
            raise p.form_error(
                (*at, "value"), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."
            )
    return list(choices)
