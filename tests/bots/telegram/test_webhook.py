"""Webhook mode: the fake Telegram POSTs updates to the bot's aiohttp listener (``WebhookSender``)
and the bot answers them as in polling mode; only Telegram's secret gets an update in."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
from typing import TYPE_CHECKING

import aiohttp
import pytest
from telegram import Bot as PtbBot

from bots.telegram.format import split
from core.fake_kamiya import Script
from tests.bots.cli import run
from tests.bots.telegram.chat import idle, says
from tests.bots.telegram.harness import TOKEN, running_bot, write_config
from tests.bots.telegram.leaks import capture_logs, leaks
from tests.bots.telegram.process import bot_process
from tests.conftest import KEY
from tests.fakes.telegram_sender import SECRET_HEADER, WebhookSender
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from telegram import Update

    from core.fake_kamiya import FakeKamiya
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.telegram_text import JsonObject

SECRET = "wh-S3cret_0123456789abcdef"
PUBLIC_URL = "https://bot.example.org:8443/tg/hook"
WEBHOOK = (
    f'mode = "webhook"\nwebhook_listen = "127.0.0.1:0"\n'
    f'webhook_url = "{PUBLIC_URL}"\nwebhook_secret = "{SECRET}"\n'
)


@pytest.fixture
def settings_toml() -> str:
    return WEBHOOK


@pytest.fixture
async def sender(tg: FakeTelegram, bot: Bot) -> AsyncIterator[WebhookSender]:
    assert bot.frontend.webhook is not None
    async with WebhookSender(tg, [bot.frontend.webhook.url]) as pushing:
        yield pushing


def url_of(bot: Bot) -> str:
    assert bot.frontend.webhook is not None
    return bot.frontend.webhook.url


async def test_a_message_by_webhook_streams_and_ends_as_in_polling(tg, fake, bot, sender):
    reply = "Hello **there**, from the webhook."
    fake.enqueue(Script(reply=reply, chunk_chars=3, delay_s=0.02))
    asked = tg.private_message(tg.user(8101), "hi by webhook")
    await tg.wait_for(lambda f: len(f.visible(8101)) == 1)
    assert tg.visible_texts(8101) == [c.text for c in split(reply)]
    assert tg.drafts(8101)  # it streamed first
    assert fake.requests[0].json == {"content": "hi by webhook"}
    replied_to = tg.calls_of("sendMessage")[0].params["reply_parameters"]["message_id"]
    assert replied_to == asked["message_id"]
    assert [d.status for d in sender.deliveries] == [200]
    assert tg.pending_updates == []  # confirmed by the 200
    assert not tg.calls_of("getUpdates")


async def test_a_webhook_bot_is_healthy_until_it_stops(tg, make_bot):
    # No long poll runs in webhook mode: the listener is what takes updates.
    async with make_bot() as bot:
        assert bot.frontend.healthy()
        stopping = asyncio.create_task(bot.frontend.stop())
        await until(lambda: bot.frontend.webhook is None or bot.frontend.webhook.closing)
        assert not bot.frontend.healthy()
        await stopping


async def test_start_registers_the_webhook_with_the_secret_and_the_polled_updates(tg, bot):
    (call,) = tg.calls_of("setWebhook")
    assert call.params["url"] == PUBLIC_URL
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    assert tg.webhook.url == PUBLIC_URL
    assert not tg.calls_of("deleteWebhook")


async def test_stop_keeps_the_webhook_for_the_other_processes(tg, make_bot):
    async with make_bot():
        pass
    async with make_bot():  # a second process (or a restart) sets it again: idempotent
        pass
    assert len(tg.calls_of("setWebhook")) == 2
    assert not tg.calls_of("deleteWebhook")
    assert tg.webhook.url == PUBLIC_URL


@pytest.mark.parametrize("secret", [None, "wrong-secret", SECRET[:-1], SECRET + "x"])
async def test_without_the_secret_nothing_gets_in(tg, fake, bot, secret):
    accepted: list[Update] = []

    async def accept(update: Update) -> None:
        accepted.append(update)

    bot.frontend.accept = accept
    async with WebhookSender(tg, [url_of(bot)], secret=secret, attempts=2, push=False) as sender:
        tg.private_message(tg.user(8102), "let me in")
        (delivery,) = await sender.flush()
    assert sender.statuses(delivery.update_id) == [403, 403]  # type: ignore[arg-type]
    await idle(bot)
    assert accepted == []
    assert fake.requests == []
    assert not tg.calls_of("sendMessage")
    assert not tg.calls_of("sendMessageDraft")
    assert not tg.calls_of("sendChatAction")


async def test_requests_that_are_not_updates_get_4xx_and_no_traceback(tg, fake, bot, caplog):
    url = url_of(bot)
    headers = {SECRET_HEADER: SECRET}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as got:
            assert got.status == 405
        async with session.post(url, data=b"{not json", headers=headers) as bad:
            assert bad.status == 400
        async with session.post(url, data=b"[1, 2]", headers=headers) as array:
            assert array.status == 400
        async with session.post(url, json={"message": {}}, headers=headers) as no_id:
            assert no_id.status == 400
        huge = json.dumps({"update_id": 1, "pad": "x" * 2_000_000}).encode()
        async with session.post(url, data=io.BytesIO(huge), headers=headers) as big:
            assert big.status == 413
        async with session.post(url + "/other", json={"update_id": 2}, headers=headers) as lost:
            assert lost.status == 404
        # Readable JSON PTB cannot make a message of: accepted bare, as in polling.
        odd = {"update_id": 3, "message": {"text": "no chat, no date"}}
        async with session.post(url, json=odd, headers=headers) as unreadable:
            assert unreadable.status == 200
    await idle(bot)
    assert "Traceback" not in caplog.text
    assert not tg.calls_of("sendMessage")
    assert fake.requests == []


async def test_an_accept_that_fails_is_a_500_and_telegram_retries(tg, fake, bot):
    failures = [RuntimeError("database down")]

    async def flaky(update: Update) -> None:
        if failures:
            raise failures.pop()
        await bot.frontend.enqueue(update)

    bot.frontend.accept = flaky
    async with WebhookSender(tg, [url_of(bot)]) as sender:
        tg.private_message(tg.user(8103), "second time lucky")
        await says(tg, 8103, "second time lucky")
    assert [d.status for d in sender.deliveries] == [500, 200]
    assert len(fake.requests) == 1


async def test_a_stopping_process_answers_503_and_another_takes_the_update(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path
) -> None:
    """Two processes behind one URL: one stops; what reaches it meanwhile gets a 503, and
    Telegram's retry goes to the other; the update it had accepted is still answered."""
    configs = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        configs.append(
            write_config(
                folder, kamiya_url=fake.base_url, telegram_url=tg.base_url, extra=WEBHOOK, key=KEY
            )
        )
    held, release = asyncio.Event(), asyncio.Event()
    async with running_bot(configs[0]) as first, running_bot(configs[1]) as second:
        server = first.frontend.webhook
        assert server is not None

        async def slow(update: Update) -> None:
            held.set()
            await release.wait()
            await first.frontend.enqueue(update)

        first.frontend.accept = slow
        urls = [url_of(first), url_of(second)]

        def first_then_second(update: JsonObject, attempt: int) -> str:
            return urls[min(attempt, 2) - 1]

        async with WebhookSender(tg, urls, choose=first_then_second, push=False) as sender:
            tg.private_message(tg.user(8104), "accepted before the stop")
            tg.private_message(tg.user(8105), "sent during the stop")
            before, during = tg.pending_updates
            accepting = asyncio.create_task(sender.deliver(before))
            await held.wait()
            stopping = asyncio.create_task(first.frontend.stop())
            await until(lambda: server.closing)
            await sender.deliver(during)
            release.set()
            await accepting
            await stopping
        await says(tg, 8104, "accepted before the stop")
        await says(tg, 8105, "sent during the stop")
    assert sender.statuses(before["update_id"]) == [200]
    assert sender.statuses(during["update_id"]) == [503, 200]
    assert [d.url for d in sender.deliveries if d.update_id == during["update_id"]] == urls
    assert len(tg.visible(8104)) == len(tg.visible(8105)) == 1
    assert not tg.calls_of("deleteWebhook")
    assert tg.pending_updates == []


