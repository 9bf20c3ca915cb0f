"""Issue 6 in core, over the real client and the fake Kamiya: completions mode, /system,
stop, regenerate, history and resume, replies to old messages, usage and limits.

On the memory store; the tests reading back what SQL stores differently (turns replaced, bot
messages, daily usage by the injected clock) run on SQLite and PostgreSQL too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from core.conversations import Conversations
from core.fake_kamiya import COMPLETIONS_PATH, FakeKamiya, Script
from core.frontend import ChatKey, Failure
from core.texts import failure_markdown, failure_text
from storage import ChatState, ConversationStore, MemoryStore
from tests.conftest import KEY
from tests.core.recording import RecordingSink
from tests.pg import on_each_database
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from core.client import KamiyaClient
    from tests.pg import SqlTarget

CHAT = ChatKey("telegram", "100")
GPT4 = "openai:gpt-4"
MODELS = ("openai:gpt-3.5-turbo", GPT4, "anthropic:claude-1")


class Clock:
    """A settable clock, so 48-hour expiry and daily limits are tested without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def default_database() -> str:
    return "memory"


@pytest.fixture
async def store(database: SqlTarget | None) -> AsyncIterator[ConversationStore]:
    async with MemoryStore() if database is None else await database.open() as opened:
        yield opened


@pytest.fixture
def make(
    client: KamiyaClient, store: ConversationStore, clock: Clock
) -> Callable[..., Conversations]:
    def build(**options: object) -> Conversations:
        options.setdefault("titles", False)
        return Conversations(client, store, models=MODELS, clock=clock, **options)  # type: ignore[arg-type]

    return build


@pytest.fixture
async def conv(make: Callable[..., Conversations]) -> AsyncIterator[Conversations]:
    async with make() as adapter:
        yield adapter


async def ask(conv: Conversations, text: str, **kw: object) -> RecordingSink:
    sink = RecordingSink()
    await conv.ask(CHAT, text, sink, user_id="u1", **kw)  # type: ignore[arg-type]
    return sink


def completions(fake: FakeKamiya) -> list[dict[str, Any]]:
    """Bodies of the completions requests that answered users (not permission probes)."""
    return [
        r.json
        for r in fake.requests
        if r.path == COMPLETIONS_PATH and r.json.get("max_tokens") != 1
    ]


# --- models and completions mode ---------------------------------------------------------------


async def test_switch_to_a_model_streams_completions_with_history_then_back(conv, fake):
    server = (await ask(conv, "hello server")).reply
    assert server is not None
    assert server.mode == "server"
    change = await conv.set_model(CHAT, "gpt-4")
    assert (change.status, change.model) == ("ok", GPT4)

    first = (await ask(conv, "one")).reply
    second = (await ask(conv, "two")).reply
    assert first is not None
    assert second is not None
    assert (second.mode, second.model, second.turns, second.regenerable) == (
        "completions",
        GPT4,
        2,
        True,
    )
    assert second.conversation_id == first.conversation_id
    sent = completions(fake)
    assert all(body["stream"] is True and body["model"] == GPT4 for body in sent)
    assert sent[-1]["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "two"},
    ]

    back = await conv.set_model(CHAT, "default")
    assert (back.status, back.model) == ("ok", None)
    again = (await ask(conv, "back again")).reply
    assert again is not None
    assert again.mode == "server"
    # The server conversation that was left is the one continued.
    assert fake.requests[-1].json["conversationId"] == server.conversation_id
    assert again.conversation_id == server.conversation_id


async def test_a_model_the_key_may_not_use_is_refused_and_the_chat_stays(client, store, clock):
    async with FakeKamiya(api_key=KEY, allowed_models={"openai:gpt-3.5-turbo"}) as fake:
        http_client = client._http
        from core.client import KamiyaClient  # noqa: PLC0415

        other = KamiyaClient(http_client, base_url=fake.base_url, api_key=KEY)
        async with Conversations(other, store, models=MODELS, titles=False, clock=clock) as conv:
            assert (await conv.set_model(CHAT, "openai:gpt-3.5-turbo")).status == "ok"
            change = await conv.set_model(CHAT, GPT4)
            assert (change.status, change.model, change.asked) == (
                "forbidden",
                "openai:gpt-3.5-turbo",
                GPT4,
            )
            assert (await conv.settings(CHAT)).model == "openai:gpt-3.5-turbo"
            reply = (await ask(conv, "still works")).reply
            assert reply is not None
            assert reply.model == "openai:gpt-3.5-turbo"


