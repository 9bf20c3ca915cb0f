"""``DiscordFrontend.healthy`` (what ``/healthz`` asks): up while the gateway serves, not after."""

from __future__ import annotations


async def test_healthy_while_the_gateway_is_connected_and_not_once_stopped(dc, bot):
    assert dc.connected
    assert bot.frontend.healthy()
    await bot.frontend.stop()
    assert not bot.frontend.healthy()
