"""The Telegram frontend: a python-telegram-bot Application (long polling) wired to core.

Handlers never wait on Kamiya or on a slow Telegram call: PTB runs them one update at a time, so
each one takes the chat's place in line (``Conversations.ask`` does that synchronously) inside a
task it spawns and returns. The frontend owns those tasks and ends them on ``stop``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import BotCommand, BotCommandScopeDefault, ReplyParameters, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, CommandHandler, MessageHandler, filters

from bots.telegram.api import call
from bots.telegram.paste import PasteJoiner
from bots.telegram.routing import chat_key, is_private, prompt_text, thread_of, triggered
from bots.telegram.sink import TelegramReply
from bots.telegram.surface import Target, TelegramSurface
from bots.telegram.texts import COMMANDS, say
from core.background import Background
from core.throttle import Gates, PaceLimits, RetryLater

if TYPE_CHECKING:
    from collections.abc import Hashable

    from telegram import Bot, Message, User
    from telegram.ext import ContextTypes

    from core import ChatKey, Config, Conversations, TelegramSettings

__all__ = ["TelegramFrontend"]

log = logging.getLogger(__name__)

DRAIN_S = 1.5  # on stop, replies in flight get this long to finish before they are cancelled


class TelegramFrontend:
    """``bots.runner.Frontend`` for Telegram."""

    name = "telegram"

    def __init__(self, config: Config, conversations: Conversations) -> None:
        self._settings: TelegramSettings = config.telegram
        self._conversations = conversations
        self._app: Application | None = None  # type: ignore[type-arg]
        self._tasks = Background("telegram")
        self._gates = Gates()
        self._no_drafts: set[int] = set()
        self._refused: set[tuple[int, int]] = set()
        self._paste = PasteJoiner(self._flush_paste, window=self._settings.paste_window_s)
        self._pending: dict[Hashable, Message] = {}
        settings = self._settings
        self._private = PaceLimits(
            per_second=settings.per_chat_per_s,
            burst=settings.per_chat_burst,
            global_per_second=settings.global_per_s,
        )
        self._group = PaceLimits(
            per_second=settings.per_chat_per_s,
            burst=settings.per_chat_burst,
            window_calls=settings.group_per_min,
            window_s=60.0,
            global_per_second=settings.global_per_s,
        )

    @property
    def bot(self) -> Bot:
        if self._app is None:
            raise RuntimeError("the Telegram frontend is not started")
        bot: Bot = self._app.bot
        return bot

    @property
    def bot_user(self) -> User:
        user: User = self.bot.bot  # known since initialize() called getMe
        return user

    @property
    def busy(self) -> int:
        """Replies and answers still in progress (what shutdown drains; tests wait on it)."""
        return len(self._tasks)

    async def start(self) -> None:
        settings = self._settings
        base = settings.base_url
        file_base = base[: -len("bot")] + "file/bot" if base.endswith("/bot") else base
        app = (
            ApplicationBuilder()
            .token(settings.token.get_secret_value())
            .base_url(base)
            .base_file_url(file_base)
            .build()
        )
        app.add_handler(CommandHandler("start", self._on_start))
        app.add_handler(CommandHandler("help", self._on_start))
        app.add_handler(CommandHandler(["reset", "new"], self._on_reset))
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_message)
        )
        app.add_error_handler(self._on_error)
        await app.initialize()
        self._app = app
        await self._register_commands()
        if app.updater is None:
            raise RuntimeError("python-telegram-bot was built without an updater")
        await app.updater.start_polling(
            timeout=int(settings.poll_timeout_s), allowed_updates=[Update.MESSAGE]
        )
        await app.start()
        log.info("telegram: serving as @%s", self.bot_user.username)

    async def stop(self) -> None:
        app = self._app
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        self._paste.flush_all()
        await self._tasks.drain(DRAIN_S)
        if app.running:
            await app.stop()
        await app.shutdown()
        self._app = None

    async def _register_commands(self) -> None:
        for code in (None, "zh"):
            commands = [BotCommand(name, say(f"cmd_{name}", code)) for name in COMMANDS]
            try:
                await self.bot.set_my_commands(
                    commands, scope=BotCommandScopeDefault(), language_code=code
                )
            except TelegramError as exc:
                log.warning("telegram: could not register the command menu: %s", exc)

    # Handlers: quick, never wait on Kamiya.

    async def _on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not self._allowed(message):
            return
        lang = message.from_user.language_code if message.from_user else None
        lines = [say("start", lang)]
        if not is_private(message) and not self.bot_user.can_read_all_group_messages:
            lines.append(say("group_note", lang, mention=f"@{self.bot_user.username}"))
        self._tasks.spawn(self._say(message, "\n\n".join(lines)))

    async def _on_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not self._allowed(message):
            return
        self._paste.flush_all()
        key = self._key(message)
        lang = message.from_user.language_code if message.from_user else None
        self._tasks.spawn(self._reset(message, key, lang))

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        if not triggered(message, self.bot_user) or not self._allowed(message):
            return
        lang = message.from_user.language_code
        if message.text is None and message.caption is None:
            self._tasks.spawn(self._say(message, say("text_only", lang)))
            return
        text = prompt_text(message, self.bot_user)
        if not text:
            return  # whitespace, or a bare mention: nothing to answer
        paste_key = (message.chat.id, thread_of(message), message.from_user.id)
        self._pending[paste_key] = message
        self._paste.feed(paste_key, text)

    def _flush_paste(self, paste_key: Hashable, text: str) -> None:
        message = self._pending.pop(paste_key)
        if message.from_user is not None:
            self._tasks.spawn(self._answer(message, message.from_user, self._key(message), text))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update", exc_info=context.error)

    # Work, in spawned tasks.

    async def _answer(self, message: Message, user: User, key: ChatKey, text: str) -> None:
        bot = self.bot
        chat_id = message.chat.id
        private = is_private(message)
        target = Target(chat_id, thread_of(message), message.message_id)
        surface = TelegramSurface(
            bot,
            target,
            draft=private
            and self._settings.stream_mode == "draft"
            and chat_id not in self._no_drafts,
            on_draft_refused=lambda: self._no_drafts.add(chat_id),
        )
        gate = self._gates.get(chat_id, self._private if private else self._group)
        sink = TelegramReply(bot, target, surface, gate, language_code=user.language_code)
        try:
            await self._conversations.ask(
                key,
                text,
                sink,
                user_id=str(user.id),
                language=user.language_code,
            )
        finally:
            await sink.aclose()

    async def _reset(self, message: Message, key: ChatKey, lang: str | None) -> None:
        await self._conversations.reset(key)
        await self._say(message, say("reset", lang))

    async def _say(self, message: Message, line: str) -> None:
        bot = self.bot
        try:
            await call(
                lambda: bot.send_message(
                    message.chat.id,
                    line,
                    message_thread_id=thread_of(message),
                    reply_parameters=None if is_private(message) else _reply_to(message),
                )
            )
        except (TelegramError, RetryLater) as exc:
            log.warning("telegram: could not answer chat %s: %r", message.chat.id, exc)

    def _key(self, message: Message) -> ChatKey:
        return chat_key(message, group_scope=self._settings.group_scope)

    def _allowed(self, message: Message) -> bool:
        allowed = self._settings.allowed_user_ids
        user = message.from_user
        if not allowed or (user is not None and user.id in allowed):
            return True
        if user is not None and (message.chat.id, user.id) not in self._refused:
            self._refused.add((message.chat.id, user.id))  # one polite refusal, then silence
            self._tasks.spawn(self._say(message, say("not_allowed", user.language_code)))
        return False


def _reply_to(message: Message) -> ReplyParameters:
    return ReplyParameters(message.message_id, allow_sending_without_reply=True)
