"""Completions-mode history: what to send when the bot, not Kamiya, keeps the context.

The Chat Completions endpoint is stateless, so every request carries the conversation. It must
fit a budget: the oldest turns go first, whole (a user message and the reply to it leave
together, so the model never sees an answer without its question), and the system prompt and
the newest user message always stay.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Turn", "build_messages"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: the user's message and the assistant's reply to it."""

    user: str
    assistant: str


def build_messages(
    system: str | None, turns: list[Turn], question: str, *, budget_chars: int
) -> list[dict[str, str]]:
    """OpenAI-style messages for ``question`` after ``turns``, within ``budget_chars``.

    Counts the characters of message contents. The system prompt and ``question`` are kept even
    if they alone exceed the budget (the relay, not this function, must refuse then).
    """
    head = [{"role": "system", "content": system}] if system else []
    tail = [{"role": "user", "content": question}]
    room = budget_chars - sum(len(m["content"]) for m in head + tail)
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = len(turn.user) + len(turn.assistant)
        if cost > room:
            break
        kept.append(turn)
        room -= cost
    middle: list[dict[str, str]] = []
    for turn in reversed(kept):
        middle.append({"role": "user", "content": turn.user})
        middle.append({"role": "assistant", "content": turn.assistant})
    return head + middle + tail
