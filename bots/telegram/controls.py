"""The chat controls, Telegram side: /model, /system, /history, /resume, /usage, /stats.

Each one asks core and lays the result out as an ``Answer``: the text, the inline keyboard to
send with it, and whether the chat's conversation changed (the frontend then takes stale
Regenerate buttons away). Sending is the frontend's job, so this module makes no Bot API call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bots.telegram.keyboards import digest, model_keyboard, resume_keyboard
from core import (
    history_text,
    model_change_text,
    model_label,
    resume_text,
    stats_text,
    text,
    usage_text,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from telegram import InlineKeyboardMarkup

    from core import ChatKey, Conversations, ResumeOutcome

__all__ = ["Answer", "Controls"]

PLATFORM = "telegram"
LISTED = 10  # conversations offered by /resume, as many as /history lists
SEARCHED = 50  # how far back a pressed /resume button's conversation is looked up


@dataclass(frozen=True, slots=True)
class Answer:
    """What a control says. For a button press, ``notice`` (if set) is shown as the press's
    short answer and the message stays as it is; otherwise the message becomes ``text``."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None
    changed: bool = False
    notice: str | None = None


class Controls:
    def __init__(self, conversations: Conversations, *, admins: Collection[int]) -> None:
        self._conversations = conversations
        self._admins = frozenset(admins)

    async def model(self, chat: ChatKey, arg: str, lang: str | None) -> Answer:
        """``/model``: the current model and a keyboard to pick one; ``/model <name>``: switch."""
        if arg:
            return await self.switch_model(chat, arg, lang)
        view = await self._conversations.settings(chat)
        lines = [
            text("model_current", lang, model=model_label(view.model, lang)),
            text("model_pick", lang),
        ]
        keyboard = model_keyboard(self._conversations.models, view.model, lang)
        return Answer("\n".join(lines), keyboard)

    async def switch_model(self, chat: ChatKey, name: str, lang: str | None) -> Answer:
        change = await self._conversations.set_model(chat, name)
        line = model_change_text(change, lang, models=self._conversations.models)
        return Answer(line, changed=change.status == "ok")

    async def system(self, chat: ChatKey, arg: str, lang: str | None) -> Answer:
        """``/system``: show the prompt; ``/system reset``: drop it; ``/system <text>``: set."""
        conversations = self._conversations
        if not arg:
            view = await conversations.settings(chat)
            if view.system_prompt:
                line = text("system_show", lang, prompt=view.system_prompt)
            else:
                line = text("system_none", lang)
        elif arg.lower() == "reset":
            view = await conversations.set_system_prompt(chat, None)
            line = text("system_reset", lang)
        else:
            view = await conversations.set_system_prompt(chat, arg)
            line = text("system_set", lang)
        if view.model is None:
            line += "\n\n" + text("system_server_note", lang)
        return Answer(line)

    async def history(self, chat: ChatKey, lang: str | None) -> Answer:
        entries = await self._conversations.history(chat, limit=LISTED)
        return Answer(history_text(entries, lang))

    async def resume(self, chat: ChatKey, arg: str, lang: str | None) -> Answer:
        """``/resume``: a keyboard of the last conversations; ``/resume <n>``: the n-th of
        /history."""
        entries = await self._conversations.history(chat, limit=LISTED)
        if not entries:
            return Answer(text("resume_none", lang))
        if not arg:
            return Answer(text("resume_pick", lang), resume_keyboard(entries, lang))
        if not arg.isdigit() or not 1 <= int(arg) <= len(entries):
            return Answer(text("resume_unknown", lang))
        outcome = await self._conversations.resume(
            chat, entries[int(arg) - 1].record.conversation_id
        )
        return _resumed(outcome, lang)

    async def resume_pressed(
        self, chat: ChatKey, value: str, lang: str | None, *, hashed: bool = False
    ) -> Answer:
        """A /resume button; ``hashed``: ``value`` is the digest of a long conversation id."""
        conversation_id: str | None = value
        if hashed:
            entries = await self._conversations.history(chat, limit=SEARCHED)
            ids = (e.record.conversation_id for e in entries)
            conversation_id = next((c for c in ids if digest(c) == value), None)
        if conversation_id is None:
            line = text("resume_unknown", lang)
            return Answer(line, notice=line)
        outcome = await self._conversations.resume(chat, conversation_id)
        answer = _resumed(outcome, lang)
        if outcome.status in ("expired", "unknown"):
            return Answer(answer.text, notice=answer.text)  # the user may pick another
        return answer

    async def usage(self, user_id: int, lang: str | None) -> Answer:
        usage = await self._conversations.usage_of(PLATFORM, str(user_id))
        return Answer(usage_text(usage, lang))

    async def stats(self, user_id: int, lang: str | None) -> Answer:
        if user_id not in self._admins:
            return Answer(text("admins_only", lang))
        stats = await self._conversations.stats(PLATFORM)
        return Answer(stats_text(stats, "Telegram", lang))


def _resumed(outcome: ResumeOutcome, lang: str | None) -> Answer:
    return Answer(resume_text(outcome, lang), changed=outcome.status == "ok")
