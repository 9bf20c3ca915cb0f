"""The buttons under a reply: ⏹ Stop while it streams, 🔄 Regenerate once it is done.

A button's state lives in its ``custom_id`` (``kamiya:stop:<turn>``,
``kamiya:regen:<turns>:<conversation>``), parsed by a ``discord.ui.DynamicItem`` registered
with the client at start. So a press reaches the bot whatever process sent the button: one
sent before a restart is answered (as stale, if it no longer applies) instead of Discord's
"This interaction failed". Views made of dynamic items only are not kept per message by
discord.py, so a bot that streams all day holds no view per reply.

discord.py hands a press to the dynamic item only while the message still shows the button;
a client that has not seen an edit yet can press one already taken away, and Discord then
sends the message as it is now. ``orphaned`` recognises such a press, so it is answered too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import discord

from core import text

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "MAX_CUSTOM_ID",
    "Control",
    "ControlButton",
    "Presses",
    "orphaned",
    "parse_regen",
    "regen_control",
    "stop_control",
    "view_of",
]

log = logging.getLogger(__name__)

MAX_CUSTOM_ID = 100  # Discord's limit for a component's custom_id
PREFIX = "kamiya"
_TEMPLATE = rf"{PREFIX}:(?P<action>[a-z]+):(?P<arg>.+)"


@dataclass(frozen=True, slots=True)
class Control:
    """One button as shown; equal controls need no edit."""

    action: str  # "stop" or "regen"
    arg: str
    label: str
    emoji: str

    @property
    def custom_id(self) -> str:
        return f"{PREFIX}:{self.action}:{self.arg}"


def stop_control(turn_id: str, locale: str | None) -> Control:
    return Control("stop", turn_id, text("stop", locale), "⏹")


def regen_control(turns: int, conversation_id: str, locale: str | None) -> Control | None:
    """The Regenerate button of a reply, or None if its id would not fit a custom_id."""
    control = Control("regen", f"{turns}:{conversation_id}", text("regenerate", locale), "🔄")
    return control if len(control.custom_id) <= MAX_CUSTOM_ID else None


def parse_regen(arg: str) -> tuple[int, str] | None:
    """``<turns>:<conversation id>`` back into its parts; None if it is not that."""
    match = re.fullmatch(r"(\d{1,9}):(.+)", arg)
    return None if match is None else (int(match[1]), match[2])


def view_of(control: Control | None) -> discord.ui.View | None:
    """A view holding the one button, for ``view=`` (None: no components)."""
    if control is None:
        return None
    view = discord.ui.View(timeout=None)  # never expires: the press handler is the template
    view.add_item(ControlButton(control.action, control.arg, control.label, control.emoji))
    return view


def orphaned(interaction: discord.Interaction) -> tuple[str, str] | None:
    """(action, arg) of a press on a ``kamiya:`` button its message no longer shows."""
    message = interaction.message
    data: object = interaction.data
    custom_id = data.get("custom_id") if isinstance(data, Mapping) else None
    if interaction.type is not discord.InteractionType.component or message is None:
        return None
    match = re.fullmatch(_TEMPLATE, custom_id) if isinstance(custom_id, str) else None
    if match is None:
        return None
    for row in message.components:
        for component in getattr(row, "children", [row]):
            if getattr(component, "custom_id", None) == custom_id:
                return None  # still shown: the dynamic item handles it
    return match["action"], match["arg"]


@runtime_checkable
class Presses(Protocol):
    """The client a press is handed to (``bots.discord.app``'s client)."""

    async def press(self, interaction: discord.Interaction, action: str, arg: str) -> None: ...


class ControlButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=_TEMPLATE
):
    """Every ``kamiya:`` button, rebuilt from its ``custom_id`` when pressed."""

    def __init__(self, action: str, arg: str, label: str | None, emoji: str | None) -> None:
        button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            label=label,
            emoji=emoji,
            custom_id=f"{PREFIX}:{action}:{arg}",
        )
        super().__init__(button)
        self.action = action
        self.arg = arg

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[discord.ui.View],
        match: re.Match[str],
        /,
    ) -> Self:
        label = emoji = None
        if isinstance(item, discord.ui.Button):
            label = item.label
            emoji = None if item.emoji is None else str(item.emoji)
        return cls(match["action"], match["arg"], label, emoji)

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        if not isinstance(client, Presses):  # a client without the frontend: nothing to do
            log.warning("discord: a button press reached a client that cannot handle it")
            return
        await client.press(interaction, self.action, self.arg)
