"""``kamiya-bot run`` as a black box: serves Telegram, answers, stops 0 within 5 s of SIGTERM."""

from __future__ import annotations

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
