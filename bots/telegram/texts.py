"""What the Telegram bot says, in English and Simplified Chinese (by the user's language_code)."""

from __future__ import annotations

from core import language

__all__ = ["COMMANDS", "say"]

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "Hi! I'm a chat assistant powered by Kamiya. Send me a message and I'll answer, "
            "streaming as I write; I remember our conversation.\n"
            "/reset (or /new) starts a fresh conversation. /help shows this again.\n"
            "/model picks a model, /system sets its instructions, /history and /resume "
            "bring back earlier conversations, /stop stops a reply, /usage shows your usage."
        ),
        "group_note": (
            "In groups I answer when you mention me ({mention}) or reply to one of my messages."
        ),
        "not_allowed": "Sorry, this bot is private and not open to you.",
        "text_only": (
            "I can only read text messages (or captions). Please send your question as text."
        ),
        "reset": "Started a new conversation.",
        "expired": "The earlier conversation had expired, so I started a new one.",
        "cmd_start": "What this bot does",
        "cmd_help": "How to use this bot",
        "cmd_reset": "Start a new conversation",
        "cmd_new": "Start a new conversation (same as /reset)",
        "cmd_model": "Show or switch the model",
        "cmd_system": "Show or set the system prompt",
        "cmd_history": "List recent conversations",
        "cmd_resume": "Continue an earlier conversation",
        "cmd_usage": "Your usage today and this month",
        "cmd_stats": "Usage of the whole bot (admins)",
        "cmd_stop": "Stop the reply being written",
        "model_button_default": "default",
    },
    "zh": {
        "start": (
            "你好！我是由 Kamiya 驱动的聊天助手。给我发消息，我会边写边回复，并记住我们的对话。\n"
            "/reset（或 /new）开始新的对话，/help 再次显示本说明。\n"
            "/model 选择模型，/system 设置系统提示词，/history 和 /resume 找回之前的对话，"
            "/stop 停止回答，/usage 查看你的用量。"
        ),
        "group_note": "在群组中，请提及我（{mention}）或回复我的消息，我才会回答。",
        "not_allowed": "抱歉，此机器人为私有，暂不对你开放。",
        "text_only": "我只能读取文字消息（或图片说明）。请用文字发送你的问题。",
        "reset": "已开始新的对话。",
        "expired": "之前的对话已过期，已为你开始新的对话。",
        "cmd_start": "机器人简介",
        "cmd_help": "使用说明",
        "cmd_reset": "开始新的对话",
        "cmd_new": "开始新的对话（同 /reset）",
        "cmd_model": "查看或切换模型",
        "cmd_system": "查看或设置系统提示词",
        "cmd_history": "最近的对话",
        "cmd_resume": "继续之前的对话",
        "cmd_usage": "你今天和本月的用量",
        "cmd_stats": "整个机器人的用量（管理员）",
        "cmd_stop": "停止正在生成的回答",
        "model_button_default": "默认",
    },
}

#: The command menu, registered with setMyCommands per language.
COMMANDS = (
    "start",
    "help",
    "reset",
    "new",
    "model",
    "system",
    "history",
    "resume",
    "usage",
    "stats",
    "stop",
)


def say(key: str, language_code: str | None, **values: object) -> str:
    table = _TEXTS[language(language_code)]
    return table.get(key, _TEXTS["en"][key]).format(**values)
