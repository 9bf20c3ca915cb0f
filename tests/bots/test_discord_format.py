"""Raw Markdown → Discord messages: where cuts go, code fences across messages, streaming."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bots.discord.format import MAX_CHARS, MIN_LIMIT, fence_at, split, tidy_partial

_RUN = re.compile(r" *(`+|~+)")


def carried(prefix: str, floor: int) -> tuple[str, str] | None:
    """The fence a cut after ``prefix`` closes and reopens, as (opening line, run), per the
    module's rule: only if the opening line, two line breaks and the run take at most half the
    smaller limit (``floor``)."""
    line = fence_at(prefix)
    if line is None:
        return None
    run = _RUN.match(line)
    assert run is not None, line
    if len(line) + len(run[1]) + 2 > floor // 2:
        return None
    return line, run[1]


def resumes(original: str, cut: int) -> list[int]:
    """Where the next message may start after a cut at ``cut``, per the whitespace contract:
    right there inside a word, else past the whole whitespace run, or past its last line break
    (the next line's indentation kept)."""
    if not original[cut].isspace():
        return [cut]
    rest = original[cut:]
    end = cut + len(rest) - len(rest.lstrip())
    newline = original.rfind("\n", cut, end)
    return [newline + 1, end] if 0 <= newline < end - 1 else [end]


def reconstruct(
    messages: list[str], original: str, *, limit: int = MAX_CHARS, first_limit: int | None = None
) -> str:
    """The reply the messages show, checking the whitespace contract and the fences on the way.

    Added fence lines are removed and each cut's dropped whitespace put back. That whitespace is
    taken from ``original`` (a message cannot say whether a cut dropped one line break or two),
    but it must be exactly what the contract lets a cut drop, the pieces must appear in order,
    and a fence must be closed and reopened at exactly the cuts where ``fence_at`` sees it open.
    """
    floor = min(limit, limit if first_limit is None else first_limit)
    lead = len(original) - len(original.lstrip())
    stop = len(original.rstrip())
    last = len(messages) - 1

    def tile(i: int, pos: int) -> list[str] | None:
        body = messages[i]
        if i and (fence := carried(original[:pos], floor)):
            if not body.startswith(f"{fence[0]}\n"):
                return None
            body = body[len(fence[0]) + 1 :]
        pieces = [body]
        if i < last and "\n" in body:
            pieces.append(body[: body.rfind("\n")])  # maybe a closing run was added
        for piece in pieces:
            end = pos + len(piece)
            if not piece.strip() or not original.startswith(piece, pos):
                continue
            fence = carried(original[:end], floor) if i < last else None
            if body[len(piece) :] != ("" if fence is None else f"\n{fence[1]}"):
                continue
            if i == last:
                if end == stop:
                    return [piece]
                continue
            if original[end - 1].isspace():
                continue  # a cut drops a whole run, so no message ends in whitespace
            for resume in resumes(original, end):
                rest = tile(i + 1, resume)
                if rest is not None:
                    return [piece, original[end:resume], *rest]
        return None

    if not messages:
        assert not original.strip(), "a reply with visible text gave no message"
        return original
    tiles = tile(0, lead)
    assert tiles is not None, f"messages {messages!r} do not tile {original!r}"
    return original[:lead] + "".join(tiles) + original[stop:]


def check(original: str, *, limit: int = MAX_CHARS, first_limit: int | None = None) -> list[str]:
    """``split`` with every guarantee asserted: limits, visible text, exact reconstruction."""
    messages = split(original, limit=limit, first_limit=first_limit)
    for index, message in enumerate(messages):
        assert message.strip(), messages
        cap = limit if index or first_limit is None else first_limit
        assert len(message) <= cap, (index, len(message), cap)
    assert reconstruct(messages, original, limit=limit, first_limit=first_limit) == original
    return messages


# --- cut preferences ------------------------------------------------------------------------


def test_short_reply_is_one_message() -> None:
    assert check("Hello **world**, a [link](https://example.com).") == [
        "Hello **world**, a [link](https://example.com)."
    ]


def test_blank_reply_gives_no_message() -> None:
    assert check("") == []
    assert check(" \n\t\n ") == []


def test_outer_whitespace_is_not_sent() -> None:
    assert check("\n\n  Hi there  \n") == ["Hi there"]


def test_cut_prefers_a_blank_line_to_a_later_line_break() -> None:
    text = "one two three four five six\n\nseven eight\nnine ten eleven twelve"
    assert check(text, limit=40)[0] == "one two three four five six"


def test_cut_prefers_a_line_break_to_a_later_space() -> None:
    text = "alpha beta gamma delta\nepsilon zeta eta theta iota"
    assert check(text, limit=30) == ["alpha beta gamma delta", "epsilon zeta eta theta iota"]


def test_cut_prefers_a_space_to_the_middle_of_a_word() -> None:
    assert check("alpha beta gamma delta epsilon", limit=20) == [
        "alpha beta gamma",
        "delta epsilon",
    ]


def test_a_fuller_message_beats_a_better_cut_in_its_first_half() -> None:
    text = "Hi there.\n\nThis sentence runs on for a while"
    assert check(text, limit=32)[0] == "Hi there.\n\nThis sentence runs on"


def test_word_is_cut_only_when_nothing_else_is_left() -> None:
    assert check("x" * 45, limit=20) == ["x" * 20, "x" * 20, "x" * 5]
    assert check("Hi\n\n" + "y" * 30, limit=20) == ["Hi", "y" * 20, "y" * 10]


def test_chinese_is_cut_after_punctuation() -> None:
    sentence = "中文句子。"
    assert check(sentence * 8, limit=16)[0] == sentence * 3


def test_cut_drops_the_run_it_sits_on_but_keeps_indentation() -> None:
    text = "first line here  \n\n    indented line that goes on"
    assert check(text, limit=30) == ["first line here", "    indented line that goes on"]
    assert check("words words  \t  more words", limit=16) == ["words words", "more words"]


def test_indentation_too_long_for_a_message_is_dropped() -> None:
    assert check("x\n" + " " * 40 + "y", limit=16) == ["x", "y"]
    assert check("x\n" + " " * 9000 + "yz") == ["x", "yz"]


@pytest.mark.parametrize(
    "cluster",
    [
        "e\u0301",  # combining acute
        "👍🏽",  # skin tone
        "👨\u200d👩\u200d👧",  # ZWJ family
        "🇺🇸",  # flag: two regional indicators
        "\ud83d\ude00",  # a surrogate pair that slipped into a str
        "क्षि",  # Devanagari conjunct: consonant, virama, consonant, vowel sign
    ],
)
@pytest.mark.parametrize("limit", [17, 18])
def test_word_cut_keeps_graphemes_whole(cluster: str, limit: int) -> None:
    text = cluster * (60 // len(cluster) + 1)
    for message in check(text, limit=limit):
        assert len(message) % len(cluster) == 0, message


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ("**bb cc dd ee ff gg hh**", "a" * 22),
        ("[bb cc dd ee ff gg](https://example.com/x)", "a" * 22),
        ("`bb cc dd ee ff gg hh`", "a" * 22),
    ],
)
def test_cut_avoids_inline_constructs_when_it_can(span: str, expected: str) -> None:
    assert check(f"{'a' * 22} {span} tail", limit=40)[0] == expected


