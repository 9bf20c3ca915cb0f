"""``kamiya-bot migrate``, and ``run``/``chat``/``check`` on a database behind, ahead or new.

In process (``cli.main``), on SQLite and PostgreSQL (a schema of the test's own, named in the
config as an operator would). Databases are put behind the code by migrating only to the
revision before head, ahead of it by stamping a revision it does not know, and "made before
migrations" by ``create_all`` of the frozen pre-migration tables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, ClassVar

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, text, update

from bots import cli
from bots.check import run_checks
from core.config import load_config
from storage import create_engine
from storage.migrate import config as alembic_config
from storage.migrate import head, state, upgrade
from tests.storage.test_migrations import LEGACY

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from core import Config, Conversations
    from storage import SchemaState
    from tests.pg import PgSchema, SqlTarget

UNKNOWN = "9999"


def previous() -> str:
    """The revision before head: a database there is one migration behind."""
    found = ScriptDirectory.from_config(alembic_config()).get_revision(head())
    assert found is not None
    assert isinstance(found.down_revision, str)
    return found.down_revision


class StoppingFrontend:
    """Starts, then sends the process SIGTERM, as systemd would."""

    name = "fake"
    started: ClassVar[list[Conversations]] = []

    def __init__(self, config: Config, conversations: Conversations) -> None:
        self.conversations = conversations

    async def start(self) -> None:
        self.started.append(self.conversations)
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        pass


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``cli.main`` puts its handler on the root logger: take it away with the test's stderr."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def runnable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` with a key and one frontend that stops it as soon as it has started."""
    monkeypatch.setattr(cli, "select_frontends", lambda config: [StoppingFrontend])
    monkeypatch.setenv("KAMIYA_API_KEY", "sk-migrate-test")
    StoppingFrontend.started.clear()


