"""Telegram's side of a webhook: the fake's queued updates POSTed to bot processes.

``WebhookSender(tg, urls)`` delivers what the fake's users do (the same Update JSON getUpdates
would return) to one or more bot listeners, as Telegram does once a webhook is set::

    async with WebhookSender(tg, [bot1_url, bot2_url, bot3_url]) as sender:
        tg.private_message(alice, "hi")      # pushed as soon as the bot has called setWebhook
        await says(tg, alice["id"], "hi")
    assert [d.status for d in sender.deliveries] == [200]

- ``urls``: where to POST (Telegram would use ``tg.webhook.url``, the public URL; tests give
  the loopback listeners behind it). Each POST goes to ``choose(update, attempt)``
  (``attempt`` counts from 1 per update); by default the next URL in turn (round robin over
  all POSTs, so a retry after a 503 goes to another process).
- ``secret``: the ``X-Telegram-Bot-Api-Secret-Token`` header; by default the ``secret_token``
  the bot registered with setWebhook (no header if none); ``None``: no header.
- Sequential, like one webhook connection: one update at a time, in queue order, each POSTed
  until a 2xx answer (then confirmed: the fake forgets it) or ``attempts`` POSTs (then given
  up and dropped, as Telegram does, and listed in ``given_up``), ``retry_delay_s`` apart.
- ``push=True`` (default): inside ``async with`` a background task pushes every update as it
  is queued, once a webhook is set. ``push=False``: nothing moves unless the test calls
  ``deliver(update)`` (one update with retries), ``flush()`` (every queued update, in order)
  or ``post(update_or_bytes, url)`` (one raw POST: no retry, no confirmation; for bad bodies
  or headers).
- ``deliveries``: every POST as ``Delivery(update_id, url, attempt, status, at)``;
  ``status`` is ``None`` when no HTTP answer came (refused or cut connection).
  ``statuses(update_id)`` lists one update's, ``wait_delivered(update_id)`` awaits its 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.telegram_text import JsonObject

__all__ = ["REGISTERED", "SECRET_HEADER", "Delivery", "WebhookSender"]

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"


class _Registered:
    """The secret the bot registered with setWebhook, read at each POST."""


REGISTERED: Final = _Registered()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST of an update; ``at`` on the monotonic clock."""

    update_id: int | None
    url: str
    attempt: int
    status: int | None
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Pushes the fake Telegram's updates to webhook URLs; see the module docstring."""

    def __init__(
        self,
        tg: FakeTelegram,
        urls: Sequence[str],
        *,
        choose: Callable[[JsonObject, int], str] | None = None,
        secret: str | _Registered | None = REGISTERED,
        attempts: int = 5,
        retry_delay_s: float = 0.0,
        push: bool = True,
    ) -> None:
        if not urls and choose is None:
            raise ValueError("no URL to deliver to")
        self._tg = tg
        self.urls = list(urls)
        self._turn = itertools.cycle(range(len(self.urls))) if self.urls else None
        self._choose = choose or self._round_robin
        self._secret = secret
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self._push = push
        self.deliveries: list[Delivery] = []
        self.given_up: list[JsonObject] = []
        self._session: aiohttp.ClientSession | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._delivered = asyncio.Event()

    async def __aenter__(self) -> WebhookSender:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        if self._push:
            self._pusher = asyncio.create_task(self._push_forever(), name="webhook-sender")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._session is not None:
            await self._session.close()

    # Delivering.

    async def post(
        self, update: JsonObject | bytes, url: str | None = None, *, attempt: int = 1
    ) -> int | None:
        """One POST (``bytes``: the body as given); its status, ``None`` without an answer."""
        if self._session is None:
            raise RuntimeError("use WebhookSender in `async with`")
        if isinstance(update, bytes):
            body, update_id = update, None
            url = url or self.urls[0]
        else:
            body, update_id = json.dumps(update).encode(), update.get("update_id")
            url = url or self._choose(update, attempt)
        headers = {"Content-Type": "application/json"}
        secret = self.secret
        if secret is not None:
            headers[SECRET_HEADER] = secret
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                status: int | None = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        self.deliveries.append(Delivery(update_id, url, attempt, status))
        self._delivered.set()
        self._delivered = asyncio.Event()
        return status

    async def deliver(self, update: JsonObject) -> Delivery:
        """POST ``update`` until a 2xx or ``attempts`` tries; either way the fake forgets it."""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.retry_delay_s)
            await self.post(update, attempt=attempt)
            if self.deliveries[-1].ok:
                break
        else:
            self.given_up.append(update)
        self._tg.confirm(update["update_id"])
        return self.deliveries[-1]

    async def flush(self) -> list[Delivery]:
        """Deliver every queued update, in order, one at a time; the last POST of each."""
        done = []
        while (update := self._tg.next_push()) is not None:
            done.append(await self.deliver(update))
        return done

    # Inspection.

    @property
    def secret(self) -> str | None:
        if isinstance(self._secret, _Registered):
            return self._tg.webhook.secret_token
        return self._secret

    def statuses(self, update_id: int) -> list[int | None]:
        return [d.status for d in self.deliveries if d.update_id == update_id]

    async def wait_delivered(self, update_id: int, timeout: float = 10.0) -> Delivery:  # noqa: ASYNC109
        """The 2xx POST of ``update_id``, once it has been answered."""
        async with asyncio.timeout(timeout):
            while True:
                found = [d for d in self.deliveries if d.update_id == update_id and d.ok]
                if found:
                    return found[0]
                await self._delivered.wait()

    # Internals.

    def _round_robin(self, update: JsonObject, attempt: int) -> str:
        assert self._turn is not None
        return self.urls[next(self._turn)]

    async def _push_forever(self) -> None:
        while True:
            await self.deliver(await self._tg.wait_push())
