"""Schema migrations on SQLite and PostgreSQL: fresh, old ``create_all`` and concurrent starts.

The schema a database ends up with is compared two ways: table by table through SQLAlchemy's
inspector (columns with their compiled types, primary keys, foreign keys and indexes, all with
their names), and through Alembic's ``compare_metadata``, whose diff names the ops a missing
migration needs. To test a revision that moves data: ``await upgrade(engine, "<previous>")``,
insert rows of the old shape, ``await upgrade(engine)``, read them back; see
``test_rows_written_at_the_baseline_survive_the_upgrade_to_head``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sys
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage import (
    ChatState,
    ChatUsage,
    ConversationRecord,
    InflightRecord,
    Migration,
    SchemaMismatch,
    SqlStore,
    StorageError,
    TurnRecord,
    UsageRecord,
    UsageTotals,
    create_engine,
    create_schema,
    migrate,
    read_schema,
    upgrade_database,
)
from storage.migrate import BASELINE, PG_LOCK_KEY, config, head, upgrade
from storage.models import Base

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

    from tests.pg import PgSchema, SqlTarget

T0 = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
VERSION_TABLE = "alembic_version"
T = TypeVar("T")

# What storage/models.py said before migrations existed (commit 076377e), frozen: the schema
# create_all gave every database that is now stamped at the baseline. Never update it.
LEGACY = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
LEGACY_CHATS = Table(
    "chats",
    LEGACY,
    Column("chat_key", String(255), primary_key=True),
    Column("conversation_id", String(255)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
LEGACY_CONVERSATIONS = Table(
    "conversations",
    LEGACY,
    Column("conversation_id", String(255), primary_key=True),
    Column("chat_key", String(255), ForeignKey("chats.chat_key"), nullable=False),
    Column("title", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
    Index("ix_conversations_chat_key_last_used_at", "chat_key", "last_used_at"),
)
LEGACY_USAGE = Table(
    "usage",
    LEGACY,
    Column("chat_key", String(255), ForeignKey("chats.chat_key"), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("billed_chars", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
)

# The tables revision 0002 left that a 0002 → 0003 test writes to, frozen as LEGACY is (only
# the columns; the revisions' own checks cover names and keys). Never update them.
AT_0002 = MetaData()
AT_0002_CHATS = Table(
    "chats",
    AT_0002,
    Column("chat_key", String(255), primary_key=True),
    Column("conversation_id", String(255)),
    Column("updated_at", DateTime(timezone=True)),
    Column("local_id", String(255)),
    Column("model", String(255)),
    Column("system_prompt", Text),
)
AT_0002_CONVERSATIONS = Table(
    "conversations",
    AT_0002,
    Column("conversation_id", String(255), primary_key=True),
    Column("chat_key", String(255)),
    Column("title", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("mode", String(16)),
    Column("model", String(255)),
)
AT_0002_TURNS = Table(
    "turns",
    AT_0002,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", String(255)),
    Column("user_text", Text),
    Column("assistant_text", Text),
    Column("created_at", DateTime(timezone=True)),
)
AT_0002_BOT_MESSAGES = Table(
    "bot_messages",
    AT_0002,
    Column("chat_key", String(255), primary_key=True),
    Column("message_id", String(255), primary_key=True),
    Column("conversation_id", String(255)),
    Column("created_at", DateTime(timezone=True)),
)
AT_0002_USAGE = Table(
    "usage",
    AT_0002,
    Column("chat_key", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("billed_chars", BigInteger),
    Column("requests", Integer),
    Column("streamed_chars", BigInteger),
)
AT_0002_USAGE_DAYS = Table(
    "usage_days",
    AT_0002,
    Column("chat_key", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("requests", Integer),
    Column("billed_chars", BigInteger),
    Column("streamed_chars", BigInteger),
)

Shape = dict[str, dict[str, object]]


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
async def engine(sql_target: SqlTarget) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's empty database, with storage's per-connection setup."""
    built = create_engine(sql_target.url, connect_args=sql_target.connect_args)
    try:
        yield built
    finally:
        await built.dispose()


