"""Per-chunk core overhead: SSE bytes → decoded event → typed delta → renderer decision.

What one token costs the bot before any platform call: the incremental SSE decoder, the
OpenAI-chunk JSON parse and order checks, the whole-text-so-far the sink receives, the
renderer's ``update`` (which never waits) and its ``pause`` after each network read. Measured
in isolation, in one process, on realistic chunks (one ``chat.completion.chunk`` per network
read, 4 characters of text each), for a reply of ``--chars`` characters. Prints medians of
``--repeats`` runs; the target is ≤ 50 µs a chunk.
Run: ``python -m bench.chunk [--chars 4000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from core.events import StreamReader, TextDelta
from core.fake_kamiya_sse import chunk, kamiya_info, to_json
from core.sse import SseStream
from core.throttle import ChatGate, LiveRenderer, PaceLimits


class _Surface:
    """Accepts every call at once; only the renderer's decision is measured, not I/O."""

    async def show(self, text: str) -> int:
        return 1

    async def final(self, text: str) -> int:
        return 1


def wire(chars: int) -> list[bytes]:
    """The conversation endpoint's bytes for a reply of ``chars`` characters, one event each."""
    text = ("word " * (chars // 5 + 1))[:chars]
    events = [
        f"data: {to_json(chunk('c1', 0, 'gpt-3.5-turbo', {'content': text[i : i + 4]}))}\n\n"
        for i in range(0, len(text), 4)
    ]
    events.append("data: [DONE]\n\n")
    events.append(f"data: {to_json(kamiya_info('conv-1', text))}\n\n")
    return [event.encode() for event in events]


async def one_reply(payload: list[bytes]) -> tuple[float, int]:
    """Seconds of core work for one reply, and its chunk count."""
    renderer = LiveRenderer(_Surface(), ChatGate(PaceLimits(per_second=1.0, burst=3)))
    sse = SseStream()
    reader = StreamReader(expect_info=True)
    shown: list[str] = []
    began = time.perf_counter()
    for data in payload:
        for item in sse.feed(data):
            event = reader.feed(item)
            if isinstance(event, TextDelta):
                shown.append(event.text)
                renderer.update("".join(shown))
        if (rest := renderer.pause()) is not None:  # asked after each read, as the client does
            await rest  # (never here: nothing was sent, so the gate holds nothing back)
    elapsed = time.perf_counter() - began
    await renderer.aclose()
    return elapsed, len(payload)


async def run(chars: int, repeats: int) -> None:
    payload = wire(chars)
    per_chunk = []
    for _ in range(repeats):
        elapsed, count = await one_reply(payload)
        per_chunk.append(elapsed / count * 1e6)
    print(f"reply_chars={chars} chunks={len(payload)} repeats={repeats}")
    print(
        f"per_chunk_us_median={statistics.median(per_chunk):.1f} "
        f"per_chunk_us_min={min(per_chunk):.1f} target_us=50"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.chars, args.repeats))


if __name__ == "__main__":
    main()
