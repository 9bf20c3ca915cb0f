"""A running Discord bot, as ``kamiya-bot run`` builds it, for tests and benchmarks."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bots.discord.app import DiscordFrontend
from core import Conversations, KamiyaClient, build_http_client, load_config
from core.retries import RetryPolicy
from storage import SqlStore
from tests.fakes.discord import ALICE
from tests.waiting import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

    from core import Config
    from storage import ConversationStore
    from tests.fakes.discord import FakeDiscord, Interaction, User

TOKEN = "discord-test-token"
COMMANDS = sorted(
    ["chat", "help", "history", "model", "reset", "resume", "stats", "stop", "system", "usage"]
)


@dataclass
class Bot:
    frontend: DiscordFrontend
    conversations: Conversations
    store: ConversationStore


class Clock:
    """Core's wall clock, moved ahead by hand (``advance``) to expire conversations or limits.

    It runs with real time otherwise, so conversations used one after another sort as such.
    """

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def write_config(
    folder: Path,
    *,
    kamiya_url: str,
    key: str,
    extra: str = "",
    kamiya: str = "retries = 0",
    storage_url: str | None = None,
) -> Config:
    """``extra`` is TOML appended after ``[discord]``: its keys, then other sections;
    ``kamiya`` are more ``[kamiya]`` keys (by default no retries: tests of a fault see it).
    """
    path = folder / "bot.toml"
    url = storage_url or f"sqlite+aiosqlite:///{folder / 'bot.db'}"
    path.write_text(
        f'[kamiya]\nbase_url = "{kamiya_url}"\napi_key = "{key}"\n{kamiya}\n'
        f'[storage]\nurl = "{url}"\n'
        f'[discord]\ntoken = "{TOKEN}"\n{extra}\n',
        encoding="utf-8",
    )
    return load_config(path, {})


def conversations_for(
    client: KamiyaClient,
    store: ConversationStore,
    config: Config,
    *,
    clock: Callable[[], datetime] | None = None,
    titles: bool = False,
) -> Conversations:
    """As ``core.conversations_from_config``, with titles off and the clock injectable."""
    kamiya = config.kamiya
    settings = config.conversation
    return Conversations(
        client,
        store,
        max_pending=settings.max_pending,
        titles=titles,
        title_model=config.kamiya.title_model,
        models=config.kamiya.models,
        system_prompt=settings.system_prompt,
        history_chars=settings.history_chars,
        resume_window=timedelta(hours=settings.resume_window_h),
        requests_per_minute=config.limits.requests_per_minute,
        chars_per_day=config.limits.chars_per_day,
        retries=RetryPolicy(kamiya.retries, max_s=kamiya.retry_max_s),
        max_streams=config.bot.max_concurrent_streams,
        clock=clock or Clock(),
    )


@asynccontextmanager
async def running_bot(
    config: Config,
    *,
    store: ConversationStore | None = None,
    clock: Callable[[], datetime] | None = None,
    titles: bool = False,
) -> AsyncIterator[Bot]:
    """The fake's ``patch_discord`` must be in force (discord.py's endpoints are class-wide).

    The store is the configured ``SqlStore`` unless one is given (a ``MemoryStore``, say).
    Kamiya is reached with the configured timeouts, retries and stream bound.
    """
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
        conversations = conversations_for(client, store, config, clock=clock, titles=titles)
        async with conversations:
            frontend = DiscordFrontend(config, conversations, guild_ready_timeout=0.05)
            await frontend.start()
            try:
                yield Bot(frontend, conversations, store)
            finally:
                await frontend.stop()


async def settled(bot: Bot, dc: FakeDiscord, *interactions: Interaction) -> None:
    """Wait until each interaction was acknowledged and every reply has finished."""
    await dc.wait_for(lambda f: all(i.acknowledged for i in interactions))
    await until(lambda: not bot.frontend.busy, timeout=30)


async def answer(dc: FakeDiscord, interaction: Interaction) -> str:
    """The text a command answered with, once it is there (a deferral filled, or at once)."""

    def answered(fake: FakeDiscord) -> bool:
        message = interaction.original_message
        return message is not None and not message.loading and not message.deleted

    answered.__qualname__ = f"/{interaction.name} answered"
    await dc.wait_for(answered)
    return interaction.original or ""


async def run(
    dc: FakeDiscord,
    name: str,
    options: Mapping[str, object] | None = None,
    *,
    user: User | int = ALICE,
    locale: str = "en-US",
) -> str:
    """Run a control command and return its answer, checked to be ephemeral."""
    interaction = dc.slash(name, options, user=user, locale=locale)
    text = await answer(dc, interaction)
    assert interaction.ephemeral, f"/{name} answered publicly: {text!r}"
    return text
