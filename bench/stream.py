"""Streaming benchmark: a real bot between the fake Kamiya and a fake platform, on loopback.

Per reply, with the platform fake enforcing the platform's documented limits:
- first visible text: from the first Kamiya token (the moment the held stream is released) to
  the first text the platform receives (Telegram: a draft in draft mode, the message in edit
  mode; Discord: the first edit of the deferred response);
- budget use: visible updates while tokens arrive faster than the limits allow, against the most
  the pacer's limits allow in that time (simulated greedily on the same ``ChatGate``);
- platform calls and 429s per reply.

Prints medians over repeats and ends with one ``key=value`` line.
Run: ``python -m bench.stream [--platform telegram|discord] [--repeats N] [--seconds S]``.
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
from core.throttle import ChatGate, PaceLimits
from tests.bots.discord import harness as discord_harness
from tests.bots.telegram import harness as telegram_harness
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, Channel, FakeDiscord, Guild
from tests.fakes.discord import Limits as DiscordLimits
from tests.fakes.telegram import FakeTelegram

TOKENS_PER_S = 20.0  # faster than any platform budget, as a real model streams
KEY = "bench-key"


@dataclass
class Run:
    first_visible_ms: float
    updates: int
    allowed: int
    calls: int
    limited: int


def allowed_calls(limits: PaceLimits, seconds: float) -> int:
    """The most calls ``limits`` allow in ``seconds``, sent as early as allowed."""
    now = 0.0
    gate = ChatGate(limits, clock=lambda: now)
    calls = 0
    while (delay := gate.delay()) + now <= seconds:
        now += delay
        gate.record()
        calls += 1
    return calls


def stream_script(seconds: float, gate: asyncio.Event) -> tuple[str, Script]:
    tokens = int(seconds * TOKENS_PER_S)
    reply = "".join(f"tok{i} " for i in range(tokens))
    size = len(reply) // tokens + 1
    return reply, Script(reply=reply, chunk_chars=size, delay_s=1 / TOKENS_PER_S, gate=gate)


async def telegram_reply(
    tg: FakeTelegram, kamiya: FakeKamiya, chat: int, seconds: float, limits: PaceLimits
) -> Run:
    gate = asyncio.Event()
    reply, script = stream_script(seconds, gate)
    kamiya.enqueue(script)
    before = len(tg.calls)
    tg.private_message(tg.user(chat), "benchmark")
    await tg.wait_for(lambda f: any(c.method == "sendChatAction" for c in f.calls[before:]))
    loop = asyncio.get_running_loop()
    released = loop.time()
    gate.set()
    await tg.wait_for(
        lambda f: f.visible_texts(chat)[-1:] == [reply.strip()], timeout=seconds * 3 + 10
    )
    finished = kamiya.requests[-1].finished or loop.time()
    calls = [c for c in tg.calls[before:] if c.method != "getUpdates"]
    shown = [
        c.at
        for c in calls
        if c.ok
        and c.method in ("sendMessage", "editMessageText", "sendMessageDraft")
        and c.params.get("text")
    ]
    return Run(
        first_visible_ms=(shown[0] - released) * 1000,
        updates=sum(t <= finished for t in shown),
        allowed=allowed_calls(limits, finished - released),
        calls=len(calls),
        limited=sum(c.status == 429 for c in calls),
    )


async def telegram(repeats: int, seconds: float) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {}
    for mode in ("draft", "edit"):
        with tempfile.TemporaryDirectory() as folder:
            async with FakeKamiya(api_key=KEY) as kamiya, FakeTelegram() as tg:
                config = telegram_harness.write_config(
                    Path(folder),
                    kamiya_url=kamiya.base_url,
                    telegram_url=tg.base_url,
                    key=KEY,
                    extra=f'stream_mode = "{mode}"',
                )
                s = config.telegram
                limits = PaceLimits(s.per_chat_per_s, s.per_chat_burst)
                async with telegram_harness.running_bot(config):
                    results[mode] = [
                        await telegram_reply(tg, kamiya, 5000 + i, seconds, limits)
                        for i in range(repeats)
                    ]
    return results


async def discord_reply(
    dc: FakeDiscord, kamiya: FakeKamiya, channel: int, seconds: float, limits: PaceLimits
) -> Run:
    gate = asyncio.Event()
    reply, script = stream_script(seconds, gate)
    kamiya.enqueue(script)
    before = len(dc.calls)
    interaction = dc.slash("chat", {"prompt": "benchmark"}, channel_id=channel)
    await dc.wait_for(lambda f: interaction.deferred)
    loop = asyncio.get_running_loop()
    released = loop.time()
    gate.set()
    await dc.wait_for(
        lambda f: (interaction.original or "").endswith(reply.strip()), timeout=seconds * 3 + 10
    )
    finished = kamiya.requests[-1].finished or loop.time()
    edits = [r.at for r in interaction.original_history if r.action == "edit"]
    calls = dc.calls[before:]
    return Run(
        first_visible_ms=(edits[0] - released) * 1000,
        updates=sum(t <= finished for t in edits),
        allowed=allowed_calls(limits, finished - released),
        calls=len(calls),
        limited=sum(c.status == 429 for c in calls),
    )


async def discord(repeats: int, seconds: float) -> dict[str, list[Run]]:
    channels = tuple(Channel(CHANNEL_ID + i, f"bench-{i}") for i in range(repeats))
    with tempfile.TemporaryDirectory() as folder:
        async with (
            FakeKamiya(api_key=KEY) as kamiya,
            FakeDiscord(
                discord_harness.TOKEN,
                guilds=(Guild(GUILD_ID, "bench", channels),),
                limits=DiscordLimits.observed(),
            ) as dc,
        ):
            with dc.patched():
                config = discord_harness.write_config(
                    Path(folder), kamiya_url=kamiya.base_url, key=KEY
                )
                s = config.discord
                limits = PaceLimits(
                    per_second=1 / s.min_edit_interval_s,
                    burst=2,
                    window_calls=s.edits_per_window,
                    window_s=s.edit_window_s,
                )
                async with discord_harness.running_bot(config):
                    runs = [
                        await discord_reply(dc, kamiya, channel.id, seconds, limits)
                        for channel in channels
                    ]
    return {"edit": runs}


def report(platform: str, results: dict[str, list[Run]], repeats: int, seconds: float) -> None:
    median = statistics.median
    print(f"{platform}: medians of {repeats} replies, {seconds:g} s of tokens each")
    print(
        f"{'mode':<6} {'first_visible_ms':>16} {'updates':>8} {'allowed':>8} {'budget%':>8} "
        f"{'calls':>6} {'429s':>5}"
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
        f"first_visible_ms_{mode}": f"{median([r.first_visible_ms for r in runs]):.1f}"
        for mode, runs in results.items()
    }
    figures |= {
        "budget_used_pct": f"{median([100 * min(1.0, r.updates / r.allowed) for r in every]):.1f}",
        "steady_429": str(sum(r.limited for r in every)),
        "calls_per_reply": f"{median([r.calls for r in every]):.1f}",
    }
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--platform", choices=["telegram", "discord"], default="telegram")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each stream")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    run = telegram if args.platform == "telegram" else discord
    report(args.platform, await run(args.repeats, args.seconds), args.repeats, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
