"""Every fault of Kamiya and of Telegram, end to end: one clear line or the whole reply.

For each fault one chat (the victim) meets it while another chat asks too. Either way the user
sees one clear line, or the complete reply; the other chat is answered meanwhile; the stored
conversation is right (unchanged after a failure, Kamiya's id after a success, the new id when
Kamiya moved the conversation); and nothing the process logs, at DEBUG for every library,
holds the Kamiya key or the bot token.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pytest

from bots.telegram.format import split
from bots.telegram.texts import say
from core import text
from core.fake_kamiya import CONVERSATION_PATH, Script
from tests.bots.telegram.chat import idle, says
from tests.bots.telegram.harness import TOKEN, running_bot, write_config
from tests.bots.telegram.leaks import capture_logs, leaks
from tests.conftest import KEY
from tests.fakes.telegram import Limits

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.bots.telegram.harness import Bot
    from tests.bots.telegram.leaks import Captured
    from tests.fakes.telegram import FakeTelegram, Msg

VICTIM, OTHER = 7001, 7002
SECRETS = (KEY, TOKEN)
REPLY = "The whole **reply**, streamed in pieces."
RETRYING = "retries = 2\nretry_max_s = 0.05"
SHORT_TIMEOUT = "retries = 0\nrequest_timeout_s = 1.5"
Stored = Literal["kept", "kamiya's", "moved"]


def line(key: str) -> str:
    return text(key, "en")


def final(reply: str) -> str:
    return "\n\n".join(chunk.text for chunk in split(reply))


@dataclass(frozen=True)
class KamiyaFault:
    """The victim's scripts in request order; the first waits at a gate while the other chat
    is answered (``opens=False``: it never opens, a server that never answers)."""

    scripts: tuple[Script, ...]
    shows: str  # in the victim's last message
    stored: Stored = "kept"
    kamiya: str = "retries = 0"
    opens: bool = True


def streamed(**fault: object) -> Script:
    return dataclasses.replace(Script(reply=REPLY, chunk_chars=6), **fault)  # type: ignore[arg-type]


KAMIYA_FAULTS = {
    "401": KamiyaFault((Script(status=401),), line("bad_key")),
    "402": KamiyaFault((Script(status=402),), line("out_of_credit")),
    "403": KamiyaFault((Script(status=403),), line("no_permission")),
    "429 Retry-After": KamiyaFault(
        (Script(status=429, headers={"Retry-After": "30"}),), "try again in 30 s"
    ),
    "429": KamiyaFault((Script(status=429),), line("rate_limited")),
    "500": KamiyaFault((Script(status=500),), line("upstream")),
    "502": KamiyaFault((Script(status=502),), line("upstream")),
    "429 Retry-After, retried": KamiyaFault(
        (Script(status=429, headers={"Retry-After": "30"}), streamed()),
        final(REPLY),
        "kamiya's",
        RETRYING,
    ),
    "429, retried": KamiyaFault(
        (Script(status=429), Script(status=429), streamed()), final(REPLY), "kamiya's", RETRYING
    ),
    "500, retried": KamiyaFault(
        (Script(status=500), streamed()), final(REPLY), "kamiya's", RETRYING
    ),
    "502, retried": KamiyaFault(
        (Script(status=502), Script(status=502), streamed()), final(REPLY), "kamiya's", RETRYING
    ),
    "timeout before the first byte": KamiyaFault(
        (streamed(),), line("upstream"), kamiya=SHORT_TIMEOUT, opens=False
    ),
    "stall mid-stream": KamiyaFault(
        (streamed(delay_s=4.0),), line("incomplete"), kamiya=SHORT_TIMEOUT
    ),
    "connection dropped mid-stream": KamiyaFault((streamed(drop_after=3),), line("incomplete")),
    "no [DONE]": KamiyaFault((streamed(no_done=True),), line("incomplete")),
    "no kamiyaInfo": KamiyaFault((streamed(no_kamiya_info=True),), line("incomplete")),
    "malformed event": KamiyaFault((streamed(malformed=True),), line("malformed")),
    "fullContent differs": KamiyaFault(
        (streamed(full_content="What was **billed**, not streamed."),),
        final("What was **billed**, not streamed."),
        "kamiya's",
    ),
    "conversationId changed": KamiyaFault(
        (streamed(conversation_id="moved-conversation"),), say("expired", "en"), "moved"
    ),
}


# Room for a few replies per chat at once, so the victim's warm-up does not slow its reply
# (the pace is tested in test_flood); a scripted 429 is then the only one.
BURST = "per_chat_burst = 20"


@pytest.fixture
def tg_limits() -> Limits:
    return Limits(per_chat_burst=20)


@pytest.fixture
def logs() -> Iterator[Captured]:
    with capture_logs(SECRETS) as captured:
        yield captured


def assert_no_leaks(logs: Captured) -> None:
    assert leaks(logs, SECRETS) == []
    assert "/bot***/getUpdates" in logs.text  # httpx did log the bot's URLs, scrubbed
    assert "httpcore" in logs.text  # and the libraries really spoke at DEBUG


async def start(bot: Bot, tg: FakeTelegram) -> str:
    """The victim's conversation before the fault: its stored id."""
    tg.private_message(tg.user(VICTIM), "warm up")
    await says(tg, VICTIM, "warm up")
    await idle(bot)
    stored = await bot.store.current(f"telegram:{VICTIM}")
    assert stored is not None
    return stored


