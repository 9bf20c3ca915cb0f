"""``kamiya-bot run`` as a black box: serves Telegram, answers, stops 0 within 5 s of SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.bots.cli import command, environ
from tests.bots.telegram.harness import write_config
from tests.conftest import KEY


async def test_run_serves_the_telegram_bot_and_stops_on_sigterm(tmp_path, tg, fake):
    write_config(tmp_path, kamiya_url=fake.base_url, telegram_url=tg.base_url, key=KEY)
    proc = await asyncio.create_subprocess_exec(
        *command("run", "--config", str(tmp_path / "bot.toml")),
        cwd=tmp_path,
        env=environ(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await tg.wait_for_call("getUpdates", timeout=30)
        tg.private_message(tg.user(6001), "hello from outside")
        await tg.wait_for(lambda f: len(f.visible(6001)) == 1, timeout=30)
    finally:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _out, err = await proc.communicate()
    assert time.monotonic() - sent < 5
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert KEY.encode() not in err
    assert b"TEST-TOKEN" not in err
    assert fake.requests[0].json == {"content": "hello from outside"}
