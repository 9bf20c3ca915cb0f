"""Three "processes" (``Conversations`` each on its own ``SqlStore``) share one PostgreSQL
schema and one fake Kamiya: one chat's messages spread over them are answered one at a time, in
the order they arrived, each continuing the conversation the previous one left; other chats go
in parallel. Subprocess bots behind webhooks are tested in tests/bots; this is the core path."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from core.conversations import Conversations
from core.fake_kamiya import Script
from core.frontend import ChatKey
from tests.core.recording import RecordingSink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from core.client import KamiyaClient
    from core.fake_kamiya import FakeKamiya, RecordedRequest
    from storage import SqlStore
    from tests.pg import SqlTarget

CHAT = ChatKey("telegram", "100")


@asynccontextmanager
async def processes(
    target: SqlTarget, client: KamiyaClient, n: int = 3
) -> AsyncIterator[tuple[list[Conversations], list[SqlStore]]]:
    """``n`` "processes": a ``Conversations`` on a store of its own each, one database."""
    stores = [await target.open() for _ in range(n)]
    try:
        yield [Conversations(client, store, titles=False) for store in stores], stores
    finally:
        for store in stores:
            await store.aclose()


def _overlap(requests: list[RecordedRequest]) -> bool:
    ordered = sorted(requests, key=lambda r: r.started)
    return any(
        later.started < (earlier.finished or float("inf"))
        for earlier, later in itertools.pairwise(ordered)
    )


async def test_one_chat_over_three_processes_is_answered_in_order(
    client: KamiyaClient,
    fake: FakeKamiya,
    postgresql_target: SqlTarget,
) -> None:
    fake.default_script = Script(chunk_chars=3, delay_s=0.005)
    async with processes(postgresql_target, client) as (conversations, _):
        sinks, turns = [], []
        for n in range(9):
            sink = RecordingSink()
            placed = asyncio.Event()
            turns.append(
                asyncio.create_task(
                    conversations[n % 3].ask(
                        CHAT, f"message {n}", sink, user_id="u", placed=placed.set
                    )
                )
            )
            sinks.append(sink)
            # The platform's acknowledgement of message n, before message n + 1 is sent.
            await asyncio.wait_for(placed.wait(), 5)
        await asyncio.wait_for(asyncio.gather(*turns), 30)

    asked = sorted(fake.requests, key=lambda r: r.started)
    assert [r.json["content"] for r in asked] == [f"message {n}" for n in range(9)]
    assert not _overlap(asked), "two Kamiya requests in flight for one conversation"
    replies = [sink.reply for sink in sinks]
    assert all(reply is not None for reply in replies)
    # Each turn continued the conversation the previous one (in another process) stored.
    for before, request in zip(replies, asked[1:], strict=False):
        assert before is not None
        assert request.json.get("conversationId") == before.conversation_id


async def test_many_chats_over_three_processes_run_in_parallel(
    client: KamiyaClient,
    fake: FakeKamiya,
    postgresql_target: SqlTarget,
) -> None:
    fake.default_script = Script(chunk_chars=3, delay_s=0.01)
    async with processes(postgresql_target, client) as (conversations, stores):
        chats = [ChatKey("telegram", str(200 + n)) for n in range(12)]
        turns = [
            conversations[(n + k) % 3].ask(chat, f"{chat} says {k}", RecordingSink(), user_id="u")
            for k in range(2)
            for n, chat in enumerate(chats)
        ]
        await asyncio.wait_for(asyncio.gather(*turns), 30)
        currents = [await stores[0].current(str(chat)) for chat in chats]

    by_chat: dict[str, list[RecordedRequest]] = {}
    for request in fake.requests:
        by_chat.setdefault(request.json["content"].split(" says ")[0], []).append(request)
    assert all(not _overlap(requests) for requests in by_chat.values())
    assert _overlap(list(fake.requests)), "chats were served one after another, not in parallel"
    assert all(current is not None for current in currents)
