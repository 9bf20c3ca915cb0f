"""Engines from URLs, SQLite tuned for a bot, and the schema (migrated by ``storage.migrate``).

SQLite is the default deployment: one file, several writers (frontends, maybe a second process).
WAL lets readers proceed during a write, and ``busy_timeout`` makes a writer wait for the lock
instead of failing at once with "database is locked".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import URL
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "SchemaMismatch",
    "StorageError",
    "create_engine",
    "create_schema",
    "safe_reason",
    "safe_url",
]

# busy_timeout first: switching to WAL needs a lock another connection may briefly hold. Long
# enough that hundreds of replies writing at once (each write is short) all get their turn.
# synchronous=NORMAL is SQLite's advice for WAL: a commit no longer waits for fsync, only a
# checkpoint does; a crashed process loses nothing (the WAL is in the OS's cache), a power cut
# at worst the last commits, and the file always stays consistent.
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=15000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


class StorageError(Exception):
    """The database cannot be opened; ``str()`` is one line without the URL's password."""


class SchemaMismatch(StorageError):
    """The database's schema is not the one this code was written for, and must not be used.

    ``revision`` is the database's (``None``: tables made before migrations, no version);
    ``head`` is this code's newest; ``ahead`` means the database's revision is one this code
    does not know, so a newer kamiya-bot wrote it. Behind, ``kamiya-bot migrate`` fixes it.
    """

    def __init__(self, revision: str | None, head: str, *, ahead: bool) -> None:
        self.revision = revision
        self.head = head
        self.ahead = ahead
        if ahead:
            text = (
                f"database schema is at revision {revision}, which this kamiya-bot does not "
                f"know (newest: {head}); run a newer kamiya-bot"
            )
        elif revision is None:
            text = (
                "database schema predates migrations (tables without a revision); this "
                f"kamiya-bot needs revision {head}"
            )
        else:
            text = f"database schema is at revision {revision}; this kamiya-bot needs {head}"
        super().__init__(text)


def safe_url(url: str) -> str:
    """``url`` as it may be shown: the password masked, or a placeholder if it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # any unparsable URL: show nothing of it rather than risk a secret
        return "<unparsable database URL>"


def safe_reason(exc: BaseException, url: str) -> str:
    """Why ``exc`` happened, in one line of at most 200 characters, the URL's password masked."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split()) or type(exc).__name__
    try:
        password = make_url(url).password
    except Exception:  # unparsable: nothing to mask beyond what safe_url already hides
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text if len(text) <= 200 else text[:197] + "..."


def create_engine(
    url: str, *, connect_args: Mapping[str, object] | None = None, schema: str | None = None
) -> AsyncEngine:
    """Build an async engine for ``url``; for SQLite, prepare the file and every connection.

    ``connect_args`` go to the DBAPI ``connect()``. ``schema`` (PostgreSQL only) puts the tables
    in that schema, through asyncpg's ``server_settings`` ``search_path``, so that several
    deployments (or tests) can share one database; ``storage.migrate`` creates it if missing.
    Any failure (a bad URL, an unknown dialect, a driver not installed, a folder that cannot be
    made) is a one-line ``StorageError`` without the URL's password.
    """
    try:
        return _create_engine(url, connect_args, schema)
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"cannot use {safe_url(url)}: {safe_reason(exc, url)}") from None


def _create_engine(
    url: str, connect_args: Mapping[str, object] | None, schema: str | None
) -> AsyncEngine:
    parsed = make_url(url)
    args = dict(connect_args or {})
    if schema:
        if parsed.get_backend_name() != "postgresql":
            raise StorageError(f"a schema needs PostgreSQL, not {parsed.get_backend_name()}")
        settings = dict(cast("Mapping[str, str]", args.get("server_settings", {})))
        args["server_settings"] = {**settings, "search_path": schema}
    if parsed.get_backend_name() == "sqlite":
        _make_parent_dir(parsed)
    engine = create_async_engine(parsed, connect_args=args)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


async def create_schema(engine: AsyncEngine, *, schema: str | None = None) -> None:
    """Migrate the database to the newest schema; a no-op once there, so this runs on every start.

    An empty database gets every migration; one made by ``create_all`` before migrations existed
    is stamped at the baseline and upgraded, keeping its rows. Processes starting together take
    turns (an advisory lock on PostgreSQL, the write lock on SQLite). See ``storage.migrate``.
    """
    # Imported here because storage.migrate raises this module's StorageError; this also leaves
    # Alembic unloaded until a database is opened.
    from storage.migrate import upgrade  # noqa: PLC0415

    await upgrade(engine, schema=schema)


def _make_parent_dir(url: URL) -> None:
    """Create the directory of a file database: SQLite creates the file but not its directory."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri"):
        # In-memory, or a ``file:`` URI whose path SQLite resolves itself.
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)


def _set_sqlite_pragmas(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    """Apply the pragmas on each new connection: busy_timeout and foreign_keys are per connection.

    ``journal_mode=WAL`` is stored in the file after the first time; repeating it is a no-op that
    also covers a file someone switched back to a rollback journal.
    """
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
