"""The chat controls in the terminal: /model, /system, /history, /resume, /usage.

Each answers with one note, in the words the other frontends use (``core.controls``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import (
    history_text,
    model_change_text,
    model_label,
    resume_text,
    text,
    usage_text,
)

if TYPE_CHECKING:
    from core import ChatKey, Conversations

__all__ = ["COMMANDS", "control"]

COMMANDS = frozenset({"/model", "/system", "/history", "/resume", "/usage"})


async def control(conversations: Conversations, key: ChatKey, user: str, line: str) -> str:
    """Run one control command line and return what to show."""
    command, _, rest = line.partition(" ")
    argument = rest.strip()
    command = command.lower()
    if command == "/model":
        return await _model(conversations, key, argument)
    if command == "/system":
        return await _system(conversations, key, argument)
    if command == "/history":
        return history_text(await conversations.history(key), None)
    if command == "/resume":
        return await _resume(conversations, key, argument)
    return usage_text(await conversations.usage_of(key.platform, user), None)


async def _model(conversations: Conversations, key: ChatKey, argument: str) -> str:
    if argument:
        change = await conversations.set_model(key, argument)
        return model_change_text(change, None, models=conversations.models)
    view = await conversations.settings(key)
    names = ", ".join(("default", *conversations.models))
    return f"{text('model_current', None, model=model_label(view.model, None))} ({names})"


async def _system(conversations: Conversations, key: ChatKey, argument: str) -> str:
    if not argument:
        view = await conversations.settings(key)
        if not view.system_prompt:
            return text("system_none", None)
        return text("system_show", None, prompt=view.system_prompt)
    if argument.lower() == "reset":
        await conversations.set_system_prompt(key, None)
        return text("system_reset", None)
    await conversations.set_system_prompt(key, argument)
    return text("system_set", None)


async def _resume(conversations: Conversations, key: ChatKey, argument: str) -> str:
    """``/resume N``: the N-th entry of ``/history``."""
    entries = await conversations.history(key)
    if not entries:
        return text("resume_none", None)
    if not argument.isdigit() or not 1 <= int(argument) <= len(entries):
        return history_text(entries, None) + "\n/resume N"
    outcome = await conversations.resume(key, entries[int(argument) - 1].record.conversation_id)
    return resume_text(outcome, None)
