"""Discord's JSON shapes for the fake: ids, users, guilds, channels, errors.

discord.py reads many keys with ``[]``, so a payload missing one fails inside the library
(often silently, in the gateway parser); the builders here give every key it reads, as the
real API does. The error messages and JSON codes are those of Discord's error code table;
``form_error`` builds the nested ``errors`` tree of 50035 "Invalid Form Body", whose inner
codes are Discord's for content length, embeds and allowed_mentions and guesses for
command validation and callback types.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALICE",
    "APP_ID",
    "BOB",
    "BOT_ID",
    "CHANNEL_ID",
    "GUILD_ID",
    "MAX_CONTENT",
    "THREAD_ID",
    "ApiError",
    "Channel",
    "Guild",
    "JsonObject",
    "Snowflakes",
    "User",
    "default_guilds",
    "form_error",
    "iso",
]

JsonObject = dict[str, Any]

APP_ID = 1_300_000_000_000_000_001  # a bot's user id equals its application's id
BOT_ID = APP_ID
GUILD_ID = 1_300_000_000_000_000_100
CHANNEL_ID = 1_300_000_000_000_000_200
THREAD_ID = 1_300_000_000_000_000_300
MAX_CONTENT = 2000  # characters (code points), not UTF-16 units as on Telegram
MAX_EMBED_CHARS = 6000
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
ALL_PERMISSIONS = str((1 << 51) - 1)
MEMBER_PERMISSIONS = "2248473465835073"  # @everyone's defaults in a new server
_DISCORD_EPOCH_MS = 1_420_070_400_000


@dataclass(frozen=True, slots=True)
class User:
    """A person (or bot) the fake plays; ``roles`` are role ids in every guild."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    roles: tuple[int, ...] = ()

    def payload(self) -> JsonObject:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }


ALICE = User(1_300_000_000_000_000_400, "alice", "Alice")
BOB = User(1_300_000_000_000_000_401, "bob", "Bob")


@dataclass(frozen=True, slots=True)
class Channel:
    """A guild channel: type 0 text, 11 public thread (needs ``parent_id``), 5 announcement."""

    id: int
    name: str
    type: int = 0
    parent_id: int | None = None
    position: int = 0

    @property
    def is_thread(self) -> bool:
        return self.type in (10, 11, 12)


@dataclass(frozen=True, slots=True)
class Guild:
    """A server: its channels and threads, and the role ids mentions may name."""

    id: int
    name: str
    channels: tuple[Channel, ...]
    roles: tuple[int, ...] = ()
    owner_id: int = ALICE.id
    locale: str = "en-US"
    members: tuple[User, ...] = (ALICE, BOB)


def default_guilds() -> tuple[Guild, ...]:
    """One server with a text channel #general and a public thread in it."""
    general = Channel(CHANNEL_ID, "general")
    thread = Channel(THREAD_ID, "kamiya-thread", type=11, parent_id=CHANNEL_ID)
    return (Guild(GUILD_ID, "Kamiya Test", (general, thread)),)


