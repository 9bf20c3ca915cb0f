"""At start: replies a previous process left unfinished (it was killed) are marked interrupted.

Each crash record (``core.inflight``, written by ``Flight``) says where its reply went and what
its last message showed. That message becomes its text, cut off, with the line asking the user
to send the message again, and loses its Stop button (so do the reply's earlier messages). A
reply that never got a message, or whose message is gone, gets the line as a reply to the
user's message instead. The text is plain: the record keeps the text, not its formatting.

A record is ended once its chat shows this; one that Telegram would not take now (a network
failure, flood control) stays for the next start. The stored conversation needs nothing: core
advances it only when a turn completes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import ReplyParameters
from telegram.error import BadRequest, Forbidden, TelegramError

from bots.telegram.format import MAX_UTF16, utf16_len
from bots.telegram.marks import drop_keyboard
from bots.telegram.outbox import paced
from core import text
from core.throttle import RetryLater

if TYPE_CHECKING:
    from collections.abc import Callable

    from telegram import Bot

    from core.inflight import InflightLog, Leftover
    from core.throttle import ChatGate

__all__ = ["interrupted_text", "mark_interrupted"]

log = logging.getLogger(__name__)


class _Gone(Exception):
    """The reply's last message cannot be edited any more (deleted, too old)."""


def interrupted_text(shown: str, lang: str | None) -> str:
    """``shown`` marked cut off, then the interrupted line; within one message's 4096 units."""
    line = f"⚠️ {text('interrupted', lang)}"
    if not shown.strip():
        return line
    tail = f" {text('cut_off_mark', lang)}\n\n{line}"
    room = MAX_UTF16 - utf16_len(tail)
    if utf16_len(shown) > room:
        shown = _clip(shown, room - 1) + "…"
    return shown + tail


async def mark_interrupted(
    bot: Bot,
    inflight: InflightLog,
    leftover: Leftover,
    gate: Callable[[int, bool], ChatGate],
) -> None:
    """Show ``leftover``'s chat that its reply was cut off; end its record once shown."""
    target = leftover.target
    chat_id, thread_id = _int(target.get("chat_id")), _int(target.get("thread_id"))
    reply_to = _int(target.get("reply_to"))
    ids = [int(m) for m in leftover.message_ids if m.lstrip("-").isdigit()]
    if chat_id is None:
        log.warning("reply %s: no chat to mark interrupted in; dropped", leftover.reply_id)
        await inflight.end(leftover.reply_id)
        return
    chat_gate = gate(chat_id, bool(target.get("private")))
    body = interrupted_text(leftover.shown, leftover.language)
    try:
        for earlier in ids[:-1]:
            await drop_keyboard(bot, chat_id, earlier)  # a Stop button, while it streamed
        try:
            if not ids:
                raise _Gone  # noqa: TRY301 - the same way out as a message that is gone
            await _edit(bot, chat_gate, chat_id, ids[-1], body)
        except _Gone:
            line = interrupted_text("", leftover.language)
            await _send(bot, chat_gate, chat_id, line, thread_id=thread_id, reply_to=reply_to)
    except (BadRequest, Forbidden) as exc:  # the chat is gone, or blocks the bot: for good
        log.info("chat %s: could not mark a reply interrupted (%s); dropped", chat_id, exc)
    except (TelegramError, RetryLater) as exc:
        log.warning("chat %s: could not mark a reply interrupted yet: %r", chat_id, exc)
        return  # the record stays for the next start
    log.info("chat %s: marked a reply cut off by a restart", chat_id)
    await inflight.end(leftover.reply_id)


async def _edit(bot: Bot, gate: ChatGate, chat_id: int, message_id: int, body: str) -> None:
    try:
        # No reply_markup: the Stop button goes with the edit.
        await paced(gate, lambda: bot.edit_message_text(body, chat_id, message_id))
    except BadRequest as exc:
        reason = exc.message.lower()
        if "not modified" in reason:
            return  # an earlier attempt got through
        if "not found" in reason or "can't be edited" in reason:
            raise _Gone from exc
        raise


async def _send(
    bot: Bot,
    gate: ChatGate,
    chat_id: int,
    line: str,
    *,
    thread_id: int | None,
    reply_to: int | None,
) -> None:
    reply = None
    if reply_to is not None:
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True)
    await paced(
        gate,
        lambda: bot.send_message(
            chat_id, line, message_thread_id=thread_id, reply_parameters=reply
        ),
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clip(shown: str, units: int) -> str:
    """The longest start of ``shown`` within ``units`` UTF-16 units, never half a pair."""
    used = 0
    for index, char in enumerate(shown):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return shown[:index]
    return shown
