"""``kamiya-bot run`` serving the fake Discord from a subprocess, stopped politely or killed.

stderr is read as it comes (a process logging at DEBUG never blocks on a full pipe) and kept
for the test to search: for secrets, tracebacks, or a line that says where the process is.
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
from tests.bots.discord.harness import TOKEN, write_config
from tests.conftest import KEY
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from core.fake_kamiya import FakeKamiya
    from tests.fakes.discord import FakeDiscord

SECRETS = (KEY, TOKEN)


def process_config(
    folder: Path, dc: FakeDiscord, fake: FakeKamiya, *, grace_s: float = 1.0, extra: str = ""
) -> Path:
    """A config for ``kamiya-bot run`` against the fakes; logs at DEBUG, no titles."""
    write_config(
        folder,
        kamiya_url=fake.base_url,
        key=KEY,
        extra=(
            f'api_base_url = "{dc.base_url}/api/v10"\ngateway_url = "{dc.ws_url}/"\n{extra}\n'
            f"[bot]\nshutdown_grace_s = {grace_s}\n"
            '[conversation]\ntitles = false\n[log]\nlevel = "DEBUG"\n'
        ),
    )
    return folder / "bot.toml"


@dataclass
class BotProcess:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    code: int | None = None
    stop_s: float = 0.0  # from the signal to the exit
    _signalled: float = 0.0

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def leaked(self) -> list[str]:
        """Lines of stderr that show a secret."""
        return [line for line in self.lines if any(secret in line for secret in SECRETS)]

    def term(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send SIGTERM (or ``sig``); ``exited`` waits for the end."""
        self._signalled = time.monotonic()
        self.proc.send_signal(sig)

    async def exited(self, timeout: float = 20.0) -> int:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            self.code = await self.proc.wait()
        self.stop_s = time.monotonic() - self._signalled
        return self.code

    async def terminate(
        self,
        sig: signal.Signals = signal.SIGTERM,
        timeout: float = 20.0,  # noqa: ASYNC109
    ) -> int:
        """SIGTERM (or ``sig``), then the exit code (and ``stop_s``)."""
        self.term(sig)
        return await self.exited(timeout)

    async def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash or an OOM kill."""
        self._signalled = time.monotonic()
        self.proc.kill()
        await self.exited(10.0)

    async def logged(self, fragment: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await until(lambda: fragment in self.stderr, timeout=timeout)


@asynccontextmanager
async def bot_process(config: Path, dc: FakeDiscord) -> AsyncIterator[BotProcess]:
    """``kamiya-bot run --config config``, connected to the fake Discord once entered;
    killed at the end if the test left it running."""
    identified = dc.gateway.identify_count
    proc = await asyncio.create_subprocess_exec(
        *command("run", "--config", str(config)),
        cwd=config.parent,
        env=environ(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = BotProcess(proc)
    reader = asyncio.create_task(_read(proc, running.lines))
    try:
        await dc.wait_for(
            lambda f: f.gateway.identify_count > identified and f.connected and bool(f.syncs),
            timeout=30,
        )
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
