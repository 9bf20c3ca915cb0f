"""``kamiya-bot run`` as a black box: serves Telegram, answers, stops 0 within 5 s of SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import socket
from pathlib import Path

import httpx
import pytest

from bots import fds
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


def proc_field(pid: int, name: str, pattern: str) -> int:
    """A number from ``/proc/<pid>/<name>``, on the line that starts with ``pattern``."""
    text = Path(f"/proc/{pid}/{name}").read_text(encoding="utf-8")
    found = re.search(f"^{pattern}", text, re.MULTILINE)
    assert found is not None, text
    return int(found[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
async def test_run_makes_room_for_every_stream_before_it_serves(tmp_path, tg, fake):
    """Started with 256 open files allowed, as some service managers start a service, the bot
    raises its limit to what ``max_concurrent_streams`` needs and grows the kernel's table of
    files ahead, not in a pause of the event loop as the crowd of streams opens sockets."""
    write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 200 + fds.HEADROOM  # the default max_concurrent_streams
    if hard != resource.RLIM_INFINITY:
        needed = min(needed, hard)
    async with serving(tmp_path / "bot.toml", open_files=256) as served:
        await tg.wait_for(lambda f: f.waiting_polls > 0, timeout=30)
        soft = proc_field(served.pid, "limits", r"Max open files\s+(\d+)")
        slots = proc_field(served.pid, "status", r"FDSize:\s+(\d+)")
    assert soft >= needed
    assert slots >= needed
    assert served.code == 0, served.stderr


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
