"""The fake Kamiya on the wire, read with plain httpx: formats, rules, and every scripted fault.

These tests read raw bytes, not the project's client, so a bug in one cannot hide one in the
other: what the fake sends is checked against the protocol itself.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from core.fake_kamiya import COMPLETIONS_PATH, CONVERSATION_PATH, FakeKamiya, Script
from tests.conftest import KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

AUTH = {"Authorization": f"Bearer {KEY}"}
TITLE_PROMPT = (
    "Generate a title in less than 6 words for the following message (language: en):\n"
    '"""\nUser: please explain how lighthouses work at night\nAssistant: They shine.\n"""'
)


def sse_data(raw: bytes) -> list[str]:
    """The data of each event, parsed by the SSE rules: any line ending, comments, fields."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    events = []
    for block in text.split("\n\n"):
        data = []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value.removeprefix(" "))
        if data:
            events.append("\n".join(data))
    return events


def deltas(events: list[str]) -> str:
    text = ""
    for data in events:
        if data.startswith("{") and data != "{not json":
            payload = json.loads(data)
            if payload.get("object") == "chat.completion.chunk":
                text += payload["choices"][0]["delta"].get("content", "")
    return text


async def converse(
    http: httpx.AsyncClient, fake: FakeKamiya, content: str, cid: str | None = None
) -> httpx.Response:
    body = {"content": content} if cid is None else {"content": content, "conversationId": cid}
    return await http.post(fake.base_url + CONVERSATION_PATH, json=body, headers=AUTH)


async def complete(
    http: httpx.AsyncClient, fake: FakeKamiya, model: str, *, stream: bool, text: str = "hi"
) -> httpx.Response:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "model": model}
    if stream:
        body["stream"] = True
    return await http.post(fake.base_url + COMPLETIONS_PATH, json=body, headers=AUTH)


def info(response: httpx.Response) -> dict[str, Any]:
    events = sse_data(response.content)
    assert events[-2] == "[DONE]"
    payload: dict[str, Any] = json.loads(events[-1])
    return payload


@pytest.fixture
async def open_fake() -> AsyncIterator[FakeKamiya]:
    """Any key, any model: for the rules the default fake would refuse."""
    async with FakeKamiya(api_key=None, allowed_models=None) as server:
        yield server


async def test_conversation_streams_chunks_then_done_then_kamiya_info(http, fake):
    fake.enqueue(Script(reply="Hello there, friend", chunk_chars=3))
    response = await converse(http, fake, "hi")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("\n\n")
    events = sse_data(response.content)
    chunks = [json.loads(data) for data in events[:-2]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"gpt-3.5-turbo"}
    assert all(c["id"].startswith("chatcmpl-") for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:3]] == ["Hel", "lo "]
    final = info(response)
    assert final["id"] == "kamiyaInfo"
    assert final["message"] == "[DONE]"
    assert final["fullContent"] == deltas(events) == "Hello there, friend"
    assert fake.requests[0].response_conversation_id == final["conversationId"]


async def test_history_is_kept_per_id_and_default_replies_count_turns(http, fake):
    cid = info(await converse(http, fake, "hi"))["conversationId"]
    second = await converse(http, fake, "again", cid)
    assert info(second) == {
        "id": "kamiyaInfo",
        "conversationId": cid,
        "message": "[DONE]",
        "fullContent": "**Echo** (turn 2): again",
    }
    other = info(await converse(http, fake, "elsewhere"))["conversationId"]
    assert other != cid
    assert fake.conversations == {
        cid: [("hi", "**Echo** (turn 1): hi"), ("again", "**Echo** (turn 2): again")],
        other: [("elsewhere", "**Echo** (turn 1): elsewhere")],
    }
    assert [r.conversation_id for r in fake.requests] == [None, cid, None]
    assert all(r.authorized and r.finished is not None for r in fake.requests)
    assert fake.overlaps == []


async def test_unknown_and_forgotten_ids_are_404(http, fake):
    not_found = {"error": {"message": "conversation not found", "code": 404}}
    response = await converse(http, fake, "hi", "never-issued")
    assert (response.status_code, response.json()) == (404, not_found)
    cid = info(await converse(http, fake, "hi"))["conversationId"]
    fake.forget(cid)
    response = await converse(http, fake, "still there?", cid)
    assert (response.status_code, response.json()) == (404, not_found)
    assert cid not in fake.conversations


