"""Scale-out: three ``kamiya-bot run`` processes on one PostgreSQL schema, in webhook mode behind
the fake Telegram's sender, which spreads updates over them in turn (as a load balancer would).

One chat's messages land on all three processes and are still answered one at a time, in the
order they were sent, each continuing the conversation the previous turn stored; many chats spread
over the three are answered in parallel.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from sqlalchemy import text

from core.config import load_config
from core.fake_kamiya import Script
from storage import SqlStore
from tests.bots.telegram.chat import says
from tests.bots.telegram.harness import TOKEN, running_bot
from tests.bots.telegram.process import bot_process
from tests.conftest import KEY
from tests.fakes.telegram_sender import WebhookSender
from tests.waiting import until

if TYPE_CHECKING:
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya, RecordedRequest
    from tests.bots.telegram.process import BotProcess
    from tests.fakes.telegram import FakeTelegram
    from tests.pg import PgSchema

SECRET = "scale-out_secret_0123456789"
PROCESSES = 3
IN_ORDER = 6  # messages of one chat, spread over every process twice
OTHERS = 9  # chats with one message each


def _config(folder: Path, *, kamiya_url: str, telegram_url: str, storage: str) -> Path:
    folder.mkdir()
    path = folder / "bot.toml"
    path.write_text(
        "[bot]\nshutdown_grace_s = 2\n"
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{KEY}"\nretries = 0\n'
        f"[conversation]\ntitles = false\n{storage}"
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram_url}/bot"\n'
        'mode = "webhook"\nwebhook_listen = "127.0.0.1:0"\nwebhook_path = "/tg/hook"\n'
        'webhook_url = "https://bot.example.org/tg/hook"\n'
        f'webhook_secret = "{SECRET}"\npaste_window_s = 0\n',
        encoding="utf-8",
    )
    return path


def _listening(bot: BotProcess) -> str | None:
    found = re.search(r"webhook listening on (127\.0\.0\.1:\d+/\S+)", bot.stderr)
    return None if found is None else f"http://{found[1]}"


def _overlap(requests: list[RecordedRequest]) -> bool:
    ordered = sorted(requests, key=lambda r: r.started)
    return any(
        later.started < (earlier.finished or float("inf"))
        for earlier, later in itertools.pairwise(ordered)
    )


async def _stored_ids(pg_schema: PgSchema, chat_keys: list[str]) -> dict[str, str | None]:
    store = await SqlStore.open(pg_schema.url, schema=pg_schema.schema)
    async with store, store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT chat_key, conversation_id FROM chats"))
        stored = {str(key): value for key, value in rows}
    return {key: stored.get(key) for key in chat_keys}


async def test_three_processes_answer_a_chat_in_order_and_chats_in_parallel(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path, pg_schema: PgSchema
) -> None:
    fake.default_script = Script(chunk_chars=6, delay_s=0.01)
    storage = pg_schema.storage_toml()
    async with AsyncExitStack() as stack:
        bots = []
        for n in range(PROCESSES):
            config = _config(
                tmp_path / f"p{n}",
                kamiya_url=fake.base_url,
                telegram_url=tg.base_url,
                storage=storage,
            )
            bots.append(await stack.enter_async_context(bot_process(config)))
        await until(lambda: all(_listening(b) for b in bots), timeout=60)
        urls = [url for b in bots if (url := _listening(b)) is not None]
        async with WebhookSender(tg, urls) as sender:
            alice = tg.user(7001)
            for n in range(IN_ORDER):
                tg.private_message(alice, f"alice {n}")
            others = [tg.user(7100 + n) for n in range(OTHERS)]
            for user in others:
                tg.private_message(user, f"user {user['id']} asks")
            await says(tg, 7001, f"alice {IN_ORDER - 1}", timeout=60)
            for user in others:
                await says(tg, user["id"], "asks", timeout=60)
            await until(lambda: all(r.finished for r in fake.requests), timeout=30)
        codes = [await b.terminate() for b in bots]

    assert codes == [0] * PROCESSES, [b.stderr for b in bots]
    assert all("Traceback" not in b.stderr for b in bots)
    delivered = [d for d in sender.deliveries if d.ok]
    assert {d.url for d in delivered} == set(urls)  # every process got updates

    mine = sorted(
        (r for r in fake.requests if r.json.get("content", "").startswith("alice")),
        key=lambda r: r.started,
    )
    assert [r.json["content"] for r in mine] == [f"alice {n}" for n in range(IN_ORDER)]
    assert not _overlap(mine), "two Kamiya requests in flight for one conversation"
    for before, after in itertools.pairwise(mine):
        assert after.conversation_id == before.response_conversation_id
    chats = ["telegram:7001", *(f"telegram:{u['id']}" for u in others)]
    stored = await _stored_ids(pg_schema, chats)
    assert stored["telegram:7001"] == mine[-1].response_conversation_id
    theirs = [r for r in fake.requests if r.json.get("content", "").startswith("user")]
    assert all(stored[f"telegram:{u['id']}"] is not None for u in others)
    assert _overlap(theirs), "other chats were answered one after another, not in parallel"


async def test_a_message_is_acknowledged_once_its_place_in_the_line_is_recorded(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path, pg_schema: PgSchema
) -> None:
    # While another session locks chat_queue, no place can be recorded: the update's POST
    # must wait (an earlier 200 would let the chat's next message, sent to another process,
    # overtake it). An update that starts no turn (/help) is answered at once meanwhile.
    path = _config(tmp_path / "p", kamiya_url=fake.base_url, telegram_url=tg.base_url, storage="")
    path.write_text(path.read_text(encoding="utf-8") + pg_schema.storage_toml(), encoding="utf-8")
    config = load_config(path, {})
    async with running_bot(config) as bot:
        assert bot.frontend.webhook is not None
        url = bot.frontend.webhook.url
        engine = bot.store.engine  # type: ignore[attr-defined]
        async with WebhookSender(tg, [url], push=False) as sender, engine.connect() as blocker:
            await blocker.execute(text("LOCK TABLE chat_queue IN ACCESS EXCLUSIVE MODE"))
            asked = tg.private_message(tg.user(7301), "held at the door")
            posting = asyncio.create_task(sender.post({"update_id": 900_001, "message": asked}))
            helped = tg.private_message(tg.user(7302), "/help")
            assert await sender.post({"update_id": 900_002, "message": helped}) == 200
            await says(tg, 7302, "/reset")  # the help text: its handler has run
            assert not posting.done()  # the message's 200 waits for its place
            await blocker.rollback()  # the lock goes: the place is recorded, the POST answered
            assert await asyncio.wait_for(posting, 10) == 200
            await says(tg, 7301, "held at the door", timeout=30)
