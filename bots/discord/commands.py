"""The slash commands: /chat and the chat controls, each a thin layer over core.

Every control is per channel (a thread is a channel of its own), as conversations are.
Controls answer ephemerally: /model, /system, /resume and /reset first wait for a reply in
progress to end (core keeps a turn's context whole), so they defer at once, as Discord
allows 3 s. The wording is core's (``core.texts``, ``core.controls``), shared with Telegram.
Autocomplete offers "default" and the configured models for /model, and the channel's last
conversations for /resume, labelled as /history lists them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import discord
from discord import app_commands
from discord.app_commands import Choice, locale_str

from bots.discord.texts import say
from core import (
    DEFAULT,
    ChatKey,
    entry_label,
    history_text,
    model_change_text,
    model_label,
    resume_text,
    stats_text,
    text,
    usage_text,
)

if TYPE_CHECKING:
    from core import Conversations, DiscordSettings

__all__ = ["Commands", "Replies", "chat_key", "locale_of", "register"]

log = logging.getLogger(__name__)

MAX_CHOICES = 25  # Discord's limit for autocomplete choices
MAX_CHOICE = 100  # characters of a choice's name
MAX_MESSAGE = 2000
MAX_SYSTEM_SHOWN = 1500
MAX_SYSTEM_PROMPT = 4000


class Replies(Protocol):
    """What the commands need of the frontend that streams replies."""

    async def chat(self, interaction: discord.Interaction, prompt: str) -> None: ...

    async def invalidate(self, key: ChatKey) -> None:
        """The channel's Regenerate button no longer applies: take it away."""
        ...


def chat_key(interaction: discord.Interaction) -> ChatKey:
    return ChatKey("discord", str(interaction.channel_id))


