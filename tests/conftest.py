"""Shared fixtures: the fake Kamiya on loopback, a real httpx client, the real KamiyaClient,
and the SQL databases of ``tests/pg.py`` (SQLite, PostgreSQL, the ``postgres`` marker)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from core.client import KamiyaClient, http_client
from core.fake_kamiya import FakeKamiya
from tests import pg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on PostgreSQL, so ``pytest -m postgres`` runs exactly those."""
    for item in items:
        if pg.uses_postgresql(item):
            item.add_marker(pytest.mark.postgres)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    pg.banner(terminalreporter)


@pytest.fixture
def sqlite_target(tmp_path: Path) -> pg.SqlTarget:
    return pg.sqlite_target_in(tmp_path)


@pytest.fixture
async def postgresql_target(request: pytest.FixtureRequest) -> AsyncIterator[pg.SqlTarget]:
    """A schema of the test's own, created empty: the store's tables go there."""
    async with pg.pg_schema_for(request.config, create=True) as found:
        yield pg.SqlTarget("postgresql", found.url, found.schema)


@pytest.fixture
async def pg_schema(request: pytest.FixtureRequest) -> AsyncIterator[pg.PgSchema]:
    """A PostgreSQL URL and a schema name not created yet, for a bot in a subprocess
    (``pg_schema.storage_toml()``); the bot creates the schema, the fixture drops it."""
    async with pg.pg_schema_for(request.config, create=False) as found:
        yield found


@pytest.fixture(params=pg.SQL_BACKENDS)
def sql_target(request: pytest.FixtureRequest) -> pg.SqlTarget:
    target: pg.SqlTarget = request.getfixturevalue(f"{request.param}_target")
    return target


@pytest.fixture
def default_database() -> str:
    """What ``database`` is in a test ``on_each_database`` does not parametrize; a module
    overrides it ("memory", "sqlite" or "postgresql")."""
    return "sqlite"


@pytest.fixture
def database(request: pytest.FixtureRequest, default_database: str) -> pg.SqlTarget | None:
    """Where a module's store lives; ``None``: the memory store.

    Sync on purpose: an async fixture cannot ``getfixturevalue`` the async PostgreSQL one.
    """
    name: str = getattr(request, "param", default_database)
    if name == "memory":
        return None
    target: pg.SqlTarget = request.getfixturevalue(f"{name}_target")
    return target
