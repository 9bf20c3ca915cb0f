"""User-facing wording shared by every frontend, in English and Simplified Chinese.

Kept in core so the terminal, Telegram and Discord say the same thing about the same failure.
``lang`` is a BCP 47-ish code from the platform (``"zh-hans"``, ``"zh-CN"``, ``"en-US"``…);
anything that is not Chinese falls back to English.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.frontend import Failure

__all__ = ["failure_markdown", "failure_text", "language", "text"]

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "bad_key": "The bot is not set up correctly (its Kamiya key was rejected). "
        "Please tell the bot's owner.",
        "out_of_credit": "The bot's Kamiya credit is used up. Please tell the bot's owner.",
        "no_permission": "The bot's Kamiya key may not use this model.",
        "rate_limited": "Kamiya is busy right now. Please try again in a moment.",
        "rate_limited_s": "Kamiya is busy right now. Please try again in {seconds} s.",
        "conversation_not_found": "Kamiya lost this conversation. Please send your message again.",
        "upstream": "Kamiya is not answering right now. Please try again shortly.",
        "incomplete": "The reply was cut off before it finished.",
        "malformed": "Kamiya sent a reply the bot could not read. Please try again.",
        "blocking_not_supported": "This model only works in streaming mode.",
        "busy": "Still answering your earlier messages; please wait a moment.",
        "queued": "Queued: {ahead} message(s) ahead of yours.",
        "expired": "The earlier conversation had expired, so this is a fresh one.",
        "reset": "Started a new conversation.",
        "cut_off_mark": "[cut off]",
        "internal": "Something went wrong on the bot's side. Please try again.",
        "interrupted": "The bot restarted before this reply finished. Please send it again.",
    },
    "zh": {
        "bad_key": "机器人配置有误（Kamiya 密钥被拒绝），请联系机器人管理员。",
        "out_of_credit": "机器人的 Kamiya 额度已用完，请联系机器人管理员。",
        "no_permission": "机器人的 Kamiya 密钥无权使用此模型。",
        "rate_limited": "Kamiya 当前繁忙，请稍后再试。",
        "rate_limited_s": "Kamiya 当前繁忙，请在 {seconds} 秒后再试。",
        "conversation_not_found": "Kamiya 丢失了此对话，请重新发送消息。",
        "upstream": "Kamiya 暂时无法响应，请稍后再试。",
        "incomplete": "回复在完成前被中断了。",
        "malformed": "Kamiya 返回了无法解析的回复，请重试。",
        "blocking_not_supported": "此模型仅支持流式模式。",
        "busy": "仍在回复你之前的消息，请稍候。",
        "queued": "已排队：前面还有 {ahead} 条消息。",
        "expired": "之前的对话已过期，已开始新的对话。",
        "reset": "已开始新的对话。",
        "cut_off_mark": "[已中断]",
        "internal": "机器人出了点问题，请重试。",
        "interrupted": "机器人在回复完成前重启了，请重新发送。",
    },
}


def language(code: str | None) -> str:
    """Map a platform language code to one we have texts for."""
    return "zh" if code and code.lower().startswith("zh") else "en"


def text(key: str, lang: str | None = None, **values: object) -> str:
    table = _TEXTS[language(lang)]
    return table.get(key, _TEXTS["en"].get(key, key)).format(**values)


def failure_text(failure: Failure, lang: str | None = None) -> str:
    """The one line a user sees for a failed turn."""
    if failure.kind == "rate_limited" and failure.retry_after:
        return text("rate_limited_s", lang, seconds=max(1, round(failure.retry_after)))
    if failure.kind in _TEXTS["en"]:
        return text(failure.kind, lang)
    return text("internal", lang)


def failure_markdown(failure: Failure, lang: str | None = None) -> str:
    """What stays shown after a failed turn: the partial reply, marked cut off, and the line."""
    line = f"⚠️ {failure_text(failure, lang)}"
    if not failure.partial:
        return line
    return f"{_close_fences(failure.partial)} {text('cut_off_mark', lang)}\n\n{line}"


def _close_fences(markdown: str) -> str:
    """Close a code fence left open, so the line after it is not swallowed by the block."""
    fences = sum(1 for line in markdown.splitlines() if line.lstrip().startswith("```"))
    return markdown + "\n```" if fences % 2 else markdown