def reflected(conn: Connection) -> Shape:
    """The schema as the database reports it, in the form ``described`` gives a ``MetaData``."""
    inspector = inspect(conn)
    dialect = conn.dialect
    shape: Shape = {}
    for name in inspector.get_table_names():
        if name == VERSION_TABLE:
            continue
        pk = inspector.get_pk_constraint(name)
        shape[name] = {
            "columns": [
                (c["name"], c["type"].compile(dialect=dialect), c["nullable"])
                for c in inspector.get_columns(name)
            ],
            "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
            "foreign_keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(name)
            ),
        }
    return shape


def described(conn: Connection, metadata: MetaData) -> Shape:
    """What ``metadata`` says the schema is, with types compiled for ``conn``'s dialect."""
    dialect = conn.dialect
    return {
        table.name: {
            "columns": [
                (c.name, c.type.compile(dialect=dialect), c.nullable) for c in table.columns
            ],
            "primary_key": (table.primary_key.name, tuple(c.name for c in table.primary_key)),
            "foreign_keys": sorted(
                (
                    fk.name,
                    tuple(c.name for c in fk.columns),
                    fk.referred_table.name,
                    tuple(element.column.name for element in fk.elements),
                )
                for fk in table.foreign_key_constraints
            ),
            "indexes": sorted(
                (ix.name, tuple(c.name for c in ix.columns), bool(ix.unique))
                for ix in table.indexes
            ),
        }
        for table in metadata.sorted_tables
    }


def schema_diff(conn: Connection) -> list[object]:
    """Alembic's view of what the database lacks against models.py: the ops still to write."""
    diff: list[object] = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    return diff


