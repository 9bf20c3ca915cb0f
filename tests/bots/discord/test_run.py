"""``kamiya-bot run`` as a black box: serves Discord (and Telegram) from one process."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.bots.cli import command, environ
from tests.bots.discord.harness import TOKEN
from tests.conftest import KEY
from tests.fakes.discord import CHANNEL_ID
from tests.fakes.telegram import FakeTelegram


async def test_run_serves_discord_and_telegram_and_stops_on_sigterm(tmp_path, dc, fake):
    async with FakeTelegram("123456:TEST-TOKEN") as tg:
        (tmp_path / "bot.toml").write_text(
            f'[kamiya]\nbase_url = "{fake.base_url}"\n'
            f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
            f'[telegram]\ntoken = "123456:TEST-TOKEN"\nbase_url = "{tg.base_url}/bot"\n'
            f"poll_timeout_s = 1\n"
            f'[discord]\ntoken = "{TOKEN}"\napi_base_url = "{dc.base_url}/api/v10"\n'
            f'gateway_url = "{dc.ws_url}/"\n',
            encoding="utf-8",
        )
        proc = await asyncio.create_subprocess_exec(
            *command("run", "--config", str(tmp_path / "bot.toml")),
            cwd=tmp_path,
            env=environ(KAMIYA_API_KEY=KEY),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await dc.wait_for(lambda f: bool(f.syncs) and f.connected, timeout=30)
            await tg.wait_for(lambda f: f.waiting_polls > 0, timeout=30)
            interaction = dc.slash("chat", {"prompt": "from discord"})
            tg.private_message(tg.user(7001), "from telegram")
            await dc.wait_for(lambda f: (interaction.original or "").count("\n") >= 1, timeout=30)
            await dc.wait_for(lambda f: "from discord" in (interaction.original or ""))
            await tg.wait_for(lambda f: len(f.visible(7001)) == 1, timeout=30)
        finally:
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                _out, err = await proc.communicate()
    assert time.monotonic() - sent < 5
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    for secret in (KEY, TOKEN, "TEST-TOKEN"):
        assert secret.encode() not in err
    asked = [r.json["content"] for r in fake.requests if r.path.endswith("/conversation")]
    assert sorted(asked) == ["from discord", "from telegram"]
    assert dc.visible(CHANNEL_ID)
