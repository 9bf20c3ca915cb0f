"""The README's two commands stay true: CI runs exactly the test command the README gives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_install_and_test_commands():
    install, test = readme_commands()[:2]
    assert "pip install -e ." in install
    assert "kamiya-bot chat --offline --config config.example.toml" in install
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    test = readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci
