"""kamiya-bot core: the Kamiya client and the conversation adapter every frontend plugs into.

Frontends import from here only. The seam they implement is ``ReplySink``; the one they call is
``Conversations.ask(chat, text, sink)``.
"""

from __future__ import annotations

from core.client import KamiyaClient, Message, build_http_client, can_block
from core.config import (
    Config,
    ConfigError,
    ConversationSettings,
    DiscordSettings,
    KamiyaSettings,
    LogSettings,
    StorageSettings,
    TelegramSettings,
    load_config,
)
from core.conversations import Conversations
from core.errors import (
    BadKey,
    BlockingNotSupported,
    ConversationNotFound,
    IncompleteStream,
    KamiyaError,
    MalformedEvent,
    NoPermission,
    OutOfCredit,
    RateLimited,
    UpstreamFailure,
)
from core.events import Event, Final, TextDelta
from core.frontend import ChatKey, Failure, Reply, ReplySink
from core.lanes import Lanes, QueueFull
from core.texts import failure_markdown, failure_text, language, text

__all__ = [
    "BadKey",
    "BlockingNotSupported",
    "ChatKey",
    "Config",
    "ConfigError",
    "ConversationNotFound",
    "ConversationSettings",
    "Conversations",
    "DiscordSettings",
    "Event",
    "Failure",
    "Final",
    "IncompleteStream",
    "KamiyaClient",
    "KamiyaError",
    "KamiyaSettings",
    "Lanes",
    "LogSettings",
    "MalformedEvent",
    "Message",
    "NoPermission",
    "OutOfCredit",
    "QueueFull",
    "RateLimited",
    "Reply",
    "ReplySink",
    "StorageSettings",
    "TelegramSettings",
    "TextDelta",
    "UpstreamFailure",
    "build_http_client",
    "can_block",
    "failure_markdown",
    "failure_text",
    "language",
    "load_config",
    "text",
]
