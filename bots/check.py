"""``kamiya-bot check``: can each configured component be reached with its credentials?

Each probe gets its own time limit and reports one line; no secret is ever printed (the strings
shown are scrubbed of every configured secret, and URLs of their passwords).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
import telegram
from telegram.error import InvalidToken, TelegramError

from bots.discord.endpoints import use_endpoints
from bots.migrate import describe_state, schema_of
from core import (
    BadKey,
    KamiyaClient,
    KamiyaError,
    OutOfCredit,
    build_http_client,
)
from storage import StorageError, read_schema, safe_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from core import Config

__all__ = ["Probe", "run_checks"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Probe:
    component: str
    status: str  # "ok", "skip", "warn" or "fail"
    detail: str

    def line(self) -> str:
        return f"{self.component:<9} {self.status:<5} {self.detail}"


async def run_checks(config: Config, *, config_file: str | None = None) -> list[Probe]:
    """Probe Kamiya, the database and its schema, and each bot token, concurrently.

    ``config_file`` is named in the command a schema behind the code needs.
    """

    async def schema(config: Config) -> Probe:
        return await _schema(config, config_file)

    probes: list[tuple[str, Callable[[Config], Awaitable[Probe]]]] = [
        ("kamiya", _kamiya),
        ("storage", _storage),
        ("schema", schema),
        ("telegram", _telegram),
        ("discord", _discord),
    ]
    results = await asyncio.gather(*(_limited(name, probe, config) for name, probe in probes))
    secrets = config.secrets()
    return [Probe(p.component, p.status, _scrub(p.detail, secrets)) for p in results]


async def _limited(
    name: str, probe: Callable[[Config], Awaitable[Probe]], config: Config
) -> Probe:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            return await probe(config)
    except TimeoutError:
        return Probe(name, "fail", f"no answer within {PROBE_TIMEOUT_S:.0f} s")
    except Exception as exc:  # a probe must report, whatever happened
        log.debug("probe %s failed", name, exc_info=True)
        return Probe(name, "fail", f"{type(exc).__name__}: {exc}")


async def _kamiya(config: Config) -> Probe:
    settings = config.kamiya
    key = settings.api_key.get_secret_value()
    if not key:
        return Probe("kamiya", "fail", "no API key: set KAMIYA_API_KEY or [kamiya] api_key")
    async with build_http_client(settings) as http:
        client = KamiyaClient(http, base_url=settings.base_url, api_key=key)
        ping = [{"role": "user", "content": "ping"}]
        try:
            # The cheapest authenticated call Kamiya documents: one blocking token.
            await client.complete(ping, "openai:gpt-3.5-turbo", max_tokens=1)
        except BadKey:
            return Probe("kamiya", "fail", f"{settings.base_url}: the API key was rejected")
        except OutOfCredit:
            return Probe("kamiya", "warn", f"{settings.base_url}: key accepted, but out of credit")
        except KamiyaError as exc:
            return Probe("kamiya", "fail", f"{settings.base_url}: {exc.message}")
    return Probe("kamiya", "ok", f"{settings.base_url}: key accepted")


async def _storage(config: Config) -> Probe:
    url = config.storage.url
    try:
        await read_schema(url, schema=schema_of(config))
    except StorageError as exc:
        return Probe("storage", "fail", str(exc))
    return Probe("storage", "ok", f"{safe_url(url)}: reachable")


async def _schema(config: Config, config_file: str | None) -> Probe:
    """Read only: ``check`` neither creates nor upgrades anything."""
    try:
        usable, line = await describe_state(config, config_file)
    except StorageError:
        return Probe("schema", "skip", "unknown: the database is not reachable")
    return Probe("schema", "ok" if usable else "fail", line)


async def _telegram(config: Config) -> Probe:
    token = config.telegram.token.get_secret_value()
    if not token:
        return Probe("telegram", "skip", "no token configured")
    bot = telegram.Bot(token, base_url=config.telegram.base_url)
    try:
        async with bot:
            me = bot.bot
    except InvalidToken:
        return Probe("telegram", "fail", "the bot token was rejected")
    except TelegramError as exc:
        return Probe("telegram", "fail", f"could not reach the Bot API: {exc.message}")
    return Probe("telegram", "ok", f"token accepted: @{me.username}")


async def _discord(config: Config) -> Probe:
    token = config.discord.token.get_secret_value()
    if not token:
        return Probe("discord", "skip", "no token configured")
    use_endpoints(config.discord)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
        user = client.user
    except discord.LoginFailure:
        return Probe("discord", "fail", "the bot token was rejected")
    except discord.HTTPException as exc:
        return Probe("discord", "fail", f"Discord answered {exc.status}")
    finally:
        await client.close()
    return Probe("discord", "ok", f"token accepted: {user}")


def _scrub(detail: str, secrets: list[str]) -> str:
    for secret in secrets:
        detail = detail.replace(secret, "***")
    return detail
