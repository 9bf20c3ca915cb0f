"""Alembic's environment: run the revisions on the connection ``storage.migrate`` passes in.

No ``alembic.ini`` and no URL: ``storage.migrate.upgrade`` opens the connection, takes the lock
and the transaction, and hands the connection over in ``config.attributes``. Alembic sees the
transaction already begun and leaves committing to the caller, so a failed revision rolls back
with everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import context

from storage.models import Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with storage.migrate.upgrade(engine), not the alembic CLI")

# target_metadata serves Alembic's comparisons (``command.check``, ``compare_metadata``) and gives
# ``op`` the models' naming convention; migrating itself needs only the revisions.
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
