"""LLM Markdown → Telegram plain text + entities, cut into messages of at most 4096 UTF-16 units.

Replies are sent as text plus ``entities``, never with ``parse_mode``: Telegram cannot fail to
parse them, so a reply that is half Markdown (it is still streaming) or odd Markdown (it came from
a model) always goes out. telegramify-markdown does the conversion; this module adds what a chat
relay needs around it:

* **Prose stays prose.** Before converting, constructs that chat text almost never means are
  escaped, so the parser reads them as text: ``*`` emphasis inside a word (``a*b*c``,
  ``2*3*4``), ``__dunder__`` names, raw HTML (the library drops it, so ``Vec<String>`` would lose
  ``<String>``) and ``||`` (the library's spoiler syntax, which ``a || b`` would trigger).
  ``snake_case`` needs nothing: CommonMark never opens ``_`` emphasis inside a word.
* **Partial replies** (``partial=True``, a reply still streaming) hold back the unfinished tail
  rather than show markup that the next update turns into formatting:

  1. A last line made only of Markdown markers (`` ` ~ * _ - + = # | : >``, a list number, an
     empty task box, blanks) is dropped: a fence, bullet, heading or rule being typed. A setext
     ``-``/``=`` line would otherwise turn the paragraph above into a heading for one update. So
     is a last line opening with ``|`` that no table holds yet: a table header is raw text
     until its delimiter row is complete.
  2. If the text ends inside a code block, nothing more is held back. CommonMark runs an unclosed
     fence to the end of the document, so the block is a ``pre`` with its language from its
     first line on; closing it by hand would change nothing.
  3. Otherwise, on the last line, everything from the first opener the parser left unmatched is
     held back: a backtick run, a ``*``/``_`` run or ``~~`` that can still open (followed by a
     non-blank or the end), or a ``[``/``![`` not already plain brackets (``a[i] = 1``). Only
     openers among the last 80 characters count, or any ``[`` once ``](`` follows it: an older
     opener is most likely a literal character, and holding it back would hide the paragraph.
     Failing that, a run of `` * _ ~ ` `` that ends the text after a blank (``see **``) goes.

  What is held back shows once its construct closes, the line ends, or at the final render.
* **Splitting** cuts the rendered text, so entities stay consistent: at a blank line, else a line
  break, else a space, and only as a last resort inside a word (never inside a surrogate pair or
  right before a joiner or combining mark). A cut that leaves the message at least half full is
  preferred, then one outside every entity, then the rank above, then the latest. Entities across
  a cut are clipped into both messages, so a code block reopens with its language.
  telegramify's ``split_entities`` cuts only at line breaks, else exactly at the limit (mid-word
  with spaces around), ignores paragraphs and entities, and leaves the newline in the text.

**Whitespace contract**: ``render`` strips the whole text; each cut drops the whitespace run it
sits on (newlines, blank lines, spaces, the next line's indentation), a mid-word cut drops
nothing. So the chunks' texts, in order, are the rendered text with one whitespace run removed at
each cut, and each starts and ends with a non-blank character (Telegram trims message text).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Final

import pyromark
import telegramify_markdown
from telegram import MessageEntity, User
from telegramify_markdown import RenderConfig, utf16_len
from telegramify_markdown.converter import STANDARD_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pyromark.event import Event, Range

    _Parsed = Sequence[tuple[Event, Range]]
    # An entity's UTF-16 (offset, length) in the text at hand, and the library's entity for
    # the rest of its fields; clipping makes new spans, never copies of the entity.
    _Span = tuple[int, int, telegramify_markdown.MessageEntity]

__all__ = ["MAX_UTF16", "Chunk", "render", "split", "utf16_len"]

MAX_UTF16: Final = 4096
"""Telegram's text limit (``MessageLimit.MAX_TEXT_LENGTH``), counted here in UTF-16 units."""

# Our own copy of the library's settings: the global one is process-wide mutable state.
_CONFIG: Final = RenderConfig.isolated()

_HOLD_WINDOW: Final = 80  # characters; see rule 3 in the module docstring
_ESCAPE_PASSES: Final = 8  # each pass escapes what the last one exposed; a document needs 1-3

