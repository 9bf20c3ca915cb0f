"""Hostile input: malformed interactions and gateway events never crash a handler.

Hypothesis builds the events (collected first, then sent over the fake's gateway to the one
running bot): interactions of every type, known and unknown, with options of the wrong type,
huge strings, zero-width and right-to-left characters, emoji straddling Discord's 2000
characters, garbage autocomplete; the well-formed envelope of a real /chat with fields dropped
or replaced; messages that mention the bot; events discord.py has never heard of. Afterwards
the gateway connection is the same one, no handler logged a crash, and a normal /chat is
answered.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bots.discord.harness import settled
from tests.fakes.discord import CHANNEL_ID, Limits
from tests.waiting import until

if TYPE_CHECKING:
    from core.fake_kamiya import FakeKamiya
    from tests.bots.discord.harness import Bot
    from tests.fakes.discord import FakeDiscord

pytestmark = pytest.mark.parametrize(
    "settings_toml",
    ["reply_to_mentions = true\nmin_edit_interval_s = 0.02\nedits_per_window = 1000"],
)


@pytest.fixture
def dc_limits() -> Limits:
    return Limits()  # no 429s: dozens of replies in one channel, at the test's pace


#: Log lines that mean an exception escaped a handler (discord.py's catch-alls, asyncio's
#: unretrieved task errors, our own last-resort handlers).
CRASHES = (
    "Ignoring exception",
    "exception was never retrieved",
    "a background job failed",
    "frontend sink failed",
    "button press failed",
    "failed\n",
)
SPECIALS = [
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\u200e",
    "\u200f",  # left-to-right, right-to-left marks
    "\u202e",  # right-to-left override
    "\u2066",
    "\ufeff",
    "\x00",
    "👨‍👩‍👧‍👦",
    "🇺🇳",
    "👍🏽",
    "é",
    "עברית",
    "العربية",
    "```",
    "\n",
    "@everyone",
    "<@1>",
    "kamiya:stop:",
    "kamiya:regen:1:",
]
COMMANDS = ["chat", "reset", "help", "model", "system", "history", "resume", "usage", "stats"]
OPTIONS = ["prompt", "name", "text", "conversation"]

# Discord's JSON is UTF-8: no lone surrogates (discord.py's orjson refuses them).
chars = st.characters(exclude_categories=["Cs"])
weird_text = st.lists(st.sampled_from(SPECIALS) | st.text(chars, max_size=6), max_size=24).map(
    "".join
)
# A prompt whose echo puts an emoji (or a joiner) across the 2000-character boundary.
straddling = st.builds(
    lambda n, tail: "x" * n + tail, st.integers(1960, 2010), st.sampled_from(SPECIALS)
)
huge = st.integers(3990, 7000).map(lambda n: "y" * n)
texts = weird_text | straddling | huge | st.text(chars, max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(chars, max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
option = st.fixed_dictionaries(
    {
        "name": st.sampled_from(OPTIONS) | st.text(chars, max_size=8),
        "type": st.sampled_from([3, 3, 4, 5, 10])
        | st.integers(-2, 12)
        | st.text(chars, max_size=2),
        "value": texts | json_values,
    },
    optional={"focused": st.booleans(), "options": st.just([])},
)
command_data = st.fixed_dictionaries(
    {
        "id": st.integers(1, 2**63).map(str),
        "name": st.sampled_from(COMMANDS) | st.text(chars, max_size=33),
        "type": st.sampled_from([1, 1, 1, 2, 3, 99]),
    },
    optional={"options": st.lists(option, max_size=3) | json_values},
)
component_data = st.fixed_dictionaries(
    {
        "custom_id": texts | st.builds(lambda a, b: f"kamiya:{a}:{b}", weird_text, weird_text),
        "component_type": st.integers(-1, 20) | st.text(chars, max_size=2),
    },
    optional={"values": st.lists(weird_text, max_size=3)},
)
interaction_kinds = st.sampled_from([1, 2, 2, 3, 3, 4, 4, 5, 0, 42])


@st.composite
def raw_interactions(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(interaction_kinds)
    data = draw(component_data if kind == 3 else command_data | json_values)
    return "interact", (kind, data)


def envelopes(template: dict[str, object]) -> st.SearchStrategy[tuple[str, object]]:
    """A real /chat's INTERACTION_CREATE with fields dropped or replaced, at two levels."""
    keys = sorted(template)

    @st.composite
    def mutated(draw: st.DrawFn) -> tuple[str, object]:
        payload = copy.deepcopy(template)
        for key in draw(st.sets(st.sampled_from(keys), max_size=4)):
            payload.pop(key, None)
        for key, value in draw(
            st.dictionaries(st.sampled_from(keys), json_values, max_size=2)
        ).items():
            payload[key] = value
        for part in ("data", "member", "channel"):
            inner = payload.get(part)
            if isinstance(inner, dict) and inner and draw(st.booleans()):
                inner.pop(draw(st.sampled_from(sorted(inner))), None)
        return "INTERACTION_CREATE", payload

    return mutated()


other_events = st.tuples(
    st.sampled_from(["MESSAGE_CREATE", "MESSAGE_UPDATE", "CHANNEL_UPDATE", "GUILD_ROLE_CREATE"])
    | st.text(chars, min_size=1, max_size=20),
    json_values,
)
mentions = st.tuples(st.just("mention"), texts)


def collect(
    strategy: st.SearchStrategy[tuple[str, object]], count: int
) -> list[tuple[str, object]]:
    """``count`` examples of ``strategy``, drawn by Hypothesis (no shrinking: the bot runs
    once for all of them, and the failing one is in the assertion's message)."""
    drawn: list[tuple[str, object]] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,  # the same events on every run: CI never meets a new one by chance
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(example: tuple[str, object]) -> None:
        drawn.append(example)

    draw()
    return drawn


def send(dc: FakeDiscord, example: tuple[str, object]) -> None:
    kind, value = example
    if kind == "interact":
        assert isinstance(value, tuple)
        code, data = value
        assert isinstance(code, int)
        dc.interact(code, data)
    elif kind == "mention":
        dc.message(CHANNEL_ID, str(value)[:1970], mentions_bot=True)  # a user's limit
    else:
        dc.gateway.dispatch(kind, value)  # type: ignore[arg-type]


async def test_malformed_interactions_and_events_crash_no_handler(
    dc: FakeDiscord, fake: FakeKamiya, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    template = dc.slash("chat", {"prompt": "template"})
    await settled(bot, dc, template)
    sessions = dc.gateway.identify_count
    examples = [
        *collect(raw_interactions(), 24),
        *collect(envelopes(template.payload), 16),
        *collect(other_events, 8),
        *collect(mentions, 6),
    ]
    for example in examples:
        send(dc, example)
    last = dc.slash("help")
    await dc.wait_for(lambda f: last.acknowledged, timeout=30)
    await until(lambda: not bot.frontend.busy, timeout=60)

    crashes = [r for r in caplog.records if any(c in r.getMessage() + "\n" for c in CRASHES)]
    assert crashes == [], [r.getMessage() for r in crashes]
    assert dc.connected
    assert dc.gateway.identify_count == sessions  # the same session: the gateway never died
    normal = dc.slash("chat", {"prompt": "still there?"})
    await settled(bot, dc, normal)
    shown = normal.original or ""
    assert shown.startswith("> still there?\n**Echo** (turn ")
    assert shown.endswith("): still there?")
