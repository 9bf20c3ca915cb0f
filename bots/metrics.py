"""``core.Observer`` on prometheus-client: counters, histograms, and gauges read when scraped.

Everything lives in the ``CollectorRegistry`` handed in (built by ``bots.cli``), never in
prometheus-client's global one, so two bots in one test process count apart. The gauges are a
collector that calls core's readers at scrape time: the hot path updates nothing for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["PrometheusObserver"]

# Seconds; a first token is usually under 2 s, a long queue for the bot-wide cap can add more.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0)


class PrometheusObserver:
    """The ``kamiya_bot_*`` metrics; see README "Operations" for the list."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._replies = Counter(
            "kamiya_bot_replies",
            "Turns ended, by platform and outcome: ok, or the failure kind "
            "(stopped, interrupted, busy, upstream, rate_limited, storage, ...)",
            ["platform", "outcome"],
            registry=registry,
        )
        self._errors = Counter(
            "kamiya_bot_kamiya_errors",
            "Failed Kamiya requests (retried ones too), by core.errors class",
            ["error"],
            registry=registry,
        )
        self._first_token = Histogram(
            "kamiya_bot_first_token_seconds",
            "From asking Kamiya to the reply's first text arriving",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._first_visible = Histogram(
            "kamiya_bot_first_visible_seconds",
            "From asking Kamiya to the first platform call that showed the reply's text",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._limited = Counter(
            "kamiya_bot_platform_429",
            "429 answers of a platform that held a chat back",
            ["platform"],
            registry=registry,
        )
        self._gauges = _Gauges()
        registry.register(self._gauges)

    def replied(self, platform: str, outcome: str) -> None:
        self._replies.labels(platform, outcome).inc()

    def kamiya_error(self, error: str) -> None:
        self._errors.labels(error).inc()

    def first_token(self, platform: str, seconds: float) -> None:
        self._first_token.labels(platform).observe(seconds)

    def first_visible(self, platform: str, seconds: float) -> None:
        self._first_visible.labels(platform).observe(seconds)

    def rate_limited(self, platform: str) -> None:
        self._limited.labels(platform).inc()

    def watch_streams(self, read: Callable[[], int]) -> None:
        self._gauges.streams = read

    def watch_queued(self, read: Callable[[], int]) -> None:
        self._gauges.queued = read

    def watch_cap_waiting(self, platform: str, read: Callable[[], int]) -> None:
        self._gauges.cap_waiting[platform] = read


def _zero() -> int:
    return 0


class _Gauges(Collector):
    """The gauges, each read from core when scraped (the last reader handed in wins)."""

    def __init__(self) -> None:
        self.streams: Callable[[], int] = _zero
        self.queued: Callable[[], int] = _zero
        self.cap_waiting: dict[str, Callable[[], int]] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families(read=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(read=True)

    def _families(self, *, read: bool) -> list[Metric]:
        streams = GaugeMetricFamily(
            "kamiya_bot_streams_in_flight", "Kamiya streams holding a slot now"
        )
        queued = GaugeMetricFamily(
            "kamiya_bot_queued_messages",
            "Messages waiting behind another turn of their chat, over all chats",
        )
        waiting = GaugeMetricFamily(
            "kamiya_bot_chats_waiting_for_cap",
            "Chats waiting for a slot of the platform's bot-wide call cap",
            labels=["platform"],
        )
        if read:
            streams.add_metric([], self.streams())
            queued.add_metric([], self.queued())
            for platform, count in sorted(self.cap_waiting.items()):
                waiting.add_metric([platform], count())
        return [streams, queued, waiting]
