"""SQL databases for tests: SQLite in ``tmp_path`` and real PostgreSQL, one throwaway schema each.

PostgreSQL comes from ``KAMIYA_TEST_PG_URL`` or the local default. Each test gets its own schema
(tables found through ``search_path``), dropped afterwards, so runs never see each other's rows.
When no server answers, PostgreSQL tests are skipped, loudly (a banner ends the run), unless
PostgreSQL is required: ``KAMIYA_REQUIRE_PG=1`` or ``CI=true`` (``.ci/run`` sets the first), where
a silent skip would let a green CI hide an untested storage path, so they fail instead.

Fixtures (registered in ``tests/conftest.py``): ``sqlite_target``, ``postgresql_target``,
``sql_target`` (both), ``database`` (``default_database`` unless ``on_each_database`` picks),
and ``pg_schema``: a URL and a schema name, not created, for a bot started
in a subprocess with ``[storage] schema``. Every test using PostgreSQL is marked ``postgres``
(``pytest -m postgres``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema

from storage import SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncEngine

PG_URL_ENV = "KAMIYA_TEST_PG_URL"
REQUIRE_PG_ENV = "KAMIYA_REQUIRE_PG"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SQL_BACKENDS = ("sqlite", "postgresql")
CONNECT_TIMEOUT_S = 10
NOT_TESTED = "PostgreSQL storage path NOT TESTED"

# Set once PostgreSQL failed to answer, so later tests give up without waiting for it again.
PG_DOWN = pytest.StashKey[str]()


@dataclass(frozen=True, slots=True)
class SqlTarget:
    """A test's SQL database; ``open()`` again to play a restart or a second process."""

    name: str
    url: str
    schema: str | None = None

    @property
    def connect_args(self) -> Mapping[str, object] | None:
        """What ``schema`` amounts to, for engines built without ``storage.create_engine``."""
        if self.schema is None:
            return None
        return {"server_settings": {"search_path": self.schema}}

    async def open(self, *, upgrade: bool = True) -> SqlStore:
        return await SqlStore.open(self.url, schema=self.schema, upgrade=upgrade)


@dataclass(frozen=True, slots=True)
class PgSchema:
    """A PostgreSQL URL and a schema name of this test's own, dropped afterwards."""

    url: str
    schema: str

    def storage_toml(self) -> str:
        """The ``[storage]`` table of a bot config pointing at it."""
        return f'[storage]\nurl = "{self.url}"\nschema = "{self.schema}"\n'


def pg_required(environ: Mapping[str, str]) -> bool:
    """Whether an unreachable PostgreSQL fails the tests rather than skipping them."""
    required = environ.get(REQUIRE_PG_ENV, "").strip().lower() not in {"", "0", "false", "no"}
    return required or environ.get("CI", "").strip().lower() == "true"


def give_up(reason: str, environ: Mapping[str, str]) -> NoReturn:
    """Fail (PostgreSQL required) or skip (it is not) a test that needs PostgreSQL."""
    if pg_required(environ):
        pytest.fail(f"{reason}; {REQUIRE_PG_ENV} or CI=true requires PostgreSQL", pytrace=False)
    pytest.skip(reason)


async def connect_admin(url: str) -> AsyncEngine | str:
    """An engine that has just reached ``url``, or why it could not (refused, timed out)."""
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S), admin.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except OSError as exc:  # refused or timed out; a server answering with an error fails
        await admin.dispose()
        parsed = make_url(url)
        return (
            f"PostgreSQL not reachable at {parsed.host}:{parsed.port or 5432}: "
            f"{NOT_TESTED} ({type(exc).__name__}: {exc})"
        )
    return admin


@asynccontextmanager
async def pg_schema_for(config: pytest.Config, *, create: bool) -> AsyncIterator[PgSchema]:
    """The PostgreSQL fixtures' body: a fresh schema name (created if asked), dropped after."""
    down = config.stash.get(PG_DOWN, None)
    if down is not None:
        give_up(down, os.environ)
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    admin = await connect_admin(url)
    if isinstance(admin, str):
        config.stash[PG_DOWN] = admin
        give_up(admin, os.environ)
    schema = f"kb_test_{uuid.uuid4().hex}"
    try:
        if create:
            async with admin.begin() as conn:
                await conn.execute(CreateSchema(schema))
        yield PgSchema(url, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


def on_each_database(*, memory: bool = False) -> pytest.MarkDecorator:
    """Run a test on SQLite and PostgreSQL (and the memory store if asked): parametrizes the
    ``database`` fixture, which the module's store fixture opens. For the tests of a module that
    exercise storage, not all of them: each PostgreSQL case costs a schema and a migration."""
    backends = ("memory", *SQL_BACKENDS) if memory else SQL_BACKENDS
    return pytest.mark.parametrize("database", backends, indirect=True)


def sqlite_target_in(tmp_path: Path) -> SqlTarget:
    # A directory that does not exist yet: opening the store must create it.
    return SqlTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'state' / 'kamiya.db'}")


def uses_postgresql(item: pytest.Item) -> bool:
    """Whether a collected test runs on PostgreSQL: a ``postgresql`` parameter or fixture."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    fixtures = set(getattr(item, "fixturenames", ()))
    return any(value == "postgresql" for value in params if isinstance(value, str)) or bool(
        fixtures & {"postgresql_target", "pg_schema"}
    )


def banner(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat a PostgreSQL skip as a banner: a skip line in ``-ra`` output is easy to miss.

    Found among the skip reports rather than in a stash, since under pytest-xdist the skips
    happen in workers and only their reports reach the process that prints the summary.
    """
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and NOT_TESTED in str(longrepr[-1]):
            terminalreporter.write_sep("!", NOT_TESTED, red=True, bold=True)
            reason = str(longrepr[-1]).removeprefix("Skipped: ")
            terminalreporter.write_line(reason, red=True, bold=True)
            return