def revision_of(conn: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


async def inspect_with(engine: AsyncEngine, check: Callable[[Connection], T]) -> T:
    async with engine.connect() as conn:
        return await conn.run_sync(check)


def upgrades_run(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The revisions Alembic applied while ``caplog`` listened, one entry per run."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("Running upgrade")
    ]


def all_revisions() -> list[str]:
    script = ScriptDirectory.from_config(config())
    return sorted(each.revision for each in script.walk_revisions())


async def create_legacy_database(engine: AsyncEngine) -> None:
    """What an old kamiya-bot left: the create_all tables, with rows, and no alembic_version."""
    async with engine.begin() as conn:
        await conn.run_sync(LEGACY.create_all)
    await insert_legacy_rows(engine)


async def insert_legacy_rows(engine: AsyncEngine) -> None:
    """Rows of the baseline's shape: two chats, two conversations, one user's usage."""
    async with engine.begin() as conn:
        await conn.execute(
            LEGACY_CHATS.insert(),
            [
                {"chat_key": "telegram:1", "conversation_id": "c2", "updated_at": T0},
                {"chat_key": "discord:2", "conversation_id": None, "updated_at": T0},
            ],
        )
        await conn.execute(
            LEGACY_CONVERSATIONS.insert(),
            [
                {
                    "conversation_id": cid,
                    "chat_key": "telegram:1",
                    "title": title,
                    "created_at": T0,
                    "last_used_at": T0,
                }
                for cid, title in (("c1", "first"), ("c2", None))
            ],
        )
        await conn.execute(
            LEGACY_USAGE.insert(),
            [
                {
                    "chat_key": "telegram:1",
                    "user_id": "u1",
                    "billed_chars": 3_000_000_000,
                    "requests": 7,
                }
            ],
        )


async def assert_legacy_rows_kept(store: SqlStore) -> None:
    assert await store.current("telegram:1") == "c2"
    assert await store.current("discord:2") is None
    assert [(c.conversation_id, c.title) for c in await store.conversations("telegram:1")] == [
        ("c2", None),
        ("c1", "first"),
    ]
    first = await store.conversation("c1")
    assert first is not None
    assert first.created_at == T0
    assert await store.usage("telegram:1") == [
        UsageRecord("telegram:1", "u1", billed_chars=3_000_000_000, requests=7)
    ]


# --- the revisions -----------------------------------------------------------------------------


async def test_revisions_form_one_numbered_line() -> None:
    # async only because a sync test first in a session makes pytest-asyncio leak a loop.
    # The next engineer adds 0002_*.py with down_revision "0001"; a fork or a gap fails here.
    script = ScriptDirectory.from_config(config())
    revisions = all_revisions()
    assert revisions[0] == BASELINE
    assert revisions == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    assert script.get_heads() == [revisions[-1]] == [head()]
    for previous, current in zip([None, *revisions], revisions, strict=False):
        found = script.get_revision(current)
        assert found is not None
        assert found.down_revision == previous
        assert re.fullmatch(rf"{current}_[a-z0-9_]+\.py", Path(found.path).name)


# --- fresh databases ---------------------------------------------------------------------------


async def test_fresh_database_is_migrated_to_head(
    sql_target: SqlTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alembic")
    async with await sql_target.open() as store:
        tables = await inspect_with(store.engine, lambda c: set(inspect(c).get_table_names()))
        assert tables == {*Base.metadata.tables, VERSION_TABLE}
        assert await inspect_with(store.engine, revision_of) == (head(),)
    assert len(upgrades_run(caplog)) == len(all_revisions())


async def test_migrated_schema_is_what_models_describe(engine: AsyncEngine) -> None:
    await create_schema(engine)

    async with engine.connect() as conn:
        assert await conn.run_sync(reflected) == await conn.run_sync(described, Base.metadata)
        assert await conn.run_sync(schema_diff) == []


async def test_baseline_is_exactly_what_create_all_made(engine: AsyncEngine) -> None:
    # Stamping an old database at 0001 is only sound if 0001 builds the same schema, names too.
    await upgrade(engine, BASELINE)

    async with engine.connect() as conn:
        assert await conn.run_sync(revision_of) == (BASELINE,)
        assert await conn.run_sync(reflected) == await conn.run_sync(described, LEGACY)


async def test_upgrading_twice_is_a_no_op(
    sql_target: SqlTarget, caplog: pytest.LogCaptureFixture
) -> None:
    async with await sql_target.open() as store:
        before = await inspect_with(store.engine, reflected)

    caplog.set_level(logging.INFO, logger="alembic")
    caplog.clear()  # the first open's lines, if another test left the root logger at INFO
    async with await sql_target.open() as store:
        await create_schema(store.engine)
        # At head nothing of Alembic runs at all, so not even its context lines are logged.
        assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
        assert await inspect_with(store.engine, reflected) == before
        assert await inspect_with(store.engine, revision_of) == (head(),)


async def test_every_revision_downgrades_and_upgrades_again(engine: AsyncEngine) -> None:
    await create_schema(engine)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(config(c), "base"))
    assert await inspect_with(engine, lambda c: set(inspect(c).get_table_names())) <= {
        VERSION_TABLE
    }

    await create_schema(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(reflected) == await conn.run_sync(described, Base.metadata)


# --- databases made before migrations ----------------------------------------------------------


async def test_create_all_database_is_stamped_and_keeps_its_data(
    sql_target: SqlTarget, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await create_legacy_database(engine)
    caplog.set_level(logging.INFO)

    async with await sql_target.open() as store:
        await assert_legacy_rows_kept(store)
        assert await inspect_with(store.engine, revision_of) == (head(),)
        async with store.engine.connect() as conn:
            assert await conn.run_sync(reflected) == await conn.run_sync(described, Base.metadata)
            assert await conn.run_sync(schema_diff) == []
    assert any("stamping it at revision 0001" in r.getMessage() for r in caplog.records)
    # Stamped, so the baseline's CREATE TABLEs never ran; only later revisions did.
    assert len(upgrades_run(caplog)) == len(all_revisions()) - 1


async def test_rows_written_at_the_baseline_survive_the_upgrade_to_head(
    sql_target: SqlTarget, engine: AsyncEngine
) -> None:
    # The pattern for testing a revision that moves data: stop before it, write, go on.
    await upgrade(engine, BASELINE)
    async with engine.begin() as conn:
        await conn.execute(LEGACY_CHATS.insert(), [{"chat_key": "telegram:1", "updated_at": T0}])

    await upgrade(engine)

    async with await sql_target.open() as store:
        assert await store.current("telegram:1") is None
        await store.record_reply("telegram:1", "c1", user_id="u1", billed_chars=1, at=T0)
        assert await store.current("telegram:1") == "c1"


async def test_rows_at_the_baseline_get_the_defaults_of_0002(
    sql_target: SqlTarget, engine: AsyncEngine
) -> None:
    # Conversations from before completions mode are server ones; usage streamed nothing yet
    # and, having no dates, counts in all-time stats but in no day.
    await upgrade(engine, BASELINE)
    await insert_legacy_rows(engine)

    await upgrade(engine)

    async with await sql_target.open() as store:
        await assert_legacy_rows_kept(store)
        assert await store.state("telegram:1") == ChatState(conversation_id="c2")
        record = await store.conversation("c1")
        assert record is not None
        assert (record.mode, record.model, record.title) == ("server", None, "first")
        assert await store.usage("telegram:1") == [
            UsageRecord("telegram:1", "u1", 3_000_000_000, 7, streamed_chars=0)
        ]
        legacy = UsageTotals(requests=7, billed_chars=3_000_000_000)
        assert await store.stats(platform="telegram") == (
            legacy,
            [ChatUsage("telegram:1", legacy)],
        )
        assert await store.user_usage("u1", platform="telegram", since=T0.date()) == UsageTotals()

        await store.record_turn(
            "telegram:1", "l1", model="m", user="q", assistant="abc", user_id="u1", at=T0
        )
        assert await store.state("telegram:1") == ChatState("c2", "l1")
        assert await store.turns("l1") == [TurnRecord("q", "abc")]
        assert await store.usage("telegram:1") == [
            UsageRecord("telegram:1", "u1", 3_000_000_000, 8, streamed_chars=3)
        ]


async def test_rows_at_0002_survive_the_upgrade_to_0003(
    sql_target: SqlTarget, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # 0003 only adds replies_in_flight: every row of every 0002 table must read back the same.
    await upgrade(engine, "0002")
    async with engine.begin() as conn:
        await conn.execute(
            AT_0002_CHATS.insert(),
            [
                {
                    "chat_key": "telegram:1",
                    "conversation_id": "c1",
                    "updated_at": T0,
                    "local_id": "l1",
                    "model": "m1",
                    "system_prompt": "be brief",
                }
            ],
        )
        await conn.execute(
            AT_0002_CONVERSATIONS.insert(),
            [
                {
                    "conversation_id": cid,
                    "chat_key": "telegram:1",
                    "title": title,
                    "created_at": T0,
                    "last_used_at": T0,
                    "mode": mode,
                    "model": model,
                }
                for cid, title, mode, model in (
                    ("c1", "server one", "server", None),
                    ("l1", None, "completions", "m1"),
                )
            ],
        )
        await conn.execute(
            AT_0002_TURNS.insert(),
            [
                {"conversation_id": "l1", "user_text": q, "assistant_text": a, "created_at": T0}
                for q, a in (("q1", "a1"), ("q2", "京都"))
            ],
        )
        await conn.execute(
            AT_0002_BOT_MESSAGES.insert(),
            [
                {
                    "chat_key": "telegram:1",
                    "message_id": "m7",
                    "conversation_id": "l1",
                    "created_at": T0,
                }
            ],
        )
        counts = {"requests": 3, "billed_chars": 3_000_000_000, "streamed_chars": 2}
        key = {"chat_key": "telegram:1", "user_id": "u1"}
        await conn.execute(AT_0002_USAGE.insert(), [{**key, **counts}])
        await conn.execute(AT_0002_USAGE_DAYS.insert(), [{**key, "day": T0.date(), **counts}])
    caplog.set_level(logging.INFO, logger="alembic")
    caplog.clear()

    await upgrade(engine, "0003")

    assert [line.split(",")[0] for line in upgrades_run(caplog)] == [
        "Running upgrade 0002 -> 0003"
    ]
    async with await sql_target.open() as store:
        assert await store.state("telegram:1") == ChatState("c1", "l1", "m1", "be brief")
        assert await store.conversation("c1") == ConversationRecord(
            "c1", "telegram:1", "server one", T0, T0, mode="server"
        )
        assert await store.conversation("l1") == ConversationRecord(
            "l1", "telegram:1", None, T0, T0, mode="completions", model="m1"
        )
        assert await store.turns("l1") == [TurnRecord("q1", "a1"), TurnRecord("q2", "京都")]
        assert await store.message_conversation("telegram:1", "m7") == "l1"
        assert await store.usage("telegram:1") == [
            UsageRecord("telegram:1", "u1", 3_000_000_000, 3, streamed_chars=2)
        ]
        totals = UsageTotals(3, 3_000_000_000, 2)
        assert await store.user_usage("u1", platform="telegram", since=T0.date()) == totals
        assert await store.stats(platform="telegram", since=T0.date()) == (
            totals,
            [ChatUsage("telegram:1", totals)],
        )

        assert await store.open_replies("telegram") == []
        await store.begin_reply(
            "r1", "telegram:1", platform="telegram", target="{}", language=None, at=T0
        )
        await store.note_reply_messages("r1", ["m8"], "京都 so far")
        assert await store.open_replies("telegram") == [
            InflightRecord("r1", "telegram:1", "telegram", "{}", ("m8",), None, T0, "京都 so far")
        ]


async def test_some_old_tables_without_a_version_are_refused(
    sql_target: SqlTarget, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(LEGACY_CHATS.create)

    with pytest.raises(StorageError, match=r"has tables chats but not conversations, usage"):
        await sql_target.open()

    tables = await inspect_with(engine, lambda c: set(inspect(c).get_table_names()))
    assert tables == {"chats"}  # rolled back: nothing created, nothing stamped


async def test_a_revision_newer_than_the_code_is_refused(
    sql_target: SqlTarget, engine: AsyncEngine
) -> None:
    await create_schema(engine)
    version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)))
    async with engine.begin() as conn:
        await conn.execute(update(version).values(version_num="9999"))

    with pytest.raises(StorageError, match=r"revision 9999, which this kamiya-bot does not know"):
        await sql_target.open()


async def test_a_store_opened_without_upgrading_refuses_an_older_schema_and_leaves_it(
    sqlite_target: SqlTarget,
) -> None:
    # How bots open: upgrading is kamiya-bot migrate's job, not a restart's.
    plain = create_engine(sqlite_target.url)
    try:
        await upgrade(plain, BASELINE)
        with pytest.raises(SchemaMismatch) as refused:
            await sqlite_target.open(upgrade=False)
        assert (refused.value.revision, refused.value.head, refused.value.ahead) == (
            BASELINE,
            head(),
            False,
        )
        assert await inspect_with(plain, revision_of) == (BASELINE,)
        assert (await migrate.upgrade(plain)) == Migration(BASELINE, head())
    finally:
        await plain.dispose()
    async with await sqlite_target.open(upgrade=False) as store:
        await store.ping()


async def test_a_schema_is_for_postgresql_only() -> None:
    with pytest.raises(StorageError, match="a schema needs PostgreSQL, not sqlite"):
        await SqlStore.open("sqlite+aiosqlite://", schema="kamiya")


async def test_a_missing_postgresql_schema_reads_empty_and_is_created_by_the_upgrade(
    pg_schema: PgSchema,
) -> None:
    exists = text("SELECT count(*) FROM pg_namespace WHERE nspname = :name")
    admin = create_engine(pg_schema.url)
    try:
        found = await read_schema(pg_schema.url, schema=pg_schema.schema)
        assert (found.status, found.revision) == ("empty", None)
        async with admin.connect() as conn:
            assert await conn.scalar(exists, {"name": pg_schema.schema}) == 0  # read only

        assert await upgrade_database(pg_schema.url, schema=pg_schema.schema) == Migration(
            None, head()
        )
        async with admin.connect() as conn:
            assert await conn.scalar(exists, {"name": pg_schema.schema}) == 1
        found = await read_schema(pg_schema.url, schema=pg_schema.schema)
        assert found.status == "current"
    finally:
        await admin.dispose()


# --- starting together -------------------------------------------------------------------------


@pytest.mark.parametrize("upgrading", [True, False], ids=["upgrade", "install"])
async def test_two_stores_opening_a_fresh_database_together_migrate_once(
    sql_target: SqlTarget, upgrading: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # install: how bots start; the second must find the first's tables, not refuse them.
    caplog.set_level(logging.INFO, logger="alembic")

    first, second = await asyncio.gather(
        sql_target.open(upgrade=upgrading), sql_target.open(upgrade=upgrading)
    )

    async with first, second:
        assert await inspect_with(first.engine, revision_of) == (head(),)
        await first.record_reply("telegram:1", "c1", user_id="u1", billed_chars=1, at=T0)
        assert await second.current("telegram:1") == "c1"
    assert len(upgrades_run(caplog)) == len(all_revisions())


async def test_two_databases_migrating_at_once_in_one_process_stay_apart(tmp_path: Path) -> None:
    # Alembic runs a migration through module globals; interleaved, one database's ops would
    # land on the other's connection ("table chats already exists").
    urls = [f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("a", "b")]

    stores = await asyncio.gather(*(SqlStore.open(url) for url in urls), return_exceptions=True)

    try:
        for store in stores:
            assert isinstance(store, SqlStore), store
            assert await inspect_with(store.engine, revision_of) == (head(),)
    finally:
        for store in stores:
            if isinstance(store, SqlStore):
                await store.aclose()


# A bot process as far as storage goes: SqlStore.open's two steps, with "ready" in between once
# imports and the first connection are done, so the migration follows the signal at once.
OPEN_IN_A_PROCESS = """
import asyncio, json, logging, sys
from storage import create_engine, create_schema
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
async def main():
    engine = create_engine(sys.argv[1], connect_args=json.loads(sys.argv[2]))
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    print("ready", flush=True)
    await create_schema(engine)
    await engine.dispose()
asyncio.run(main())
"""
REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def write_lock_held(
    target: SqlTarget, tag: str
) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Hold the lock a starting process migrates under; yields "how many wait for it".

    PostgreSQL reports waiters on the advisory lock (tagged by application_name); SQLite cannot
    say, so there the count is assumed once the processes are ready.
    """
    if target.name == "sqlite":
        plain = create_engine(target.url)
        try:
            async with plain.connect() as conn:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")

                async def assumed() -> int:
                    return 2

                yield assumed
                await conn.commit()
        finally:
            await plain.dispose()
        return
    admin = create_async_engine(target.url, poolclass=NullPool)
    try:
        async with admin.connect() as holder, admin.connect() as watcher:
            await holder.execute(select(func.pg_advisory_lock(PG_LOCK_KEY)))
            waiting = text(
                "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                " WHERE locktype = 'advisory' AND NOT granted AND application_name = :tag"
            )

            async def waiters() -> int:
                count = await watcher.scalar(waiting, {"tag": tag})
                await watcher.commit()  # pg_stat_activity is a snapshot per transaction
                return int(count or 0)

            yield waiters
            await holder.execute(select(func.pg_advisory_unlock(PG_LOCK_KEY)))
    finally:
        await admin.dispose()


async def test_processes_starting_together_migrate_once(sql_target: SqlTarget) -> None:
    # Two real processes queue on the lock before either may migrate, so this cannot pass by
    # one of them happening to finish before the other starts.
    tag = f"kb-test-{uuid.uuid4().hex[:12]}"  # finds these processes among other runs' in pg_locks
    connect_args: dict[str, object] = {}
    if sql_target.connect_args is not None:
        settings = cast("Mapping[str, Mapping[str, str]]", sql_target.connect_args)
        app = {"application_name": tag}
        connect_args = {"server_settings": {**settings["server_settings"], **app}}
    processes: list[asyncio.subprocess.Process] = []
    try:
        async with write_lock_held(sql_target, tag) as waiters:
            for _ in range(2):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    OPEN_IN_A_PROCESS,
                    sql_target.url,
                    json.dumps(connect_args),
                    cwd=REPO,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                processes.append(process)
            async with asyncio.timeout(30):
                for process in processes:
                    assert process.stdout is not None
                    assert await process.stdout.readline() == b"ready\n"
                while await waiters() != 2:  # noqa: ASYNC110 - polling the server, under a deadline
                    await asyncio.sleep(0.01)
        async with asyncio.timeout(30):
            outputs = [await process.communicate() for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    logs = [stderr.decode() for _, stderr in outputs]
    assert [process.returncode for process in processes] == [0, 0], logs
    ran = [line for log in logs for line in log.splitlines() if "Running upgrade" in line]
    assert len(ran) == len(all_revisions()), logs


# --- SQLite specifics --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_sqlite_foreign_keys_are_back_on_after_the_upgrade(url: str) -> None:
    # In memory there is one connection, the one that migrated with foreign keys off.
    async with await SqlStore.open(url) as store, store.engine.connect() as conn:
        assert await conn.scalar(text("PRAGMA foreign_keys")) == 1


def write_revision(directory: Path, revision: str, down: str, body: str) -> None:
    lines = [
        "import sqlalchemy as sa",
        "from alembic import op",
        f"revision = {revision!r}",
        f"down_revision = {down!r}",
        "branch_labels = None",
        "depends_on = None",
        "def upgrade():",
        *(f"    {line}" for line in body.splitlines()),
        "def downgrade():",
        "    pass",
    ]
    (directory / "versions" / f"{revision}_test.py").write_text("\n".join(lines) + "\n")


@pytest.fixture
def scratch_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real migrations that a test may add revisions to."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS", copy)
    return copy


async def test_sqlite_batch_rebuild_of_a_referenced_table_keeps_rows(
    sqlite_target: SqlTarget, scratch_migrations: Path
) -> None:
    # Rebuilding chats drops it while conversations and usage point at it: only possible with
    # foreign keys off, as the upgrade has them.
    async with await sqlite_target.open() as store:
        await store.record_reply("telegram:1", "c1", user_id="u1", billed_chars=1, at=T0)
    write_revision(
        scratch_migrations,
        "9001",
        head(),
        'with op.batch_alter_table("chats", recreate="always") as batch:\n'
        '    batch.add_column(sa.Column("nickname", sa.String(255)))',
    )

    async with await sqlite_target.open() as store:
        assert await inspect_with(store.engine, revision_of) == ("9001",)
        assert await store.current("telegram:1") == "c1"
        columns = await inspect_with(store.engine, lambda c: inspect(c).get_columns("chats"))
        assert "nickname" in [column["name"] for column in columns]


async def test_sqlite_revision_leaving_a_dangling_reference_is_rolled_back(
    sqlite_target: SqlTarget, scratch_migrations: Path
) -> None:
    async with await sqlite_target.open() as store:
        await store.ping()
    before = head()
    write_revision(
        scratch_migrations,
        "9001",
        before,
        'op.execute("INSERT INTO usage (chat_key, user_id, billed_chars, requests)"\n'
        "           \" VALUES ('nowhere', 'u1', 1, 1)\")",
    )

    with pytest.raises(
        StorageError, match=r"left table usage row \d+ referring to a missing chats row"
    ):
        await sqlite_target.open()

    plain = create_engine(sqlite_target.url)
    try:
        assert await inspect_with(plain, revision_of) == (before,)
        async with plain.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM usage")) == 0
    finally:
        await plain.dispose()
