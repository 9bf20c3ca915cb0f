"""Persistence for kamiya-bot: which conversation each chat continues, history and usage.

Core sees only ``storage.protocol``; the bots pick a backend: ``SqlStore`` for deployments
(SQLite or PostgreSQL by URL) or ``MemoryStore`` for tests and offline runs.
"""

from __future__ import annotations

from storage.engine import (
    SchemaMismatch,
    StorageError,
    create_engine,
    create_schema,
    safe_url,
)
from storage.memory import MemoryStore
from storage.protocol import (
    ChatState,
    ChatUsage,
    ConversationRecord,
    ConversationStore,
    InflightRecord,
    Mode,
    TurnRecord,
    UsageRecord,
    UsageTotals,
)
from storage.schema import Migration, SchemaState, read_schema, upgrade_database
from storage.sql import SqlStore

__all__ = [
    "ChatState",
    "ChatUsage",
    "ConversationRecord",
    "ConversationStore",
    "InflightRecord",
    "MemoryStore",
    "Migration",
    "Mode",
    "SchemaMismatch",
    "SchemaState",
    "SqlStore",
    "StorageError",
    "TurnRecord",
    "UsageRecord",
    "UsageTotals",
    "create_engine",
    "create_schema",
    "read_schema",
    "safe_url",
    "upgrade_database",
]
