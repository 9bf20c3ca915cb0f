"""``ReplySink`` for Discord: a queued notice, then the paced renderer, then the final text.

The final text of a completions-mode reply gets the Regenerate button; one that continued an
earlier conversation (a reply to an old message) or restarted an expired one says so first.
A Regenerate that no longer applies is told only to whoever pressed it. A reply the database
could not save is followed by one line saying so, to its user only where Discord allows.

``settle`` runs once core is done with the reply, or a shutdown cut it short: if the final
text (or the interrupted one) is not on screen yet, it is shown at once, unpaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bots.discord.buttons import regen_control
from bots.discord.texts import say
from core import Failure, failure_markdown, text
from core.throttle import LiveRenderer

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from bots.discord.surface import DiscordSurface
    from core import Reply
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
        self._gate = gate
        self._renderer = LiveRenderer(surface, gate)
        self._locale = locale
        self._whisper_stale = whisper_stale  # a stale button press: tell only the presser
        self._progress = ""  # the reply so far
        self._final: str | None = None  # the final Markdown, once core decided it
        self._retracted = False
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
        self._progress = text
        self._renderer.update(text)

    def pause(self) -> Awaitable[None] | None:
        return self._renderer.pause()

    async def finished(self, reply: Reply) -> None:
        self.outcome = reply
        shown = reply.text
        if reply.context_expired:
            shown = f"-# {say('expired', self._locale)}\n{shown}"
        if reply.resumed is not None:
            shown = f"-# ↪ {text('continued', self._locale, title=reply.resumed)}\n{shown}"
        if reply.regenerable:
            self._surface.closing = regen_control(reply.turns, reply.conversation_id, self._locale)
        self._final = shown
        await self._renderer.finish(shown)
        if not reply.saved:
            try:
                await self._surface.whisper(text("not_saved", self._locale))
            except discord.HTTPException as exc:
                log.warning("discord: could not say a reply was not saved: %s", exc)

    async def failed(self, failure: Failure) -> None:
        self.outcome = failure
        if failure.kind == "stale" and self._whisper_stale and not failure.partial:
            await self._renderer.aclose()
            await self._surface.retract()
            self._retracted = True
            await self._surface.whisper(text("stale", self._locale))
            return
        self._final = failure_markdown(failure, self._locale)
        if failure.kind == "interrupted":
            return  # a shutdown cancelled core: ``settle`` shows it as soon as core lets go
        await self._renderer.finish(self._final)

    async def settle(self) -> bool:
        """Stop the renderer; make sure the final text is on screen. True once it is.

        Called when core is done with the reply, or was cancelled by a shutdown before it
        could say so (then the reply so far is shown as interrupted). The one edit still
        waits for the channel's pace, which Discord would otherwise enforce with a 429.
        """
        await self._renderer.aclose()
        if self._surface.final_shown or self._retracted:
            return True
        final = self._final
        if final is None:
            interrupted = Failure("interrupted", self._progress)
            final = failure_markdown(interrupted, self._locale)
        delay = self._gate.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        calls = 1
        try:
            calls = await self._surface.final(final)
        except Exception as exc:  # the edge: logged, the record stays open
            log.warning("discord: could not show a reply's final text: %r", exc)
            return False
        finally:
            self._gate.record(calls)
        return True
