"""Markdown → Telegram text + entities: constructs, prose, streaming prefixes, UTF-16 splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import MessageEntity

from bots.telegram.format import MAX_UTF16, Chunk, render, split, utf16_len

ENTITY_TYPES = {
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "code",
    "pre",
    "text_link",
    "blockquote",
    "expandable_blockquote",
    "custom_emoji",
}

RICH = """# Release notes

Intro with **bold**, *italic*, `inline code`, ~~gone~~ and a [link](https://example.com/a_b).
Identifiers like snake_case_name, __init__ and math like a*b*c stay as written.

## Steps

1. Install it
2. Configure **everything**
   - nested *item* with `code`
- [ ] a task
- [x] a done task

> A quote with a [link](https://example.org)
> and a second line.

```python
def main(argv: list[str]) -> int:
    total = 2 ** 10  # **not bold** in code
    return total
```

| Name | Value |
|------|-------|
| a    | 1     |

Emoji 😀👨\u200d👩\u200d👧 and Vec<String> and a || b, then the end.
"""


def kinds(chunk: Chunk) -> list[str]:
    return [e.type for e in chunk.entities]


def covered(chunk: Chunk, entity: MessageEntity) -> str:
    """The text an entity covers, sliced in UTF-16 units as Telegram does."""
    units = chunk.text.encode("utf-16-le")
    return units[2 * entity.offset : 2 * (entity.offset + entity.length)].decode("utf-16-le")


def outside_code(chunk: Chunk) -> str:
    """The text with what code and pre entities cover blanked out, as UTF-16 units allow."""
    units = bytearray(chunk.text.encode("utf-16-le"))
    for e in chunk.entities:
        if e.type in ("code", "pre"):
            units[2 * e.offset : 2 * (e.offset + e.length)] = " ".encode("utf-16-le") * e.length
    return units.decode("utf-16-le")


def only(chunk: Chunk, kind: str) -> MessageEntity:
    [entity] = [e for e in chunk.entities if e.type == kind]
    return entity


def units16(text: str) -> int:
    """Independent of the module's own count."""
    return len(text.encode("utf-16-le")) // 2


def assert_sendable(chunk: Chunk, limit: int = MAX_UTF16) -> None:
    """What Telegram would reject: blank or too long text, entities out of bounds or empty."""
    size = units16(chunk.text)
    assert chunk.text.strip(), "blank message text"
    assert chunk.text == chunk.text.strip()
    assert size <= limit
    for entity in chunk.entities:
        assert isinstance(entity, MessageEntity)
        assert entity.type in ENTITY_TYPES
        assert entity.offset >= 0
        assert entity.length > 0
        assert entity.offset + entity.length <= size
        if entity.type == "text_link":
            assert entity.url
        if entity.type == "pre":
            assert entity.language is None or isinstance(entity.language, str)


def span_key(e: MessageEntity, shift: int = 0) -> tuple[object, ...]:
    return (e.type, e.offset + shift, e.length, e.url, e.language)


def assert_split_matches(whole: Chunk, chunks: list[Chunk], limit: int) -> None:
    """Chunks, in order, are the rendered text minus one whitespace run per cut; entities are
    the rendered entities clipped to each chunk."""
    assert chunks or not whole.text
    position = 0
    for number, chunk in enumerate(chunks):
        assert_sendable(chunk, limit)
        found = whole.text.find(chunk.text, position)
        assert found >= 0
        gap = whole.text[position:found]
        assert gap == "" or (number > 0 and gap.isspace()), repr(gap)
        base = units16(whole.text[:found])
        end = base + units16(chunk.text)
        expected = sorted(
            (e.type, start - base, stop - start, e.url, e.language)
            for e in whole.entities
            if (start := max(e.offset, base)) < (stop := min(e.offset + e.length, end))
        )
        assert sorted(span_key(e) for e in chunk.entities) == expected
        position = found + len(chunk.text)
    assert whole.text[position:] == ""


# --- Constructs -----------------------------------------------------------------------------


def test_inline_constructs_become_entities():
    chunk = render("**bold** *it* _it2_ `code` ~~gone~~ [link](https://example.com/x)")
    assert chunk.text == "bold it it2 code gone link"
    assert kinds(chunk) == ["bold", "italic", "italic", "code", "strikethrough", "text_link"]
    assert covered(chunk, only(chunk, "code")) == "code"
    link = only(chunk, "text_link")
    assert covered(chunk, link) == "link"
    assert link.url == "https://example.com/x"


def test_code_block_is_pre_with_its_language():
    chunk = render("Look:\n\n```python\nprint('hi')\n```\n\nDone.")
    assert chunk.text == "Look:\n\nprint('hi')\n\nDone."
    pre = only(chunk, "pre")
    assert pre.language == "python"
    assert covered(chunk, pre) == "print('hi')"


def test_code_block_without_language_is_pre_without_language():
    pre = only(render("```\nplain\n```"), "pre")
    assert pre.language is None


def test_headings_are_bold_with_the_library_symbols():
    chunk = render("# Title\n\n### Sub\n\n##### Small")
    assert chunk.text == "📌 Title\n\n📚 Sub\n\nSmall"
    title = [e for e in chunk.entities if covered(chunk, e) == "Title"]
    assert sorted(e.type for e in title) == ["bold", "underline"]
    assert [e.type for e in chunk.entities if covered(chunk, e) == "Sub"] == ["bold"]
    assert [e.type for e in chunk.entities if covered(chunk, e) == "Small"] == ["italic"]


def test_lists_render_with_bullets_numbers_and_indent():
    chunk = render("- a\n- b\n  - c\n\n1. x\n2. y\n\n- [x] done")
    assert chunk.text == "⦁ a\n⦁ b\n  ⦁ c\n\n1. x\n2. y\n\n✅ done"


def test_quote_is_a_blockquote_and_a_long_one_expandable():
    chunk = render("> quoted\n> lines\n\nafter")
    assert covered(chunk, only(chunk, "blockquote")) == "quoted\nlines"
    long = render("> " + "word " * 60)
    assert kinds(long) == ["expandable_blockquote"]  # the library's rule: over 200 units


def test_table_is_monospace_text():
    chunk = render("| a | b |\n|---|---|\n| 1 | 2 |")
    assert chunk.text == "a | b\n--+--\n1 | 2"
    assert kinds(chunk) == ["pre"]


def test_entity_offsets_count_utf16_units():
    chunk = render("😀 **😀bold😀**")
    bold = only(chunk, "bold")
    assert (bold.offset, bold.length) == (3, 8)
    assert covered(chunk, bold) == "😀bold😀"


def test_nested_entities_come_outer_first():
    chunk = render("**bold with `code` inside**")
    assert kinds(chunk) == ["bold", "code"]


# --- Prose stays prose ----------------------------------------------------------------------


def test_snake_case_stays_plain():
    chunk = render("Set my_var_name and snake_case_identifier, not _this_.")
    assert chunk.text == "Set my_var_name and snake_case_identifier, not this."
    assert covered(chunk, only(chunk, "italic")) == "this"


def test_asterisks_inside_words_stay_literal():
    # CommonMark (and the library) would italicise b and 3 here; chat prose means arithmetic.
    chunk = render("a*b*c and 2*3*4 = 24, but *this* and a *word* are italic")
    assert chunk.text == "a*b*c and 2*3*4 = 24, but this and a word are italic"
    assert [covered(chunk, e) for e in chunk.entities] == ["this", "word"]


def test_dunder_names_stay_literal_but_bold_underscores_work():
    chunk = render("Edit __init__ in __main__.py; __Note__ is bold.")
    assert chunk.text == "Edit __init__ in __main__.py; Note is bold."
    assert covered(chunk, only(chunk, "bold")) == "Note"


def test_lone_operators_stay_literal():
    assert render("x * y * z and 5 ** 2 and a_b").text == "x * y * z and 5 ** 2 and a_b"


def test_html_like_text_is_kept_not_dropped():
    # The library drops raw HTML; a reply about Rust or HTML would lose words.
    chunk = render("Use Vec<String> or <div>x</div>.\n\n<details>\nmore\n</details>")
    assert chunk.text == "Use Vec<String> or <div>x</div>.\n\n<details>\nmore\n</details>"
    assert chunk.entities == ()


def test_double_pipes_are_not_spoilers():
    chunk = render("if a || b then c || d, and ||this|| too; `x || y` in code")
    assert chunk.text == "if a || b then c || d, and ||this|| too; x || y in code"
    assert kinds(chunk) == ["code"]


def test_markdown_inside_code_is_untouched():
    chunk = render("```\na*b*c <b> x || y __init__\n```")
    assert chunk.text == "a*b*c <b> x || y __init__"


def test_blank_and_hostile_input_renders_empty_or_clean():
    assert render("") == Chunk("", ())
    assert render("  \n\n ") == Chunk("", ())
    assert split("   \n") == []
    assert render("a\x00b\x07c\r\nd\ud83de").text == "abc\nd\ufffde"


# --- Streaming (partial) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "language", "code"),
    [
        ("Here:\n\n```python\nimport os\nprint(os", "python", "import os\nprint(os"),
        ("```\nno language yet\n", None, "no language yet"),
        ("```rust\nfn main() {}\n``", "rust", "fn main() {}"),  # half a closing fence
    ],
)
def test_unclosed_fence_streams_as_a_code_block(markdown, language, code):
    chunk = render(markdown, partial=True)
    pre = only(chunk, "pre")
    assert pre.language == language
    assert covered(chunk, pre) == code
    assert "`" not in chunk.text


def test_fence_being_typed_shows_nothing_yet():
    assert render("Intro\n\n``", partial=True).text == "Intro"
    assert render("Intro\n\n```pyth", partial=True).text == "Intro"


def test_code_block_grows_without_jumping():
    prefix = "```python\nx = 1\n"
    earlier = render(prefix + "y = a **", partial=True)
    later = render(prefix + "y = a ** 2\n```", partial=True)
    assert only(earlier, "pre").language == only(later, "pre").language == "python"
    assert earlier.text == "x = 1\ny = a **"  # markers inside code are code
    assert later.text == "x = 1\ny = a ** 2"


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("See [the docs](https://exa", "See"),
        ("See [the docs", "See"),
        ("See [the docs]", "See"),
        ("See ![a picture](http://x", "See"),
        ("Some **bold te", "Some"),
        ("Some **bold*", "Some"),
        ("Then `inline co", "Then"),
        ("Trailing **", "Trailing"),
        ("Trailing _", "Trailing"),
        ("Trailing `", "Trailing"),
        ("Struck ~~thr", "Struck"),
        ("Para\n\n- ", "Para"),
        ("Para\n-", "Para"),  # not yet a setext heading
        ("Para\n\n#", "Para"),
        ("Para\n\n> ", "Para"),
        ("Para\n\n1.", "Para"),
        ("Para\n\n- [x", "Para"),
        ("Para\n- **bo", "Para"),  # what the cut leaves is a bare bullet: dropped too
        ("Para\n\n| Name | Value |", "Para"),  # a table header waits for its delimiter row
        ("Para\n\n| Name | Value |\n|---", "Para"),
    ],
)
def test_unfinished_tail_is_held_back(markdown, shown):
    chunk = render(markdown, partial=True)
    assert chunk.text == shown
    assert chunk.entities == ()


