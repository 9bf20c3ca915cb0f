"""What the Discord bot says, and its command descriptions, in English and Simplified Chinese."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import Locale, app_commands

from core import language

if TYPE_CHECKING:
    from discord.app_commands import TranslationContextTypes, locale_str

__all__ = ["Translator", "say"]

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "help": (
            "I answer with Kamiya, streaming as I write, and keep one conversation per channel "
            "(a thread is its own channel).\n"
            "`/chat prompt:` asks; `/reset` starts a new conversation in this channel."
        ),
        "mentions": "You can also mention me in a message to ask.",
        "too_long": "That prompt is too long ({length} characters); the limit is {limit}.",
        "reset": "Started a new conversation in this channel.",
        "queued": "⏳ Queued: {ahead} message(s) ahead of yours in this channel.",
        "expired": "The earlier conversation had expired, so I started a new one.",
    },
    "zh": {
        "help": (
            "我用 Kamiya 回答，边写边显示，每个频道保持一个对话（子区是独立的频道）。\n"
            "`/chat prompt:` 提问；`/reset` 在本频道开始新的对话。"
        ),
        "mentions": "你也可以在消息中提及我来提问。",
        "too_long": "提示词太长（{length} 个字符），上限为 {limit}。",
        "reset": "已在本频道开始新的对话。",
        "queued": "⏳ 排队中：本频道前面还有 {ahead} 条消息。",
        "expired": "之前的对话已过期，已为你开始新的对话。",
    },
}

# Command and option descriptions, keyed by their English text (the locale_str message).
_ZH: dict[str, str] = {
    "Ask Kamiya; the reply streams in": "向 Kamiya 提问，回复实时显示",
    "What to ask": "你的问题",
    "Start a new conversation in this channel": "在本频道开始新的对话",
    "What this bot does": "机器人简介",
}


def say(key: str, locale: str | None, **values: object) -> str:
    table = _TEXTS[language(locale)]
    return table.get(key, _TEXTS["en"][key]).format(**values)


class Translator(app_commands.Translator):
    """Localises command descriptions for Simplified Chinese clients."""

    async def translate(
        self, string: locale_str, locale: Locale, context: TranslationContextTypes
    ) -> str | None:
        if locale is Locale.chinese:
            return _ZH.get(string.message)
        return None
