"""Config: defaults, the example file, env secrets winning, and one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config, ConfigError, config_path, load_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    config = load_config(None, {})
    assert config.kamiya.base_url == "https://p0.kamiya.dev"
    assert config.kamiya.request_timeout_s == 120
    assert config.storage.url == "sqlite+aiosqlite:///kamiya-bot.db"
    assert config.conversation.max_pending == 5
    assert config.telegram.allowed_user_ids == ()


def test_example_file_documents_every_key_and_loads_to_defaults():
    example = load_config(ROOT / "config.example.toml", {})
    assert example == Config()
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, model in Config.model_fields.items():
        assert f"[{section}]" in text
        assert model.annotation is not None
        for name, field in model.annotation.model_fields.items():
            key = field.alias or name  # [storage] schema is pg_schema in Python
            # A key that is unset by default (None) is shown commented out.
            shown = f"\n# {key} = " if field.default is None else f"\n{key} = "
            assert shown in text, f"{section}.{key} is not documented"


def test_environment_secrets_win_over_the_file(tmp_path):
    path = write(tmp_path, '[kamiya]\napi_key = "from-file"\n[telegram]\ntoken = "t-file"\n')
    env = {"KAMIYA_API_KEY": "from-env", "DISCORD_BOT_TOKEN": "d-env", "TELEGRAM_BOT_TOKEN": ""}
    config = load_config(path, env)
    assert config.kamiya.api_key.get_secret_value() == "from-env"
    assert config.telegram.token.get_secret_value() == "t-file"  # empty env does not erase
    assert config.discord.token.get_secret_value() == "d-env"


def test_secrets_are_hidden_from_repr():
    config = load_config(None, {"KAMIYA_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config)
    assert config.secrets() == ["sk-very-secret"]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[kamiya]\nbase_urll = 'x'\n", "[kamiya] base_urll", "unknown key"),
        ("[nonsense]\na = 1\n", "[nonsense]", "unknown key"),
        ("[kamiya]\nrequest_timeout_s = 'fast'\n", "[kamiya] request_timeout_s", "number"),
        ("[kamiya]\nrequest_timeout_s = -1\n", "[kamiya] request_timeout_s", "greater than"),
        ("[kamiya]\nbase_url = 'p0.kamiya.dev'\n", "[kamiya] base_url", "pattern"),
        ("[telegram]\nallowed_user_ids = [1, '2']\n", "[telegram] allowed_user_ids.1", "integer"),
        ("[discord]\nguild_ids = 5\n", "[discord] guild_ids", "tuple"),
        ("[discord]\nshard_count = 0\n", "[discord] shard_count", "greater than"),
        ("[discord]\nshard_ids = [0]\n", "[discord] shard_ids", "needs [discord] shard_count"),
        ("[discord]\nshard_count = 2\nshard_ids = [0, 2]\n", "[discord] shard_ids", "not below"),
        ("[discord]\nshard_count = 2\nshard_ids = [1, 1]\n", "[discord] shard_ids", "twice"),
        ("[conversation]\ntitles = 'yes'\n", "[conversation] titles", "boolean"),
        ("[log]\nlevel = 'LOUD'\n", "[log] level", "INFO"),
        ("kamiya = 3\n", "[kamiya]", "dictionary"),
        ("[storage]\nschema = 'kamiya'\n", "[storage] schema", "only a PostgreSQL url"),
        (
            "[storage]\nurl = 'postgresql+asyncpg://db/k'\nschema = 'Kamiya-Bot'\n",
            "[storage] schema",
            "pattern",
        ),
    ],
)
def test_bad_values_name_file_key_and_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    error = info.value
    assert error.file == str(path)
    assert error.key == key
    assert reason in error.reason
    assert "\n" not in str(error)
    assert str(error).startswith(f"{path}: {key}: ")


WEBHOOK = '[telegram]\nmode = "webhook"\n'
URL = 'webhook_url = "https://bot.example.org/tg"\n'


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (WEBHOOK, "[telegram] webhook_url", "required"),
        (WEBHOOK + URL, "[telegram] webhook_secret", "required"),
        (WEBHOOK + URL + 'webhook_secret = "has space"\n', "[telegram] webhook_secret", "A-Z"),
        (WEBHOOK + URL + f'webhook_secret = "{"x" * 257}"\n', "[telegram] webhook_secret", "256"),
        (
            WEBHOOK + 'webhook_url = "https://bot.example.org:9000/tg"\nwebhook_secret = "s"\n',
            "[telegram] webhook_url",
            "ports 80, 88, 443 or 8443",
        ),
        (
            '[telegram]\nwebhook_url = "http://bot.example.org/"\n',
            "[telegram] webhook_url",
            "pattern",
        ),
        ('[telegram]\nwebhook_listen = "8443"\n', "[telegram] webhook_listen", "pattern"),
        ('[telegram]\nmode = "hook"\n', "[telegram] mode", "polling"),
    ],
)
def test_webhook_mode_errors_name_the_key_and_never_the_secret(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert info.value.key == key
    assert reason in info.value.reason
    assert "has space" not in str(info.value)
    assert "xxxx" not in str(info.value)


def test_webhook_mode_with_the_secret_from_the_environment(tmp_path):
    path = write(tmp_path, WEBHOOK + URL + 'webhook_listen = "[::1]:8080"\n')
    config = load_config(path, {"TELEGRAM_WEBHOOK_SECRET": "from-env_123", "KAMIYA_API_KEY": "k"})
    telegram = config.telegram
    assert telegram.webhook_secret.get_secret_value() == "from-env_123"
    assert "from-env_123" not in repr(config)
    assert "from-env_123" in config.secrets()  # so the log filter scrubs it
    assert telegram.webhook_host_port == ("::1", 8080)
    assert telegram.webhook_route == "/tg"  # the URL's own path unless webhook_path is set


def test_wrong_type_for_a_secret_never_echoes_it(tmp_path):
    path = write(tmp_path, "[kamiya]\napi_key = 12345678\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.key == "[kamiya] api_key"
    assert "string" in info.value.reason


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(tmp_path / "nope.toml", {})
    assert info.value.key is None


def test_invalid_toml_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[kamiya\n"), {})


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path, {})


def test_discord_is_unsharded_unless_a_shard_count_is_given(tmp_path):
    assert (Config().discord.shard_count, Config().discord.shard_ids) == (None, ())
    config = load_config(write(tmp_path, "[discord]\nshard_count = 4\nshard_ids = [3, 1]\n"), {})
    assert (config.discord.shard_count, config.discord.shard_ids) == (4, (3, 1))


def test_the_config_file_comes_from_the_command_line_else_kamiya_bot_config():
    env = {"KAMIYA_BOT_CONFIG": "/config/config.toml"}
    assert config_path("given.toml", env) == "given.toml"
    assert config_path(None, env) == "/config/config.toml"
    assert config_path(None, {"KAMIYA_BOT_CONFIG": " "}) is None
    assert config_path(None, {}) is None


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("", None),
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_metrics_listen_is_off_or_a_host_and_port(tmp_path, listen, address):
    config = load_config(write(tmp_path, f'[metrics]\nlisten = "{listen}"\n'), {})
    assert config.metrics.address == address


@pytest.mark.parametrize(
    "listen", ["9464", ":9464", "127.0.0.1:", "host:port", "h:70000", "a b:1"]
)
def test_a_bad_metrics_listen_is_one_clear_error(tmp_path, listen):
    with pytest.raises(ConfigError, match=r"\[metrics\] listen: .*host:port"):
        load_config(write(tmp_path, f'[metrics]\nlisten = "{listen}"\n'), {})


def test_a_postgresql_schema_is_read_from_the_file(tmp_path):
    path = write(tmp_path, "[storage]\nurl = 'postgresql+asyncpg://db/k'\nschema = 'kamiya'\n")
    assert load_config(path, {}).storage.pg_schema == "kamiya"
