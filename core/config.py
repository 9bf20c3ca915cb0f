"""Configuration: one TOML file plus secrets from the environment, validated once at start.

pydantic does the validation (unknown keys, wrong types, ranges) because its error locations give
us "file, key, reason" for free; every model is frozen, and secrets are ``SecretStr`` so neither
``repr`` nor an error message can show them. Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ENV_SECRETS",
    "BotSettings",
    "Config",
    "ConfigError",
    "ConversationSettings",
    "DiscordSettings",
    "KamiyaSettings",
    "LimitSettings",
    "LogSettings",
    "StorageSettings",
    "TelegramSettings",
    "load_config",
    "secrets_in_file",
]

Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Seconds = Annotated[float, Strict(), Field(gt=0, le=3600)]
Secret = Annotated[SecretStr, Strict()]
Url = Annotated[str, Strict(), Field(pattern=r"^https?://\S+$")]
# Provider-prefixed, as Kamiya names them; no spaces, short enough for a button's data.
ModelName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][\w.:/@+-]*$", max_length=48)]
UserIds = tuple[Annotated[int, Strict()], ...]
Limit = Annotated[int, Strict(), Field(ge=0)]

#: Environment variables that override a secret of the file, as (section, key).
ENV_SECRETS: Mapping[str, tuple[str, str]] = {
    "KAMIYA_API_KEY": ("kamiya", "api_key"),
    "TELEGRAM_BOT_TOKEN": ("telegram", "token"),
    "DISCORD_BOT_TOKEN": ("discord", "token"),
}


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is one line naming file, key and reason."""

    def __init__(self, file: str, key: str | None, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KamiyaSettings(_Section):
    base_url: Url = "https://p0.kamiya.dev"
    api_key: Secret = SecretStr("")
    request_timeout_s: Seconds = 120.0
    connect_timeout_s: Seconds = 10.0
    title_model: Str = "openai:gpt-3.5-turbo"
    # Chat Completions models users may pick with /model; the first choice is always "default",
    # Kamiya's server-side conversation, which needs no entry here.
    # Extra attempts for a request that failed before its first byte with 429 (waiting its
    # Retry-After), 5xx or no connection; backoff doubles, with jitter, up to retry_max_s.
    retries: Annotated[int, Strict(), Field(ge=0, le=10)] = 2
    retry_max_s: Annotated[float, Strict(), Field(gt=0, le=120)] = 10.0
    models: tuple[ModelName, ...] = (
        "openai:gpt-3.5-turbo",
        "openai:gpt-4",
        "anthropic:claude-1",
    )


class StorageSettings(_Section):
    url: Annotated[str, Strict(), Field(min_length=1)] = "sqlite+aiosqlite:///kamiya-bot.db"
    # PostgreSQL only: the schema the tables live in ("" for the server's default, public), so
    # deployments can share one database. Lower case, as PostgreSQL folds unquoted names.
    # "schema" would shadow a BaseModel attribute, hence the alias.
    pg_schema: Annotated[str, Strict(), Field(pattern=r"^([a-z_][a-z0-9_]{0,62})?$")] = Field(
        default="", alias="schema"
    )

    @field_validator("pg_schema")
    @classmethod
    def _postgresql_only(cls, value: str, info: ValidationInfo) -> str:
        url = info.data.get("url")
        if value and isinstance(url, str) and not url.startswith("postgresql"):
            raise PydanticCustomError("postgresql_only", "only a PostgreSQL url has schemas")
        return value


class ConversationSettings(_Section):
    max_pending: Annotated[int, Strict(), Field(ge=0, le=1000)] = 5
    titles: Bool = True
    # Completions mode: the default system prompt ("" for none) and the character budget of
    # the history sent with each message (oldest turns are dropped first).
    system_prompt: Annotated[str, Strict(), Field(max_length=8000)] = ""
    history_chars: Annotated[int, Strict(), Field(ge=500, le=1_000_000)] = 12_000
    # Kamiya keeps a server-side conversation for 48 hours after its last use.
    resume_window_h: Annotated[float, Strict(), Field(gt=0, le=24 * 365)] = 48.0


class BotSettings(_Section):
    """The process as a whole: how much it asks of Kamiya at once, how it stops."""

    max_concurrent_streams: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 200
    shutdown_grace_s: Annotated[float, Strict(), Field(ge=0, le=600)] = 10.0


class LimitSettings(_Section):
    """Per-user limits across the platform's chats; 0 switches a limit off."""

    requests_per_minute: Limit = 0
    chars_per_day: Limit = 0


Rate = Annotated[float, Strict(), Field(gt=0, le=1000)]
Count = Annotated[int, Strict(), Field(ge=1, le=10_000)]


class TelegramSettings(_Section):
    token: Secret = SecretStr("")
    base_url: Url = "https://api.telegram.org/bot"
    allowed_user_ids: UserIds = ()
    admin_user_ids: UserIds = ()
    stream_mode: Literal["draft", "edit"] = "draft"
    group_scope: Literal["chat", "user"] = "chat"
    poll_timeout_s: Annotated[float, Strict(), Field(ge=0, le=50)] = 10.0
    per_chat_per_s: Rate = 1.0
    per_chat_burst: Count = 3
    group_per_min: Count = 20
    global_per_s: Rate = 30.0
    paste_window_s: Annotated[float, Strict(), Field(ge=0, le=10)] = 1.0


class DiscordSettings(_Section):
    token: Secret = SecretStr("")
    guild_ids: tuple[Int, ...] = ()
    admin_user_ids: UserIds = ()
    api_base_url: Url = "https://discord.com/api/v10"
    gateway_url: Annotated[str, Strict(), Field(pattern=r"^wss?://\S+$")] = (
        "wss://gateway.discord.gg/"
    )
    reply_to_mentions: Bool = False
    edits_per_window: Count = 5
    edit_window_s: Annotated[float, Strict(), Field(gt=0, le=600)] = 5.0
    min_edit_interval_s: Annotated[float, Strict(), Field(gt=0, le=60)] = 1.0
    interaction_budget_s: Annotated[float, Strict(), Field(gt=0, le=900)] = 840.0


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    bot: BotSettings = BotSettings()
    kamiya: KamiyaSettings = KamiyaSettings()
    storage: StorageSettings = StorageSettings()
    conversation: ConversationSettings = ConversationSettings()
    limits: LimitSettings = LimitSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    log: LogSettings = LogSettings()

    def secrets(self) -> list[str]:
        """Every non-empty secret, so log filters can scrub them."""
        values = (self.kamiya.api_key, self.telegram.token, self.discord.token)
        return [s.get_secret_value() for s in values if s.get_secret_value()]


def load_config(path: str | Path | None, environ: Mapping[str, str]) -> Config:
    """Read ``path`` (or only defaults when ``None``), overlay secrets from ``environ``.

    Raises ``ConfigError`` for a missing or unreadable file, bad TOML, unknown keys, wrong types.
    """
    name = str(path) if path is not None else "<defaults>"
    data: dict[str, object] = {}
    if path is not None:
        data = _read_toml(Path(path))
    for var, (section, key) in ENV_SECRETS.items():
        value = environ.get(var, "").strip()
        if value:
            table = data.setdefault(section, {})
            if not isinstance(table, dict):
                raise ConfigError(name, section, "must be a table")
            table[key] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(name, _key(first["loc"]), _reason(first)) from None


def secrets_in_file(path: str | Path) -> list[str]:
    """The secret keys a config file itself holds (``[kamiya] api_key``…), for a start-up
    warning when others may read the file; ``[]`` if it cannot be read."""
    try:
        data = _read_toml(Path(path))
    except ConfigError:
        return []
    found = []
    for section, key in ENV_SECRETS.values():
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key].strip():
            found.append(f"[{section}] {key}")
    return found


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(str(path), None, "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(str(path), None, "permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None


def _key(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) == 1:
        return f"[{parts[0]}]"
    return f"[{parts[0]}] " + ".".join(parts[1:])


def _reason(error: Mapping[str, object]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key"
    value = error.get("input")
    shown = "(hidden)" if isinstance(value, str) and _looks_secret(error) else repr(value)
    return f"{error.get('msg', 'invalid value')}, got {shown}"


def _looks_secret(error: Mapping[str, object]) -> bool:
    loc = error.get("loc")
    return isinstance(loc, tuple) and any(p in {"api_key", "token"} for p in loc)
