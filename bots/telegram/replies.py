"""One reply in a Telegram chat, from start to after its end, whether asked or regenerated.

A reply gets its turn id (for its Stop button), its surface (draft or edits, the chat's pace),
its crash record (``Flight``: ended once the user sees it settled, else left for the next start
to mark interrupted) and its sink. When it completes, its messages are remembered (replying to
one continues its conversation) and the chat's Regenerate button moves to its last message, or
goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bots.telegram.keyboards import stop_keyboard
from bots.telegram.marks import RegenerateMarks, drop_keyboard
from bots.telegram.routing import is_private, thread_of
from bots.telegram.sink import TelegramReply
from bots.telegram.surface import Target, TelegramSurface
from core import Failure, Reply, new_turn_id
from core.flight import Flight
from core.throttle import Gates, PaceLimits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot, Message, User

    from core import ChatKey, Conversations, TelegramSettings
    from core.throttle import ChatGate

__all__ = ["Replies"]


class Replies:
    def __init__(
        self,
        conversations: Conversations,
        settings: TelegramSettings,
        bot: Callable[[], Bot],
    ) -> None:
        self._conversations = conversations
        self._settings = settings
        self._bot = bot
        self.marks = RegenerateMarks(bot)
        self._gates = Gates(observer=conversations.observer, platform="telegram")
        self._no_drafts: set[int] = set()
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

    def gate(self, chat_id: int, *, private: bool) -> ChatGate:
        """The chat's pace, shared by its replies and the bot's other messages to it."""
        return self._gates.get(chat_id, self._private if private else self._group)

    async def answer(
        self,
        message: Message,
        user: User,
        key: ChatKey,
        prompt: str,
        reply_to: int | None,
        *,
        placed: Callable[[], object] | None = None,
    ) -> None:
        """Answer ``prompt``; ``reply_to``: the bot message the user replied to, if any;
        ``placed``: called once the turn's place in the chat's line is recorded."""
        target = Target(message.chat.id, thread_of(message), message.message_id)

        def ask(sink: TelegramReply, turn_id: str) -> Awaitable[Reply | Failure]:
            return self._conversations.ask(
                key,
                prompt,
                sink,
                user_id=str(user.id),
                language=user.language_code,
                turn_id=turn_id,
                reply_to=None if reply_to is None else str(reply_to),
                placed=placed,
            )

        await self._run(target, is_private(message), user, key, ask)

    async def regenerate(
        self, message: Message, user: User, key: ChatKey, conversation_id: str, turns: int
    ) -> None:
        """A Regenerate press on ``message``: its button goes, a new reply comes. Should the new
        one fail (or be stopped), the old reply is still the latest, and gets its button back."""
        where = (message.chat.id, message.message_id)
        keyboard = message.reply_markup
        await drop_keyboard(self._bot(), *where)
        replied = message.reply_to_message
        asked = message.message_id  # the reply's first message quotes the question: reuse it
        if replied is not None and replied.forum_topic_created is None:
            asked = replied.message_id
        target = Target(message.chat.id, thread_of(message), asked)

        def again(sink: TelegramReply, turn_id: str) -> Awaitable[Reply | Failure]:
            return self._conversations.regenerate(
                key,
                conversation_id,
                turns,
                sink,
                user_id=str(user.id),
                language=user.language_code,
                turn_id=turn_id,
            )

        result = await self._run(target, is_private(message), user, key, again)
        if isinstance(result, Failure) and result.kind != "stale" and keyboard is not None:
            await self.marks.restore(key, where, keyboard)

    async def _run(
        self,
        target: Target,
        private: bool,
        user: User,
        key: ChatKey,
        run: Callable[[TelegramReply, str], Awaitable[Reply | Failure]],
    ) -> Reply | Failure:
        bot = self._bot()
        chat_id = target.chat_id
        lang = user.language_code
        turn_id = new_turn_id()
        draft = (
            private and self._settings.stream_mode == "draft" and chat_id not in self._no_drafts
        )
        flight = Flight(self._conversations.inflight, key, lang, target.record(private=private))
        surface = TelegramSurface(
            bot,
            target,
            draft=draft,
            on_draft_refused=lambda: self._no_drafts.add(chat_id),
            stop=stop_keyboard(turn_id, lang),
            on_change=flight.note,
        )
        gate = self.gate(chat_id, private=private)
        sink = TelegramReply(bot, target, surface, gate, flight, language_code=lang)
        try:
            result = await run(sink, turn_id)
        finally:
            await sink.aclose()
            if surface.settled:
                await flight.end()
        if isinstance(result, Reply):
            ids = surface.message_ids
            await self._conversations.remember(key, result.conversation_id, [str(i) for i in ids])
            marked = (chat_id, ids[-1]) if ids and surface.final_markup is not None else None
            await self.marks.move(key, marked)
        return result
