"""SSE decoding: any byte split, any line ending, comments, multi-line data, UTF-8 splits."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import IncompleteStream, MalformedEvent, RateLimited
from core.events import Final, StreamReader, TextDelta
from core.sse import SseEvent, SseStream


def chunk(text: str) -> str:
    return json.dumps(
        {"object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}
    )


def info(conversation_id: str, full: str) -> str:
    body = {"id": "kamiyaInfo", "conversationId": conversation_id, "message": "[DONE]"}
    return json.dumps({**body, "fullContent": full}, ensure_ascii=False)


def render(
    parts: list[str], *, eol: str = "\n", cid: str = "c-1", full: str | None = None
) -> bytes:
    lines: list[str] = [": hello", "retry: 1000", ""]
    for part in parts:
        lines += [f"data: {chunk(part)}", "foo: ignored", ""]
    lines += ["data: [DONE]", ""]
    lines += [f"data: {info(cid, ''.join(parts) if full is None else full)}", ""]
    return (eol.join(lines) + eol).encode()


def decode(pieces: list[bytes], *, expect_info: bool = True) -> list[TextDelta | Final]:
    sse, reader = SseStream(), StreamReader(expect_info=expect_info)
    out: list[TextDelta | Final] = []
    for piece in pieces:
        for item in sse.feed(piece):
            event = reader.feed(item)
            if event is not None:
                out.append(event)
    for item in sse.close():
        event = reader.feed(item)
        if event is not None:
            out.append(event)
    reader.finish()
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


texts = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    parts=texts,
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_split_of_a_valid_stream_decodes_the_same(parts, cuts, eol):
    data = render(parts, eol=eol)
    events = decode(split_at(data, cuts))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == [p for p in parts if p]
    assert events[-1] == Final("c-1", "".join(parts))


def test_multibyte_characters_split_byte_by_byte():
    data = render(["héllo ", "你好 ", "🙂"])
    events = decode([data[i : i + 1] for i in range(len(data))])
    assert events[-1] == Final("c-1", "héllo 你好 🙂")


def test_multi_line_data_is_joined_with_newlines():
    payload = json.dumps({"choices": [{"delta": {"content": "a"}}]}, indent=1)
    body = "".join(f"data: {line}\n" for line in payload.splitlines()) + "\n"
    body += "data: [DONE]\n\n" + f"data: {info('x', 'a')}\n\n"
    assert decode([body.encode()]) == [TextDelta("a"), Final("x", "a")]


def test_full_content_wins_over_the_deltas():
    events = decode([render(["Hel", "lo"], full="Hello, billed")])
    assert events[-1] == Final("c-1", "Hello, billed")


def test_named_kamiya_info_event_is_accepted():
    body = (
        "data: [DONE]\n\nevent: kamiyaInfo\ndata: "
        + json.dumps({"conversationId": "n", "fullContent": "z"})
        + "\n\n"
    )
    assert decode([body.encode()]) == [Final("n", "z")]


def test_unterminated_but_complete_kamiya_info_is_accepted():
    data = render(["x"]).rstrip(b"\n") + b"\n"  # last event lacks its blank line
    assert decode([data])[-1] == Final("c-1", "x")


def test_truncated_kamiya_info_is_incomplete_not_malformed():
    data = render(["x"])
    with pytest.raises(IncompleteStream):
        decode([data[: data.index(b"fullContent")]])


def test_stream_without_done_is_incomplete():
    with pytest.raises(IncompleteStream, match=r"\[DONE\]"):
        decode([f"data: {chunk('a')}\n\n".encode()])


def test_done_without_kamiya_info_is_incomplete():
    with pytest.raises(IncompleteStream, match="kamiyaInfo"):
        decode([f"data: {chunk('a')}\n\ndata: [DONE]\n\n".encode()])


def test_completions_end_at_done():
    body = f"data: {chunk('a')}\n\ndata: [DONE]\n\n".encode()
    assert decode([body], expect_info=False) == [TextDelta("a")]


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "[1, 2]",
        '{"choices": ["x"]}',
        '{"choices": [{"delta": 5}]}',
        '{"choices": [{"delta": {"content": 5}}]}',
    ],
)
def test_malformed_events_raise_malformed(data):
    reader = StreamReader(expect_info=True)
    with pytest.raises(MalformedEvent):
        reader.feed(SseEvent("", data))


def test_kamiya_info_without_id_is_malformed():
    reader = StreamReader(expect_info=True)
    reader.feed(SseEvent("", "[DONE]"))
    with pytest.raises(MalformedEvent):
        reader.feed(SseEvent("", json.dumps({"id": "kamiyaInfo", "fullContent": "x"})))


def test_role_only_and_finish_chunks_carry_no_text():
    reader = StreamReader(expect_info=True)
    assert (
        reader.feed(SseEvent("", json.dumps({"choices": [{"delta": {"role": "assistant"}}]})))
        is None
    )
    assert (
        reader.feed(
            SseEvent("", json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
        )
        is None
    )
    assert reader.feed(SseEvent("", json.dumps({"choices": []}))) is None


def test_error_event_in_stream_is_typed():
    reader = StreamReader(expect_info=True)
    with pytest.raises(RateLimited):
        reader.feed(SseEvent("", json.dumps({"error": {"message": "slow down", "code": 429}})))


def test_leading_bom_is_ignored():
    assert decode([b"\xef\xbb\xbf" + render(["a"])])[-1] == Final("c-1", "a")


def reference_events(pieces: list[bytes]) -> list[SseEvent]:
    """What httpx-sse's decoders alone make of a stream (``SseStream`` without its fast path)."""
    import codecs  # noqa: PLC0415 - the reference needs it alone

    from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # noqa: PLC0415

    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines, decoder = SSELineDecoder(), SSEDecoder()
    whole = "".join(text.decode(p) for p in pieces) + text.decode(b"", final=True)
    out: list[SseEvent] = []
    for line in [*lines.decode(whole.removeprefix("\ufeff")), *lines.flush()] if whole else []:
        sse = decoder.decode(line)
        if sse is not None and sse.data:
            out.append(SseEvent(sse.event, sse.data))
    pending = decoder.decode("")
    if pending is not None and pending.data:
        out.append(SseEvent(pending.event, pending.data, unterminated=True))
    return out


