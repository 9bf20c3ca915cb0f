"""Tasks that outlive the call that started them, with one owner that drains or cancels them.

Every spawned job is logged if it fails (it has no caller to raise to), and a job cancelled
before it ever ran is closed, so shutdown leaves no "coroutine was never awaited" behind.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["Background"]

log = logging.getLogger(__name__)


class Background:
    """A set of running jobs; ``len()`` is how many are still running."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, job: Coroutine[object, object, None]) -> None:
        async def run() -> None:
            try:
                await job
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: a background job failed", self._name)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: job.close() if t.cancelled() else None)

    async def wait(self) -> None:
        """Until every job, including ones spawned meanwhile, has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a grace period, by design
        """Give running jobs ``timeout`` seconds to finish, then cancel the rest."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def cancel(self) -> None:
        await self.drain(0)
