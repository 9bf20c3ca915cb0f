"""Shared fixtures: the fake Kamiya on loopback, a real httpx client, the real KamiyaClient."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from core.client import KamiyaClient, http_client
from core.fake_kamiya import FakeKamiya

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

KEY = "sk-kamiya-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a real secret or config from the machine it runs on."""
    for var in ("KAMIYA_API_KEY", "TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "KAMIYA_BOT_CONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeKamiya]:
    async with FakeKamiya(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(httpx.Timeout(10.0, connect=2.0)) as client:
        yield client


@pytest.fixture
def client(fake: FakeKamiya, http: httpx.AsyncClient) -> KamiyaClient:
    return KamiyaClient(http, base_url=fake.base_url, api_key=KEY)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    """Before a sync test, mark "no current event loop" explicitly.

    looptime's hook asks the policy for the current loop even for sync tests; on Python 3.11
    that *creates* a loop nobody closes, and its ResourceWarning then fails whichever test the
    garbage collector happens to run in (seen under pytest-xdist).
    """
    # pytest-asyncio marks every async test (auto mode) and wraps it in a sync function.
    if pyfuncitem.get_closest_marker("asyncio") is None:
        asyncio.set_event_loop(None)
    return (yield)
