"""The adapter: a chat's messages → Kamiya turns, in order, with the stored context kept right.

Rules it enforces (see ``../shared/KAMIYA_PROTOCOL.md``): one turn in flight per chat; the stored
conversation changes only when a turn completes (``kamiyaInfo`` is the truth in server mode, the
whole streamed reply in completions mode); an id the server no longer knows restarts the
conversation once and says so; failures and stops leave the store untouched.

Two modes per chat (see ``storage.protocol``): server-side conversations (the default) and
completions mode, where the bot keeps the history and sends it, trimmed to a budget, with every
message. The chat controls (/model, /system, /history, /resume, /usage, /stats) live here too so
every frontend behaves the same.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from core.background import Background
from core.errors import ConversationNotFound, KamiyaError
from core.events import Final, TextDelta
from core.frontend import ChatKey, Failure, Reply, ReplySink
from core.history import Turn, build_messages
from core.inflight import InflightLog
from core.lanes import Lanes, QueueFull
from core.limits import Limits
from core.models import DEFAULT, ModelAccess
from core.observe import NULL_OBSERVER, TurnTrace, in_trace, new_request_id
from core.retries import RetryPolicy
from core.steps import StepGate
from core.titles import fallback_title, guess_language, tidy_title, title_prompt
from core.views import ChatView, HistoryEntry, ModelChange, ResumeOutcome, Stats, UserUsage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from core.client import KamiyaClient
    from core.config import Config
    from core.observe import Observer
    from storage.protocol import ChatState, ConversationRecord, ConversationStore, Place

__all__ = ["Conversations", "conversations_from_config"]

log = logging.getLogger(__name__)

TITLE_TIMEOUT_S = 60.0
# Titles are a nicety: at most this many are asked for at once, so a burst of new conversations
# (1,000 chats at once in ``bench.load``) does not compete with the replies being streamed.
TITLES_AT_ONCE = 8
INTERRUPT_GRACE_S = 1.0  # how long a shutdown waits to mark a cut-off reply
T = TypeVar("T")
NO_RETRIES = RetryPolicy()


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Stopped(Exception):
    """The user pressed Stop: the stream was cancelled on purpose."""


@dataclass(frozen=True, slots=True)
class _Job:
    """One message to answer, or a Regenerate (``regenerate``: conversation id, turns seen)."""

    content: str
    user_id: str
    language: str | None
    turn_id: str
    reply_to: str | None = None
    regenerate: tuple[str, int] | None = None


@dataclass(slots=True)
class _Ctx:
    """A turn in progress: the chat's key, what was asked, where it shows, what it showed."""

    key: str
    job: _Job
    sink: ReplySink
    trace: TurnTrace
    shown: str = ""

    def partial(self) -> str:
        return self.shown

    def add(self, text: str) -> str:
        """The reply so far, ``text`` appended: one copy per delta (joining every piece
        again was quadratic, 4 % of the bot's CPU at 1,000 chats)."""
        self.shown += text
        return self.shown


