"""Every fault of Kamiya and of Discord, one at a time, while another channel is served.

Each case is the second turn of a channel (the first stored a conversation): its Kamiya answer
is held until a /chat in a thread has been answered in full, so the bot serves one channel
while the other is stuck or failing. Then the fault runs its course, and the case checks:
one clear line (after what was shown, marked cut off) or the complete reply; the stored
conversation (the old one after a failure, the new one after a reply); and that nothing
logged, by the bot or any library at DEBUG, contains the Kamiya key or the bot token.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pytest

from core import text
from core.fake_kamiya import Script
from tests.bots.discord.harness import TOKEN, settled
from tests.bots.discord.leaks import debug_logging
from tests.conftest import KEY
from tests.fakes import discord_payloads as p
from tests.fakes.discord import APP_ID, CHANNEL_ID, THREAD_ID

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from core.fake_kamiya import FakeKamiya
    from tests.bots.discord.harness import Bot
    from tests.bots.discord.leaks import Logged
    from tests.fakes.discord import FakeDiscord, Interaction

CHAT = f"discord:{CHANNEL_ID}"
CUT = text("cut_off_mark")
LONG = "".join(f"part{i} " for i in range(60))  # a few edits' worth at 6 characters / 20 ms
MOVED = "moved-0b0e2b7e"

Arm = "Callable[[FakeDiscord, Interaction], None]"


def original(inter: Interaction) -> str:
    return f"/webhooks/{APP_ID}/{inter.token}/messages/@original"


def edit_429(*, is_global: bool) -> Callable[[FakeDiscord, Interaction], None]:
    def arm(dc: FakeDiscord, inter: Interaction) -> None:
        body = p.rate_limited(0.3, is_global=is_global)
        dc.fail_next("PATCH", original(inter), status=429, body=body)

    return arm


def token_gone(code: int) -> Callable[[FakeDiscord, Interaction], None]:
    def arm(dc: FakeDiscord, inter: Interaction) -> None:
        error = p.unknown_webhook() if code == 10015 else p.invalid_webhook_token()
        dc.fail_next(
            "*", f"/webhooks/{APP_ID}/{inter.token}*", status=error.status, body=error.body
        )

    return arm


def token_gone_then_channel_429(dc: FakeDiscord, inter: Interaction) -> None:
    token_gone(50027)(dc, inter)
    dc.fail_next("*", f"/channels/{CHANNEL_ID}/messages*", status=429, retry_after=0.3)


def edit_500(dc: FakeDiscord, inter: Interaction) -> None:
    dc.fail_next("PATCH", original(inter), status=500)


@dataclass(frozen=True)
class Case:
    """A's Kamiya answers (the first held until the thread is served) and what A ends as.

    ``line``: a fragment of the one clear line A's last message ends with (None: the complete
    reply, ``reply``). ``stored``: which conversation the channel has afterwards. ``discord``
    arms a Discord fault for A's interaction, at once or (``later``) once A shows text.
    """

    id: str
    scripts: tuple[Script, ...] = (Script(),)
    line: str | None = None
    partial: bool = False  # A showed text before the fault: kept, marked cut off
    reply: str | None = None
    stored: Literal["old", "new"] | str = "new"
    kamiya: str = "retries = 0"
    hold: bool = True
    never: bool = False  # held for good: Kamiya never answers
    discord: Callable[[FakeDiscord, Interaction], None] | None = None
    later: bool = False
    hit: Callable[[FakeDiscord], bool] | None = None  # the Discord fault happened
    asked: int = 1  # Kamiya requests A makes


SLOW = Script(reply=LONG, chunk_chars=6, delay_s=0.02)
TIMEOUT = "request_timeout_s = 0.5\nretries = 0"
RETRY = "retries = 2\nretry_max_s = 0.2"

KAMIYA = [
    Case("401", (Script(status=401),), "not set up correctly", stored="old"),
    Case("402", (Script(status=402),), "credit", stored="old"),
    Case("403", (Script(status=403),), "may not use this model", stored="old"),
    Case(
        "429 Retry-After",
        (Script(status=429, headers={"Retry-After": "20"}),),
        "20 s",
        stored="old",
    ),
    Case("429", (Script(status=429),), "Kamiya is busy", stored="old"),
    Case("500", (Script(status=500),), "not answering", stored="old"),
    Case("502", (Script(status=502),), "not answering", stored="old"),
    Case(
        "timeout before the first byte",
        (Script(),),
        "not answering",
        stored="old",
        kamiya=TIMEOUT,
        never=True,
    ),
    Case(
        "stall mid-stream",
        (Script(reply="some words and then nothing", chunk_chars=5, delay_s=5.0),),
        "cut off",
        partial=True,
        stored="old",
        kamiya=TIMEOUT,
        hold=False,
    ),
    Case(
        "dropped mid-stream",
        (Script(reply=LONG, chunk_chars=6, delay_s=0.01, drop_after=4),),
        "cut off",
        partial=True,
        stored="old",
    ),
    Case("no [DONE]", (Script(reply=LONG, no_done=True),), "cut off", partial=True, stored="old"),
    Case(
        "no kamiyaInfo",
        (Script(reply=LONG, no_kamiya_info=True),),
        "cut off",
        partial=True,
        stored="old",
    ),
    Case(
        "malformed JSON",
        (Script(reply=LONG, malformed=True),),
        "could not read",
        partial=True,
        stored="old",
    ),
    Case(
        "fullContent differs from the deltas",
        (Script(reply="streamed text", full_content="The billed text."),),
        reply="The billed text.",
    ),
    Case(
        "a changed conversationId",
        (Script(reply="On a new context.", conversation_id=MOVED),),
        reply=f"-# {'The earlier conversation had expired, so I started a new one.'}\n"
        "On a new context.",
        stored=MOVED,
    ),
]
RETRIED = [
    Case("retries = 0: 429 is one line", (Script(status=429),), "Kamiya is busy", stored="old"),
    Case("retries = 0: 503 is one line", (Script(status=503),), "not answering", stored="old"),
    Case(
        "retries = 2: 429, 429 with Retry-After, then the reply",
        (Script(status=429), Script(status=429, headers={"Retry-After": "1"}), Script()),
        kamiya=RETRY,
        asked=3,
    ),
    Case(
        "retries = 2: 500, 502, then the reply",
        (Script(status=500), Script(status=502), Script()),
        kamiya=RETRY,
        asked=3,
    ),
]


def answered(status: int, where: str = "/webhooks/") -> Callable[[FakeDiscord], bool]:
    return lambda dc: any(c.status == status and c.path.startswith(where) for c in dc.calls)


def filled_through_the_channel(dc: FakeDiscord) -> bool:
    """The "thinking…" response took the reply through the channel route: no new message."""
    kinds = [m.kind for m in dc.visible(CHANNEL_ID)]
    return kinds == ["original", "original"] and bool(dc.calls_of("edit_message"))


def continued_in_channel_messages(dc: FakeDiscord) -> bool:
    return bool(dc.channel_messages(CHANNEL_ID)) and answered(401)(dc)


DISCORD = [
    Case("429 on an edit", (SLOW,), discord=edit_429(is_global=False), hit=answered(429)),
    Case(
        "a global 429 on an edit",
        (SLOW,),
        discord=edit_429(is_global=True),
        hit=answered(429),
    ),
    Case(
        "10015 unknown webhook on the first edit",
        (SLOW,),
        discord=token_gone(10015),
        hit=filled_through_the_channel,
    ),
    Case(
        "50027 invalid token mid-reply",
        (SLOW,),
        discord=token_gone(50027),
        later=True,
        hit=continued_in_channel_messages,
    ),
    Case(
        "token gone, then 429 on the channel route",
        (SLOW,),
        discord=token_gone_then_channel_429,
        later=True,
        hit=answered(429, "/channels/"),
    ),
    Case("a 500 on an edit", (SLOW,), discord=edit_500, hit=answered(500)),
]
CASES = [*KAMIYA, *RETRIED, *DISCORD]


@pytest.fixture
def kamiya_toml(request: pytest.FixtureRequest) -> str:
    case: Case | None = getattr(request, "param", None)
    return "retries = 0" if case is None else case.kamiya


@pytest.fixture
def logged() -> Iterator[Logged]:
    with debug_logging((KEY, TOKEN)) as captured:
        yield captured


def shown_text(dc: FakeDiscord, channel: int, skip: int) -> str:
    """The channel's messages after the first ``skip``, read as one text."""
    return "\n".join(m.content for m in dc.visible(channel)[skip:])


