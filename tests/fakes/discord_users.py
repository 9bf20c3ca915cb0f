"""The people in the fake Discord: slash commands, autocomplete, button clicks, messages.

Each action builds the payload Discord would send (INTERACTION_CREATE, MESSAGE_CREATE) and
dispatches it on the gateway; an interaction also gets a record the tests inspect, whose
state the bot's REST calls change. Slash commands must have been registered by a command
sync, as Discord shows users only registered commands; their options are typed from the
registered schema. MESSAGE_CREATE honours the intents the bot identified with: without
``message_content`` a guild message reaches the bot with empty content unless it mentions
the bot, as on Discord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakes import discord_payloads as p
from tests.fakes.discord_gateway import DIRECT_MESSAGES, GUILD_MESSAGES, MESSAGE_CONTENT, Gateway
from tests.fakes.discord_messages import Interaction, Msg, buttons
from tests.fakes.discord_world import DiscordWorld

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from tests.fakes.discord_limits import Limits
    from tests.fakes.discord_payloads import Guild, JsonObject, User

__all__ = ["DiscordUsers"]

_SUBCOMMAND_TYPES = (1, 2)


class DiscordUsers(DiscordWorld):
    """User actions on top of the world; owns the gateway they are dispatched on."""

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
        heartbeat_ms: int,
        disallowed_intents: int,
        clock: Callable[[], float],
        shards: int = 1,
    ) -> None:
        super().__init__(
            token=token,
            app_id=app_id,
            bot_user_id=bot_user_id,
            guilds=guilds,
            limits=limits,
            token_ttl_s=token_ttl_s,
            response_deadline_s=response_deadline_s,
            clock=clock,
        )
        self.gateway = Gateway(
            self,
            token=token,
            heartbeat_ms=heartbeat_ms,
            disallowed_intents=disallowed_intents,
            clock=clock,
            on_change=self._changed,
            shard_count=shards,
        )

    # What the gateway greets a session with.

    def ready_payload(self) -> JsonObject:
        return {
            "user": self.bot.payload() | {"verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in self.guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "application": {"id": str(self.app_id), "flags": 0},
        }

    def guild_creates(self) -> list[JsonObject]:
        return [p.guild_payload(g, self.bot, joined_at=self.joined_at) for g in self.guilds]

    def member_chunk(self, guild_id: int, nonce: str | None) -> JsonObject | None:
        guild = next((g for g in self.guilds if g.id == guild_id), None)
        if guild is None:
            return None
        members = [
            p.member_payload(u, joined_at=self.joined_at) for u in (self.bot, *guild.members)
        ]
        return {
            "guild_id": str(guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "nonce": nonce,
        }

    # User actions.

    def slash(
        self,
        name: str,
        options: Mapping[str, object] | None = None,
        *,
        user: User | int = p.ALICE,
        channel_id: int | None = None,
        guild_id: int | None = None,
        locale: str = "en-US",
        thread: bool = False,
        dm: bool = False,
    ) -> Interaction:
        """A user runs ``/name`` (``"group sub"`` for subcommands) with ``options``.

        The channel defaults to the guild's first text channel (first thread if ``thread``),
        the guild to the first one; ``dm`` runs it in the user's DM with the bot instead.
        """
        who = self._as_user(user)
        guild, channel = self._where(who, channel_id, guild_id, thread=thread, dm=dm)
        data = self._command_data(name, options or {}, guild, focused=None)
        return self._interact(
            2,
            data,
            name=name,
            options=dict(options or {}),
            user=who,
            channel_id=channel,
            guild_id=guild,
            locale=locale,
        )

    def autocomplete(
        self,
        name: str,
        options: Mapping[str, object],
        focused: str,
        *,
        user: User | int = p.ALICE,
        channel_id: int | None = None,
        guild_id: int | None = None,
        locale: str = "en-US",
    ) -> Interaction:
        """A user types in option ``focused``; the bot should answer with choices (type 8)."""
        who = self._as_user(user)
        guild, channel = self._where(who, channel_id, guild_id, thread=False, dm=False)
        data = self._command_data(name, options, guild, focused=focused)
        return self._interact(
            4,
            data,
            name=name,
            options=dict(options),
            user=who,
            channel_id=channel,
            guild_id=guild,
            locale=locale,
        )

    def click(
        self,
        message: Msg | int,
        custom_id: str,
        *,
        user: User | int = p.ALICE,
        locale: str = "en-US",
        stale_client: bool = False,
    ) -> Interaction:
        """A user clicks the button ``custom_id`` on one of the bot's messages.

        The button must be under the message now and enabled, as a client shows only those;
        ``stale_client`` lets the user click one the message had in an earlier revision, as
        a client that has not seen the edit yet can (or a button on a message the bot never
        got to update before it restarted).
        """
        found = self._message(message.id if isinstance(message, Msg) else message)
        shown = {str(b.get("custom_id")): b for b in buttons(found.components)}
        earlier = {custom_id for r in found.history for custom_id in r.buttons}
        if custom_id in shown:
            if shown[custom_id].get("disabled"):
                raise LookupError(f"button {custom_id!r} of message {found.id} is disabled")
        elif not (stale_client and custom_id in earlier):
            raise LookupError(
                f"message {found.id} shows no button {custom_id!r} (it shows {list(shown)})"
            )
        data = {"custom_id": custom_id, "component_type": 2}
        who = self._as_user(user)
        return self._interact(
            3,
            data,
            name=custom_id,
            options={},
            user=who,
            channel_id=found.channel_id,
            guild_id=found.guild_id,
            locale=locale,
            message=found,
        )

    def message(
        self,
        channel_id: int,
        content: str,
        *,
        author: User | int = p.ALICE,
        mentions_bot: bool = False,
        guild_id: int | None = None,
        reply_to: Msg | int | None = None,
    ) -> Msg:
        """A user posts in a channel (``dm_channel_id(user)`` for a DM): MESSAGE_CREATE.

        The guild is the channel's (``guild_id``, if given, must agree). ``mentions_bot``
        puts ``<@bot>`` in front, as Discord's client writes a mention.
        """
        in_guild = self._channels.get(channel_id, (None, None))[1]
        if guild_id is not None and guild_id != in_guild:
            raise LookupError(f"channel {channel_id} is not in guild {guild_id}")
        who = self.add_user(self._as_user(author))
        mention = f"<@{self.bot.id}>"
        if mentions_bot and mention not in content and f"<@!{self.bot.id}>" not in content:
            content = f"{mention} {content}"
        body: JsonObject = {"content": content}
        if reply_to is not None:
            target = reply_to.id if isinstance(reply_to, Msg) else reply_to
            body["message_reference"] = {"message_id": str(target)}
        sent = self._new_message("user", channel_id, body, author=who)
        payload = self._message_payload(sent)
        if sent.guild_id is not None:
            payload["guild_id"] = str(sent.guild_id)
            payload["member"] = p.member_payload(who, joined_at=self.joined_at, with_user=False)
        session = self.gateway.session_for(sent.guild_id)
        intents = 0 if session is None else session.intents
        if not (
            intents & MESSAGE_CONTENT or sent.guild_id is None or self.bot.id in sent.mentions
        ):
            payload |= {"content": "", "embeds": [], "attachments": [], "components": []}
        intent = GUILD_MESSAGES if sent.guild_id is not None else DIRECT_MESSAGES
        self.gateway.dispatch("MESSAGE_CREATE", payload, intent=intent)
        return sent

    def interact(
        self,
        kind: int,
        data: object,
        *,
        user: User | int = p.ALICE,
        channel_id: int | None = None,
        locale: str = "en-US",
        message: Msg | None = None,
    ) -> Interaction:
        """An interaction of any ``kind`` with any ``data``, unchecked against the registered
        commands, in a well-formed envelope the fake answers: what a client Discord does not
        validate (or a future Discord) may send. The channel defaults to the first one.
        """
        who = self._as_user(user)
        guild, channel = self._where(who, channel_id, None, thread=False, dm=False)
        return self._interact(
            kind,
            data,  # type: ignore[arg-type]  # any JSON, on purpose
            name=f"raw:{kind}",
            options={},
            user=who,
            channel_id=channel,
            guild_id=guild,
            locale=locale,
            message=message,
        )

    def message_payload(self, message: Msg) -> JsonObject:
        """The message object Discord would send for ``message`` (in events, in responses)."""
        return self._message_payload(message)

    def dm(self, content: str, *, author: User | int = p.ALICE) -> Msg:
        """A user writes to the bot in their DM channel."""
        who = self._as_user(author)
        return self.message(self.dm_channel_id(who), content, author=who)

    # Building interactions.

    def _as_user(self, user: User | int) -> User:
        return self.user(user) if isinstance(user, int) else user

    def _where(
        self, user: User, channel_id: int | None, guild_id: int | None, *, thread: bool, dm: bool
    ) -> tuple[int | None, int]:
        """(guild id or None for a DM, channel id) of an action, checked against the world."""
        if dm:
            return None, self.dm_channel_id(user)
        if not self.guilds:
            raise LookupError("the fake has no guilds; pass dm=True")
        guild = next((g for g in self.guilds if g.id == guild_id), None) if guild_id else None
        guild = guild or self.guilds[0]
        if channel_id is not None:
            channel, in_guild = self._channels.get(channel_id, (None, None))
            if channel is None or in_guild != guild.id:
                raise LookupError(f"channel {channel_id} is not in guild {guild.id}")
            return guild.id, channel_id
        wanted = [c for c in guild.channels if c.is_thread == thread]
        if not wanted:
            raise LookupError(f"guild {guild.id} has no {'thread' if thread else 'text channel'}")
        return guild.id, wanted[0].id

    def _registered(self, name: str, guild_id: int | None) -> tuple[JsonObject, int | None]:
        """The registered command ``name``: guild commands first, then global ones."""
        scopes = ([guild_id] if guild_id is not None else []) + [None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command, scope
        known = sorted({str(c["name"]) for s in scopes for c in self._commands.get(s, [])})
        raise LookupError(f"/{name} is not registered (registered: {known}); sync the tree")

    def _command_data(
        self, name: str, options: Mapping[str, object], guild_id: int | None, focused: str | None
    ) -> JsonObject:
        top, *path = name.split()
        command, scope = self._registered(top, guild_id)
        schema: list[JsonObject] = command.get("options") or []
        parents: list[JsonObject] = []
        for part in path:
            sub = next(
                (o for o in schema if o["name"] == part and o["type"] in _SUBCOMMAND_TYPES), None
            )
            if sub is None:
                raise LookupError(f"/{top} has no subcommand {part!r}")
            parents.append(sub)
            schema = sub.get("options") or []
        typed = _typed_options(name, schema, options, focused)
        for sub in reversed(parents):
            typed = [{"name": sub["name"], "type": sub["type"], "options": typed}]
        data: JsonObject = {"id": command["id"], "name": top, "type": 1, "options": typed}
        if scope is not None:
            data["guild_id"] = str(scope)
        return data

    def _interact(
        self,
        kind: int,
        data: JsonObject,
        *,
        name: str,
        options: JsonObject,
        user: User,
        channel_id: int,
        guild_id: int | None,
        locale: str = "en-US",
        message: Msg | None = None,
    ) -> Interaction:
        """Record an interaction and dispatch its INTERACTION_CREATE."""
        inter_id, token, now = self.snowflake(), p.interaction_token(), self._clock()
        payload: JsonObject = {
            "id": str(inter_id),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": self._channel_payload(channel_id),
            "locale": locale,
            "app_permissions": p.ALL_PERMISSIONS,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": p.ATTACHMENT_SIZE_LIMIT,
            "authorizing_integration_owners": {"0": str(guild_id or 0)},
            "context": 0 if guild_id is not None else 1,
        }
        if guild_id is not None:
            guild = next(g for g in self.guilds if g.id == guild_id)
            payload["channel"]["permissions"] = p.MEMBER_PERMISSIONS
            payload |= {
                "guild_id": str(guild_id),
                "guild_locale": guild.locale,
                "guild": {"id": str(guild_id), "locale": guild.locale, "features": []},
                "member": p.member_payload(
                    user, joined_at=self.joined_at, permissions=p.MEMBER_PERMISSIONS
                ),
            }
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self._message_payload(message)
        inter = Interaction(
            id=inter_id,
            token=token,
            type=kind,
            name=name,
            options=options,
            user=user,
            channel_id=channel_id,
            guild_id=guild_id,
            payload=payload,
            created_at=now,
            deadline_at=now + self.response_deadline_s,
            expires_at=now + self.token_ttl_s,
            message=message,
        )
        self.interactions.append(inter)
        self._interactions[inter.id] = self._interactions[inter.token] = inter
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inter


def _typed_options(
    command: str, schema: list[JsonObject], given: Mapping[str, object], focused: str | None
) -> list[JsonObject]:
    """Options as Discord sends them: in schema order, each with its registered type."""
    by_name = {str(option["name"]): option for option in schema}
    unknown = [key for key in given if key not in by_name]
    if unknown:
        raise ValueError(f"/{command} has no option(s) {unknown}; it has {list(by_name)}")
    missing = [n for n, o in by_name.items() if o.get("required") and n not in given]
    if missing and focused is None:
        raise ValueError(f"/{command} needs option(s) {missing}")
    typed: list[JsonObject] = []
    for name, option in by_name.items():
        if name not in given:
            continue
        kind = int(option["type"])
        value = given[name]
        if name == focused:
            typed.append({"name": name, "type": kind, "value": str(value), "focused": True})
            continue
        typed.append({"name": name, "type": kind, "value": _coerce(command, name, kind, value)})
    return typed


def _coerce(command: str, name: str, kind: int, value: object) -> object:
    if kind == 3:
        return str(value)
    if kind == 4 and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == 5 and isinstance(value, bool):
        return value
    if kind == 10 and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"/{command} option {name!r} of type {kind} cannot take {value!r}")
