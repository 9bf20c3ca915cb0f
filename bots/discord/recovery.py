"""After a crash: the replies the last process left half-shown are marked interrupted.

A new process has no interaction tokens (they die with the process that got them, and after
15 minutes anyway), so every edit goes through the channel route, as the bot: Discord lets a
bot edit its own non-ephemeral messages, an interaction's response included. The last message
of each reply gets what it showed, a cut-off mark and the "please send it again" line, and
loses its Stop button; a mention that was answered with nothing yet gets the line as a reply.
When that much no longer fits in one message, the line follows in a new one. The stored
conversation is left as it is: core advances it only when a turn completes.

The records are read before the gateway connects, so none of them can be a reply of this
process; they are marked once it is ready. A record is ended once its reply is marked, or when
Discord says the message or channel is gone or not ours; a passing failure (a 5xx, a long rate
limit) keeps it for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord

from bots.discord.format import MAX_CHARS
from bots.discord.surface import NO_MENTIONS
from core import text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.inflight import InflightLog, Leftover

__all__ = ["interrupted_line", "interrupted_markdown", "recover"]

log = logging.getLogger(__name__)

PARALLEL = 8  # replies marked at once; discord.py keeps each route within its rate limit
_FENCES = ("```", "~~~")


def interrupted_line(language: str | None) -> str:
    return f"⚠️ {text('interrupted', language)}"


def interrupted_markdown(shown: str, header: str, language: str | None) -> str | None:
    """What the last message shows now, marked cut off, and the line; None if too long.

    ``header`` is the quoted prompt the reply's first message starts with, when that message
    is the last one: a message that showed nothing of the reply yet keeps just the header.
    """
    line = interrupted_line(language)
    body = shown.removeprefix(header) if header else shown
    if not body.strip():
        return header + line
    last_line = shown[shown.rfind("\n") + 1 :].lstrip(" ")
    gap = "\n" if last_line.startswith(_FENCES) else " "  # a closing fence stays alone
    marked = f"{shown.rstrip()}{gap}{text('cut_off_mark', language)}\n\n{line}"
    return marked if len(marked) <= MAX_CHARS else None


async def recover(
    client: discord.Client, inflight: InflightLog, leftovers: Sequence[Leftover]
) -> int:
    """Mark these replies (``inflight.leftovers("discord")`` before the gateway connected)
    interrupted; returns how many were marked."""
    if not leftovers:
        return 0
    log.info("discord: marking %d reply(ies) a stopped process left unfinished", len(leftovers))
    slots = asyncio.Semaphore(PARALLEL)

    async def one(leftover: Leftover) -> bool:
        async with slots:
            return await _settle(client, inflight, leftover)

    marked = await asyncio.gather(*(one(leftover) for leftover in leftovers))
    return sum(marked)


async def _settle(client: discord.Client, inflight: InflightLog, leftover: Leftover) -> bool:
    """Mark one reply; end its record unless the failure may pass (then: next start)."""
    try:
        await _mark(client, leftover)
    except (discord.NotFound, discord.Forbidden) as exc:
        log.info("discord: reply %s is gone or not ours (%s)", leftover.reply_id, exc)
        marked = False
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("discord: reply %s has an unreadable target (%r)", leftover.reply_id, exc)
        marked = False
    except Exception as exc:  # a 5xx, a long 429, the network: next start
        log.warning("discord: could not mark reply %s now: %r", leftover.reply_id, exc)
        return False
    else:
        marked = True
    await inflight.end(leftover.reply_id)
    return marked


async def _mark(client: discord.Client, leftover: Leftover) -> None:
    target = leftover.target
    channel = client.get_partial_messageable(int(str(target["channel_id"])))
    language = leftover.language
    ids = leftover.message_ids
    if not ids:
        reply_to = target.get("reply_to")
        if reply_to is not None:  # a mention answered with nothing yet
            reference = discord.MessageReference(
                message_id=int(str(reply_to)), channel_id=channel.id, fail_if_not_exists=False
            )
            await channel.send(
                interrupted_line(language), reference=reference, allowed_mentions=NO_MENTIONS
            )
        return
    header = str(target.get("header") or "") if len(ids) == 1 else ""
    last = channel.get_partial_message(int(ids[-1]))
    marked = interrupted_markdown(leftover.shown, header, language)
    if marked is not None:
        await last.edit(content=marked, view=None, allowed_mentions=NO_MENTIONS)
        return
    await last.edit(view=None)
    await channel.send(
        interrupted_line(language),
        reference=last.to_reference(fail_if_not_exists=False),
        allowed_mentions=NO_MENTIONS,
    )
