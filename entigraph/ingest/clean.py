"""Text clean-up that does not depend on the file format: running headers and footers, hyphenation."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"^[ivxlcdm]+$")


def line_key(line: str) -> str:
    """A running header or footer with its page number masked: "Page 3 of 9" -> "page # of #"."""
    key = _DIGITS.sub("#", " ".join(line.lower().split()))
    return "#" if _ROMAN.match(key) else key  # roman page numbers (front matter)


def min_repeats(n_pages: int) -> int:
    """Pages an edge line must appear on to count as running: half of them, at most 3, at least 2.

    Capped at 3 so chapter headers (repeated on one chapter's pages only) go too."""
    return max(2, min(3, math.ceil(n_pages / 2)))


def running_lines(edge_lines: Sequence[Sequence[str]]) -> set[str]:
    """Keys (see line_key) of lines that repeat at the top or bottom of pages.

    `edge_lines[i]` holds the lines found in page i's top and bottom margins. A one-page document
    has nothing to compare, so nothing is removed."""
    if len(edge_lines) < 2:
        return set()
    counts = Counter(key for page in edge_lines for key in {line_key(l) for l in page if l.strip()})
    need = min_repeats(len(edge_lines))
    return {key for key, n in counts.items() if n >= need}


# a word broken at a line end: letters, "-", newline, lowercase letters
_BROKEN = re.compile(r"([^\W\d_]+)-[ \t]*\n[ \t]*([a-z][^\W\d_]*)")


def dehyphenate(text: str) -> str:
    """Join words hyphenated across line breaks: "infor-\\nmation" -> "information".

    A compound that the document also writes hyphenated on one line ("well-known"), and never
    closed up, keeps its hyphen, and so does the last part of a longer compound ("state-of-the-art")."""
    def join(m: re.Match) -> str:
        left, right = m.group(1), m.group(2)
        hyphenated, closed = f"{left}-{right}", f"{left}{right}"
        in_compound = m.start() > 0 and text[m.start() - 1] == "-"
        if in_compound or (hyphenated in text and closed not in text):
            return hyphenated
        return closed

    return _BROKEN.sub(join, text)


_TRAILING_BREAK = re.compile(r"[^\W\d_]-$")
_LEADING_WORD = re.compile(r"\s*([a-z]\S*)\s*")


def carry_broken_words(pages: list[str]) -> list[str]:
    """Move the second half of a word hyphenated across a page break onto the earlier page,
    as "infor-\\nmation", so that dehyphenate can join it."""
    pages = list(pages)
    for i in range(1, len(pages)):
        if _TRAILING_BREAK.search(pages[i - 1]) and (m := _LEADING_WORD.match(pages[i])):
            pages[i - 1] += "\n" + m.group(1)
            pages[i] = pages[i][m.end():]
    return pages
