"""KamiyaClient against the fake Kamiya on loopback: every rule and every fault, typed."""

from __future__ import annotations

import importlib.util
import logging
import socket
from contextlib import aclosing
from unittest.mock import ANY

import httpx
import pytest

from core.client import KamiyaClient, can_block, http_client
from core.errors import (
    BadKey,
    BlockingNotSupported,
    ConversationNotFound,
    IncompleteStream,
    KamiyaError,
    MalformedEvent,
    NoPermission,
    OutOfCredit,
    RateLimited,
    UpstreamFailure,
)
from core.events import Final, TextDelta
from core.fake_kamiya import Script
from tests.conftest import KEY


async def turn(client: KamiyaClient, content: str, cid: str | None = None) -> list[object]:
    async with aclosing(client.conversation(content, cid)) as events:
        return [event async for event in events]


async def test_first_message_sends_no_id_and_ends_with_kamiya_info(client, fake):
    fake.enqueue(Script(reply="Hello there, friend", chunk_chars=3))
    events = await turn(client, "hi")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    final = events[-1]
    assert isinstance(final, Final)
    assert "".join(deltas) == "Hello there, friend" == final.full_content
    assert len(deltas) > 1
    assert fake.requests[0].json == {"content": "hi"}
    assert fake.requests[0].authorized


async def test_later_message_carries_the_id_it_was_given(client, fake):
    first = (await turn(client, "one"))[-1]
    assert isinstance(first, Final)
    second = (await turn(client, "two", first.conversation_id))[-1]
    assert isinstance(second, Final)
    assert fake.requests[1].json == {"content": "two", "conversationId": first.conversation_id}
    assert second.conversation_id == first.conversation_id


async def test_full_content_differing_from_deltas_wins(client, fake):
    fake.enqueue(Script(reply="partial words", full_content="The billed, whole reply."))
    final = (await turn(client, "x"))[-1]
    assert isinstance(final, Final)
    assert final.full_content == "The billed, whole reply."


async def test_different_conversation_id_is_reported_as_is(client, fake):
    fake.enqueue(Script(conversation_id="brand-new-id"))
    final = (await turn(client, "x"))[-1]
    assert isinstance(final, Final)
    assert final.conversation_id == "brand-new-id"


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("split", [None, 1, 3, 7])
async def test_utf8_split_anywhere_and_every_line_ending(client, fake, eol, split):
    text = "héllo 你好 🙂 — ok"
    fake.enqueue(Script(reply=text, chunk_chars=2, split_bytes=split, line_ending=eol))
    events = await turn(client, "x")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    final = events[-1]
    assert isinstance(final, Final)
    assert final.full_content == text


async def test_comments_unknown_fields_and_multiline_data_are_tolerated(client, fake):
    fake.enqueue(Script(reply="tolerant parser", comments=True))
    final = (await turn(client, "x"))[-1]
    assert isinstance(final, Final)
    assert final.full_content == "tolerant parser"


@pytest.mark.parametrize(
    ("script", "error", "status"),
    [
        (Script(status=402), OutOfCredit, 402),
        (Script(status=403), NoPermission, 403),
        (Script(status=429, headers={"Retry-After": "7"}), RateLimited, 429),
        (Script(status=500), UpstreamFailure, 500),
        (Script(status=502, body="<html>bad gateway</html>"), UpstreamFailure, 502),
        (Script(status=503, body={"message": "maintenance"}), UpstreamFailure, 503),
    ],
)
async def test_status_codes_become_typed_errors(client, fake, script, error, status):
    fake.enqueue(script)
    with pytest.raises(error) as info:
        await turn(client, "x")
    assert info.value.status == status
    assert "\n" not in info.value.message


async def test_rate_limit_carries_retry_after_from_header_or_body(client, fake):
    fake.enqueue(Script(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as header:
        await turn(client, "x")
    assert header.value.retry_after == 7
    fake.enqueue(Script(status=429, body={"error": {"message": "slow"}, "retry_after": 2.5}))
    with pytest.raises(RateLimited) as body:
        await turn(client, "x")
    assert body.value.retry_after == 2.5


async def test_wrong_key_is_bad_key(fake, http):
    client = KamiyaClient(http, base_url=fake.base_url, api_key="sk-wrong")
    with pytest.raises(BadKey) as info:
        await turn(client, "x")
    assert info.value.status == 401


async def test_unknown_conversation_id_is_conversation_not_found(client, fake):
    first = (await turn(client, "x"))[-1]
    assert isinstance(first, Final)
    fake.forget(first.conversation_id)
    with pytest.raises(ConversationNotFound):
        await turn(client, "y", first.conversation_id)


async def test_404_without_an_id_is_an_upstream_failure(client, fake):
    fake.enqueue(Script(status=404))
    with pytest.raises(UpstreamFailure):
        await turn(client, "x")


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (Script(reply="a long enough reply", chunk_chars=2, drop_after=3), IncompleteStream),
        (Script(reply="no done here", no_done=True), IncompleteStream),
        (Script(reply="done but no info", no_kamiya_info=True), IncompleteStream),
        (Script(reply="bad event", malformed=True), MalformedEvent),
    ],
)
async def test_broken_streams_raise_after_the_text_already_sent(client, fake, script, error):
    fake.enqueue(script)
    seen: list[str] = []

    async def consume() -> None:
        async with aclosing(client.conversation("x")) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    seen.append(event.text)

    with pytest.raises(error):
        await consume()
    assert seen  # text arrived before the fault; a frontend keeps it


