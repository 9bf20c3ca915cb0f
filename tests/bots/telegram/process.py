"""``kamiya-bot run`` in a subprocess that a test may stop politely (SIGTERM) or kill (SIGKILL).

stderr is read as it comes, so a chatty process never blocks on a full pipe, and kept for the
test to search (for secrets, tracebacks).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.bots.cli import command, environ

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@dataclass
class BotProcess:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    code: int | None = None
    stop_s: float = 0.0  # from the signal to the exit

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    async def terminate(self, timeout: float = 20.0) -> int:  # noqa: ASYNC109
        """SIGTERM, then the exit code (and ``stop_s``)."""
        return await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash or an OOM kill."""
        await self._signal(signal.SIGKILL, 10.0)

    async def _signal(self, sig: signal.Signals, timeout: float) -> int:  # noqa: ASYNC109
        sent = time.monotonic()
        self.proc.send_signal(sig)
        async with asyncio.timeout(timeout):
            self.code = await self.proc.wait()
        self.stop_s = time.monotonic() - sent
        return self.code


@asynccontextmanager
async def bot_process(config: Path, **env: str) -> AsyncIterator[BotProcess]:
    """``kamiya-bot run --config config`` (``env``: extra variables); killed at the end if the
    test left it running."""
    proc = await asyncio.create_subprocess_exec(
        *command("run", "--config", str(config)),
        cwd=config.parent,
        env=environ(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = BotProcess(proc)
    reader = asyncio.create_task(_read(proc, running.lines))
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader


async def _read(proc: asyncio.subprocess.Process, into: list[str]) -> None:
    assert proc.stderr is not None
    async for line in proc.stderr:
        into.append(line.decode(errors="replace"))


def open_replies(db: Path) -> list[tuple[str, str]]:
    """The crash records in the database: (message ids as JSON, shown text)."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT message_ids, shown FROM replies_in_flight").fetchall()
    return [(str(ids), str(shown)) for ids, shown in rows]
