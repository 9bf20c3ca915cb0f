"""Schema migrations: bring any database to the schema models.py describes, on every start.

``create_all`` can create a missing table but never change an existing one, and deployed
databases will need new columns and tables; so the schema is versioned with Alembic, run in
process from code (no ``alembic.ini``): ``upgrade(engine)`` is all a start needs.

- An empty database gets every revision, from ``0001_baseline`` on.
- A database made by ``create_all`` before migrations existed (the tables, no
  ``alembic_version``) is stamped at the baseline, which creates exactly those tables, and
  upgraded from there; its rows stay.
- A database already at head is left alone.

``upgrade`` is what ``kamiya-bot migrate`` (and every test) runs. A bot starting runs ``install``
instead: it creates a new database at head but refuses, with ``SchemaMismatch``, one behind or
ahead of the code, so that upgrading a deployment is the operator's step, not a restart's.
``state`` reads where a database stands without changing it (``kamiya-bot check``).

On PostgreSQL with a ``schema`` (``create_engine``'s, reached through ``search_path``), the
upgrade first creates that schema if it is missing, inside the same locked transaction.

Processes starting together must not migrate at once. On PostgreSQL the upgrade runs in one
transaction holding ``pg_advisory_xact_lock(PG_LOCK_KEY)``: the second process waits, then finds
the schema at head. The transaction-scoped lock is released by the commit or rollback itself, so
an error cannot leave it held on a pooled connection. On SQLite ``BEGIN IMMEDIATE`` takes the
file's write lock for the whole upgrade (waiting up to ``busy_timeout``). DDL is transactional on
both, so a failed revision leaves the schema as it was. Other dialects get one transaction and
no lock. Within one process, upgrades also take turns on an asyncio lock, because Alembic keeps
its running migration in module globals.

Adding a migration
==================
1. Change storage/models.py.
2. Add ``storage/migrations/versions/NNNN_what.py``: the next number as ``revision``, the
   previous one as ``down_revision``; a docstring saying what and why; hand-written ops::

       from __future__ import annotations

       import sqlalchemy as sa
       from alembic import op

       revision = "0002"
       down_revision: str | None = "0001"
       branch_labels: str | None = None
       depends_on: str | None = None


       def upgrade() -> None:
           op.add_column("chats", sa.Column("model", sa.String(255), nullable=True))
           op.create_table(
               "messages",
               sa.Column("id", sa.Integer(), nullable=False),
               sa.Column("chat_key", sa.String(255), nullable=False),
               sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
               sa.ForeignKeyConstraint(
                   ["chat_key"], ["chats.chat_key"], name=op.f("fk_messages_chat_key_chats")
               ),
           )


       def downgrade() -> None:
           op.drop_table("messages")
           with op.batch_alter_table("chats") as batch:
               batch.drop_column("model")

   Rules: name every constraint and index with ``op.f(...)`` as models.py's naming convention
   would. A new NOT NULL column needs a ``server_default`` for the rows already there. SQLite
   can add a column or a table but alter little else: use ``op.batch_alter_table`` (it rebuilds
   the table; foreign keys are off during the upgrade and checked before the commit, as SQLite's
   own procedure for this asks). Move data with ``op.execute`` or ``op.get_bind()``; never import
   storage.models in a revision, it describes head, not that revision's schema.
3. ``pytest tests/storage/test_migrations.py``: it migrates fresh SQLite and PostgreSQL
   databases and compares them with models.py, printing Alembic's diff (the ops still missing)
   when they disagree. To test moving data: ``await upgrade(engine, "0001")``, insert rows of
   the old shape, ``await upgrade(engine)``, then read them back.

Autogenerate is optional: ``alembic.autogenerate.compare_metadata`` on a migrated database, or
``alembic.command.check(config(connection))``, lists the differences to write ops for.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import String, column, func, inspect, select, table, text
from sqlalchemy.schema import CreateSchema

from storage.engine import StorageError
from storage.schema import Migration, SchemaState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["BASELINE", "HEAD", "PG_LOCK_KEY", "config", "head", "install", "state", "upgrade"]

_log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "head"
# The revision that reproduces what create_all made before migrations existed.
BASELINE = "0001"
# The tables create_all made: all present without alembic_version marks such a database.
_BASELINE_TABLES = frozenset({"chats", "conversations", "usage"})
_VERSION_TABLE = "alembic_version"
# Any 64-bit key that every kamiya-bot process agrees on: "kamiya" in ASCII, then 1.
PG_LOCK_KEY = 0x6B61_6D69_7961_0001
# Per event loop, dropped with it; see _in_process_lock.
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``connection`` is what ``env.py`` migrates.

    For ``alembic.command`` calls of your own (``check``, ``downgrade`` in a test): pass a
    connection inside a transaction you commit, as ``upgrade`` does.
    """
    alembic_config = Config()
    # ConfigParser interpolates "%": escape it in case the install path has one.
    alembic_config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        alembic_config.attributes["connection"] = connection
    return alembic_config


def head() -> str:
    """The newest revision: the one ``upgrade`` brings every database to."""
    current = ScriptDirectory.from_config(config()).get_current_head()
    if current is None:
        raise RuntimeError(f"no revisions in {MIGRATIONS / 'versions'}")
    return current


async def upgrade(
    engine: AsyncEngine, revision: str = HEAD, *, schema: str | None = None
) -> Migration:
    """Upgrade the database behind ``engine`` to ``revision`` (head unless a test says otherwise).

    Idempotent and safe to call from several processes at once; see the module docstring.
    Raises ``StorageError`` for a database it must not touch: some but not all of the old
    tables without a version, or (``SchemaMismatch``) a revision newer than this code knows.
    """
    async with _in_process_lock(), engine.connect() as conn:
        return await conn.run_sync(_upgrade_locked, revision, schema, False)