async def test_polling_deletes_a_webhook_left_set(tg, fake, tmp_path):
    async with PtbBot(TOKEN, base_url=f"{tg.base_url}/bot") as other:
        await other.set_webhook(PUBLIC_URL, secret_token=SECRET)
    with pytest.raises(Exception, match="webhook is active"):
        async with PtbBot(TOKEN, base_url=f"{tg.base_url}/bot") as poller:
            await poller.get_updates(timeout=0)
    config = write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    async with running_bot(config):
        tg.private_message(tg.user(8106), "polling again")
        await says(tg, 8106, "polling again")
    assert tg.webhook.url == ""
    refused, *polls = tg.calls_of("getUpdates")
    assert refused.status == 409
    assert polls
    assert all(poll.ok for poll in polls)
    assert tg.calls.index(tg.calls_of("deleteWebhook")[0]) < tg.calls.index(polls[0])


async def test_the_secret_never_reaches_the_logs(
    tg: FakeTelegram,
    fake: FakeKamiya,
    make_bot: Callable[[], AbstractAsyncContextManager[Bot]],
) -> None:
    secrets = (KEY, TOKEN, SECRET)
    with capture_logs(secrets) as logs:
        async with make_bot() as bot, WebhookSender(tg, [url_of(bot)]):
            tg.private_message(tg.user(8107), "log me")
            await says(tg, 8107, "log me")
            async with WebhookSender(tg, [url_of(bot)], secret="wrong", push=False) as intruder:
                assert await intruder.post({"update_id": 999}) == 403
    assert leaks(logs, secrets) == []
    assert "setWebhook" in logs.text  # PTB did log the call with its parameters, scrubbed
    assert "webhook listening on" in logs.text