class Conversations:
    """What every frontend calls. An async context manager: leaving it cancels title tasks."""

    def __init__(
        self,
        client: KamiyaClient,
        store: ConversationStore,
        *,
        max_pending: int = 5,
        titles: bool = True,
        title_model: str = "openai:gpt-3.5-turbo",
        models: Sequence[str] = ("openai:gpt-3.5-turbo", "openai:gpt-4", "anthropic:claude-1"),
        system_prompt: str = "",
        history_chars: int = 12_000,
        resume_window: timedelta = timedelta(hours=48),
        requests_per_minute: int = 0,
        chars_per_day: int = 0,
        retries: RetryPolicy = NO_RETRIES,
        max_streams: int | None = None,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._store = store
        self._lanes = Lanes(max_pending)
        self._order = store.chat_order()
        self._titles = titles
        self._title_model = title_model
        self._access = ModelAccess(client, models)
        self._system_prompt = system_prompt
        self._history_chars = history_chars
        self._resume_window = resume_window
        self._limits = Limits(
            store,
            requests_per_minute=requests_per_minute,
            chars_per_day=chars_per_day,
            clock=clock,
        )
        self._retries = retries
        # Bounds the Kamiya streams of the whole process; turns beyond it wait, told so.
        self._streams = asyncio.Semaphore(max_streams) if max_streams else None
        # A burst of turns opens its requests a few per loop step (``core.steps``).
        self._opening = StepGate()
        self._clock = clock
        self._inflight = InflightLog(store, clock)
        self._background = Background("titles")
        self._placing = Background("placing")
        self._title_turns = asyncio.Semaphore(TITLES_AT_ONCE)
        self._running: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._observer = observer
        self._streaming = 0  # Kamiya streams holding a slot now
        observer.watch_streams(lambda: self._streaming)
        observer.watch_queued(self._lanes.queued)

    async def __aenter__(self) -> Conversations:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def inflight(self) -> InflightLog:
        """Where frontends record replies being shown, for recovery after a crash."""
        return self._inflight

    @property
    def observer(self) -> Observer:
        """Where frontends report what core cannot see (a platform's 429s, first text shown)."""
        return self._observer

    @property
    def models(self) -> tuple[str, ...]:
        """The completions models users may pick, besides ``"default"``."""
        return self._access.models

    # Answering.

    async def ask(
        self,
        chat: ChatKey,
        content: str,
        sink: ReplySink,
        *,
        user_id: str = "",
        language: str | None = None,
        turn_id: str | None = None,
        reply_to: str | None = None,
        placed: Callable[[], object] | None = None,
    ) -> Reply | Failure:
        """Answer one message. Never raises for a Kamiya failure: the sink hears it instead.

        Must be called in arrival order: the chat's place in line is taken before the first
        ``await``. ``language`` (the user's platform language) guides the title's language.
        ``turn_id`` names the turn for ``stop``; ``reply_to`` is the id of the bot message the
        user replied to, whose conversation this turn continues when it still can.
        ``placed`` is called once the place is recorded where every process sharing the store
        sees it (or could not be): a platform update acknowledged only then cannot be
        overtaken by a later message of the chat that another process receives.
        """
        job = _Job(content, user_id, language, turn_id or new_turn_id(), reply_to)
        return await self._queue(chat, job, sink, placed)

    async def regenerate(
        self,
        chat: ChatKey,
        conversation_id: str,
        turns: int,
        sink: ReplySink,
        *,
        user_id: str = "",
        language: str | None = None,
        turn_id: str | None = None,
    ) -> Reply | Failure:
        """Answer the last message of a completions conversation again, replacing the reply.

        ``turns`` is what the Regenerate button carried (``Reply.turns``): a newer turn, a
        switch or a reset since then make the button stale, answered with ``Failure("stale")``.
        """
        job = _Job(
            "", user_id, language, turn_id or new_turn_id(), regenerate=(conversation_id, turns)
        )
        return await self._queue(chat, job, sink)

    def stop(self, turn_id: str) -> bool:
        """Cancel the Kamiya request of a turn streaming now; ``False`` if it is not (stale)."""
        running = self._running.get(turn_id)
        if running is None or running[1].done():
            return False
        running[1].cancel()
        return True

    def stop_chat(self, chat: ChatKey) -> bool:
        """Stop whatever the chat is streaming (the ``/stop`` command)."""
        key = str(chat)
        return any(self.stop(t) for t, (k, _) in list(self._running.items()) if k == key)

    def pending(self, chat: ChatKey) -> int:
        """Turns in flight or waiting for this chat."""
        return self._lanes.depth(str(chat))

    # Chat controls.

    async def reset(self, chat: ChatKey) -> None:
        """The chat's next message starts a new conversation; the old one stays in history.

        Waits for turns already queued, so a reset never lands in the middle of a reply whose
        ``kamiyaInfo`` would otherwise bring the old conversation back.
        """
        key = str(chat)
        async with self._chat_turn(key, bounded=False):
            await self._store.reset(key, at=self._clock())

    async def current(self, chat: ChatKey) -> str | None:
        return await self._store.current(str(chat))

    async def settings(self, chat: ChatKey) -> ChatView:
        state = await self._store.state(str(chat))
        custom = state.system_prompt is not None
        prompt = state.system_prompt if state.system_prompt is not None else self._system_prompt
        return ChatView(state.model, prompt, custom)

    async def set_model(self, chat: ChatKey, name: str) -> ModelChange:
        """Switch to a completions model, or to ``"default"`` (the server conversation).

        A model the key may not use (403 to a one-token probe) is refused and the chat stays on
        its model. Each mode keeps its own current conversation, so switching back resumes it.
        """
        key = str(chat)
        before = (await self._store.state(key)).model
        resolved = self._access.resolve(name)
        if resolved is None:
            return ModelChange("unknown", before, name)
        model = None if resolved == DEFAULT else resolved
        if model == before:
            return ModelChange("same", before, name)
        if model is not None and await self._access.check(model) == "forbidden":
            return ModelChange("forbidden", before, model)
        async with self._chat_turn(key, bounded=False):
            await self._store.set_model(key, model, at=self._clock())
        return ModelChange("ok", model, name)

    async def set_system_prompt(self, chat: ChatKey, prompt: str | None) -> ChatView:
        """Set (or with ``None`` drop) the chat's own system prompt for completions mode."""
        key = str(chat)
        async with self._chat_turn(key, bounded=False):
            await self._store.set_system_prompt(key, prompt, at=self._clock())
        return await self.settings(chat)

    async def history(self, chat: ChatKey, *, limit: int = 10) -> list[HistoryEntry]:
        key = str(chat)
        state = await self._store.state(key)
        current = state.local_id if state.model is not None else state.conversation_id
        records = await self._store.conversations(key, limit=limit)
        now = self._clock()
        return [
            HistoryEntry(r, r.conversation_id == current, self._resumable(r, now)) for r in records
        ]

    async def resume(self, chat: ChatKey, conversation_id: str) -> ResumeOutcome:
        """Make an earlier conversation of the chat current again (in its own mode)."""
        key = str(chat)
        async with self._chat_turn(key, bounded=False):
            state = await self._store.state(key)
            return await self._resume(key, state, conversation_id)

    async def remember(
        self, chat: ChatKey, conversation_id: str, message_ids: Sequence[str]
    ) -> None:
        """Note the bot messages that showed a reply, so replying to one continues its
        conversation. A failure only loses that convenience, so it is logged, not raised."""
        if not message_ids:
            return
        try:
            await self._store.remember_messages(
                str(chat), conversation_id, list(message_ids), at=self._clock()
            )
        except Exception:
            log.warning("chat %s: could not remember reply messages", chat, exc_info=True)

    async def usage_of(self, platform: str, user_id: str) -> UserUsage:
        today = self._clock().date()
        return UserUsage(
            today=await self._store.user_usage(user_id, platform=platform, since=today),
            month=await self._store.user_usage(
                user_id, platform=platform, since=today.replace(day=1)
            ),
        )

    async def stats(self, platform: str, *, top: int = 5) -> Stats:
        today = self._clock().date()
        month = today.replace(day=1)
        today_totals, _ = await self._store.stats(platform=platform, since=today, top=0)
        month_totals, busiest = await self._store.stats(platform=platform, since=month, top=top)
        all_totals, _ = await self._store.stats(platform=platform, since=None, top=0)
        return Stats(today_totals, month_totals, all_totals, busiest)

    async def wait_background(self) -> None:
        """Wait until every background title task has finished (tests, orderly shutdown)."""
        await self._background.wait()

    async def aclose(self) -> None:
        await self._background.cancel()
        await self._placing.cancel()

    # The turn.

    async def _queue(
        self,
        chat: ChatKey,
        job: _Job,
        sink: ReplySink,
        placed: Callable[[], object] | None = None,
    ) -> Reply | Failure:
        trace = TurnTrace(str(chat), chat.platform, new_request_id(), self._observer)
        ctx = _Ctx(trace.chat, job, sink, trace)
        with in_trace(trace):  # log lines and the Kamiya request carry the chat and request id
            try:
                async with self._chat_turn(
                    ctx.key, on_queued=lambda ahead: _quiet(sink.queued(ahead)), placed=placed
                ):
                    outcome = await self._turn(chat.platform, ctx)
            except QueueFull:
                outcome = await _fail(sink, Failure("busy"))
            except _LineDown:
                outcome = await _fail(sink, Failure("storage"))
            except asyncio.CancelledError:
                # Shutdown: say so, briefly, so the user knows to send the message again.
                self._observer.replied(chat.platform, "interrupted")
                await _interrupted(sink, Failure("interrupted", ctx.partial()))
                raise
            kind = "ok" if isinstance(outcome, Reply) else outcome.kind
            self._observer.replied(chat.platform, kind)
            return outcome

    @asynccontextmanager
    async def _chat_turn(
        self,
        key: str,
        *,
        on_queued: Callable[[int], Awaitable[None]] | None = None,
        bounded: bool = True,
        placed: Callable[[], object] | None = None,
    ) -> AsyncIterator[None]:
        """The chat's turn: first among this process' turns of the chat (its lane), then among
        every process' sharing the store (its place in the store's line, taken at once, so
        both keep arrival order). Raises ``_LineDown`` if the store's line cannot be read."""
        place = self._order.place(key)
        if placed is not None:
            self._placing.spawn(_when_recorded(place, placed))
        try:
            async with self._lanes.turn(key, on_queued=on_queued, bounded=bounded):
                try:
                    await place.wait()
                except Exception as exc:
                    log.warning("chat %s: could not take its turn: %r", key, exc)
                    raise _LineDown(key) from None
                yield
        finally:
            place.done()

    async def _turn(self, platform: str, ctx: _Ctx) -> Reply | Failure:
        job = ctx.job
        try:
            refused = await self._limits.check(platform, job.user_id)
            if refused is not None:
                return await _fail(ctx.sink, refused)
            state = await self._store.state(ctx.key)
            resumed: str | None = None
            if job.reply_to is not None:
                state, resumed = await self._continue(ctx.key, state, job.reply_to)
            turns = [] if state.model is None else await self._turns(state.local_id)
        except Exception:
            # Without the chat's state the turn cannot be answered right; ask nothing.
            log.exception("chat %s: storage unavailable before the turn", ctx.key)
            return await _fail(ctx.sink, Failure("storage"))
        if job.regenerate is not None:
            return await self._regenerate(ctx, state, job.regenerate)
        await _quiet(ctx.sink.started())
        if state.model is None:
            return await self._server_turn(ctx, state, resumed)
        return await self._completions_turn(ctx, state, turns, job.content, resumed=resumed)

    async def _server_turn(
        self, ctx: _Ctx, state: ChatState, resumed: str | None
    ) -> Reply | Failure:
        key, job = ctx.key, ctx.job
        stored = state.conversation_id
        try:
            final, expired = await self._stoppable(ctx, lambda: self._server_stream(ctx, stored))
        except _Stopped:
            # Stopped before a conversation existed: nothing upstream will be continued.
            mode = "server" if stored is not None else "fresh"
            return await _fail(ctx.sink, Failure("stopped", ctx.partial(), mode=mode))
        except KamiyaError as exc:
            return await _fail(ctx.sink, _failure(ctx, exc))
        if stored is not None and final.conversation_id != stored and not expired:
            log.info("chat %s: Kamiya moved %s to %s", key, stored, final.conversation_id)
            expired = True
        try:
            new = await self._store.record_reply(
                key,
                final.conversation_id,
                user_id=job.user_id,
                billed_chars=len(final.full_content),
                at=self._clock(),
            )
            saved = True
        except Exception:
            # The reply exists upstream; showing it beats hiding it. The old id stays stored.
            log.exception("chat %s: could not store conversation %s", key, final.conversation_id)
            new = saved = False
        reply = Reply(
            final.full_content, final.conversation_id, new, expired, resumed=resumed, saved=saved
        )
        await _quiet(ctx.sink.finished(reply))
        if new:
            self._name_later(final.conversation_id, job.content, final.full_content, job)
        return reply

    async def _server_stream(self, ctx: _Ctx, stored: str | None) -> tuple[Final, bool]:
        try:
            return await self._stream(ctx, ctx.job.content, stored), False
        except ConversationNotFound:
            if stored is None or ctx.shown:
                raise
        log.info("chat %s: conversation %s unknown upstream, starting anew", ctx.key, stored)
        return await self._stream(ctx, ctx.job.content, None), True

    async def _completions_turn(
        self,
        ctx: _Ctx,
        state: ChatState,
        history: list[Turn],
        question: str,
        *,
        resumed: str | None = None,
        replace_last: bool = False,
    ) -> Reply | Failure:
        key, job = ctx.key, ctx.job
        model = state.model
        if model is None:  # callers check; keeps the type checker honest
            raise AssertionError("completions turn without a model")
        system = state.system_prompt if state.system_prompt is not None else self._system_prompt
        messages = build_messages(
            system or None, history, question, budget_chars=self._history_chars
        )
        try:
            text = await self._stoppable(
                ctx, lambda: self._completion_stream(ctx, messages, model)
            )
        except _Stopped:
            stopped = Failure("stopped", ctx.partial(), mode="completions", model=model)
            return await _fail(ctx.sink, stopped)
        except KamiyaError as exc:
            return await _fail(ctx.sink, _failure(ctx, exc, model=model))
        conversation_id = state.local_id or new_local_id()
        try:
            new = await self._store.record_turn(
                key,
                conversation_id,
                model=model,
                user=question,
                assistant=text,
                user_id=job.user_id,
                at=self._clock(),
                replace_last=replace_last,
            )
            stored = True
        except Exception:
            log.exception("chat %s: could not store a completions turn", key)
            new = stored = False
        reply = Reply(
            text,
            conversation_id,
            new,
            mode="completions",
            model=model,
            turns=len(history) + 1,
            regenerable=stored,
            resumed=resumed,
            saved=stored,
        )
        await _quiet(ctx.sink.finished(reply))
        if new:
            self._name_later(conversation_id, question, text, job)
        return reply

    async def _regenerate(
        self, ctx: _Ctx, state: ChatState, target: tuple[str, int]
    ) -> Reply | Failure:
        conversation_id, seen = target
        turns = await self._turns(conversation_id)
        current = state.model is not None and state.local_id == conversation_id
        if not current or not turns or len(turns) != seen:
            stale = Failure("stale", mode="completions", model=state.model)
            return await _fail(ctx.sink, stale)
        await _quiet(ctx.sink.started())
        return await self._completions_turn(
            ctx, state, turns[:-1], turns[-1].user, replace_last=True
        )

    async def _continue(
        self, key: str, state: ChatState, message_id: str
    ) -> tuple[ChatState, str | None]:
        """A reply to a bot message: continue that message's conversation if it can be."""
        conversation_id = await self._store.message_conversation(key, message_id)
        if conversation_id is None:
            return state, None
        outcome = await self._resume(key, state, conversation_id)
        if outcome.status != "ok" or outcome.record is None:
            return state, None
        record = outcome.record
        log.info("chat %s: continuing conversation %s (a reply to it)", key, conversation_id)
        return await self._store.state(key), record.title or fallback_title("")

    async def _resume(self, key: str, state: ChatState, conversation_id: str) -> ResumeOutcome:
        record = await self._store.conversation(conversation_id)
        if record is None or record.chat_key != key:
            return ResumeOutcome("unknown", None)
        current = state.local_id if state.model is not None else state.conversation_id
        if conversation_id == current:
            return ResumeOutcome("current", record)
        if not self._resumable(record, self._clock()):
            return ResumeOutcome("expired", record)
        if await self._store.resume(key, conversation_id, at=self._clock()) is None:
            return ResumeOutcome("unknown", None)
        return ResumeOutcome("ok", record)

    def _resumable(self, record: ConversationRecord, now: datetime) -> bool:
        if record.mode == "completions":
            return record.model is not None
        return now - record.last_used_at <= self._resume_window

    async def _turns(self, conversation_id: str | None) -> list[Turn]:
        if conversation_id is None:
            return []
        return [Turn(t.user, t.assistant) for t in await self._store.turns(conversation_id)]

    async def _stoppable(self, ctx: _Ctx, work: Callable[[], Awaitable[T]]) -> T:
        """Run the streaming part (retried before its first byte, within the bot-wide bound)
        where ``stop`` can cancel it without cancelling the turn."""
        task = asyncio.ensure_future(self._bounded(ctx, work))
        self._running[ctx.job.turn_id] = (ctx.key, task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # a shutdown, not a Stop
            raise _Stopped from None
        finally:
            self._running.pop(ctx.job.turn_id, None)

    async def _bounded(self, ctx: _Ctx, work: Callable[[], Awaitable[T]]) -> T:
        streams = self._streams
        if streams is None:
            return await self._asking(ctx, work)
        if streams.locked():
            await _quiet(ctx.sink.busy())
        async with streams:
            return await self._asking(ctx, work)

    async def _asking(self, ctx: _Ctx, work: Callable[[], Awaitable[T]]) -> T:
        """The stream itself (retried before its first byte): counted, timed, each failed
        attempt reported by its error class."""

        async def attempt() -> T:
            await self._opening.passage()
            try:
                return await work()
            except KamiyaError as exc:
                self._observer.kamiya_error(type(exc).__name__)
                raise

        ctx.trace.asked()
        self._streaming += 1
        try:
            return await self._retries.run(attempt, lambda: bool(ctx.shown))
        finally:
            self._streaming -= 1

    async def _stream(self, ctx: _Ctx, content: str, conversation_id: str | None) -> Final:
        final: Final | None = None
        stream = self._client.conversation(content, conversation_id, pace=ctx.sink.pause)
        async with aclosing(stream) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    await _quiet(ctx.sink.progress(ctx.add(event.text)))
                else:
                    final = event
        if final is None:  # the client guarantees a Final or an error; be loud if not
            raise AssertionError("conversation stream ended without Final")
        return final

    async def _completion_stream(
        self, ctx: _Ctx, messages: list[dict[str, str]], model: str
    ) -> str:
        stream = self._client.stream_completion(messages, model, pace=ctx.sink.pause)
        async with aclosing(stream) as deltas:
            async for delta in deltas:
                await _quiet(ctx.sink.progress(ctx.add(delta.text)))
        return ctx.partial()

    def _name_later(self, conversation_id: str, content: str, reply: str, job: _Job) -> None:
        if self._titles:
            self._background.spawn(self._name(conversation_id, content, reply, job.language))

    async def _name(
        self, conversation_id: str, content: str, reply: str, hint: str | None
    ) -> None:
        lang = guess_language(content + "\n" + reply, hint)
        messages = [{"role": "user", "content": title_prompt(content, reply, lang)}]
        try:
            async with self._title_turns, asyncio.timeout(TITLE_TIMEOUT_S):
                title = tidy_title(await self._client.complete(messages, self._title_model))
        except (KamiyaError, TimeoutError) as exc:
            if isinstance(exc, KamiyaError):
                self._observer.kamiya_error(type(exc).__name__)
            log.info("conversation %s: no title from Kamiya (%r)", conversation_id, exc)
            title = ""
        await self._store.set_title(conversation_id, title or fallback_title(content))


async def _when_recorded(place: Place, placed: Callable[[], object]) -> None:
    try:
        await place.recorded()
    except Exception:  # the turn itself reports it; the update is let go
        log.debug("a place could not be recorded", exc_info=True)
    placed()


class _LineDown(Exception):
    """The chat's line across processes could not be read (the database is down)."""


def conversations_from_config(
    client: KamiyaClient,
    store: ConversationStore,
    config: Config,
    *,
    observer: Observer = NULL_OBSERVER,
    clock: Callable[[], datetime] = utc_now,
) -> Conversations:
    settings = config.conversation
    return Conversations(
        client,
        store,
        max_pending=settings.max_pending,
        titles=settings.titles,
        title_model=config.kamiya.title_model,
        models=config.kamiya.models,
        system_prompt=settings.system_prompt,
        history_chars=settings.history_chars,
        resume_window=timedelta(hours=settings.resume_window_h),
        requests_per_minute=config.limits.requests_per_minute,
        chars_per_day=config.limits.chars_per_day,
        retries=RetryPolicy(config.kamiya.retries, max_s=config.kamiya.retry_max_s),
        max_streams=config.bot.max_concurrent_streams,
        observer=observer,
        clock=clock,
    )


def new_turn_id() -> str:
    """Short enough for a Telegram button's 64 bytes of data."""
    return uuid.uuid4().hex[:16]


def new_local_id() -> str:
    """Completions conversations are the bot's own; the prefix keeps them apart from Kamiya's."""
    return f"local-{uuid.uuid4().hex}"


def _failure(ctx: _Ctx, exc: KamiyaError, *, model: str | None = None) -> Failure:
    log.warning("chat %s: turn failed: %r", ctx.key, exc)
    mode = "server" if model is None else "completions"
    retry_after = getattr(exc, "retry_after", None)
    return Failure(exc.kind, ctx.partial(), retry_after, exc, mode=mode, model=model)


async def _fail(sink: ReplySink, failure: Failure) -> Failure:
    await _quiet(sink.failed(failure))
    return failure


async def _interrupted(sink: ReplySink, failure: Failure) -> None:
    """Tell the sink, within a short grace period, that shutdown cut this turn."""
    try:
        async with asyncio.timeout(INTERRUPT_GRACE_S):
            await asyncio.shield(sink.failed(failure))
    except Exception:  # a best effort while the process stops
        log.info("could not show an interrupted reply", exc_info=True)


async def _quiet(call: Awaitable[None]) -> None:
    """Run a sink call; a frontend's display failure must not lose the turn or its id."""
    try:
        await call
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("frontend sink failed")
