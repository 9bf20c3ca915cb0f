"""``kamiya-bot run`` as a black box: serves Discord (and Telegram) from one process."""

from __future__ import annotations

from tests.bots.cli import serving
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
        async with serving(tmp_path / "bot.toml", KAMIYA_API_KEY=KEY) as served:
            await dc.wait_for(lambda f: bool(f.syncs) and f.connected, timeout=30)
            await tg.wait_for(lambda f: f.waiting_polls > 0, timeout=30)
            interaction = dc.slash("chat", {"prompt": "from discord"})
            tg.private_message(tg.user(7001), "from telegram")
            await dc.wait_for(lambda f: "from discord" in (interaction.original or ""), timeout=30)
            await tg.wait_for(lambda f: len(f.visible(7001)) == 1, timeout=30)
    assert served.stop_s < 5
    assert served.code == 0, served.stderr
    assert "Traceback" not in served.stderr
    for secret in (KEY, TOKEN, "TEST-TOKEN"):
        assert secret not in served.stderr
    asked = [r.json["content"] for r in fake.requests if r.path.endswith("/conversation")]
    assert sorted(asked) == ["from discord", "from telegram"]
    assert dc.visible(CHANNEL_ID)