async def test_accept_unknown_ids_adopts_the_id(http):
    async with FakeKamiya(accept_unknown_ids=True, api_key=KEY) as fake:
        response = await converse(http, fake, "hi", "kept-from-last-run")
        assert info(response)["conversationId"] == "kept-from-last-run"
        assert fake.conversations["kept-from-last-run"] == [("hi", "**Echo** (turn 1): hi")]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X": KEY}])
async def test_missing_or_wrong_key_is_401(http, fake, headers):
    url = fake.base_url + CONVERSATION_PATH
    response = await http.post(url, json={"content": "hi"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "invalid api key", "code": 401}}
    assert not fake.requests[0].authorized


async def test_no_api_key_accepts_any_key(http, open_fake):
    url = open_fake.base_url + CONVERSATION_PATH
    response = await http.post(url, json={"content": "hi"})
    assert response.status_code == 200
    assert open_fake.requests[0].authorized


@pytest.mark.parametrize("path", [CONVERSATION_PATH, COMPLETIONS_PATH])
@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff"])
async def test_malformed_body_is_400(http, fake, path, body):
    response = await http.post(fake.base_url + path, content=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400
    assert fake.requests[0].json == {}


async def test_model_without_permission_is_403(http, fake, open_fake):
    response = await complete(http, fake, "anthropic:claude-1", stream=True)
    assert response.status_code == 403
    assert response.json() == {
        "error": {"message": "no permission for model anthropic:claude-1", "code": 403}
    }
    allowed = await complete(http, open_fake, "anthropic:claude-1", stream=True)
    assert allowed.status_code == 200


async def test_streamed_completion_ends_at_done_without_kamiya_info(http, fake):
    response = await complete(http, fake, "openai:gpt-4", stream=True, text="ping")
    events = sse_data(response.content)
    assert events[-1] == "[DONE]"
    assert deltas(events) == "**Echo** (turn 1): ping"
    assert json.loads(events[0])["model"] == "openai:gpt-4"


@pytest.mark.parametrize("model", ["openai:gpt-3.5-turbo", "gpt-3.5-turbo", "gpt-3.5-turbo-0613"])
async def test_blocking_completion_for_gpt35(http, open_fake, model):
    response = await complete(http, open_fake, model, stream=False, text="ping")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == model
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "**Echo** (turn 1): ping"},
            "finish_reason": "stop",
        }
    ]
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


@pytest.mark.parametrize("model", ["openai:gpt-4", "anthropic:claude-1", "gpt-3.5-turbo-x!"])
async def test_blocking_completion_for_other_models_is_400(http, open_fake, model):
    response = await complete(http, open_fake, model, stream=False)
    assert response.status_code == 400
    assert model in response.json()["error"]["message"]


async def test_title_prompt_gets_a_short_title(http, fake):
    response = await complete(http, fake, "openai:gpt-3.5-turbo", stream=False, text=TITLE_PROMPT)
    title = response.json()["choices"][0]["message"]["content"]
    assert title == "please explain how lighthouses"


async def test_scripts_are_used_in_order_per_endpoint_then_defaults(http, fake):
    fake.enqueue(Script(reply="one"), Script(reply="two"))
    fake.enqueue(Script(reply="titled"), endpoint="completions")
    replies = [deltas(sse_data((await converse(http, fake, "x")).content)) for _ in range(3)]
    assert replies == ["one", "two", "**Echo** (turn 1): x"]
    response = await complete(http, fake, "gpt-3.5-turbo", stream=False)
    assert response.json()["choices"][0]["message"]["content"] == "titled"


@pytest.mark.parametrize(
    ("script", "body", "content_type"),
    [
        (Script(status=402), {"error": {"message": "payment required", "code": 402}}, "json"),
        (
            Script(status=429, headers={"Retry-After": "7"}, body={"error": {"message": "slow"}}),
            {"error": {"message": "slow"}},
            "json",
        ),
        (Script(status=502, body="<html>bad gateway</html>"), "<html>bad gateway</html>", "text"),
    ],
)
async def test_scripted_status_sends_its_body_and_headers(http, fake, script, body, content_type):
    fake.enqueue(script)
    response = await converse(http, fake, "x")
    assert response.status_code == script.status
    assert content_type in response.headers["content-type"]
    assert (response.json() if content_type == "json" else response.text) == body
    for name, value in script.headers.items():
        assert response.headers[name] == value


