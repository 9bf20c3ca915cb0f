"""The Discord frontend: a discord.py client with slash commands, wired to core.

``/chat`` defers at once (Discord allows 3 s), takes the channel's place in line, then edits the
response as the reply streams, a ⏹ Stop button under its newest message; a completions-mode
reply ends with a 🔄 Regenerate button under its last one, which the channel's next reply (or
/reset, /model, /resume) takes away again. A thread is a channel of its own, so it gets its own
conversation. With ``reply_to_mentions``, a message that mentions the bot (or a DM, or a reply to
one of the bot's messages, which continues that message's conversation) is answered the same
way, in plain channel messages. The other commands are in ``commands``, the buttons in
``buttons``, the client in ``client``.

Reliability: each reply is recorded (``flight``) from its acknowledgement until its final text
is on screen, so a process killed mid-reply leaves a record the next one marks interrupted once
the gateway is ready (``recovery``). ``stop`` (SIGTERM/SIGINT) takes no new requests, lets the
replies in progress finish for ``[bot] shutdown_grace_s``, then cuts the rest short, each
showing what it had with the interrupted line, and closes the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bots.discord.buttons import ControlButton, parse_regen, regen_control, stop_control
from bots.discord.client import BotClient, build_client, shard_of
from bots.discord.commands import Commands, chat_key, locale_of, register
from bots.discord.endpoints import use_endpoints
from bots.discord.recovery import recover
from bots.discord.sink import DiscordReply
from bots.discord.surface import CHANNEL_TYPES, NO_MENTIONS, DiscordSurface, set_button
from bots.discord.texts import Translator, say
from core import ChatKey, Reply, new_turn_id, text
from core.background import Background
from core.flight import Flight
from core.throttle import Gates, PaceLimits

if TYPE_CHECKING:
    from bots.discord.surface import Channel
    from core import Config, Conversations, DiscordSettings
    from core.inflight import Leftover

__all__ = ["MAX_PROMPT", "DiscordFrontend"]

log = logging.getLogger(__name__)

MAX_PROMPT = 4000
HEADER_CHARS = 150
READY_TIMEOUT_S = 60.0
# After the grace period, for a cut-off reply to show its interrupted text: within the margin
# bots.runner gives beyond [bot] shutdown_grace_s (core's own notice takes up to 1 s of it).
SETTLE_S = 3.0


class DiscordFrontend:
    """``bots.runner.Frontend`` for Discord."""

    name = "discord"

    def __init__(
        self, config: Config, conversations: Conversations, *, guild_ready_timeout: float = 2.0
    ) -> None:
        self._settings: DiscordSettings = config.discord
        self._conversations = conversations
        self._guild_ready_timeout = guild_ready_timeout
        self._grace_s = config.bot.shutdown_grace_s
        self._closing = False
        self._client: BotClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks = Background("discord")
        self._gates = Gates(observer=conversations.observer, platform="discord")
        self._commands = Commands(self, conversations, config.discord)
        # Per channel, the message whose Regenerate button still applies (this process's).
        self._regenerable: dict[ChatKey, tuple[Channel, int]] = {}
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
        """Replies still in progress, and the recovery at start (what shutdown drains; tests
        wait on it)."""
        return len(self._tasks)

    def healthy(self) -> bool:
        """Up: ready once, its gateway loop still running, and the gateway's websocket open
        now (between a drop and the reconnect it is not)."""
        client, runner = self._client, self._runner
        if client is None or runner is None or runner.done() or self._closing:
            return False
        ws: discord.gateway.DiscordWebSocket | None = client.ws  # None until connected
        return client.is_ready() and ws is not None and ws.open

    async def start(self) -> None:
        use_endpoints(self._settings)
        client = build_client(
            self,
            message_content=self._settings.reply_to_mentions,
            guild_ready_timeout=self._guild_ready_timeout,
            shard_count=self._settings.shard_count,
            shard_ids=self._settings.shard_ids,
        )
        self._client = client
        await client.login(self._settings.token.get_secret_value())
        # Before the gateway: no reply of this process can be among them yet. A sharded
        # process marks only its shards' (the others' processes may be serving theirs).
        leftovers = [
            leftover
            for leftover in await self._conversations.inflight.leftovers("discord")
            if self._on_my_shards(leftover)
        ]
        self._runner = asyncio.create_task(client.connect(reconnect=True), name="discord")
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._runner}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            await self.stop()
            raise RuntimeError("Discord did not become ready")
        count = self._settings.shard_count
        if count is None:
            log.info("discord: serving as %s", client.user)
        else:
            ids = self._settings.shard_ids or range(count)
            log.info("discord: serving as %s, shards %s of %d", client.user, list(ids), count)
        self._runner.add_done_callback(self._disconnected)
        self._tasks.spawn(self._recover(client, leftovers))

    def _on_my_shards(self, leftover: Leftover) -> bool:
        """Whether this process's shards get the leftover's guild (all do, unsharded)."""
        count = self._settings.shard_count
        if count is None:
            return True
        guild = leftover.target.get("guild_id")
        try:
            shard = shard_of(None if guild is None else int(str(guild)), count)
        except ValueError:
            shard = 0  # an unreadable record: shard 0's process ends it
        return shard in (self._settings.shard_ids or range(count))

    def _disconnected(self, runner: asyncio.Task[None]) -> None:
        """The gateway loop ended while serving: say so loudly, nothing arrives any more."""
        if self._closing or runner.cancelled():
            return
        log.error("discord: the gateway connection ended for good (%r)", runner.exception())

    async def stop(self) -> None:
        """Take no new requests; drain replies for the grace period, cut the rest short."""
        self._closing = True
        log.info("discord: stopping, %d reply(ies) in progress", len(self._tasks))
        await self._tasks.drain(self._grace_s)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._runner
        self._client = self._runner = None

    async def _recover(self, client: BotClient, leftovers: list[Leftover]) -> None:
        marked = await recover(client, self._conversations.inflight, leftovers)
        if marked:
            log.info("discord: marked %d interrupted reply(ies)", marked)

    async def setup(self, tree: app_commands.CommandTree[BotClient]) -> None:
        """Register the commands and buttons; sync: to the configured guilds at once, else
        globally."""
        await tree.set_translator(Translator())
        register(tree, self._commands)
        tree.client.add_dynamic_items(ControlButton)
        guilds = [discord.Object(gid) for gid in self._settings.guild_ids]
        for guild in guilds:
            tree.copy_global_to(guild=guild)
            await tree.sync(guild=guild)
        if not guilds:
            await tree.sync()

    # Replies.

    async def chat(self, interaction: discord.Interaction, prompt: str) -> None:
        locale = locale_of(interaction)
        if self._closing:
            await interaction.response.send_message(say("restarting", locale), ephemeral=True)
            return
        if len(prompt) > MAX_PROMPT:
            await interaction.response.send_message(
                say("too_long", locale, length=len(prompt), limit=MAX_PROMPT), ephemeral=True
            )
            return
        channel = self._channel_of(interaction)
        if channel is None:
            return
        surface = DiscordSurface(
            channel,
            interaction=interaction,
            header=_header(prompt),
            budget_s=self._settings.interaction_budget_s,
        )
        # Take the channel's place in line before the first await, then acknowledge.
        self._answer(chat_key(interaction), surface, str(interaction.user.id), locale, prompt)
        placeholder = None
        try:
            callback = await interaction.response.defer(thinking=True)
            placeholder = None if callback is None else callback.message_id
        except Exception as exc:  # whatever it was, the reply must not wait for it forever
            log.warning("discord: could not defer an interaction (%r); using the channel", exc)
            surface.abandon_interaction()
        finally:
            await surface.open(placeholder)

    async def on_message(self, message: discord.Message) -> None:
        client = self.client
        me = client.user
        if not self._settings.reply_to_mentions or message.author.bot or me is None:
            return
        replied = _replied_to(message, me.id)
        private = isinstance(message.channel, discord.DMChannel)
        if not private and me not in message.mentions and replied is None:
            return
        prompt = re.sub(rf"<@!?{me.id}>", "", message.content).strip()
        if not prompt:
            return
        if self._closing or len(prompt) > MAX_PROMPT:
            line = (
                say("restarting", None)
                if self._closing
                else say("too_long", None, length=len(prompt), limit=MAX_PROMPT)
            )
            try:
                await message.reply(line, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.warning("discord: could not answer a mention: %s", exc)
            return
        channel = message.channel
        if not isinstance(channel, CHANNEL_TYPES):
            channel = client.get_partial_messageable(channel.id)
        surface = DiscordSurface(channel, reply_to=message)
        key = ChatKey("discord", str(channel.id))
        self._answer(key, surface, str(message.author.id), None, prompt, reply_to=replied)
        await surface.open()
        with contextlib.suppress(discord.HTTPException):
            await channel.typing()

    async def press(self, interaction: discord.Interaction, action: str, arg: str) -> None:
        """A ``kamiya:`` button; always answered, if only with the stale notice."""
        locale = locale_of(interaction)
        try:
            if action == "stop":
                await self._press_stop(interaction, arg)
            elif action == "regen" and self._closing:
                await interaction.response.send_message(say("restarting", locale), ephemeral=True)
            elif action == "regen" and (target := parse_regen(arg)) is not None:
                await self._press_regenerate(interaction, *target)
            else:
                await interaction.response.send_message(text("stale", locale), ephemeral=True)
        except Exception:
            log.exception("discord: a %s button press failed", action)
            if not interaction.response.is_done():
                with contextlib.suppress(discord.HTTPException):
                    await interaction.response.send_message(
                        text("internal", locale), ephemeral=True
                    )

    async def invalidate(self, key: ChatKey) -> None:
        """The channel's Regenerate button no longer applies: take it away."""
        previous = self._regenerable.pop(key, None)
        if previous is not None:
            await _strip(previous)

    async def _press_stop(self, interaction: discord.Interaction, turn_id: str) -> None:
        if self._conversations.stop(turn_id):
            await interaction.response.defer()  # the reply's own final edit shows the stop
        else:
            stale = text("stale", locale_of(interaction))
            await interaction.response.send_message(stale, ephemeral=True)

    async def _press_regenerate(
        self, interaction: discord.Interaction, turns: int, conversation_id: str
    ) -> None:
        """Answer the last message again, as a new reply under the pressed one.

        The press is acknowledged by taking the button away (type 7), so a second press
        cannot queue a second regeneration; core says whether the button still applied. If
        the new answer fails or is stopped, the old one is still the last: its button returns.
        """
        locale = locale_of(interaction)
        channel = self._channel_of(interaction)
        if channel is None:
            await interaction.response.send_message(text("stale", locale), ephemeral=True)
            return
        key = chat_key(interaction)
        tracked = self._regenerable.get(key)
        pressed = interaction.message
        if tracked is not None and pressed is not None and tracked[1] == pressed.id:
            del self._regenerable[key]
        target = _Regenerate(
            conversation_id, turns, None if pressed is None else (channel, pressed.id)
        )
        surface = DiscordSurface(
            channel,
            interaction=interaction,
            header=f"-# {say('regenerated', locale)}\n",
            budget_s=self._settings.interaction_budget_s,
            first_followup=True,
        )
        self._answer(
            key,
            surface,
            str(interaction.user.id),
            locale,
            regenerate=target,
        )
        try:
            await interaction.response.edit_message(view=None)
        except Exception as exc:  # whatever it was, the reply must not wait for it forever
            log.warning("discord: could not acknowledge a button press (%r)", exc)
            surface.abandon_interaction()
        finally:
            await surface.open()

    def _answer(
        self,
        key: ChatKey,
        surface: DiscordSurface,
        user: str,
        locale: str | None,
        prompt: str = "",
        *,
        reply_to: str | None = None,
        regenerate: _Regenerate | None = None,
    ) -> None:
        turn_id = new_turn_id()
        surface.streaming = stop_control(turn_id, locale)
        conversations = self._conversations
        surface.flight = Flight(conversations.inflight, key, locale)
        gate = self._gates.get(key.chat_id, self._limits)
        sink = DiscordReply(surface, gate, locale=locale, whisper_stale=regenerate is not None)

        async def run() -> None:
            try:
                if regenerate is None:
                    outcome = await conversations.ask(
                        key,
                        prompt,
                        sink,
                        user_id=user,
                        language=locale,
                        turn_id=turn_id,
                        reply_to=reply_to,
                    )
                else:
                    outcome = await conversations.regenerate(
                        key,
                        regenerate.conversation_id,
                        regenerate.turns,
                        sink,
                        user_id=user,
                        language=locale,
                        turn_id=turn_id,
                    )
                if isinstance(outcome, Reply):
                    await self._finished(key, surface, outcome)
                elif regenerate is not None and outcome.kind != "stale":
                    await self._restore(key, regenerate, locale)
            finally:
                await _settle(sink, surface)

        self._tasks.spawn(run())

    async def _finished(self, key: ChatKey, surface: DiscordSurface, reply: Reply) -> None:
        """A reply is shown: a newer reply makes the channel's last Regenerate stale; its
        messages are remembered, so replying to one continues its conversation."""
        previous = self._regenerable.pop(key, None)  # before any await: replies end in order
        last = surface.last_message_id
        if reply.regenerable and surface.closing is not None and last is not None:
            self._regenerable[key] = (surface.channel, last)
        if previous is not None and previous[1] != last:
            await _strip(previous)
        ids = [str(message_id) for message_id in surface.message_ids]
        await self._conversations.remember(key, reply.conversation_id, ids)

    async def _restore(self, key: ChatKey, regenerate: _Regenerate, locale: str | None) -> None:
        """A Regenerate that failed or was stopped: the pressed answer is still the last."""
        pressed = regenerate.pressed
        control = regen_control(regenerate.turns, regenerate.conversation_id, locale)
        if pressed is None or control is None or key in self._regenerable:
            return  # a newer reply has the button now
        self._regenerable[key] = pressed
        try:
            await set_button(pressed[0], pressed[1], control)
        except discord.HTTPException as exc:
            log.info("discord: could not put a Regenerate button back: %s", exc)
            if self._regenerable.get(key) == pressed:
                del self._regenerable[key]

    def _channel_of(self, interaction: discord.Interaction) -> Channel | None:
        channel = interaction.channel
        if isinstance(channel, CHANNEL_TYPES):
            return channel
        if interaction.channel_id is None:
            return None
        return self.client.get_partial_messageable(interaction.channel_id)


