"""``LocalOrder``: the chat order of a store only one process uses (memory, SQLite).

That process orders its turns itself, so a place here never waits. SQLite is the embedded,
one-process backend; several processes share PostgreSQL (``storage.pg_order``).
"""

from __future__ import annotations

__all__ = ["LocalOrder"]


class _Free:
    """A place that is always at the head of its line."""

    __slots__ = ()

    async def recorded(self) -> None:
        return None

    async def wait(self) -> None:
        return None

    def done(self) -> None:
        return None


_FREE = _Free()


class LocalOrder:
    """``ChatOrder`` for one process."""

    __slots__ = ()

    def place(self, chat_key: str) -> _Free:
        return _FREE
