"""A fake Discord (REST + gateway) on loopback, for end-to-end tests of the bot and the benchmark.

discord.py talks to it over real HTTP and a real websocket (``patch_discord`` points
``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` here), so the library's request
encoding, rate-limit handling, error mapping, heartbeats and resumes run as against Discord.
It answers like Discord where a bot could notice: error bodies and JSON codes, the 2000
character limit, empty messages, components (buttons: custom_id at most 100 characters),
autocomplete answers (at most 25 choices), the 3 s deadline for an initial response and the
15 min life of an interaction token, "already acknowledged", allowed_mentions, 429s with
``Via`` (``Limits``), message content hidden without the intent, events replayed on RESUME.

The layers, one job each: ``discord_world`` holds channels, messages, interactions and what
tests inspect; ``discord_users`` plays the users (``slash``, ``message``, ...);
``discord_gateway`` speaks the websocket protocol; ``discord_rest`` answers REST routes;
this module serves them, logs ``calls``, scripts faults (``fail_next``) and lets tests
``wait_for`` a state instead of sleeping. See PLATFORM_NOTES.md §2 for the recipe.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

import discord
import yarl
from aiohttp import BodyPartReader, web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_gateway import Frame, Session
from tests.fakes.discord_limits import Limits
from tests.fakes.discord_messages import Interaction, Msg, Ping, Revision, Sync
from tests.fakes.discord_payloads import (
    ALICE,
    APP_ID,
    BOB,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    THREAD_ID,
    ApiError,
    Channel,
    Guild,
    JsonObject,
    User,
    default_guilds,
)
from tests.fakes.discord_rest import ROUTES, WEBHOOK_KINDS, DiscordRest, Reply, Request
from tests.fakes.waiting import wait_or_explain

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    import pytest

__all__ = [
    "ALICE",
    "APP_ID",
    "BOB",
    "BOT_ID",
    "CHANNEL_ID",
    "GUILD_ID",
    "THREAD_ID",
    "ApiError",
    "Call",
    "Channel",
    "FakeDiscord",
    "Frame",
    "Guild",
    "Interaction",
    "Limits",
    "Msg",
    "Ping",
    "Revision",
    "Session",
    "Sync",
    "User",
]

API_PREFIX = "/api/v10"
DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Call:
    """One REST call as answered; ``path`` is after ``/api/v10``, ``at`` on the fake's clock."""

    method: str
    path: str
    kind: str
    json: object
    query: Mapping[str, str]
    at: float
    status: int
    code: int | None = None  # Discord's JSON error code, for errors
    files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status < 300


@dataclass(frozen=True, slots=True)
class _Fault:
    method: str
    route: str
    error: ApiError

    def matches(self, method: str, path: str, kind: str) -> bool:
        if self.method not in ("*", method):
            return False
        if "/" in self.route:
            return fnmatch.fnmatchcase(path, self.route)
        return self.route in ("*", kind)