async def last_message(tg: FakeTelegram, chat: int, shows: str, *, after: int) -> Msg:
    await says(tg, chat, shows, after=after, timeout=15)
    return tg.visible(chat)[-1]


@pytest.mark.parametrize("fault", KAMIYA_FAULTS.values(), ids=KAMIYA_FAULTS.keys())
async def test_kamiya_fault(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya, logs: Captured, fault: KamiyaFault
) -> None:
    config = write_config(
        tmp_path,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        kamiya=fault.kamiya,
        extra=BURST,
    )
    gate = asyncio.Event()
    first, *retries = fault.scripts
    async with running_bot(config) as bot:
        before = await start(bot, tg)
        seen = len(tg.visible(VICTIM))
        fake.enqueue(dataclasses.replace(first, gate=gate), Script(reply="Other answer."))
        fake.enqueue(*retries)
        tg.private_message(tg.user(VICTIM), "victim question")
        await fake.wait_for_requests(2)
        tg.private_message(tg.user(OTHER), "other question")
        await says(tg, OTHER, "Other answer.")  # while the victim's request is in flight
        if fault.opens:
            gate.set()
        shown = await last_message(tg, VICTIM, fault.shows, after=seen)
        await idle(bot)
        stored = await bot.store.current(f"telegram:{VICTIM}")
        other_stored = await bot.store.current(f"telegram:{OTHER}")
    victim = [r for r in fake.requests if r.json.get("content") == "victim question"]
    expected = {
        "kept": before,
        "kamiya's": victim[-1].response_conversation_id,
        "moved": "moved-conversation",
    }[fault.stored]
    assert stored == expected
    assert other_stored is not None
    if fault.stored == "kept":
        assert (shown.text or "").count("⚠️") == 1  # one clear line
    else:
        assert tg.visible(VICTIM)[seen].text == final(fault.scripts[-1].full_content or REPLY)
    assert_no_leaks(logs)


@dataclass(frozen=True)
class TelegramFault:
    inject: Callable[[FakeTelegram], None]
    telegram: str = ""  # [telegram] lines
    waits: bool = False  # a 429: the victim waits, so the other chat is answered first


def dropped_poll(tg: FakeTelegram) -> None:
    tg.drop_polls()


EDITS = 'stream_mode = "edit"'
TELEGRAM_FAULTS = {
    "429 on send": TelegramFault(
        lambda tg: tg.fail_next("sendMessage", status=429, retry_after=1, chat_id=VICTIM),
        waits=True,
    ),
    "429 on edit": TelegramFault(
        lambda tg: tg.fail_next("editMessageText", status=429, retry_after=1, chat_id=VICTIM),
        EDITS,
        waits=True,
    ),
    "5xx on send": TelegramFault(
        lambda tg: tg.fail_next(
            "sendMessage", status=502, description="Bad Gateway", chat_id=VICTIM
        )
    ),
    "5xx on edit": TelegramFault(
        lambda tg: tg.fail_next("editMessageText", status=500, chat_id=VICTIM), EDITS
    ),
    "send dropped": TelegramFault(lambda tg: tg.drop_next("sendMessage")),
    "long poll dropped": TelegramFault(dropped_poll),
    "long poll 5xx": TelegramFault(
        lambda tg: tg.fail_next("getUpdates", status=502, description="Bad Gateway")
    ),
}


@pytest.mark.parametrize("fault", TELEGRAM_FAULTS.values(), ids=TELEGRAM_FAULTS.keys())
async def test_telegram_fault(
    tmp_path: Path, tg: FakeTelegram, fake: FakeKamiya, logs: Captured, fault: TelegramFault
) -> None:
    config = write_config(
        tmp_path,
        kamiya_url=fake.base_url,
        telegram_url=tg.base_url,
        key=KEY,
        extra=f"{BURST}\n{fault.telegram}",
    )
    async with running_bot(config) as bot:
        before = await start(bot, tg)
        seen = len(tg.visible(VICTIM))
        await tg.wait_for(lambda f: f.waiting_polls > 0)
        fault.inject(tg)
        fake.enqueue(streamed(delay_s=0.05))
        tg.private_message(tg.user(VICTIM), "victim question")
        await fake.wait_for_requests(2)
        tg.private_message(tg.user(OTHER), "other question")
        await says(tg, OTHER, "other question", timeout=15)
        await says(tg, VICTIM, "streamed in pieces.", after=seen, timeout=15)
        await idle(bot)
        stored = await bot.store.current(f"telegram:{VICTIM}")
    assert [c for c in tg.calls if not c.ok] or tg.dropped  # the fault did happen
    assert tg.visible_texts(VICTIM)[seen:] == [final(REPLY)]
    assert stored == before == fake.requests[1].response_conversation_id
    assert [r.json.get("content") for r in fake.requests if r.path == CONVERSATION_PATH] == [
        "warm up",
        "victim question",
        "other question",
    ]
    if fault.waits:
        assert tg.count_429 == 1
        answered = [c for c in tg.calls if c.ok and c.chat_id == VICTIM][-1]
        other_done = max(c.at for c in tg.calls if c.ok and c.chat_id == OTHER)
        assert other_done < answered.at  # the other chat did not wait out the victim's penalty
    assert_no_leaks(logs)