class Commands:
    """The handlers behind the registered commands."""

    def __init__(
        self, replies: Replies, conversations: Conversations, settings: DiscordSettings
    ) -> None:
        self._replies = replies
        self._conversations = conversations
        self._settings = settings

    # Conversations.

    async def chat(self, interaction: discord.Interaction, prompt: str) -> None:
        await self._replies.chat(interaction, prompt)

    async def reset(self, interaction: discord.Interaction) -> None:
        key = await _deferred(interaction)
        await self._conversations.reset(key)
        await self._replies.invalidate(key)
        await _answer(interaction, say("reset", locale_of(interaction)))

    async def history(self, interaction: discord.Interaction) -> None:
        key = await _deferred(interaction)
        entries = await self._conversations.history(key)
        await _answer(interaction, history_text(entries, locale_of(interaction)))

    async def resume(self, interaction: discord.Interaction, conversation: str) -> None:
        key = await _deferred(interaction)
        lang = locale_of(interaction)
        outcome = await self._conversations.resume(key, conversation.strip())
        if outcome.status == "ok":
            await self._replies.invalidate(key)
        if outcome.status == "unknown" and not await self._conversations.history(key, limit=1):
            await _answer(interaction, text("resume_none", lang))
            return
        await _answer(interaction, resume_text(outcome, lang))

    async def resume_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        entries = await self._conversations.history(chat_key(interaction))
        lang, now, typed = locale_of(interaction), datetime.now(UTC), _typed(current)
        choices: list[Choice[str]] = []
        for entry in entries:
            label = _clip(entry_label(entry, lang, now=now), MAX_CHOICE)
            conversation_id = entry.record.conversation_id
            if typed in label.lower() or typed == conversation_id.lower():
                choices.append(Choice(name=label, value=conversation_id))
        return choices[:MAX_CHOICES]

    # Settings.

    async def model(self, interaction: discord.Interaction, name: str | None) -> None:
        key = await _deferred(interaction)
        lang = locale_of(interaction)
        if name is None or not name.strip():
            view = await self._conversations.settings(key)
            await _answer(
                interaction, text("model_current", lang, model=model_label(view.model, lang))
            )
            return
        change = await self._conversations.set_model(key, name)
        if change.status == "ok":
            await self._replies.invalidate(key)
        models = self._conversations.models
        await _answer(interaction, model_change_text(change, lang, models=models))

    async def model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        view = await self._conversations.settings(chat_key(interaction))
        lang, typed = locale_of(interaction), _typed(current)
        choices: list[Choice[str]] = []
        for name in (DEFAULT, *self._conversations.models):
            label = f"{DEFAULT} · {model_label(None, lang)}" if name == DEFAULT else name
            if (view.model or DEFAULT) == name:
                label += f" · {text('history_current', lang)}"
            if typed in label.lower():
                choices.append(Choice(name=_clip(label, MAX_CHOICE), value=name))
        return choices[:MAX_CHOICES]

    async def system(self, interaction: discord.Interaction, prompt: str | None) -> None:
        key = await _deferred(interaction)
        lang = locale_of(interaction)
        if prompt is None or not prompt.strip():
            view = await self._conversations.settings(key)
            shown = _clip(view.system_prompt, MAX_SYSTEM_SHOWN)
            line = text("system_show", lang, prompt=shown) if shown else text("system_none", lang)
        elif prompt.strip().lower() == "reset":
            view = await self._conversations.set_system_prompt(key, None)
            line = text("system_reset", lang)
        else:
            view = await self._conversations.set_system_prompt(key, prompt.strip())
            line = text("system_set", lang)
        if view.model is None:
            line += "\n" + text("system_server_note", lang)
        await _answer(interaction, line)

    # Usage.

    async def usage(self, interaction: discord.Interaction) -> None:
        await _deferred(interaction)
        usage = await self._conversations.usage_of("discord", str(interaction.user.id))
        await _answer(interaction, usage_text(usage, locale_of(interaction)))

    async def stats(self, interaction: discord.Interaction) -> None:
        lang = locale_of(interaction)
        if interaction.user.id not in self._settings.admin_user_ids:
            await interaction.response.send_message(text("admins_only", lang), ephemeral=True)
            return
        await _deferred(interaction)
        stats = await self._conversations.stats("discord")
        await _answer(interaction, stats_text(stats, "discord", lang))

    # Replies.

    async def stop(self, interaction: discord.Interaction) -> None:
        stopped = self._conversations.stop_chat(chat_key(interaction))
        line = text("stopped" if stopped else "nothing_to_stop", locale_of(interaction))
        await interaction.response.send_message(line, ephemeral=True)

    async def help(self, interaction: discord.Interaction) -> None:
        locale = locale_of(interaction)
        lines = [say("help", locale)]
        if self._settings.reply_to_mentions:
            lines += [say("mentions", locale), say("mention_replies", locale)]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    async def failed(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A command broke (storage down, say): one line to the user, the trace in the log.

        Anything else (a command this version does not have, options it cannot read) is what
        a client sent, not a fault here: logged as a warning, answered the same way.
        """
        if isinstance(error, app_commands.CommandInvokeError):
            log.error("discord: /%s failed", _name(interaction), exc_info=error)
        else:
            log.warning("discord: /%s could not run: %s", _name(interaction), error)
        if interaction.type is discord.InteractionType.autocomplete:
            return  # answered with choices only; an empty list is what the user sees
        line = text("internal", locale_of(interaction))
        try:
            if interaction.response.is_done():
                await interaction.followup.send(line, ephemeral=True)
            else:
                await interaction.response.send_message(line, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("discord: could not report a failed command: %s", exc)


def register(tree: app_commands.CommandTree[discord.Client], commands: Commands) -> None:
    """Add every command to ``tree``; descriptions are ``locale_str`` for the translator."""
    tree.error(commands.failed)

    @tree.command(name="chat", description=locale_str("Ask Kamiya; the reply streams in"))
    @app_commands.describe(prompt=locale_str("What to ask"))
    async def chat(
        interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 6000]
    ) -> None:
        await commands.chat(interaction, prompt)

    @tree.command(name="reset", description=locale_str("Start a new conversation in this channel"))
    async def reset(interaction: discord.Interaction) -> None:
        await commands.reset(interaction)

    @tree.command(name="help", description=locale_str("What this bot does"))
    async def help_(interaction: discord.Interaction) -> None:
        await commands.help(interaction)

    @tree.command(name="model", description=locale_str("Show or switch this channel's model"))
    @app_commands.describe(
        name=locale_str("default, or a model to switch to (empty: show the current one)")
    )
    async def model(
        interaction: discord.Interaction, name: app_commands.Range[str, 1, 100] | None = None
    ) -> None:
        await commands.model(interaction, name)

    @model.autocomplete("name")
    async def model_choices(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return await commands.model_choices(interaction, current)

    @tree.command(name="system", description=locale_str("Show, set or reset the system prompt"))
    @app_commands.describe(text=locale_str('The new system prompt, or "reset" (empty: show it)'))
    async def system(
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_SYSTEM_PROMPT] | None = None,
    ) -> None:
        await commands.system(interaction, text)

    @tree.command(name="history", description=locale_str("This channel's last conversations"))
    async def history(interaction: discord.Interaction) -> None:
        await commands.history(interaction)

    @tree.command(
        name="resume", description=locale_str("Continue an earlier conversation of this channel")
    )
    @app_commands.describe(conversation=locale_str("The conversation to continue"))
    async def resume(
        interaction: discord.Interaction, conversation: app_commands.Range[str, 1, 100]
    ) -> None:
        await commands.resume(interaction, conversation)

    @resume.autocomplete("conversation")
    async def resume_choices(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return await commands.resume_choices(interaction, current)

    @tree.command(name="usage", description=locale_str("Your usage of the bot"))
    async def usage(interaction: discord.Interaction) -> None:
        await commands.usage(interaction)

    @tree.command(name="stats", description=locale_str("The bot's usage on Discord (admins only)"))
    async def stats(interaction: discord.Interaction) -> None:
        await commands.stats(interaction)

    @tree.command(name="stop", description=locale_str("Stop the reply streaming in this channel"))
    async def stop(interaction: discord.Interaction) -> None:
        await commands.stop(interaction)


async def _deferred(interaction: discord.Interaction) -> ChatKey:
    """Acknowledge at once (ephemeral "thinking…"); the answer follows with ``_answer``."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    return chat_key(interaction)


async def _answer(interaction: discord.Interaction, line: str) -> None:
    await interaction.followup.send(_clip(line, MAX_MESSAGE), ephemeral=True)


def locale_of(interaction: discord.Interaction) -> str:
    """The user's language tag (``"en-US"``, ``"zh-CN"``); English for anything else."""
    value = getattr(interaction.locale, "value", None)  # an unknown tag is kept as sent
    return value if isinstance(value, str) else "en-US"


def _name(interaction: discord.Interaction) -> str:
    try:
        command = interaction.command
    except Exception:  # data the library cannot read; only a log line needs the name
        return "?"
    return "?" if command is None else command.qualified_name


def _typed(current: object) -> str:
    """What the user typed into the focused option, for matching (Discord sends a string;
    anything else is matched as its text)."""
    return str(current).strip().lower()


def _clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"
