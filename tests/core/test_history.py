"""Completions-mode history trimming: oldest whole turns go first; system and question stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.history import Turn, build_messages


def test_everything_fits():
    turns = [Turn("hi", "hello"), Turn("how are you", "fine")]
    messages = build_messages("be brief", turns, "and now?", budget_chars=1000)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1]["content"] == "and now?"


def test_oldest_turns_are_dropped_whole_and_the_system_prompt_stays():
    turns = [Turn("a" * 50, "b" * 50), Turn("c" * 10, "d" * 10)]
    messages = build_messages("sys", turns, "q", budget_chars=30)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "c" * 10},
        {"role": "assistant", "content": "d" * 10},
        {"role": "user", "content": "q"},
    ]


def test_no_system_prompt_and_a_question_over_budget_still_sends_the_question():
    assert build_messages(None, [Turn("x", "y")], "q" * 100, budget_chars=10) == [
        {"role": "user", "content": "q" * 100}
    ]


@given(
    system=st.one_of(st.none(), st.text(max_size=50)),
    turns=st.lists(st.builds(Turn, st.text(max_size=40), st.text(max_size=40)), max_size=20),
    question=st.text(min_size=1, max_size=40),
    budget=st.integers(min_value=0, max_value=500),
)
def test_trimming_keeps_a_suffix_of_whole_turns_within_budget(system, turns, question, budget):
    messages = build_messages(system, turns, question, budget_chars=budget)
    assert messages[-1] == {"role": "user", "content": question}
    if system:
        assert messages[0] == {"role": "system", "content": system}
    body = messages[(1 if system else 0) : -1]
    assert len(body) % 2 == 0
    kept = [Turn(body[i]["content"], body[i + 1]["content"]) for i in range(0, len(body), 2)]
    assert kept == (turns[len(turns) - len(kept) :] if kept else [])
    if kept:
        assert sum(len(m["content"]) for m in messages) <= budget
    if len(kept) < len(turns):  # the next older turn would not have fitted
        older = turns[len(turns) - len(kept) - 1]
        total = sum(len(m["content"]) for m in messages)
        assert total + len(older.user) + len(older.assistant) > budget
