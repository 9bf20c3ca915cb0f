"""The Discord frontend: a discord.py client with slash commands, wired to core.

``/chat`` defers at once (Discord allows 3 s), takes the channel's place in line, then edits the
response as the reply streams; ``/reset`` and ``/help`` answer ephemerally. A thread is a channel
of its own, so it gets its own conversation. With ``reply_to_mentions``, a message that mentions
the bot (or a DM) is answered the same way, in plain channel messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import locale_str

from bots.discord.endpoints import use_endpoints
from bots.discord.sink import DiscordReply
from bots.discord.surface import NO_MENTIONS, DiscordSurface
from bots.discord.texts import Translator, say
from core import ChatKey
from core.background import Background
from core.throttle import Gates, PaceLimits

if TYPE_CHECKING:
    from core import Config, Conversations, DiscordSettings

__all__ = ["MAX_PROMPT", "DiscordFrontend"]

log = logging.getLogger(__name__)

MAX_PROMPT = 4000
HEADER_CHARS = 150
READY_TIMEOUT_S = 60.0
DRAIN_S = 1.5


class DiscordFrontend:
    """``bots.runner.Frontend`` for Discord."""

    name = "discord"

    def __init__(
        self, config: Config, conversations: Conversations, *, guild_ready_timeout: float = 2.0
    ) -> None:
        self._settings: DiscordSettings = config.discord
        self._conversations = conversations
        self._guild_ready_timeout = guild_ready_timeout
        self._client: _Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks = Background("discord")
        self._gates = Gates()
        settings = self._settings
        self._limits = PaceLimits(
            per_second=1 / settings.min_edit_interval_s,
            burst=2,
            window_calls=settings.edits_per_window,
            window_s=settings.edit_window_s,
        )

    @property
    def client(self) -> discord.Client:
        if self._client is None:
            raise RuntimeError("the Discord frontend is not started")
        return self._client

    @property
    def busy(self) -> int:
        """Replies still in progress (what shutdown drains; tests wait on it)."""
        return len(self._tasks)

    async def start(self) -> None:
        use_endpoints(self._settings)
        client = _Client(
            self,
            message_content=self._settings.reply_to_mentions,
            guild_ready_timeout=self._guild_ready_timeout,
        )
        self._client = client
        await client.login(self._settings.token.get_secret_value())
        self._runner = asyncio.create_task(client.connect(reconnect=True), name="discord")
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._runner}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            await self.stop()
            raise RuntimeError("Discord did not become ready")
        log.info("discord: serving as %s", client.user)

    async def stop(self) -> None:
        await self._tasks.drain(DRAIN_S)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._runner
        self._client = self._runner = None

    async def setup(self, tree: app_commands.CommandTree[_Client]) -> None:
        """Register the commands and sync them: to the configured guilds at once, else global."""
        await tree.set_translator(Translator())
        _register(tree, self)
        guilds = [discord.Object(gid) for gid in self._settings.guild_ids]
        for guild in guilds:
            tree.copy_global_to(guild=guild)
            await tree.sync(guild=guild)
        if not guilds:
            await tree.sync()

    # Commands.

    async def chat(self, interaction: discord.Interaction, prompt: str) -> None:
        locale = str(interaction.locale)
        if len(prompt) > MAX_PROMPT:
            await interaction.response.send_message(
                say("too_long", locale, length=len(prompt), limit=MAX_PROMPT), ephemeral=True
            )
            return
        channel = interaction.channel
        if channel is None or interaction.channel_id is None:
            return
        surface = DiscordSurface(
            channel,  # type: ignore[arg-type]
            interaction=interaction,
            header=_header(prompt),
            budget_s=self._settings.interaction_budget_s,
        )
        key = ChatKey("discord", str(interaction.channel_id))
        # Take the channel's place in line before the first await, then acknowledge.
        self._answer(key, prompt, surface, str(interaction.user.id), locale)
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            log.warning("discord: could not defer an interaction (%s); using the channel", exc)
            surface.abandon_interaction()
        surface.ready.set()

    async def reset(self, interaction: discord.Interaction) -> None:
        locale = str(interaction.locale)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._conversations.reset(ChatKey("discord", str(interaction.channel_id)))
        await interaction.followup.send(say("reset", locale), ephemeral=True)

    async def help(self, interaction: discord.Interaction) -> None:
        locale = str(interaction.locale)
        text = say("help", locale)
        if self._settings.reply_to_mentions:
            text += "\n" + say("mentions", locale)
        await interaction.response.send_message(text, ephemeral=True)

    async def on_message(self, message: discord.Message) -> None:
        client = self.client
        if not self._settings.reply_to_mentions or message.author.bot or client.user is None:
            return
        private = isinstance(message.channel, discord.DMChannel)
        if not private and client.user not in message.mentions:
            return
        prompt = re.sub(rf"<@!?{client.user.id}>", "", message.content).strip()
        if not prompt:
            return
        if len(prompt) > MAX_PROMPT:
            await message.reply(
                say("too_long", None, length=len(prompt), limit=MAX_PROMPT),
                allowed_mentions=NO_MENTIONS,
            )
            return
        surface = DiscordSurface(message.channel, reply_to=message)
        key = ChatKey("discord", str(message.channel.id))
        self._answer(key, prompt, surface, str(message.author.id), None)
        with contextlib.suppress(discord.HTTPException):
            await message.channel.typing()

    def _answer(
        self, key: ChatKey, prompt: str, surface: DiscordSurface, user: str, locale: str | None
    ) -> None:
        gate = self._gates.get(key.chat_id, self._limits)
        sink = DiscordReply(surface, gate, locale=locale)

        async def run() -> None:
            try:
                await self._conversations.ask(key, prompt, sink, user_id=user, language=locale)
            finally:
                await sink.aclose()

        self._tasks.spawn(run())


class _Client(discord.Client):
    def __init__(
        self, frontend: DiscordFrontend, *, message_content: bool, guild_ready_timeout: float
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content  # privileged: only when mentions are answered
        super().__init__(
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.frontend = frontend
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        await self.frontend.setup(self.tree)

    async def on_message(self, message: discord.Message) -> None:
        await self.frontend.on_message(message)


def _register(tree: app_commands.CommandTree[_Client], frontend: DiscordFrontend) -> None:
    @tree.command(name="chat", description=locale_str("Ask Kamiya; the reply streams in"))
    @app_commands.describe(prompt=locale_str("What to ask"))
    async def chat(
        interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 6000]
    ) -> None:
        await frontend.chat(interaction, prompt)

    @tree.command(name="reset", description=locale_str("Start a new conversation in this channel"))
    async def reset(interaction: discord.Interaction) -> None:
        await frontend.reset(interaction)

    @tree.command(name="help", description=locale_str("What this bot does"))
    async def help_(interaction: discord.Interaction) -> None:
        await frontend.help(interaction)


def _header(prompt: str) -> str:
    """The prompt as a one-line quote, so the channel sees what was asked."""
    line = " ".join(prompt.split())
    if len(line) > HEADER_CHARS:
        line = line[: HEADER_CHARS - 1] + "…"
    return f"> {line}\n"