async def test_kamiya_bot_run_serves_the_webhook_and_stops_without_deleting_it(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path
) -> None:
    write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    config = tmp_path / "bot.toml"
    without_secret = WEBHOOK.replace(f'webhook_secret = "{SECRET}"\n', "")  # from the env
    text = config.read_text(encoding="utf-8").replace(
        "[telegram]\n", f"[telegram]\n{without_secret}"
    )
    config.write_text(text, encoding="utf-8")
    async with bot_process(config, TELEGRAM_WEBHOOK_SECRET=SECRET) as bot:
        await until(lambda: "webhook set for" in bot.stderr, timeout=30)
        port = re.search(r"webhook listening on 127\.0\.0\.1:(\d+)/tg/hook", bot.stderr)
        assert port is not None, bot.stderr
        async with WebhookSender(tg, [f"http://127.0.0.1:{port[1]}/tg/hook"]) as sender:
            tg.private_message(tg.user(8108), "hello over https")
            await says(tg, 8108, "hello over https", timeout=30)
        assert await bot.terminate() == 0, bot.stderr
    assert [d.status for d in sender.deliveries] == [200]
    assert not tg.calls_of("deleteWebhook")
    assert not tg.calls_of("getUpdates")
    assert "Traceback" not in bot.stderr
    assert SECRET not in bot.stderr
    assert "TEST-TOKEN" not in bot.stderr


async def test_kamiya_bot_run_says_in_one_line_that_the_port_is_taken(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        extra = WEBHOOK.replace("127.0.0.1:0", listen)
        write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, extra=extra)
        result = await run("run", "--config", str(tmp_path / "bot.toml"), cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"kamiya-bot: telegram: cannot listen on {listen}"
    )
    assert "Traceback" not in result.stderr
    assert not tg.calls_of("setWebhook")
