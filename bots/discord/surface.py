"""How one reply appears in a Discord channel: the interaction's message, then follow-ups.

The reply is laid out as Markdown messages of at most 2000 characters (the first one under a
quoted header with the prompt) and ``_sync`` makes the channel show exactly that: messages whose
content differs are edited, missing ones sent, surplus ones deleted. An interaction token dies
after 15 minutes; before that (``budget_s``), or when Discord says the token is gone, the
messages sent so far are frozen and the rest of the reply continues as ordinary channel messages
from the very character where they stopped.

The newest message carries the reply's button (⏹ Stop while it streams, 🔄 Regenerate or
nothing at the end), so a message's button is part of what ``_sync`` compares; a message
frozen with a button loses it through the channel route, which needs no token. Messages that
hold none of the reply yet (the deferral's "thinking…", a queued notice) are not frozen: the
channel route fills them, so no "thinking…" is left behind.

A 429 that discord.py does not wait out itself (Cloudflare's, or a wait beyond its cap) is
``RetryLater`` for the renderer. Each change of the reply's messages is noted in its crash
record (``flight``), and ``final_shown`` says whether the final text reached the channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bots.discord.buttons import view_of
from bots.discord.format import MAX_CHARS, fence_at, split, tidy_partial
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Callable

    from bots.discord.buttons import Control
    from core.flight import Flight

__all__ = ["CHANNEL_TYPES", "NO_MENTIONS", "Channel", "DiscordSurface", "set_button"]

log = logging.getLogger(__name__)

#: Every message the bot sends pings nobody, whatever the reply or the prompt contains.
NO_MENTIONS = discord.AllowedMentions.none()

_TOKEN_GONE = {50027, 10015, 10062}  # invalid webhook token, unknown webhook/interaction
_DEFAULT_RETRY_S = 1.0  # a 429 that names no wait

#: Where a reply can go, and whose messages can be edited by id through the channel.
Channel = (
    discord.TextChannel
    | discord.Thread
    | discord.DMChannel
    | discord.VoiceChannel
    | discord.StageChannel
    | discord.PartialMessageable
)
CHANNEL_TYPES = (
    discord.TextChannel,
    discord.Thread,
    discord.DMChannel,
    discord.VoiceChannel,
    discord.StageChannel,
    discord.PartialMessageable,
)


class _Frozen(Exception):
    """The interaction token died during a sync; the layout must be redone."""


@dataclass
class _Shown:
    """One message of the reply: how to reach it, what it shows. A "channel" message is
    edited through the channel route by id; the others through the interaction."""

    kind: str  # "original", "followup" or "channel"
    content: str
    message_id: int | None
    message: discord.WebhookMessage | None = None  # a follow-up, edited through its token
    control: Control | None = None  # the button under it
    adopted: bool = False  # the interaction's, taken over through the channel route


class DiscordSurface:
    """A ``core.throttle.Surface`` for one reply; interaction-backed or channel-only.

    ``streaming`` is the button under the newest message while the reply grows (Stop);
    ``closing`` the one under the last message of the final text (Regenerate), set by the
    sink before the final text. ``first_followup``: the interaction's own response is taken
    (a pressed button's message), so the reply starts with a follow-up. Nothing is sent
    before ``open``.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        interaction: discord.Interaction | None = None,
        header: str = "",
        reply_to: discord.Message | None = None,
        budget_s: float = 840.0,
        first_followup: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = channel
        self._interaction = interaction
        self._header = header
        self._reply_to = reply_to
        self._first_followup = first_followup
        self._clock = clock
        self._deadline = clock() + budget_s
        self._shown: list[_Shown] = []
        self._frozen = 0  # messages that can no longer be edited
        self._frozen_at = 0  # characters of the reply they hold
        self._last_markdown = ""
        self._status = False  # the messages show a notice, none of the reply
        self._placeholder: int | None = None  # the deferral's "thinking…" message
        self._lock = asyncio.Lock()
        self.streaming: Control | None = None
        self.closing: Control | None = None
        self.flight: Flight | None = None
        self.final_shown = False
        self.ready = asyncio.Event()  # set by ``open``

    @property
    def interactive(self) -> bool:
        return self._interaction is not None

    @property
    def channel(self) -> Channel:
        return self._channel

    @property
    def message_ids(self) -> list[int]:
        """The messages that show the reply, in order (those whose id is known); before the
        first, the deferral's "thinking…" message."""
        ids = [shown.message_id for shown in self._shown if shown.message_id is not None]
        if not self._shown and self._placeholder is not None:
            ids.append(self._placeholder)
        return ids

    @property
    def last_message_id(self) -> int | None:
        return self._shown[-1].message_id if self._shown else None

    @property
    def target(self) -> dict[str, object]:
        """Where the reply is, for a process without the interaction (``flight``)."""
        target: dict[str, object] = {"channel_id": str(self._channel.id), "header": self._header}
        guild_id = _guild_id(self._channel)
        if guild_id is not None:  # which shard's process marks it after a crash
            target["guild_id"] = str(guild_id)
        if self._reply_to is not None:
            target["reply_to"] = str(self._reply_to.id)
        return target

    async def open(self, placeholder: int | None = None) -> None:
        """The interaction is acknowledged (``placeholder``: the id of its "thinking…"
        message), or there is none: record the reply, then let it be shown."""
        self._placeholder = placeholder
        try:
            if self.flight is not None:
                shown = self._header if placeholder else ""
                await self.flight.begin(self.target, self.message_ids, shown)
        finally:
            self.ready.set()

    async def notice(self, line: str) -> None:
        """A status line (queued) in the first message, until the reply replaces it."""
        async with self._lock:
            if self._last_markdown:
                return
            self._status = True
            await self._sync([self._header + line], last=None)

    async def retract(self) -> None:
        """Delete what this reply showed (a queued notice for a press that was stale)."""
        async with self._lock:
            try:
                while len(self._shown) > self._frozen:
                    await self._delete(self._shown.pop())
            finally:
                await self._note()

    async def whisper(self, line: str) -> None:
        """A line only the user who acted sees (an ephemeral follow-up), else a channel one."""
        await self.ready.wait()
        if self._interaction is not None:
            await self._interaction.followup.send(
                line, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
        else:
            await self._channel.send(line, allowed_mentions=NO_MENTIONS)

    async def show(self, markdown: str) -> int:
        return await self._present(markdown, final=False)

    async def final(self, markdown: str) -> int:
        return await self._present(markdown or "…", final=True)

    async def _present(self, markdown: str, *, final: bool) -> int:
        last = self.closing if final else self.streaming
        async with self._lock:
            await self.ready.wait()
            if self.interactive and self._clock() >= self._deadline:
                self._freeze("the interaction token is about to expire")
            self._status = False
            try:
                try:
                    calls = await self._sync(self._layout(markdown), markdown, last=last)
                except _Frozen:  # the token died mid-way: lay out again, in channel messages
                    calls = 1 + await self._sync(self._layout(markdown), markdown, last=last)
            except discord.RateLimited as exc:  # longer than discord.py waits by itself
                raise RetryLater(exc.retry_after) from exc
            except discord.HTTPException as exc:
                if exc.status == 429:  # Cloudflare's, which discord.py does not retry
                    raise RetryLater(_retry_after(exc)) from exc
                raise
            self.final_shown = final
            return calls

    def _layout(self, markdown: str) -> list[str]:
        frozen = [shown.content for shown in self._shown[: self._frozen]]
        rest = markdown[self._frozen_at :] if markdown.startswith(self._last_markdown) else ""
        if self._frozen and self._frozen_at:
            if not rest.strip():
                return frozen
            opener = fence_at(markdown[: self._frozen_at])
            rest = f"{opener}\n{rest}" if opener else rest
        body = tidy_partial(rest)  # also final: a block the model never closed still renders
        first_limit = MAX_CHARS - len(self._header) if not frozen else MAX_CHARS
        parts = split(body, first_limit=first_limit) or ["…"]
        if not frozen:
            parts[0] = self._header + parts[0]
        return frozen + parts

    def _controls(self, count: int, last: Control | None) -> list[Control | None]:
        """The button goes under the newest message; frozen ones keep what they have."""
        controls: list[Control | None] = [None] * count
        for index in range(min(self._frozen, count)):
            controls[index] = self._shown[index].control
        if count > self._frozen:
            controls[-1] = last
        return controls

    async def _sync(
        self, contents: list[str], markdown: str | None = None, *, last: Control | None
    ) -> int:
        """Make the channel show ``contents``, with ``last`` under the newest message."""
        await self.ready.wait()
        try:
            calls = await self._strip_frozen()
            controls = self._controls(len(contents), last)
            for index, (content, control) in enumerate(zip(contents, controls, strict=True)):
                if index < len(self._shown):
                    shown = self._shown[index]
                    if shown.content == content and shown.control == control:
                        continue
                calls += await self._put(index, content, control)
            while len(self._shown) > max(len(contents), self._frozen):
                calls += 1
                await self._delete(self._shown.pop())
            if markdown is not None:
                self._last_markdown = markdown
        finally:
            await self._note()
        return calls

    async def _note(self) -> None:
        """The crash record follows the messages: the text the last one shows (its header
        alone while it shows only a notice)."""
        if self.flight is None:
            return
        shown = self._shown[-1].content if self._shown else ""
        if self._status and len(self._shown) == 1:
            shown = self._header
        self.flight.note(self.message_ids, shown)

    async def _put(self, index: int, content: str, control: Control | None) -> int:
        try:
            if index < len(self._shown):
                shown = self._shown[index]
                try:
                    await self._edit(shown, content, control)
                except discord.HTTPException as exc:
                    if not shown.adopted:
                        raise
                    # The channel route cannot edit it (not ours there): leave it, send anew.
                    log.info("discord: could not take over an interaction's message: %s", exc)
                    self._shown[index] = await self._create(index, content, control)
                    return 2
                shown.content, shown.control = content, control
            else:
                self._shown.append(await self._create(index, content, control))
        except discord.HTTPException as exc:
            if self.interactive and exc.code in _TOKEN_GONE:
                self._freeze(f"Discord ended the interaction ({exc.code})")
                raise _Frozen from exc
            raise
        return 1

    def abandon_interaction(self) -> None:
        """The interaction could not be acknowledged: answer in the channel instead."""
        self._interaction = None
        self._header = ""

    def _freeze(self, why: str) -> None:
        """Stop using the interaction; continue the reply in channel messages.

        Messages that show none of the reply yet ("thinking…", a notice) are taken over
        through the channel route instead of frozen: the reply goes there.
        """
        log.info("discord: %s; continuing in channel messages", why)
        self._interaction = None
        if self._last_markdown:
            self._frozen = len(self._shown)
            self._frozen_at = len(self._last_markdown)
            return
        for shown in self._shown:
            shown.kind, shown.message, shown.adopted = "channel", None, True
        if not self._shown and self._placeholder is not None and not self._first_followup:
            self._shown.append(_Shown("channel", "", self._placeholder, adopted=True))

    async def _strip_frozen(self) -> int:
        """A frozen message keeps its text, but not a button: that moves to the newest one.

        Its token is gone, so the edit goes through the channel, as the bot wrote it.
        """
        calls = 0
        for shown in self._shown[: self._frozen]:
            if shown.control is None:
                continue
            shown.control = None
            if shown.message_id is None:
                continue
            calls += 1
            try:
                await set_button(self._channel, shown.message_id, None)
            except discord.HTTPException as exc:
                log.info("discord: could not remove a button from a frozen message: %s", exc)
        return calls

    async def _create(self, index: int, content: str, control: Control | None) -> _Shown:
        interaction = self._interaction
        view = view_of(control) or discord.utils.MISSING
        if interaction is not None and index == 0 and not self._first_followup:
            original = await interaction.edit_original_response(
                content=content, view=view_of(control), allowed_mentions=NO_MENTIONS
            )
            return _Shown("original", content, original.id, control=control)
        if interaction is not None:
            sent = await interaction.followup.send(
                content, wait=True, view=view, allowed_mentions=NO_MENTIONS
            )
            return _Shown("followup", content, sent.id, sent, control)
        if index == 0 and self._reply_to is not None:
            reply = await self._reply_to.reply(content, view=view, allowed_mentions=NO_MENTIONS)
            return _Shown("channel", content, reply.id, control=control)
        message = await self._channel.send(content, view=view, allowed_mentions=NO_MENTIONS)
        return _Shown("channel", content, message.id, control=control)

    async def _edit(self, shown: _Shown, content: str, control: Control | None) -> None:
        view = view_of(control) if control != shown.control else discord.utils.MISSING
        if shown.kind == "original" and self._interaction is not None:
            await self._interaction.edit_original_response(
                content=content, view=view, allowed_mentions=NO_MENTIONS
            )
        elif shown.message is not None:
            await shown.message.edit(content=content, view=view, allowed_mentions=NO_MENTIONS)
        elif shown.message_id is not None:
            await self._channel.get_partial_message(shown.message_id).edit(
                content=content, view=view, allowed_mentions=NO_MENTIONS
            )

    async def _delete(self, shown: _Shown) -> None:
        try:
            if shown.kind == "original" and self._interaction is not None:
                await self._interaction.delete_original_response()
            elif shown.message is not None:
                await shown.message.delete()
            elif shown.message_id is not None:
                await self._channel.get_partial_message(shown.message_id).delete()
        except discord.HTTPException as exc:
            log.warning("discord: could not delete a surplus message: %s", exc)


async def set_button(channel: Channel, message_id: int, control: Control | None) -> None:
    """Put ``control`` (None: no button) under one of the bot's messages, through the channel."""
    await channel.get_partial_message(message_id).edit(view=view_of(control))


def _retry_after(exc: discord.HTTPException) -> float:
    """The wait a 429 names (``Retry-After``, seconds), or a short default."""
    try:
        return max(0.0, float(exc.response.headers.get("Retry-After", _DEFAULT_RETRY_S)))
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_S


def _guild_id(channel: Channel) -> int | None:
    if isinstance(channel, discord.DMChannel):
        return None
    if isinstance(channel, discord.PartialMessageable):
        return channel.guild_id
    return channel.guild.id