async def test_unknown_model_names_are_refused(conv):
    change = await conv.set_model(CHAT, "gpt-9")
    assert change.status == "unknown"
    assert (await conv.settings(CHAT)).model is None


async def test_a_403_mid_use_names_the_model(conv, fake):
    await conv.set_model(CHAT, GPT4)
    fake.enqueue(Script(status=403, body={"error": "no permission"}), endpoint="completions")
    sink = await ask(conv, "x")
    assert sink.failure is not None
    assert GPT4 in failure_text(sink.failure)
    assert "/model" in failure_text(sink.failure)


async def test_system_prompt_is_sent_first_and_kept_when_history_is_trimmed(make, fake):
    async with make(history_chars=600, system_prompt="Be terse.") as conv:
        await conv.set_model(CHAT, GPT4)
        for n in range(6):
            await ask(conv, f"question {n} " + "x" * 100)
        messages = completions(fake)[-1]["messages"]
        assert messages[0] == {"role": "system", "content": "Be terse."}
        assert messages[-1]["content"].startswith("question 5")
        assert len(messages) < 1 + 2 * 5 + 1  # older turns dropped
        assert sum(len(m["content"]) for m in messages) <= 600

        view = await conv.set_system_prompt(CHAT, "Answer in French.")
        assert view.custom_prompt
        assert view.system_prompt == "Answer in French."
        await ask(conv, "bonjour")
        assert completions(fake)[-1]["messages"][0]["content"] == "Answer in French."
        view = await conv.set_system_prompt(CHAT, None)
        assert not view.custom_prompt
        assert view.system_prompt == "Be terse."


# --- stop -------------------------------------------------------------------------------------


async def test_stop_cancels_the_request_keeps_partial_and_the_id(conv, fake, store):
    first = (await ask(conv, "first")).reply
    assert first is not None
    fake.enqueue(Script(reply="partial words and then a lot more", chunk_chars=8, delay_s=0.05))
    sink = RecordingSink()
    task = asyncio.create_task(conv.ask(CHAT, "second", sink, user_id="u1", turn_id="t1"))
    await until(lambda: len(sink.progress_texts) >= 1)
    assert conv.stop("t1") is True
    result = await task
    assert sink.failure is not None
    assert sink.failure is result
    assert sink.failure.kind == "stopped"
    assert sink.failure.partial == sink.progress_texts[-1]
    shown = failure_markdown(sink.failure)
    assert "[stopped]" in shown
    assert "Kamiya may still have finished" in shown
    await until(lambda: fake.in_flight == 0)
    assert fake.requests[-1].finished is not None
    assert await store.current(str(CHAT)) == first.conversation_id
    assert conv.stop("t1") is False  # stale
    after = (await ask(conv, "third")).reply
    assert after is not None
    assert after.conversation_id == first.conversation_id


async def test_stop_chat_stops_a_completions_reply_and_stores_nothing(conv, fake, store):
    await conv.set_model(CHAT, GPT4)
    fake.enqueue(
        Script(reply="a b c d e f g h i j", chunk_chars=2, delay_s=0.05), endpoint="completions"
    )
    sink = RecordingSink()
    task = asyncio.create_task(conv.ask(CHAT, "q", sink, user_id="u1"))
    await until(lambda: bool(sink.progress_texts))
    assert conv.stop_chat(CHAT) is True
    failure = await task
    assert failure.kind == "stopped"
    assert failure.mode == "completions"
    assert failure_text(failure) == "Stopped."
    assert (await store.state(str(CHAT))).local_id is None
    assert conv.stop_chat(CHAT) is False


# --- regenerate -------------------------------------------------------------------------------


@on_each_database(memory=True)
async def test_regenerate_resends_history_without_the_last_reply_and_replaces_it(
    conv, fake, store
):
    await conv.set_model(CHAT, GPT4)
    await ask(conv, "one")
    last = (await ask(conv, "two")).reply
    assert last is not None
    fake.enqueue(Script(reply="a better two"), endpoint="completions")
    sink = RecordingSink()
    again = await conv.regenerate(CHAT, last.conversation_id, last.turns, sink, user_id="u1")
    assert again.text == "a better two"
    assert again.turns == 2
    messages = completions(fake)[-1]["messages"]
    assert [m["content"] for m in messages][-1] == "two"
    assert len(messages) == 3  # one, its reply, two
    turns = await store.turns(last.conversation_id)
    assert [t.assistant for t in turns][-1] == "a better two"
    assert len(turns) == 2


