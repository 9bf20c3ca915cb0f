"""Memory and SQLite agree on any sequence of operations (Hypothesis picks them).

The SQL store runs twice: with ``ON CONFLICT`` upserts, as SQLite and PostgreSQL deployments
do, and with the select-then-write path other dialects get, forced here so it is exercised too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import MemoryStore, SqlStore, create_engine, sql_writes
from storage.models import Base
from tests.storage.test_contract import CHAT, OTHER_CHAT, T0, at

if TYPE_CHECKING:
    from datetime import datetime

    from storage import ConversationStore

CONVERSATIONS = ["c0", "c1", "c2", "l0", "l1"]
MESSAGES = ["m0", "m1", "m2"]
REPLIES = ["r0", "r1", "r2"]
PLATFORMS = ["telegram", "discord"]
DAYS = [T0.date(), T0.date() + timedelta(days=1)]


@dataclass(frozen=True, slots=True)
class Reply:
    chat_key: str
    conversation_id: str
    user_id: str
    billed_chars: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Turn:
    chat_key: str
    conversation_id: str
    model: str
    assistant: str
    user_id: str
    at: datetime
    replace_last: bool


@dataclass(frozen=True, slots=True)
class Reset:
    chat_key: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Title:
    conversation_id: str
    title: str


@dataclass(frozen=True, slots=True)
class Model:
    chat_key: str
    model: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Prompt:
    chat_key: str
    prompt: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Resume:
    chat_key: str
    conversation_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Remember:
    chat_key: str
    conversation_id: str
    message_ids: list[str]
    at: datetime


@dataclass(frozen=True, slots=True)
class Begin:
    reply_id: str
    chat_key: str
    platform: str
    language: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Note:
    reply_id: str
    message_ids: list[str]
    shown: str | None  # None: left out, so the default applies


@dataclass(frozen=True, slots=True)
class End:
    reply_id: str


Operation = Reply | Turn | Reset | Title | Model | Prompt | Resume | Remember | Begin | Note | End

_chats = st.sampled_from([CHAT, OTHER_CHAT])
# One pool for both modes, so a reply and a turn on the same id come up too.
_conversation_ids = st.sampled_from(CONVERSATIONS)
_users = st.sampled_from(["u1", "u2"])
_replies = st.sampled_from(REPLIES)
_models = st.sampled_from(["m1", "m2"])
_text = st.text(st.characters(codec="utf-8"), max_size=20)
# Few distinct instants (equal last uses test the tie-breaks), five hours apart: past midnight.
_times = st.integers(0, 4).map(lambda n: at(300 * n))
_operations = st.lists(
    st.one_of(
        st.builds(Reply, _chats, _conversation_ids, _users, st.integers(0, 10_000), _times),
        st.builds(Turn, _chats, _conversation_ids, _models, _text, _users, _times, st.booleans()),
        st.builds(Reset, _chats, _times),
        st.builds(Title, _conversation_ids, _text),
        st.builds(Model, _chats, st.none() | _models, _times),
        st.builds(Prompt, _chats, st.none() | _text, _times),
        st.builds(Resume, _chats, _conversation_ids, _times),
        st.builds(
            Remember, _chats, _conversation_ids, st.lists(st.sampled_from(MESSAGES)), _times
        ),
        st.builds(Begin, _replies, _chats, st.sampled_from(PLATFORMS), st.none() | _text, _times),
        st.builds(Note, _replies, st.lists(st.sampled_from(MESSAGES)), st.none() | _text),
        st.builds(End, _replies),
    ),
    max_size=30,
)


async def _apply(store: ConversationStore, operation: Operation) -> object:
    """Run one operation; its result, to compare between the stores."""
    match operation:
        case Reply(chat_key, conversation_id, user_id, billed_chars, when):
            return await store.record_reply(
                chat_key, conversation_id, user_id=user_id, billed_chars=billed_chars, at=when
            )
        case Turn(chat_key, conversation_id, model, assistant, user_id, when, replace_last):
            return await store.record_turn(
                chat_key,
                conversation_id,
                model=model,
                user=f"{user_id} asks",
                assistant=assistant,
                user_id=user_id,
                at=when,
                replace_last=replace_last,
            )
        case Resume(chat_key, conversation_id, when):
            return await store.resume(chat_key, conversation_id, at=when)
        case Reset(chat_key, when):
            await store.reset(chat_key, at=when)
        case Title(conversation_id, title):
            await store.set_title(conversation_id, title)
        case Model(chat_key, model, when):
            await store.set_model(chat_key, model, at=when)
        case Prompt(chat_key, prompt, when):
            await store.set_system_prompt(chat_key, prompt, at=when)
        case Remember(chat_key, conversation_id, message_ids, when):
            await store.remember_messages(chat_key, conversation_id, message_ids, at=when)
        case Begin(reply_id, chat_key, platform, language, when):
            target = f'{{"chat": "{chat_key}"}}'
            await store.begin_reply(
                reply_id, chat_key, platform=platform, target=target, language=language, at=when
            )
        case Note(reply_id, message_ids, shown):
            given_shown = () if shown is None else (shown,)
            await store.note_reply_messages(reply_id, message_ids, *given_shown)
        case End(reply_id):
            await store.end_reply(reply_id)
    return None


async def _snapshot(store: ConversationStore) -> object:
    """Everything the protocol can read back."""
    chats = [
        (
            await store.state(chat),
            await store.current(chat),
            await store.conversations(chat, limit=50),
            await store.usage(chat),
            [await store.message_conversation(chat, m) for m in MESSAGES],
        )
        for chat in (CHAT, OTHER_CHAT)
    ]
    turns = [await store.turns(c) for c in CONVERSATIONS]
    users = [
        await store.user_usage(user, platform=platform, since=day)
        for user in ("u1", "u2")
        for platform in ("telegram", "discord")
        for day in DAYS
    ]
    stats = [
        await store.stats(platform=platform, since=since)
        for platform in ("telegram", "discord")
        for since in (None, *DAYS)
    ]
    replies = [await store.open_replies(platform) for platform in PLATFORMS]
    return chats, turns, users, stats, replies


@pytest.mark.parametrize("upserts", [True, False], ids=["on-conflict", "select-then-write"])
@settings(max_examples=40, deadline=None)
@given(operations=_operations)
async def test_sqlite_store_agrees_with_memory_store(
    upserts: bool, operations: list[Operation]
) -> None:
    # create_all, not the migrations, for speed: test_migrations shows both make one schema.
    engine = create_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    with pytest.MonkeyPatch.context() as patch:
        if not upserts:
            patch.setattr(sql_writes, "insert_for", lambda _name: None)
        real = SqlStore(engine)
    async with MemoryStore() as model, real:
        for operation in operations:
            assert await _apply(real, operation) == await _apply(model, operation)
        assert await _snapshot(real) == await _snapshot(model)