@pytest.mark.parametrize(
    "markdown",
    [
        "array[i] = 3 and [x] done",
        "about ~5 minutes",
        "x * y",
        "foo* bar",
        "snake_case_name",
        "closed **bold** and `code` and [link](http://e.x)",
    ],
)
def test_finished_or_literal_text_is_not_held_back(markdown):
    assert render(markdown, partial=True) == render(markdown)


def test_table_shows_once_its_first_row_starts():
    chunk = render("| Name | Value |\n|---|---|\n| a", partial=True)
    assert chunk.text == "Name | Value\n-----+------\na    |"
    assert kinds(chunk) == ["pre"]


def test_intraword_asterisks_at_the_end_of_a_partial_reply_stay_literal():
    # ``a*b*`` may yet become ``a*b*c``: no italics that the next update takes back.
    assert render("so a*b*", partial=True).text == "so a*b*"
    assert render("so *b*", partial=True).text == "so b"


def test_old_unmatched_marker_is_literal_not_hidden():
    markdown = "A lone ` backtick, then " + "a long sentence that goes on " * 4
    assert render(markdown, partial=True).text == markdown.strip()


def test_held_back_link_text_appears_once_closed():
    assert render("Read [docs](https://e.x/a", partial=True).text == "Read"
    chunk = render("Read [docs](https://e.x/a) now", partial=True)
    assert chunk.text == "Read docs now"
    assert only(chunk, "text_link").url == "https://e.x/a"


