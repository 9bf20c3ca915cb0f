"""Backends for the storage contract suite: memory, SQLite in ``tmp_path``, real PostgreSQL.

PostgreSQL tests each get a throwaway schema (tables found through ``search_path``), dropped
afterwards, so runs never see each other's rows. The server comes from ``KAMIYA_TEST_PG_URL`` or
the local default. When nothing answers there, the PostgreSQL cases are skipped, with the reason
in the skip list and again as a banner at the end of the run, so a green run cannot hide them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema

from storage import MemoryStore, SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from storage import ConversationStore

PG_URL_ENV = "KAMIYA_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

# Set once PostgreSQL failed to answer, so later tests skip without waiting for it again.
_PG_DOWN = pytest.StashKey[str]()


@dataclass(frozen=True, slots=True)
class SqlTarget:
    """A test's SQL database; ``open()`` again to play a restart or a second process."""

    name: str
    url: str
    connect_args: Mapping[str, object] | None = None

    async def open(self) -> SqlStore:
        return await SqlStore.open(self.url, connect_args=self.connect_args)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Repeat a PostgreSQL skip as a banner: a skip line in ``-ra`` output is easy to miss."""
    reason = config.stash.get(_PG_DOWN, None)
    if reason is not None:
        terminalreporter.write_sep("!", "PostgreSQL storage path NOT TESTED", red=True, bold=True)
        terminalreporter.write_line(reason, red=True, bold=True)


@pytest.fixture
def sqlite_target(tmp_path: Path) -> SqlTarget:
    # A directory that does not exist yet: opening the store must create it.
    return SqlTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'state' / 'kamiya.db'}")


@pytest.fixture
async def postgresql_target(request: pytest.FixtureRequest) -> AsyncIterator[SqlTarget]:
    down = request.config.stash.get(_PG_DOWN, None)
    if down is not None:
        pytest.skip(down)
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    schema = f"kb_test_{uuid.uuid4().hex}"
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with asyncio.timeout(10), admin.begin() as conn:
            await conn.execute(CreateSchema(schema))
    except OSError as exc:  # Refused or timed out; a server that answers with an error fails.
        await admin.dispose()
        parsed = make_url(url)
        reason = (
            f"PostgreSQL not reachable at {parsed.host}:{parsed.port or 5432}: "
            f"PostgreSQL storage path NOT TESTED ({type(exc).__name__}: {exc})"
        )
        request.config.stash[_PG_DOWN] = reason
        pytest.skip(reason)
    try:
        yield SqlTarget("postgresql", url, {"server_settings": {"search_path": schema}})
    finally:
        async with admin.begin() as conn:
            await conn.execute(DropSchema(schema, cascade=True))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_target(request: pytest.FixtureRequest) -> SqlTarget:
    target: SqlTarget = request.getfixturevalue(f"{request.param}_target")
    return target


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> SqlTarget | None:
    """``None`` for the memory store, else where the SQL store lives."""
    if request.param == "memory":
        return None
    target: SqlTarget = request.getfixturevalue(f"{request.param}_target")
    return target


@pytest.fixture
async def store(backend: SqlTarget | None) -> AsyncIterator[ConversationStore]:
    opened = MemoryStore() if backend is None else await backend.open()
    async with opened:
        yield opened
