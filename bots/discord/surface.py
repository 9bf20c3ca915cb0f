"""How one reply appears in a Discord channel: the interaction's message, then follow-ups.

The reply is laid out as Markdown messages of at most 2000 characters (the first one under a
quoted header with the prompt) and ``_sync`` makes the channel show exactly that: messages whose
content differs are edited, missing ones sent, surplus ones deleted. An interaction token dies
after 15 minutes; before that (``budget_s``), or when Discord says the token is gone, the
messages sent so far are frozen and the rest of the reply continues as ordinary channel messages
from the very character where they stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bots.discord.format import MAX_CHARS, fence_at, split, tidy_partial

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NO_MENTIONS", "DiscordSurface"]

log = logging.getLogger(__name__)

#: Every message the bot sends pings nobody, whatever the reply or the prompt contains.
NO_MENTIONS = discord.AllowedMentions.none()

_TOKEN_GONE = {50027, 10015, 10062}  # invalid webhook token, unknown webhook/interaction


class _Frozen(Exception):
    """The interaction token died during a sync; the layout must be redone."""


@dataclass
class _Shown:
    kind: str  # "original", "followup" or "channel"
    content: str
    message: discord.Message | discord.WebhookMessage | None = None


class DiscordSurface:
    """A ``core.throttle.Surface`` for one reply; interaction-backed or channel-only."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        interaction: discord.Interaction | None = None,
        header: str = "",
        reply_to: discord.Message | None = None,
        budget_s: float = 840.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = channel
        self._interaction = interaction
        self._header = header
        self._reply_to = reply_to
        self._clock = clock
        self._deadline = clock() + budget_s
        self._shown: list[_Shown] = []
        self._frozen = 0  # messages that can no longer be edited
        self._frozen_at = 0  # characters of the reply they hold
        self._last_markdown = ""
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()  # set once the interaction is acknowledged
        if interaction is None:
            self.ready.set()

    @property
    def interactive(self) -> bool:
        return self._interaction is not None

    async def notice(self, line: str) -> None:
        """A status line (queued) in the first message, until the reply replaces it."""
        async with self._lock:
            if self._last_markdown:
                return
            await self._sync([self._header + line])

    async def show(self, markdown: str) -> int:
        return await self._present(markdown)

    async def final(self, markdown: str) -> int:
        return await self._present(markdown or "…")

    async def _present(self, markdown: str) -> int:
        async with self._lock:
            await self.ready.wait()
            if self.interactive and self._clock() >= self._deadline:
                self._freeze("the interaction token is about to expire")
            try:
                return await self._sync(self._layout(markdown), markdown)
            except _Frozen:  # the token died mid-way: lay out again, in channel messages
                return 1 + await self._sync(self._layout(markdown), markdown)

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

    async def _sync(self, contents: list[str], markdown: str | None = None) -> int:
        await self.ready.wait()
        calls = 0
        for index, content in enumerate(contents):
            if index < len(self._shown) and self._shown[index].content == content:
                continue
            calls += await self._put(index, content)
        while len(self._shown) > max(len(contents), self._frozen):
            calls += 1
            await self._delete(self._shown.pop())
        if markdown is not None:
            self._last_markdown = markdown
        return calls

    async def _put(self, index: int, content: str) -> int:
        try:
            if index < len(self._shown):
                await self._edit(self._shown[index], content)
                self._shown[index].content = content
            else:
                self._shown.append(await self._create(index, content))
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
        """Stop using the interaction; continue the reply in channel messages."""
        log.info("discord: %s; continuing in channel messages", why)
        self._interaction = None
        self._frozen = len(self._shown)
        self._frozen_at = len(self._last_markdown)

    async def _create(self, index: int, content: str) -> _Shown:
        interaction = self._interaction
        if interaction is not None and index == 0:
            await interaction.edit_original_response(content=content, allowed_mentions=NO_MENTIONS)
            return _Shown("original", content)
        if interaction is not None:
            message = await interaction.followup.send(
                content, wait=True, allowed_mentions=NO_MENTIONS
            )
            return _Shown("followup", content, message)
        if index == 0 and self._reply_to is not None:
            sent = await self._reply_to.reply(content, allowed_mentions=NO_MENTIONS)
        else:
            sent = await self._channel.send(content, allowed_mentions=NO_MENTIONS)
        return _Shown("channel", content, sent)

    async def _edit(self, shown: _Shown, content: str) -> None:
        if shown.kind == "original" and self._interaction is not None:
            await self._interaction.edit_original_response(
                content=content, allowed_mentions=NO_MENTIONS
            )
        elif shown.message is not None:
            await shown.message.edit(content=content, allowed_mentions=NO_MENTIONS)

    async def _delete(self, shown: _Shown) -> None:
        try:
            if shown.kind == "original" and self._interaction is not None:
                await self._interaction.delete_original_response()
            elif shown.message is not None:
                await shown.message.delete()
        except discord.HTTPException as exc:
            log.warning("discord: could not delete a surplus message: %s", exc)
