"""Start the configured frontends, run until SIGTERM/SIGINT, stop them quickly and cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from core import Config, Conversations

__all__ = [
    "Frontend",
    "FrontendFactory",
    "NoFrontend",
    "StartFailed",
    "available_frontends",
    "configured",
    "select_frontends",
    "serve",
    "stop_on_signals",
]

log = logging.getLogger(__name__)

# Per frontend, beyond [bot] shutdown_grace_s (the drain of replies in flight): closing
# connections and marking cut-off replies takes a few seconds at most.
STOP_MARGIN_S = 4.0


class Frontend(Protocol):
    """A platform bot: started once, stopped once, long-running in between."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def healthy(self) -> bool:
        """Whether it serves now (``/healthz``): connected, receiving updates."""
        ...


#: Builds a frontend from the config and the shared adapter.
FrontendFactory: TypeAlias = "Callable[[Config, Conversations], Frontend]"


class StartFailed(Exception):
    """A frontend could not start (a port taken, a platform refusing its setup); one line."""


class NoFrontend(Exception):
    """Nothing to run: no token is configured, or a configured one has no frontend yet."""


def available_frontends() -> dict[str, FrontendFactory]:
    """Frontends this build ships, by config section."""
    from bots.discord.app import DiscordFrontend  # noqa: PLC0415 - heavy, only when serving
    from bots.telegram.app import TelegramFrontend  # noqa: PLC0415

    return {"telegram": TelegramFrontend, "discord": DiscordFrontend}


def configured(config: Config) -> list[str]:
    """Sections with a token set, in start order."""
    tokens = {"telegram": config.telegram.token, "discord": config.discord.token}
    return [name for name, token in tokens.items() if token.get_secret_value()]


def select_frontends(config: Config) -> list[FrontendFactory]:
    """The factories of the configured frontends; raises ``NoFrontend`` before anything opens."""
    names = configured(config)
    if not names:
        raise NoFrontend(
            "no frontend configured: set [telegram] token or [discord] token "
            "(or TELEGRAM_BOT_TOKEN / DISCORD_BOT_TOKEN); try `kamiya-bot chat --offline`"
        )
    factories = available_frontends()
    missing = [name for name in names if name not in factories]
    if missing:
        raise NoFrontend(f"this version of kamiya-bot has no {' or '.join(missing)} frontend yet")
    return [factories[name] for name in names]


async def serve(
    frontends: Sequence[Frontend], stop: asyncio.Event, *, grace_s: float = 0.0
) -> None:
    """Start every frontend, wait for ``stop``, then stop them all at once.

    Each frontend drains its replies for up to ``grace_s`` (``[bot] shutdown_grace_s``) and
    gets ``STOP_MARGIN_S`` more to close. A frontend that fails to start stops the ones
    already started and re-raises.
    """
    started: list[Frontend] = []
    try:
        for frontend in frontends:
            await frontend.start()
            started.append(frontend)
            log.info("%s frontend started", frontend.name)
        await stop.wait()
    finally:
        # All at once, so the process is gone within one grace period and margin of a signal.
        limit = grace_s + STOP_MARGIN_S
        await asyncio.gather(*(_stop(frontend, limit) for frontend in reversed(started)))


async def _stop(frontend: Frontend, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await frontend.stop()
    except TimeoutError:
        log.warning("%s frontend did not stop within %.0f s", frontend.name, limit)
    except Exception:
        log.exception("%s frontend failed to stop cleanly", frontend.name)
    else:
        log.info("%s frontend stopped", frontend.name)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], object]) -> Iterator[None]:
    """Call ``stop`` on SIGTERM or SIGINT while inside; restore the old handlers after."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
