"""Issue 7 in core: first-byte retries (bounded, Retry-After honoured) and the bot-wide bound
on concurrent Kamiya streams, over the real client and the fake Kamiya."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from core.conversations import Conversations
from core.errors import IncompleteStream, RateLimited, Unreachable, UpstreamFailure
from core.fake_kamiya import Script
from core.frontend import ChatKey
from core.retries import RetryPolicy, first_byte_backoff
from storage import MemoryStore
from tests.core.recording import RecordingSink
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


CHAT = ChatKey("telegram", "7")
FAST = RetryPolicy(retries=2, wait_s=0.01, max_s=0.5)


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    async with MemoryStore() as opened:
        yield opened


async def ask(conv: Conversations, text: str, chat: ChatKey = CHAT) -> RecordingSink:
    sink = RecordingSink()
    await conv.ask(chat, text, sink, user_id="u")
    return sink


@pytest.mark.parametrize(
    "fault",
    [
        Script(status=429, headers={"Retry-After": "0.05"}),
        Script(status=429),
        Script(status=500),
        Script(status=502, body="<html>Bad Gateway</html>"),
    ],
)
async def test_429_and_5xx_before_the_first_byte_are_retried(client, fake, store, fault):
    fake.enqueue(fault, Script(reply="fine now"))
    async with Conversations(client, store, titles=False, retries=FAST) as conv:
        sink = await ask(conv, "hi")
    assert sink.reply is not None
    assert sink.reply.text == "fine now"
    assert len(fake.requests) == 2
    assert "failed" not in sink.calls


async def test_retries_are_bounded_then_the_user_is_told(client, fake, store):
    fake.enqueue(*[Script(status=503)] * 5)
    async with Conversations(client, store, titles=False, retries=FAST) as conv:
        sink = await ask(conv, "hi")
    assert sink.failure is not None
    assert sink.failure.kind == "upstream"
    assert len(fake.requests) == 3  # one try and two retries


async def test_retry_after_is_waited_for(client, fake, store):
    fake.enqueue(Script(status=429, headers={"Retry-After": "0.3"}), Script(reply="ok"))
    async with Conversations(client, store, titles=False, retries=FAST) as conv:
        began = time.monotonic()
        sink = await ask(conv, "hi")
    assert sink.reply is not None
    gap = fake.requests[1].started - fake.requests[0].started
    assert gap >= 0.3
    assert time.monotonic() - began >= 0.3


async def test_a_fault_after_text_was_shown_is_never_retried(client, fake, store):
    fake.enqueue(Script(reply="one two three four", chunk_chars=4, drop_after=2))
    async with Conversations(client, store, titles=False, retries=FAST) as conv:
        sink = await ask(conv, "hi")
    assert sink.failure is not None
    assert sink.failure.kind == "incomplete"
    assert len(fake.requests) == 1


async def test_client_errors_are_not_retried(client, fake, store):
    fake.enqueue(Script(status=402), Script(reply="never"))
    async with Conversations(client, store, titles=False, retries=FAST) as conv:
        sink = await ask(conv, "hi")
    assert sink.failure is not None
    assert sink.failure.kind == "out_of_credit"
    assert len(fake.requests) == 1


def test_backoff_rules() -> None:
    assert first_byte_backoff(RateLimited("busy", retry_after=99.0), 10.0) == 10.0
    assert first_byte_backoff(RateLimited("busy"), 10.0) is True
    assert first_byte_backoff(Unreachable("refused"), 10.0) is True
    assert first_byte_backoff(UpstreamFailure("bad", status=503), 10.0) is True
    assert first_byte_backoff(UpstreamFailure("slow"), 10.0) is False  # a timeout
    assert first_byte_backoff(UpstreamFailure("odd", status=418), 10.0) is False
    assert first_byte_backoff(IncompleteStream("cut"), 10.0) is False


async def test_streams_beyond_the_bound_wait_and_are_told(client, fake, store):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="first", gate=gate), Script(reply="second"))
    async with Conversations(client, store, titles=False, max_streams=1) as conv:
        one = RecordingSink()
        two = RecordingSink()
        first = asyncio.create_task(conv.ask(ChatKey("t", "1"), "a", one))
        await fake.wait_for_requests(1)
        second = asyncio.create_task(conv.ask(ChatKey("t", "2"), "b", two))
        await until(lambda: "busy" in two.calls)
        assert len(fake.requests) == 1  # the second waits for a slot, not for Kamiya
        gate.set()
        await asyncio.gather(first, second)
    assert one.reply is not None
    assert two.reply is not None
    assert fake.max_in_flight == 1
    assert "busy" not in one.calls