@pytest.mark.parametrize(
    ("case", "kamiya_toml"),
    [(c, c) for c in CASES],
    ids=[c.id for c in CASES],
    indirect=["kamiya_toml"],
)
async def test_a_fault_is_one_line_or_the_whole_reply_and_other_channels_go_on(
    logged: Logged, dc: FakeDiscord, fake: FakeKamiya, bot: Bot, case: Case
) -> None:
    first = dc.slash("chat", {"prompt": "first"})
    await settled(bot, dc, first)
    before = await bot.store.current(CHAT)
    assert before is not None
    gate = asyncio.Event()
    head, *rest = case.scripts
    fake.enqueue(dataclasses.replace(head, gate=gate) if case.hold else head)
    asked = dc.slash("chat", {"prompt": "second"})
    if case.discord is not None and not case.later:
        case.discord(dc, asked)
    await fake.wait_for_requests(2)
    other = dc.slash("chat", {"prompt": "meanwhile"}, thread=True)
    await dc.wait_for(lambda f: other.original == "> meanwhile\n**Echo** (turn 1): meanwhile")
    fake.enqueue(*rest)
    if not case.never:
        gate.set()
    if case.discord is not None and case.later:
        await dc.wait_for(lambda f: "part1 " in (asked.original or ""))
        case.discord(dc, asked)
    await settled(bot, dc, asked, other)

    shown = shown_text(dc, CHANNEL_ID, skip=1)
    assert shown.startswith("> second\n")
    assert not any(m.loading or m.buttons for m in dc.visible(CHANNEL_ID))
    if case.line is None:
        reply = case.reply or (LONG.strip() if head.reply == LONG else "**Echo** (turn 2): second")
        assert shown.replace("\n", " ").replace(" ", "") == f"> second\n{reply}".replace(
            "\n", " "
        ).replace(" ", "")
    else:
        last_line = shown.rsplit("\n", 1)[-1]
        assert last_line.startswith("⚠️ ")
        assert case.line in last_line
        assert (f" {CUT}\n\n⚠️ " in shown) == case.partial
    if case.hit is not None:
        assert case.hit(dc), [f"{c.method} {c.path} {c.status}" for c in dc.calls[-12:]]
    kamiya = [r for r in fake.requests if r.json.get("content") == "second"]
    assert len(kamiya) == case.asked
    assert kamiya[0].conversation_id == before
    stored = await bot.store.current(CHAT)
    if case.stored == "old":
        assert stored == before
    elif case.stored == "new":  # what kamiyaInfo said: the same conversation, one turn on
        assert stored == kamiya[-1].response_conversation_id == before
    else:
        assert stored == case.stored
    assert [m.content for m in dc.visible(THREAD_ID)] == [
        "> meanwhile\n**Echo** (turn 1): meanwhile"
    ]
    assert any("sent the IDENTIFY payload" in line for line in logged.raw)  # DEBUG from login on
    assert logged.leaks() == []


async def test_a_thinking_message_the_channel_route_cannot_fill_is_left_for_a_new_one(
    dc: FakeDiscord, fake: FakeKamiya, bot: Bot
) -> None:
    gate = asyncio.Event()
    fake.enqueue(Script(reply="Here it is.", gate=gate))
    asked = dc.slash("chat", {"prompt": "q"})
    token_gone(10015)(dc, asked)
    dc.fail_next("PATCH", "edit_message", status=403)  # a channel the bot may not write in
    await dc.wait_for(lambda f: asked.acknowledged)
    gate.set()
    await settled(bot, dc, asked)
    [reply] = dc.channel_messages(CHANNEL_ID)
    assert reply.content == "> q\nHere it is."
    assert asked.original_message is not None
    assert asked.original_message.loading  # Discord keeps "thinking…" until the token dies
    assert await bot.store.current(CHAT) == fake.requests[-1].response_conversation_id
