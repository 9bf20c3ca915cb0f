"""Messages and interactions as the fake Discord keeps them, and Discord's message rules.

The records are what tests inspect (``Msg``, ``Interaction``, ``Ping``, ``Revision``,
``Sync``); the functions are the checks Discord applies to every send and edit: content at
most 2000 characters (code points), embeds within 6000, components (at most 5 action rows of
5 buttons, custom_id 1-100 characters and unique, label at most 80), no empty message, and
who allowed_mentions lets a message ping. A ``Msg`` is mutable: an edit updates it in place and
appends to ``history``, so a test holding one sees the channel as it is now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from tests.fakes import discord_payloads as p

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tests.fakes.discord_payloads import JsonObject, User

__all__ = [
    "EPHEMERAL",
    "LOADING",
    "SUPPRESS_NOTIFICATIONS",
    "Interaction",
    "Msg",
    "MsgKind",
    "Ping",
    "Revision",
    "Sync",
    "buttons",
    "check_allowed",
    "check_components",
    "check_message",
    "current_fields",
    "mentions",
    "merged_fields",
    "reference_id",
]

MsgKind = Literal["original", "followup", "channel", "user"]
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE = re.compile(r"@(?:everyone|here)")
# What makes a message non-empty for Discord; content alone is checked for length.
_BODY_KEYS = ("embeds", "attachments", "components", "sticker_ids", "poll")
_MAX_ROWS = 5
_MAX_ROW_ITEMS = 5
_MAX_LABEL = 80
_MAX_CUSTOM_ID = 100


class Revision(NamedTuple):
    """One content a message had: ``action`` is "defer", "send" or "edit"; ``buttons`` the
    custom_ids of the buttons under it then."""

    at: float
    content: str
    action: str
    allowed_mentions: JsonObject | None
    buttons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ping:
    """Who one send or edit mentions after allowed_mentions: ``@everyone``/``@here``, users,
    roles. A new message notifies them; an edit (or an ``@silent`` message) only highlights,
    which a user still sees, so both count.
    """

    message_id: int
    everyone: bool
    users: tuple[int, ...]
    roles: tuple[int, ...]
    notified: bool
    at: float


@dataclass(eq=False, slots=True)
class Msg:
    """A message as the channel now shows it; ``history`` keeps every content it had."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    kind: MsgKind
    content: str
    created_at: float
    embeds: list[JsonObject] = field(default_factory=list)
    components: list[JsonObject] = field(default_factory=list)
    attachments: list[JsonObject] = field(default_factory=list)
    flags: int = 0
    interaction_id: int | None = None
    reply_to: int | None = None
    history: list[Revision] = field(default_factory=list)
    deleted: bool = False
    edited: str | None = None  # ISO timestamp of the last edit
    timestamp: str = field(default_factory=p.iso)
    mentions: tuple[int, ...] = ()
    mention_roles: tuple[int, ...] = ()
    mention_everyone: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still showing "<bot> is thinking…"."""
        return bool(self.flags & LOADING)

    @property
    def from_bot(self) -> bool:
        return self.kind != "user"

    @property
    def buttons(self) -> list[str]:
        """The custom_ids of the (enabled or not) buttons under the message now."""
        return [str(b.get("custom_id")) for b in buttons(self.components) if b.get("custom_id")]

    def button(self, prefix: str) -> str:
        """The custom_id of the one button starting with ``prefix``; LookupError if none."""
        found = [custom_id for custom_id in self.buttons if custom_id.startswith(prefix)]
        if len(found) != 1:
            raise LookupError(f"message {self.id} has buttons {self.buttons}, not one {prefix!r}")
        return found[0]


@dataclass(eq=False, slots=True)
class Interaction:
    """One user action delivered as INTERACTION_CREATE, and what the bot did with it.

    ``type`` is 2 (slash command), 3 (button click) or 4 (autocomplete). ``responses`` holds
    the accepted initial callback (type 4 message, 5 deferred, ...); refused ones are only
    in the call log. Times are on the fake's clock.
    """

    id: int
    token: str
    type: int
    name: str
    options: JsonObject
    user: User
    channel_id: int
    guild_id: int | None
    payload: JsonObject
    created_at: float
    deadline_at: float
    expires_at: float
    message: Msg | None = None  # the message a clicked button is on
    responses: list[JsonObject] = field(default_factory=list)
    acknowledged_at: float | None = None
    original_message: Msg | None = None
    followup_messages: list[Msg] = field(default_factory=list)
    choices: list[JsonObject] | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def response_type(self) -> int | None:
        return int(self.responses[0]["type"]) if self.responses else None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def ephemeral(self) -> bool:
        return self.original_message is not None and self.original_message.ephemeral

    @property
    def original(self) -> str | None:
        """The content @original shows now; None before a response or once deleted."""
        found = self.original_message
        return None if found is None or found.deleted else found.content

    @property
    def original_history(self) -> list[Revision]:
        return [] if self.original_message is None else list(self.original_message.history)

    @property
    def followups(self) -> list[Msg]:
        return [message for message in self.followup_messages if not message.deleted]


@dataclass(frozen=True, slots=True)
class Sync:
    """One bulk overwrite of commands; ``guild_id`` None is the global scope."""

    guild_id: int | None
    commands: list[JsonObject]
    at: float

    @property
    def names(self) -> list[str]:
        return [str(command["name"]) for command in self.commands]


def mentions(
    content: str,
    allowed: JsonObject | None,
    *,
    replied_user: int | None = None,
) -> tuple[bool, tuple[int, ...], tuple[int, ...]]:
    """Who ``content`` pings under Discord's allowed_mentions rules: (everyone, users, roles).

    Without allowed_mentions everything parsed pings, and a reply pings its author; with it
    only what ``parse`` names or the ``users``/``roles`` lists allow, and the replied user
    only if ``replied_user`` is true.
    """
    parsed_users = tuple(dict.fromkeys(int(x) for x in _USER_MENTION.findall(content)))
    parsed_roles = tuple(dict.fromkeys(int(x) for x in _ROLE_MENTION.findall(content)))
    has_everyone = bool(_EVERYONE.search(content))
    if allowed is None:
        users = parsed_users
        if replied_user is not None and replied_user not in users:
            users = (*users, replied_user)
        return has_everyone, users, parsed_roles
    parse = allowed.get("parse") or []
    listed_users = {int(x) for x in allowed.get("users") or []}
    listed_roles = {int(x) for x in allowed.get("roles") or []}
    users = tuple(u for u in parsed_users if "users" in parse or u in listed_users)
    roles = tuple(r for r in parsed_roles if "roles" in parse or r in listed_roles)
    if replied_user is not None and allowed.get("replied_user") and replied_user not in users:
        users = (*users, replied_user)
    return has_everyone and "everyone" in parse, users, roles


def current_fields(message: Msg) -> JsonObject:
    return {
        "content": message.content,
        "embeds": message.embeds,
        "components": message.components,
        "attachments": message.attachments,
    }


def merged_fields(body: JsonObject, current: JsonObject) -> JsonObject:
    """The message fields after ``body`` is applied to ``current`` (all empty for a new one)."""
    merged: JsonObject = {"content": "", "embeds": [], "components": [], "attachments": []}
    merged |= current
    for key in ("embeds", "components", "sticker_ids", "poll"):
        if key in body:
            merged[key] = body[key] or ([] if key != "poll" else None)
    if "content" in body:
        merged["content"] = body["content"] if body["content"] is not None else ""
    if "attachments" in body or "_files" in body:
        kept_ids = {str(a.get("id")) for a in body.get("attachments") or [] if isinstance(a, dict)}
        kept = [a for a in merged["attachments"] if str(a.get("id")) in kept_ids]
        merged["attachments"] = kept + list(body.get("_files") or [])
    return merged


def check_message(fields: JsonObject) -> None:
    """Discord's checks of a message as it would be stored: form errors, then emptiness."""
    content = fields["content"]
    if not isinstance(content, str):
        raise p.form_error(("content",), "BASE_TYPE_STRING", "Must be a string.")
    if len(content) > p.MAX_CONTENT:
        raise p.form_error(
            ("content",), "BASE_TYPE_MAX_LENGTH", f"Must be {p.MAX_CONTENT} or fewer in length."
        )
    embeds = fields["embeds"]
    if len(embeds) > 10:
        raise p.form_error(("embeds",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    if embeds_length(embeds) > p.MAX_EMBED_CHARS:
        raise p.form_error(
            ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )
    check_components(fields["components"])
    if not content and not any(fields.get(key) for key in _BODY_KEYS):
        raise p.empty_message()


def check_components(rows: object) -> None:
    """Discord's checks of classic components: action rows (type 1) of buttons (type 2)."""
    if not isinstance(rows, list):
        raise p.form_error(("components",), "BASE_TYPE_ARRAY", "Must be an array.")
    if len(rows) > _MAX_ROWS:
        raise p.form_error(
            ("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {_MAX_ROWS} or fewer in length."
        )
    seen: set[str] = set()
    for r, row in enumerate(rows):
        where: tuple[str, ...] = ("components", str(r))
        if not isinstance(row, dict) or row.get("type") != 1:
            raise p.form_error(where, "UNION_TYPE_CHOICES", "Value of field must be one of (1,).")
        items = row.get("components") or []
        if not 1 <= len(items) <= _MAX_ROW_ITEMS:
            raise p.form_error(
                (*where, "components"),
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between 1 and {_MAX_ROW_ITEMS} in length.",
            )
        for i, item in enumerate(items):
            _check_button((*where, "components", str(i)), item, seen)


def _check_button(where: tuple[str, ...], item: object, seen: set[str]) -> None:
    if not isinstance(item, dict) or item.get("type") != 2:
        raise p.form_error(where, "UNION_TYPE_CHOICES", "Value of field must be one of (2,).")
    style = item.get("style")
    if style not in (1, 2, 3, 4, 5):
        raise p.form_error((*where, "style"), "ENUM_TYPE_COERCE", f"Value {style} is not valid.")
    label = item.get("label")
    if label is not None and len(str(label)) > _MAX_LABEL:
        raise p.form_error(
            (*where, "label"),
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {_MAX_LABEL} or fewer in length.",
        )
    if not label and not item.get("emoji"):
        raise p.form_error((*where, "label"), "BASE_TYPE_REQUIRED", "This field is required")
    custom_id = item.get("custom_id")
    if style == 5:
        if not item.get("url") or custom_id is not None:
            raise p.form_error(
                (*where, "url"), "BUTTON_COMPONENT_URL_REQUIRED", "A link button needs a url."
            )
        return
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= _MAX_CUSTOM_ID:
        raise p.form_error(
            (*where, "custom_id"),
            "BASE_TYPE_BAD_LENGTH",
            f"Must be between 1 and {_MAX_CUSTOM_ID} in length.",
        )
    if custom_id in seen:
        raise p.form_error(
            (*where, "custom_id"),
            "COMPONENT_CUSTOM_ID_DUPLICATED",
            "Component custom id cannot be duplicated",
        )
    seen.add(custom_id)


def buttons(rows: Iterable[object]) -> list[JsonObject]:
    """The buttons of a message's action rows, in order."""
    return [
        item
        for row in rows
        if isinstance(row, dict)
        for item in row.get("components") or []
        if isinstance(item, dict) and item.get("type") == 2
    ]


def check_allowed(body: JsonObject) -> None:
    """allowed_mentions may not both parse a kind and list ids of it."""
    allowed = body.get("allowed_mentions")
    if not isinstance(allowed, dict):
        return
    parse = allowed.get("parse") or []
    for kind in ("users", "roles"):
        if kind in parse and allowed.get(kind):
            raise p.form_error(
                ("allowed_mentions",),
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )


def reference_id(reference: object) -> int | None:
    if isinstance(reference, dict) and reference.get("message_id") is not None:
        return int(reference["message_id"])
    return None


def embeds_length(embeds: Iterable[object]) -> int:
    """The characters Discord counts toward an embed's 6000 across a message's embeds."""
    total = 0
    for embed in embeds:
        if not isinstance(embed, dict):
            continue
        for key in ("title", "description"):
            total += len(str(embed.get(key) or ""))
        total += len(str((embed.get("footer") or {}).get("text") or ""))
        total += len(str((embed.get("author") or {}).get("name") or ""))
        for item in embed.get("fields") or []:
            if isinstance(item, dict):
                total += len(str(item.get("name") or "")) + len(str(item.get("value") or ""))
    return total
