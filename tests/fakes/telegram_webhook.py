"""Webhook registration in the fake Telegram: setWebhook, deleteWebhook, getWebhookInfo.

As the Bot API has it: one webhook per bot, set and reset idempotently by ``setWebhook``
(an HTTPS URL on port 443, 80, 88 or 8443; ``secret_token`` of 1-256 ``A-Z a-z 0-9 _ -``;
``allowed_updates`` kept from before when not given; ``drop_pending_updates``), removed by
``deleteWebhook`` or ``setWebhook`` with an empty URL. While one is set, getUpdates answers
409 Conflict (``telegram.py``) and updates wait for a ``WebhookSender`` to push them.
The descriptions are Telegram's, as reported by its users; the secret_token one is
reported without knowing whether Telegram says the same about a too long token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.fakes.telegram_text import ApiError, JsonObject, bad_request, opt_int
from tests.fakes.telegram_users import TelegramUsers

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SET_BY_WEBHOOK", "WEBHOOK_ACTIVE", "Webhook", "WebhookMethods"]

WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
SET_BY_WEBHOOK = "Conflict: terminated by setWebhook request"
_PORTS = frozenset({80, 88, 443, 8443})
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class Webhook:
    """The webhook as set; ``url`` empty: none (the bot polls)."""

    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None


class WebhookMethods(TelegramUsers):
    """The webhook methods and state; ``webhook`` is what tests and the sender read."""

    webhook: Webhook = Webhook()

    def webhook_methods(self) -> dict[str, Callable[[JsonObject], object]]:
        return {
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }

    def _set_webhook(self, params: JsonObject) -> bool:
        url = params.get("url")
        if not isinstance(url, str):
            raise bad_request('parameter "url" is required')
        if not url:
            return self._delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        try:
            port = parts.port or 443
        except ValueError:
            port = 0
        if port not in _PORTS:
            raise bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        secret = params.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str)
            or not 1 <= len(secret) <= 256
            or not set(secret) <= _SECRET_CHARS
        ):
            raise bad_request("secret token contains unallowed characters")
        connections = opt_int(params.get("max_connections"))
        if connections is not None and not 1 <= connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self._set_allowed(params.get("allowed_updates"))
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        ip = params.get("ip_address")
        self.webhook = Webhook(
            url=url,
            secret_token=secret if isinstance(secret, str) else None,
            max_connections=connections or 40,
            ip_address=ip if isinstance(ip, str) else None,
        )
        self._changed()  # a waiting long poll ends with SET_BY_WEBHOOK
        return True

    def _delete_webhook(self, params: JsonObject) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self.webhook = Webhook()
        self._changed()
        return True

    def _get_webhook_info(self, params: JsonObject) -> JsonObject:
        hook = self.webhook
        info: JsonObject = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook.url:
            info["max_connections"] = hook.max_connections
            if self._allowed:
                info["allowed_updates"] = sorted(self._allowed)
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
        return info

    def _refuse_polling(self) -> None:
        if self.webhook.url:
            raise ApiError(409, WEBHOOK_ACTIVE)

    # The sender's side of the queue.

    def next_push(self) -> JsonObject | None:
        """The oldest update a webhook would deliver now; ones not allowed are dropped."""
        while self._updates:
            update = self._updates[0]
            if self._is_allowed(update):
                return update
            del self._updates[0]
        return None

    async def wait_push(self) -> JsonObject:
        """The next update to push, once a webhook is set and one is queued."""
        await self._wait_until(lambda: bool(self.webhook.url) and self.next_push() is not None)
        update = self.next_push()
        assert update is not None
        return update

    def confirm(self, update_id: int) -> None:
        """A webhook answered 2xx for ``update_id``: Telegram forgets the update."""
        self._updates = [u for u in self._updates if u["update_id"] != update_id]
        self._changed()
