"""What core tells its ``Observer``: each turn's outcome, each failed Kamiya attempt, the
gauges' readers; and the turn's trace (chat, request id) where the turn's code runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from core.conversations import Conversations
from core.fake_kamiya import Script
from core.frontend import ChatKey
from core.observe import NullObserver, current_trace
from core.retries import RetryPolicy
from storage import MemoryStore
from tests.core.recording import RecordingSink
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from core.client import KamiyaClient

CHAT = ChatKey("telegram", "100")


class Recording(NullObserver):
    """The memory backend: events counted, gauge readers kept."""

    def __init__(self) -> None:
        self.replies: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()
        self.streams: Callable[[], int] = lambda: -1
        self.queued: Callable[[], int] = lambda: -1

    def replied(self, platform: str, outcome: str) -> None:
        self.replies[platform, outcome] += 1

    def kamiya_error(self, error: str) -> None:
        self.errors[error] += 1

    def watch_streams(self, read: Callable[[], int]) -> None:
        self.streams = read

    def watch_queued(self, read: Callable[[], int]) -> None:
        self.queued = read


class TracingSink(RecordingSink):
    """Notes the trace current when core calls ``started``."""

    trace: tuple[str, str] | None = None

    async def started(self) -> None:
        trace = current_trace()
        assert trace is not None
        self.trace = (trace.chat, trace.request_id)
        await super().started()


@pytest.fixture
def observer() -> Recording:
    return Recording()


@pytest.fixture
async def conversations(client: KamiyaClient, observer: Recording) -> AsyncIterator[Conversations]:
    retries = RetryPolicy(1, wait_s=0.01, max_s=0.01)
    async with Conversations(
        client, MemoryStore(), titles=False, observer=observer, retries=retries
    ) as adapter:
        yield adapter


async def test_outcomes_and_every_failed_attempt_are_reported(conversations, fake, observer):
    fake.enqueue(Script(status=502))  # retried once, then answered
    fake.enqueue(Script(reply="fine"))
    fake.enqueue(Script(status=500))
    fake.enqueue(Script(status=500))  # retried once, and failed again
    await conversations.ask(CHAT, "one", RecordingSink())
    await conversations.ask(CHAT, "two", RecordingSink())
    assert observer.replies == {("telegram", "ok"): 1, ("telegram", "upstream"): 1}
    assert observer.errors == {"UpstreamFailure": 3}


async def test_stopped_interrupted_and_busy_turns_are_reported_by_kind(
    conversations, fake, observer
):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="never shown", gate=gate))
    stopped = asyncio.create_task(conversations.ask(CHAT, "a", RecordingSink(), turn_id="t1"))
    await fake.wait_for_requests(1)
    assert conversations.stop("t1")
    await stopped
    fake.enqueue(Script(reply="never shown", gate=gate))
    cut = asyncio.create_task(conversations.ask(CHAT, "b", RecordingSink()))
    await fake.wait_for_requests(2)
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    assert observer.replies == {("telegram", "stopped"): 1, ("telegram", "interrupted"): 1}


async def test_gauges_read_streams_in_flight_and_messages_queued(conversations, fake, observer):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="first", gate=gate))
    assert (observer.streams(), observer.queued()) == (0, 0)
    first = asyncio.create_task(conversations.ask(CHAT, "a", RecordingSink()))
    await fake.wait_for_requests(1)
    second_sink = RecordingSink()
    second = asyncio.create_task(conversations.ask(CHAT, "b", second_sink))
    await until(lambda: second_sink.queued_ahead == [1])
    assert (observer.streams(), observer.queued()) == (1, 1)
    gate.set()
    await asyncio.gather(first, second)
    assert (observer.streams(), observer.queued()) == (0, 0)


async def test_each_turn_has_its_own_request_id_sent_to_kamiya(conversations, fake):
    sinks = [TracingSink(), TracingSink()]
    for sink in sinks:
        await conversations.ask(CHAT, "hi", sink)
    traces = [sink.trace for sink in sinks]
    assert [trace[0] for trace in traces if trace] == ["telegram:100", "telegram:100"]
    ids = [trace[1] for trace in traces if trace]
    assert len(set(ids)) == 2
    assert [request.request_id for request in fake.requests] == ids
    assert current_trace() is None  # nothing left behind in the caller's context