async def test_regenerate_after_a_newer_turn_is_stale_and_asks_nothing(conv, fake):
    await conv.set_model(CHAT, GPT4)
    old = (await ask(conv, "one")).reply
    await ask(conv, "two")
    before = len(fake.requests)
    sink = RecordingSink()
    result = await conv.regenerate(CHAT, old.conversation_id, old.turns, sink)  # type: ignore[union-attr]
    assert result.kind == "stale"
    assert failure_text(result) == "That button is no longer valid."
    assert len(fake.requests) == before


async def test_regenerate_is_not_offered_in_server_mode(conv):
    reply = (await ask(conv, "x")).reply
    assert reply is not None
    assert not reply.regenerable


# --- history, resume, replies to old messages ---------------------------------------------------


async def test_history_lists_both_modes_and_resume_switches_back(conv, fake, clock):
    server = (await ask(conv, "server talk")).reply
    await conv.set_model(CHAT, GPT4)
    local = (await ask(conv, "local talk")).reply
    assert server is not None
    assert local is not None
    clock.advance(hours=1)
    await conv.reset(CHAT)
    entries = await conv.history(CHAT)
    assert [(e.record.mode, e.current, e.resumable) for e in entries] == [
        ("completions", False, True),
        ("server", False, True),
    ]
    outcome = await conv.resume(CHAT, server.conversation_id)
    assert outcome.status == "ok"
    view = await conv.settings(CHAT)
    assert view.model is None
    await ask(conv, "continue server")
    assert fake.requests[-1].json["conversationId"] == server.conversation_id

    outcome = await conv.resume(CHAT, local.conversation_id)
    assert outcome.status == "ok"
    assert (await conv.settings(CHAT)).model == GPT4
    await ask(conv, "continue local")
    assert completions(fake)[-1]["messages"][0]["content"] == "local talk"


async def test_server_conversations_expire_after_48_hours_completions_do_not(conv, clock):
    server = (await ask(conv, "old server")).reply
    await conv.set_model(CHAT, GPT4)
    local = (await ask(conv, "old local")).reply
    await conv.reset(CHAT)
    clock.advance(hours=49)
    entries = {e.record.mode: e for e in await conv.history(CHAT)}
    assert not entries["server"].resumable
    assert entries["completions"].resumable
    assert (await conv.resume(CHAT, server.conversation_id)).status == "expired"  # type: ignore[union-attr]
    assert (await conv.resume(CHAT, local.conversation_id)).status == "ok"  # type: ignore[union-attr]
    other = ChatKey("telegram", "999")
    assert (await conv.resume(other, local.conversation_id)).status == "unknown"  # type: ignore[union-attr]


async def test_a_forgotten_server_conversation_resumed_starts_fresh_and_says_so(conv, fake):
    old = (await ask(conv, "first")).reply
    await conv.reset(CHAT)
    await ask(conv, "second")
    assert (await conv.resume(CHAT, old.conversation_id)).status == "ok"  # type: ignore[union-attr]
    fake.forget(old.conversation_id)  # type: ignore[union-attr]
    reply = (await ask(conv, "third")).reply
    assert reply is not None
    assert reply.context_expired


@on_each_database(memory=True)
async def test_replying_to_an_old_bot_message_continues_its_conversation(conv, fake, store):
    old = (await ask(conv, "topic A")).reply
    assert old is not None
    await conv.remember(CHAT, old.conversation_id, ["501", "502"])
    await conv.reset(CHAT)
    await ask(conv, "topic B")
    await store.set_title(old.conversation_id, "Topic A")
    sink = await ask(conv, "more on A", reply_to="502")
    assert sink.reply is not None
    assert sink.reply.resumed == "Topic A"
    assert fake.requests[-1].json["conversationId"] == old.conversation_id
    # Replying again within the same conversation is not a switch.
    again = await ask(conv, "and more", reply_to="502")
    assert again.reply is not None
    assert again.reply.resumed is None