@dataclass
class _Patched:
    """Points discord.py at the fake while entered (``with`` or ``async with``), then restores."""

    base: str
    gateway: yarl.URL
    _saved: tuple[str, yarl.URL] | None = field(default=None, init=False)

    def __enter__(self) -> _Patched:
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.gateway
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    async def __aenter__(self) -> _Patched:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class FakeDiscord(DiscordRest):
    """The fake server; an async context manager serving on ``base_url``/``ws_url`` while open.

    ``clock`` times deadlines, token lifetimes, rate limits and the logs: inject a fake one
    to expire tokens without waiting. ``disallowed_intents`` are privileged intents not
    enabled for the app (IDENTIFY with them closes 4014). ``shards`` is the shard count
    ``/gateway/bot`` recommends; the gateway takes any valid ``[id, count]`` in IDENTIFY.
    """

    def __init__(
        self,
        token: str = "discord-test-token",  # noqa: S107 - the fake's own test token
        *,
        app_id: int = APP_ID,
        bot_user_id: int | None = None,
        guilds: Iterable[Guild] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        heartbeat_ms: int = 41250,
        token_ttl_s: float = 900.0,
        response_deadline_s: float = 3.0,
        disallowed_intents: int = 0,
        shards: int = 1,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            token=token,
            app_id=app_id,
            bot_user_id=app_id if bot_user_id is None else bot_user_id,
            guilds=default_guilds() if guilds is None else guilds,
            limits=limits,
            token_ttl_s=token_ttl_s,
            response_deadline_s=response_deadline_s,
            heartbeat_ms=heartbeat_ms,
            disallowed_intents=disallowed_intents,
            clock=clock,
            shards=shards,
        )
        self.calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # Lifecycle.

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; discord.py wants ``f"{base_url}/api/v10"``."""
        if self._base_url is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._base_url

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway``, also READY's ``resume_gateway_url``."""
        return self.base_url.replace("http://", "ws://", 1) + "/gateway"

    async def start(self) -> None:
        app = web.Application()
        # Runs once the port stops listening, so a client told to go away cannot come back.
        app.on_shutdown.append(self._going_away)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/", self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base_url = f"http://{self._host}:{port}"
        self.gateway.url = self.ws_url

    async def stop(self) -> None:
        """Stop listening, close the websockets (1001 going away), then the server.

        Quick with a live client, which answers the close at once; an unresponsive one costs
        the gateway's 1 s close timeout.
        """
        if self._runner is not None:
            runner, self._runner, self._base_url = self._runner, None, None
            await runner.cleanup()

    async def _going_away(self, app: web.Application) -> None:
        await self.gateway.close_all(1001)

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def patch_discord(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point discord.py's REST and gateway at the fake until the test ends."""
        monkeypatch.setattr(discord.http.Route, "BASE", f"{self.base_url}{API_PREFIX}")
        gateway = yarl.URL(f"{self.ws_url}/")
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", gateway)

    def patched(self) -> _Patched:
        """The same as ``patch_discord`` for ``with``/``async with``, without pytest."""
        return _Patched(f"{self.base_url}{API_PREFIX}", yarl.URL(f"{self.ws_url}/"))

    # Gateway control.

    async def disconnect(self, code: int = 4000, *, resumable: bool = True) -> None:
        """Drop the bot's gateway socket; discord.py reconnects and RESUMEs (or re-identifies
        if not ``resumable``). Returns once the socket is closed.
        """
        await self.gateway.disconnect(code, resumable=resumable)

    @property
    def connected(self) -> bool:
        return self.gateway.connected

    # Scripting and inspection.

    def fail_next(
        self,
        method: str,
        route: str,
        *,
        status: int,
        body: JsonObject | None = None,
        retry_after: float | None = None,
        times: int = 1,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` matching calls with this error, before any checks.

        ``route`` is a kind ("edit_original", "followup", "send_message", ...; "*" for any)
        or a glob on the path after /api/v10 ("/webhooks/*/messages/@original"); ``method``
        may be "*". A 429 gets Discord's body with ``retry_after`` (default 0.05 s) and the
        ``Via`` header discord.py needs to retry (``via=False``: a Cloudflare-style 429 it
        raises at once). Other statuses get Discord's body for that status and route.
        """
        headers: dict[str, str] = {}
        if status == 429:
            wait = 0.05 if retry_after is None else retry_after
            body = p.rate_limited(wait) if body is None else body
            scope = "global" if body.get("global") else "user"
            headers = {"X-RateLimit-Scope": scope, "Retry-After": str(math.ceil(wait))}
            if via:
                headers["Via"] = "1.1 google"
        error = ApiError(status, body or _default_error(status, route).body, headers)
        self._faults.extend(_Fault(method.upper(), route, error) for _ in range(times))

    def calls_of(self, kind: str) -> list[Call]:
        return [call for call in self.calls if call.kind == kind]

    @property
    def count_429(self) -> int:
        return sum(call.status == 429 for call in self.calls)

    async def wait_for(
        self,
        predicate: Callable[[FakeDiscord], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a built-in deadline, as in FakeKamiya
    ) -> None:
        """Return once ``predicate(fake)`` holds, re-checked after every call and frame."""
        await wait_or_explain(
            self._wait_until,
            lambda: predicate(self),
            name=getattr(predicate, "__qualname__", repr(predicate)),
            within=timeout,
            recent=lambda: [f"{c.method} {c.kind}->{c.status}" for c in self.calls],
        )

    async def wait_for_call(
        self,
        kind: str,
        n: int = 1,
        *,
        status: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a built-in deadline, as in FakeKamiya
    ) -> Call:
        """Wait until ``kind`` has been answered ``n`` times (with ``status`` if given)."""

        def matching() -> list[Call]:
            return [c for c in self.calls_of(kind) if status is None or c.status == status]

        def called(fake: FakeDiscord) -> bool:
            return len(matching()) >= n

        called.__qualname__ = f"{kind} answered {n} time(s)"
        await self.wait_for(called, timeout)
        return matching()[n - 1]

    # Transport.

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path[len(API_PREFIX) :]
        method, query, at = request.method, dict(request.query), self._clock()
        kind, code, body = "unknown", None, None
        files: tuple[str, ...] = ()
        try:
            kind, params, needs_auth = _route(method, path)
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise p.unauthorized()
            body, files = await _read_body(request)
            fault = next((f for f in self._faults if f.matches(method, path, kind)), None)
            if fault is not None:
                self._faults.remove(fault)
                raise fault.error
            reply = self.handlers[kind](Request(params, body, query))
        except ApiError as error:
            status, code = error.status, error.code
            reply = Reply(error.body, error.headers)
        else:
            status = 200 if reply.body is not None else 204
        logged = (
            {k: v for k, v in body.items() if k != "_uploads"} if isinstance(body, dict) else body
        )
        self.calls.append(Call(method, path, kind, logged, query, at, status, code, files))
        self._changed()
        if status == 204:
            return web.Response(status=204, headers=reply.headers)
        # Exactly "application/json": discord.py compares the header, charset breaks it.
        headers = {"Content-Type": "application/json", **reply.headers}
        return web.Response(status=status, body=json.dumps(reply.body).encode(), headers=headers)


def _route(method: str, path: str) -> tuple[str, dict[str, str], bool]:
    known_path = False
    for route_method, pattern, kind, needs_auth in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if route_method == method:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            return kind, params, needs_auth
        known_path = True
    raise p.method_not_allowed() if known_path else p.not_found()


async def _read_body(request: web.Request) -> tuple[object, tuple[str, ...]]:
    """The JSON body, or a multipart body's ``payload_json`` plus its files (as ``_uploads``)."""
    if request.content_type == "multipart/form-data":
        body: object = None
        uploads: list[JsonObject] = []
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            elif part.filename is not None:
                uploads.append({"filename": part.filename, "size": len(await part.read())})
        if isinstance(body, dict) and uploads:
            body = body | {"_uploads": uploads}
        return body, tuple(str(u["filename"]) for u in uploads)
    raw = await request.read()
    if not raw:
        return None, ()
    try:
        return json.loads(raw), ()
    except ValueError:
        raise ApiError.of(400, "The request body contains invalid JSON.", 50109) from None


def _default_error(status: int, route: str) -> ApiError:
    """Discord's body for a scripted status, by what the route is."""
    callback = route == "callback" or route.startswith("/interactions/")
    webhook = route in WEBHOOK_KINDS or route.startswith("/webhooks/")
    if status == 401:
        error = p.invalid_webhook_token() if webhook else p.unauthorized()
    elif status == 404 and callback:
        error = p.unknown_interaction()
    elif status == 404 and route in ("followup", "send_message", "typing", "get_channel"):
        error = p.unknown_webhook() if webhook else p.unknown_channel()
    elif status == 404:
        error = p.unknown_message()
    elif status == 400 and callback:
        error = p.already_acknowledged()
    elif status == 403:
        error = p.missing_permissions()
    elif status == 500:
        error = p.server_error()
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Scripted failure"
        error = ApiError.of(status, f"{status}: {phrase}", 0)
    return error