_NEWLINES = re.compile(r"\r\n?")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_MARKUP_LINE = re.compile(
    r"[ \t>]*"  # indentation, quote markers
    r"(?:(?:[-+*]|\d{1,9}[.)])[ \t]+(?:\[[ xX]?\]?)?)?"  # a list item, maybe a task box
    r"(?:\d{1,9}[.)]?)?"  # an ordered-list number
    r"[-+*=#_~`|: \t]*"  # bullets, fences, rules, heading marks, setext and table lines
)
_TABLE_ROW = re.compile(rb"[ \t>]*\|")
_PLAIN_BRACKETS = re.compile(rb"[^\[\]\n]*\][^(]")
_DANGLING = re.compile(rb"(?:^|[ \t])([*_~`]+)\Z", re.MULTILINE)
_DUNDER = re.compile(rb"__[a-z0-9_]+__")
_BLANKS = re.compile(r"\s+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_DELIMITERS: Final = frozenset("*_~`")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One message: plain text and the entities that format it (offsets in UTF-16 units).

    ``render`` returns the whole reply in one Chunk, which may exceed the limit; ``split``
    returns Chunks that each fit a message.
    """

    text: str
    entities: tuple[MessageEntity, ...]


def render(markdown: str, *, partial: bool = False) -> Chunk:
    """The whole reply as text + entities; ``partial`` holds back an unfinished tail.

    The text is stripped, and empty if nothing is visible yet. Never raises on any ``str``.
    """
    text, spans = _convert(markdown, partial=partial)
    return Chunk(text, tuple(map(_to_telegram, spans)))


def split(markdown: str, *, partial: bool = False, limit: int = MAX_UTF16) -> list[Chunk]:
    """The reply as messages of at most ``limit`` UTF-16 units each; ``[]`` if it is blank.

    ``limit`` below 2 is refused: a character outside the BMP takes 2 units.
    """
    if limit < 2:
        raise ValueError(f"limit must be at least 2 UTF-16 units, got {limit}")
    text, spans = _convert(markdown, partial=partial)
    return [
        Chunk(text[start:stop], tuple(map(_to_telegram, part)))
        for start, stop, part in _cut(text, spans, limit)
    ]


# --- Markdown in ----------------------------------------------------------------------------


def _convert(markdown: str, *, partial: bool) -> tuple[str, list[_Span]]:
    source = _sanitize(markdown)
    if partial:
        source = _hold_back(source)
    source = _escape_literals(source, partial=partial)
    text, entities = telegramify_markdown.convert(source, config=_CONFIG)
    stripped = text.strip()
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    spans = [(e.offset, e.length, e) for e in entities]
    return stripped, _clip(spans, lead, lead + utf16_len(stripped))


def _sanitize(markdown: str) -> str:
    """Unify line ends; drop control characters; replace lone surrogates.

    The parser cannot take a lone surrogate (it crashes encoding to UTF-8, as would the request
    to Telegram), and Telegram drops control characters, which could leave a message blank.
    """
    source = _CONTROLS.sub("", _NEWLINES.sub("\n", markdown))
    return _SURROGATES.sub("\N{REPLACEMENT CHARACTER}", source)


def _parse(source: str) -> _Parsed:
    # The library's own options, so we see the document exactly as its converter will.
    return tuple(pyromark.events_with_range(source, options=STANDARD_OPTIONS))


def _hold_back(source: str) -> str:
    """Rules 1-3 of the module docstring: drop the unfinished tail of a streaming reply."""
    source = _without_markup_line(source)
    data = source.encode()
    cut = _open_tail(_parse(source), data)
    if cut is None:
        return source
    # What the cut leaves may end in a bare marker (``text\n- **b`` → ``text\n-``): rule 1 again.
    return _without_markup_line(data[:cut].decode().rstrip())


def _without_markup_line(source: str) -> str:
    head, _, last = source.rpartition("\n")
    return head if _MARKUP_LINE.fullmatch(last) else source


def _open_tail(events: _Parsed, data: bytes) -> int | None:
    """UTF-8 offset where the unfinished tail starts (rule 1's table line, rule 3), if any."""
    line_start = data.rfind(b"\n") + 1
    block, runs = _scan_tail(events, data, line_start)
    if block == "code":
        return None
    if block != "table" and _TABLE_ROW.match(data, line_start):
        return line_start
    window = len(data) - len(data.decode()[-_HOLD_WINDOW:].encode())
    for start, end in runs:
        kind, after = data[start:end], data[end : end + 1]
        if kind.endswith(b"["):
            rest = data[end:]
            if _PLAIN_BRACKETS.match(rest):
                continue
            if b"](" in rest or start >= window:
                return start
        elif start >= window and (
            kind[:1] == b"`" or (kind != b"~" and after not in (b" ", b"\t"))
        ):
            return start
    # A marker after a blank at the very end is not a delimiter run until its next character
    # arrives, so the parser keeps it inside the text.
    dangling = _DANGLING.search(data, line_start)
    return None if dangling is None else dangling.start(1)


