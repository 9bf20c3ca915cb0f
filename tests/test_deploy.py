"""The deployment files hold together: Dockerfile, compose.yaml, docs/deploy/ and the unit.

No image is built here (CI has no Docker daemon): the properties that matter are read from the
files themselves, and every config they mount must load as the bot would load it.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.runner import STOP_MARGIN_S
from core.config import ENV_CONFIG, ENV_SECRETS, Config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
GRACE_S = Config().bot.shutdown_grace_s
# Keys the deployment uses that other branches of this work add ([telegram] webhook mode,
# [metrics]); once they are merged nothing is unknown and this set no longer matters.
PENDING = {
    ("telegram", "mode"),
    ("telegram", "webhook_listen"),
    ("telegram", "webhook_url"),
    ("metrics", None),
}


def seconds(text: str) -> float:
    """``30s``, ``1m30s``, ``30``: compose and systemd durations."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"h": 3600, "min": 60, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|min|ms|m|s)", text)
    assert "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return sum(float(n) * units[u] for n, u in parts)


# Dockerfile.


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last:]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_image_is_slim_python_311_and_runs_as_an_unprivileged_user():
    bases = [args.split()[0] for op, args in dockerfile() if op == "FROM"]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases)
    users = [args for op, args in final_stage() if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_entrypoint_is_the_console_script_and_run_reads_the_mounted_config():
    steps = dict(final_stage())
    assert json.loads(steps["ENTRYPOINT"]) == ["kamiya-bot"]
    assert "kamiya-bot" in pyproject()["project"]["scripts"]
    assert json.loads(steps["CMD"]) == ["run", "--config", "/config/config.toml"]
    assert f"{ENV_CONFIG}=/config/config.toml" in steps["ENV"]  # other commands read it too
    assert "HEALTHCHECK" not in steps  # the health endpoint is optional: compose asks for it


def test_the_image_installs_the_project_with_the_postgres_extra():
    installs = [args for op, args in dockerfile() if op == "RUN" and "pip install" in args]
    assert any('".[postgres]"' in args for args in installs)
    assert "postgres" in pyproject()["project"]["optional-dependencies"]


def test_everything_the_image_copies_exists_and_reaches_the_build_context():
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[0 if ignore[0] == "*" else ignore.index("*")] == "*"  # all out, then some in
    copies = [args.split() for op, args in dockerfile() if op == "COPY"]
    local = [args[:-1] for args in copies if not args[0].startswith("--from=")]
    assert local
    for sources in local:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source
    packages = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {source for sources in local for source in sources}
    assert {p.rstrip("*") for p in packages} <= copied  # every package of the project


# compose.yaml and the configs it mounts.


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def bot_services() -> dict[str, dict[str, Any]]:
    """The services that run ``kamiya-bot run``."""
    services = compose()["services"]
    return {name: s for name, s in services.items() if s.get("command", [None])[0] == "run"}


def mounted_config(service: dict[str, Any]) -> Path:
    """The host file a service mounts, read-only, as its /config/config.toml."""
    [mount] = [v for v in service["volumes"] if ":/config/config.toml" in v]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/config/config.toml", "ro")
    return ROOT / str(source)


def load_deploy_config(path: Path) -> tuple[Config, dict[str, Any]]:
    """The config as the bot loads it, and its raw TOML.

    Keys of ``PENDING`` that this tree does not know yet are left out of the load; any other
    unknown key fails, as it would fail the bot.
    """
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    known: dict[str, Any] = {}
    for section, table in raw.items():
        if section not in Config.model_fields:
            assert (section, None) in PENDING, f"{path.name}: unknown [{section}]"
            continue
        fields = Config.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
        known[section] = {}
        for key, value in table.items():
            if key not in fields:
                assert (section, key) in PENDING, f"{path.name}: unknown [{section}] {key}"
                continue
            known[section][key] = value
    return Config.model_validate(known), raw


def test_postgres_15_keeps_its_data_in_a_volume_and_reports_healthy():
    postgres = compose()["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    [data] = postgres["volumes"]
    volume, target = data.split(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in compose()["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_migrate_runs_once_on_a_healthy_database_and_every_bot_waits_for_it():
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate", "--config", "/config/config.toml"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert bot_services()
    for name, service in bot_services().items():
        condition = service["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
        assert service["command"] == ["run", "--config", "/config/config.toml"]


def test_bots_get_secrets_from_the_env_file_and_config_from_a_read_only_mount():
    template = (DEPLOY / "kamiya.env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^([A-Z_]+)=", template, re.MULTILINE))
    assert {*ENV_SECRETS, "TELEGRAM_WEBHOOK_SECRET", "PGPASSWORD", "POSTGRES_PASSWORD"} <= names
    assert re.findall(r"^[A-Z_]+=(.+)$", template, re.MULTILINE) == []  # no value filled in
    for name, service in bot_services().items():
        assert service["env_file"] == "kamiya.env", name
        config, _ = load_deploy_config(mounted_config(service))
        assert config.secrets() == [], f"{name}: a secret in the mounted file"
        assert config.storage.url.startswith("postgresql+asyncpg://"), name
        assert seconds(service["stop_grace_period"]) > GRACE_S + STOP_MARGIN_S, name
    urls = {load_deploy_config(mounted_config(s))[0].storage.url for s in bot_services().values()}
    assert len(urls) == 1  # one shared database


def test_telegram_runs_in_webhook_mode_on_several_replicas_behind_the_proxy():
    services = compose()["services"]
    webhook = {
        name: service
        for name, service in bot_services().items()
        if load_deploy_config(mounted_config(service))[1].get("telegram", {}).get("mode")
        == "webhook"
    }
    assert list(webhook) == ["telegram"]
    telegram = webhook["telegram"]
    assert telegram["deploy"]["replicas"] >= 2
    raw = load_deploy_config(mounted_config(telegram))[1]["telegram"]
    port = raw["webhook_listen"].rsplit(":", 1)[1]
    assert telegram["expose"] == [port]
    assert raw["webhook_url"].startswith("https://")  # Telegram posts only over HTTPS
    proxy = services["proxy"]
    assert "443:443" in proxy["ports"]
    caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert f"dynamic a telegram {port}" in caddyfile
    host = raw["webhook_url"].split("/")[2]
    assert re.search(rf"^{re.escape(host)} {{", caddyfile, re.MULTILINE)
    mounts = {v.split(":")[0] for v in proxy["volumes"]}
    assert "./docs/deploy/Caddyfile" in mounts


def test_each_platform_runs_where_it_may_and_discord_once_per_shard():
    """A replicated service must not run Discord unsharded (every replica would answer every
    interaction), and only webhook services may run Telegram (a poller removes the webhook)."""
    shards: list[int] = []
    counts = set()
    for name, service in bot_services().items():
        environment = service.get("environment", {})
        config, raw = load_deploy_config(mounted_config(service))
        webhook = raw.get("telegram", {}).get("mode") == "webhook"
        if not webhook:
            assert environment.get("TELEGRAM_BOT_TOKEN") == "", name
        if environment.get("DISCORD_BOT_TOKEN") == "":
            continue
        assert service.get("deploy", {}).get("replicas", 1) == 1, name
        assert config.discord.shard_count is not None, name
        counts.add(config.discord.shard_count)
        shards.extend(config.discord.shard_ids or range(config.discord.shard_count))
    [count] = counts
    assert sorted(shards) == list(range(count))  # every shard exactly once


# systemd.


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string((DEPLOY / "kamiya-bot.service").read_text(encoding="utf-8"))
    return parser


def test_the_unit_runs_the_venv_script_as_a_dedicated_user_and_restarts_on_failure():
    service = unit()["Service"]
    assert service["User"] not in ("root", "0")
    assert service["User"] == service["Group"]
    assert service["ExecStart"].startswith("/opt/kamiya-bot/bin/kamiya-bot run --config ")
    assert service["ExecStartPre"].startswith("/opt/kamiya-bot/bin/kamiya-bot migrate ")
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # an unusable config stays unusable
    assert service["EnvironmentFile"].startswith("/etc/kamiya-bot/")
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_stops_with_sigterm_and_waits_longer_than_the_bot_takes():
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert seconds(service["TimeoutStopSec"]) > GRACE_S + STOP_MARGIN_S


def test_the_unit_is_hardened_and_may_write_only_its_state_directory():
    service = unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    writable = service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] in writable  # the SQLite database's directory
    assert f"/var/lib/{service['StateDirectory']}" == service["WorkingDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    path = tmp_path / "kamiya-bot.service"
    shutil.copy(DEPLOY / "kamiya-bot.service", path)
    result = subprocess.run(  # noqa: S603 - a fixed tool on a copy of our own file
        ["systemd-analyze", "verify", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # The venv is not installed here; everything else must pass.
        if line.strip() and "/opt/kamiya-bot/bin/kamiya-bot is not executable" not in line
    ]
    assert problems == []
