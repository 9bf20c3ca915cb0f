"""Load: N chats streaming at once through one bot process, against Telegram's limits.

One bot process (the real Telegram frontend, core and a SQLite store in a temporary folder;
``bench.rig``) serves ``--chats`` chats that all write at once (``--groups`` of them groups,
the rest private chats, which stream by drafts). The fake Kamiya streams every reply at
``--rate`` tokens a second (4 characters a token; replies of 300 to 2,000 characters) and the
fake Telegram enforces 1 call/s per chat (bursts of 3), 20 a minute per group and 30 a second
bot-wide. The fakes and the users run in other processes (``bench.world``), so this process'
CPU and memory are the bot's. At 30 calls a second for the whole bot, 1,000 chats get far less
than one update a second each: that is Telegram's limit, not the bot's pace.

Figures:
- ``cpu_cores``: the bot's CPU seconds over wall seconds while Kamiya streams are in flight
  (first request to last end); ``cpu_ms_per_reply``: the bot's CPU from the first message to
  the last final text, over the replies.
  A process runs Python on one core at a time: near 1.0 it is saturated, and
  ``loop_late_ms`` (how late a 0.5 s sleep of the event loop wakes) says by how much.
- ``rss_mb``: the bot process' peak resident memory (VmHWM).
- lag: for each call that shows reply text (a draft, a sent or an edited message), the newest
  delta whose text the call contains is found (by length: replies are plain text, and every
  shown text is checked to be a prefix of its reply); lag = the call's arrival at the fake
  Telegram minus that delta's arrival in core (when the Kamiya client yields it). Only calls
  whose delta arrived while the chat's gate was open count, ``ChatGate.delay() == 0`` then
  (asked as ``ChatGate.open()``, the same answer sooner):
  its own bucket, group cap and penalty allowed a call, and so did the bot-wide cap, with no
  other chat queued ahead for it. A stream's reader rests while its chat's pace allows no
  call (``LiveRenderer.pause``); text it reads when a call's granted slot wakes it (for that
  call) counts too, from the grant, not from the read. Both times are on
  CLOCK_MONOTONIC, one clock for all processes of the machine.
  Also printed: ``pacer_to_telegram_ms``, for every call showing text, from the moment the
  reply's pacer let it go (``LiveRenderer._attempt`` starts) to its arrival at the fake: the
  bot's own share of any lag, whatever the queue for Telegram's budget was.
- ``lag_after_warmup_ms``: the same lag, for calls after ``--warmup`` seconds only (the tail
  is made while all streams start); the headline p50/p99 keep every call.
- ``r429``: 429 answers after ``--warmup`` seconds (all of them are printed too).
- ``exact``: chats whose final message is exactly the reply (``fullContent``), no Stop button.

Ends with ``chats=… cpu_cores=… rss_mb=… p50_lag_ms=… p99_lag_ms=… exact=…/… r429=…``.
Run: ``python -m bench.load [--chats 1000] [--rate 25] [--groups 0.2] [--store memory]``
(``memory``: no database, to see its share; ``postgresql``: a fresh schema on the server at
``--pg-url``, dropped afterwards: the scale-out path, every turn through the chat line of
``storage.pg_order``); the targets are
≤ 1 core, ≤ 300 MB, p99 lag ≤ 50 ms, no 429 after warm-up, every reply exact.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import DropSchema

from bench.rig import (
    Arrivals,
    Meter,
    peak_rss_mb,
    prepare_process,
    running_bot,
    streams_for,
    world,
    write_config,
)
from bench.world import WorldOptions, WorldReport
from bots import loop


def sent_at(report: WorldReport, arrivals: Arrivals) -> list[float | None]:
    """Per call at the fake, when the bot sent it: the n-th request of a chat and method the
    bot sent is the n-th the fake received (a chat's calls go one at a time)."""
    seen: dict[tuple[int, str], int] = {}
    out: list[float | None] = []
    for call in report.calls:
        key = (call.chat_id, call.method)
        index = seen.get(key, 0)
        seen[key] = index + 1
        times = arrivals.sends.get(key)
        out.append(times[index] if times is not None and index < len(times) else None)
    return out


def lags_ms(
    report: WorldReport,
    arrivals: Arrivals,
    *,
    at_send: bool = False,
    after: float = 0.0,
    worst: list[tuple[float, float, str]] | None = None,
) -> tuple[list[float], int, int]:
    """Lags of the calls that count (see the module docstring), calls showing text, and
    calls whose text was not a prefix of the reply; ``at_send``: to when the bot sent each
    call, not to its arrival at the fake; ``after``: only calls that arrived after then;
    ``worst``: gets (lag, seconds into the run, method) of each call counted."""
    lags: list[float] = []
    showing = wrong = 0
    sends = sent_at(report, arrivals) if at_send else [None] * len(report.calls)
    for call, sent in zip(report.calls, sends, strict=True):
        if call.status != 200 or call.shown <= 0 or call.at < after:
            continue
        showing += 1
        if not call.prefix:
            wrong += 1
            continue
        track = arrivals.tracks.get(call.chat_id)
        if track is None:
            continue
        newest = bisect.bisect_right(track.visible, call.shown) - 1
        if newest >= 0 and track.open[newest]:
            at = call.at if not at_send else sent
            if at is not None:
                lags.append((at - track.times[newest]) * 1000)
                if worst is not None:
                    worst.append((lags[-1], call.at - report.began, call.method))
    return lags, showing, wrong


def call_ms(report: WorldReport, arrivals: Arrivals) -> list[float]:
    """Per call showing text: from the moment the pacer let it go to its arrival at Telegram
    (the bot's own share of a lag: rendering, the Bot API request, the loop being busy)."""
    out: list[float] = []
    for call in report.calls:
        starts = arrivals.attempts.get(call.chat_id)
        if call.status != 200 or call.shown <= 0 or not starts:
            continue
        latest = bisect.bisect_right(starts, call.at) - 1
        if latest >= 0:
            out.append((call.at - starts[latest]) * 1000)
    return out


def final_delays_s(report: WorldReport, arrivals: Arrivals) -> list[float]:
    """Per chat: from the reply's last delta to the call that showed all of it."""
    delays: list[float] = []
    for chat_id, track in arrivals.tracks.items():
        full = track.visible[-1] if track.visible else 0
        shown = [
            c.at
            for c in report.calls
            if c.chat_id == chat_id and c.status == 200 and c.prefix and c.shown >= full
        ]
        if shown and track.times:
            delays.append(min(shown) - track.times[-1])
    return delays


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def peak_cores(meter: Meter, span: float = 5.0) -> float:
    """The busiest ``span`` seconds: the most CPU seconds per wall second."""
    best = 0.0
    samples = meter.samples
    for i, (t0, c0, _, _) in enumerate(samples):
        for t1, c1, _, _ in samples[i + 1 :]:
            if t1 - t0 >= span:
                best = max(best, (c1 - c0) / (t1 - t0))
                break
    return best


async def run(
    options: WorldOptions, warmup: float, *, memory: bool = False, storage: str = ""
) -> None:
    arrivals = Arrivals()
    with tempfile.TemporaryDirectory() as folder:
        async with world(options) as users:
            config = write_config(
                Path(folder),
                kamiya_url=users.kamiya_url,
                telegram_url=users.telegram_url,
                streams=streams_for(options.chats),
                storage=storage,
            )
            async with running_bot(config, arrivals, memory=memory), Meter(0.5) as meter:
                cpu0, wall0 = time.process_time(), time.monotonic()
                report = await users.run()
                cpu1, wall1 = time.process_time(), time.monotonic()
            rss = peak_rss_mb()
    streams = users.streams
    first, last = min(s for s, _ in streams), max(e for _, e in streams)
    cores = meter.cpu_between(first, last) / (last - first)
    worst: list[tuple[float, float, str]] = []  # (lag ms, s into the run, method)
    lags, showing, wrong = lags_ms(report, arrivals, worst=worst)
    sent_lags, _, _ = lags_ms(report, arrivals, at_send=True)
    settled, _, _ = lags_ms(report, arrivals, after=report.began + warmup)
    steady = sum(at > report.began + warmup for at in report.limited)
    rates = [
        (len(t.times) - 1) / (t.times[-1] - t.times[0])
        for t in arrivals.tracks.values()
        if len(t.times) > 1 and t.times[-1] > t.times[0]
    ]
    p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
    finals = final_delays_s(report, arrivals)
    going = call_ms(report, arrivals)
    print(
        f"chats={options.chats} groups={options.groups:g} replies={report.replies} "
        f"deltas={arrivals.count} tokens_per_s_per_chat={statistics.median(rates):.1f} "
        f"streaming_s={last - first:.1f} run_s={wall1 - wall0:.1f}"
    )
    print(
        f"cpu_s={cpu1 - cpu0:.1f} cpu_ms_per_reply={(cpu1 - cpu0) / report.replies * 1000:.1f} "
        f"cpu_cores_run={(cpu1 - cpu0) / (wall1 - wall0):.2f} "
        f"cpu_cores_peak5s={peak_cores(meter):.2f} "
        f"loop_late_ms_p50={percentile(meter.loop_lags, 0.5) * 1000:.0f} "
        f"loop_late_ms_max={max(meter.loop_lags, default=0) * 1000:.0f}"
    )
    print(
        f"text_calls={showing} lag_counted={len(lags)} not_prefix={wrong} "
        f"max_lag_ms={max(lags, default=float('nan')):.1f} r429_total={len(report.limited)}"
    )
    print(
        f"lag_to_send_ms p50={percentile(sent_lags, 0.5):.1f} "
        f"p99={percentile(sent_lags, 0.99):.1f} counted={len(sent_lags)} "
        f"lag_to_arrival_ms p50={percentile(lags, 0.5):.1f} p99={percentile(lags, 0.99):.1f}"
    )
    print(
        f"pacer_to_telegram_ms p50={percentile(going, 0.5):.1f} p99={percentile(going, 0.99):.1f}"
    )
    print(
        f"lag_after_warmup_ms p50={percentile(settled, 0.5):.1f} "
        f"p99={percentile(settled, 0.99):.1f} counted={len(settled)} (calls after --warmup)"
    )
    worst.sort(reverse=True)
    print("worst_lags " + " ".join(f"{lag:.0f}ms@{at:.2f}s:{how}" for lag, at, how in worst[:6]))
    starts = [start - first for start, _ in streams]
    lengths = [end - start for start, end in streams]
    print(
        f"stream_start_s p50={percentile(starts, 0.5):.2f} p90={percentile(starts, 0.9):.2f} "
        f"p99={percentile(starts, 0.99):.2f} max={max(starts):.2f} "
        f"stream_length_s p50={percentile(lengths, 0.5):.1f} max={max(lengths):.1f}"
    )
    print("bot_api_calls " + " ".join(f"{k}={v}" for k, v in sorted(report.methods.items())))
    print(
        f"final_after_last_delta_s p50={percentile(finals, 0.5):.2f} "
        f"p99={percentile(finals, 0.99):.2f} max={max(finals, default=float('nan')):.2f}"
    )
    print(
        f"chats={options.chats} cpu_cores={cores:.2f} rss_mb={rss:.0f} "
        f"p50_lag_ms={p50:.1f} p99_lag_ms={p99:.1f} "
        f"exact={report.exact}/{report.replies} r429={steady}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--groups", type=float, default=0.2, help="share of group chats")
    parser.add_argument("--rate", type=float, default=25.0, help="Kamiya tokens/s per reply")
    parser.add_argument(
        "--store",
        choices=["sqlite", "memory", "postgresql"],
        default="sqlite",
        help="memory: no database, to see its share of the figures",
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="the server for --store postgresql (a schema of its own, dropped after)",
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before steady state")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING)
    options = WorldOptions(
        chats=args.chats, groups=args.groups, rate=args.rate, timeout_s=args.timeout
    )
    prepare_process(options.chats)
    if args.store != "postgresql":
        loop.run(run(options, args.warmup, memory=args.store == "memory"))
        return
    schema = f"kb_bench_{uuid.uuid4().hex[:12]}"
    storage = f'[storage]\nurl = "{args.pg_url}"\nschema = "{schema}"\n'
    try:
        loop.run(run(options, args.warmup, storage=storage))
    finally:
        loop.run(drop_schema(args.pg_url, schema))


async def drop_schema(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(DropSchema(schema, cascade=True, if_exists=True))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
