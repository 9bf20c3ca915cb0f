"""Input Telegram may send, and some it should never: no handler ever fails on it.

Hypothesis builds raw updates (fields missing, kinds PTB does not know, edits and channel posts,
huge captions, zero-width, RTL and joined emoji, a text whose emoji straddles the 4096 limit,
entities pointing anywhere, button presses with any data) and the fake delivers each as given.
After each one, no error was logged (PTB's error handler logs every exception a handler
raises) and the next update was fetched; at the end the bot still answers a plain message.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.telegram.texts import COMMANDS
from tests.bots.telegram.chat import idle, says
from tests.fakes.telegram import Limits

if TYPE_CHECKING:
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram

EXAMPLES = 40
BOT_ID, BOT_NAME = 123456, "kamiya_test_bot"
# Zero-width characters, bidi controls, Arabic and Hebrew letters.
ODD = "\u200b\u200c\u200d\u2060\ufeff\u202e\u202d\u200f\u061c\u0645\u0631\u062d\u05e9\u05dc"
EMOJI = ("😀", "👨\u200d👩\u200d👧", "🇯🇵", "👍🏽", "e\u0301")
Json = dict[str, Any]


def straddling(emoji: str) -> str:
    """A text whose ``emoji`` starts just before the 4096th UTF-16 unit and ends after it."""
    return "x" * 4095 + emoji + " tail"


words = st.lists(st.sampled_from([*ODD, *EMOJI, *"ab /@_*`[]()\n"]), max_size=40).map("".join)
texts = st.one_of(
    words,
    st.builds(lambda w: f"@{BOT_NAME} {w}", words),
    st.builds(lambda c, w: f"/{c} {w}", st.sampled_from(COMMANDS), words),
    st.builds(straddling, st.sampled_from(EMOJI)),
    st.builds(lambda n, w: w + "y" * n, st.integers(1000, 6000), words),
)
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["bold", "mention", "bot_command", "text_link", "pre"]),
            "offset": st.integers(0, 5000),
            "length": st.integers(0, 5000),
        }
    ),
    max_size=3,
)
people = st.builds(
    lambda uid, lang: {"id": uid, "is_bot": False, "first_name": "U", "language_code": lang},
    st.integers(1, 10**9),
    st.sampled_from(["en", "zh-hans", "ar", ""]),
)
private = st.builds(
    lambda uid: {"id": uid, "type": "private", "first_name": "U"}, st.integers(1, 10**9)
)
chats = st.one_of(
    private,
    private,  # mostly private chats, where every message is answered
    st.builds(
        lambda gid, kind: {"id": -gid, "type": kind, "title": "G"},
        st.integers(1, 10**12),
        st.sampled_from(["group", "supergroup", "channel"]),
    ),
)
bot_user = st.just({"id": BOT_ID, "is_bot": True, "first_name": "B"})


@st.composite
def messages(draw: st.DrawFn, *, depth: int = 0) -> Json:
    """A Message as Telegram sends it, then some of its fields taken away."""
    body = draw(texts)
    message: Json = {
        "message_id": draw(st.integers(1, 10**6)),
        "date": 1_700_000_000,
        "chat": draw(chats),
        "from": draw(
            st.one_of(people, st.just({"id": BOT_ID, "is_bot": True, "first_name": "B"}))
        ),
    }
    marks = draw(st.one_of(st.just([]), entities))
    if draw(st.integers(0, 3)):
        message["text"] = body
        message["entities"] = marks
    else:
        message["caption"] = body
        message["caption_entities"] = marks
        message["photo"] = [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
    if draw(st.integers(0, 3)) == 0:
        message["message_thread_id"] = draw(st.integers(1, 99))
        message["is_topic_message"] = draw(st.booleans())
    if depth == 0 and draw(st.integers(0, 3)) == 0:
        message["reply_to_message"] = draw(messages(depth=1))
    if draw(st.integers(0, 3)) == 0:  # now and then a field is missing, required or not
        del message[draw(st.sampled_from(sorted(message)))]
    return message


presses = st.builds(
    lambda user, message, data: {
        "id": "hostile",
        "from": user,
        "message": message,
        "chat_instance": "1",
        "data": data,
    },
    people,
    st.one_of(
        messages(), st.just({"chat": {"id": 1, "type": "private"}, "message_id": 1, "date": 0})
    ),
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            ["s:", "g:x:y", "g:1:", "m:", "h:zz", "m:default", "r:nope", "g:9:local-x"]
        ),
    ),
)
updates = st.one_of(
    st.builds(lambda m: {"message": m}, messages()),
    st.builds(lambda m: {"message": m}, messages()),
    st.builds(lambda m: {"edited_message": m}, messages()),
    st.builds(lambda m: {"channel_post": m}, messages()),
    st.builds(lambda q: {"callback_query": q}, presses),
    st.builds(
        lambda q, drop: {"callback_query": {k: v for k, v in q.items() if k != drop}},
        presses,
        st.sampled_from(["from", "data", "message", "chat_instance"]),
    ),
    st.sampled_from(
        [{"future_kind": {"x": 1}}, {"message": None}, {"message": []}, {"poll": {"id": "1"}}, {}]
    ),
)


@pytest.fixture
def tg_limits() -> Limits:
    return Limits.off()  # the pace is tested elsewhere; many replies may share a chat here


@pytest.fixture
def settings_toml() -> str:
    return "per_chat_per_s = 1000\nper_chat_burst = 1000\nglobal_per_s = 1000"


def generate() -> list[Json]:
    found: list[Json] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(updates)
    def collect(update: Json) -> None:
        found.append(update)

    collect()
    return found


async def fetched(tg: FakeTelegram, update: Json) -> None:
    """Until the bot fetched ``update`` and confirmed it with its next poll."""
    await tg.wait_for(lambda f: update not in f.pending_updates)


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_hostile_updates_never_fail_a_handler(
    tg: FakeTelegram, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for n, update in enumerate(generate()):
        if isinstance(query := update.get("callback_query"), dict) and "id" in query:
            query["id"] = f"hostile-{n}"  # each press is a new one
        await fetched(tg, tg.send_raw(update))
        assert failures(caplog) == [], json.dumps(update, ensure_ascii=False)[:2000]
    await idle(bot)
    assert failures(caplog) == []
    tg.private_message(tg.user(424242), "still there?")
    await says(tg, 424242, "still there?")
