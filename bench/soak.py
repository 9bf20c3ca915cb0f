"""Soak: N chats streaming without pause for M minutes; does the bot's memory or fd count grow?

The same bot and world as ``bench.load`` (``bench.rig``, ``bench.world``), but every chat
writes again as soon as its reply is final, until ``--minutes`` have passed. The bot process'
resident memory (VmRSS) and open file descriptors (``/proc/self/fd``) are sampled every
``--every`` seconds; after the first minute (warm-up: pools, caches and the SQLite page cache
fill) a least-squares line through the samples gives the growth per minute.

Ends with ``minutes=… rss_start_mb=… rss_end_mb=… rss_slope_mb_per_min=… fds_start=…
fds_end=…`` (start: the first sample after warm-up; end: the last before the users stop).
Run: ``python -m bench.soak [--chats 100] [--minutes 10]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.rig import (
    Arrivals,
    Meter,
    prepare_process,
    running_bot,
    streams_for,
    world,
    write_config,
)
from bench.world import WorldOptions
from bots import loop

WARMUP_S = 60.0


async def run(options: WorldOptions, every: float, *, memory: bool = False) -> None:
    arrivals = Arrivals(keep=False)  # keeping every delta's time would be a leak of our own
    with tempfile.TemporaryDirectory() as folder:
        async with world(options) as users:
            config = write_config(
                Path(folder),
                kamiya_url=users.kamiya_url,
                telegram_url=users.telegram_url,
                streams=streams_for(options.chats),
            )
            async with running_bot(config, arrivals, memory=memory), Meter(every) as meter:
                began = time.monotonic()
                report = await users.run()
    minutes = options.minutes or 0.0
    stop = began + minutes * 60
    steady = [s for s in meter.samples if began + WARMUP_S <= s[0] <= stop]
    if len(steady) < 2:
        raise SystemExit("too short: no samples after the warm-up minute")
    at = [(s[0] - began) / 60 for s in steady]
    rss = [s[2] for s in steady]
    fds = [s[3] for s in steady]
    rss_fit = statistics.linear_regression(at, rss)
    fds_fit = statistics.linear_regression(at, [float(f) for f in fds])
    cpu = steady[-1][1] - steady[0][1]
    wall = steady[-1][0] - steady[0][0]
    print(
        f"chats={options.chats} replies={report.replies} exact={report.exact}/{report.replies} "
        f"deltas={arrivals.count} r429={len(report.limited)} cpu_cores={cpu / wall:.2f} "
        f"samples={len(steady)} rss_max_mb={max(rss):.1f} fds_max={max(fds)} "
        f"fds_slope_per_min={fds_fit.slope:.2f}"
    )
    by_minute: dict[int, float] = {}
    for s in meter.samples:
        by_minute[int((s[0] - began) // 60)] = s[2]  # the minute's last sample
    print("rss_mb_by_minute " + " ".join(f"{m}:{v:.1f}" for m, v in sorted(by_minute.items())))
    print(
        f"minutes={minutes:g} rss_start_mb={rss[0]:.1f} rss_end_mb={rss[-1]:.1f} "
        f"rss_slope_mb_per_min={rss_fit.slope:.2f} fds_start={fds[0]} fds_end={fds[-1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--groups", type=float, default=0.2, help="share of group chats")
    parser.add_argument("--rate", type=float, default=25.0, help="Kamiya tokens/s per reply")
    parser.add_argument(
        "--store",
        choices=["sqlite", "memory"],
        default="sqlite",
        help="memory: no database, to see its share of the figures",
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING)
    options = WorldOptions(
        chats=args.chats, groups=args.groups, rate=args.rate, minutes=args.minutes
    )
    prepare_process(options.chats)
    loop.run(run(options, args.every, memory=args.store == "memory"))


if __name__ == "__main__":
    main()
