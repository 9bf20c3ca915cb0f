"""``ReplySink`` for Discord: a queued notice, then the paced renderer, then the final text.

The final text of a completions-mode reply gets the Regenerate button; one that continued an
earlier conversation (a reply to an old message) or restarted an expired one says so first.
A Regenerate that no longer applies is told only to whoever pressed it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bots.discord.buttons import regen_control
from bots.discord.texts import say
from core import failure_markdown, text
from core.throttle import LiveRenderer

if TYPE_CHECKING:
    from bots.discord.surface import DiscordSurface
    from core import Failure, Reply
    from core.throttle import ChatGate

__all__ = ["DiscordReply"]

log = logging.getLogger(__name__)


class DiscordReply:
    """Shows one reply; created per prompt, driven by core."""

    def __init__(
        self,
        surface: DiscordSurface,
        gate: ChatGate,
        *,
        locale: str | None,
        whisper_stale: bool = False,
    ) -> None:
        self._surface = surface
        self._renderer = LiveRenderer(surface, gate)
        self._locale = locale
        self._whisper_stale = whisper_stale  # a stale button press: tell only the presser
        self.outcome: Reply | Failure | None = None

    async def queued(self, ahead: int) -> None:
        with contextlib.suppress(discord.HTTPException):
            await self._surface.notice(say("queued", self._locale, ahead=ahead))

    async def busy(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            await self._surface.notice(text("busy_streams", self._locale))

    async def started(self) -> None:
        return None  # the deferred response already shows "thinking…"

    async def progress(self, text: str) -> None:
        self._renderer.update(text)

    async def finished(self, reply: Reply) -> None:
        self.outcome = reply
        shown = reply.text
        if reply.context_expired:
            shown = f"-# {say('expired', self._locale)}\n{shown}"
        if reply.resumed is not None:
            shown = f"-# ↪ {text('continued', self._locale, title=reply.resumed)}\n{shown}"
        if reply.regenerable:
            self._surface.closing = regen_control(reply.turns, reply.conversation_id, self._locale)
        await self._renderer.finish(shown)

    async def failed(self, failure: Failure) -> None:
        self.outcome = failure
        if failure.kind == "stale" and self._whisper_stale and not failure.partial:
            await self._renderer.aclose()
            await self._surface.retract()
            await self._surface.whisper(text("stale", self._locale))
            return
        await self._renderer.finish(failure_markdown(failure, self._locale))

    async def aclose(self) -> None:
        await self._renderer.aclose()