def test_final_render_keeps_literal_markup():
    assert render("See [the docs").text == "See [the docs"
    assert render("Trailing **").text == "Trailing **"


def test_every_prefix_of_a_rich_reply_renders_without_garbage():
    previous = ""
    for size in range(len(RICH) + 1):
        prefix = RICH[:size]
        chunk = render(prefix, partial=True)
        assert chunk.text.startswith(previous), prefix  # streaming never takes text back
        previous = chunk.text
        if chunk.text:
            assert_sendable(chunk, limit=10**6)
        prose = outside_code(chunk)
        assert "](" not in prose, prefix
        assert "`" not in prose, prefix
        assert "**" not in prose, prefix
        assert "~~" not in prose, prefix
        assert_split_matches(chunk, split(prefix, partial=True, limit=64), limit=64)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(RICH)), st.integers(20, 200))
def test_any_prefix_splits_like_its_render(size, limit):
    prefix = RICH[:size]
    assert_split_matches(
        render(prefix, partial=True), split(prefix, partial=True, limit=limit), limit
    )


# --- Splitting ------------------------------------------------------------------------------


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def test_short_reply_is_one_chunk():
    [chunk] = split("**hi** there")
    assert chunk == render("**hi** there")


def test_cut_prefers_a_blank_line():
    markdown = "one two three four\n\nfive six\nseven eight nine ten"
    assert texts(split(markdown, limit=35)) == [
        "one two three four",
        "five six\nseven eight nine ten",
    ]


