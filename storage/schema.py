"""A database's schema as operators see it: where it stands, and upgrading it by URL.

``kamiya-bot migrate`` and ``kamiya-bot check`` work on a URL, not a store: these functions open
an engine, do one thing through ``storage.migrate`` and dispose of it, turning any failure into a
one-line ``StorageError`` without the URL's password. Alembic is loaded only when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from storage.engine import SchemaMismatch, StorageError, create_engine, safe_reason, safe_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Migration", "SchemaState", "read_schema", "upgrade_database"]

T = TypeVar("T")
Status = Literal["current", "empty", "behind", "ahead"]


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database's schema stands against this code's newest revision, ``head``.

    ``revision`` is the database's (``None``: it has no version); ``tables``: it holds
    kamiya-bot's tables; ``known``: this code has ``revision`` among its migrations.
    """

    revision: str | None
    head: str
    tables: bool
    known: bool

    @property
    def status(self) -> Status:
        """``empty``: a new database, created at head on first start; ``behind``: needs
        ``kamiya-bot migrate`` (a database made by ``create_all`` before migrations is behind
        too); ``ahead``: written by a newer kamiya-bot."""
        if self.revision is None:
            return "behind" if self.tables else "empty"
        if not self.known:
            return "ahead"
        return "current" if self.revision == self.head else "behind"

    def mismatch(self) -> SchemaMismatch:
        """The error refusing this state (meaningful when behind or ahead)."""
        return SchemaMismatch(self.revision, self.head, ahead=self.status == "ahead")


@dataclass(frozen=True, slots=True)
class Migration:
    """What an upgrade did: from ``before`` (``None``: no version yet) to ``after``."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


async def upgrade_database(url: str, *, schema: str | None = None) -> Migration:
    """Upgrade the database at ``url`` to head, creating ``schema`` if it is missing."""
    from storage.migrate import upgrade  # noqa: PLC0415 - Alembic only when used

    return await _with_engine(url, schema, lambda engine: upgrade(engine, schema=schema))


async def read_schema(url: str, *, schema: str | None = None) -> SchemaState:
    """Where the database at ``url`` stands, changing nothing (a missing schema reads empty)."""
    from storage.migrate import state  # noqa: PLC0415 - Alembic only when used

    return await _with_engine(url, schema, state)


async def _with_engine(
    url: str, schema: str | None, job: Callable[[AsyncEngine], Awaitable[T]]
) -> T:
    engine = create_engine(url, schema=schema)
    try:
        return await job(engine)
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"cannot open {safe_url(url)}: {safe_reason(exc, url)}") from None
    finally:
        await engine.dispose()
