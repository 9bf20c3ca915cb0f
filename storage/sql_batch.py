"""Crash-record writes of many replies, gathered into one transaction.

Every reply begins, notes and ends its record (``core.inflight``): at 1,000 chats that was
thousands of one-row transactions a minute through SQLite's single writer, each paying
SQLAlchemy's per-statement cost, and replies waited in that queue before they could start.
Here a caller's operation joins the next batch; one task writes each batch in one transaction,
coalesced to one row operation per reply (see ``sql_replies.apply``), and every caller returns
once the batch is committed, or raises what the batch raised.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from storage.sql_replies import ReplyOp

__all__ = ["Batcher"]


class Batcher:
    """Runs ``write(ops)`` for everything submitted while the previous batch was written."""

    def __init__(
        self,
        write: Callable[[list[ReplyOp]], Awaitable[None]],
        track: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self._write = write
        self._track = track
        self._pending: list[tuple[ReplyOp, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, op: ReplyOp) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="sql-reply-batches")
            self._track(self._task)
        await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write([op for op, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else _cut(exc))
                if not isinstance(exc, Exception):
                    self._fail_pending()
                    raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _fail_pending(self) -> None:
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the batch writer was cancelled"))
        self._pending = []


def _cut(exc: BaseException) -> Exception:
    return RuntimeError(f"the batch writer was interrupted: {exc!r}")
