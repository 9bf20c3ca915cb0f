"""``kamiya-bot`` end to end: the installed script in a subprocess, against the fake Kamiya."""

from __future__ import annotations

import asyncio
import getpass
import signal
import time
from typing import TYPE_CHECKING

import pytest

from core.fake_kamiya import Script
from tests.bots.cli import command, environ, run, stored_ids
from tests.conftest import KEY

if TYPE_CHECKING:
    from pathlib import Path

USER_KEY = f"terminal:{getpass.getuser()}"


async def test_offline_chat_answers_piped_lines(tmp_path):
    result = await run("chat", "--offline", cwd=tmp_path, stdin="hello\n")
    assert result.code == 0, result.stderr
    assert "offline" in result.stdout.lower()
    assert "Traceback" not in result.stderr
    assert stored_ids(tmp_path / "kamiya-bot.db")[USER_KEY]


async def test_offline_chat_conversation_survives_a_restart(tmp_path):
    await run("chat", "--offline", cwd=tmp_path, stdin="hello\n")
    first = stored_ids(tmp_path / "kamiya-bot.db")[USER_KEY]
    await run("chat", "--offline", cwd=tmp_path, stdin="again\n")
    assert stored_ids(tmp_path / "kamiya-bot.db")[USER_KEY] == first


async def test_reset_and_quit_in_piped_mode(tmp_path):
    result = await run(
        "chat", "--offline", cwd=tmp_path, stdin="one\n/reset\n\n/quit\nnever sent\n"
    )
    assert result.code == 0
    assert "Started a new conversation." in result.stderr
    assert "never sent" not in result.stdout
    assert stored_ids(tmp_path / "kamiya-bot.db")[USER_KEY] is None


async def test_chat_against_a_configured_kamiya_and_a_failure_exit_code(tmp_path, fake):
    config = tmp_path / "bot.toml"
    config.write_text(f'[kamiya]\nbase_url = "{fake.base_url}"\n', encoding="utf-8")
    fake.enqueue(Script(reply="Real **markdown** reply"), Script(status=402))
    result = await run(
        "chat", "--config", str(config), cwd=tmp_path, stdin="hi\nagain\n", KAMIYA_API_KEY=KEY
    )
    assert result.stdout.splitlines()[0] == "Real **markdown** reply"
    assert "credit is used up" in result.stderr
    assert result.code == 1
    assert KEY not in result.stdout + result.stderr


async def test_chat_without_a_key_says_how_to_get_going(tmp_path):
    result = await run("chat", cwd=tmp_path, stdin="hi\n")
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--offline" in result.stderr


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        (None, "no such file"),
        ("[kamiya]\nbogus = 1\n", "[kamiya] bogus: unknown key"),
        ("[kamiya\n", "invalid TOML"),
        ("", "no frontend configured"),
    ],
)
async def test_run_exits_2_with_one_line(tmp_path, config_text, message):
    config = tmp_path / "bot.toml"
    if config_text is not None:
        config.write_text(config_text, encoding="utf-8")
    result = await run("run", "--config", str(config), cwd=tmp_path)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "kamiya-bot.db").exists()


