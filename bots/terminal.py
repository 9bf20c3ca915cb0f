"""The terminal frontend: ``kamiya-bot chat``.

Interactive (stdin is a terminal): prompt_toolkit reads lines with history and editing, rich
renders the reply as Markdown, live, in place. Scripted (stdin is a pipe or file): one message per
line, each reply printed once as plain text on stdout, notes and errors on stderr, so
``printf 'hello\\n' | kamiya-bot chat --offline`` is usable from a shell script.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from prompt_toolkit import PromptSession
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner

from bots.terminal_commands import COMMANDS, control
from core import ChatKey, Failure, Reply, failure_text, text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from rich.console import Console

    from core import Conversations

__all__ = ["LiveSink", "PlainSink", "chat_loop", "piped_lines", "prompt_lines"]

HELP = (
    "Type a message. /reset starts a new conversation, /model [name] picks a model, "
    "/system [text|reset] sets the system prompt, /history and /resume N go back to an "
    "earlier conversation, /usage shows your usage, /quit (or Ctrl-D) leaves."
)


class PlainSink:
    """Script mode: the final reply (``fullContent``) once, whole; nothing while it streams."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err

    async def queued(self, ahead: int) -> None:
        return None

    async def busy(self) -> None:
        print(text("busy_streams"), file=self._err, flush=True)

    async def started(self) -> None:
        return None

    async def progress(self, text: str) -> None:
        return None

    def pause(self) -> Awaitable[None] | None:
        return None  # nothing shown before the end: read at once, as it comes

    async def finished(self, reply: Reply) -> None:
        if reply.context_expired:
            print(text("expired"), file=self._err, flush=True)
        print(reply.text, file=self._out, flush=True)

    async def failed(self, failure: Failure) -> None:
        if failure.partial:
            print(f"{failure.partial} {text('cut_off_mark')}", file=self._out, flush=True)
        print(f"kamiya-bot: {failure_text(failure)}", file=self._err, flush=True)


class LiveSink:
    """Interactive mode: a spinner until the first token, then Markdown re-rendered in place."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    async def queued(self, ahead: int) -> None:
        return None

    async def busy(self) -> None:
        self._console.print(text("busy_streams"), style="dim")

    async def started(self) -> None:
        self._live = Live(
            Spinner("dots", "thinking…", style="dim"),
            console=self._console,
            refresh_per_second=15,
            vertical_overflow="visible",
        )
        self._live.start()

    async def progress(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Markdown(text))

    def pause(self) -> Awaitable[None] | None:
        return None  # a terminal has no pace to wait for

    async def finished(self, reply: Reply) -> None:
        self._show(Markdown(reply.text))
        if reply.context_expired:
            self._console.print(text("expired"), style="dim")

    async def failed(self, failure: Failure) -> None:
        if failure.partial:
            self._show(Markdown(f"{failure.partial} *{text('cut_off_mark')}*"))
        else:
            self.close()
        self._console.print(failure_text(failure), style="bold red")

    def close(self) -> None:
        """Leave whatever is shown on screen; safe to call twice."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _show(self, renderable: Markdown) -> None:
        if self._live is None:
            self._console.print(renderable)
        else:
            self._live.update(renderable, refresh=True)
            self.close()


async def prompt_lines(prompt: str = "you> ") -> AsyncIterator[str]:
    """Lines typed at a prompt; ends on Ctrl-D or Ctrl-C."""
    session: PromptSession[str] = PromptSession()
    while True:
        try:
            yield await session.prompt_async(prompt)
        except (EOFError, KeyboardInterrupt):
            return


async def piped_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines of a pipe or file, read by a daemon thread so a signal never waits on ``read``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def chat_loop(
    conversations: Conversations,
    user: str,
    lines: AsyncIterator[str],
    *,
    console: Console | None = None,
) -> int:
    """Answer each line in turn. Returns 1 if a scripted message failed, else 0.

    ``console`` set: interactive rendering; ``None``: script mode on stdout/stderr.
    """
    key = ChatKey("terminal", user)
    failed = False
    async for raw in lines:
        line = raw.strip()
        if not line:
            continue
        command = line.split()[0].lower()
        if command in {"/quit", "/exit"}:
            break
        if command in {"/reset", "/new"}:
            await conversations.reset(key)
            _note(console, text("reset"))
            continue
        if command in {"/help", "/start"}:
            _note(console, HELP)
            continue
        if command in COMMANDS:
            _note(console, await control(conversations, key, user, line))
            continue
        if console is None:
            outcome = await conversations.ask(
                key, line, PlainSink(sys.stdout, sys.stderr), user_id=user
            )
        else:
            sink = LiveSink(console)
            try:
                outcome = await conversations.ask(key, line, sink, user_id=user)
            finally:
                sink.close()
        failed = failed or isinstance(outcome, Failure)
    return 1 if failed and console is None else 0


def _note(console: Console | None, message: str) -> None:
    if console is None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    else:
        console.print(message, style="dim")
