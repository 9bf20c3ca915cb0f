"""A running Telegram bot, as ``kamiya-bot run`` builds it, for tests and benchmarks."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bots.telegram.app import TelegramFrontend
from core import NULL_OBSERVER, Conversations, KamiyaClient, build_http_client, load_config
from core.retries import RetryPolicy
from storage import SqlStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from datetime import datetime
    from pathlib import Path

    from core import Config, Observer
    from storage import ConversationStore

TOKEN = "123456:TEST-TOKEN"
KAMIYA_KEY = "sk-kamiya-test-0123456789abcdef"


@dataclass
class Bot:
    """One running bot process' objects."""

    frontend: TelegramFrontend
    conversations: Conversations
    store: ConversationStore


def write_config(
    folder: Path,
    *,
    kamiya_url: str,
    telegram_url: str,
    extra: str = "",
    key: str = KAMIYA_KEY,
    kamiya: str = "retries = 0",
    bot: str = "",
    grace_s: float = 1.5,
) -> Config:
    """``bot.toml`` in ``folder``: ``extra`` lines go to [telegram], ``kamiya`` to [kamiya]
    (by default no retries, so a scripted fault is what the user sees), ``bot`` to [bot]
    after ``shutdown_grace_s`` (short: a test ending with a reply held at a gate waits it)."""
    path = folder / "bot.toml"
    path.write_text(
        f"[bot]\nshutdown_grace_s = {grace_s}\n{bot}\n"
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{key}"\n{kamiya}\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{folder / "bot.db"}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram_url}/bot"\n'
        f"poll_timeout_s = 1\n{extra}\n",
        encoding="utf-8",
    )
    return load_config(path, {})


@asynccontextmanager
async def running_bot(
    config: Config,
    *,
    titles: bool = False,
    clock: Callable[[], datetime] | None = None,
    store: ConversationStore | None = None,
    observer: Observer = NULL_OBSERVER,
) -> AsyncIterator[Bot]:
    """The bot as ``kamiya-bot run`` wires it from ``config``; ``store`` (kept open: a restart
    that shares it keeps its data) replaces the configured database, ``clock`` core's clock,
    ``observer`` hears core's events (metrics)."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(build_http_client(config.kamiya))
        if store is None:
            # As run opens it: the configured schema; a new database created, an old refused.
            store = await stack.enter_async_context(
                await SqlStore.open(
                    config.storage.url, schema=config.storage.pg_schema or None, upgrade=False
                )
            )
        key = config.kamiya.api_key.get_secret_value()
        client = KamiyaClient(http, base_url=config.kamiya.base_url, api_key=key)
        conversations = await stack.enter_async_context(
            Conversations(
                client,
                store,
                titles=titles,
                observer=observer,
                **_core_settings(config, clock),
            )
        )
        frontend = TelegramFrontend(config, conversations)
        await frontend.start()
        try:
            yield Bot(frontend, conversations, store)
        finally:
            await frontend.stop()


def _core_settings(config: Config, clock: Callable[[], datetime] | None) -> dict[str, Any]:
    """What ``core.conversations_from_config`` takes from the config, and the test's clock."""
    settings = config.conversation
    kwargs: dict[str, Any] = {
        "max_pending": settings.max_pending,
        "title_model": config.kamiya.title_model,
        "models": config.kamiya.models,
        "system_prompt": settings.system_prompt,
        "history_chars": settings.history_chars,
        "resume_window": timedelta(hours=settings.resume_window_h),
        "requests_per_minute": config.limits.requests_per_minute,
        "chars_per_day": config.limits.chars_per_day,
        "retries": RetryPolicy(config.kamiya.retries, max_s=config.kamiya.retry_max_s),
        "max_streams": config.bot.max_concurrent_streams,
    }
    if clock is not None:
        kwargs["clock"] = clock
    return kwargs