def test_cut_prefers_a_line_break_to_a_space():
    markdown = "one two three\n\nfour five six\nseven eight nine"
    assert texts(split(markdown, limit=40)) == [
        "one two three\n\nfour five six",
        "seven eight nine",
    ]


def test_cut_prefers_a_space_to_a_word():
    # telegramify's split_entities gives ["alpha be", "ta gamma", " delta"] here.
    assert texts(split("alpha beta gamma delta", limit=8)) == ["alpha", "beta", "gamma", "delta"]


def test_word_longer_than_the_limit_is_cut_mid_word():
    assert texts(split("x " + "abcdefghijklmnopqrstuvwxyz", limit=10)) == [
        "x",
        "abcdefghij",
        "klmnopqrst",
        "uvwxyz",
    ]


def test_cut_avoids_the_inside_of_an_entity():
    chunks = split("intro words here **bold phrase that is long** tail", limit=30)
    assert texts(chunks) == ["intro words here", "bold phrase that is long tail"]
    assert covered(chunks[1], only(chunks[1], "bold")) == "bold phrase that is long"


def test_entity_across_a_cut_is_clipped_into_both():
    chunks = split("**" + " ".join(["word"] * 10) + "**", limit=20)
    assert len(chunks) == 3
    for chunk in chunks:
        bold = only(chunk, "bold")
        assert (bold.offset, bold.length) == (0, units16(chunk.text))


def test_code_block_cut_reopens_with_its_language():
    markdown = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(12)) + "\n```"
    chunks = split(markdown, limit=40)
    assert len(chunks) > 2
    for chunk in chunks:
        pre = only(chunk, "pre")
        assert pre.language == "python"
        assert (pre.offset, pre.length) == (0, units16(chunk.text))


