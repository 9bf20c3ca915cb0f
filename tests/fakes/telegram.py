"""A fake Telegram Bot API on loopback, for end-to-end tests of the bot and the benchmark.

PTB talks to it over real HTTP (``base_url=f"{fake.base_url}/bot"``), so the bot's request
encoding, error mapping and retry logic run as they do against Telegram. It answers like the
Bot API where a bot could notice: the envelope and HTTP status of every error, Telegram's
descriptions, text length in UTF-16 units, trimming, entity checks, "message is not
modified", private-only drafts, flood control with ``retry_after`` and penalty windows
(``Limits``), privacy mode in groups, long polling with offsets, inline keyboards (callback
data of 1-64 bytes, else ``BUTTON_DATA_INVALID``; an edit without ``reply_markup`` drops them),
button presses (``press``: only a button the message shows) and their answers, each once.

The layers, one job each: ``telegram_world`` holds the chats and what tests inspect,
``telegram_users`` plays the users (``private_message``, ``group_message``, ...),
``telegram_methods`` answers the bot's methods, this module serves them, logs ``calls``,
scripts faults (``fail_next``, optionally in one chat; ``drop_next`` and ``drop_polls`` cut
connections without an answer, as a network drop does) and lets tests ``wait_for`` a state
instead of sleeping.
The error texts for drafts are guesses: Telegram's wording is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.telegram_limits import Limits
from tests.fakes.telegram_methods import BotMethods
from tests.fakes.telegram_text import ApiError, JsonObject, is_int, opt_int
from tests.fakes.telegram_users import MediaKind
from tests.fakes.telegram_webhook import SET_BY_WEBHOOK, Webhook
from tests.fakes.telegram_world import DRAFT_TTL_S, Draft, Msg
from tests.fakes.waiting import wait_or_explain

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = [
    "DRAFT_TTL_S",
    "ApiError",
    "Call",
    "Draft",
    "FakeTelegram",
    "Limits",
    "MediaKind",
    "Msg",
    "Webhook",
]

DEFAULT_LIMITS = Limits()
# PTB JSON-encodes every non-str value; these are str parameters, kept raw so a text "123"
# or "true" stays a string.
_STRING_PARAMS = frozenset(
    {"text", "caption", "parse_mode", "action", "language_code", "callback_query_id", "url"}
    | {"secret_token", "ip_address"}
    | {"inline_message_id", "business_connection_id", "emoji", "title", "description"}
)


@dataclass(frozen=True, slots=True)
class Call:
    """One Bot API call as answered; ``at`` is its arrival on the fake's clock.

    Calls are logged when answered, so a long poll appears after calls made while it waited.
    """

    method: str
    params: JsonObject
    chat_id: int | None
    at: float
    status: int
    result: object = None
    description: str | None = None
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class _Dropped(Exception):
    """Close the connection instead of answering."""


class FakeTelegram(BotMethods):
    """The fake server; an async context manager serving on ``base_url`` while open.

    ``clock`` times flood control, drafts and ``Call.at``; inject a fake one to test limits
    without waiting. ``drafts_enabled=False`` makes sendMessageDraft unavailable, as for a
    bot or client without it, to test the fallback to edits.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - the fake's own test token
        *,
        bot_username: str = "kamiya_test_bot",
        bot_first_name: str = "Kamiya Test",
        limits: Limits = DEFAULT_LIMITS,
        drafts_enabled: bool = True,
        can_read_all_group_messages: bool = False,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        bot_id = token.split(":", 1)[0]
        super().__init__(
            bot_user={
                "id": int(bot_id) if bot_id.isdigit() else 1,
                "is_bot": True,
                "first_name": bot_first_name,
                "username": bot_username,
            },
            can_read_all_group_messages=can_read_all_group_messages,
            clock=clock,
            limits=limits,
            drafts_enabled=drafts_enabled,
        )
        self.token = token
        self.calls: list[Call] = []
        self._faults: defaultdict[str, deque[tuple[int | None, ApiError]]] = defaultdict(deque)
        self._drops: defaultdict[str, int] = defaultdict(int)
        self._poll_drops = 0  # drop_polls() generation: waiting polls of an older one are cut
        self.dropped: list[str] = []  # methods whose connection was cut, in order
        self._polls = 0  # getUpdates generation: a newer poll ends older, abandoned ones
        self.waiting_polls = 0  # long polls waiting for updates now
        self._stopping = False
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # Lifecycle.

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; PTB wants ``f"{base_url}/bot"``."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # stop() ends long polls first; the short timeout is a backstop.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner, self._stopping = runner, False
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base_url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        """Answer pending long polls with no updates, then close the server."""
        self._stopping = True
        self._changed()
        if self._runner is not None:
            runner, self._runner, self._base_url = self._runner, None, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Scripting and inspection.

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error, before any checks;
        ``chat_id``: only calls for that chat (other chats' calls pass untouched).

        A 429 gets ``retry_after`` 1 unless told otherwise, as Telegram always sends one.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = _default_description(status, retry_after)
        for _ in range(times):
            fault = ApiError(status, description, retry_after)
            self._faults[method.lower()].append((chat_id, fault))

    def drop_next(self, method: str, *, times: int = 1) -> None:
        """Cut the connection of the next ``times`` calls of ``method`` without an answer."""
        self._drops[method.lower()] += times

    def drop_polls(self) -> None:
        """Cut the connection of every long poll waiting now, as a network drop would."""
        self._poll_drops += 1
        self._changed()

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    @property
    def count_429(self) -> int:
        return sum(call.status == 429 for call in self.calls)

    async def wait_for(
        self,
        predicate: Callable[[FakeTelegram], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a built-in deadline, as in FakeKamiya
    ) -> None:
        """Return once ``predicate(fake)`` holds, re-checked after every call and update."""
        await wait_or_explain(
            self._wait_until,
            lambda: predicate(self),
            name=getattr(predicate, "__qualname__", repr(predicate)),
            within=timeout,
            recent=lambda: [f"{c.method}(chat={c.chat_id})->{c.status}" for c in self.calls],
        )

    async def wait_for_call(
        self,
        method: str,
        n: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - a built-in deadline, as in FakeKamiya
    ) -> Call:
        """Wait until ``method`` has been answered ``n`` times; return the ``n``-th call."""

        def called(fake: FakeTelegram) -> bool:
            return len(fake.calls_of(method)) >= n

        called.__qualname__ = f"{method} called {n} time(s)"
        await self.wait_for(called, timeout)
        return self.calls_of(method)[n - 1]

    # Transport.

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        chat_id = params.get("chat_id")
        at = self._clock()
        try:
            result = await self._dispatch(request.match_info["token"], method, params)
        except _Dropped:
            self.dropped.append(method)
            self._changed()
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=HTTPStatus.NO_CONTENT)  # never reaches the client
        except ApiError as error:
            call = Call(
                method,
                params,
                chat_id if is_int(chat_id) else None,
                at,
                error.status,
                description=error.description,
                retry_after=error.retry_after,
            )
            body: JsonObject = {
                "ok": False,
                "error_code": error.status,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            response = web.json_response(body, status=error.status)
        else:
            call = Call(method, params, chat_id if is_int(chat_id) else None, at, 200, result)
            response = web.json_response({"ok": True, "result": result})
        self.calls.append(call)
        self._changed()
        return response

    async def _dispatch(self, token: str, method: str, params: JsonObject) -> object:
        if token != self.token:
            raise ApiError(401, "Unauthorized")
        name = method.lower()
        if name != "getupdates" and name not in self.methods:
            raise ApiError(404, "Not Found")
        if self._drops[name]:
            self._drops[name] -= 1
            raise _Dropped
        self._raise_fault(name, params.get("chat_id"))
        if name == "getupdates":
            return await self._get_updates(params)
        return self.methods[name](params)

    def _raise_fault(self, name: str, chat_id: object) -> None:
        faults = self._faults[name]
        for index, (chat, fault) in enumerate(faults):
            if chat is None or chat == chat_id:
                del faults[index]
                raise fault

    async def _get_updates(self, params: JsonObject) -> list[JsonObject]:
        """Long polling: answer at once if updates are ready, else wait up to ``timeout``."""
        offset = _int_or(params.get("offset"), 0)
        limit = min(max(_int_or(params.get("limit"), 100), 1), 100)
        timeout = params.get("timeout", 0)
        wait_s = float(timeout) if isinstance(timeout, int | float) else 0.0
        self._refuse_polling()
        self._polls += 1
        generation, drops = self._polls, self._poll_drops
        ready = self._take_updates(offset, limit, params.get("allowed_updates"))
        if ready or wait_s <= 0 or self._stopping:
            return ready

        def ended() -> bool:
            # A newer poll means this one's client gave up (PTB cancels on stop): answer empty.
            return (
                self._stopping
                or generation != self._polls
                or drops != self._poll_drops
                or bool(self.webhook.url)
            )

        self.waiting_polls += 1
        self._changed()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wait_until(
                        lambda: ended() or bool(self._take_updates(offset, limit, None))
                    )
        finally:
            self.waiting_polls -= 1
        if drops != self._poll_drops:
            raise _Dropped
        if self.webhook.url:
            raise ApiError(409, SET_BY_WEBHOOK)
        return [] if ended() else self._take_updates(offset, limit, None)


def _int_or(value: object, default: int) -> int:
    found = opt_int(value)
    return default if found is None else found


def _default_description(status: int, retry_after: int | None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after}"
    if status == 400:
        return "Bad Request: scripted failure"
    if status == 403:
        return "Forbidden: bot was blocked by the user"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Scripted failure"


def _decode(key: str, raw: str) -> object:
    """A form value as PTB meant it: JSON for non-str parameters, else the raw string."""
    if key in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def _read_params(request: web.Request) -> JsonObject:
    """Query, form (urlencoded or multipart) or JSON body, as the Bot API accepts all three."""
    params: JsonObject = {key: _decode(key, value) for key, value in request.query.items()}
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                size = len(value.file.read())
                params[key] = {"file_name": value.filename, "size": size}
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                params[key] = _decode(key, text)
    return params
