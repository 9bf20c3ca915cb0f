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
            "`/chat prompt:` asks; ⏹ stops a reply, 🔄 answers the last message again.\n"
            "`/reset` starts a new conversation; `/history` and `/resume` go back to an earlier "
            "one.\n"
            "`/model` picks the model, `/system` the system prompt it gets; `/stop` stops the "
            "reply in progress; `/usage` shows what you used."
        ),
        "mentions": "You can also mention me in a message to ask.",
        "too_long": "That prompt is too long ({length} characters); the limit is {limit}.",
        "reset": "Started a new conversation in this channel.",
        "queued": "⏳ Queued: {ahead} message(s) ahead of yours in this channel.",
        "expired": "The earlier conversation had expired, so I started a new one.",
        "regenerated": "🔄 Answered again",
        "mention_replies": "Replying to one of my messages continues its conversation.",
        "restarting": "I'm restarting right now; please send that again in a minute.",
    },
    "zh": {
        "help": (
            "我用 Kamiya 回答，边写边显示，每个频道保持一个对话（子区是独立的频道）。\n"
            "`/chat prompt:` 提问；⏹ 停止回复，🔄 重新回答最后一条消息。\n"
            "`/reset` 开始新的对话；`/history` 和 `/resume` 回到之前的对话。\n"
            "`/model` 选择模型，`/system` 设置系统提示词；`/stop` 停止正在进行的回复；"
            "`/usage` 查看你的用量。"
        ),
        "mentions": "你也可以在消息中提及我来提问。",
        "too_long": "提示词太长（{length} 个字符），上限为 {limit}。",
        "reset": "已在本频道开始新的对话。",
        "queued": "⏳ 排队中：本频道前面还有 {ahead} 条消息。",
        "expired": "之前的对话已过期，已为你开始新的对话。",
        "regenerated": "🔄 重新回答",
        "mention_replies": "回复我的某条消息即可继续它所在的对话。",
        "restarting": "我正在重启，请稍后重新发送。",
    },
}

# Command and option descriptions, keyed by their English text (the locale_str message).
_ZH: dict[str, str] = {
    "Ask Kamiya; the reply streams in": "向 Kamiya 提问，回复实时显示",
    "What to ask": "你的问题",
    "Start a new conversation in this channel": "在本频道开始新的对话",
    "What this bot does": "机器人简介",
    "Show or switch this channel's model": "查看或切换本频道的模型",
    "default, or a model to switch to (empty: show the current one)": (
        "default 或要切换到的模型（留空：查看当前模型）"
    ),
    "Show, set or reset the system prompt": "查看、设置或重置系统提示词",
    'The new system prompt, or "reset" (empty: show it)': (
        "新的系统提示词，或 “reset”（留空：查看）"
    ),
    "This channel's last conversations": "本频道最近的对话",
    "Continue an earlier conversation of this channel": "继续本频道之前的对话",
    "The conversation to continue": "要继续的对话",
    "Your usage of the bot": "你的用量",
    "The bot's usage on Discord (admins only)": "机器人在 Discord 上的用量（仅管理员）",
    "Stop the reply streaming in this channel": "停止本频道正在进行的回复",
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
