"""The runner: frontends start, a real SIGTERM/SIGINT stops them in reverse order, quickly."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from bots.runner import NoFrontend, available_frontends, select_frontends, serve, stop_on_signals
from core.config import load_config
from tests.waiting import until


class Dummy:
    def __init__(self, name: str, log: list[str], *, fail: bool = False, hang: bool = False):
        self.name = name
        self._log = log
        self._fail = fail
        self._hang = hang

    async def start(self) -> None:
        if self._fail:
            raise RuntimeError(f"{self.name} cannot start")
        self._log.append(f"start {self.name}")

    async def stop(self) -> None:
        self._log.append(f"stop {self.name}")
        if self._hang:
            await asyncio.Event().wait()

    def healthy(self) -> bool:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_every_frontend_in_reverse_order(sig):
    log: list[str] = []
    stop = asyncio.Event()
    with stop_on_signals(stop.set):
        task = asyncio.create_task(serve([Dummy("a", log), Dummy("b", log)], stop))
        await until(lambda: not (len(log) < 2))
        os.kill(os.getpid(), sig)
        async with asyncio.timeout(5):
            await task
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_a_frontend_that_hangs_on_stop_is_abandoned_in_time(monkeypatch):
    monkeypatch.setattr("bots.runner.STOP_MARGIN_S", 0.1)
    log: list[str] = []
    stop = asyncio.Event()
    stop.set()
    began = time.monotonic()
    await serve([Dummy("a", log), Dummy("b", log, hang=True)], stop, grace_s=0.1)
    assert log == ["start a", "start b", "stop b", "stop a"]
    assert time.monotonic() - began < 4


async def test_a_failed_start_stops_what_was_started():
    log: list[str] = []
    with pytest.raises(RuntimeError, match="cannot start"):
        await serve([Dummy("a", log), Dummy("b", log, fail=True)], asyncio.Event())
    assert log == ["start a", "stop a"]


def test_no_token_means_no_frontend():
    with pytest.raises(NoFrontend, match="no frontend configured"):
        select_frontends(load_config(None, {}))


def test_a_token_without_a_shipped_frontend_is_named():
    config = load_config(None, {"DISCORD_BOT_TOKEN": "x"})
    if "discord" in available_frontends():
        assert len(select_frontends(config)) == 1
    else:
        with pytest.raises(NoFrontend, match="discord"):
            select_frontends(config)
