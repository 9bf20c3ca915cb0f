"""Typed Kamiya failures, one class per thing a user or operator must react to differently.

Tree::

    KamiyaError                 status, safe message; never the key
    ├── BadKey                  401: the configured key was rejected
    ├── OutOfCredit             402: the key has no credit left
    ├── NoPermission            403: the key may not use this model
    ├── RateLimited             429: retry_after seconds when the server said so
    ├── ConversationNotFound    the server no longer knows the conversationId sent
    ├── UpstreamFailure         5xx, other statuses, network error, timeout
    │   └── Unreachable         no connection at all (retried)
    ├── IncompleteStream        closed before [DONE] or before kamiyaInfo
    ├── MalformedEvent          an event that is not what the protocol promises
    └── BlockingNotSupported    a blocking call for a model that only streams (local)

``kind`` is a stable string a frontend uses to pick localised wording (see ``core.texts``).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadKey",
    "BlockingNotSupported",
    "ConversationNotFound",
    "IncompleteStream",
    "KamiyaError",
    "MalformedEvent",
    "NoPermission",
    "OutOfCredit",
    "RateLimited",
    "UpstreamFailure",
]


class KamiyaError(Exception):
    """Base of every Kamiya failure.

    Carries only what is safe to show: the HTTP status (``None`` when there was no response) and a
    short message that never contains the API key, however the error was built.
    """

    kind: ClassVar[str] = "upstream"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        self.message = message
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadKey(KamiyaError):
    """401: the key is wrong or revoked; nothing will work until the operator fixes it."""

    kind = "bad_key"


class OutOfCredit(KamiyaError):
    """402: the key is valid but has no credit."""

    kind = "out_of_credit"


class NoPermission(KamiyaError):
    """403: the key lacks the permission a model (for example ``anthropic:*``) needs."""

    kind = "no_permission"


class RateLimited(KamiyaError):
    """429: try again later; ``retry_after`` in seconds when the server sent it."""

    kind = "rate_limited"

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"RateLimited(status={self.status!r}, message={self.message!r}, "
            f"retry_after={self.retry_after!r})"
        )


class ConversationNotFound(KamiyaError):
    """The conversationId sent is unknown to the server (its 48 h cache expired, say)."""

    kind = "conversation_not_found"


class UpstreamFailure(KamiyaError):
    """The relay or the network failed: 5xx, an unexpected status, a timeout, a reset."""

    kind = "upstream"


class Unreachable(UpstreamFailure):
    """No connection to the relay at all (refused, reset before an answer): safe to retry."""


class IncompleteStream(KamiyaError):
    """The stream ended before ``[DONE]`` or before ``kamiyaInfo``: the reply is cut off."""

    kind = "incomplete"


class MalformedEvent(KamiyaError):
    """An event could not be read as the protocol describes it."""

    kind = "malformed"


class BlockingNotSupported(KamiyaError):
    """A blocking completion was asked for a model Kamiya only serves as a stream.

    Raised locally, before any request is made.
    """

    kind = "blocking_not_supported"