def test_space_cut_avoids_starting_a_block_marker() -> None:
    assert check("aaaaaaaaaa bbbbbbbbb - ccccc", limit=20)[0] == "aaaaaaaaaa"
    assert check("aaaaaaaaaa bbbbbbbbb # ccccc", limit=20)[0] == "aaaaaaaaaa"
    assert check("aaaaaaaaaa bbbbbbbbb > ccccc", limit=20)[0] == "aaaaaaaaaa"


def test_no_cut_leaves_a_fence_mark_to_open_the_next_message() -> None:
    assert check("aaaaaaaaaa bbbbbbbbb ```ccc dd", limit=20)[0] == "aaaaaaaaaa"
    assert check("aaaaaaaaaa bbbbbbbbb ~~~ccc dd", limit=20)[0] == "aaaaaaaaaa"
    assert check("x" * 16 + "```" + "y" * 10, limit=16) == ["x" * 15, "x```" + "y" * 10]


# --- code fences ----------------------------------------------------------------------------


def _python_block(lines: int) -> str:
    body = "\n".join(
        f"    result_{i:03d} = compute({i}, factor=2)  # step {i}" for i in range(lines)
    )
    return f"```python\ndef run() -> None:\n{body}\n```"


def test_long_code_block_is_closed_and_reopened() -> None:
    block = _python_block(98)
    text = f"Here is the script:\n\n{block}\n\nRun it with `python run.py`."
    assert 4900 <= len(text) <= 5200
    messages = check(text)
    assert len(messages) == 3
    assert all(len(m) <= MAX_CHARS for m in messages)
    assert messages[0].endswith("\n```")
    assert messages[1].startswith("```python\n")
    assert messages[1].endswith("\n```")
    assert messages[2].startswith("```python\n")
    code_lines = set(block.splitlines())
    for message in messages:
        assert fence_at(message) is None  # each one renders its code as a closed block
        inside = message.split("```python\n", 1)[1].split("\n```", 1)[0]
        assert set(inside.splitlines()) <= code_lines  # cut between code lines only