# --- usage and limits ---------------------------------------------------------------------------


@on_each_database(memory=True)
async def test_usage_counts_billed_and_streamed_characters(conv, fake):
    fake.enqueue(Script(reply="draft", full_content="Twelve chars"))
    await ask(conv, "a")
    await conv.set_model(CHAT, GPT4)
    fake.enqueue(Script(reply="seven!!"), endpoint="completions")
    await ask(conv, "b")
    usage = await conv.usage_of("telegram", "u1")
    assert (usage.today.requests, usage.today.billed_chars, usage.today.streamed_chars) == (
        2,
        12,
        7,
    )
    assert usage.month == usage.today
    assert (await conv.usage_of("discord", "u1")).today.requests == 0
    stats = await conv.stats("telegram")
    assert stats.all_time.chars == 19
    assert [c.chat_key for c in stats.top] == [str(CHAT)]


async def test_rate_limit_refuses_without_a_request_and_says_when(make, fake, clock):
    async with make(requests_per_minute=2) as conv:
        await ask(conv, "1")
        clock.advance(seconds=10)
        await ask(conv, "2")
        before = len(fake.requests)
        sink = await ask(conv, "3")
        assert sink.failure is not None
        assert sink.failure.kind == "limit_rate"
        assert len(fake.requests) == before
        assert "continue in 50 s" in failure_text(sink.failure)
        clock.advance(seconds=51)
        assert (await ask(conv, "4")).reply is not None


@on_each_database(memory=True)
async def test_daily_limit_counts_characters_until_midnight_utc(make, fake, clock):
    async with make(chars_per_day=10) as conv:
        fake.enqueue(Script(reply="x", full_content="0123456789AB"))
        await ask(conv, "a")
        before = len(fake.requests)
        sink = await ask(conv, "b")
        assert sink.failure is not None
        assert sink.failure.kind == "limit_daily"
        assert len(fake.requests) == before
        assert "2 h 0 min" in failure_text(sink.failure)  # 22:00 → midnight
        zh = failure_text(sink.failure, "zh-hans")
        assert "10" in zh
        assert "小时" in zh
        clock.advance(hours=2)
        assert (await ask(conv, "c")).reply is not None


# --- a database that fails ----------------------------------------------------------------------


class BrokenStore(MemoryStore):
    """A store whose reads (``state``) or writes (``record_reply``) fail, as a locked or
    read-only database does."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_reads = False
        self.fail_writes = False

    async def state(self, chat_key: str) -> ChatState:
        if self.fail_reads:
            raise OSError("database is locked")
        return await super().state(chat_key)

    async def record_reply(self, chat_key: str, conversation_id: str, **kw: Any) -> bool:
        if self.fail_writes:
            raise OSError("attempt to write a readonly database")
        return await super().record_reply(chat_key, conversation_id, **kw)


async def test_an_unreadable_database_answers_one_line_and_asks_nothing(client, fake):
    store = BrokenStore()
    async with Conversations(client, store, titles=False) as conv:
        store.fail_reads = True
        sink = await ask(conv, "hello")
        assert sink.failure is not None
        assert sink.failure.kind == "storage"
        assert "database" in failure_text(sink.failure)
        assert fake.requests == []
        store.fail_reads = False
        assert (await ask(conv, "again")).reply is not None


async def test_an_unwritable_database_shows_the_reply_and_keeps_the_old_id(client, fake):
    store = BrokenStore()
    async with Conversations(client, store, titles=False) as conv:
        first = (await ask(conv, "one")).reply
        assert first is not None
        assert first.saved
        store.fail_writes = True
        second = (await ask(conv, "two")).reply
        assert second is not None
        assert not second.saved
        assert await store.current(str(CHAT)) == first.conversation_id


async def test_stopping_the_first_reply_of_a_conversation_says_only_stopped(conv, fake):
    fake.enqueue(Script(reply="a b c d e f g h i j", chunk_chars=2, delay_s=0.05))
    sink = RecordingSink()
    task = asyncio.create_task(conv.ask(CHAT, "q", sink, user_id="u1", turn_id="t9"))
    await until(lambda: bool(sink.progress_texts))
    assert conv.stop("t9")
    failure = await task
    assert isinstance(failure, Failure)
    assert failure_text(failure) == "Stopped."
