"""LLM Markdown → Discord messages of at most 2000 characters, cut where a reader would cut.

Discord renders Markdown itself, so unlike ``bots.telegram.format`` nothing is converted: this
module works on the raw text, and only decides where a long reply continues in a new message.

* **Where.** At a blank line, else a line break, else a space, else after CJK punctuation
  (``。``, ``，``…: Chinese has no spaces), and only as a last resort inside a word, keeping
  graphemes whole if it can (surrogate pairs, combining marks, joiners, skin tones, flags).
  A cut that leaves the message at least half full beats any that does not (no message holds
  just a short paragraph when the next one would fit), then the rank decides, then the later
  cut. Among the last 16 space cuts, the latest outside ``**bold**``, `` `code` ``, ``~~``,
  ``||`` and link text on its line wins (best effort). A space cut that would start the next
  message with a heading, list or quote marker ranks below punctuation; none inside a line may
  split a fence line or leave ```` ``` ```` or ``~~~`` to start the next message, which would
  open a block there.
* **Code fences** (CommonMark's: up to 3 spaces, 3+ backticks or tildes, an info string, which
  after backticks holds no backtick; closed by a line of the same mark, at least as many, and
  only whitespace after). A fence open at a cut is closed at the end of the message with its own
  run (``"\\n```"``) and reopened at the start of the next with its opening line
  (``"```python\\n"``), so each message renders on its own. Inside code, line breaks and blank
  lines are the cuts to take; a cut that would leave an empty block (right after the opening
  line, right before the closing one) ranks just above a cut inside a word. ``fence_at`` and
  ``tidy_partial`` see fences as ``split`` does: what is open at a position is what is open at
  the end of the text up to there, read as a whole document.

**Whitespace contract.** The reply's leading and trailing whitespace is not sent (Discord trims
messages anyway), so a blank reply gives ``[]``. A cut inside a word drops nothing. Any other cut
sits on a whole run of whitespace (``str.isspace``) and drops it, except the indentation after
its last line break, which stays for code's sake: a paragraph or line cut drops the line breaks,
blank lines and the trailing blanks before them, a space cut the space (one, in prose). Only an
indentation too long to leave room for a visible character is dropped with its run. So every
message shows something, none ends in whitespace, and with the added fence lines removed the
reply is ``lead + m[0] + gap[0] + m[1] + … + trail``.

**Limits** count code points (Discord counts as Python's ``len``), added fence lines included,
and must be at least ``MIN_LIMIT``. A fence is carried across a cut only if its opening line,
two line breaks and its run take at most half the smaller limit: a longer one (a pathological
opening line) is cut like text, so ``split`` never fails on content. At ``MIN_LIMIT`` a bare
```` ``` ```` block is carried; at 2000, any opening line up to ~990 characters.

Finding a cut searches back from the end of the window, rank by rank (``rfind`` for line
breaks, regexes over the reversed text for spaces), so it visits a few candidates, not every
space: a 10,000-character reply splits in a fraction of a millisecond.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from itertools import islice
from typing import Final

__all__ = ["MAX_CHARS", "MIN_LIMIT", "fence_at", "split", "tidy_partial"]

MAX_CHARS: Final = 2000
"""Discord's message content limit, in code points."""

MIN_LIMIT: Final = 16
"""The smallest limit ``split`` takes: a bare fence's ``"```\\n"`` + ``"\\n```"`` in half of it."""

# Cut ranks, best last; a cut inside a word ranks below them all.
_EDGE, _MARKED, _PUNCT, _SPACE, _LINE, _PARAGRAPH = range(1, 7)

# A bold phrase or link text rarely holds more words; past that, a fuller message wins.
_INLINE_TRIES: Final = 16
# Cuts inside a word tried for one that keeps graphemes whole: a grapheme is rarely longer.
_BACK_OFF: Final = 32

