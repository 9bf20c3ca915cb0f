"""``kamiya-bot migrate``, and what ``run``, ``chat`` and ``check`` say of a schema not at head.

A bot creates a new database itself but never upgrades an existing one (``SqlStore.open`` with
``upgrade=False``): upgrading a deployment is a step its operator takes, with the exact command
this module spells out.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from storage import read_schema, safe_url, upgrade_database

if TYPE_CHECKING:
    from core import Config
    from storage import Migration, SchemaMismatch, SchemaState

__all__ = ["describe_state", "migrate", "migrate_command", "refusal", "schema_of"]


def schema_of(config: Config) -> str | None:
    """The configured PostgreSQL schema, ``None`` for the server's default."""
    return config.storage.pg_schema or None


def migrate_command(config_file: str | None) -> str:
    """The command that upgrades the database ``config_file`` (or the defaults) points at."""
    if config_file is None:
        return "kamiya-bot migrate"
    return f"kamiya-bot migrate --config {shlex.quote(config_file)}"


def refusal(exc: SchemaMismatch, config_file: str | None) -> str:
    """Why a bot will not start on this database, and what to run (nothing, if it is ahead)."""
    if exc.ahead:
        return str(exc)
    return f"{exc}; run: {migrate_command(config_file)}"


async def migrate(config: Config) -> str:
    """Upgrade the configured database to head; one line saying from where to where.

    Raises ``StorageError`` (one line, no password) when it cannot.
    """
    done = await upgrade_database(config.storage.url, schema=schema_of(config))
    return f"{_where(config)}: {_summary(done)}"


async def describe_state(config: Config, config_file: str | None) -> tuple[bool, str]:
    """Whether the configured database may be started on, and one line why (for ``check``)."""
    found = await read_schema(config.storage.url, schema=schema_of(config))
    return _usable(found), _state_line(found, config_file)


def _summary(done: Migration) -> str:
    if not done.changed:
        return f"already at head (revision {done.after})"
    return f"upgraded from revision {done.before or '(none)'} to {done.after}"


def _usable(found: SchemaState) -> bool:
    return found.status in {"current", "empty"}


def _state_line(found: SchemaState, config_file: str | None) -> str:
    match found.status:
        case "current":
            return f"at head (revision {found.head})"
        case "empty":
            return f"new database: created at revision {found.head} on the first start"
        case "behind":
            return f"behind: {refusal(found.mismatch(), config_file)}"
        case "ahead":
            return f"ahead: {found.mismatch()}"


def _where(config: Config) -> str:
    schema = schema_of(config)
    where = safe_url(config.storage.url)
    return where if schema is None else f"{where} (schema {schema})"
