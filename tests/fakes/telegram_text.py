"""Text rules of the fake Bot API: errors, UTF-16 lengths, entities and a rough parse_mode check.

Telegram counts lengths and entity offsets in UTF-16 code units, not Python characters, so a
bot that slices by ``len()`` breaks on emoji; every measure here is in UTF-16 units to catch
that. The parse_mode check is a rough approximation of Telegram's parsers: it exists so a bot
that sends unescaped MarkdownV2 or broken HTML fails in tests as it would in production.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

__all__ = [
    "ENTITY_TYPES",
    "MAX_TEXT_UTF16",
    "ApiError",
    "JsonObject",
    "auto_entities",
    "bad_request",
    "check_markup",
    "is_int",
    "opt_int",
    "utf16_len",
    "validate_entities",
]

# JSON as it is on the wire; tests index deep into it, so values stay ``Any``.
JsonObject = dict[str, Any]

MAX_TEXT_UTF16 = 4096
ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)


class ApiError(Exception):
    """A Bot API error answer: HTTP status (= ``error_code``), description, retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def bad_request(reason: str) -> ApiError:
    """A 400 worded as Telegram words them: ``Bad Request: <reason>``."""
    return ApiError(400, f"Bad Request: {reason}")


def _entities_error(reason: str) -> ApiError:
    return bad_request(f"can't parse entities: {reason}")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    """Telegram's parse errors point at UTF-8 byte offsets."""
    return len(text[:index].encode())


def validate_entities(text: str, entities: object) -> list[JsonObject]:
    """Check ``entities`` against ``text`` as Telegram does; return them as a list of dicts."""
    if not isinstance(entities, list):
        raise _entities_error("entities must be a JSON array of MessageEntity")
    size = utf16_len(text)
    for number, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise _entities_error(f"entity {number} is not an object")
        kind, offset, length = entity.get("type"), entity.get("offset"), entity.get("length")
        if kind not in ENTITY_TYPES:
            raise _entities_error(f'unsupported entity type "{kind}"')
        if not is_int(offset) or offset < 0:
            raise _entities_error(f"entity {number}: offset must be an integer >= 0")
        if not is_int(length) or length <= 0:
            raise _entities_error(f"entity {number}: length must be a positive integer")
        if offset + length > size:
            raise _entities_error(
                f"entity {number} ends at UTF-16 offset {offset + length}, "
                f"after the end of the text ({size})"
            )
        required = {
            "text_link": "url",
            "text_mention": "user",
            "custom_emoji": "custom_emoji_id",
            "date_time": "unix_time",
        }.get(kind)
        if required is not None and not entity.get(required):
            raise _entities_error(f"entity {number}: {kind} needs {required}")
        if kind == "pre" and not isinstance(entity.get("language", ""), str):
            raise _entities_error(f"entity {number}: pre language must be a string")
    return list(entities)


def is_int(value: object) -> TypeGuard[int]:
    """An integer in JSON terms: ``True`` is not one, though Python says so."""
    return isinstance(value, int) and not isinstance(value, bool)


def opt_int(value: object) -> int | None:
    return value if is_int(value) else None


def check_markup(text: str, parse_mode: str) -> None:
    """Raise as Telegram would for markup it cannot parse; a rough check, not a parser."""
    mode = parse_mode.lower()
    if mode == "markdownv2":
        _check_markdown_v2(text)
    elif mode == "html":
        _check_html(text)
    elif mode == "markdown":
        _check_markdown(text)
    else:
        raise bad_request("unsupported parse_mode")


_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