_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)", re.MULTILINE)
_STOPS = re.compile(r"(?=[、。！，：；？])")  # reversed: after CJK punctuation (no spaces)
_BLANKS = re.compile(r"\s+")
_INSIDE_WORD = re.compile(r"(?<=\S)(?=\S)")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")  # a line break, then blank lines
# What a line may not start with where a cut inside a line would make it start: a fence (it
# would swallow the message), or outside code a heading, list item or quote (Discord's markers).
_FENCE_MARKS: Final = ("```", "~~~")
_BLOCK_START = re.compile(r"(?:#{1,3}|-#|[-*+]|>{1,3}|\d{1,9}[.)])(?:[ \t]|$)")
_INLINE_PAIRS: Final = ("**", "__", "~~", "||")
_ZWJ: Final = "\N{ZERO WIDTH JOINER}"
_VIRAMA: Final = 9  # the canonical combining class of viramas, which join two consonants


@dataclass(frozen=True, slots=True)
class _Open:
    """An open code fence: its opening line (trailing blanks removed) and its marker run."""

    line: str
    marker: str


def _step(state: _Open | None, match: re.Match[str]) -> _Open | None:
    """The fence state after one line that starts like a fence (``_FENCE_LINE``)."""
    marker, rest = match[1], match[2]
    if state is None:
        if marker[0] == "`" and "`" in rest:
            return None  # ```a`b``` is inline code, not a fence
        return _Open(match[0].rstrip(), marker)
    if marker[0] == state.marker[0] and len(marker) >= len(state.marker) and not rest.strip():
        return None
    return state


@dataclass(frozen=True, slots=True)
class _Fences:
    """The fence-like lines of a text, to ask what is open at any position in O(log n)."""

    text: str
    starts: tuple[int, ...]  # line starts, ascending
    ends: tuple[int, ...]  # line ends (the "\n" or the end of the text)
    after: tuple[_Open | None, ...]  # the state after each line
    opened: frozenset[int]  # where an opening line's text ends (before trailing blanks)
    closing: frozenset[int]  # where a closing line starts
    longest: int  # the longest run on any of them: a bound on a closing run added at a cut

    @classmethod
    def scan(cls, text: str) -> _Fences:
        lines = list(_FENCE_LINE.finditer(text))
        after: list[_Open | None] = []
        opened: set[int] = set()
        closing: set[int] = set()
        state: _Open | None = None
        for match in lines:
            new = _step(state, match)
            if state is None and new is not None:
                opened.add(match.start() + len(match[0].rstrip()))
            elif state is not None and new is None:
                closing.add(match.start())
            after.append(state := new)
        return cls(
            text,
            starts=tuple(match.start() for match in lines),
            ends=tuple(match.end() for match in lines),
            after=tuple(after),
            opened=frozenset(opened),
            closing=frozenset(closing),
            longest=max((len(match[1]) for match in lines), default=0),
        )

    def at(self, pos: int) -> _Open | None:
        """The fence open at ``pos``, as ``fence_at(text[:pos])`` sees it (a partial last line
        counts as a line)."""
        i = bisect.bisect_left(self.starts, pos) - 1
        if i < 0:
            return None
        if pos > self.ends[i]:
            return self.after[i]
        before = self.after[i - 1] if i else None
        match = _FENCE_LINE.match(self.text, self.starts[i], pos)
        return before if match is None else _step(before, match)

    def on_fence_line(self, pos: int) -> bool:
        """Whether ``pos`` lies on a line that starts like a fence: cutting it would change what
        the line is (``"```python"`` cut to ``"```"`` is another fence)."""
        i = bisect.bisect_right(self.starts, pos) - 1
        return i >= 0 and pos <= self.ends[i]


def fence_at(markdown: str) -> str | None:
    """The opening line of the code fence ``markdown`` ends inside, if any (``"```python"``).

    A reply frozen mid-block continues in a new message that must reopen the block first.
    The last line counts even without its line break: ``"```py"`` is an open fence.
    """
    state = _Fences.scan(markdown).at(len(markdown))
    return None if state is None else state.line