def _scan_tail(events: _Parsed, data: bytes, line_start: int) -> tuple[str, list[tuple[int, int]]]:
    """The block the text ends in (``"code"``, ``"table"`` or ``""``), and the ``[start, end)``
    of the delimiter runs and brackets the parser left as text from ``line_start`` on."""
    block = ""
    runs: list[tuple[int, int]] = []
    for event, span in events:
        start, end = span["start"], span["end"]
        if not isinstance(event, dict):
            continue
        if "Start" in event and end >= len(data):
            tag = event["Start"]
            if isinstance(tag, dict) and "CodeBlock" in tag:
                return "code", []
            if isinstance(tag, dict) and "Table" in tag:
                block = "table"
        if start < line_start or "Text" not in event:
            continue
        literal = event["Text"]
        if end - start != len(literal.encode()):
            continue  # backslash-escaped: text for good
        if literal in ("[", "![") or (literal and set(literal) <= _DELIMITERS):
            # The parser emits ``**`` as two events; a run is what can open or close.
            if runs and runs[-1][1] == start and data[start - 1 : start] == literal[:1].encode():
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
    return block, runs


def _escape_literals(source: str, *, partial: bool) -> str:
    """Escape the constructs chat prose does not mean (module docstring), until none is left.

    Escaping one may expose another (an HTML block escaped becomes a paragraph whose Markdown
    is read), so this re-parses; escaped characters never match again, so it ends. In a
    partial reply the end of the text counts as a letter: ``a*b*`` may yet become ``a*b*c``.
    """
    for _ in range(_ESCAPE_PASSES):
        data = source.encode()
        offsets = _literal_offsets(_parse(source), data, open_end=partial)
        if not offsets:
            break
        bounds = [0, *sorted(set(offsets)), len(data)]
        source = b"\\".join(data[a:b] for a, b in pairwise(bounds)).decode()
    return source


def _literal_offsets(events: _Parsed, data: bytes, *, open_end: bool) -> list[int]:
    """UTF-8 offsets that need a backslash: the delimiters of constructs to read as text."""
    offsets: list[int] = []
    in_code = False  # a code block's lines come as Text events too
    for event, span in events:
        start, end = span["start"], span["end"]
        if not isinstance(event, dict):
            continue
        if "InlineHtml" in event:
            offsets.append(start)
        elif "End" in event:
            in_code = in_code and event["End"] != "CodeBlock"
        elif "Text" in event and not in_code:
            # ``a || b``: escape each second pipe so the library sees no ``||`` spoiler.
            pipes = data.find(b"||", start, end)
            while pipes >= 0:
                offsets.append(pipes + 1)
                pipes = data.find(b"||", pipes + 2, end)
        elif "Start" in event:
            tag = event["Start"]
            in_code = in_code or (isinstance(tag, dict) and "CodeBlock" in tag)
            if tag == "HtmlBlock" and (bracket := data.find(b"<", start, end)) >= 0:
                offsets.append(bracket)
            elif (
                tag == "Emphasis"
                and data[start : start + 1] == b"*"
                and _inside_word(data, start, end, open_end=open_end)
            ):
                offsets += (start, end - 1)
            elif tag == "Strong" and _DUNDER.fullmatch(data, start, end):
                offsets += (start, start + 1, end - 2, end - 1)
    return offsets


