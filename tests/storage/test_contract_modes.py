"""The contract's chat modes: state, completions turns, resume and remembered bot messages.

Same backends as ``test_contract.py``: ``store`` cases run on memory, SQLite and PostgreSQL,
``sql_target`` cases on the two SQL databases with two engines (as two processes).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from storage import ChatState, ConversationRecord, TurnRecord, UsageRecord
from tests.storage.test_contract import CHAT, OTHER_CHAT, T0, at, reply

if TYPE_CHECKING:
    from storage import ConversationStore
    from tests.pg import SqlTarget

MODEL = "gpt-4o"


async def turn(
    store: ConversationStore,
    conversation_id: str,
    *,
    user: str = "question",
    assistant: str = "answer",
    model: str = MODEL,
    chat_key: str = CHAT,
    user_id: str = "u1",
    when: datetime = T0,
    replace_last: bool = False,
) -> bool:
    return await store.record_turn(
        chat_key,
        conversation_id,
        model=model,
        user=user,
        assistant=assistant,
        user_id=user_id,
        at=when,
        replace_last=replace_last,
    )


# --- state and modes ---------------------------------------------------------------------------


async def test_unknown_chat_has_empty_state(store: ConversationStore) -> None:
    assert await store.state(CHAT) == ChatState()


async def test_set_model_and_prompt_create_the_chat(store: ConversationStore) -> None:
    await store.set_model(CHAT, MODEL, at=T0)
    await store.set_system_prompt(CHAT, "Answer in haiku.", at=at(1))

    assert await store.state(CHAT) == ChatState(model=MODEL, system_prompt="Answer in haiku.")
    assert await store.state(OTHER_CHAT) == ChatState()
    assert await store.conversations(CHAT) == []


async def test_prompt_none_returns_to_the_default(store: ConversationStore) -> None:
    await store.set_system_prompt(CHAT, "Be brief.", at=T0)
    await store.set_system_prompt(CHAT, None, at=at(1))

    assert await store.state(CHAT) == ChatState()


async def test_switching_mode_and_back_keeps_each_slot(store: ConversationStore) -> None:
    await reply(store, "c1", when=T0)
    await store.set_model(CHAT, MODEL, at=at(1))
    await turn(store, "l1", when=at(2))

    assert await store.state(CHAT) == ChatState("c1", "l1", MODEL)
    await store.set_model(CHAT, None, at=at(3))
    assert await store.state(CHAT) == ChatState("c1", "l1", None)
    assert await store.current(CHAT) == "c1"
    await store.set_model(CHAT, "claude", at=at(4))
    assert await store.state(CHAT) == ChatState("c1", "l1", "claude")


async def test_reset_clears_both_slots_and_keeps_model_and_prompt(
    store: ConversationStore,
) -> None:
    await reply(store, "c1", when=T0)
    await store.set_model(CHAT, MODEL, at=at(1))
    await store.set_system_prompt(CHAT, "Be brief.", at=at(1))
    await turn(store, "l1", when=at(2))

    await store.reset(CHAT, at=at(3))

    assert await store.state(CHAT) == ChatState(model=MODEL, system_prompt="Be brief.")
    assert {c.conversation_id for c in await store.conversations(CHAT)} == {"c1", "l1"}
    assert await store.turns("l1") == [TurnRecord("question", "answer")]


# --- completions turns -------------------------------------------------------------------------


async def test_first_turn_creates_a_completions_conversation(store: ConversationStore) -> None:
    assert await turn(store, "l1", when=T0) is True
    assert await turn(store, "l1", when=at(1)) is False

    assert await store.conversation("l1") == ConversationRecord(
        "l1", CHAT, None, T0, at(1), mode="completions", model=MODEL
    )
    assert await store.state(CHAT) == ChatState(local_id="l1")
    assert await store.current(CHAT) is None


async def test_each_record_keeps_the_other_modes_slot(store: ConversationStore) -> None:
    await turn(store, "l1", when=T0)
    await reply(store, "c1", when=at(1))
    await turn(store, "l2", when=at(2))

    assert await store.state(CHAT) == ChatState(conversation_id="c1", local_id="l2")
    record = await store.conversation("c1")
    assert record is not None
    assert (record.mode, record.model) == ("server", None)


async def test_a_turn_records_the_model_it_used(store: ConversationStore) -> None:
    await turn(store, "l1", model=MODEL, when=T0)
    await turn(store, "l1", model="claude", when=at(1))

    record = await store.conversation("l1")
    assert record is not None
    assert (record.mode, record.model, record.created_at) == ("completions", "claude", T0)


async def test_turns_come_back_oldest_first(store: ConversationStore) -> None:
    for n in range(5):
        await turn(store, "l1", user=f"q{n}", assistant=f"a{n}", when=at(n))
    await turn(store, "l2", user="elsewhere", when=at(9))

    assert await store.turns("l1") == [TurnRecord(f"q{n}", f"a{n}") for n in range(5)]
    assert await store.turns("unknown") == []
    assert await store.turns("c1") == []


async def test_long_and_unicode_turns_are_stored_whole(store: ConversationStore) -> None:
    question, answer = "京都のラーメン? " * 500, "🍜 " * 5000
    await turn(store, "l1", user=question, assistant=answer)

    assert await store.turns("l1") == [TurnRecord(question, answer)]


async def test_replace_last_changes_only_the_last_reply(store: ConversationStore) -> None:
    await turn(store, "l1", user="q1", assistant="a1", when=T0)
    await turn(store, "l1", user="q2", assistant="a2", when=at(1))

    created = await turn(store, "l1", user="q2", assistant="a2 again", replace_last=True)

    assert created is False
    assert await store.turns("l1") == [TurnRecord("q1", "a1"), TurnRecord("q2", "a2 again")]


async def test_replace_last_without_turns_appends(store: ConversationStore) -> None:
    assert await turn(store, "l1", user="q", assistant="a", replace_last=True) is True

    assert await store.turns("l1") == [TurnRecord("q", "a")]


async def test_turns_count_a_request_and_streamed_chars_each(store: ConversationStore) -> None:
    await turn(store, "l1", assistant="12345")
    await turn(store, "l1", assistant="京都", replace_last=True)  # a regenerate costs too
    await reply(store, "c1", billed_chars=100)

    assert await store.usage(CHAT) == [
        UsageRecord(CHAT, "u1", billed_chars=100, requests=3, streamed_chars=7)
    ]


async def test_concurrent_turns_on_one_conversation_are_all_kept(
    store: ConversationStore,
) -> None:
    created = await asyncio.gather(*(turn(store, "l1", assistant=f"a{n}") for n in range(20)))

    assert created.count(True) == 1
    assert sorted(t.assistant for t in await store.turns("l1")) == sorted(
        f"a{n}" for n in range(20)
    )


async def test_two_engines_recording_turns_keep_every_turn(sql_target: SqlTarget) -> None:
    async with await sql_target.open() as first, await sql_target.open() as second:
        created = await asyncio.gather(
            *(
                turn(store, "l1", assistant=f"{name}{n}", when=at(n))
                for n in range(10)
                for name, store in (("a", first), ("b", second))
            )
        )

        assert created.count(True) == 1
        turns = await first.turns("l1")
        assert sorted(t.assistant for t in turns) == sorted(
            f"{name}{n}" for n in range(10) for name in "ab"
        )
        assert await second.turns("l1") == turns  # one order, whoever reads
        assert await first.usage(CHAT) == [
            UsageRecord(CHAT, "u1", billed_chars=0, requests=20, streamed_chars=40)
        ]


# --- resume ------------------------------------------------------------------------------------


async def test_resume_server_conversation_leaves_completions_mode(
    store: ConversationStore,
) -> None:
    await reply(store, "c1", when=T0)
    await reply(store, "c2", when=at(1))
    await store.set_model(CHAT, MODEL, at=at(2))
    await turn(store, "l1", when=at(3))

    record = await store.resume(CHAT, "c1", at=at(4))

    assert record == await store.conversation("c1")
    assert record is not None
    assert record.last_used_at == T0  # resuming is not using: expiry still counts from then
    assert await store.state(CHAT) == ChatState("c1", "l1", None)


async def test_resume_completions_conversation_takes_its_model(store: ConversationStore) -> None:
    await store.set_model(CHAT, "claude", at=T0)
    await turn(store, "l1", model="claude", when=at(1))
    await store.reset(CHAT, at=at(2))
    await store.set_system_prompt(CHAT, "Be brief.", at=at(2))
    await store.set_model(CHAT, None, at=at(3))
    await reply(store, "c1", when=at(4))

    record = await store.resume(CHAT, "l1", at=at(5))

    assert record is not None
    assert (record.conversation_id, record.mode, record.model) == ("l1", "completions", "claude")
    assert await store.state(CHAT) == ChatState("c1", "l1", "claude", "Be brief.")


async def test_resume_of_unknown_conversation_changes_nothing(store: ConversationStore) -> None:
    await reply(store, "c1")
    await store.set_model(CHAT, MODEL, at=at(1))
    before = await store.state(CHAT)

    assert await store.resume(CHAT, "c-unknown", at=at(2)) is None
    assert await store.resume(OTHER_CHAT, "c-unknown", at=at(2)) is None

    assert await store.state(CHAT) == before
    assert await store.state(OTHER_CHAT) == ChatState()


async def test_resume_of_another_chats_conversation_changes_nothing(
    store: ConversationStore,
) -> None:
    await reply(store, "c1", chat_key=CHAT)
    await store.reset(CHAT, at=at(1))
    await reply(store, "c9", chat_key=OTHER_CHAT)
    await turn(store, "l9", chat_key=OTHER_CHAT)

    assert await store.resume(CHAT, "c9", at=at(2)) is None
    assert await store.resume(CHAT, "l9", at=at(2)) is None

    assert await store.state(CHAT) == ChatState()
    assert await store.state(OTHER_CHAT) == ChatState("c9", "l9")


# --- bot messages ------------------------------------------------------------------------------


async def test_remembered_messages_lead_to_their_conversation(store: ConversationStore) -> None:
    await reply(store, "c1")
    await turn(store, "l1")

    await store.remember_messages(CHAT, "c1", ["m1", "m2"], at=T0)
    await store.remember_messages(CHAT, "l1", ["m3"], at=T0)

    assert await store.message_conversation(CHAT, "m1") == "c1"
    assert await store.message_conversation(CHAT, "m2") == "c1"
    assert await store.message_conversation(CHAT, "m3") == "l1"
    assert await store.message_conversation(CHAT, "m4") is None
    assert await store.message_conversation(OTHER_CHAT, "m1") is None


async def test_message_ids_are_scoped_to_their_chat(store: ConversationStore) -> None:
    await reply(store, "c1", chat_key=CHAT)
    await reply(store, "c2", chat_key=OTHER_CHAT)

    await store.remember_messages(CHAT, "c1", ["42"], at=T0)
    await store.remember_messages(OTHER_CHAT, "c2", ["42"], at=T0)

    assert await store.message_conversation(CHAT, "42") == "c1"
    assert await store.message_conversation(OTHER_CHAT, "42") == "c2"


async def test_remembering_a_message_again_overwrites_it(store: ConversationStore) -> None:
    await reply(store, "c1")
    await reply(store, "c2")
    await store.remember_messages(CHAT, "c1", ["m1", "m2"], at=T0)

    await store.remember_messages(CHAT, "c2", ["m2", "m3", "m2"], at=at(1))

    assert await store.message_conversation(CHAT, "m1") == "c1"
    assert await store.message_conversation(CHAT, "m2") == "c2"
    assert await store.message_conversation(CHAT, "m3") == "c2"


async def test_messages_of_unknown_conversations_are_not_remembered(
    store: ConversationStore,
) -> None:
    await store.remember_messages(CHAT, "c-unknown", ["m1"], at=T0)
    await store.remember_messages(CHAT, "c-unknown", [], at=T0)

    assert await store.message_conversation(CHAT, "m1") is None


# --- time --------------------------------------------------------------------------------------


async def test_new_writes_refuse_naive_datetimes(store: ConversationStore) -> None:
    naive = datetime(2025, 1, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    await reply(store, "c1")

    with pytest.raises(ValueError, match="naive"):
        await turn(store, "l1", when=naive)
    with pytest.raises(ValueError, match="naive"):
        await store.set_model(CHAT, MODEL, at=naive)
    with pytest.raises(ValueError, match="naive"):
        await store.set_system_prompt(CHAT, "x", at=naive)
    with pytest.raises(ValueError, match="naive"):
        await store.resume(CHAT, "c1", at=naive)
    with pytest.raises(ValueError, match="naive"):
        await store.remember_messages(CHAT, "c1", ["m1"], at=naive)

    assert await store.state(CHAT) == ChatState("c1")
    assert await store.turns("l1") == []
    assert await store.message_conversation(CHAT, "m1") is None
