"""``kamiya-bot run`` in-process: opens the core, serves frontends, and stops 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, ClassVar

from bots import cli

if TYPE_CHECKING:
    from core import Config, Conversations


class SignallingFrontend:
    """Starts, then sends the process SIGTERM, as systemd or docker stop would."""

    name = "fake"
    events: ClassVar[list[str]] = []

    def __init__(self, config: Config, conversations: Conversations) -> None:
        self.conversations = conversations

    async def start(self) -> None:
        self.events.append("start")
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        self.events.append("stop")


def test_run_serves_until_sigterm_then_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "select_frontends", lambda config: [SignallingFrontend])
    monkeypatch.setenv("KAMIYA_API_KEY", "sk-run-test")
    path = tmp_path / "bot.toml"
    path.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "r.db"}"\n')
    SignallingFrontend.events.clear()
    assert cli.main(["run", "--config", str(path)]) == 0
    assert SignallingFrontend.events == ["start", "stop"]
    assert (tmp_path / "r.db").exists()


def test_run_without_a_key_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "select_frontends", lambda config: [SignallingFrontend])
    path = tmp_path / "bot.toml"
    path.write_text("")
    assert cli.main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "KAMIYA_API_KEY" in err


def test_run_reads_kamiya_bot_config_when_no_config_is_given(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "select_frontends", lambda config: [SignallingFrontend])
    monkeypatch.setenv("KAMIYA_API_KEY", "sk-run-test")
    path = tmp_path / "bot.toml"
    path.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "env.db"}"\n')
    monkeypatch.setenv("KAMIYA_BOT_CONFIG", str(path))
    SignallingFrontend.events.clear()
    assert cli.main(["run"]) == 0
    assert SignallingFrontend.events == ["start", "stop"]
    assert (tmp_path / "env.db").exists()  # the storage of the file the variable names


def test_run_without_any_config_names_both_ways_to_give_one(monkeypatch, capsys):
    monkeypatch.setattr(cli, "select_frontends", lambda config: [SignallingFrontend])
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--config" in err
    assert "KAMIYA_BOT_CONFIG" in err
