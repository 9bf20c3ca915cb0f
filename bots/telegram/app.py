"""The Telegram frontend: a python-telegram-bot Application wired to core; updates arrive by
long polling or, in webhook mode, by Telegram's POSTs (``webhook``), to the same handlers.

Handlers never wait on Kamiya or on a slow Telegram call: PTB runs them one update at a time, so
each one takes the chat's place in line (``Conversations.ask`` does that synchronously) inside a
task it spawns and returns. The frontend owns those tasks and ends them on ``stop``.

Updates are messages (questions and commands) and callback queries (inline buttons: Stop,
Regenerate, and the /model and /resume keyboards, see ``keyboards``). Every press is answered.

Start marks the replies a killed process left unfinished (``recovery``). Stop is graceful: no
new updates (the ones fetched are confirmed to Telegram and handled, so a restart neither loses
nor repeats one; a webhook answers 503 and stays set), replies in flight get
``[bot] shutdown_grace_s`` to finish, the rest are cancelled, which core shows as interrupted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import BotCommand, BotCommandScopeDefault, Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bots.telegram import keyboards, outbox
from bots.telegram.acks import Acks
from bots.telegram.controls import Answer, Controls
from bots.telegram.http import bot_request
from bots.telegram.marks import drop_keyboard
from bots.telegram.paste import PasteJoiner
from bots.telegram.recovery import mark_interrupted
from bots.telegram.replies import Replies
from bots.telegram.routing import (
    chat_key,
    command_argument,
    is_private,
    prompt_text,
    replied_bot_message,
    thread_of,
    triggered,
)
from bots.telegram.texts import COMMANDS, say
from bots.telegram.updates import ReadableUpdates
from bots.telegram.webhook import open_webhook
from core import text
from core.background import Background

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Hashable

    from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, User
    from telegram.ext import ContextTypes

    from bots.telegram.webhook import Accept, WebhookServer
    from core import ChatKey, Config, Conversations, TelegramSettings
    from core.throttle import ChatGate

    Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[object, object, None]]
    Control = Callable[[ChatKey, User, str, str | None], Awaitable[Answer]]

__all__ = ["TelegramFrontend"]

log = logging.getLogger(__name__)

POLL_READ_TIMEOUT_S = 5.0  # beyond the long poll's own timeout (PTB's default)


class TelegramFrontend:
    """``bots.runner.Frontend`` for Telegram."""

    name = "telegram"

    def __init__(
        self, config: Config, conversations: Conversations, *, accept: Accept | None = None
    ) -> None:
        """``accept``: webhook mode's hand-over of each update (default ``enqueue``); the
        listener answers 200 once it returns. May be replaced at any time."""
        self._settings: TelegramSettings = config.telegram
        self.accept: Accept = accept or self.acknowledged
        self._acks = Acks()
        self._settles: dict[Hashable, list[Callable[[], None]]] = {}  # a paste's updates
        self._webhook: WebhookServer | None = None
        self._grace_s = config.bot.shutdown_grace_s
        self._conversations = conversations
        self._app: Application | None = None  # type: ignore[type-arg]
        self._tasks = Background("telegram")
        self._refused: set[tuple[int, int]] = set()
        self._paste = PasteJoiner(self._flush_paste, window=self._settings.paste_window_s)
        self._pending: dict[Hashable, Message] = {}
        self._replied: dict[
            Hashable, int
        ] = {}  # a paste that replied to one of the bot's messages
        self._replies = Replies(conversations, self._settings, lambda: self.bot)
        self._controls = Controls(conversations, admins=self._settings.admin_user_ids)

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
    def webhook(self) -> WebhookServer | None:
        """The webhook listener while one serves (webhook mode, started)."""
        return self._webhook

    @property
    def busy(self) -> int:
        """Replies and answers still in progress (what shutdown drains; tests wait on it)."""
        return len(self._tasks)

    def healthy(self) -> bool:
        """Up: started, update handling running, and updates coming in: the long poll (the
        updater) running, or in webhook mode the listener serving and not stopping."""
        app = self._app
        if app is None or not app.running:
            return False
        if self._webhook is not None:
            return not self._webhook.closing
        return app.updater is not None and app.updater.running

    async def start(self) -> None:
        settings = self._settings
        base = settings.base_url
        file_base = base[: -len("bot")] + "file/bot" if base.endswith("/bot") else base
        app = (
            ApplicationBuilder()
            .token(settings.token.get_secret_value())
            .base_url(base)
            .base_file_url(file_base)
            .request(bot_request())
            .get_updates_request(
                ReadableUpdates(connection_pool_size=1, read_timeout=POLL_READ_TIMEOUT_S)
            )
            .build()
        )
        controls = self._controls
        handlers: dict[str, Handler] = {
            "start": self._on_start,
            "help": self._on_start,
            "reset": self._on_reset,
            "new": self._on_reset,
            "stop": self._on_stop,
            "model": self._control(lambda k, u, a, lang: controls.model(k, a, lang), flush=True),
            "system": self._control(lambda k, u, a, lang: controls.system(k, a, lang), flush=True),
            "history": self._control(lambda k, u, a, lang: controls.history(k, lang)),
            "resume": self._control(lambda k, u, a, lang: controls.resume(k, a, lang), flush=True),
            "usage": self._control(lambda k, u, a, lang: controls.usage(u.id, lang)),
            "stats": self._control(lambda k, u, a, lang: controls.stats(u.id, lang)),
        }
        for name, handler in handlers.items():
            app.add_handler(CommandHandler(name, handler))
        app.add_handler(CallbackQueryHandler(self._on_press))
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_message)
        )
        # After every other handler of an update: settles its webhook acknowledgement.
        app.add_handler(TypeHandler(Update, self._handled), group=1)
        app.add_error_handler(self._on_error)
        await app.initialize()
        self._app = app
        try:
            await self._register_commands()
            await self._recover()
            await self._take_updates(app)
            await app.start()
        except BaseException:
            await self.stop()
            raise
        log.info("telegram: serving as @%s", self.bot_user.username)

    async def enqueue(self, update: Update) -> None:
        """The default ``accept`` of webhook mode: queue the update for the Application, as
        the poller queues what it fetches (same handlers, one update at a time, in order)."""
        if self._app is None:
            raise RuntimeError("the Telegram frontend is not started")
        await self._app.update_queue.put(update)

    async def acknowledged(self, update: Update) -> None:
        """The default ``accept``: ``enqueue``, then wait until the update's turn has its place
        in the chat's line, or its handlers ran (``bots.telegram.acks``)."""
        await self._acks.accept(update, self.enqueue)

    async def _handled(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._acks.handled(update.update_id)

    async def _accept(self, update: Update) -> None:
        await self.accept(update)  # looked up per update, so ``accept`` may be replaced

    async def _take_updates(self, app: Application) -> None:  # type: ignore[type-arg]
        """Long polling (which deletes a webhook left set, as Telegram refuses getUpdates while
        one is), or the webhook listener and ``setWebhook``."""
        settings = self._settings
        allowed = [Update.MESSAGE, Update.CALLBACK_QUERY]
        if settings.mode == "webhook":
            self._webhook = await open_webhook(self.bot, settings, self._accept, allowed)
            return
        if app.updater is None:
            raise RuntimeError("python-telegram-bot was built without an updater")
        await app.updater.start_polling(
            timeout=int(settings.poll_timeout_s),
            allowed_updates=allowed,
            error_callback=_polling_failed,
        )

    async def stop(self) -> None:
        """No new updates; replies in flight get ``[bot] shutdown_grace_s``, then are cut."""
        app = self._app
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            # Ends the long poll and confirms every update fetched so far to Telegram.
            await app.updater.stop()
        if self._webhook is not None:
            # 503 to new requests (Telegram retries them elsewhere or later), accepted ones
            # are queued; the webhook stays set for the other processes behind its URL.
            await self._webhook.stop()
            self._webhook = None
        if app.running:
            await app.stop()  # handles the updates fetched but not yet handled
        self._paste.flush_all()
        await self._tasks.drain(self._grace_s)
        await app.shutdown()
        self._app = None

    async def _recover(self) -> None:
        """Replies a killed process left unfinished: each chat is told, in the background."""
        leftovers = await self._conversations.inflight.leftovers(self.name)
        if leftovers:
            log.info("telegram: %d replies were cut off by a restart", len(leftovers))
        inflight, bot = self._conversations.inflight, self.bot

        def gate(chat_id: int, private: bool) -> ChatGate:
            return self._replies.gate(chat_id, private=private)

        for leftover in leftovers:
            self._tasks.spawn(mark_interrupted(bot, inflight, leftover, gate))

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

    async def _on_stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not self._allowed(message):
            return
        if not self._conversations.stop_chat(self._key(message)):
            lang = message.from_user.language_code if message.from_user else None
            self._tasks.spawn(self._say(message, text("nothing_to_stop", lang)))

    def _control(self, control: Control, *, flush: bool = False) -> Handler:
        """A command handler for one of the chat controls; ``flush``: it may change the
        conversation, so a paste still being joined goes to the conversation it was sent in."""

        async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message = update.effective_message
            if message is None or message.from_user is None or not self._allowed(message):
                return
            if flush:
                self._paste.flush_all()
            user, key = message.from_user, self._key(message)
            arg = command_argument(message)
            lang = user.language_code
            self._tasks.spawn(
                self._controlled(message, key, lang, lambda: control(key, user, arg, lang))
            )

        return handler

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
        prompt = prompt_text(message, self.bot_user)
        if not prompt:
            return  # whitespace, or a bare mention: nothing to answer
        paste_key = (message.chat.id, thread_of(message), message.from_user.id)
        self._pending[paste_key] = message
        settle = self._acks.claim(update.update_id)
        if settle is not None:
            self._settles.setdefault(paste_key, []).append(settle)
        replied = replied_bot_message(message, self.bot_user)
        if replied is not None:
            self._replied.setdefault(paste_key, replied)
        self._paste.feed(paste_key, prompt)

    def _flush_paste(self, paste_key: Hashable, prompt: str) -> None:
        message = self._pending.pop(paste_key)
        replied = self._replied.pop(paste_key, None)
        settles = self._settles.pop(paste_key, [])

        def placed() -> None:
            for settle in settles:
                settle()

        if message.from_user is None:
            placed()
            return
        key = self._key(message)
        # Polling waits for no acknowledgement: then nothing to call once placed.
        self._tasks.spawn(
            self._replies.answer(
                message,
                message.from_user,
                key,
                prompt,
                replied,
                placed=placed if settles else None,
            )
        )

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        user, message = query.from_user, query.message
        lang = user.language_code
        press = keyboards.parse(query.data)
        if press is None or not isinstance(message, Message):
            self._tasks.spawn(outbox.answer_query(query, text("stale", lang)))
            return
        if not self._user_allowed(user):
            self._tasks.spawn(outbox.answer_query(query, say("not_allowed", lang)))
            return
        key = chat_key(message, group_scope=self._settings.group_scope, user=user)
        if press.kind == keyboards.STOP:
            stopped = self._conversations.stop(press.value)
            self._tasks.spawn(outbox.answer_query(query, None if stopped else text("stale", lang)))
        elif press.kind == keyboards.REGENERATE:
            self._regenerate(query, message, user, key, press)
        elif press.kind == keyboards.MODEL:
            self._paste.flush_all()
            model = press.value

            def switch() -> Awaitable[Answer]:
                return self._controls.switch_model(key, model, lang)

            self._tasks.spawn(self._pressed(query, message, key, switch, early=True))
        else:
            self._paste.flush_all()
            hashed, value = press.kind == keyboards.RESUME_DIGEST, press.value

            def resume() -> Awaitable[Answer]:
                return self._controls.resume_pressed(key, value, lang, hashed=hashed)

            self._tasks.spawn(self._pressed(query, message, key, resume))

    def _regenerate(
        self,
        query: CallbackQuery,
        message: Message,
        user: User,
        key: ChatKey,
        press: keyboards.Press,
    ) -> None:
        """Only the chat's latest reply may be regenerated; any other press is stale (an older
        reply, or one from before a restart), and its button goes."""
        marks = self._replies.marks
        if not marks.holds(key, message.chat.id, message.message_id):
            self._tasks.spawn(self._stale(query, message, user.language_code))
            return
        marks.take(key)  # now, so a second press is stale
        self._tasks.spawn(outbox.answer_query(query))
        self._tasks.spawn(self._replies.regenerate(message, user, key, press.value, press.turns))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update", exc_info=context.error)

    # Work, in spawned tasks.

    async def _controlled(
        self,
        message: Message,
        key: ChatKey,
        lang: str | None,
        work: Callable[[], Awaitable[Answer]],
    ) -> None:
        answer = await self._attempt(work, lang)
        if answer.changed:
            await self._replies.marks.remove(key)
        await self._say(message, answer.text, answer.keyboard)

    async def _pressed(
        self,
        query: CallbackQuery,
        message: Message,
        key: ChatKey,
        work: Callable[[], Awaitable[Answer]],
        *,
        early: bool = False,
    ) -> None:
        """A /model or /resume button: the keyboard's message becomes the outcome, unless the
        outcome is a notice (the user may pick another). ``early``: answer the press first, as
        the work may take a while (a model's permission is probed)."""
        lang = query.from_user.language_code
        if early:
            await outbox.answer_query(query)
        answer = await self._attempt(work, lang)
        if answer.notice is not None and not early:
            await outbox.answer_query(query, answer.notice)
            return
        if not early:
            await outbox.answer_query(query)
        if answer.changed:
            await self._replies.marks.remove(key)
        gate = self._replies.gate(message.chat.id, private=is_private(message))
        await outbox.edit(self.bot, gate, message, answer.text, answer.keyboard)

    async def _stale(self, query: CallbackQuery, message: Message, lang: str | None) -> None:
        await outbox.answer_query(query, text("stale", lang))
        await drop_keyboard(self.bot, message.chat.id, message.message_id)

    async def _attempt(self, work: Callable[[], Awaitable[Answer]], lang: str | None) -> Answer:
        """The edge of a control: whatever goes wrong becomes one line."""
        try:
            return await work()
        except Exception:
            log.exception("telegram: a chat control failed")
            line = text("internal", lang)
            return Answer(line, notice=line)

    async def _reset(self, message: Message, key: ChatKey, lang: str | None) -> None:
        await self._conversations.reset(key)
        await self._replies.marks.remove(key)
        await self._say(message, say("reset", lang))

    async def _say(
        self, message: Message, line: str, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        gate = self._replies.gate(message.chat.id, private=is_private(message))
        await outbox.say(self.bot, gate, message, line, keyboard)

    def _key(self, message: Message) -> ChatKey:
        return chat_key(message, group_scope=self._settings.group_scope)

    def _user_allowed(self, user: User) -> bool:
        allowed = self._settings.allowed_user_ids
        return not allowed or user.id in allowed

    def _allowed(self, message: Message) -> bool:
        user = message.from_user
        if user is None and not self._settings.allowed_user_ids:
            return True
        if user is not None and self._user_allowed(user):
            return True
        if user is not None and (message.chat.id, user.id) not in self._refused:
            self._refused.add((message.chat.id, user.id))  # one polite refusal, then silence
            self._tasks.spawn(self._say(message, say("not_allowed", user.language_code)))
        return False


def _polling_failed(exc: TelegramError) -> None:
    """PTB retries the long poll by itself; one line instead of its traceback."""
    log.warning("telegram: polling failed (%r); trying again", exc)
