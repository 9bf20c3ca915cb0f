"""``kamiya-bot run`` as a black box: serves Telegram, answers, stops 0 within 5 s of SIGTERM."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx

from tests.bots.cli import serving
from tests.bots.telegram.harness import write_config
from tests.conftest import KEY


async def test_run_serves_the_telegram_bot_and_stops_on_sigterm(tmp_path, tg, fake):
    write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    async with serving(tmp_path / "bot.toml") as served:
        await tg.wait_for(lambda f: f.waiting_polls > 0, timeout=30)
        tg.private_message(tg.user(6001), "hello from outside")
        await tg.wait_for(lambda f: len(f.visible(6001)) == 1, timeout=30)
    assert served.stop_s < 5
    assert served.code == 0, served.stderr
    assert "Traceback" not in served.stderr
    assert KEY not in served.stderr
    assert "TEST-TOKEN" not in served.stderr
    assert fake.requests[0].json == {"content": "hello from outside"}


async def test_run_serves_metrics_and_health_and_writes_json_lines(tmp_path, tg, fake):
    write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    with socket.socket() as sock:  # a port free a moment ago: the bot binds it next
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (tmp_path / "bot.toml").open("a", encoding="utf-8") as config:
        config.write(f'[metrics]\nlisten = "127.0.0.1:{port}"\n[log]\nformat = "json"\n')
    async with (
        serving(tmp_path / "bot.toml") as served,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        await tg.wait_for(lambda f: f.waiting_polls > 0, timeout=30)
        tg.private_message(tg.user(6002), "hello, operator")
        await tg.wait_for(lambda f: len(f.visible(6002)) == 1, timeout=30)

        async def scraped() -> str:
            return (await http.get("/metrics")).text

        async with asyncio.timeout(10):
            while 'outcome="ok",platform="telegram"} 1.0' not in await scraped():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
    assert served.code == 0, served.stderr
    lines = [json.loads(line) for line in served.stderr.splitlines()]
    assert any(line["message"].startswith("metrics and health on") for line in lines)
    assert KEY not in served.stderr
    assert "TEST-TOKEN" not in served.stderr
