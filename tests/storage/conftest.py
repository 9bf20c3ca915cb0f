"""Backends for the storage contract suite: memory, and the SQL targets of ``tests/pg.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from storage import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from storage import ConversationStore
    from tests.pg import SqlTarget


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