async def test_unreachable_server_is_upstream_failure(http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KamiyaClient(http, base_url=f"http://127.0.0.1:{port}", api_key=KEY)
    with pytest.raises(UpstreamFailure, match="could not reach"):
        await turn(client, "x")


async def test_stalled_stream_times_out_as_incomplete(fake):
    fake.enqueue(Script(reply="slow reply", chunk_chars=2, delay_s=2.0))
    async with http_client(httpx.Timeout(0.3)) as http:
        client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
        with pytest.raises(IncompleteStream, match="timed out"):
            await turn(client, "x")


async def test_a_slow_stream_that_keeps_sending_is_not_a_stall(fake):
    # The read timeout bounds each silence, not the reply: 8 pieces 0.2 s apart outlast a 0.5 s
    # timeout twice over (the watch that replaced aiohttp's per-read timer counts bytes).
    fake.enqueue(Script(reply="a slow but steady reply", chunk_chars=3, delay_s=0.2))
    async with http_client(httpx.Timeout(0.5)) as http:
        client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
        events = await turn(client, "x")
    assert events[-1] == Final(conversation_id=ANY, full_content="a slow but steady reply")


async def test_after_a_stall_the_next_request_gets_a_fresh_connection(fake):
    fake.enqueue(Script(reply="slow reply", chunk_chars=2, delay_s=2.0), Script(reply="fine"))
    async with http_client(httpx.Timeout(0.3)) as http:
        client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
        with pytest.raises(IncompleteStream, match="timed out"):
            await turn(client, "x")
        events = await turn(client, "y")
    assert events[-1] == Final(conversation_id=ANY, full_content="fine")


async def test_streamed_completion_for_any_model(client, fake):
    fake.enqueue(Script(reply="streamed answer"), endpoint="completions")
    messages = [{"role": "user", "content": "hi"}]
    async with aclosing(client.stream_completion(messages, "openai:gpt-4")) as events:
        deltas = [e.text async for e in events]
    assert "".join(deltas) == "streamed answer"
    assert fake.requests[0].json["stream"] is True
    assert fake.requests[0].json["model"] == "openai:gpt-4"


async def test_streamed_completion_without_done_is_incomplete(client, fake):
    fake.enqueue(Script(reply="cut", no_done=True), endpoint="completions")
    with pytest.raises(IncompleteStream):
        async with aclosing(client.stream_completion([], "openai:gpt-4")) as events:
            _ = [e async for e in events]


async def test_blocking_completion_for_gpt35(client, fake):
    fake.enqueue(Script(reply="a blocking answer"), endpoint="completions")
    text = await client.complete([{"role": "user", "content": "hi"}], "openai:gpt-3.5-turbo")
    assert text == "a blocking answer"
    assert "stream" not in fake.requests[0].json


async def test_blocking_other_models_is_refused_before_any_request(client, fake):
    with pytest.raises(BlockingNotSupported):
        await client.complete([{"role": "user", "content": "hi"}], "anthropic:claude-1")
    assert fake.requests == []


def test_only_gpt35_models_may_block():
    assert can_block("openai:gpt-3.5-turbo")
    assert can_block("gpt-3.5-turbo-0613")
    assert not can_block("openai:gpt-4")
    assert not can_block("anthropic:claude-1")


async def test_model_without_permission_is_no_permission(fake, http):
    client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
    with pytest.raises(NoPermission):
        async with aclosing(client.stream_completion([], "anthropic:claude-1")) as events:
            _ = [e async for e in events]


async def test_key_never_appears_in_errors_reprs_or_logs(fake, http, caplog):
    caplog.set_level(logging.DEBUG)
    client = KamiyaClient(http, base_url=fake.base_url, api_key=KEY)
    assert KEY not in repr(client)
    echo = {"error": {"message": f"key {KEY} is out of credit", "code": 402}}
    fake.enqueue(Script(status=402, body=echo), Script(status=500, body=f"boom {KEY}"))
    errors: list[KamiyaError] = []
    for _ in range(2):
        with pytest.raises(KamiyaError) as info:
            await turn(client, "x")
        errors.append(info.value)
    wrong = KamiyaClient(http, base_url=fake.base_url, api_key=KEY + "-wrong")
    with pytest.raises(BadKey) as bad:
        await turn(wrong, "x")
    errors.append(bad.value)
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in error.message
    assert KEY not in caplog.text


def test_sniffio_is_installed_for_httpcore():
    # httpcore imports sniffio on every lock and event it sets up; without it the failed import
    # scans sys.path each time (12 % of the bot's CPU at 1,000 chats; encode/httpcore#1103).
    assert importlib.util.find_spec("sniffio") is not None
