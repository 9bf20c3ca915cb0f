"""The fake Telegram's webhooks: setWebhook and friends as the Bot API answers them through
PTB, getUpdates refused while one is set, and ``WebhookSender`` pushing to loopback listeners."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, Conflict

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_sender import SECRET_HEADER, WebhookSender
from tests.fakes.telegram_webhook import WEBHOOK_ACTIVE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.fakes.telegram_text import JsonObject

TOKEN = "123456:TEST-TOKEN"
URL = "https://bot.example.org/hook"
SECRET = "s3cret_-token"


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{tg.base_url}/bot") as client:
        yield client


class Listener:
    """A bot's webhook stand-in: answers each POST with the next scripted status (else 200)."""

    def __init__(self) -> None:
        self.statuses: deque[int] = deque()
        self.received: list[tuple[JsonObject, str | None]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Listener:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.headers.get(SECRET_HEADER)))
        return web.Response(status=self.statuses.popleft() if self.statuses else 200)


async def test_set_get_and_delete_webhook_as_the_bot_api_does(tg: FakeTelegram, bot: Bot) -> None:
    tg.private_message(tg.user(1), "waiting")
    assert await bot.set_webhook(URL, secret_token=SECRET, allowed_updates=["message"])
    assert await bot.set_webhook(URL, secret_token=SECRET, max_connections=3)  # idempotent
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.max_connections) == (URL, 1, 3)
    assert info.allowed_updates == ("message",)  # kept when not given again
    assert tg.webhook.secret_token == SECRET
    assert await bot.delete_webhook()
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("", 1)
    await bot.set_webhook(URL)
    assert await bot.set_webhook("")  # an empty URL removes it
    assert tg.webhook.url == ""


@pytest.mark.parametrize(
    ("url", "secret", "refusal"),
    [
        ("http://bot.example.org/hook", None, "an https url must be provided"),
        ("https://bot.example.org:8080/hook", None, "ports 80, 88, 443 or 8443"),
        (URL, "has space", "secret token contains unallowed characters"),
        (URL, "x" * 257, "secret token contains unallowed characters"),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    tg: FakeTelegram, bot: Bot, url: str, secret: str | None, refusal: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        await bot.set_webhook(url, secret_token=secret)
    assert refusal in refused.value.message.lower()
    assert tg.webhook.url == ""


async def test_get_updates_is_a_conflict_while_a_webhook_is_set(
    tg: FakeTelegram, bot: Bot
) -> None:
    polling = asyncio.create_task(bot.get_updates(timeout=5))
    await tg.wait_for(lambda f: f.waiting_polls == 1)
    async with Bot(TOKEN, base_url=f"{tg.base_url}/bot") as other:
        await other.set_webhook(URL)
    tg.private_message(tg.user(1), "for the webhook")
    with pytest.raises(Conflict, match="terminated by setWebhook request"):
        await polling
    with pytest.raises(Conflict) as refused:
        await bot.get_updates(timeout=0)
    assert refused.value.message in WEBHOOK_ACTIVE
    assert len(tg.pending_updates) == 1  # nothing was taken
    await bot.delete_webhook()
    assert len(await bot.get_updates(timeout=0)) == 1


async def test_sender_pushes_in_order_once_a_webhook_is_set_with_its_secret(
    tg: FakeTelegram, bot: Bot
) -> None:
    async with (
        Listener() as one,
        Listener() as two,
        WebhookSender(tg, [one.url, two.url]) as sender,
    ):
        first = tg.private_message(tg.user(1), "first")
        second = tg.private_message(tg.user(2), "second")
        third = tg.private_message(tg.user(3), "third")
        assert sender.deliveries == []  # no webhook yet: Telegram keeps them
        await bot.set_webhook(URL, secret_token=SECRET)
        await tg.wait_for(lambda f: not f.pending_updates)
    pushed = [update["message"] for update, _ in one.received + two.received]
    assert [u["message"]["text"] for u, _ in one.received] == ["first", "third"]
    assert [u["message"]["text"] for u, _ in two.received] == ["second"]
    assert {m["message_id"] for m in pushed} == {
        first["message_id"],
        second["message_id"],
        third["message_id"],
    }
    assert {secret for _, secret in one.received + two.received} == {SECRET}
    assert [d.attempt for d in sender.deliveries] == [1, 1, 1]
    ids = [d.update_id or 0 for d in sender.deliveries]
    assert ids == sorted(ids)


async def test_sender_retries_elsewhere_then_gives_up_as_telegram_does(
    tg: FakeTelegram, bot: Bot
) -> None:
    async with Listener() as one, Listener() as two:
        one.statuses.extend([503, 500])
        two.statuses.extend([502])
        async with WebhookSender(tg, [one.url, two.url], attempts=2, push=False) as sender:
            tg.private_message(tg.user(1), "503 then 502: given up")
            tg.private_message(tg.user(2), "500 then 200")
            tg.private_message(tg.user(3), "straight through")
            done = await sender.flush()
            assert await sender.flush() == []
            unanswered = await sender.post({"update_id": 77}, "http://127.0.0.1:1/hook")
    assert [d.status for d in done] == [502, 200, 200]
    assert [(d.attempt, d.status) for d in sender.deliveries[:4]] == [
        (1, 503),
        (2, 502),
        (1, 500),
        (2, 200),
    ]
    assert [d.url for d in sender.deliveries[:5]] == [one.url, two.url] * 2 + [one.url]
    assert [u["message"]["text"] for u in sender.given_up] == ["503 then 502: given up"]
    assert tg.pending_updates == []
    assert unanswered is None
    assert sender.deliveries[-1].status is None


async def test_sender_drops_updates_the_webhook_did_not_ask_for(
    tg: FakeTelegram, bot: Bot
) -> None:
    await bot.set_webhook(URL, allowed_updates=["callback_query"])
    async with Listener() as one, WebhookSender(tg, [one.url], push=False) as sender:
        message = tg.private_message(tg.user(1), "not wanted")
        tg.callback_query(tg.user(1), message, "press")
        await sender.flush()
    assert [next(k for k in u if k != "update_id") for u, _ in one.received] == ["callback_query"]
    assert one.received[0][1] is None  # no secret_token was set: no header
