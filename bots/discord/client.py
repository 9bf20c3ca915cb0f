"""The discord.py client: intents, the command tree, and a gateway that survives bad events.

discord.py parses each gateway event with no guard around the parser: one malformed
``INTERACTION_CREATE`` (a missing ``id``, say) raises out of ``Client.connect`` and the bot is
offline for good, while the process looks alive. ``guard_parsers`` wraps every parser, so such
an event is logged and dropped and the next one is handled as usual; an interaction without a
user or a token (which discord.py would hand on regardless) is dropped the same way. A
``CommandTree`` whose invoker lets a non-``AppCommandError`` escape (a payload the library
cannot read) is guarded too, and autocomplete for an option without it gets no choices.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

import discord
from discord import app_commands

from bots.discord.buttons import orphaned
from bots.discord.surface import NO_MENTIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "BotClient",
    "Handlers",
    "ShardedBotClient",
    "build_client",
    "guard_parsers",
    "shard_of",
]

log = logging.getLogger(__name__)


class Handlers(Protocol):
    """What the client hands its events to (``bots.discord.app.DiscordFrontend``)."""

    async def setup(self, tree: app_commands.CommandTree[BotClient]) -> None: ...

    async def on_message(self, message: discord.Message) -> None: ...

    async def press(self, interaction: discord.Interaction, action: str, arg: str) -> None: ...


def build_client(
    handlers: Handlers,
    *,
    message_content: bool,
    guild_ready_timeout: float,
    shard_count: int | None = None,
    shard_ids: Sequence[int] = (),
) -> BotClient:
    """One unsharded connection, or with ``shard_count`` the shards ``shard_ids`` (all when
    empty) of a bot split across processes."""
    if shard_count is None:
        return BotClient(
            handlers, message_content=message_content, guild_ready_timeout=guild_ready_timeout
        )
    return ShardedBotClient(
        handlers,
        message_content=message_content,
        guild_ready_timeout=guild_ready_timeout,
        shard_count=shard_count,
        shard_ids=list(shard_ids) or list(range(shard_count)),
    )


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to; direct messages go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


class BotClient(discord.Client):
    def __init__(
        self, handlers: Handlers, *, message_content: bool, guild_ready_timeout: float
    ) -> None:
        super().__init__(
            intents=_intents(message_content),
            allowed_mentions=NO_MENTIONS,
            guild_ready_timeout=guild_ready_timeout,
        )
        self._serve(handlers)

    def _serve(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.tree: app_commands.CommandTree[BotClient] = _Tree(self)
        guard_parsers(self)

    async def setup_hook(self) -> None:
        await self.handlers.setup(self.tree)

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message)

    async def press(self, interaction: discord.Interaction, action: str, arg: str) -> None:
        """``bots.discord.buttons.Presses``: where a pressed button lands."""
        await self.handlers.press(interaction, action, arg)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A press on a button its message no longer shows (no dynamic item runs for it)."""
        press = orphaned(interaction)
        if press is not None:
            action, arg = press
            # A Stop may have moved to a newer message of a reply still streaming; any other
            # button was taken away because it no longer applies (or was pressed already).
            await self.handlers.press(interaction, action if action == "stop" else "stale", arg)


class ShardedBotClient(BotClient, discord.AutoShardedClient):
    """``BotClient`` on discord.py's ``AutoShardedClient``: one gateway connection per shard
    of ``shard_ids``; Discord sends each the events of its guilds,
    ``(guild_id >> 22) % shard_count``, and direct messages to shard 0."""

    def __init__(
        self,
        handlers: Handlers,
        *,
        message_content: bool,
        guild_ready_timeout: float,
        shard_count: int,
        shard_ids: list[int],
    ) -> None:
        discord.AutoShardedClient.__init__(
            self,
            intents=_intents(message_content),
            allowed_mentions=NO_MENTIONS,
            guild_ready_timeout=guild_ready_timeout,
            shard_count=shard_count,
            shard_ids=shard_ids,
        )
        self._serve(handlers)


def _intents(message_content: bool) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = message_content  # privileged: only when mentions are answered
    return intents


class _Tree(app_commands.CommandTree["BotClient"]):
    async def interaction_check(self, interaction: discord.Interaction[BotClient]) -> bool:
        """Autocomplete only for an option that has it: discord.py would log an error for
        any other (a stale client, a forged payload); the user gets no choices either way."""
        if interaction.type is not discord.InteractionType.autocomplete:
            return True
        command = interaction.command
        focused = _focused(interaction.data)
        if isinstance(command, app_commands.Command) and any(
            parameter.name == focused and parameter.autocomplete
            for parameter in command.parameters
        ):
            return True
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.autocomplete([])
        return False

    async def _call(self, interaction: discord.Interaction[BotClient]) -> None:
        try:
            await super()._call(interaction)
        except app_commands.AppCommandError:
            raise  # the tree's error handler answers it
        except Exception:
            # A payload the library could not read: nothing sensible to answer.
            log.warning("discord: could not handle an interaction", exc_info=True)


def _focused(data: object) -> object:
    """The name of the option being typed into (``focused``), at any depth."""
    options = data.get("options") if isinstance(data, dict) else None
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, dict):
            continue
        if option.get("focused"):
            return option.get("name")
        if (inner := _focused(option)) is not None:
            return inner
    return None


def guard_parsers(client: discord.Client) -> None:
    """Wrap each gateway event parser so a malformed event is dropped, not fatal.

    The gateway reads the parsers from this very dict (``_connection.parsers``), so wrapping
    them in place covers every connection the client makes.
    """
    parsers = client._connection.parsers
    for event, parser in list(parsers.items()):
        check = _answerable if event == "INTERACTION_CREATE" else None
        parsers[event] = _guarded(event, parser, check)


def _guarded(
    event: str, parser: Callable[..., None], check: Callable[[object], bool] | None
) -> Callable[[object], None]:
    def parse(data: object) -> None:
        if check is not None and not check(data):
            log.warning("discord: dropped a malformed %s event", event)
            return
        try:
            parser(data)
        except Exception:
            log.warning("discord: dropped a malformed %s event", event, exc_info=True)

    return parse


def _answerable(data: object) -> bool:
    """An interaction names its user (``user`` in a DM, ``member.user`` in a guild) and has
    a token to answer with."""
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        return False
    member = data.get("member")
    user = member.get("user") if isinstance(member, dict) else data.get("user")
    return isinstance(user, dict) and "id" in user