async def test_drop_after_cuts_the_connection_mid_stream(http, fake):
    fake.enqueue(Script(reply="a long enough reply", chunk_chars=2, drop_after=3))
    received: list[bytes] = []

    async def read_into(response: httpx.Response) -> None:
        async for part in response.aiter_raw():
            received.append(part)

    url = fake.base_url + CONVERSATION_PATH
    async with http.stream("POST", url, json={"content": "x"}, headers=AUTH) as response:
        assert response.status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await read_into(response)
    events = sse_data(b"".join(received))
    assert deltas(events) == "a long"
    assert len(events) == 4  # the role chunk and three deltas, nothing after


async def test_drop_after_on_a_blocking_call_sends_no_answer(http, fake):
    fake.enqueue(Script(drop_after=0), endpoint="completions")
    with pytest.raises(httpx.TransportError):
        await complete(http, fake, "gpt-3.5-turbo", stream=False)


async def test_no_done_ends_cleanly_after_the_deltas(http, fake):
    fake.enqueue(Script(reply="no done here", no_done=True))
    response = await converse(http, fake, "x")
    events = sse_data(response.content)
    assert deltas(events) == "no done here"
    assert "[DONE]" not in events
    assert "kamiyaInfo" not in response.text


async def test_no_kamiya_info_stops_at_done(http, fake):
    fake.enqueue(Script(reply="done but no info", no_kamiya_info=True))
    events = sse_data((await converse(http, fake, "x")).content)
    assert events[-1] == "[DONE]"
    assert deltas(events) == "done but no info"


async def test_kamiya_info_can_carry_another_id_and_full_content(http, fake):
    cid = info(await converse(http, fake, "first"))["conversationId"]
    fake.enqueue(Script(reply="draft", conversation_id="moved-id", full_content="Billed text"))
    response = await converse(http, fake, "second", cid)
    assert deltas(sse_data(response.content)) == "draft"
    assert info(response)["conversationId"] == "moved-id"
    assert info(response)["fullContent"] == "Billed text"
    assert fake.conversations["moved-id"] == [("second", "Billed text")]
    assert fake.requests[-1].response_conversation_id == "moved-id"
    again = await converse(http, fake, "third", "moved-id")  # the server knows the new id
    assert info(again)["fullContent"] == "**Echo** (turn 2): third"


@pytest.mark.parametrize("split", [1, 2, 3, 5])
async def test_split_bytes_keeps_multibyte_text_intact(http, fake, split):
    text = "héllo 你好 🙂"
    fake.enqueue(Script(reply=text, chunk_chars=1, split_bytes=split))
    response = await converse(http, fake, "x")
    assert "你好 🙂".encode() in response.content  # raw UTF-8, not \u escapes
    assert deltas(sse_data(response.content)) == text
    assert info(response)["fullContent"] == text


