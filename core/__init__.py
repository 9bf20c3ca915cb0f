"""kamiya-bot core: the Kamiya client and the conversation adapter every frontend plugs into.

Frontends import from here only. The seam they implement is ``ReplySink``; the one they call is
``Conversations.ask(chat, text, sink)``.
"""

from __future__ import annotations

from core.client import MAX_CONNECTIONS, KamiyaClient, Message, build_http_client, can_block
from core.config import (
    Config,
    ConfigError,
    ConversationSettings,
    DiscordSettings,
    KamiyaSettings,
    LimitSettings,
    LogSettings,
    MetricsSettings,
    StorageSettings,
    TelegramSettings,
    load_config,
)
from core.controls import (
    entry_label,
    history_text,
    model_change_text,
    model_label,
    resume_text,
    stats_text,
    title_of,
    usage_text,
)
from core.conversations import Conversations, conversations_from_config, new_turn_id
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
from core.models import DEFAULT
from core.observe import NULL_OBSERVER, NullObserver, Observer, TurnTrace, current_trace
from core.texts import duration, failure_markdown, failure_text, language, text
from core.views import ChatView, HistoryEntry, ModelChange, ResumeOutcome, Stats, UserUsage

__all__ = [
    "DEFAULT",
    "MAX_CONNECTIONS",
    "NULL_OBSERVER",
    "BadKey",
    "BlockingNotSupported",
    "ChatKey",
    "ChatView",
    "Config",
    "ConfigError",
    "ConversationNotFound",
    "ConversationSettings",
    "Conversations",
    "DiscordSettings",
    "Event",
    "Failure",
    "Final",
    "HistoryEntry",
    "IncompleteStream",
    "KamiyaClient",
    "KamiyaError",
    "KamiyaSettings",
    "Lanes",
    "LimitSettings",
    "LogSettings",
    "MalformedEvent",
    "Message",
    "MetricsSettings",
    "ModelChange",
    "NoPermission",
    "NullObserver",
    "Observer",
    "OutOfCredit",
    "QueueFull",
    "RateLimited",
    "Reply",
    "ReplySink",
    "ResumeOutcome",
    "Stats",
    "StorageSettings",
    "TelegramSettings",
    "TextDelta",
    "TurnTrace",
    "UpstreamFailure",
    "UserUsage",
    "build_http_client",
    "can_block",
    "conversations_from_config",
    "current_trace",
    "duration",
    "entry_label",
    "failure_markdown",
    "failure_text",
    "history_text",
    "language",
    "load_config",
    "model_change_text",
    "model_label",
    "new_turn_id",
    "resume_text",
    "stats_text",
    "text",
    "title_of",
    "usage_text",
]
