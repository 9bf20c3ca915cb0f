"""Operations end to end: real replies through the fakes, then ``/metrics`` and ``/healthz``
scraped over HTTP, and the JSON log lines of those replies."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bots.metrics import PrometheusObserver
from bots.ops import OpsServer
from core import text
from core.fake_kamiya import Script
from tests.bots.telegram.chat import says
from tests.bots.telegram.harness import TOKEN, running_bot, write_config
from tests.bots.telegram.leaks import capture_logs, leaks
from tests.conftest import KEY
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.bots.telegram.harness import Bot
    from tests.fakes.telegram import FakeTelegram

SECRETS = (KEY, TOKEN)
REQUEST_ID = re.compile(r"^[0-9a-f]{12}$")


@dataclass
class Ops:
    bot: Bot
    http: httpx.AsyncClient

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``, by name and sorted labels."""
        response = await self.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    async def value(self, name: str, **labels: str) -> float:
        return (await self.metrics()).get((name, tuple(sorted(labels.items()))), 0.0)

    async def reaches(self, name: str, want: float, **labels: str) -> None:
        """Scrape until the sample is ``want`` (a reply ends a moment after it shows)."""
        async with asyncio.timeout(10):
            # A bounded poll: the deadline above turns a value that never comes into a failure.
            while await self.value(name, **labels) != want:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def settled(self) -> None:
        await until(lambda: self.bot.frontend.busy == 0, timeout=10)


@pytest.fixture
async def ops(
    tg: FakeTelegram, fake: FakeKamiya, tmp_path: Path, settings_toml: str
) -> AsyncIterator[Ops]:
    config = write_config(
        tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, extra=settings_toml, key=KEY
    )
    registry = CollectorRegistry()
    async with AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            running_bot(config, observer=PrometheusObserver(registry))
        )
        server = await stack.enter_async_context(
            OpsServer("127.0.0.1", 0, registry, ping=bot.store.ping, components=[bot.frontend])
        )
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base_url))
        yield Ops(bot, http)


async def test_a_reply_counts_ok_and_times_its_first_token_and_first_visible_text(tg, fake, ops):
    fake.enqueue(Script(reply="Hello from the metrics test.", chunk_chars=4))
    tg.private_message(tg.user(8001), "hi")
    await says(tg, 8001, "metrics test")
    await ops.settled()
    await ops.reaches("kamiya_bot_replies_total", 1, platform="telegram", outcome="ok")
    samples = await ops.metrics()

    def sample(name: str) -> float:
        return float(samples[(name, (("platform", "telegram"),))])

    assert sample("kamiya_bot_first_token_seconds_count") == 1
    assert sample("kamiya_bot_first_visible_seconds_count") == 1
    assert sample("kamiya_bot_first_token_seconds_sum") > 0
    assert sample("kamiya_bot_first_token_seconds_sum") <= sample(
        "kamiya_bot_first_visible_seconds_sum"
    )
    assert samples[("kamiya_bot_streams_in_flight", ())] == 0
    assert samples[("kamiya_bot_queued_messages", ())] == 0
    assert samples[("kamiya_bot_chats_waiting_for_cap", (("platform", "telegram"),))] == 0
    # The request id of the turn went to Kamiya too.
    (request,) = fake.requests
    assert request.request_id is not None
    assert REQUEST_ID.match(request.request_id)


async def test_a_kamiya_500_counts_an_upstream_error_and_a_failed_reply(tg, fake, ops):
    fake.enqueue(Script(status=500))
    tg.private_message(tg.user(8002), "hi")
    await says(tg, 8002, text("upstream", "en"))
    await ops.settled()
    await ops.reaches("kamiya_bot_replies_total", 1, platform="telegram", outcome="upstream")
    assert await ops.value("kamiya_bot_kamiya_errors_total", error="UpstreamFailure") == 1
    assert await ops.value("kamiya_bot_replies_total", platform="telegram", outcome="ok") == 0


@pytest.mark.parametrize("settings_toml", ['stream_mode = "edit"'])
async def test_a_telegram_429_is_counted(tg, fake, ops):
    reply = "".join(f"word{i} " for i in range(40))
    fake.enqueue(Script(reply=reply, chunk_chars=4, delay_s=0.01))
    tg.fail_next("editMessageText", status=429, retry_after=1)
    assert await ops.value("kamiya_bot_platform_429_total", platform="telegram") == 0
    tg.private_message(tg.user(8003), "go")
    await tg.wait_for(lambda f: f.count_429 == 1)
    await ops.reaches("kamiya_bot_platform_429_total", 1, platform="telegram")
    await says(tg, 8003, "word39")
    await ops.settled()
    await ops.reaches("kamiya_bot_replies_total", 1, platform="telegram", outcome="ok")


async def test_gauges_show_a_stream_in_flight_and_a_message_queued_behind_it(tg, fake, ops):
    gate = asyncio.Event()
    fake.enqueue(Script(reply="The first answer.", gate=gate))
    fake.enqueue(Script(reply="The second answer."))
    user = tg.user(8004)
    tg.private_message(user, "one")
    await ops.reaches("kamiya_bot_streams_in_flight", 1)
    tg.private_message(user, "two")
    await ops.reaches("kamiya_bot_queued_messages", 1)
    gate.set()
    await says(tg, 8004, "second answer")
    await ops.settled()
    await ops.reaches("kamiya_bot_streams_in_flight", 0)
    assert await ops.value("kamiya_bot_queued_messages") == 0
    await ops.reaches("kamiya_bot_replies_total", 2, platform="telegram", outcome="ok")


async def test_healthz_is_200_while_serving_then_503_naming_telegram_once_stopped(ops):
    response = await ops.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "telegram": "ok"}}
    await ops.bot.frontend.stop()
    response = await ops.http.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["telegram"]
    assert body["checks"]["database"] == "ok"


async def test_healthz_is_503_naming_the_database_once_it_is_gone(ops):
    await ops.bot.store.aclose()
    response = await ops.http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert not any(secret in response.text for secret in SECRETS)


async def test_json_log_lines_parse_carry_chat_and_request_id_and_show_no_secret(tg, fake, ops):
    fake.enqueue(Script(reply="A logged reply.", chunk_chars=4))
    fake.enqueue(Script(status=500))
    with capture_logs(SECRETS, fmt="json") as logs:
        tg.private_message(tg.user(8006), "first")
        await says(tg, 8006, "logged reply")
        tg.private_message(tg.user(8006), "second")
        await says(tg, 8006, text("upstream", "en"))
        await ops.settled()
    lines = [json.loads(line) for line in logs.text.splitlines()]  # every line is JSON
    ids = [request.request_id for request in fake.requests]
    assert len(set(ids)) == 2
    assert all(i is not None and REQUEST_ID.match(i) for i in ids)
    for request_id in ids:
        about = [line for line in lines if line.get("req") == request_id]
        assert about, f"no line carries request id {request_id}"
        assert {line["chat"] for line in about} == {"telegram:8006"}
    failed = [line for line in lines if "turn failed" in line["message"]]
    assert [line["req"] for line in failed] == [ids[1]]
    assert leaks(logs, SECRETS) == []
