"""Cut documents into retrieval chunks: sentence-aware windows counted in words or tokens.

Sentences are packed whole into a window until the next one would overflow it; the next window
starts with the last sentences of the previous one that fit in `overlap` units, so a fact that
straddles a boundary is whole in at least one chunk. A sentence longer than a window is cut into
windows of its own. As in the EntiGraph paper's RAG setup, each chunk can carry its document's
title, so a chunk that only says "he" still names what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from entigraph.records import Document

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
_WORD = re.compile(r"\S+")


@dataclass
class Chunk:
    chunk_id: str  # "<doc_id>:c<index>"
    doc_id: str
    index: int
    start: int  # character offsets into Document.text
    end: int
    text: str  # the document's text[start:end]
    title: str = ""

    @property
    def indexed_text(self) -> str:
        """What is embedded, indexed and put into a prompt: the title (if any), then the text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (whitespace between sentences excluded)."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() + len(m.group().rstrip())
        if text[start:end].strip():
            spans.append(_strip(text, start, end))
        start = m.end()
    if text[start:].strip():
        spans.append(_strip(text, start, len(text)))
    return spans


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _word_pieces(text: str, start: int, end: int, size: int, length: Callable[[str], int]) -> list[tuple[int, int]]:
    """Cut an over-long sentence into consecutive spans of at most `size` units (by whole words)."""
    words = [(start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]
    pieces, first = [], 0
    while first < len(words):
        last = first + 1
        while last < len(words) and length(text[words[first][0]:words[last][1]]) <= size:
            last += 1
        pieces.append((words[first][0], words[last - 1][1]))
        first = last
    return pieces


def count_words(text: str) -> int:
    return len(text.split())


def chunk_document(doc: Document, size: int = 100, overlap: int = 20, title_prefix: bool = True,
                   length: Callable[[str], int] = count_words) -> list[Chunk]:
    """Sentence-aware windows of at most `size` units (as measured by `length`), overlapping by up
    to `overlap` units of whole sentences."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    units: list[tuple[int, int, int]] = []  # (start, end, length) of sentences or sentence pieces
    for s, e in sentence_spans(doc.text):
        n = length(doc.text[s:e])
        if n <= size:
            units.append((s, e, n))
        else:
            units += [(ps, pe, length(doc.text[ps:pe])) for ps, pe in _word_pieces(doc.text, s, e, size, length)]

    windows: list[tuple[int, int]] = []  # [first, last) unit indices
    first = 0
    while first < len(units):
        last, total = first, 0
        while last < len(units) and (last == first or total + units[last][2] <= size):
            total += units[last][2]
            last += 1
        windows.append((first, last))
        if last == len(units):
            break
        # step back over whole trailing units that fit in the overlap, but always move forward
        back, carried = last, 0
        while back - 1 > first and carried + units[back - 1][2] <= overlap:
            back -= 1
            carried += units[back][2]
        first = back

    title = doc.title if title_prefix else ""
    chunks = []
    for i, (a, b) in enumerate(windows):
        start, end = units[a][0], units[b - 1][1]
        chunks.append(Chunk(f"{doc.doc_id}:c{i:04d}", doc.doc_id, i, start, end, doc.text[start:end], title))
    return chunks


def chunk_documents(docs: Sequence[Document], size: int = 100, overlap: int = 20, title_prefix: bool = True,
                    length: Callable[[str], int] = count_words) -> list[Chunk]:
    return [c for doc in docs for c in chunk_document(doc, size, overlap, title_prefix, length)]


def token_counter(tokenizer) -> Callable[[str], int]:
    """Count tokens with a Hugging Face tokenizer (no special tokens): for chunk_unit=tokens."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
