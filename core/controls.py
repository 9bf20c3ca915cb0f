"""Shared layout of the chat controls' answers, so Telegram, Discord and the terminal agree.

Each function returns plain text (no platform markup); frontends add buttons or menus around it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.texts import text

if TYPE_CHECKING:
    from datetime import datetime

    from core.views import HistoryEntry, ModelChange, ResumeOutcome, Stats, UserUsage
    from storage.protocol import ConversationRecord, UsageTotals

__all__ = [
    "entry_label",
    "history_text",
    "model_change_text",
    "model_label",
    "resume_text",
    "stats_text",
    "title_of",
    "usage_text",
]


def model_label(model: str | None, lang: str | None) -> str:
    return text("model_default", lang) if model is None else model


def title_of(record: ConversationRecord, lang: str | None) -> str:
    return record.title or text("untitled", lang)


def entry_label(entry: HistoryEntry, lang: str | None, *, now: datetime | None = None) -> str:
    """One line: title · when · mode (· current / expired); short enough for a button."""
    record = entry.record
    mode = (
        text("mode_server", lang)
        if record.mode == "server"
        else text("mode_completions", lang, model=record.model or "?")
    )
    parts = [title_of(record, lang), _when(record.last_used_at, now), mode]
    if entry.current:
        parts.append(text("history_current", lang))
    elif not entry.resumable:
        parts.append(text("history_expired", lang))
    return " · ".join(parts)


def history_text(entries: list[HistoryEntry], lang: str | None) -> str:
    if not entries:
        return text("history_empty", lang)
    lines = [text("history_title", lang)]
    lines += [f"{n}. {entry_label(e, lang)}" for n, e in enumerate(entries, 1)]
    return "\n".join(lines)


def resume_text(outcome: ResumeOutcome, lang: str | None) -> str:
    if outcome.record is None:
        return text("resume_unknown", lang)
    return text(f"resume_{outcome.status}", lang, title=title_of(outcome.record, lang))


def model_change_text(
    change: ModelChange, lang: str | None, *, models: tuple[str, ...] = ()
) -> str:
    if change.status == "unknown":
        names = ", ".join(("default", *models))
        return text("model_unknown", lang, model=change.asked, models=names)
    if change.status == "forbidden":
        previous = model_label(change.model, lang)
        return text("model_forbidden", lang, model=change.asked, previous=previous)
    if change.status == "same":
        return text("model_same", lang, model=model_label(change.model, lang))
    if change.model is None:
        return text("model_set_default", lang)
    return text("model_set", lang, model=change.model)


def usage_text(usage: UserUsage, lang: str | None) -> str:
    return text(
        "usage",
        lang,
        today_requests=usage.today.requests,
        today_chars=usage.today.chars,
        month_requests=usage.month.requests,
        month_chars=usage.month.chars,
    )


def stats_text(stats: Stats, platform: str, lang: str | None) -> str:
    lines = [text("stats_title", lang, platform=platform)]
    for period, totals in (
        ("stats_today", stats.today),
        ("stats_month", stats.month),
        ("stats_all", stats.all_time),
    ):
        lines.append(_totals_line(text(period, lang), totals, lang))
    if stats.top:
        lines.append(text("stats_top", lang))
        lines += [
            text(
                "stats_chat",
                lang,
                chat=chat.chat_key,
                requests=chat.totals.requests,
                chars=chat.totals.chars,
            )
            for chat in stats.top
        ]
    return "\n".join(lines)


def _totals_line(period: str, totals: UsageTotals, lang: str | None) -> str:
    return text(
        "stats_line",
        lang,
        period=period,
        requests=totals.requests,
        billed=totals.billed_chars,
        streamed=totals.streamed_chars,
    )


def _when(moment: datetime, now: datetime | None) -> str:
    """Date and time in UTC; only the time when it is today."""
    if now is not None and moment.date() == now.date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")