sse_lines = st.one_of(
    st.builds(lambda t: f"data: {t}", st.text(max_size=6)),
    st.builds(lambda t: f"data:{t}", st.text(max_size=6)),
    st.sampled_from([": keep-alive", "event: kamiyaInfo", "id: 7", "retry: 100", "foo", "data"]),
)


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(st.lists(sse_lines, min_size=1, max_size=3), max_size=6),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    unterminated=st.booleans(),
)
def test_fast_path_decodes_as_the_decoders_do(events, eol, cuts, unterminated):
    body = "".join(eol.join(lines) + eol * 2 for lines in events)
    if unterminated and body:
        body = body.removesuffix(eol)
    pieces = split_at(body.encode(), cuts)
    sse = SseStream()
    got = [event for piece in pieces for event in sse.feed(piece)] + sse.close()
    assert got == reference_events(pieces)


def test_whole_data_events_in_one_read_each_come_out_in_order():
    sse = SseStream()
    both = [SseEvent("message", "a"), SseEvent("message", "b b")]
    assert sse.feed(b"data: a\n\ndata: b b\n\n") == both
    assert sse.feed(b"data: \n\n") == []  # no data, no event
    assert sse.feed(b"event: x\ndata: c\n\n") == [SseEvent("x", "c")]
    assert sse.feed(b"data: d\n\n") == [SseEvent("message", "d")]


def test_a_character_split_across_reads_survives_the_whole_read_decode():
    sse = SseStream()
    assert sse.feed(b"data: a\n\n") == [SseEvent("message", "a")]
    raw = "data: €uro\n\n".encode()
    cut = raw.index(b"\xe2") + 1
    assert sse.feed(raw[:cut]) == []
    assert sse.feed(raw[cut:]) == [SseEvent("message", "€uro")]
    assert sse.feed(b"data: \xff\n\n") == [SseEvent("message", "\ufffd")]