def test_cut_before_a_code_block_rather_than_inside_it() -> None:
    intro = " ".join(["word"] * 240)  # 1199 characters
    text = f"{intro}\n\n{_python_block(30)}\n\nThat is all."
    messages = check(text)
    assert messages[0] == intro
    assert messages[1].startswith("```python\ndef run()")


def test_cut_does_not_leave_an_empty_code_block() -> None:
    text = "aaaa bbbb cccc dddd eeee ffff\n```py\nx = 1\ny = 2\n```"
    assert check(text, limit=40) == ["aaaa bbbb cccc dddd eeee ffff", "```py\nx = 1\ny = 2\n```"]


def test_blank_lines_in_code_are_preferred_cuts() -> None:
    text = "```py\ndef a():\n    pass\n\ndef b():\n    pass\n```"
    assert check(text, limit=36) == [
        "```py\ndef a():\n    pass\n```",
        "```py\ndef b():\n    pass\n```",
    ]


def test_tilde_fence_is_closed_with_its_own_run() -> None:
    text = "~~~~text\n" + "\n".join(f"line {i}" for i in range(12)) + "\n~~~~"
    messages = check(text, limit=40)
    assert len(messages) > 2
    assert all(m.endswith("\n~~~~") for m in messages)
    assert all(m.startswith("~~~~text\n") for m in messages)


def test_indented_fence_is_reopened_with_its_indentation() -> None:
    text = "1. Install:\n   ```sh\n" + "\n".join(["   pip install kamiya"] * 6) + "\n   ```"
    messages = check(text, limit=60)
    assert messages[1].startswith("   ```sh\n   pip install")


def test_first_limit_is_respected() -> None:
    text = " ".join(f"word{i}" for i in range(300))
    messages = check(text, limit=300, first_limit=100)
    assert 90 <= len(messages[0]) <= 100
    assert all(250 <= len(m) <= 300 for m in messages[1:-1])


def test_limits_below_the_minimum_are_refused() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_LIMIT}"):
        split("text", limit=MIN_LIMIT - 1)
    with pytest.raises(ValueError, match=f"at least {MIN_LIMIT}"):
        split("text", first_limit=MIN_LIMIT - 1)


def test_a_bare_fence_is_carried_at_the_minimum_limit() -> None:
    text = "```\n" + "\n".join(["abc"] * 10) + "\n```"
    messages = check(text, limit=MIN_LIMIT)
    assert all(m.startswith("```\n") and m.endswith("\n```") for m in messages)


def test_an_opening_line_too_long_to_repeat_is_cut_as_text() -> None:
    text = "```" + "x" * 30 + "\n" + "\n".join(["code line"] * 8) + "\n```"
    messages = check(text, limit=40)
    assert not any(m.startswith("```x") for m in messages[1:])


# --- streaming helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("plain text, no fence", None),
        ("```python\nprint(1)", "```python"),
        ("```\ncode", "```"),
        ("```py", "```py"),  # ends on the opening line
        ("```py  \ncode", "```py"),  # trailing blanks dropped
        ("```py\ncode\n```", None),
        ("```py\ncode\n```  \nafter", None),
        ("~~~\ncode", "~~~"),
        ("~~~ruby\ncode\n```", "~~~ruby"),  # backticks do not close tildes
        ("   ```js\ncode", "   ```js"),  # up to three spaces
        ("    ```js\ncode", None),  # four: an indented line, not a fence
        ("```py\nx = '```'\nprint('``` not a closer')", "```py"),  # backticks inside code
        ("```py\n``` not a closer\n", "```py"),
        ("````\n```\n", "````"),  # a shorter run does not close
        ("````\n`````  \n", None),  # a longer one does
        ("``` a`b\nnot code", None),  # a backtick in the info string: inline code
        ("text ```py", None),  # not at the start of a line
        ("```\n```\n~~~md\n", "~~~md"),
    ],
)
def test_fence_at(markdown: str, expected: str | None) -> None:
    assert fence_at(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("no fence **bold", "no fence **bold"),
        ("```py\ncode\n```", "```py\ncode\n```"),
        ("```py\ncode", "```py\ncode\n```"),
        ("```py\ncode\n", "```py\ncode\n```"),
        ("```py\ncode\n``", "```py\ncode\n```"),  # the closing line being typed
        ("```py", "```py\n```"),
        ("```", "```\n```"),
        ("~~~\ncode", "~~~\ncode\n~~~"),
        ("````md\n```\nx", "````md\n```\nx\n````"),
        ("  ```sh\nls\n  `", "  ```sh\nls\n  ```"),
    ],
)
def test_tidy_partial(markdown: str, expected: str) -> None:
    assert tidy_partial(markdown) == expected