class Snowflakes:
    """Discord ids: milliseconds since 2015 shifted left 22 bits, so they sort by creation.

    Strictly increasing even within a millisecond, so message order is id order.
    """

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        now = (int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22
        self._last = max(now, self._last + 1)
        return self._last


_tokens = itertools.count(1)


def interaction_token() -> str:
    """A unique interaction token; real ones are long opaque strings like this one."""
    return f"aW50ZXJhY3Rpb246{next(_tokens)}:{secrets.token_urlsafe(48)}"


def iso(moment: dt.datetime | None = None) -> str:
    """Discord's timestamp format: ISO 8601 with microseconds and ``+00:00``."""
    return (moment or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds")


class ApiError(Exception):
    """An error answer: the HTTP status and Discord's JSON body, sent as is."""

    def __init__(
        self, status: int, body: JsonObject, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {body.get('message')} (code {body.get('code')})")
        self.status = status
        self.body = body
        self.headers = headers or {}

    @property
    def code(self) -> int | None:
        code = self.body.get("code")
        return code if isinstance(code, int) else None

    @classmethod
    def of(cls, status: int, message: str, code: int) -> ApiError:
        return cls(status, {"message": message, "code": code})


def unauthorized() -> ApiError:
    return ApiError.of(401, "401: Unauthorized", 0)


def not_found() -> ApiError:
    return ApiError.of(404, "404: Not Found", 0)


def method_not_allowed() -> ApiError:
    return ApiError.of(405, "405: Method Not Allowed", 0)


def unknown_channel() -> ApiError:
    return ApiError.of(404, "Unknown Channel", 10003)


def unknown_message() -> ApiError:
    return ApiError.of(404, "Unknown Message", 10008)


def unknown_webhook() -> ApiError:
    return ApiError.of(404, "Unknown Webhook", 10015)


def unknown_interaction() -> ApiError:
    return ApiError.of(404, "Unknown interaction", 10062)


def already_acknowledged() -> ApiError:
    return ApiError.of(400, "Interaction has already been acknowledged.", 40060)


def invalid_webhook_token() -> ApiError:
    return ApiError.of(401, "Invalid Webhook Token", 50027)


def empty_message() -> ApiError:
    return ApiError.of(400, "Cannot send an empty message", 50006)


def not_author() -> ApiError:
    return ApiError.of(403, "Cannot edit a message authored by another user", 50005)


def missing_permissions() -> ApiError:
    return ApiError.of(403, "Missing Permissions", 50013)


def server_error() -> ApiError:
    return ApiError.of(500, "500: Internal Server Error", 0)


def form_error(path: tuple[str, ...], code: str, message: str) -> ApiError:
    """50035 with Discord's nested errors, e.g. ``("content",)`` → ``{"content": {...}}``."""
    errors: JsonObject = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {key: errors}
    return ApiError(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})


def rate_limited(retry_after: float, *, is_global: bool = False) -> JsonObject:
    return {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }


# Payload builders.


def member_payload(
    user: User, *, joined_at: str, with_user: bool = True, permissions: str | None = None
) -> JsonObject:
    payload: JsonObject = {
        "roles": [str(role) for role in user.roles],
        "joined_at": joined_at,
        "nick": None,
        "avatar": None,
        "banner": None,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_user:
        payload["user"] = user.payload()
    if permissions is not None:
        payload["permissions"] = permissions
    return payload


def channel_payload(channel: Channel, guild_id: int, *, owner_id: int, created: str) -> JsonObject:
    payload: JsonObject = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None if channel.parent_id is None else str(channel.parent_id),
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
    if channel.is_thread:
        payload |= {
            "owner_id": str(owner_id),
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": created,
                "locked": False,
                "create_timestamp": created,
            },
        }
    return payload


def dm_channel_payload(channel_id: int, recipient: User) -> JsonObject:
    return {
        "id": str(channel_id),
        "type": 1,
        "recipients": [recipient.payload()],
        "last_message_id": None,
        "flags": 0,
    }


def guild_payload(guild: Guild, bot: User, *, joined_at: str) -> JsonObject:
    """GUILD_CREATE's ``d``: the guild with its channels, threads, the bot and @everyone."""
    plain = [c for c in guild.channels if not c.is_thread]
    threads = [c for c in guild.channels if c.is_thread]
    everyone = {
        "id": str(guild.id),
        "name": "@everyone",
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0,
        "permissions": MEMBER_PERMISSIONS,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    roles = [everyone] + [
        everyone | {"id": str(role), "name": f"role-{index}", "position": index}
        for index, role in enumerate(guild.roles, start=1)
    ]
    members = [member_payload(user, joined_at=joined_at) for user in (bot, *guild.members)]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 1,  # only @mentions notify by default
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.locale,
        "features": [],
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "joined_at": joined_at,
        "large": False,
        "unavailable": False,
        "member_count": len(members),
        "members": members,
        "channels": [
            channel_payload(c, guild.id, owner_id=bot.id, created=joined_at) for c in plain
        ],
        "threads": [
            channel_payload(c, guild.id, owner_id=guild.owner_id, created=joined_at)
            for c in threads
        ],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def application_payload(app_id: int, bot: User, owner: User) -> JsonObject:
    return {
        "id": str(app_id),
        "name": bot.username,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": owner.payload(),
        "team": None,
        "flags": 0,
        "bot": bot.payload(),
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "approximate_guild_count": 1,
    }


def attachment_payload(
    attachment_id: int, filename: str, size: int, channel_id: int
) -> JsonObject:
    url = f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{filename}"
    return {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
        "content_type": "text/plain" if filename.endswith(".txt") else None,
    }
