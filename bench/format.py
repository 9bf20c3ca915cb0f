"""Formatting cost: Markdown → Telegram entities and 4096-unit chunks for a ~9,000-char reply.

Called once per visible streaming update (about one a second per chat), so milliseconds matter
only in aggregate. Prints medians of repeats. Run: ``python -m bench.format [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING

from bots.telegram.format import render, split
from tests.bots.test_telegram_format import long_reply

if TYPE_CHECKING:
    from collections.abc import Callable


def timed(repeats: int, job: Callable[[], object]) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        job()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    reply = long_reply()
    figures = {
        "render_ms": timed(args.repeats, lambda: render(reply)),
        "render_partial_ms": timed(args.repeats, lambda: render(reply, partial=True)),
        "split_ms": timed(args.repeats, lambda: split(reply)),
        "split_partial_ms": timed(args.repeats, lambda: split(reply, partial=True)),
    }
    print(f"reply: {len(reply)} characters, {len(split(reply))} messages")
    print(" ".join(f"{key}={value:.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
