"""A real DiscordFrontend (discord.py) against the fake Discord and the fake Kamiya."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.bots.discord.harness import TOKEN, Bot, Clock, running_bot, write_config
from tests.conftest import KEY
from tests.fakes.discord import FakeDiscord, Limits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya


@pytest.fixture
def dc_limits() -> Limits:
    return Limits.observed()


@pytest.fixture
def dc_ttl() -> float:
    return 900.0


@pytest.fixture
async def dc(
    dc_limits: Limits, dc_ttl: float, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(TOKEN, limits=dc_limits, token_ttl_s=dc_ttl) as server:
        server.patch_discord(monkeypatch)
        yield server


@pytest.fixture
def settings_toml() -> str:
    return ""


@pytest.fixture
def kamiya_toml() -> str:
    """More ``[kamiya]`` keys for the ``bot`` (by default: no retries)."""
    return "retries = 0"


@pytest.fixture
def clock() -> Clock:
    """Core's clock for the ``bot``: ``clock.advance(hours=49)`` expires conversations."""
    return Clock()


@pytest.fixture
async def bot(
    dc: FakeDiscord,
    fake: FakeKamiya,
    tmp_path: Path,
    *,
    settings_toml: str,
    kamiya_toml: str,
    clock: Clock,
) -> AsyncIterator[Bot]:
    config = write_config(
        tmp_path, kamiya_url=fake.base_url, key=KEY, extra=settings_toml, kamiya=kamiya_toml
    )
    async with running_bot(config, clock=clock) as running:
        yield running
