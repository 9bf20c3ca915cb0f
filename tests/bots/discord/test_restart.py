"""A real ``kamiya-bot run`` killed mid-reply, or stopped with SIGTERM, against the fakes.

Killed (SIGKILL): the next process on the same database marks the half-shown reply
interrupted through the channel route (it has no interaction token), takes its Stop button
away, leaves the stored conversation as it was before the turn, and answers a new /chat.
Stopped (SIGTERM): a reply that ends within ``[bot] shutdown_grace_s`` is shown whole; one
that would not is cut at the grace, shows the interrupted line, and the process exits 0 in
time either way, with no crash record left.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from core import text
from core.fake_kamiya import CONVERSATION_PATH, Script
from tests.bots.cli import stored_ids
from tests.bots.discord.process import bot_process, open_replies, process_config
from tests.fakes.discord import CHANNEL_ID
from tests.waiting import until

if TYPE_CHECKING:
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.fakes.discord import FakeDiscord, Interaction

KEY = f"discord:{CHANNEL_ID}"
CUT = text("cut_off_mark")
INTERRUPTED = text("interrupted")
STOP = "kamiya:stop:"
SLOW = "".join(f"word{i} " for i in range(400))  # about 20 s at 6 characters per 50 ms


def shows(interaction: Interaction, fragment: str) -> bool:
    return fragment in (interaction.original or "")


async def test_sigkill_mid_reply_then_restart_marks_it_and_keeps_the_old_conversation(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = process_config(tmp_path, dc, fake)
    db = tmp_path / "bot.db"
    async with bot_process(config, dc) as first:
        one = dc.slash("chat", {"prompt": "first"})
        await dc.wait_for(lambda f: shows(one, "(turn 1): first"), timeout=30)
        await until(lambda: KEY in stored_ids(db), timeout=10)
        before = stored_ids(db)[KEY]
        fake.enqueue(Script(reply=SLOW, chunk_chars=6, delay_s=0.05))
        two = dc.slash("chat", {"prompt": "second"})
        await dc.wait_for(lambda f: shows(two, "word1 "), timeout=30)
        await until(lambda: any("word1 " in shown for _, shown in open_replies(db)), timeout=10)
        await first.kill()
    partial = two.original_message
    assert partial is not None
    assert partial.button(STOP)  # as the crash left it
    assert stored_ids(db)[KEY] == before
    [(ids, shown)] = open_replies(db)
    assert ids == f'["{partial.id}"]'
    assert shown.startswith("> second\nword0 word1 ")
    async with bot_process(config, dc) as second:
        await dc.wait_for(lambda f: shows(two, INTERRUPTED), timeout=30)
        three = dc.slash("chat", {"prompt": "third"})
        await dc.wait_for(lambda f: shows(three, "(turn 3): third"), timeout=30)
        assert await second.terminate() == 0
    assert two.original == f"{shown} {CUT}\n\n⚠️ {INTERRUPTED}"
    assert partial.buttons == []
    assert [m.id for m in dc.visible(CHANNEL_ID)] == [
        i.original_message.id for i in (one, two, three) if i.original_message
    ]
    questions = [r for r in fake.requests if r.path == CONVERSATION_PATH]
    assert [r.json.get("content") for r in questions] == ["first", "second", "third"]
    assert questions[-1].json == {"content": "third", "conversationId": before}
    assert open_replies(db) == []
    assert first.leaked() == second.leaked() == []
    assert "Traceback" not in second.stderr


async def test_sigterm_lets_a_reply_finish_within_the_grace_and_refuses_new_ones(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya
) -> None:
    config = process_config(tmp_path, dc, fake, grace_s=8.0)
    reply = "".join(f"w{i} " for i in range(40))  # about 2 s
    fake.enqueue(Script(reply=reply, chunk_chars=4, delay_s=0.05))
    async with bot_process(config, dc) as bot:
        asked = dc.slash("chat", {"prompt": "ask"})
        await dc.wait_for(lambda f: shows(asked, "w1 "), timeout=30)
        bot.term()
        await bot.logged("discord: stopping")
        late = dc.slash("chat", {"prompt": "too late"})
        code = await bot.exited()
    assert code == 0
    assert bot.stop_s < 8.0
    assert asked.original == "> ask\n" + reply.strip()
    assert asked.original_message is not None
    assert asked.original_message.buttons == []
    assert late.ephemeral
    assert "restarting" in (late.original or "")
    assert [r.json.get("content") for r in fake.requests] == ["ask"]
    assert open_replies(tmp_path / "bot.db") == []
    assert bot.leaked() == []
    assert "Traceback" not in bot.stderr, bot.stderr[bot.stderr.find("discord: stopping") :]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_cuts_a_reply_longer_than_the_grace_and_the_bot_exits_in_time(
    tmp_path: Path, dc: FakeDiscord, fake: FakeKamiya, sig: signal.Signals
) -> None:
    config = process_config(tmp_path, dc, fake, grace_s=1.0)
    fake.enqueue(Script(reply=SLOW, chunk_chars=6, delay_s=0.05))
    async with bot_process(config, dc) as bot:
        asked = dc.slash("chat", {"prompt": "ask"})
        await dc.wait_for(lambda f: shows(asked, "word1 "), timeout=30)
        assert await bot.terminate() == 0
    # The grace, bots.runner's margin to close, and slack for interpreter exit on a busy machine.
    assert bot.stop_s < 1.0 + 4.0 + 3.0
    shown = asked.original or ""
    assert shown.startswith("> ask\nword0 word1 ")
    assert shown.endswith(f" {CUT}\n\n⚠️ {INTERRUPTED}")
    assert asked.original_message is not None
    assert asked.original_message.buttons == []
    assert KEY not in stored_ids(tmp_path / "bot.db")
    assert open_replies(tmp_path / "bot.db") == []
    assert bot.leaked() == []
    assert "Traceback" not in bot.stderr, bot.stderr[bot.stderr.find("discord: stopping") :]