# --- properties -----------------------------------------------------------------------------

MARKDOWNISH = st.lists(
    st.sampled_from(
        [
            "```",
            "```python",
            "~~~",
            "~~~~ text",
            "   ```js",
            "    ```",
            "``` a`b",
            "````",
            "**bold**",
            "**",
            "`code`",
            "[link](https://example.com/a)",
            "# Heading",
            "> quote",
            "- item",
            "word",
            "a run of several words",
            "x" * 40,
            "😀",
            "👍🏽",
            "👨\u200d👩\u200d👧",
            "🇺🇸🇬🇧",
            "e\u0301",
            "中文句子。",
            "\u3000",
            "\n",
            "\n",
            "\n\n",
            " ",
            " ",
            "  ",
            "\t",
            "    ",
            " " * 40,
        ]
    ),
    max_size=80,
).map("".join)
ANY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="`~*_[]()#> \nab😀\u200d\u0301中。", max_size=300),
    MARKDOWNISH,
)
LIMITS = st.one_of(st.integers(MIN_LIMIT, 64), st.integers(MIN_LIMIT, MAX_CHARS))


@st.composite
def limits(draw: st.DrawFn) -> tuple[int, int | None]:
    limit = draw(LIMITS)
    return limit, draw(st.none() | st.integers(MIN_LIMIT, limit))


@settings(max_examples=600, deadline=None)
@given(ANY_TEXT, limits())
def test_split_tiles_any_text(text: str, caps: tuple[int, int | None]) -> None:
    limit, first_limit = caps
    check(text, limit=limit, first_limit=first_limit)


@settings(max_examples=100, deadline=None)
@given(st.lists(ANY_TEXT, min_size=1, max_size=30).map("\n\n".join), limits())
def test_split_tiles_long_text(text: str, caps: tuple[int, int | None]) -> None:
    limit, first_limit = caps
    check(text, limit=limit, first_limit=first_limit)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_tidy_partial_only_closes_an_open_fence(text: str) -> None:
    tidy = tidy_partial(text)
    assert tidy.startswith(text)
    assert fence_at(tidy) is None
    assert (tidy == text) == (fence_at(text) is None)


_FENCE_LIKE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[^\n]*", re.MULTILINE)


@settings(max_examples=300, deadline=None)
@given(MARKDOWNISH.map(str.lstrip), st.integers(64, 400))
def test_every_message_but_the_last_closes_its_blocks(text: str, limit: int) -> None:
    # Fence lines of at most 10 characters are carried from a limit of 64 on. (The text is
    # lstripped: Discord trims a message, so a first line "    ```" would open a block there.)
    assume(all(len(line[0].rstrip()) <= 10 for line in _FENCE_LIKE.finditer(text)))
    # Nor can anything keep ``` from starting a message if all a window holds before it is
    # blanks, or if it is in a run of marks longer than a word cut backs off.
    assume(not re.search(r"\s{20}|`{20}|~{20}", text))
    for message in check(text, limit=limit)[:-1]:
        assert fence_at(message) is None


STREAMED = (
    "Intro with **bold** and `code`.\n\n```python\ndef main() -> int:\n"
    + "\n".join(f"    x_{i} = {i}  # ``` not a fence" for i in range(30))
    + "\n    return 0\n```\n\n~~~\ntilde block\n~~~\n\nThe end."
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(STREAMED)), st.integers(28, 400))
def test_streamed_prefixes_render_closed_blocks(cut: int, limit: int) -> None:
    # From 28 on, both fences of STREAMED are carried, so every message closes its blocks.
    for message in check(tidy_partial(STREAMED[:cut]), limit=limit):
        assert fence_at(message) is None