def write_config(tmp_path: Path, url: str, schema: str | None = None) -> Path:
    path = tmp_path / "bot.toml"
    lines = ["[storage]", f'url = "{url}"', *([f'schema = "{schema}"'] if schema else [])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def put_at(target: SqlTarget, where: str) -> None:
    engine = create_engine(target.url, schema=target.schema)
    try:
        if where == "behind":
            await upgrade(engine, previous())
        elif where == "made before migrations":
            async with engine.begin() as conn:
                await conn.run_sync(LEGACY.create_all)
        elif where == "ahead":
            await upgrade(engine)
            version = Table("alembic_version", MetaData(), Column("version_num", String(32)))
            async with engine.begin() as conn:
                await conn.execute(update(version).values(version_num=UNKNOWN))
    finally:
        await engine.dispose()


async def state_of(target: SqlTarget) -> SchemaState:
    engine = create_engine(target.url, schema=target.schema)
    try:
        return await state(engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=["behind", "made before migrations", "ahead"])
async def mismatched(request: pytest.FixtureRequest, sql_target: SqlTarget) -> SqlTarget:
    await put_at(sql_target, request.param)
    return sql_target


@pytest.fixture
async def behind(sqlite_target: SqlTarget) -> SqlTarget:
    await put_at(sqlite_target, "behind")
    return sqlite_target


@pytest.fixture
async def behind_any(sql_target: SqlTarget) -> SqlTarget:
    await put_at(sql_target, "behind")
    return sql_target


def one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


def error_line(err: str) -> str:
    """The command's one error line. Other lines may be there: the root handler ``cli.main``
    installs also writes what the loop reports of a previous test's garbage, collected now."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("kamiya-bot: ")]
    assert len(lines) == 1, err
    return lines[0]


# --- run and chat ------------------------------------------------------------------------------


def test_run_refuses_a_database_not_at_head_and_names_the_command(
    mismatched, tmp_path, runnable, capsys
):
    before = asyncio.run(state_of(mismatched))
    config = write_config(tmp_path, mismatched.url, mismatched.schema)

    assert cli.main(["run", "--config", str(config)]) == 2

    line = error_line(capsys.readouterr().err)
    assert head() in line
    if before.status == "ahead":
        assert f"revision {UNKNOWN}, which this kamiya-bot does not know" in line
        assert "migrate" not in line
    else:
        assert (before.revision or "predates migrations") in line
        assert line.endswith(f"run: kamiya-bot migrate --config {config}")
    assert StoppingFrontend.started == []
    assert asyncio.run(state_of(mismatched)) == before  # untouched


def test_chat_refuses_a_database_behind_the_code_too(behind, tmp_path, capsys):
    config = write_config(tmp_path, behind.url)
    assert cli.main(["chat", "--offline", "--config", str(config)]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"revision {previous()}; this kamiya-bot needs {head()}" in line
    assert line.endswith(f"run: kamiya-bot migrate --config {config}")


def test_run_creates_a_new_database_at_head_and_says_so(sql_target, tmp_path, runnable, capsys):
    config = write_config(tmp_path, sql_target.url, sql_target.schema)

    assert cli.main(["run", "--config", str(config)]) == 0

    assert len(StoppingFrontend.started) == 1
    assert asyncio.run(state_of(sql_target)).status == "current"
    assert f"new database: creating the schema at revision {head()}" in capsys.readouterr().err


# --- migrate -----------------------------------------------------------------------------------


def test_migrate_upgrades_a_database_behind_then_finds_it_at_head(behind_any, tmp_path, capsys):
    config = write_config(tmp_path, behind_any.url, behind_any.schema)

    assert cli.main(["migrate", "--config", str(config)]) == 0
    upgraded = one_line(capsys.readouterr().out)
    assert upgraded.endswith(f": upgraded from revision {previous()} to {head()}")
    assert asyncio.run(state_of(behind_any)).status == "current"

    assert cli.main(["migrate", "--config", str(config)]) == 0
    assert one_line(capsys.readouterr().out).endswith(f": already at head (revision {head()})")


def test_migrate_names_an_unreachable_database_without_its_password(tmp_path, capsys):
    config = write_config(tmp_path, "postgresql+asyncpg://kamiya:hunter2@127.0.0.1:9/kamiya")
    assert cli.main(["migrate", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    line = error_line(captured.err)
    assert "127.0.0.1:9" in line
    assert "hunter2" not in captured.out + captured.err
    assert captured.out == ""


def test_migrate_refuses_a_database_ahead_of_the_code(tmp_path, sqlite_target, capsys):
    asyncio.run(put_at(sqlite_target, "ahead"))
    config = write_config(tmp_path, sqlite_target.url)
    assert cli.main(["migrate", "--config", str(config)]) == 1
    assert "run a newer kamiya-bot" in error_line(capsys.readouterr().err)


def test_migrate_creates_a_missing_postgresql_schema_the_bot_then_runs_on(
    pg_schema: PgSchema, tmp_path: Path, runnable: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(pg_schema.storage_toml(), encoding="utf-8")

    assert cli.main(["migrate", "--config", str(config)]) == 0
    assert f"(schema {pg_schema.schema}): upgraded from revision (none)" in capsys.readouterr().out
    assert cli.main(["run", "--config", str(config)]) == 0

    tables = asyncio.run(tables_in(pg_schema))
    assert {"alembic_version", "chats", "conversations"} <= tables


async def tables_in(found: PgSchema) -> set[str]:
    engine = create_engine(found.url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": found.schema},
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


# --- check -------------------------------------------------------------------------------------


async def test_check_reports_the_schema_state_and_the_command(sqlite_target, tmp_path):
    config_file = write_config(tmp_path, sqlite_target.url)
    config = load_config(config_file, {})

    async def schema_probe() -> tuple[str, str]:
        probes = await run_checks(config, config_file=str(config_file))
        found = {p.component: p for p in probes}
        assert found["storage"].status == "ok"
        return found["schema"].status, found["schema"].detail

    new = f"new database: created at revision {head()} on the first start"
    assert await schema_probe() == ("ok", new)
    await put_at(sqlite_target, "behind")
    status, detail = await schema_probe()
    assert status == "fail"
    assert detail.startswith(f"behind: database schema is at revision {previous()}")
    assert detail.endswith(f"run: kamiya-bot migrate --config {config_file}")
    assert (await state_of(sqlite_target)).revision == previous()  # check changes nothing
    async with await sqlite_target.open():  # upgrades, as a test's store does
        pass
    assert await schema_probe() == ("ok", f"at head (revision {head()})")
