"""Cut a text into overlapping chunks for retrieval, with exact offsets.

Each chunk is ``text[start:end]`` exactly (no whitespace trimmed away from the text
it reports), about ``size`` characters long, and ends where reading would pause: the
last paragraph break in its second half, else the last sentence end, else the last
space, else wherever ``size`` falls. The next chunk starts ``overlap`` characters
before the previous one ended, moved forward to the start of a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_PARAGRAPH: Final = re.compile(r"\n\s*\n")
_SENTENCE: Final = re.compile(r"[.!?][\"')\]]*\s|\n")
_SPACE: Final = re.compile(r"\s")


@dataclass(frozen=True)
class Chunk:
    """``text == source[start:end]``."""

    index: int
    text: str
    start: int
    end: int


def _last(pattern: re.Pattern[str], text: str, low: int, high: int) -> int | None:
    """The end of the last match of ``pattern`` in ``text[low:high]``, if any."""
    found = None
    for match in pattern.finditer(text, low, high):
        found = match.end()
    return found


def _break(text: str, start: int, size: int) -> int:
    hard = min(len(text), start + size)
    if hard == len(text):
        return hard
    low = start + size // 2
    for pattern in (_PARAGRAPH, _SENTENCE, _SPACE):
        found = _last(pattern, text, low, hard)
        if found is not None and found > start:
            return found
    return hard


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_text(text: str, *, size: int, overlap: int) -> list[Chunk]:
    """The chunks of ``text`` (none for blank text)."""
    overlap = max(0, min(overlap, size // 2))
    chunks: list[Chunk] = []
    position = 0
    while position < len(text):
        end = _break(text, position, size)
        start, stop = _trimmed(text, position, end)
        if stop > start:
            chunks.append(Chunk(len(chunks), text[start:stop], start, stop))
        if end >= len(text):
            break
        following = max(end - overlap, position + 1)
        # Start the overlap at a word, not inside one.
        if following < end and not text[following - 1].isspace():
            space = _SPACE.search(text, following, end)
            following = space.end() if space is not None else end
        position = following
    return chunks