async def install(engine: AsyncEngine, *, schema: str | None = None) -> Migration:
    """Create a new database at head; leave one at head alone; refuse any other.

    Raises ``SchemaMismatch`` for a database behind the code (including one made by
    ``create_all`` before migrations) or ahead of it. Decided under the same lock as
    ``upgrade``, so processes starting together on a new database create it once.
    """
    async with _in_process_lock(), engine.connect() as conn:
        return await conn.run_sync(_upgrade_locked, HEAD, schema, True)


async def state(engine: AsyncEngine) -> SchemaState:
    """Where the database stands against this code; reads only, takes no lock."""
    async with engine.connect() as conn:
        return await conn.run_sync(_state, ScriptDirectory.from_config(config()))


def _in_process_lock() -> asyncio.Lock:
    """This event loop's lock, serialising upgrades within the process, whatever the database.

    Alembic's ``context`` and ``op`` are module-level proxies: two upgrades interleaving on one
    loop (two stores opened with ``gather``) would send one's ops to the other's connection.
    One lock per loop, since an ``asyncio.Lock`` belongs to the loop it first waits on.
    """
    loop = asyncio.get_running_loop()
    lock = _LOOP_LOCKS.get(loop)
    if lock is None:
        lock = _LOOP_LOCKS[loop] = asyncio.Lock()
    return lock


def _upgrade_locked(
    connection: Connection, revision: str, schema: str | None, install_only: bool
) -> Migration:
    """Take the dialect's lock, upgrade inside one transaction, commit."""
    if connection.dialect.name == "sqlite":
        return _upgrade_sqlite(connection, revision, install_only)
    with connection.begin():
        if connection.dialect.name == "postgresql":
            # Blocks until no other process holds it; released at commit or rollback.
            connection.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))
            if schema:
                _create_pg_schema(connection, schema)
        return _upgrade(connection, revision, install_only)


def _create_pg_schema(connection: Connection, schema: str) -> None:
    """Create ``schema`` unless it exists: looked up first, since ``CREATE SCHEMA IF NOT
    EXISTS`` still needs the CREATE privilege on the database, which a shared one may deny."""
    found = connection.scalar(
        text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :name"), {"name": schema}
    )
    if found is None:
        _log.info("creating schema %s", schema)
        connection.execute(CreateSchema(schema))


def _upgrade_sqlite(connection: Connection, revision: str, install_only: bool) -> Migration:
    """Upgrade under the file's write lock with foreign keys off, checking them before commit.

    ``PRAGMA foreign_keys`` is a no-op inside a transaction, so it is switched before ``BEGIN``
    and restored after the commit; pysqlite opens no transaction of its own for PRAGMA or DDL.
    """
    with connection.begin():
        foreign_keys = bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            # IMMEDIATE: the write lock now, not at the first write, so two processes cannot
            # both read "no version" and then both create the tables.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            done = _upgrade(connection, revision, install_only)
            if done.changed:
                _check_foreign_keys(connection)
            return done
    finally:
        with connection.begin():
            connection.exec_driver_sql(
                "PRAGMA foreign_keys=ON" if foreign_keys else "PRAGMA foreign_keys=OFF"
            )


def _upgrade(connection: Connection, revision: str, install_only: bool) -> Migration:
    """Stamp a pre-migration database, then upgrade; ``install_only``: only an empty one."""
    alembic_config = config(connection)
    script = ScriptDirectory.from_config(alembic_config)
    found = _state(connection, script)
    if found.status == "ahead":
        raise found.mismatch()
    target = found.head if revision == HEAD else revision
    if found.revision == target:
        return Migration(target, target)
    if install_only:
        if found.status != "empty":
            raise found.mismatch()
        _log.info("new database: creating the schema at revision %s", target)
    if found.revision is None and _made_by_create_all(connection):
        _log.info("database made before migrations: stamping it at revision %s", BASELINE)
        command.stamp(alembic_config, BASELINE)
    command.upgrade(alembic_config, revision)
    return Migration(found.revision, target)


def _state(connection: Connection, script: ScriptDirectory) -> SchemaState:
    current = ", ".join(_current_revisions(connection)) or None
    known = {each.revision for each in script.walk_revisions()}
    tables = bool(_BASELINE_TABLES & set(inspect(connection).get_table_names()))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError(f"no revisions in {MIGRATIONS / 'versions'}")
    return SchemaState(current, head, tables, known=current in known)


def _current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions in ``alembic_version``, read directly.

    Alembic's own ``MigrationContext`` logs two INFO lines each time it is built; reading the
    table keeps a start at head quiet.
    """
    if not inspect(connection).has_table(_VERSION_TABLE):
        return ()
    version = select(column("version_num", String)).select_from(table(_VERSION_TABLE))
    return tuple(sorted(connection.scalars(version)))


def _made_by_create_all(connection: Connection) -> bool:
    """Whether the unversioned database holds the old tables; half of them is refused."""
    present = _BASELINE_TABLES & set(inspect(connection).get_table_names())
    if present and present != _BASELINE_TABLES:
        missing = ", ".join(sorted(_BASELINE_TABLES - present))
        raise StorageError(
            f"database has tables {', '.join(sorted(present))} but not {missing}, and no "
            f"{_VERSION_TABLE}: not a kamiya-bot schema that can be upgraded"
        )
    return bool(present)


def _check_foreign_keys(connection: Connection) -> None:
    """Fail the upgrade (so roll it back) if it left a row pointing at nothing."""
    violation = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
    if violation is not None:
        raise StorageError(
            f"migration left table {violation[0]} row {violation[1]} referring to a missing "
            f"{violation[2]} row; rolled back"
        )
