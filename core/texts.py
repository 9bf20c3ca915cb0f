"""User-facing wording shared by every frontend, in English and Simplified Chinese.

Kept in core so the terminal, Telegram and Discord say the same thing about the same failure.
``lang`` is a BCP 47-ish code from the platform (``"zh-hans"``, ``"zh-CN"``, ``"en-US"``…);
anything that is not Chinese falls back to English.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.frontend import Failure

__all__ = ["duration", "failure_markdown", "failure_text", "language", "text"]

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
        "no_permission_model": "The bot's Kamiya key may not use {model}. "
        "Send /model to pick another one, or go back to the default.",
        "stopped": "Stopped.",
        "stopped_server": "Stopped. Kamiya may still have finished this answer in the "
        "conversation, so it may remember more than is shown here.",
        "stopped_mark": "[stopped]",
        "stale": "That button is no longer valid.",
        "limit_rate": "You have reached the limit of {limit} messages a minute. "
        "You can continue in {wait}.",
        "limit_daily": "You have used today's {limit} characters. You can continue in {wait} "
        "(at 00:00 UTC).",
        "wait_s": "{s} s",
        "wait_min": "{m} min",
        "wait_h": "{h} h {m} min",
        "model_current": "Model: {model}.",
        "model_default": "the default (Kamiya's conversation, context kept by the server)",
        "model_pick": "Pick a model:",
        "model_set": "Now using {model}. I keep this chat's history myself and send it "
        "with each message.",
        "model_set_default": "Back to the default: Kamiya's own conversation.",
        "model_same": "Already using {model}.",
        "model_unknown": 'Unknown model "{model}". Available: {models}.',
        "model_forbidden": "The bot's Kamiya key may not use {model}, so the chat stays on "
        "{previous}. The default always works.",
        "system_show": "System prompt (used with /model other than the default):\n{prompt}",
        "system_none": "No system prompt is set. Set one with /system <text>.",
        "system_set": "System prompt set.",
        "system_reset": "System prompt reset to the default.",
        "system_server_note": "It applies in completions mode (pick a model with /model); "
        "the default conversation has its own.",
        "history_empty": "No conversations yet.",
        "history_title": "Your last conversations:",
        "history_current": "current",
        "history_expired": "expired",
        "mode_server": "conversation",
        "mode_completions": "{model}",
        "untitled": "Untitled",
        "resume_pick": "Pick a conversation to continue:",
        "resume_ok": 'Continuing "{title}".',
        "resume_current": '"{title}" is already the current conversation.',
        "resume_expired": '"{title}" has expired (Kamiya keeps conversations for 48 hours), '
        "so it can't be continued.",
        "resume_unknown": "That conversation is not in this chat's history.",
        "resume_none": "Nothing to resume yet.",
        "continued": 'Continuing the earlier conversation "{title}".',
        "usage": "Your usage: today {today_requests} requests, {today_chars} characters; "
        "this month {month_requests} requests, {month_chars} characters.",
        "stats_title": "Usage ({platform}):",
        "stats_line": "{period}: {requests} requests, {billed} billed + {streamed} streamed "
        "characters",
        "stats_today": "Today",
        "stats_month": "This month",
        "stats_all": "All time",
        "stats_top": "Busiest chats this month:",
        "stats_chat": "{chat}: {requests} requests, {chars} characters",
        "admins_only": "Only the bot's admins can see that.",
        "stop": "Stop",
        "regenerate": "Regenerate",
        "nothing_to_stop": "Nothing is being answered right now.",
        "busy_streams": "Many people are asking right now; your message is queued and will be "
        "answered in a moment.",
        "storage": "The bot can't reach its database right now, so it can't answer. "
        "Please try again shortly.",
        "not_saved": "The bot couldn't save this conversation (database error); your next "
        "message may start a new one.",
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
        "no_permission_model": "机器人的 Kamiya 密钥无权使用 {model}。"
        "发送 /model 选择其他模型，或切回默认。",
        "stopped": "已停止。",
        "stopped_server": "已停止。Kamiya 可能仍在对话中完成了这条回答，"
        "因此它记得的内容可能比这里显示的更多。",
        "stopped_mark": "[已停止]",
        "stale": "该按钮已失效。",
        "limit_rate": "你已达到每分钟 {limit} 条消息的上限，请在 {wait}后继续。",
        "limit_daily": "你已用完今天的 {limit} 个字符额度，请在 {wait}后继续（UTC 零点重置）。",
        "wait_s": "{s} 秒",
        "wait_min": "{m} 分钟",
        "wait_h": "{h} 小时 {m} 分钟",
        "model_current": "当前模型：{model}。",
        "model_default": "默认（Kamiya 对话，由服务器保存上下文）",
        "model_pick": "选择模型：",
        "model_set": "已切换到 {model}。此聊天的历史由我保存，并随每条消息发送。",
        "model_set_default": "已切回默认：Kamiya 自己的对话。",
        "model_same": "已经在使用 {model}。",
        "model_unknown": "未知模型“{model}”。可用：{models}。",
        "model_forbidden": "机器人的 Kamiya 密钥无权使用 {model}，聊天仍使用 {previous}。"
        "默认模型始终可用。",
        "system_show": "系统提示词（在 /model 选择非默认模型时使用）：\n{prompt}",
        "system_none": "尚未设置系统提示词。使用 /system <内容> 设置。",
        "system_set": "系统提示词已设置。",
        "system_reset": "系统提示词已恢复为默认。",
        "system_server_note": "它在补全模式下生效（用 /model 选择模型）；默认对话有自己的设定。",
        "history_empty": "还没有对话。",
        "history_title": "最近的对话：",
        "history_current": "当前",
        "history_expired": "已过期",
        "mode_server": "对话",
        "mode_completions": "{model}",
        "untitled": "未命名",
        "resume_pick": "选择要继续的对话：",
        "resume_ok": "继续“{title}”。",
        "resume_current": "“{title}”已经是当前对话。",
        "resume_expired": "“{title}”已过期（Kamiya 只保留对话 48 小时），无法继续。",
        "resume_unknown": "此聊天的历史中没有该对话。",
        "resume_none": "还没有可继续的对话。",
        "continued": "继续之前的对话“{title}”。",
        "usage": "你的用量：今天 {today_requests} 次请求、{today_chars} 个字符；"
        "本月 {month_requests} 次请求、{month_chars} 个字符。",
        "stats_title": "用量（{platform}）：",
        "stats_line": "{period}：{requests} 次请求，计费 {billed} + 流式 {streamed} 个字符",
        "stats_today": "今天",
        "stats_month": "本月",
        "stats_all": "全部",
        "stats_top": "本月最活跃的聊天：",
        "stats_chat": "{chat}：{requests} 次请求，{chars} 个字符",
        "admins_only": "只有机器人管理员可以查看。",
        "stop": "停止",
        "regenerate": "重新生成",
        "nothing_to_stop": "当前没有正在进行的回答。",
        "busy_streams": "当前提问的人很多，你的消息已排队，稍后就会回答。",
        "storage": "机器人暂时无法访问数据库，因此无法回答，请稍后再试。",
        "not_saved": "机器人未能保存此对话（数据库错误），你的下一条消息可能会开始新的对话。",
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
    kind = failure.kind
    if kind == "rate_limited" and failure.retry_after:
        return text("rate_limited_s", lang, seconds=max(1, round(failure.retry_after)))
    if kind == "no_permission" and failure.model:
        return text("no_permission_model", lang, model=failure.model)
    if kind == "stopped":
        return text("stopped_server" if failure.mode == "server" else "stopped", lang)
    if kind in {"limit_rate", "limit_daily"}:
        wait = duration(failure.retry_after or 0.0, lang)
        return text(kind, lang, limit=failure.limit, wait=wait)
    if kind in _TEXTS["en"]:
        return text(kind, lang)
    return text("internal", lang)


def failure_markdown(failure: Failure, lang: str | None = None) -> str:
    """What stays shown after a failed turn: the partial reply, marked cut off, and the line."""
    icon = "⏹" if failure.kind == "stopped" else "⚠️"
    line = f"{icon} {failure_text(failure, lang)}"
    if not failure.partial:
        return line
    mark = text("stopped_mark" if failure.kind == "stopped" else "cut_off_mark", lang)
    return f"{_close_fences(failure.partial)} {mark}\n\n{line}"


def duration(seconds: float, lang: str | None = None) -> str:
    """A wait as people say it: seconds under a minute, minutes under an hour, else h + min."""
    whole = max(1, round(seconds))
    if whole < 60:
        return text("wait_s", lang, s=whole)
    minutes = -(-whole // 60)  # round up: never tell a user to come back too early
    if minutes < 60:
        return text("wait_min", lang, m=minutes)
    return text("wait_h", lang, h=minutes // 60, m=minutes % 60)


def _close_fences(markdown: str) -> str:
    """Close a code fence left open, so the line after it is not swallowed by the block."""
    fences = sum(1 for line in markdown.splitlines() if line.lstrip().startswith("```"))
    return markdown + "\n```" if fences % 2 else markdown
