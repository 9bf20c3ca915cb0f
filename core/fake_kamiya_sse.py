"""What the fake Kamiya puts on the wire: chunk payloads, SSE framing, default replies.

Kept apart from the server in ``core.fake_kamiya`` so the byte layout, and the ways a script can
bend it (line endings, comments, byte splits), read in one place.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "SseWire",
    "can_block",
    "chunk",
    "completion",
    "demo_reply",
    "echo_reply",
    "error_body",
    "kamiya_info",
    "pieces",
    "title_for",
    "to_json",
    "words",
]

# Kamiya serves blocking calls for gpt-3.5-turbo only, with or without a dated suffix.
_BLOCKING = re.compile(r"(openai:)?gpt-3\.5-turbo(-[\w.]+)?", re.IGNORECASE)


def can_block(model: str) -> bool:
    return _BLOCKING.fullmatch(model.strip()) is not None


def chunk(
    chat_id: str, created: int, model: str, delta: dict[str, str], finish: str | None = None
) -> dict[str, object]:
    """One OpenAI ``chat.completion.chunk``."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def kamiya_info(conversation_id: str, full_content: str) -> dict[str, object]:
    """The event Kamiya adds after ``[DONE]`` on the conversation endpoint."""
    return {
        "id": "kamiyaInfo",
        "conversationId": conversation_id,
        "message": "[DONE]",
        "fullContent": full_content,
    }


def completion(
    chat_id: str, created: int, model: str, reply: str, prompt: str
) -> dict[str, object]:
    """A blocking ``chat.completion``; token counts are word counts, enough to look real."""
    prompt_tokens, reply_tokens = len(prompt.split()), len(reply.split())
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": reply_tokens,
            "total_tokens": prompt_tokens + reply_tokens,
        },
    }


def error_body(status: int, message: str) -> dict[str, object]:
    return {"error": {"message": message, "code": status}}


def to_json(payload: object, *, multiline: bool = False) -> str:
    """Raw UTF-8 (not ``\\u`` escapes), so multi-byte characters really cross the wire.

    ``multiline`` indents the JSON: its newlines fall between tokens only, so a payload sent
    as several ``data:`` lines (which SSE joins with newlines) still parses.
    """
    return json.dumps(payload, ensure_ascii=False, indent=1 if multiline else None)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def words(text: str) -> list[str]:
    """Split before each word, keeping every space, so the pieces join back to ``text``."""
    return [part for part in re.split(r"(?<=\s)(?=\S)", text) if part]


def echo_reply(content: str, turn: int) -> str:
    return f"**Echo** (turn {turn}): {content}"


def demo_reply(content: str, turn: int) -> str:
    """What a new user sees in ``chat --offline``: proof that streaming and history work."""
    said = " ".join(content.split())[:200] or "nothing"
    return (
        f"Hello! This is the **offline demo**: a fake Kamiya on your machine, so no key is "
        f"needed. This is turn {turn} of our conversation; you said: {said}\n\n"
        "- replies stream in word by word\n"
        "- the conversation is kept between turns\n\n"
        "For a real model, set `KAMIYA_API_KEY` and run `kamiya-bot chat`."
    )


def title_for(prompt: str) -> str:
    """A title for the seed's title prompt: the first words of the quoted user line."""
    parts = prompt.split('"""')
    quoted = parts[1] if len(parts) >= 3 else prompt
    user = next((ln for ln in quoted.splitlines() if ln.startswith("User:")), quoted)
    return " ".join(user.removeprefix("User:").split()[:4])[:40] or "Offline chat"


class SseWire:
    """Writes SSE events to a prepared response, framed and split as a script asks.

    With ``split_bytes`` the encoded stream goes out in pieces of that size, each its own write,
    straddling event boundaries and UTF-8 characters alike; the rest waits for ``flush``.
    """

    def __init__(
        self,
        response: web.StreamResponse,
        *,
        line_ending: str = "\n",
        split_bytes: int | None = None,
        comments: bool = False,
    ) -> None:
        self._response = response
        self._eol = line_ending
        self._split = split_bytes
        self._comments = comments
        self._pending = b""

    async def event(self, data: str) -> None:
        """One event: every line of ``data`` as a ``data:`` line, then a blank line."""
        lines = [": keep-alive", "foo: bar"] if self._comments else []
        lines += [f"data: {line}" for line in data.split("\n")]
        self._pending += (self._eol.join(lines) + self._eol * 2).encode()
        if self._split is None:
            await self.flush()
            return
        while len(self._pending) >= self._split:
            piece, self._pending = self._pending[: self._split], self._pending[self._split :]
            await self._response.write(piece)
            await asyncio.sleep(0)  # let the reader run, so pieces can arrive apart

    async def flush(self) -> None:
        if self._pending:
            piece, self._pending = self._pending, b""
            await self._response.write(piece)
