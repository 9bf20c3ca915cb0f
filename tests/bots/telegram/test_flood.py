"""Flood control against the fake's enforced limits: steady streams, forced 429s, other chats."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bots.telegram.format import split
from core.fake_kamiya import Script

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram

GROUP = -100600


def rendered(markdown: str) -> list[str]:
    return [chunk.text for chunk in split(markdown)]


async def final_shown(tg: FakeTelegram, chat: int, text: str, within: float = 30) -> None:
    await tg.wait_for(lambda f: f.visible_texts(chat) == rendered(text), timeout=within)


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_slow_200_chunk_stream_shows_many_states_without_429(tg, fake, bot):
    reply = "".join(f"tok{i} " for i in range(200))
    fake.enqueue(Script(reply=reply, chunk_chars=5, delay_s=0.02))  # about 4 s of tokens
    tg.private_message(tg.user(4001), "stream please")
    await final_shown(tg, 4001, reply)
    edits = tg.calls_of("editMessageText")
    assert len(edits) >= 3  # many progressive states
    texts = [c.params["text"] for c in edits]
    assert len(texts) == len(set(texts))  # never the same text twice
    assert tg.count_429 == 0


async def test_slow_stream_in_draft_mode_animates_many_drafts(tg, fake, bot):
    reply = "".join(f"tok{i} " for i in range(200))
    fake.enqueue(Script(reply=reply, chunk_chars=5, delay_s=0.02))
    tg.private_message(tg.user(4002), "stream please")
    await final_shown(tg, 4002, reply)
    assert len([d for d in tg.drafts(4002) if d]) >= 3
    assert tg.count_429 == 0


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_forced_429_is_honoured_and_the_final_text_arrives(tg, fake, bot):
    reply = "".join(f"word{i} " for i in range(40))
    fake.enqueue(Script(reply=reply, chunk_chars=4, delay_s=0.01))  # well under a second
    tg.fail_next("editMessageText", status=429, retry_after=3)
    tg.private_message(tg.user(4003), "go")
    await final_shown(tg, 4003, reply)
    limited = [c for c in tg.calls if c.status == 429]
    assert len(limited) == 1
    after = [c for c in tg.calls if c.at > limited[0].at and c.method == "editMessageText"]
    assert after
    assert all(c.at - limited[0].at >= 2.99 for c in after)  # nothing inside the window
    # The Kamiya stream was read at full speed during the penalty, not held up by it.
    finished = fake.requests[0].finished
    assert finished is not None
    assert finished < limited[0].at + 3


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_a_penalty_in_one_chat_does_not_slow_another(tg, fake, bot):
    fake.enqueue(Script(reply="slow " * 40, chunk_chars=5, delay_s=0.05), Script(reply="quick"))
    tg.fail_next("editMessageText", status=429, retry_after=5)
    tg.private_message(tg.user(4004), "penalised")
    await tg.wait_for(lambda f: f.count_429 == 1)
    tg.private_message(tg.user(4005), "other chat")
    await final_shown(tg, 4005, "quick", within=3)


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_telegram_5xx_is_retried(tg, fake, bot):
    tg.fail_next("sendMessage", status=502, description="Bad Gateway")
    fake.enqueue(Script(reply="made it"))
    tg.private_message(tg.user(4006), "hi")
    await final_shown(tg, 4006, "made it")
    statuses = [c.status for c in tg.calls_of("sendMessage")]
    assert statuses[0] == 502
    assert statuses[-1] == 200


async def test_markdown_renders_as_entities_never_parse_mode(tg, fake, bot):
    reply = (
        "# Heading\n\nSome **bold**, _italic_ and `inline_code` with snake_case_name.\n\n"
        "```python\ndef my_func(a_b):\n    return a_b * 2\n```\n\n"
        "- item one\n- item two\n\n> a quote\n\nSee [docs](https://example.org/a_b)."
    )
    fake.enqueue(Script(reply=reply, chunk_chars=7, delay_s=0.01))
    tg.private_message(tg.user(4007), "format")
    await final_shown(tg, 4007, reply)
    message = tg.visible(4007)[0]
    kinds = {e["type"] for e in message.entities}
    assert {"bold", "italic", "code", "pre", "text_link", "blockquote"} <= kinds
    pre = next(e for e in message.entities if e["type"] == "pre")
    assert pre.get("language") == "python"
    assert "snake_case_name" in (message.text or "")
    assert all(c.params.get("parse_mode") is None for c in tg.calls_of("sendMessage"))


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_many_chats_at_once_stay_under_the_bot_wide_limit(tg, fake, bot):
    reply = "".join(f"w{i} " for i in range(60))
    chats = range(9000, 9060)
    fake.enqueue(*(Script(reply=reply, chunk_chars=5, delay_s=0.04) for _ in chats))
    for chat in chats:
        tg.private_message(tg.user(chat), "all together")
    await tg.wait_for(
        lambda f: all(f.visible_texts(c)[-1:] == [reply.strip()] for c in chats), timeout=60
    )
    assert tg.count_429 == 0