async def test_chat_exits_cleanly_and_quickly_on_sigterm(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        *command("chat", "--offline"),
        cwd=tmp_path,
        env=environ(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(b"hello\n")
    await proc.stdin.drain()
    async with asyncio.timeout(30):
        await proc.stdout.readline()  # it is up and has answered; stdin stays open
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(5):
        code = await proc.wait()
    assert time.monotonic() - sent < 5
    assert code == 0
    assert proc.stderr is not None
    assert b"Traceback" not in await proc.stderr.read()


async def test_check_reports_each_component_without_secrets(tmp_path, fake):
    config = tmp_path / "bot.toml"
    db = tmp_path / "check.db"
    config.write_text(
        f'[kamiya]\nbase_url = "{fake.base_url}"\napi_key = "{KEY}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{db}"\n',
        encoding="utf-8",
    )
    ok = await run("check", "--config", str(config), cwd=tmp_path)
    assert ok.code == 0, ok.stdout + ok.stderr
    lines = {line.split()[0]: line.split()[1] for line in ok.stdout.splitlines()}
    assert lines == {
        "config": "ok",
        "kamiya": "ok",
        "storage": "ok",
        "schema": "ok",
        "telegram": "skip",
        "discord": "skip",
    }
    bad = await run("check", "--config", str(config), cwd=tmp_path, KAMIYA_API_KEY="sk-wrong-key")
    assert bad.code == 1
    assert "kamiya    fail" in bad.stdout
    assert "rejected" in bad.stdout
    for output in (ok, bad):
        assert KEY not in output.stdout + output.stderr
        assert "sk-wrong-key" not in output.stdout + output.stderr


async def test_check_names_an_unreachable_database_and_kamiya(tmp_path):
    config = tmp_path / "bot.toml"
    config.write_text(
        '[kamiya]\nbase_url = "http://127.0.0.1:9"\napi_key = "sk-secret-value"\n'
        '[storage]\nurl = "postgresql+asyncpg://nobody:hunter2@127.0.0.1:9/none"\n',
        encoding="utf-8",
    )
    result = await run("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 1
    assert "kamiya    fail" in result.stdout
    assert "storage   fail" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert "sk-secret-value" not in result.stdout + result.stderr


async def test_offline_chat_in_a_terminal_streams_and_quits(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = command("chat", "--offline")
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        cwd=str(tmp_path),
        env=environ(),
        encoding="utf-8",
        timeout=20,
        dimensions=(40, 120),
    )
    try:
        child.expect("offline demo")
        child.expect("you>")
        child.sendline("hello from a pty")
        child.expect("(?i)offline")  # the fake's demo reply, rendered
        child.expect("you>")
        child.sendline("/reset")
        child.expect("Started a new conversation")
        child.expect("you>")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert stored_ids(tmp_path / "kamiya-bot.db")[USER_KEY] is None


async def test_ctrl_d_leaves_the_terminal_chat(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = command("chat", "--offline")
    child = pexpect.spawn(
        argv[0], argv[1:], cwd=str(tmp_path), env=environ(), encoding="utf-8", timeout=20
    )
    try:
        child.expect("you>")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


async def test_terminal_controls_switch_model_list_history_and_usage(tmp_path):
    script = (
        "hello server\n/model gpt-4\nhello model\n/system Be brief.\n/system\n"
        "/history\n/usage\n/model default\n/resume 9\n/quit\n"
    )
    result = await run("chat", "--offline", cwd=tmp_path, stdin=script)
    assert result.code == 0, result.stderr
    notes = result.stderr
    assert "Now using openai:gpt-4" in notes
    assert "System prompt set." in notes
    assert "Be brief." in notes
    assert "Your last conversations:" in notes
    assert "openai:gpt-4 · current" in notes
    assert "conversation" in notes
    assert "today 2 requests" in notes
    assert "Back to the default" in notes
    assert "/resume N" in notes
    assert "Traceback" not in notes


async def test_a_config_with_secrets_readable_by_others_gets_a_warning(tmp_path, fake):
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[kamiya]\nbase_url = "{fake.base_url}"\napi_key = "{KEY}"\n', encoding="utf-8"
    )
    config.chmod(0o644)
    result = await run("chat", "--config", str(config), cwd=tmp_path, stdin="/quit\n")
    assert result.code == 0, result.stderr
    assert "[kamiya] api_key" in result.stderr
    assert f"chmod 600 {config}" in result.stderr
    assert KEY not in result.stderr
    config.chmod(0o600)
    quiet = await run("chat", "--config", str(config), cwd=tmp_path, stdin="/quit\n")
    assert "chmod" not in quiet.stderr


async def test_a_20000_character_message_through_the_terminal_is_answered(tmp_path):
    odd = "e\u0301 \u200b\u202eRTL\u202c 👩‍👩‍👧 "
    message = (odd * (20_000 // len(odd) + 1))[:20_000]
    result = await run("chat", "--offline", cwd=tmp_path, stdin=message + "\n")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()
