"""Streaming benchmark: a real Telegram bot between the fake Kamiya and the fake Bot API.

Measures, per reply, on loopback:
- first visible text: from the first Kamiya token (the moment the held stream is released) to
  the first draft (draft mode) or first message (edit mode) Telegram receives;
- budget use: visible updates while tokens arrive faster than the limits allow, against what the
  pacer's limits allow in that time (burst + rate * seconds);
- Bot API calls and 429s per reply, with the fake enforcing Telegram's documented limits.

Prints a table of medians over repeats and ends with one ``key=value`` line.
Run: ``python -m bench.stream [--repeats N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.fake_kamiya import FakeKamiya, Script
from tests.bots.telegram.harness import running_bot, write_config
from tests.fakes.telegram import FakeTelegram

TOKENS_PER_S = 20.0  # faster than the 1/s budget, as a real model streams


@dataclass
class Run:
    first_visible_ms: float
    updates: int
    allowed: float
    calls: int
    limited: int


async def one_reply(
    tg: FakeTelegram, kamiya: FakeKamiya, chat: int, *, seconds: float, burst: int, rate: float
) -> Run:
    tokens = int(seconds * TOKENS_PER_S)
    reply = "".join(f"tok{i} " for i in range(tokens))
    chars = len(reply) // tokens + 1
    gate = asyncio.Event()
    kamiya.enqueue(Script(reply=reply, chunk_chars=chars, delay_s=1 / TOKENS_PER_S, gate=gate))
    before = len(tg.calls)
    tg.private_message(tg.user(chat), "benchmark")
    await kamiya.wait_for_requests(len(kamiya.requests) + 0 or 1)
    # Let the bot settle into waiting (typing, placeholder draft), then release the stream.
    await tg.wait_for(lambda f: any(c.method == "sendChatAction" for c in f.calls[before:]))
    loop = asyncio.get_running_loop()
    released = loop.time()
    gate.set()

    def visible_calls() -> list[float]:
        return [
            c.at
            for c in tg.calls[before:]
            if c.ok
            and (c.method in ("sendMessage", "editMessageText") or c.method == "sendMessageDraft")
            and c.params.get("text")
        ]

    await tg.wait_for(
        lambda f: (
            any(c.method == "sendMessage" and c.ok for c in f.calls[before:])
            and len(f.visible_texts(chat)) >= 1
            and f.visible_texts(chat)[-1].strip() == reply.strip()
        ),
        timeout=seconds * 3 + 10,
    )
    finished = kamiya.requests[-1].finished or loop.time()
    shown = visible_calls()
    during = [t for t in shown if t <= finished]
    streamed_for = max(0.001, finished - released)
    calls = [c for c in tg.calls[before:] if c.method not in ("getUpdates",)]
    return Run(
        first_visible_ms=(shown[0] - released) * 1000,
        updates=len(during),
        allowed=burst + rate * streamed_for,
        calls=len(calls),
        limited=sum(c.status == 429 for c in calls),
    )


async def bench(mode: str, repeats: int, seconds: float) -> list[Run]:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeKamiya(api_key="bench-key") as kamiya, FakeTelegram() as tg:
            config = write_config(
                Path(folder),
                kamiya_url=kamiya.base_url,
                telegram_url=tg.base_url,
                key="bench-key",
                extra=f'stream_mode = "{mode}"',
            )
            settings = config.telegram
            async with running_bot(config):
                runs = []
                for i in range(repeats):
                    runs.append(
                        await one_reply(
                            tg,
                            kamiya,
                            5000 + i,
                            seconds=seconds,
                            burst=settings.per_chat_burst,
                            rate=settings.per_chat_per_s,
                        )
                    )
                return runs


def median(values: list[float]) -> float:
    return statistics.median(values)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each stream")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    results = {mode: await bench(mode, args.repeats, args.seconds) for mode in ("draft", "edit")}
    print(
        f"{'mode':<6} {'first_visible_ms':>16} {'updates':>8} {'allowed':>8} {'budget%':>8} "
        f"{'calls':>6} {'429s':>5}   (medians of {args.repeats} replies, {args.seconds:g} s)"
    )
    for mode, runs in results.items():
        print(
            f"{mode:<6} {median([r.first_visible_ms for r in runs]):>16.1f} "
            f"{median([r.updates for r in runs]):>8.1f} {median([r.allowed for r in runs]):>8.1f} "
            f"{median([100 * r.updates / r.allowed for r in runs]):>8.1f} "
            f"{median([r.calls for r in runs]):>6.1f} {sum(r.limited for r in runs):>5}"
        )
    every = [r for runs in results.values() for r in runs]
    figures = {
        "first_visible_ms_draft": f"{median([r.first_visible_ms for r in results['draft']]):.1f}",
        "first_visible_ms_edit": f"{median([r.first_visible_ms for r in results['edit']]):.1f}",
        "budget_used_pct": f"{median([100 * min(1.0, r.updates / r.allowed) for r in every]):.1f}",
        "steady_429": str(sum(r.limited for r in every)),
        "calls_per_reply": f"{median([r.calls for r in every]):.1f}",
    }
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    asyncio.run(main())
