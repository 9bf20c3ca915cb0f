"""``check`` probes of the bot tokens against small loopback stand-ins of the two platforms."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import discord
import pytest
from aiohttp import web

from bots.check import run_checks
from core.config import Config, load_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

TG_TOKEN = "123456:TEST-telegram-token-abcdef"
DC_TOKEN = "discord.test.token-abcdef0123456789"


def _json(data: object, status: int = 200) -> web.Response:
    # discord.py compares the content type exactly: no "; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


async def get_me(request: web.Request) -> web.Response:
    if request.match_info["token"] != TG_TOKEN:
        return _json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
    me = {"id": 1, "is_bot": True, "first_name": "Kamiya", "username": "kamiya_test_bot"}
    return _json({"ok": True, "result": me})


async def users_me(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bot {DC_TOKEN}":
        return _json({"message": "401: Unauthorized", "code": 0}, 401)
    return _json(
        {
            "id": "42",
            "username": "kamiya",
            "discriminator": "0",
            "avatar": None,
            "global_name": "Kamiya",
            "bot": True,
        }
    )


async def application(request: web.Request) -> web.Response:
    owner = {"id": "7", "username": "owner", "discriminator": "0", "avatar": None}
    return _json(
        {
            "id": "99",
            "name": "kamiya",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner,
            "verify_key": "x",
            "flags": 0,
        }
    )


@pytest.fixture
async def platforms(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/bot{token}/getMe", get_me)
    app.router.add_get("/api/v10/users/@me", users_me)
    app.router.add_get("/api/v10/oauth2/applications/@me", application)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(discord.http.Route, "BASE", f"{base}/api/v10")
    yield base
    await runner.cleanup()


def config(tmp_path: Path, base: str, **env: str) -> Config:
    path = tmp_path / "bot.toml"
    path.write_text(
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "c.db"}"\n'
        f'[telegram]\nbase_url = "{base}/bot"\n',
        encoding="utf-8",
    )
    return load_config(path, env)


async def test_good_tokens_are_accepted_and_named(tmp_path, platforms):
    probes = await run_checks(
        config(tmp_path, platforms, TELEGRAM_BOT_TOKEN=TG_TOKEN, DISCORD_BOT_TOKEN=DC_TOKEN)
    )
    by_name = {p.component: p for p in probes}
    assert by_name["telegram"].status == "ok"
    assert "@kamiya_test_bot" in by_name["telegram"].detail
    assert by_name["discord"].status == "ok"
    assert by_name["storage"].status == "ok"
    assert by_name["kamiya"].status == "fail"  # no key configured


async def test_bad_tokens_are_reported_without_being_shown(tmp_path, platforms):
    bad_tg, bad_dc = TG_TOKEN + "x", DC_TOKEN + "x"
    probes = await run_checks(
        config(tmp_path, platforms, TELEGRAM_BOT_TOKEN=bad_tg, DISCORD_BOT_TOKEN=bad_dc)
    )
    by_name = {p.component: p for p in probes}
    assert by_name["telegram"].status == "fail"
    assert "rejected" in by_name["telegram"].detail
    assert by_name["discord"].status == "fail"
    assert "rejected" in by_name["discord"].detail
    text = "\n".join(p.line() for p in probes)
    assert bad_tg not in text
    assert bad_dc not in text