def long_reply() -> str:
    """About 9,000 characters: paragraphs, lists, a short and a long code block, emoji."""
    paragraph = (
        "This paragraph has **bold**, *italic*, `inline code`, a [link](https://example.com/"
        "page) and snake_case words 😀. It is long enough to look like an answer from a model."
    )
    items = "\n".join(f"- item {i} with *emphasis* and `x_{i}`" for i in range(8))
    short_code = "```bash\npip install kamiya-bot\nkamiya-bot run\n```"
    long_code = "```python\n" + "\n".join(
        f"def handler_{i}(update, context):\n    return await reply(update, {i})"
        for i in range(70)
    )
    long_code += "\n```"
    parts = [paragraph, items, paragraph, short_code, paragraph, long_code, paragraph, items]
    reply = "\n\n".join(parts)
    while len(reply) < 9000:
        reply += "\n\n" + paragraph
    return reply


def test_long_reply_splits_into_valid_messages_and_the_code_reopens():
    reply = long_reply()
    assert 9000 <= len(reply) < 9400
    whole = render(reply)
    chunks = split(reply)
    assert len(chunks) >= 3
    assert_split_matches(whole, chunks, MAX_UTF16)
    python = [c for c in chunks if any(e.language == "python" for e in c.entities)]
    assert len(python) == 2  # the long block spans a cut ...
    assert covered(python[1], only(python[1], "pre")).startswith("def handler_")
    assert python[1].entities[0].offset == 0  # ... and the next message opens with it


def test_messages_before_the_last_stay_put_while_the_reply_streams():
    # The sink sends every chunk but the last for good once the reply outgrows a message.
    reply = long_reply()
    sent: list[Chunk] = []
    for size in range(0, len(reply) + 1, 50):
        chunks = split(reply[:size], partial=True)
        assert chunks[: len(sent)] == sent[: len(chunks)], size
        sent += chunks[len(sent) : -1]
    assert split(reply)[: len(sent)] == sent
    assert len(sent) >= 2


def test_emoji_fill_a_message_to_exactly_4096_units():
    assert texts(split("😀" * 2048)) == ["😀" * 2048]  # 4096 units, 2048 characters
    chunks = split("😀" * 2049)  # 4098 units, though len() is only 2049
    assert texts(chunks) == ["😀" * 2048, "😀"]
    assert utf16_len(chunks[0].text) == 4096


def test_emoji_between_words_cut_at_spaces_within_the_limit():
    chunks = split("a😀 " * 1500)
    # 1024 groups of 4 units, less the space at the cut
    assert [utf16_len(c.text) for c in chunks] == [4095, 1903]
    assert all(c.text.endswith("a😀") for c in chunks)


def test_odd_limit_never_splits_a_surrogate_pair():
    chunks = split("a" + "😀" * 30, limit=21)
    assert texts(chunks) == ["a" + "😀" * 10, "😀" * 10, "😀" * 10]


def test_mid_word_cut_keeps_emoji_sequences_whole():
    family = "👨\u200d👩\u200d👧"  # 8 units
    chunks = split(family * 10, limit=20)
    assert all(c.text.replace(family, "") == "" for c in chunks)


def test_limit_below_two_units_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        split("text", limit=1)


# --- Properties -----------------------------------------------------------------------------

MARKDOWNISH = st.lists(
    st.sampled_from(
        [
            *"*_`[]()#>-~|!<$\\ \n\t",
            *("a", "b", "xy", "😀", "👍🏽", "é", "\u200d", "http://e.x"),
            *("```", "```py\n", "**", "__", "||", "\n\n", "- ", "1. ", "> "),
        ]
    ),
    max_size=80,
).map("".join)
ANY_TEXT = st.one_of(st.text(), MARKDOWNISH, st.text(alphabet="ab *_`\n😀", max_size=400))
LIMITS = st.one_of(st.integers(20, 64), st.integers(20, MAX_UTF16))


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT, LIMITS, st.booleans())
def test_split_of_anything_is_sendable_and_complete(markdown, limit, partial):
    assert_split_matches(
        render(markdown, partial=partial), split(markdown, partial=partial, limit=limit), limit
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(ANY_TEXT, min_size=1, max_size=40).map("\n\n".join), st.integers(20, 400))
def test_split_of_long_markdownish_text_is_sendable_and_complete(markdown, limit):
    assert_split_matches(render(markdown), split(markdown, limit=limit), limit)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=60))
def test_render_takes_any_code_point(markdown):
    chunk = render(markdown, partial=True)
    if chunk.text:
        assert_sendable(chunk, limit=10**6)
