"""The state behind the fake Discord: guilds, channels, users, messages, interactions.

The layers of the fake stack on it, one job each: ``discord_users`` plays the users (slash
commands, messages) over the gateway, ``discord_rest`` answers the bot's REST calls,
``discord`` serves both. Inspection lives here: ``visible`` is what a channel shows of the
bot, read in order; ``pings`` is who the bot's messages would have notified or highlighted.
Discord's message rules and the records themselves are in ``discord_messages``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.fakes import discord_payloads as p
from tests.fakes.discord_limits import Limits, RateLimiter
from tests.fakes.discord_messages import (
    EPHEMERAL,
    LOADING,
    SUPPRESS_NOTIFICATIONS,
    Interaction,
    Msg,
    MsgKind,
    Ping,
    Revision,
    Sync,
    buttons,
    check_allowed,
    check_message,
    current_fields,
    mentions,
    merged_fields,
    reference_id,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from tests.fakes.discord_payloads import Channel, Guild, JsonObject, User

__all__ = ["DiscordWorld"]


class DiscordWorld:
    """Guilds, channels, users, messages, interactions and commands; what tests inspect."""

    def __init__(
        self,
        *,
        token: str,
        app_id: int,
        bot_user_id: int,
        guilds: Iterable[Guild],
        limits: Limits,
        token_ttl_s: float,
        response_deadline_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.bot = p.User(bot_user_id, "kamiya-test", "Kamiya Test", bot=True)
        self.guilds = tuple(guilds)
        self.limits = limits
        self.token_ttl_s = token_ttl_s
        self.response_deadline_s = response_deadline_s
        self.rate_limiter = RateLimiter(limits, clock)
        self.snowflake = p.Snowflakes()
        self.joined_at = p.iso()
        self.syncs: list[Sync] = []
        self.pings: list[Ping] = []
        self.interactions: list[Interaction] = []
        self._interactions: dict[int | str, Interaction] = {}  # by id and by token
        self.messages: dict[int, Msg] = {}
        self.typing: list[tuple[int, float]] = []  # (channel id, time) of each typing call
        self._clock = clock
        self._users: dict[int, User] = {self.bot.id: self.bot}
        self._channels: dict[int, tuple[Channel | None, int | None]] = {}
        self._dm_channels: dict[int, int] = {}  # user id → DM channel id
        self._commands: dict[int | None, list[JsonObject]] = {}
        self._nonces: dict[tuple[int, str], Msg] = {}
        self._wakeup = asyncio.Event()
        for guild in self.guilds:
            for user in guild.members:
                self._users.setdefault(user.id, user)
            for channel in guild.channels:
                self._channels[channel.id] = (channel, guild.id)

    # Inspection.

    def visible(self, channel_id: int, *, include_ephemeral: bool = False) -> list[Msg]:
        """The bot's messages the channel shows now, in order: each interaction's @original
        (a deferred one still "thinking" has content ""), its follow-ups, plain messages.
        Ephemeral ones only their user sees, so they are left out unless asked for.
        """
        return [
            message
            for message in self.messages.values()  # ids grow with insertion: creation order
            if message.channel_id == channel_id
            and message.from_bot
            and not message.deleted
            and (include_ephemeral or not message.ephemeral)
        ]

    def channel_messages(self, channel_id: int) -> list[Msg]:
        """The bot's plain channel messages (not interaction responses), in order."""
        return [m for m in self.visible(channel_id) if m.kind == "channel"]

    def commands(self, guild_id: int | None = None) -> list[JsonObject]:
        """The commands registered now, globally (None) or in one guild."""
        return list(self._commands.get(guild_id, []))

    def interaction(self, token_or_id: str | int) -> Interaction:
        return self._interactions[token_or_id]

    def user(self, user_id: int) -> User:
        """A known user, or a stranger named after the id (as Discord has every id)."""
        return self._users.get(user_id) or p.User(user_id, f"user{user_id}")

    def add_user(self, user: User) -> User:
        self._users[user.id] = user
        return user

    def dm_channel_id(self, user: User) -> int:
        """The bot's DM channel with ``user``, made on first use (POST users/@me/channels)."""
        self.add_user(user)
        if user.id not in self._dm_channels:
            channel_id = self.snowflake()
            self._dm_channels[user.id] = channel_id
            self._channels[channel_id] = (None, None)
        return self._dm_channels[user.id]

    # Internals shared with the layers.

    def _changed(self) -> None:
        """Wake every waiter; an event swapped per change, as the users' API is synchronous."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._wakeup.wait()

    def _channel(self, channel_id: int) -> tuple[Channel | None, int | None]:
        """The channel (None for a DM) and its guild id, or 404 Unknown Channel."""
        try:
            return self._channels[channel_id]
        except KeyError:
            raise p.unknown_channel() from None

    def _channel_payload(self, channel_id: int) -> JsonObject:
        channel, guild_id = self._channel(channel_id)
        if channel is None or guild_id is None:
            recipient = next(u for u, c in self._dm_channels.items() if c == channel_id)
            return p.dm_channel_payload(channel_id, self.user(recipient))
        return p.channel_payload(channel, guild_id, owner_id=self.bot.id, created=self.joined_at)

    def _message(self, message_id: int, channel_id: int | None = None) -> Msg:
        found = self.messages.get(message_id)
        if found is None or found.deleted or channel_id not in (None, found.channel_id):
            raise p.unknown_message()
        return found

    def _message_payload(self, message: Msg) -> JsonObject:
        """The full message object discord.py parses; webhook-made ones carry the app's id."""
        payload: JsonObject = {
            "id": str(message.id),
            "type": 20 if message.interaction_id is not None else 19 if message.reply_to else 0,
            "channel_id": str(message.channel_id),
            "author": message.author.payload(),
            "content": message.content,
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited,
            "tts": False,
            "mention_everyone": message.mention_everyone,
            "mentions": [self.user(user_id).payload() for user_id in message.mentions],
            "mention_roles": [str(role) for role in message.mention_roles],
            "mention_channels": [],
            "attachments": list(message.attachments),
            "embeds": list(message.embeds),
            "components": list(message.components),
            "reactions": [],
            "pinned": False,
            "flags": message.flags,
        }
        if message.kind in ("original", "followup"):
            payload |= {"webhook_id": str(self.app_id), "application_id": str(self.app_id)}
        inter = self._interaction_of(message)
        if inter is not None:
            payload["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "name": inter.name,
                "user": inter.user.payload(),
                "authorizing_integration_owners": inter.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
        if message.reply_to is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(message.reply_to),
                "channel_id": str(message.channel_id),
            }
            if message.guild_id is not None:
                payload["message_reference"]["guild_id"] = str(message.guild_id)
            replied = self.messages.get(message.reply_to)
            payload["referenced_message"] = (
                None if replied is None or replied.deleted else self._message_payload(replied)
            )
        return payload

    def _interaction_of(self, message: Msg) -> Interaction | None:
        if message.interaction_id is None:
            return None
        return self._interactions.get(message.interaction_id)

    def _new_message(
        self,
        kind: MsgKind,
        channel_id: int,
        body: JsonObject,
        *,
        author: User,
        interaction: Interaction | None = None,
        action: str = "send",
    ) -> Msg:
        """Validate ``body`` like Discord, then store the new message and its pings."""
        _, guild_id = self._channel(channel_id)
        fields = merged_fields(self._uploaded(body, channel_id), {})
        reply_to = reference_id(body.get("message_reference"))
        if reply_to is not None:
            self._message(reply_to, channel_id)
        flags = int(body.get("flags") or 0)
        if kind not in ("original", "followup"):
            flags &= ~EPHEMERAL  # only interaction responses can be ephemeral
        if action != "defer":
            check_message(fields)
            check_allowed(body)
        message = Msg(
            id=self.snowflake(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=author,
            kind=kind,
            content=str(fields["content"]),
            created_at=self._clock(),
            embeds=fields["embeds"],
            components=fields["components"],
            attachments=fields["attachments"],
            flags=flags | (LOADING if action == "defer" else 0),
            interaction_id=None if interaction is None else interaction.id,
            reply_to=reply_to,
        )
        self.messages[message.id] = message
        self._record(message, body, action, notified=not flags & SUPPRESS_NOTIFICATIONS)
        return message

    def _edit_message(self, message: Msg, body: JsonObject, *, action: str = "edit") -> Msg:
        """Apply an edit (merging the fields it names), or raise without changing anything."""
        fields = merged_fields(self._uploaded(body, message.channel_id), current_fields(message))
        check_message(fields)
        check_allowed(body)
        was_loading = message.loading  # filling a deferral is not an edit to the user
        message.content = str(fields["content"])
        message.embeds = fields["embeds"]
        message.components = fields["components"]
        message.attachments = fields["attachments"]
        if "flags" in body:
            keep = message.flags & EPHEMERAL
            message.flags = (int(body.get("flags") or 0) & ~EPHEMERAL) | keep
        message.flags &= ~LOADING
        if not was_loading:
            message.edited = p.iso()
        self._record(message, body, action, notified=False)
        return message

    def _uploaded(self, body: JsonObject, channel_id: int) -> JsonObject:
        """Files uploaded with a multipart body (``_uploads``) as new attachments."""
        uploads = body.get("_uploads")
        if not uploads:
            return body
        files = [
            p.attachment_payload(self.snowflake(), str(u["filename"]), int(u["size"]), channel_id)
            for u in uploads
        ]
        return body | {"_files": files}

    def _record(self, message: Msg, body: JsonObject, action: str, *, notified: bool) -> None:
        """Log the revision and recompute mentions, as Discord does whenever content is set.

        An edit without ``content`` keeps the mentions it had; one without allowed_mentions
        parses with the defaults, whatever the message was created with (Discord's docs).
        """
        allowed = body.get("allowed_mentions")
        allowed = allowed if isinstance(allowed, dict) else None
        now = self._clock()
        ids = tuple(str(b.get("custom_id")) for b in buttons(message.components))
        message.history.append(Revision(now, message.content, action, allowed, ids))
        if action == "defer" or (action == "edit" and "content" not in body):
            self._changed()
            return
        replied = self.messages.get(message.reply_to) if message.reply_to else None
        replied_user = replied.author.id if replied is not None and action == "send" else None
        everyone, users, roles = mentions(message.content, allowed, replied_user=replied_user)
        message.mention_everyone, message.mentions, message.mention_roles = everyone, users, roles
        if message.from_bot and (everyone or users or roles):
            self.pings.append(Ping(message.id, everyone, users, roles, notified, now))
        self._changed()
