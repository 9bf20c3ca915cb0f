"""Run the installed ``kamiya-bot`` console script as a user would, in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SCRIPT = Path(sys.executable).with_name("kamiya-bot")


def command(*args: str) -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "bots", *args]


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_API_KEY"))}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


async def run(*args: str, cwd: Path, stdin: str = "", **env: str) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *command(*args),
        cwd=cwd,
        env=environ(**env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def stored_ids(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT chat_key, conversation_id FROM chats").fetchall())


def _soft_open_files(limit: int) -> None:
    import resource  # noqa: PLC0415 - POSIX only, in the child

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


@dataclass
class Served:
    """A ``kamiya-bot run`` process after SIGTERM: exit code, stderr, seconds it took to stop."""

    code: int | None = None
    stderr: str = ""
    stop_s: float = 0.0
    pid: int = 0


@asynccontextmanager
async def serving(
    config: Path, *, open_files: int | None = None, **env: str
) -> AsyncIterator[Served]:
    """Run ``kamiya-bot run --config`` for the body, then SIGTERM it and collect the result.

    ``open_files``: the process starts with this soft limit of open files, as some service
    managers start it (1,024, or less)."""
    proc = await asyncio.create_subprocess_exec(
        *command("run", "--config", str(config)),
        cwd=config.parent,
        env=environ(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=None if open_files is None else partial(_soft_open_files, open_files),
    )
    served = Served(pid=proc.pid)
    try:
        yield served
    finally:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _out, err = await proc.communicate()
        served.stop_s = time.monotonic() - sent
        served.code = proc.returncode
        served.stderr = err.decode()