def _inside_word(data: bytes, start: int, end: int, *, open_end: bool) -> bool:
    """Whether ``data[start:end]`` has an ASCII letter or digit right before and after it."""
    after = data[end : end + 1]
    return data[start - 1 : start].isalnum() and (after.isalnum() or (open_end and not after))


# --- Messages out ---------------------------------------------------------------------------


def _cut(text: str, spans: list[_Span], limit: int) -> list[tuple[int, int, list[_Span]]]:
    """``(start, stop, spans)`` per message: ``text[start:stop]`` fits ``limit`` units."""
    if not text:
        return []
    # UTF-16 offset of text[i]: i plus the astral characters before it. They are rare, so a
    # sorted list of them beats a table of all offsets, which costs a loop over every character.
    astral = [m.start() for m in _ASTRAL.finditer(text)]

    def units(i: int) -> int:
        return i + bisect.bisect_left(astral, i)

    ordered = sorted(spans, key=lambda span: span[0])
    opens = [offset for offset, _, _ in ordered]
    reach = list(accumulate((offset + length for offset, length, _ in ordered), max))
    pieces: list[tuple[int, int]] = []
    start, total = 0, units(len(text))
    while total - (first := units(start)) > limit:
        end = bisect.bisect_right(range(len(text) + 1), first + limit, key=units) - 1  # fits
        best: tuple[bool, bool, int, int] | None = None
        resume = end
        for run in _BLANKS.finditer(text, start + 1, end + 1):
            a, b = run.span()
            if b == end + 1 and (more := _BLANKS.match(text, b)):
                b = more.end()  # the run goes on past the window
            lo, hi = units(a), units(b)
            k = bisect.bisect_left(opens, lo)  # entities that open before the cut
            key = (
                2 * (lo - first) >= limit,
                not (k and reach[k - 1] > hi),
                text.count("\n", a, b),
                a,
            )
            if best is None or key > best:
                best, resume = key, b
        if best is None:  # one word fills the window: cut it, but not inside a grapheme
            stop = end
            while stop > start + 1 and _joins(text, stop):
                stop -= 1
            pieces.append((start, stop))
            start = stop
        else:
            pieces.append((start, best[3]))
            start = resume
    pieces.append((start, len(text)))
    return [(a, b, _clip(spans, units(a), units(b))) for a, b in pieces]


def _joins(text: str, i: int) -> bool:
    """Whether ``text[i]`` belongs to the grapheme of ``text[i - 1]`` (roughly: no UAX 29)."""
    char = text[i]
    return (
        text[i - 1] == "\N{ZERO WIDTH JOINER}"
        or char in "\N{ZERO WIDTH JOINER}\ufe0e\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin tone
        or "\U000e0020" <= char <= "\U000e007f"  # flag tag
        or unicodedata.combining(char) != 0
    )


def _clip(spans: Iterable[_Span], lo: int, hi: int) -> list[_Span]:
    """The spans' parts within UTF-16 ``[lo, hi)``, shifted to start at 0, outer first."""
    clipped = [
        (start - lo, end - start, entity)
        for offset, length, entity in spans
        if (start := max(offset, lo)) < (end := min(offset + length, hi))
    ]
    return sorted(clipped, key=lambda span: (span[0], -span[1]))


def _to_telegram(span: _Span) -> MessageEntity:
    offset, length, entity = span
    unix_time = entity.unix_time
    return MessageEntity(
        type=entity.type,
        offset=offset,
        length=length,
        url=entity.url,
        user=None if entity.user is None else User.de_json(entity.user),
        language=entity.language,
        custom_emoji_id=entity.custom_emoji_id,
        date_time_format=entity.date_time_format,
        unix_time=None if unix_time is None else datetime.fromtimestamp(unix_time, tz=UTC),
    )