def _reserved(char: str) -> ApiError:
    return _entities_error(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def _check_markdown_v2(text: str) -> None:
    """Markers must pair up and nest; every other reserved character must be escaped."""
    stack: list[tuple[str, int]] = []  # open markers and where they started
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        marker = next((m for m in ("__", "||") if text.startswith(m, i)), char)
        if char == "\\":
            i += 2  # Telegram lets a backslash escape any ASCII character
        elif char == "`":
            i = _skip_code(text, i)
        elif marker in ("*", "_", "__", "~", "||"):
            _toggle(text, stack, marker, i)
            i += len(marker)
        elif char == "[" or text.startswith("![", i):
            stack.append(("[", i))
            i += 2 if char == "!" else 1
        elif char == "]" and stack and stack[-1][0] == "[":
            stack.pop()
            i = _skip_link_url(text, i + 1)
        elif char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
        elif char in _V2_RESERVED:
            raise _reserved(char)
        else:
            i += 1
    if stack:
        raise _unclosed(text, *stack[-1])


def _toggle(text: str, stack: list[tuple[str, int]], marker: str, index: int) -> None:
    """Close ``marker`` if it is the innermost open one, else open it; overlap is an error."""
    if stack and stack[-1][0] == marker:
        stack.pop()
    elif any(open_ == marker for open_, _ in stack):
        raise _unclosed(text, *stack[-1])
    else:
        stack.append((marker, index))


def _skip_code(text: str, start: int) -> int:
    """Past a code span or pre block starting at ``start``; inside, only ` and \\ are escaped."""
    fence = "```" if text.startswith("```", start) else "`"
    end = _find_unescaped(text, fence, start + len(fence))
    if end < 0:
        name = "Pre" if fence == "```" else "Code"
        at = _byte_offset(text, start)
        raise _entities_error(f"Can't find end of {name} entity at byte offset {at}")
    return end + len(fence)


def _skip_link_url(text: str, start: int) -> int:
    """Past the ``(url)`` that must follow a link's ``]``."""
    if not text.startswith("(", start):
        raise _reserved("]")
    end = _find_unescaped(text, ")", start + 1)
    if end < 0:
        raise _reserved("(")
    return end + 1


def _unclosed(text: str, marker: str, index: int) -> ApiError:
    return _entities_error(
        f"Can't find end of {_V2_NAMES[marker]} entity at byte offset {_byte_offset(text, index)}"
    )


def _find_unescaped(text: str, needle: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(needle, i):
            return i
        else:
            i += 1
    return -1


_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
        "tg-time",
    }
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(\s[^<>]*)?>")


def _check_html(text: str) -> None:
    """Only Telegram's tags, properly nested; a bare ``<`` is an error, as on Telegram."""
    stack: list[str] = []
    i = text.find("<")
    while i >= 0:
        match = _TAG.match(text, i)
        at = _byte_offset(text, i)
        if match is None:
            raise _entities_error(f'Unsupported start tag "" at byte offset {at}')
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {at}')
        if not closing:
            attrs = match.group(3) or ""
            if name == "span" and "tg-spoiler" not in attrs:
                raise _entities_error('Tag "span" must have class "tg-spoiler"')
            stack.append(name)
        elif not stack or stack[-1] != name:
            expected = f'"</{stack[-1]}>"' if stack else "no end tag"
            raise _entities_error(
                f'Unmatched end tag at byte offset {at}, expected {expected}, found "</{name}>"'
            )
        else:
            stack.pop()
        i = text.find("<", match.end())
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')


def _check_markdown(text: str) -> None:
    """Legacy Markdown: ``*``, ``_``, backticks and ``[...]`` must close; no nesting."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            i += 2
            continue
        closer = {"*": "*", "_": "_", "`": "`", "[": "]"}.get(char)
        if closer is None:
            i += 1
            continue
        fence = "```" if text.startswith("```", i) else closer
        end = text.find(fence, i + len(fence))
        if end < 0:
            raise _entities_error(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
            )
        i = end + len(fence)
        if char == "[" and text.startswith("(", i):
            close = text.find(")", i)
            i = n if close < 0 else close + 1


_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z][A-Za-z0-9_]{3,31}(?!\w)")
_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'}]")


def auto_entities(text: str) -> list[JsonObject]:
    """The entities a Telegram client attaches to what a user types: commands, mentions, URLs.

    Offsets and lengths are UTF-16 units, as Telegram sends them; ``CommandHandler`` only
    matches a message with a ``bot_command`` entity at offset 0.
    """
    found: list[JsonObject] = []
    for kind, pattern in (("bot_command", _COMMAND), ("mention", _MENTION), ("url", _URL)):
        for match in pattern.finditer(text):
            offset = utf16_len(text[: match.start()])
            found.append({"type": kind, "offset": offset, "length": utf16_len(match.group())})
    return sorted(found, key=lambda entity: entity["offset"])
