"""Configuration: one TOML file plus secrets from the environment, validated once at start.

pydantic does the validation (unknown keys, wrong types, ranges) because its error locations give
us "file, key, reason" for free; every model is frozen, and secrets are ``SecretStr`` so neither
``repr`` nor an error message can show them. Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
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
    "ENV_CONFIG",
    "ENV_SECRETS",
    "BotSettings",
    "Config",
    "ConfigError",
    "ConversationSettings",
    "DiscordSettings",
    "KamiyaSettings",
    "LimitSettings",
    "LogSettings",
    "MetricsSettings",
    "StorageSettings",
    "TelegramSettings",
    "config_path",
    "load_config",
    "secrets_in_file",
]

Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Seconds = Annotated[float, Strict(), Field(gt=0, le=3600)]
Secret = Annotated[SecretStr, Strict()]
Url = Annotated[str, Strict(), Field(pattern=r"^https?://\S+$")]


def _webhook_secret(secret: SecretStr) -> SecretStr:
    """Telegram's rule for a secret_token: 1-256 of A-Z a-z 0-9 _ - (or empty: not set)."""
    value = secret.get_secret_value()
    if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
        raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -, as Telegram requires")
    return secret


# What Telegram allows as a webhook's secret_token; empty: not set.
WebhookSecret = Annotated[SecretStr, Strict(), AfterValidator(_webhook_secret)]
# Provider-prefixed, as Kamiya names them; no spaces, short enough for a button's data.
ModelName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][\w.:/@+-]*$", max_length=48)]
UserIds = tuple[Annotated[int, Strict()], ...]
Limit = Annotated[int, Strict(), Field(ge=0)]

#: Environment variables that override a secret of the file, as (section, key).
ENV_SECRETS: Mapping[str, tuple[str, str]] = {
    "KAMIYA_API_KEY": ("kamiya", "api_key"),
    "TELEGRAM_BOT_TOKEN": ("telegram", "token"),
    "DISCORD_BOT_TOKEN": ("discord", "token"),
    "TELEGRAM_WEBHOOK_SECRET": ("telegram", "webhook_secret"),
}

#: Ports Telegram delivers webhooks to.
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})


#: The config file to read when the command line names none (a container sets it).
ENV_CONFIG = "KAMIYA_BOT_CONFIG"


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
    # How updates arrive: long polling, or Telegram's POSTs to webhook_url, served on
    # webhook_listen (host:port) at webhook_path (default: webhook_url's path).
    mode: Literal["polling", "webhook"] = "polling"
    webhook_listen: Annotated[
        str, Strict(), Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
    ] = "127.0.0.1:8443"
    webhook_url: Annotated[str, Strict(), Field(pattern=r"^(https://[^\s/?#]+[^\s?#]*)?$")] = ""
    webhook_path: Annotated[str, Strict(), Field(pattern=r"^(/[^\s?#]*)?$")] = ""
    webhook_secret: WebhookSecret = SecretStr("")

    @property
    def webhook_host_port(self) -> tuple[str, int]:
        """``webhook_listen`` split; an IPv6 host without its brackets."""
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def webhook_route(self) -> str:
        """The path the listener serves: ``webhook_path``, else ``webhook_url``'s own path."""
        return self.webhook_path or urlsplit(self.webhook_url).path or "/"


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
    # Sharding (discord.py's AutoShardedClient): the bot's guilds split into shard_count
    # shards, this process running shard_ids of them (all when empty). None: one connection,
    # unsharded, as a small bot needs.
    shard_count: Annotated[int, Strict(), Field(ge=1, le=100_000)] | None = None
    shard_ids: tuple[Annotated[int, Strict(), Field(ge=0)], ...] = ()

    @field_validator("shard_ids")
    @classmethod
    def _shards_exist(cls, ids: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        """Every id names a shard of ``shard_count``, once: discord.py would fail later,
        mid-start, or Discord would close the gateway with 4010 "invalid shard"."""
        count = info.data.get("shard_count")
        if ids and count is None:
            raise ValueError("needs [discord] shard_count")
        if count is not None and (wrong := [i for i in ids if i >= count]):
            raise ValueError(f"shard id {wrong[0]} is not below shard_count {count}")
        if len(set(ids)) != len(ids):
            raise ValueError("lists a shard twice")
        return ids


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "text": one readable line per record; "json": one JSON object per line, for collectors.
    format: Literal["text", "json"] = "text"


def _host_port(value: str) -> str:
    """``""`` (off) or ``host:port``; an IPv6 host in brackets, ``[::1]:9464``."""
    if not value:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
    if host.startswith("[") != host.endswith("]") or any(c.isspace() for c in host):
        raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
    return value


class MetricsSettings(_Section):
    # Where /metrics (Prometheus) and /healthz are served; "" serves nothing.
    listen: Annotated[str, Strict(), AfterValidator(_host_port)] = ""

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to bind (brackets of an IPv6 host dropped), ``None`` when off."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class Config(_Section):
    bot: BotSettings = BotSettings()
    kamiya: KamiyaSettings = KamiyaSettings()
    storage: StorageSettings = StorageSettings()
    conversation: ConversationSettings = ConversationSettings()
    limits: LimitSettings = LimitSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()

    def secrets(self) -> list[str]:
        """Every non-empty secret, so log filters can scrub them."""
        values = (
            self.kamiya.api_key,
            self.telegram.token,
            self.telegram.webhook_secret,
            self.discord.token,
        )
        return [s.get_secret_value() for s in values if s.get_secret_value()]


def config_path(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The file named on the command line, else ``KAMIYA_BOT_CONFIG``'s, else None (the
    built-in defaults)."""
    if given:
        return given
    return environ.get(ENV_CONFIG, "").strip() or None


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
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(name, _key(first["loc"]), _reason(first)) from None
    _check_webhook(name, config.telegram)
    return config


def _check_webhook(name: str, settings: TelegramSettings) -> None:
    """What webhook mode needs beyond each key's own checks; named by key."""
    if settings.mode != "webhook":
        return
    if not settings.webhook_url:
        raise ConfigError(name, "[telegram] webhook_url", 'required when mode = "webhook"')
    if not settings.webhook_secret.get_secret_value():
        raise ConfigError(
            name,
            "[telegram] webhook_secret",
            'required when mode = "webhook" (or set TELEGRAM_WEBHOOK_SECRET)',
        )
    try:
        port = urlsplit(settings.webhook_url).port or 443
    except ValueError:
        port = None
    if port not in WEBHOOK_PORTS:
        raise ConfigError(
            name, "[telegram] webhook_url", "Telegram only posts to ports 80, 88, 443 or 8443"
        )
    if not 0 <= settings.webhook_host_port[1] <= 65535:
        raise ConfigError(name, "[telegram] webhook_listen", "the port must be 0-65535")


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
    secret = {key for _, key in ENV_SECRETS.values()}
    return isinstance(loc, tuple) and any(p in secret for p in loc)
