"""Reading a chat of the fake Telegram the way a user does: what the bot said, and its buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH
from tests.waiting import until

if TYPE_CHECKING:
    from core.fake_kamiya import FakeKamiya, RecordedRequest
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram, Msg
    from tests.fakes.telegram_text import JsonObject


async def says(
    tg: FakeTelegram,
    chat: int,
    needle: str,
    *,
    after: int = 0,
    timeout: float = 10.0,  # noqa: ASYNC109 - passed on to the fake's wait
) -> Msg:
    """The newest bot message (with id above ``after``) that shows ``needle``, once one does."""

    def found() -> list[Msg]:
        return [m for m in tg.visible(chat) if m.message_id > after and needle in (m.text or "")]

    def shown(_: FakeTelegram) -> bool:
        return bool(found())

    shown.__qualname__ = f"chat {chat} shows {needle!r}"
    await tg.wait_for(shown, timeout)
    return found()[-1]


async def becomes(
    tg: FakeTelegram,
    message: Msg,
    needle: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - passed on to the fake's wait
) -> Msg:
    """``message`` of the bot once an edit made it show ``needle``."""

    def now() -> Msg | None:
        return tg.message(message.chat_id, message.message_id)

    def edited(_: FakeTelegram) -> bool:
        current = now()
        return current is not None and needle in (current.text or "")

    edited.__qualname__ = f"message {message.message_id} shows {needle!r}"
    await tg.wait_for(edited, timeout)
    found = now()
    assert found is not None
    return found


async def answer_to(tg: FakeTelegram, asked: JsonObject, bot: Bot, n: int = 1) -> list[Msg]:
    """The bot's complete reply (``n`` messages or more) to the user's message ``asked``."""
    chat = asked["chat"]["id"]

    def replies() -> list[Msg]:
        first = [m for m in tg.visible(chat) if m.reply_to == asked["message_id"]]
        if not first:
            return []
        return [m for m in tg.visible(chat) if m.message_id >= first[0].message_id]

    await tg.wait_for(lambda _: len(replies()) >= n)
    await idle(bot)
    return replies()


async def idle(bot: Bot) -> None:
    """Until the bot has finished every reply and answer it started."""
    await until(lambda: not bot.frontend.busy, timeout=10)


def asked(fake: FakeKamiya) -> list[RecordedRequest]:
    """The requests that answered users: model probes (one token) and titles left out."""
    return [
        r
        for r in fake.requests
        if r.path == CONVERSATION_PATH
        or (r.path == COMPLETIONS_PATH and "max_tokens" not in r.json)
    ]


def button_data(tg: FakeTelegram, method: str, prefix: str) -> list[str]:
    """Callback data of every button the bot ever sent with ``method`` that starts so."""
    found = []
    for call in tg.calls_of(method):
        markup = call.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            found += [b["callback_data"] for b in row if b["callback_data"].startswith(prefix)]
    return found