@dataclass(frozen=True, slots=True)
class _Regenerate:
    """A Regenerate press: what it carried, and the message (channel, id) it was under."""

    conversation_id: str
    turns: int
    pressed: tuple[Channel, int] | None


def _replied_to(message: discord.Message, bot_id: int) -> str | None:
    """The id of the bot's message that ``message`` replies to, if it replies to one."""
    reference = message.reference
    if reference is None or reference.message_id is None:
        return None
    resolved = reference.resolved
    if not isinstance(resolved, discord.Message) or resolved.author.id != bot_id:
        return None
    return str(reference.message_id)


async def _settle(sink: DiscordReply, surface: DiscordSurface) -> None:
    """Core is done with the reply (or a shutdown cut it): its final text on screen, then
    its crash record ends. Bounded: at shutdown it must fit the runner's margin."""
    try:
        async with asyncio.timeout(SETTLE_S):
            if await sink.settle() and surface.flight is not None:
                await surface.flight.end()
    except TimeoutError:
        log.warning("discord: a reply's final text was not shown in time; marked at next start")


async def _strip(target: tuple[Channel, int]) -> None:
    channel, message_id = target
    try:
        await set_button(channel, message_id, None)
    except discord.HTTPException as exc:  # deleted meanwhile (404), or not ours to edit
        log.info("discord: could not remove a stale button: %s", exc)


def _header(prompt: str) -> str:
    """The prompt as a one-line quote, so the channel sees what was asked."""
    line = " ".join(prompt.split())
    if len(line) > HEADER_CHARS:
        line = line[: HEADER_CHARS - 1] + "…"
    return f"> {line}\n"