async def http_chunks(fake: FakeKamiya, body: dict[str, Any]) -> list[bytes]:
    """The chunks of a chunked HTTP/1.1 response, read off a raw socket: one per server write."""
    url = httpx.URL(fake.base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    payload = json.dumps(body).encode()
    head = (
        f"POST {CONVERSATION_PATH} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    rest = raw.partition(b"\r\n\r\n")[2]
    chunks = []
    while (size := int(rest.partition(b"\r\n")[0], 16)) > 0:
        data_start = rest.index(b"\r\n") + 2
        chunks.append(rest[data_start : data_start + size])
        rest = rest[data_start + size + 2 :]
    return chunks


async def test_split_bytes_writes_pieces_that_split_characters(fake):
    fake.enqueue(Script(reply="你好 🙂", split_bytes=3))
    chunks = await http_chunks(fake, {"content": "x"})
    assert {len(c) for c in chunks[:-1]} == {3}
    assert len(chunks[-1]) <= 3
    assert deltas(sse_data(b"".join(chunks))) == "你好 🙂"
    undecodable = 0
    for piece in chunks:
        try:
            piece.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable  # some piece ends inside a character


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
async def test_every_line_uses_the_scripted_line_ending(http, fake, eol):
    fake.enqueue(Script(reply="line endings", line_ending=eol, comments=True))
    raw = (await converse(http, fake, "x")).content.decode()
    if eol == "\r\n":
        assert raw.count("\r\n") == raw.count("\r") == raw.count("\n")
    else:
        assert ({"\n", "\r"} - {eol}).pop() not in raw
    assert raw.endswith(eol * 2)
    assert raw.count(f"data: [DONE]{eol}{eol}") == 1
    assert deltas(sse_data(raw.encode())) == "line endings"


async def test_malformed_event_sits_between_deltas(http, fake):
    fake.enqueue(Script(reply="bad event", malformed=True))
    response = await converse(http, fake, "x")
    assert "\n\ndata: {not json\n\n" in response.text
    events = sse_data(response.content)
    bad = events.index("{not json")
    assert deltas(events[:bad])
    assert deltas(events[bad + 1 :])


async def test_comments_unknown_fields_and_multiline_data(http, fake):
    fake.enqueue(Script(reply="tolerant parser", comments=True))
    response = await converse(http, fake, "x")
    lines = response.text.split("\n")
    assert ": keep-alive" in lines
    assert "foo: bar" in lines
    assert any(line == "data: {" for line in lines)  # a payload over several data lines
    assert deltas(sse_data(response.content)) == "tolerant parser"
    assert info(response)["fullContent"] == "tolerant parser"


async def test_demo_streams_a_friendly_reply_word_by_word(http):
    async with FakeKamiya(api_key=None, demo=True, word_delay_s=0.0) as fake:
        response = await converse(http, fake, "hello there")
        cid = info(response)["conversationId"]
        second = info(await converse(http, fake, "more", cid))["fullContent"]
    events = sse_data(response.content)
    words = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-3]]
    assert len(words) > 10
    assert all(w.strip() and " " not in w.strip() for w in words)
    text = deltas(events)
    assert "offline" in text
    assert "turn 1" in text
    assert "hello there" in text
    assert "`" in text
    assert "turn 2" in second


async def test_overlapping_requests_for_one_id_are_recorded(http, fake):
    cid = info(await converse(http, fake, "open"))["conversationId"]
    gate = asyncio.Event()
    fake.enqueue(Script(gate=gate), Script(gate=gate), Script(gate=gate))
    tasks = [asyncio.create_task(converse(http, fake, f"m{i}", cid)) for i in range(2)]
    tasks.append(asyncio.create_task(converse(http, fake, "other")))
    await fake.wait_for_requests(1 + 3)
    assert fake.in_flight == 3
    assert fake.overlaps == [cid]
    assert all(r.finished is None for r in fake.requests[1:])
    gate.set()
    responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert fake.in_flight == 0
    assert fake.max_in_flight == 3


async def test_wait_for_requests_waits_for_started_requests(http, fake):
    waiter = asyncio.create_task(fake.wait_for_requests(2))
    await converse(http, fake, "one")
    assert not waiter.done()
    await converse(http, fake, "two")
    await asyncio.wait_for(waiter, 5)
    with pytest.raises(TimeoutError):
        await fake.wait_for_requests(3, timeout=0.05)


async def test_stop_is_prompt_while_a_request_is_held_at_a_gate(http):
    fake = FakeKamiya(api_key=None)
    await fake.start()
    fake.enqueue(Script(gate=asyncio.Event()))
    held = asyncio.create_task(converse(http, fake, "x"))
    await fake.wait_for_requests(1)
    await asyncio.wait_for(fake.stop(), 1.0)
    with pytest.raises(httpx.HTTPError):
        await held
    assert fake.in_flight == 0
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    await fake.stop()  # idempotent


def test_bad_scripts_are_refused():
    with pytest.raises(ValueError, match="line_ending"):
        Script(line_ending="\n\n")
    with pytest.raises(ValueError, match="at least 1"):
        Script(split_bytes=0)
    with pytest.raises(ValueError, match="endpoint"):
        FakeKamiya().enqueue(Script(), endpoint="chat")  # type: ignore[arg-type]
