"""The fake Discord behaves like Discord for a real discord.py ``Client`` and ``CommandTree``.

Every test drives it over loopback HTTP and a websocket with discord.py itself (raw aiohttp
only where the library guards a case client-side), so a behaviour proven here is one
discord.py sees the same way against Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import time
from typing import TYPE_CHECKING

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.discord import (
    ALICE,
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    THREAD_ID,
    Channel,
    FakeDiscord,
    Guild,
    Limits,
)
from tests.fakes.discord_gateway import MESSAGE_CONTENT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from tests.fakes.discord_payloads import JsonObject

TOKEN = "discord-test-token"


class Clock:
    """A clock the test moves by hand, so deadlines and token expiry need no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bot(discord.Client):
    """A minimal bot shaped like the project's: a tree synced in setup_hook, events recorded."""

    def __init__(
        self, *, intents: discord.Intents | None = None, sync_guild: int | None = None
    ) -> None:
        super().__init__(intents=intents or discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.sync_guild = sync_guild
        self.outcomes: asyncio.Queue[BaseException | None] = asyncio.Queue()
        self.messages: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.resumed = asyncio.Event()

    async def setup_hook(self) -> None:
        await self.tree.sync()
        if self.sync_guild is not None:
            await self.tree.sync(guild=discord.Object(self.sync_guild))

    async def on_message(self, message: discord.Message) -> None:
        if message.author != self.user:
            self.messages.put_nowait(message)

    async def on_resumed(self) -> None:
        self.resumed.set()

    def chat(self, body: Callable[[discord.Interaction[Bot], str], Awaitable[object]]) -> None:
        """Register ``/chat prompt:``; each run's error (or None) lands in ``outcomes``."""

        @self.tree.command(name="chat", description="Talk to Kamiya")
        async def chat(interaction: discord.Interaction[Bot], prompt: str) -> None:
            try:
                await body(interaction, prompt)
            except Exception as error:
                self.outcomes.put_nowait(error)
            else:
                self.outcomes.put_nowait(None)

    async def outcome(self) -> BaseException | None:
        async with asyncio.timeout(10):
            return await self.outcomes.get()

    async def next_message(self) -> discord.Message:
        async with asyncio.timeout(10):
            return await self.messages.get()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(TOKEN) as server:
        yield server


@contextlib.asynccontextmanager
async def online(
    bot: Bot, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch | None = None
) -> AsyncIterator[Bot]:
    """Log in, connect and wait for READY, as ``client.start`` would; close after.

    Points discord.py at the fake with ``patch_discord`` when given ``monkeypatch``, else
    with ``patched()`` for the block.
    """
    if monkeypatch is not None:
        fake.patch_discord(monkeypatch)
    with fake.patched() if monkeypatch is None else contextlib.nullcontext():
        await bot.login(TOKEN)
        task = asyncio.create_task(bot.connect(reconnect=True))
        try:
            async with asyncio.timeout(10):
                await bot.wait_until_ready()
            yield bot
        finally:
            await bot.close()
            await task


def text_channel(bot: Bot, channel_id: int = CHANNEL_ID) -> discord.TextChannel:
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_login_and_ready_show_the_guild_its_channel_and_thread(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with online(Bot(), fake, monkeypatch) as bot:
        assert bot.user is not None
        assert (bot.user.id, bot.application_id) == (BOT_ID, APP_ID)
        [guild] = bot.guilds
        assert guild.id == GUILD_ID
        assert text_channel(bot).name == "general"
        thread = bot.get_channel(THREAD_ID)
        assert isinstance(thread, discord.Thread)
        assert thread.parent_id == CHANNEL_ID
        assert fake.connected
    kinds = [call.kind for call in fake.calls]
    assert kinds[:3] == ["get_me", "application_info", "sync_commands"]
    assert (fake.gateway.identify_count, fake.gateway.resume_count) == (1, 0)


async def test_an_auto_sharded_client_asks_for_the_gateway_and_connects(
    fake: FakeDiscord,
) -> None:
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with fake.patched():
        await client.login(TOKEN)
        task = asyncio.create_task(client.connect(reconnect=True))
        try:
            async with asyncio.timeout(10):
                await client.wait_until_ready()
            assert (client.shard_count, [g.id for g in client.guilds]) == (1, [GUILD_ID])
        finally:
            await client.close()
            await task
    assert fake.calls_of("get_gateway_bot")[0].status == 200
    assert fake.gateway.session is not None
    assert fake.gateway.session.shard == [0, 1]


class ShardedBot(Bot, discord.AutoShardedClient):
    """``Bot`` on ``AutoShardedClient``: every shard the fake recommends, or ``shard_ids`` of
    ``shard_count`` (set after ``__init__``, which is where ``Bot`` builds its tree)."""

    def __init__(self, shard_ids: list[int] | None = None, shard_count: int | None = None) -> None:
        super().__init__()
        self.shard_ids = shard_ids
        if shard_count is not None:
            self.shard_count = shard_count

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between shards: the fake has no identify rate limit."""


SHARD_ONE_GUILD = GUILD_ID + (1 << 22)  # (id >> 22) % 2: GUILD_ID is on shard 0, this on 1
SHARD_ONE_CHANNEL = CHANNEL_ID + 1


def guilds_on_two_shards() -> tuple[Guild, ...]:
    return (
        Guild(GUILD_ID, "Shard Zero", (Channel(CHANNEL_ID, "general"),)),
        Guild(SHARD_ONE_GUILD, "Shard One", (Channel(SHARD_ONE_CHANNEL, "general"),)),
    )


def dispatched(fake: FakeDiscord, shard_id: int, event: str) -> list[JsonObject]:
    """The ``d`` of every ``event`` the session of ``shard_id`` was sent."""
    frames = (json.loads(frame) for _, frame in fake.gateway.sessions[shard_id].events)
    return [frame["d"] for frame in frames if frame["t"] == event]


async def test_gateway_bot_recommends_the_shard_count_and_each_shard_gets_its_guilds() -> None:
    async with FakeDiscord(TOKEN, guilds=guilds_on_two_shards(), shards=2) as fake:
        bot = ShardedBot()
        async with online(bot, fake):
            assert (bot.shard_count, sorted(bot.shards)) == (2, [0, 1])
            assert {g.id: g.shard_id for g in bot.guilds} == {GUILD_ID: 0, SHARD_ONE_GUILD: 1}
    assert fake.calls_of("get_gateway_bot")[0].status == 200
    assert {i: s.shard for i, s in fake.gateway.sessions.items()} == {0: [0, 2], 1: [1, 2]}
    for shard_id, guild_id in [(0, GUILD_ID), (1, SHARD_ONE_GUILD)]:
        [ready] = dispatched(fake, shard_id, "READY")
        assert [g["id"] for g in ready["guilds"]] == [str(guild_id)]
        assert [g["id"] for g in dispatched(fake, shard_id, "GUILD_CREATE")] == [str(guild_id)]


async def test_two_processes_with_one_shard_each_get_only_their_guilds_events() -> None:
    async with FakeDiscord(TOKEN, guilds=guilds_on_two_shards()) as fake:
        zero, one = ShardedBot([0], 2), ShardedBot([1], 2)
        zero.chat(lambda interaction, prompt: interaction.response.send_message(f"zero: {prompt}"))
        one.chat(lambda interaction, prompt: interaction.response.send_message(f"one: {prompt}"))
        async with online(zero, fake), online(one, fake):
            assert [g.id for g in zero.guilds] == [GUILD_ID]
            assert [g.id for g in one.guilds] == [SHARD_ONE_GUILD]
            fake.slash("chat", {"prompt": "a"}, guild_id=SHARD_ONE_GUILD)
            assert await one.outcome() is None
            fake.slash("chat", {"prompt": "b"}, guild_id=GUILD_ID)
            assert await zero.outcome() is None
            fake.slash("chat", {"prompt": "c"}, dm=True)  # DMs: shard 0, as on Discord
            assert await zero.outcome() is None
            fake.message(SHARD_ONE_CHANNEL, "hi", mentions_bot=True)
            assert (await one.next_message()).content.endswith("hi")
        assert (zero.outcomes.qsize(), one.outcomes.qsize(), zero.messages.qsize()) == (0, 0, 0)
    assert [m.content for m in fake.visible(SHARD_ONE_CHANNEL)] == ["one: a"]
    assert [m.content for m in fake.visible(CHANNEL_ID)] == ["zero: b"]
    assert len(dispatched(fake, 0, "INTERACTION_CREATE")) == 2
    assert len(dispatched(fake, 1, "INTERACTION_CREATE")) == 1


async def test_an_identify_with_an_invalid_shard_is_closed_4010(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.ws_url) as ws:
        await ws.receive_json()  # HELLO
        await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": 0, "shard": [2, 2]}})
        closed = await ws.receive()
    assert (closed.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4010)
    assert fake.gateway.sessions == {}


async def test_tree_sync_is_recorded_globally_and_per_guild(fake: FakeDiscord) -> None:
    bot = Bot(sync_guild=GUILD_ID)
    bot.chat(lambda interaction, prompt: interaction.response.send_message(prompt))
    async with online(bot, fake):
        fetched = await bot.tree.fetch_commands()
        again = await bot.tree.sync()
    assert [(s.guild_id, s.names) for s in fake.syncs] == [
        (None, ["chat"]),
        (GUILD_ID, []),
        (None, ["chat"]),
    ]
    [command] = fake.commands()
    assert (
        command["options"][0] | {"name": "prompt", "type": 3, "required": True}
        == (command["options"][0])
    )
    # Ids and versions are kept when a sync changes nothing, as on Discord.
    assert [c.id for c in fetched] == [c.id for c in again] == [int(command["id"])]
    assert fake.syncs[0].commands[0]["version"] == fake.syncs[2].commands[0]["version"]


async def test_slash_command_defers_in_time_edits_and_follows_up_in_order(
    fake: FakeDiscord,
) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"You said: {prompt}")
        await interaction.followup.send("And one more thing.")

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "hello"})
        assert await bot.outcome() is None
    [callback] = fake.calls_of("callback")
    assert callback.json == {"type": 5}
    assert callback.query == {"with_response": "1"}
    assert callback.at - inter.created_at < fake.response_deadline_s
    assert (inter.deferred, inter.ephemeral, inter.original) == (True, False, "You said: hello")
    assert [r.content for r in inter.original_history] == ["", "You said: hello"]
    assert [m.content for m in inter.followups] == ["And one more thing."]
    shown = fake.visible(CHANNEL_ID)
    assert [(m.kind, m.content) for m in shown] == [
        ("original", "You said: hello"),
        ("followup", "And one more thing."),
    ]
    assert shown[0].id < shown[1].id


async def test_slash_commands_work_in_dms(fake: FakeDiscord) -> None:
    bot = Bot()
    bot.chat(lambda interaction, prompt: interaction.response.send_message(f"dm: {prompt}"))
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "hi"}, dm=True)
        assert await bot.outcome() is None
    assert (inter.guild_id, inter.payload["context"]) == (None, 1)
    assert [m.content for m in fake.visible(inter.channel_id)] == ["dm: hi"]
    assert fake.visible(CHANNEL_ID) == []


async def test_first_followup_after_a_deferral_fills_the_thinking_message(
    fake: FakeDiscord,
) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        first = await interaction.followup.send("first", wait=True)
        second = await interaction.followup.send("second", wait=True)
        assert first.id != second.id

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        assert await bot.outcome() is None
    assert (inter.original, inter.ephemeral) == ("first", True)
    assert [m.content for m in inter.followups] == ["second"]
    # The deferral was ephemeral, so is the message it became; later follow-ups are not.
    assert [m.content for m in fake.visible(CHANNEL_ID)] == ["second"]
    everything = fake.visible(CHANNEL_ID, include_ephemeral=True)
    assert [m.content for m in everything] == ["first", "second"]


async def test_content_over_2000_characters_is_invalid_form_body(fake: FakeDiscord) -> None:
    errors: list[discord.HTTPException] = []

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        try:
            await interaction.edit_original_response(content="x" * 2001)
        except discord.HTTPException as error:
            errors.append(error)
        # Discord counts characters, not UTF-16 units: 2000 emoji fit.
        await interaction.edit_original_response(content="😀" * 2000)

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        assert await bot.outcome() is None
    [error] = errors
    assert (type(error), error.status, error.code) == (discord.HTTPException, 400, 50035)
    assert "In content: Must be 2000 or fewer in length." in error.text
    assert inter.original == "😀" * 2000
    refused = fake.calls_of("edit_original")[0]
    assert (refused.status, refused.code) == (400, 50035)


async def test_empty_messages_are_refused(fake: FakeDiscord) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="")

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        fake.slash("chat", {"prompt": "x"})
        error = await bot.outcome()
        with pytest.raises(discord.HTTPException) as sent:
            await text_channel(bot).send()
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code, error.text) == (400, 50006, "Cannot send an empty message")
    assert (sent.value.status, sent.value.code) == (400, 50006)
    assert fake.channel_messages(CHANNEL_ID) == []


async def test_allowed_mentions_none_pings_nobody_but_defaults_ping_everyone(
    fake: FakeDiscord,
) -> None:
    text = f"@everyone look, <@{ALICE.id}>"
    async with online(Bot(), fake) as bot:
        channel = text_channel(bot)
        quiet = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        await quiet.edit(content=text + "!", allowed_mentions=discord.AllowedMentions.none())
        assert fake.pings == []
        loud = await channel.send(text)
        users_only = discord.AllowedMentions(everyone=False, users=True)
        await loud.edit(content=text + "?", allowed_mentions=users_only)
    assert quiet.mention_everyone is False
    assert loud.mention_everyone is True
    assert [(p.message_id, p.everyone, p.users, p.notified) for p in fake.pings] == [
        (loud.id, True, (ALICE.id,), True),
        (loud.id, False, (ALICE.id,), False),  # an edit highlights, it does not notify
    ]
    assert fake.messages[quiet.id].history[0].allowed_mentions == {"parse": []}


async def test_a_forced_429_with_via_is_retried_by_discord_py(fake: FakeDiscord) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="after the wait")

    bot = Bot()
    bot.chat(body)
    fake.fail_next("PATCH", "/webhooks/*/messages/@original", status=429, retry_after=0.05)
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        assert (await fake.wait_for_call("edit_original", status=429)).code is None
        assert await bot.outcome() is None
    refused, accepted = fake.calls_of("edit_original")
    assert (refused.status, accepted.status, fake.count_429) == (429, 200, 1)
    assert accepted.at - refused.at >= 0.04
    assert inter.original == "after the wait"


async def test_a_429_without_via_is_an_http_exception(fake: FakeDiscord) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="never shown")

    bot = Bot()
    bot.chat(body)
    fake.fail_next("PATCH", "edit_original", status=429, via=False)
    async with online(bot, fake):
        fake.slash("chat", {"prompt": "x"})
        error = await bot.outcome()
    assert isinstance(error, discord.HTTPException)
    assert error.status == 429


async def test_rate_limits_answer_429_and_discord_py_waits_them_out() -> None:
    limits = Limits(
        per_message_edits=2,
        per_message_window_s=0.2,
        per_channel_creates=2,
        per_channel_window_s=0.2,
    )

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        for n in range(3):
            await interaction.edit_original_response(content=f"part {n}")

    bot = Bot()
    bot.chat(body)
    async with FakeDiscord(TOKEN, limits=limits) as fake, online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        assert await bot.outcome() is None
        for n in range(3):
            await text_channel(bot).send(f"message {n}")
    assert [c.status for c in fake.calls_of("edit_original")] == [200, 200, 429, 200]
    assert [c.status for c in fake.calls_of("send_message")] == [200, 200, 429, 200]
    assert inter.original == "part 2"
    assert [m.content for m in fake.channel_messages(CHANNEL_ID)][-1] == "message 2"
    assert fake.count_429 == 2


async def test_rate_limit_headers_and_429_body_are_discords(clock: Clock) -> None:
    limits = Limits(per_channel_creates=1, per_channel_window_s=5.0, headers=True)
    url_path = f"/api/v10/channels/{CHANNEL_ID}/messages"
    async with (
        FakeDiscord(TOKEN, limits=limits, clock=clock) as fake,
        aiohttp.ClientSession(fake.base_url, headers={"Authorization": f"Bot {TOKEN}"}) as http,
    ):
        first = await http.post(url_path, json={"content": "one"})
        second = await http.post(url_path, json={"content": "two"})
        clock.now += 5.0
        third = await http.post(url_path, json={"content": "three"})
        body = json.loads(await second.text())
    assert first.status == 200
    assert first.headers["Content-Type"] == "application/json"
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == (
        "1",
        "0",
    )
    assert second.status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 5.0, "global": False}
    assert second.headers["Via"] == "1.1 google"
    assert second.headers["X-RateLimit-Scope"] == "user"
    assert second.headers["Retry-After"] == "5"
    assert third.status == 200


async def test_an_expired_interaction_token_is_401_invalid_webhook_token(clock: Clock) -> None:
    gate = asyncio.Event()

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        await gate.wait()
        await interaction.edit_original_response(content="too late")

    bot = Bot()
    bot.chat(body)
    async with FakeDiscord(TOKEN, token_ttl_s=900, clock=clock) as fake, online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        await fake.wait_for(lambda _: inter.deferred)
        clock.now += 900.0
        gate.set()
        error = await bot.outcome()
    # Not NotFound nor Forbidden: discord.py maps only 403/404 to subclasses.
    assert type(error) is discord.HTTPException
    assert (error.status, error.code, error.text) == (401, 50027, "Invalid Webhook Token")
    assert inter.original == ""


async def test_a_response_after_the_deadline_is_unknown_interaction(clock: Clock) -> None:
    gate = asyncio.Event()

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await gate.wait()
        await interaction.response.defer()

    bot = Bot()
    bot.chat(body)
    async with FakeDiscord(TOKEN, clock=clock) as fake, online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        clock.now += 3.01
        gate.set()
        error = await bot.outcome()
    assert isinstance(error, discord.NotFound)
    assert (error.status, error.code, error.text) == (404, 10062, "Unknown interaction")
    assert not inter.acknowledged


async def test_a_second_initial_response_is_already_acknowledged(fake: FakeDiscord) -> None:
    seen: list[discord.Interaction[Bot]] = []

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        seen.append(interaction)
        await interaction.response.send_message("first")

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        inter = fake.slash("chat", {"prompt": "x"})
        assert await bot.outcome() is None
        # discord.py refuses a second response on the same object by itself...
        with pytest.raises(discord.InteractionResponded):
            await seen[0].response.send_message("second")
        # ...so answer through a second Interaction built from the same payload.
        twin = discord.Interaction(data=inter.payload, state=bot._connection)  # type: ignore[arg-type]
        with pytest.raises(discord.HTTPException) as caught:
            await twin.response.send_message("second")
    assert (caught.value.status, caught.value.code) == (400, 40060)
    assert caught.value.text == "Interaction has already been acknowledged."
    assert (inter.response_type, inter.original) == (4, "first")


async def test_a_reply_in_flight_survives_a_gateway_reconnect(fake: FakeDiscord) -> None:
    gate = asyncio.Event()

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.defer()
        await gate.wait()
        await interaction.edit_original_response(content=f"answer to {prompt}")

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        first = fake.slash("chat", {"prompt": "one"})
        await fake.wait_for(lambda _: first.deferred)
        await fake.disconnect()
        second = fake.slash("chat", {"prompt": "two"})  # missed, so replayed on RESUME
        async with asyncio.timeout(10):
            await bot.resumed.wait()
        await fake.wait_for(lambda _: second.deferred)
        gate.set()
        assert [await bot.outcome(), await bot.outcome()] == [None, None]
    assert [m.content for m in fake.visible(CHANNEL_ID)] == ["answer to one", "answer to two"]
    assert (fake.gateway.identify_count, fake.gateway.resume_count) == (1, 1)
    replayed = [f.t for f in fake.gateway.frames if f.t in ("INTERACTION_CREATE", "RESUMED")]
    assert replayed == ["INTERACTION_CREATE", "INTERACTION_CREATE", "RESUMED"]


async def test_an_unresumable_disconnect_makes_discord_py_identify_again(
    fake: FakeDiscord,
) -> None:
    class Eager(Bot):
        async def before_identify_hook(
            self, shard_id: int | None, *, initial: bool = False
        ) -> None:
            """discord.py waits 5 s before identifying again; nothing to pace here."""

    async with online(Eager(), fake) as bot:
        await fake.disconnect(resumable=False)
        await fake.wait_for(lambda f: f.gateway.identify_count == 2 and f.connected)
        assert bot.get_channel(CHANNEL_ID) is not None
    assert fake.gateway.resume_count == 0


async def test_heartbeats_are_acknowledged() -> None:
    async with FakeDiscord(TOKEN, heartbeat_ms=20) as fake, online(Bot(), fake) as bot:
        await fake.wait_for(lambda f: f.gateway.heartbeat_count >= 4)
        assert math.isfinite(bot.latency)


async def test_message_create_reaches_on_message_with_content_only_when_mentioned(
    fake: FakeDiscord,
) -> None:
    async with online(Bot(), fake) as bot:
        fake.message(CHANNEL_ID, "chatter")
        chatter = await bot.next_message()
        fake.message(CHANNEL_ID, "hello there", mentions_bot=True)
        mention = await bot.next_message()
        await mention.reply("hi!", mention_author=False)
        fake.dm("psst")
        private = await bot.next_message()
        await private.channel.send("dm reply")
    assert (chatter.content, chatter.author.id) == ("", ALICE.id)  # no message_content intent
    assert mention.content == f"<@{BOT_ID}> hello there"
    assert bot.user in mention.mentions
    assert isinstance(private.channel, discord.DMChannel)
    assert private.content == "psst"
    [reply] = fake.channel_messages(CHANNEL_ID)
    assert (reply.content, reply.reply_to) == ("hi!", mention.id)
    assert [m.content for m in fake.channel_messages(private.channel.id)] == ["dm reply"]
    assert fake.pings == []


async def test_message_content_intent_shows_all_content_unless_disallowed(
    fake: FakeDiscord,
) -> None:
    intents = discord.Intents.default()
    intents.message_content = True
    async with online(Bot(intents=intents), fake) as bot:
        fake.message(CHANNEL_ID, "chatter")
        assert (await bot.next_message()).content == "chatter"
    async with FakeDiscord(TOKEN, disallowed_intents=MESSAGE_CONTENT) as strict:
        bot = Bot(intents=intents)
        async with strict.patched():
            await bot.login(TOKEN)
            with pytest.raises(discord.PrivilegedIntentsRequired):
                async with asyncio.timeout(10):
                    await bot.connect(reconnect=True)
            await bot.close()


async def test_a_wrong_token_is_login_failure_and_gateway_close_4004(fake: FakeDiscord) -> None:
    bot, before = Bot(), discord.http.Route.BASE
    async with fake.patched():
        during = discord.http.Route.BASE
        with pytest.raises(discord.LoginFailure):
            await bot.login("not-the-token")
    await bot.close()
    assert (during, discord.http.Route.BASE) == (f"{fake.base_url}/api/v10", before)
    assert fake.calls_of("get_me")[0].status == 401
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.ws_url) as ws:
        hello = await ws.receive_json()
        await ws.send_json({"op": 2, "d": {"token": "not-the-token", "intents": 0}})
        closed = await ws.receive()
    assert hello["op"] == 10
    assert (closed.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4004)


async def test_error_bodies_and_unknown_routes_are_discords(fake: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {TOKEN}"}
    async with aiohttp.ClientSession(fake.base_url) as http:
        wrong = await http.get("/api/v10/users/@me", headers={"Authorization": "Bot nope"})
        unknown = await http.get("/api/v10/nowhere", headers=auth)
        message = await http.get(f"/api/v10/channels/{CHANNEL_ID}/messages/1", headers=auth)
        long = await http.post(
            f"/api/v10/channels/{CHANNEL_ID}/messages", json={"content": "x" * 2001}, headers=auth
        )
        fake.fail_next("POST", "send_message", status=500)
        failed = await http.post(
            f"/api/v10/channels/{CHANNEL_ID}/messages", json={"content": "x"}, headers=auth
        )
        bodies = [json.loads(await r.text()) for r in (wrong, unknown, message, long, failed)]
    assert [r.status for r in (wrong, unknown, message, long, failed)] == [401, 404, 404, 400, 500]
    assert bodies == [
        {"message": "401: Unauthorized", "code": 0},
        {"message": "404: Not Found", "code": 0},
        {"message": "Unknown Message", "code": 10008},
        {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 2000 or fewer in length.",
                        }
                    ]
                }
            },
        },
        {"message": "500: Internal Server Error", "code": 0},
    ]


async def test_threads_typing_files_and_unknown_commands(fake: FakeDiscord) -> None:
    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.send_message("on it", ephemeral=True)
        channel = interaction.channel
        assert isinstance(channel, discord.Thread)
        async with channel.typing():
            note = discord.File(io.BytesIO(b"hello"), filename="reply.txt")
            await channel.send(prompt, file=note)

    bot = Bot()
    bot.chat(body)
    async with online(bot, fake):
        with pytest.raises(LookupError, match="not registered"):
            fake.slash("nope")
        inter = fake.slash("chat", {"prompt": "in a thread"}, thread=True)
        assert await bot.outcome() is None
    assert (inter.channel_id, inter.ephemeral) == (THREAD_ID, True)
    [sent] = fake.channel_messages(THREAD_ID)
    assert sent.content == "in a thread"
    assert [(a["filename"], a["size"]) for a in sent.attachments] == [("reply.txt", 5)]
    assert fake.calls_of("send_message")[0].files == ("reply.txt",)
    assert [channel for channel, _ in fake.typing] == [THREAD_ID]


async def test_autocomplete_choices_and_button_clicks(fake: FakeDiscord) -> None:
    bot = Bot()
    clicked = asyncio.Event()

    async def fruits(
        interaction: discord.Interaction[Bot], current: str
    ) -> list[app_commands.Choice[str]]:
        names = ["apple", "apricot", "banana"]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    class Again(discord.ui.View):
        @discord.ui.button(label="Again", custom_id="again")
        async def again(
            self, interaction: discord.Interaction[Bot], button: discord.ui.Button[Again]
        ) -> None:
            await interaction.response.edit_message(content="clicked", view=None)
            clicked.set()

    @bot.tree.command(name="pick", description="Pick a fruit")
    @app_commands.autocomplete(fruit=fruits)
    async def pick(interaction: discord.Interaction[Bot], fruit: str) -> None:
        await interaction.response.send_message(f"picked {fruit}", view=Again())

    async with online(bot, fake):
        typing = fake.autocomplete("pick", {"fruit": "ap"}, focused="fruit")
        await fake.wait_for(lambda _: typing.acknowledged)
        chosen = fake.slash("pick", {"fruit": "apple"})
        await fake.wait_for(lambda _: chosen.original == "picked apple")
        assert chosen.original_message is not None
        click = fake.click(chosen.original_message, "again")
        async with asyncio.timeout(10):
            await clicked.wait()
    assert typing.choices == [
        {"name": "apple", "value": "apple"},
        {"name": "apricot", "value": "apricot"},
    ]
    assert (click.response_type, chosen.original) == (7, "clicked")


async def test_components_are_checked_stored_and_returned(fake: FakeDiscord) -> None:
    def view(*custom_ids: str, label: str = "Go") -> discord.ui.View:
        built = discord.ui.View(timeout=None)
        for custom_id in custom_ids:
            built.add_item(discord.ui.Button(label=label, custom_id=custom_id))
        return built

    bot = Bot()
    async with online(bot, fake):
        channel = text_channel(bot)
        sent = await channel.send("with a button", view=view("a" * 100))
        errors = []
        for bad in (view("a" * 101), view("x", label="l" * 81), view("")):
            with pytest.raises(discord.HTTPException) as refused:
                await channel.send("refused", view=bad)
            errors.append(refused.value)
        fetched = await channel.fetch_message(sent.id)
        await sent.edit(view=None)
    assert [(e.status, e.code) for e in errors] == [(400, 50035)] * 3
    assert "In components.0.components.0.custom_id: Must be between 1 and 100" in errors[0].text
    assert "In components.0.components.0.label: Must be 80 or fewer" in errors[1].text
    [row] = fetched.components
    assert isinstance(row, discord.ActionRow)
    assert [getattr(b, "custom_id", None) for b in row.children] == ["a" * 100]
    [message] = fake.channel_messages(CHANNEL_ID)
    assert message.buttons == []
    assert [r.buttons for r in message.history] == [("a" * 100,), ()]


async def test_responses_can_be_edited_through_the_channel_unless_ephemeral(
    clock: Clock,
) -> None:
    bot = Bot()
    outcomes: list[str] = []

    async def body(interaction: discord.Interaction[Bot], prompt: str) -> None:
        await interaction.response.send_message(prompt, ephemeral=prompt == "secret")
        original = await interaction.original_response()
        clock.now += 901  # the token is gone; the channel route does not need it
        partial = text_channel(bot).get_partial_message(original.id)
        try:
            await partial.edit(content=f"{prompt}, edited")
        except discord.NotFound as error:
            outcomes.append(f"{prompt}: {error.code}")
        else:
            outcomes.append(f"{prompt}: edited")

    bot.chat(body)
    fake = FakeDiscord(TOKEN, clock=clock)
    async with fake, online(bot, fake):
        public = fake.slash("chat", {"prompt": "public"})
        assert await bot.outcome() is None
        fake.slash("chat", {"prompt": "secret"})
        assert await bot.outcome() is None
    assert outcomes == ["public: edited", "secret: 10008"]
    assert public.original == "public, edited"


async def test_a_click_needs_a_shown_button_unless_the_client_is_behind(fake: FakeDiscord) -> None:
    bot = Bot()
    presses: list[tuple[str, int]] = []

    @bot.event
    async def on_interaction(interaction: discord.Interaction[Bot]) -> None:
        data: Mapping[str, object] = interaction.data or {}
        assert interaction.message is not None
        presses.append((str(data.get("custom_id")), len(interaction.message.components)))
        await interaction.response.send_message("pressed", ephemeral=True)

    async with online(bot, fake):
        channel = text_channel(bot)
        button = discord.ui.Button[discord.ui.View](label="Go", custom_id="go")
        sent = await channel.send("x", view=discord.ui.View(timeout=None).add_item(button))
        [message] = fake.channel_messages(CHANNEL_ID)
        shown = fake.click(message, "go", locale="zh-CN")
        await fake.wait_for(lambda _: shown.acknowledged)
        await sent.edit(view=None)
        with pytest.raises(LookupError, match="shows no button 'go'"):
            fake.click(message, "go")
        behind = fake.click(message, "go", stale_client=True)
        await fake.wait_for(lambda _: behind.acknowledged)
        with pytest.raises(LookupError):
            fake.click(message, "never", stale_client=True)
    # Discord sends the message as it is now: the button pressed late is no longer on it.
    assert presses == [("go", 1), ("go", 0)]
    assert shown.payload["locale"] == "zh-CN"


async def test_autocomplete_answers_are_checked(fake: FakeDiscord) -> None:
    bot = Bot()
    answers = {
        "many": [app_commands.Choice(name=f"n{i}", value=f"v{i}") for i in range(26)],
        "long": [app_commands.Choice(name="n" * 101, value="v")],
        "fine": [app_commands.Choice(name="n" * 100, value="v" * 100)],
    }

    async def complete(
        interaction: discord.Interaction[Bot], current: str
    ) -> list[app_commands.Choice[str]]:
        return answers[current]

    @bot.tree.command(name="pick", description="Pick")
    @app_commands.autocomplete(thing=complete)
    async def pick(interaction: discord.Interaction[Bot], thing: str) -> None:
        await interaction.response.send_message(thing)

    async with online(bot, fake):
        typed = [fake.autocomplete("pick", {"thing": t}, focused="thing") for t in answers]
        await fake.wait_for(lambda f: len(f.calls_of("callback")) == 3)
    assert [t.acknowledged for t in typed] == [False, False, True]
    assert [c.code for c in fake.calls_of("callback")] == [50035, 50035, None]
    assert typed[2].choices == [{"name": "n" * 100, "value": "v" * 100}]


async def test_stop_is_quick_with_a_connected_bot() -> None:
    fake = FakeDiscord(TOKEN)
    await fake.start()
    bot = Bot()
    async with fake.patched():
        await bot.login(TOKEN)
        task = asyncio.create_task(bot.connect(reconnect=False))
        async with asyncio.timeout(10):
            await bot.wait_until_ready()
        started = time.monotonic()
        await fake.stop()
        took = time.monotonic() - started
        # The 1001 "going away" makes discord.py reconnect, which the closed port refuses.
        with pytest.raises(aiohttp.ClientConnectorError):
            await task
    assert took < 1.0


async def test_a_raw_interaction_reaches_the_client_as_sent_and_can_be_answered(
    fake: FakeDiscord,
) -> None:
    bot = Bot()
    seen: asyncio.Queue[discord.Interaction[Bot]] = asyncio.Queue()

    @bot.event
    async def on_interaction(interaction: discord.Interaction[Bot]) -> None:
        seen.put_nowait(interaction)
        await interaction.response.send_message("odd", ephemeral=True)

    async with online(bot, fake):
        raw = fake.interact(3, {"custom_id": "\u202e" * 3, "component_type": 99})
        async with asyncio.timeout(10):
            got = await seen.get()
        await fake.wait_for(lambda _: raw.acknowledged)
    assert got.type is discord.InteractionType.component
    assert got.data == {"custom_id": "\u202e" * 3, "component_type": 99}
    assert raw.payload["data"] == got.data
    assert (raw.ephemeral, raw.original) == (True, "odd")
    payload = fake.message_payload(raw.original_message) if raw.original_message else {}
    assert payload["content"] == "odd"
