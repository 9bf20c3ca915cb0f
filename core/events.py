"""What a Kamiya stream means: SSE events → ``TextDelta`` … ``Final``, or a typed error.

Both endpoints speak OpenAI's ``chat.completion.chunk`` SSE ending in ``data: [DONE]``; the
simplified conversation API then adds one ``kamiyaInfo`` event with the ``conversationId`` for the
next turn and ``fullContent``, the billed reply, which wins over the joined deltas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from core.errors import (
    BadKey,
    IncompleteStream,
    KamiyaError,
    MalformedEvent,
    NoPermission,
    OutOfCredit,
    RateLimited,
    UpstreamFailure,
)

if TYPE_CHECKING:
    from core.sse import SseEvent

__all__ = ["Event", "Final", "StreamReader", "TextDelta", "error_from_body"]

DONE = "[DONE]"
KAMIYA_INFO = "kamiyaInfo"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Final:
    """The end of a conversation turn, from ``kamiyaInfo``."""

    conversation_id: str
    full_content: str


Event = TextDelta | Final


class StreamReader:
    """Turns the SSE events of one response into typed events and checks their order.

    ``expect_info``: the conversation endpoint, which is complete only with ``kamiyaInfo``;
    completions are complete at ``[DONE]``.
    """

    def __init__(self, *, expect_info: bool) -> None:
        self._expect_info = expect_info
        self._seen_done = False
        self._final: Final | None = None
        self._parts: list[str] = []

    @property
    def complete(self) -> bool:
        if self._expect_info:
            return self._final is not None
        return self._seen_done

    @property
    def text(self) -> str:
        """The reply as the deltas built it so far."""
        return "".join(self._parts)

    def feed(self, sse: SseEvent) -> Event | None:
        if self._final is not None or (self._seen_done and not self._expect_info):
            return None  # anything after the end is noise; the turn is settled (``complete``)
        data = sse.data.strip()
        if data == DONE:
            self._seen_done = True
            return None
        try:
            payload = _parse(data)
        except ValueError:
            if sse.unterminated:
                raise IncompleteStream("the reply stream was cut off mid-event") from None
            raise MalformedEvent("Kamiya sent an event that is not JSON") from None
        if not isinstance(payload, dict):
            raise MalformedEvent("Kamiya sent an event that is not a JSON object")
        if "error" in payload:
            raise error_from_body(None, payload)
        if sse.event == KAMIYA_INFO or payload.get("id") == KAMIYA_INFO:
            return self._info(payload)
        if self._seen_done:
            return None
        text = _delta_text(payload)
        if not text:
            return None
        self._parts.append(text)
        return TextDelta(text)

    def finish(self) -> None:
        """At end of stream: raise unless the turn was complete."""
        if self.complete:
            return
        if not self._seen_done:
            raise IncompleteStream("the reply stream ended before [DONE]")
        raise IncompleteStream("the reply stream ended without kamiyaInfo")

    def _info(self, payload: dict[str, object]) -> Final | None:
        if not self._expect_info:
            return None
        conversation_id = payload.get("conversationId")
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise MalformedEvent("kamiyaInfo carries no conversationId")
        full = payload.get("fullContent")
        if full is not None and not isinstance(full, str):
            raise MalformedEvent("kamiyaInfo carries a fullContent that is not text")
        self._final = Final(conversation_id.strip(), self.text if full is None else full)
        return self._final


def _parse(data: str) -> object:
    """JSON text → value. orjson first (a token's JSON is most of its cost, and orjson reads it
    in a fraction of the time); what it refuses goes to the standard library, which accepts a
    little more (NaN, lone surrogates, integers past 64 bits), so every input means what it
    meant before. Both raise ``ValueError`` subclasses."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _delta_text(payload: dict[str, object]) -> str | None:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return None  # usage-only or keep-alive chunks carry no text
    choice = choices[0]
    if not isinstance(choice, dict):
        raise MalformedEvent("a chunk's choice is not an object")
    delta = choice.get("delta")
    if delta is None:
        return None
    if not isinstance(delta, dict):
        raise MalformedEvent("a chunk's delta is not an object")
    content = delta.get("content")
    if content is None:
        return None
    if not isinstance(content, str):
        raise MalformedEvent("a chunk's content is not text")
    return content


def error_from_body(
    status: int | None, body: object, *, retry_after: float | None = None
) -> KamiyaError:
    """Map a status and an error body (OpenAI-style or Kamiya's own) to a typed error.

    Only a short, single-line excerpt of the upstream message is kept, because it is shown.
    """
    message, code = _message_and_code(body)
    status = status if status is not None else code
    text = _short(message) or (f"HTTP {status}" if status else "an error")
    if status == 401:
        return BadKey(f"Kamiya rejected the API key ({text})", status=status)
    if status == 402:
        return OutOfCredit(f"the Kamiya key is out of credit ({text})", status=status)
    if status == 403:
        return NoPermission(f"the Kamiya key lacks permission ({text})", status=status)
    if status == 429:
        if retry_after is None and isinstance(body, dict):
            retry_after = _number(body.get("retry_after"))
        return RateLimited(f"Kamiya is rate limiting ({text})", retry_after=retry_after)
    return UpstreamFailure(f"Kamiya failed ({text})", status=status)


def _message_and_code(body: object) -> tuple[str, int | None]:
    if isinstance(body, str):
        return body, None
    if not isinstance(body, dict):
        return "", None
    error = body.get("error", body)
    if isinstance(error, str):
        return error, _int(body.get("status") or body.get("code"))
    if not isinstance(error, dict):
        return "", None
    message = error.get("message") or body.get("message") or body.get("detail") or ""
    code = _int(error.get("status") or error.get("code") or body.get("status"))
    return str(message), code


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 160 else line[:157] + "..."


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
