"""The adapter over the real client, fake Kamiya and real SQLite: ids, order, faults, titles.

The tests about what is stored (ids, resets, restarts, usage, cancellation) run on PostgreSQL
too (``on_each_database``).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest

from core.conversations import Conversations
from core.fake_kamiya import Script
from core.frontend import ChatKey, Failure, Reply
from storage import MemoryStore, SqlStore
from tests.core.recording import RecordingSink
from tests.pg import on_each_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from core.client import KamiyaClient
    from tests.pg import SqlTarget

CHAT = ChatKey("telegram", "100")


@pytest.fixture
async def store(database: SqlTarget | None) -> AsyncIterator[SqlStore]:
    assert database is not None
    async with await database.open() as opened:
        yield opened


@pytest.fixture
async def conversations(client: KamiyaClient, store: SqlStore) -> AsyncIterator[Conversations]:
    async with Conversations(client, store, titles=False) as adapter:
        yield adapter


async def ask(conversations: Conversations, text: str, chat: ChatKey = CHAT) -> RecordingSink:
    sink = RecordingSink()
    await conversations.ask(chat, text, sink, user_id="u1")
    return sink


@on_each_database()
async def test_first_message_has_no_id_and_later_ones_carry_the_stored_id(
    conversations, fake, store
):
    first = await ask(conversations, "hello")
    assert first.reply is not None
    assert first.reply.new_conversation
    assert "conversationId" not in fake.requests[0].json
    assert await store.current(str(CHAT)) == first.reply.conversation_id
    second = await ask(conversations, "again")
    assert second.reply is not None
    assert not second.reply.new_conversation
    assert fake.requests[1].json["conversationId"] == first.reply.conversation_id


async def test_sink_sees_started_growing_progress_then_finished(conversations, fake):
    fake.enqueue(Script(reply="one two three four", chunk_chars=4))
    sink = await ask(conversations, "x")
    assert sink.calls[0] == "started"
    assert sink.calls[-1] == "finished"
    texts = sink.progress_texts
    assert texts == sorted(texts, key=len)
    assert texts[-1] == "one two three four"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))


async def test_full_content_is_the_final_text(conversations, fake):
    fake.enqueue(Script(reply="draft", full_content="Billed final text"))
    sink = await ask(conversations, "x")
    assert sink.reply is not None
    assert sink.reply.text == "Billed final text"


@on_each_database()
async def test_reset_starts_fresh_and_keeps_the_old_one_in_history(conversations, fake, store):
    old = (await ask(conversations, "first")).reply
    assert old is not None
    await conversations.reset(CHAT)
    assert await store.current(str(CHAT)) is None
    new = (await ask(conversations, "second")).reply
    assert new is not None
    assert "conversationId" not in fake.requests[1].json
    assert new.conversation_id != old.conversation_id
    history = [e.record.conversation_id for e in await conversations.history(CHAT)]
    assert history == [new.conversation_id, old.conversation_id]


async def test_conversation_survives_a_restart(client, fake, sql_target):
    async with await sql_target.open() as store, Conversations(client, store) as adapter:
        first = (await ask(adapter, "remember me")).reply
    assert first is not None
    async with await sql_target.open() as store, Conversations(client, store) as adapter:
        await ask(adapter, "still there?")
    assert fake.requests[-1].json["conversationId"] == first.conversation_id


async def test_rapid_messages_in_one_chat_run_in_order_while_other_chats_run_in_parallel(
    conversations, fake
):
    gate = asyncio.Event()
    first = await ask(conversations, "open")  # the chat now has a stored id
    assert first.reply is not None
    fake.enqueue(*(Script(reply=f"r{i}", gate=gate) for i in range(5)))
    chat_a, chat_b = ChatKey("telegram", "200"), ChatKey("discord", "300", "7")
    sinks = [RecordingSink() for _ in range(5)]
    tasks = [
        asyncio.create_task(conversations.ask(CHAT, f"m{i}", sinks[i], user_id="u1"))
        for i in range(3)
    ]
    tasks.append(asyncio.create_task(conversations.ask(chat_a, "a", sinks[3])))
    tasks.append(asyncio.create_task(conversations.ask(chat_b, "b", sinks[4])))
    # The first of CHAT and both other chats are in flight together; m1 and m2 wait.
    await fake.wait_for_requests(1 + 3)
    assert fake.in_flight == 3
    assert sinks[1].queued_ahead == [1]
    assert sinks[2].queued_ahead == [2]
    gate.set()
    await asyncio.gather(*tasks)
    chat_requests = [r for r in fake.requests if r.json.get("content", "").startswith("m")]
    assert [r.json["content"] for r in chat_requests] == ["m0", "m1", "m2"]
    assert fake.overlaps == []
    for earlier, later in itertools.pairwise(chat_requests):
        assert earlier.finished is not None
        assert earlier.finished <= later.started
    assert all(s.reply is not None for s in sinks)


async def test_queue_bound_tells_the_user_to_wait(client, store, fake):
    gate = asyncio.Event()
    fake.enqueue(*(Script(gate=gate) for _ in range(3)))
    async with Conversations(client, store, max_pending=2, titles=False) as adapter:
        tasks = [
            asyncio.create_task(adapter.ask(CHAT, f"m{i}", RecordingSink())) for i in range(3)
        ]
        await fake.wait_for_requests(1)
        assert adapter.pending(CHAT) == 3
        refused = await ask(adapter, "one too many")
        gate.set()
        await asyncio.gather(*tasks)
    assert refused.failure == Failure("busy")
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (Script(status=401), "bad_key"),
        (Script(status=402), "out_of_credit"),
        (Script(status=403), "no_permission"),
        (Script(status=429, headers={"Retry-After": "3"}), "rate_limited"),
        (Script(status=500), "upstream"),
        (Script(reply="cut short reply", chunk_chars=3, drop_after=2), "incomplete"),
        (Script(reply="no done", no_done=True), "incomplete"),
        (Script(reply="no info", no_kamiya_info=True), "incomplete"),
        (Script(reply="garbled", malformed=True), "malformed"),
    ],
)
async def test_each_fault_fails_the_turn_and_leaves_the_stored_id(
    conversations, fake, store, script, kind
):
    before = (await ask(conversations, "set up")).reply
    assert before is not None
    fake.enqueue(script)
    sink = await ask(conversations, "this one fails")
    assert sink.failure is not None
    assert sink.failure.kind == kind
    assert sink.calls[-1] == "failed"
    assert await store.current(str(CHAT)) == before.conversation_id
    if kind == "incomplete" and script.drop_after:
        assert sink.failure.partial == sink.progress_texts[-1]
    if kind == "rate_limited":
        assert sink.failure.retry_after == 3
    usage = await store.usage(str(CHAT))
    assert usage[0].requests == 1  # only the completed turn is counted


@on_each_database()
async def test_expired_id_restarts_once_and_says_so(conversations, fake, store):
    old = (await ask(conversations, "first")).reply
    assert old is not None
    fake.forget(old.conversation_id)
    sink = await ask(conversations, "after 48 hours")
    assert sink.reply is not None
    assert sink.reply.context_expired
    assert sink.reply.conversation_id != old.conversation_id
    assert [r.json.get("conversationId") for r in fake.requests[1:]] == [old.conversation_id, None]
    assert await store.current(str(CHAT)) == sink.reply.conversation_id


async def test_expired_id_whose_restart_also_fails_keeps_the_old_id(conversations, fake, store):
    old = (await ask(conversations, "first")).reply
    assert old is not None
    fake.forget(old.conversation_id)
    fake.enqueue(Script(status=404, body={"error": {"message": "conversation not found"}}))
    fake.enqueue(Script(status=500))
    sink = await ask(conversations, "again")
    assert sink.failure is not None
    assert len(fake.requests) == 3  # one try with the old id, exactly one restart
    assert await store.current(str(CHAT)) == old.conversation_id


@on_each_database()
async def test_a_different_id_in_kamiya_info_replaces_the_stored_one(conversations, fake, store):
    old = (await ask(conversations, "first")).reply
    assert old is not None
    fake.enqueue(Script(conversation_id="server-moved-us"))
    sink = await ask(conversations, "second")
    assert sink.reply == Reply(sink.reply.text, "server-moved-us", True, True)  # type: ignore[union-attr]
    assert await store.current(str(CHAT)) == "server-moved-us"


async def test_a_failing_sink_does_not_lose_the_turn(conversations, fake, store):
    class Broken(RecordingSink):
        async def progress(self, text: str) -> None:
            raise RuntimeError("platform down")

    sink = Broken()
    await conversations.ask(CHAT, "x", sink)
    assert sink.reply is not None
    assert await store.current(str(CHAT)) == sink.reply.conversation_id


@on_each_database()
async def test_usage_counts_billed_characters_per_user(conversations, fake, store):
    fake.enqueue(Script(reply="12345"), Script(reply="abc", full_content="abcdefgh"))
    await ask(conversations, "a")
    await ask(conversations, "b")
    usage = await store.usage(str(CHAT))
    assert [(u.user_id, u.billed_chars, u.requests) for u in usage] == [("u1", 13, 2)]


async def test_title_is_generated_in_the_background_in_the_conversation_language(client, fake):
    store = MemoryStore()
    async with Conversations(client, store) as adapter:
        sink = await ask(adapter, "你好，请介绍一下长城")
        await adapter.wait_background()
    assert sink.reply is not None
    record = await store.conversation(sink.reply.conversation_id)
    assert record is not None
    assert record.title
    title_request = fake.requests[-1]
    assert title_request.path.endswith("/chat/completions")
    prompt = title_request.json["messages"][0]["content"]
    assert prompt.startswith("Generate a title in less than 6 words")
    assert "(language: zh-CN)" in prompt
    assert "stream" not in title_request.json


async def test_title_never_delays_the_reply(client, fake):
    gate = asyncio.Event()
    fake.enqueue(Script(gate=gate), endpoint="completions")  # the title call hangs
    store = MemoryStore()
    async with Conversations(client, store) as adapter:
        sink = await ask(adapter, "hello there")
        assert sink.reply is not None  # returned while the title is still pending
        second = await ask(adapter, "next")
        assert second.reply is not None
        gate.set()
        await adapter.wait_background()


async def test_failed_title_falls_back_to_the_first_words(client, fake):
    fake.enqueue(Script(status=500), endpoint="completions")
    store = MemoryStore()
    async with Conversations(client, store) as adapter:
        sink = await ask(adapter, "please explain how lighthouses work at night in fog")
        await adapter.wait_background()
    assert sink.reply is not None
    record = await store.conversation(sink.reply.conversation_id)
    assert record is not None
    assert record.title == "please explain how lighthouses work at…"


async def test_no_title_for_a_continued_conversation(client, fake):
    store = MemoryStore()
    async with Conversations(client, store) as adapter:
        await ask(adapter, "one")
        await adapter.wait_background()
        count = len(fake.requests)
        await ask(adapter, "two")
        await adapter.wait_background()
    assert len(fake.requests) == count + 1


@on_each_database()
async def test_reset_waits_for_the_turn_in_flight(conversations, fake, store):
    gate = asyncio.Event()
    fake.enqueue(Script(gate=gate))
    turn = asyncio.create_task(conversations.ask(CHAT, "slow", RecordingSink()))
    await fake.wait_for_requests(1)
    reset = asyncio.create_task(conversations.reset(CHAT))
    gate.set()
    await asyncio.gather(turn, reset)
    assert await store.current(str(CHAT)) is None  # the reset came last, so it wins


@on_each_database()
async def test_a_cancelled_turn_tells_the_sink_and_keeps_the_stored_id(conversations, fake, store):
    first = (await ask(conversations, "first")).reply
    assert first is not None
    gate = asyncio.Event()
    fake.enqueue(Script(reply="partial then nothing", chunk_chars=4, gate=gate))
    sink = RecordingSink()
    turn = asyncio.create_task(conversations.ask(CHAT, "doomed", sink))
    await fake.wait_for_requests(2)
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert sink.failure is not None
    assert sink.failure.kind == "interrupted"
    assert await store.current(str(CHAT)) == first.conversation_id


@pytest.mark.parametrize("status", [400, 500])
async def test_any_error_naming_the_conversation_restarts_it(conversations, fake, store, status):
    old = (await ask(conversations, "first")).reply
    assert old is not None
    fake.enqueue(Script(status=status, body={"error": {"message": "Conversation not found"}}))
    sink = await ask(conversations, "again")
    assert sink.reply is not None
    assert sink.reply.context_expired
    assert [r.json.get("conversationId") for r in fake.requests[1:]] == [old.conversation_id, None]
