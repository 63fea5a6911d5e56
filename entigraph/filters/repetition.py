"""Gopher repetition rules (Rae et al. 2021, Table A1)."""

from __future__ import annotations

from collections import Counter

from ..text import words
from .base import Filter, Flag

def dup_line_ratio(text: str) -> float:
    """Gopher: share of non-empty lines that repeat an earlier line."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


def top_ngram_share(tokens: list[str], n: int, n_chars: int) -> float:
    """Gopher: characters covered by the most frequent word n-gram / characters of the text."""
    grams = Counter(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    if not grams or not n_chars:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count / n_chars if count > 1 else 0.0


def dup_ngram_share(tokens: list[str], n: int, n_chars: int) -> float:
    """Gopher: characters in word n-grams that repeat an earlier n-gram (non-overlapping) / chars."""
    seen, repeated, i = set(), 0, 0
    while i < len(tokens) - n + 1:
        gram = " ".join(tokens[i:i + n])
        if gram in seen:
            repeated += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated / n_chars if n_chars else 0.0


class Repetition(Filter):
    """Gopher repetition rules (Rae et al. 2021, Table A1): duplicate lines, most frequent 2/3/4-gram
    character share, and character share of duplicated 4-grams."""

    name = "repetition"

    def __init__(self, max_dup_line_ratio: float, max_top_ngram_share: list[float], max_dup_ngram_ratio: float):
        self.max_dup_line_ratio, self.max_dup_ngram_ratio = max_dup_line_ratio, max_dup_ngram_ratio
        self.max_top_ngram_share = list(max_top_ngram_share)  # for 2-, 3- and 4-grams

    def check(self, p, ctx):
        ratio = dup_line_ratio(p.text)
        if ratio > self.max_dup_line_ratio:
            return Flag(f"duplicate line ratio {ratio:.2f} > {self.max_dup_line_ratio}")
        toks, n_chars = words(p.text), len(p.text)
        for n, limit in zip((2, 3, 4), self.max_top_ngram_share):
            share = top_ngram_share(toks, n, n_chars)
            if share > limit:
                return Flag(f"top {n}-gram covers {share:.2f} of characters > {limit}")
        share = dup_ngram_share(toks, 4, n_chars)
        if share > self.max_dup_ngram_ratio:
            return Flag(f"duplicated 4-grams cover {share:.2f} of characters > {self.max_dup_ngram_ratio}")
        return None