def tidy_partial(markdown: str) -> str:
    """A streaming reply with its open code fence, if any, closed, so it shows as code.

    The fence's own run closes it (``"```"``, or ``"~~~~"`` for a ``~~~~`` block). A last line
    that may be the closing line being typed (``"``"``) is completed instead of followed, and a
    reply ending in a line break gets no blank line added. Nothing else needs fixing: Discord
    renders half-typed ``**bold`` as the literal text it is.
    """
    state = _Fences.scan(markdown).at(len(markdown))
    if state is None:
        return markdown
    char, length = state.marker[0], len(state.marker)
    last = markdown[markdown.rfind("\n") + 1 :]
    typed = len(last.lstrip(" "))
    if typed < length and len(last) - typed <= 3 and last.lstrip(" ") == char * typed:
        return markdown + char * (length - typed)
    return f"{markdown}\n{state.marker}"


def split(markdown: str, *, limit: int = MAX_CHARS, first_limit: int | None = None) -> list[str]:
    """The reply as Discord messages in order; ``[]`` if it is blank.

    The first message holds at most ``first_limit`` characters (it carries a quoted header),
    the others ``limit``. Raises ``ValueError`` if either is below ``MIN_LIMIT``.
    """
    first = limit if first_limit is None else first_limit
    if min(limit, first) < MIN_LIMIT:
        raise ValueError(f"limits must be at least {MIN_LIMIT}, got {limit} and {first}")
    layout = _Layout(markdown, markdown[::-1], _Fences.scan(markdown), min(limit, first) // 2)
    start = len(markdown) - len(markdown.lstrip())
    stop = len(markdown.rstrip())
    messages: list[str] = []
    while start < stop:
        head = layout.opener(start)
        room = (limit if messages else first) - len(head)
        indent = _BLANKS.match(markdown, start)  # kept by the last cut
        visible = start if indent is None else indent.end()
        if stop - start > room and visible - start + 1 + len(layout.closer(start)) > room:
            start = visible  # an indentation that leaves no room for anything else: dropped
        if stop - start <= room:
            messages.append(head + markdown[start:stop])
            break
        cut, resume = layout.cut(start, room)
        messages.append(head + markdown[start:cut] + layout.closer(cut))
        start = resume
    return messages


@dataclass(frozen=True, slots=True)
class _Layout:
    """One reply being cut: its text, its fences, and the most a carried fence may cost."""

    text: str
    backwards: str  # the text reversed: a regex over it finds the latest cuts first
    fences: _Fences
    carry: int  # opening line + its line break + line break + closing run, at most

    def carried(self, pos: int) -> _Open | None:
        """The fence open at ``pos``, if a cut there closes and reopens it."""
        state = self.fences.at(pos)
        if state is None or len(state.line) + len(state.marker) + 2 > self.carry:
            return None
        return state

    def opener(self, pos: int) -> str:
        return "" if (state := self.carried(pos)) is None else f"{state.line}\n"

    def closer(self, pos: int) -> str:
        return "" if (state := self.carried(pos)) is None else f"\n{state.marker}"

    def cut(self, start: int, room: int) -> tuple[int, int]:
        """``(cut, resume)``: this message takes ``text[start:cut]``, the next one starts at
        ``resume``. ``room`` already excludes this message's opening line; a closing run, if a
        fence is open at the cut, must fit in it too.

        The best cut is the latest of the best rank among those that leave the message at least
        half full, else among the rest. Searching rank by rank from the end of the window, and
        line breaks by ``rfind``, visits a few candidates instead of every space.
        """
        visible = _BLANKS.match(self.text, start)
        lo = start if visible is None else visible.end()  # the message must reach past it
        end = start + room  # the latest cut that might fit
        half = start + (room + 1) // 2  # from here on, the message is at least half full
        for first, last in ((max(half, lo + 1), end), (lo + 1, min(half - 1, end))):
            if first <= last:
                found = self._line_cut(first, last, end) or self._other_cut(first, last, end)
                if found:
                    return found
        return self._word_cut(lo, end)

    def _fits(self, cut: int, end: int) -> bool:
        """Whether a message cut at ``cut`` ends by ``end`` with its closing run, if any."""
        return cut < end - self.fences.longest or cut + len(self.closer(cut)) <= end

    def _line_cut(self, first: int, last: int, end: int) -> tuple[int, int] | None:
        """The latest paragraph cut in ``[first, last]`` that fits, else the latest line cut.

        Blank lines come from a regex, line breaks from ``rfind`` back from the end, and both
        stop at the first that fits: a window of short lines costs a few steps, not one a line.
        """
        text = self.text
        tail = _BLANKS.match(text, last)  # a run at ``last`` may reach a line break beyond it
        stop = last + 1 if tail is None else tail.end()
        blanks = [match.start() for match in _BLANK_LINES.finditer(text, first, stop)]
        for newline in reversed(blanks):
            found = self._at_newline(newline, first, last, end)
            if found is None:
                break
            if found[0] == _PARAGRAPH:
                return found[1:]
        newline = text.rfind("\n", first, stop)
        while newline >= 0:
            found = self._at_newline(newline, first, last, end)
            if found is None:
                break
            if found[0] == _LINE:
                return found[1:]
            newline = text.rfind("\n", first, found[1])
        return None

    def _at_newline(
        self, newline: int, first: int, last: int, end: int
    ) -> tuple[int, int, int] | None:
        """``(rank, cut, resume)`` for the run holding ``text[newline]``, rank -1 if it does not
        fit; ``None`` if the run starts before ``first`` (and so does every earlier one)."""
        text, size = self.text, len(self.text)
        # The blanks before the line break, counted over the reversed text: C, not a loop.
        before = _BLANKS.match(self.backwards, size - newline, size - first + 1)
        cut = newline if before is None else newline - len(before[0])
        if cut < first:
            return None
        run = _BLANKS.match(text, newline)
        rank, resume = self._classify(cut, newline + 1 if run is None else run.end(), last)
        return (rank if self._fits(cut, end) else -1), cut, resume

    def _other_cut(self, first: int, last: int, end: int) -> tuple[int, int] | None:
        """With no line break to cut at in ``[first, last]``: a space cut, else one after
        punctuation, else the latest marked cut, else the latest edge cut."""
        space, *worse = self._scan_back(_BLANKS, _SPACE, first, last, end)
        if space is not None:
            return space
        punct, *worst = self._scan_back(_STOPS, _PUNCT, first, last, end)
        if punct is not None:
            return punct
        marked = [cut for cut in (worse[0], worst[0]) if cut is not None]
        edges = [cut for cut in (worse[1], worst[1]) if cut is not None]
        return max(marked or edges, default=None)

    def _scan_back(
        self, pattern: re.Pattern[str], rank: int, first: int, last: int, end: int
    ) -> tuple[tuple[int, int] | None, ...]:
        """``(cut of rank, marked cut, edge cut)``, each the latest that fits in ``[first,
        last]``, except that a cut of ``rank`` inside an inline construct gives way to one of
        the next ``_INLINE_TRIES`` that is not.

        ``pattern`` runs over the reversed text from the end of the window, so the search ends
        at the first cut that will do; the window is one character longer, so that a run that
        starts before ``first`` shows as such and ends the search.
        """
        text, size = self.text, len(self.text)
        best, tries, marked, edge = None, 0, None, None
        for match in pattern.finditer(self.backwards, size - last - 1, size - first + 1):
            cut, resume = size - match.end(), size - match.start()
            if cut < first:
                break
            if cut > last or (cut == resume and text[cut].isspace()):
                continue  # past the window, or a whitespace run is the cut there
            kind, resume = self._classify(cut, resume, last)
            if kind < 0 or not self._fits(cut, end):
                continue
            if kind == rank:
                if self._outside_inline(cut):
                    return (cut, resume), marked, edge
                best, tries = best or (cut, resume), tries + 1
                if tries == _INLINE_TRIES:
                    break
            elif kind == _MARKED:
                marked = marked or (cut, resume)
            elif kind == _EDGE:
                edge = edge or (cut, resume)
        return best, marked, edge

    def _outside_inline(self, cut: int) -> bool:
        return self.fences.at(cut) is not None or not _inside_inline(self.text, cut)

    def _classify(self, cut: int, resume: int, last: int) -> tuple[int, int]:
        """``(rank, resume)`` for a cut at a whitespace run ``[cut, resume)`` or, if it is
        empty, after punctuation; rank -1 if it is no cut at all."""
        text, fences = self.text, self.fences
        if cut == resume:
            if _joins(text, cut):
                return -1, resume
            return self._inside_line(cut, resume, _PUNCT), resume
        if resume == last + 1 and (more := _BLANKS.match(text, resume)):
            resume = more.end()  # the run goes on past the window
        newline = text.rfind("\n", cut, resume)
        if newline < 0:
            return self._inside_line(cut, resume, _SPACE), resume
        resume = newline + 1  # keep the next line's indentation
        if cut in fences.opened or resume in fences.closing:
            return _EDGE, resume
        return (_PARAGRAPH if text.count("\n", cut, newline) else _LINE), resume

    def _inside_line(self, cut: int, resume: int, rank: int) -> int:
        """``rank`` for a cut inside a line, unless it changes what a line is: no cut at all on
        a fence line or before a fence mark (the next message would open a block with it), and
        a poor one before a block marker outside code (a heading, list item or quote)."""
        text = self.text
        if self.fences.on_fence_line(cut) or text.startswith(_FENCE_MARKS, resume):
            return -1
        if _BLOCK_START.match(text, resume) and self.fences.at(cut) is None:
            return _MARKED
        return rank

    def _word_cut(self, lo: int, end: int) -> tuple[int, int]:
        """The last resort: as much as fits, cut inside a word (between two visible characters).

        The latest such cut, among the last few, that neither splits a grapheme nor leaves a
        fence mark to start the next message (it would open a block there); failing that, a
        whitespace run refused before; failing that, the latest cut inside a word that fits.
        """
        text, size = self.text, len(self.text)
        last = end
        while last > lo + 1 and last + len(self.closer(last)) > end:
            last -= 1
        inside = (self.backwards, size - last, size - lo)  # [lo + 1, last], reversed
        for match in islice(_INSIDE_WORD.finditer(*inside), _BACK_OFF):
            cut = size - match.start()
            poor = _joins(text, cut) or text.startswith(_FENCE_MARKS, cut)
            if not poor and self._fits(cut, end):
                return cut, cut
        for run in _BLANKS.finditer(self.backwards, size - last - 1, size - lo - 1):
            cut = size - run.end()
            whole = _BLANKS.match(text, cut)
            if whole and self._fits(cut, end):
                return cut, whole.end()
        for match in _INSIDE_WORD.finditer(*inside):
            cut = size - match.start()
            if self._fits(cut, end):
                return cut, cut
        return last, last


def _joins(text: str, i: int) -> bool:
    """Whether ``text[i]`` belongs to the grapheme of ``text[i - 1]`` (roughly: no UAX 29)."""
    before, char = text[i - 1], text[i]
    if "\ud800" <= before <= "\udbff" and "\udc00" <= char <= "\udfff":
        return True  # a surrogate pair that slipped into a str
    if _ZWJ in (before, char) or unicodedata.combining(before) == _VIRAMA:
        return True  # emoji sequences; Indic conjuncts
    if "\U0001f3fb" <= char <= "\U0001f3ff" or "\U000e0020" <= char <= "\U000e007f":
        return True  # skin tone, flag tag
    if _regional(char) and _regional(before):
        pairs = 0  # flags are pairs of regional indicators: cut between pairs only
        while i - pairs - 1 >= 0 and _regional(text[i - pairs - 1]):
            pairs += 1
        return pairs % 2 == 1
    return unicodedata.category(char)[0] == "M"  # combining, enclosing, spacing marks


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _inside_inline(text: str, cut: int) -> bool:
    """Whether an inline construct opened earlier on the line is still open at ``cut``."""
    line = text.rfind("\n", 0, cut) + 1
    if text.count("`", line, cut) % 2:
        return True
    if any(text.count(pair, line, cut) % 2 for pair in _INLINE_PAIRS):
        return True
    link_text = text.rfind("[", line, cut) > text.rfind("]", line, cut)
    link_url = text.rfind("](", line, cut) > text.rfind(")", line, cut)
    return link_text or link_url
