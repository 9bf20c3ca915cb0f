"""Conversation titles: the seed's title prompt, the language to ask for, and a safe fallback.

The prompt is Kamiya's own example ("Generate a title in less than 6 words…"), sent with a
blocking gpt-3.5-turbo completion, the one blocking call Kamiya allows.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fallback_title", "guess_language", "tidy_title", "title_prompt"]

MAX_TITLE = 60
_EXCERPT = 1000

# Script → language tag to ask for. Latin script is ambiguous, so it takes the caller's hint.
_SCRIPTS = (
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CJK", "zh-CN"),
    ("CYRILLIC", "ru"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("GREEK", "el"),
    ("THAI", "th"),
    ("DEVANAGARI", "hi"),
)


def guess_language(text: str, hint: str | None = None) -> str:
    """The language a title should be in, from the script the text is mostly written in.

    Kana wins over Han (Japanese mixes both). Latin text takes ``hint`` or English.
    """
    counts: dict[str, int] = {}
    letters = 0
    for char in text[:_EXCERPT]:
        if not char.isalpha():
            continue
        letters += 1
        if char < "\u0250":  # Latin: no script of ours, and by far the most common letter
            continue
        name = unicodedata.name(char, "")
        for script, tag in _SCRIPTS:
            if name.startswith(script) or (script == "CJK" and "CJK" in name):
                counts[tag] = counts.get(tag, 0) + 1
                break
    if counts.get("ja"):
        return "ja"
    if counts:
        tag, count = max(counts.items(), key=lambda item: item[1])
        if count * 3 >= letters:
            return tag
    return hint or "en"


def title_prompt(user: str, assistant: str, language: str) -> str:
    return (
        f"Generate a title in less than 6 words for the following message "
        f"(language: {language}):\n"
        f'"""\nUser: {user[:_EXCERPT]}\nAssistant: {assistant[:_EXCERPT]}\n"""'
    )


def tidy_title(raw: str) -> str:
    """First line, no quotes or "Title:" prefix, no trailing full stop, at most 60 chars."""
    line = next((ln.strip() for ln in raw.splitlines() if ln.strip()), "")
    for prefix in ("title:", "标题：", "标题:"):
        if line.lower().startswith(prefix):
            line = line[len(prefix) :].strip()
    line = line.strip("\"'“”‘’「」*# ").rstrip("。.")
    return _cap(" ".join(line.split()))


def fallback_title(message: str) -> str:
    """The first words of the first message, when Kamiya could not name the conversation."""
    words = message.split()
    if not words:
        return "Untitled"
    title = " ".join(words[:6])
    return _cap(title if len(words) <= 6 else title + "…")


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1].rstrip() + "…"
