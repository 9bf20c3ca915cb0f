"""Bytes → Server-Sent Events, with httpx-sse's decoders doing the line and field work.

We drive the decoders ourselves instead of ``EventSource.aiter_sse`` for two reasons: bytes go
through one incremental UTF-8 decoder (so a character split across network chunks survives
without depending on how the response was read), and at end of stream an event that was never
closed by a blank line is still handed over, flagged, so the caller can accept a complete
``kamiyaInfo`` a server forgot to terminate, yet call a truncated one an incomplete stream.

One shape is decoded without them: a network read holding whole ``data: …`` events and
nothing else, read while nothing is pending (no partial line, no field of an undispatched
event). That is how an OpenAI-style stream arrives, a read per token, and there the decoders'
result is plain: each event is a ``message`` whose data is its line after ``data: ``. Their
cost, a few lines of Python per line, was the larger part of a token's cost.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

__all__ = ["SseEvent", "SseStream"]

_MESSAGE = "message"  # the type of an event without an ``event:`` field, as httpx-sse names it


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event; ``unterminated`` when it was cut by the end of the stream."""

    event: str
    data: str
    unterminated: bool = False


class SseStream:
    """Incremental decoder: feed byte chunks split anywhere, get whole events back."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines = SSELineDecoder()
        self._events = SSEDecoder()
        self._started = False
        self._idle = True  # nothing pending in the decoders: the last line fed was blank
        self._whole = True  # nor in the UTF-8 decoder: the last byte fed was ASCII

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if not chunk:
            return []
        if self._whole and self._started and chunk.endswith(b"\n\n"):
            # Nothing held back, nothing to hold back (the read ends on ASCII): one C call
            # decodes it exactly as the incremental decoder would, a Python frame less a read.
            text = chunk.decode("utf-8", "replace")
        else:
            text = self._text.decode(chunk)
            self._whole = chunk[-1] < 0x80
            if not self._started and text:
                self._started = True
                text = text.removeprefix("\ufeff")  # the spec allows one leading BOM
            if not text:
                return []
        if self._idle and text.startswith("data: ") and text.endswith("\n\n") and "\r" not in text:
            if text.find("\n") == len(text) - 2:  # one event, the usual read: nothing to split
                return [SseEvent(_MESSAGE, text[6:-2])] if len(text) > 8 else []
            blocks = text.split("\n\n")
            blocks.pop()  # the empty remainder after the last blank line
            if all(b.startswith("data: ") and "\n" not in b for b in blocks):
                return [SseEvent(_MESSAGE, b[6:]) for b in blocks if len(b) > 6]
        self._idle = text.endswith(("\n\n", "\r\n\r\n"))
        return self._decode(text)

    def close(self) -> list[SseEvent]:
        """Flush at end of stream; a pending, unterminated event comes out flagged."""
        events = self._decode(self._text.decode(b"", final=True))
        for line in self._lines.flush():
            events.extend(self._decode_line(line))
        pending = self._events.decode("")
        if pending is not None and pending.data:
            events.append(SseEvent(pending.event, pending.data, unterminated=True))
        return events

    def _decode(self, text: str) -> list[SseEvent]:
        events: list[SseEvent] = []
        for line in self._lines.decode(text):
            events.extend(self._decode_line(line))
        return events

    def _decode_line(self, line: str) -> list[SseEvent]:
        sse = self._events.decode(line)
        # httpx-sse dispatches data-less events (after id/retry fields); the spec drops them.
        if sse is None or not sse.data:
            return []
        return [SseEvent(sse.event, sse.data)]
