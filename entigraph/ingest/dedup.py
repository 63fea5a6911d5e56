"""Duplicate documents: exact (same normalised words) and near (5-word shingles, Jaccard >= 0.8).

The same report saved as PDF and as Word, or a second copy with a few words edited, is loaded once.
0.8 because the same text through two extractors (PDF vs DOCX: different line breaks, running
headers, hyphenation) measures 0.9 and up, while distinct documents on one subject rarely pass 0.3;
no two documents in the shared QuALITY and Fictional Knowledge sets reach it.
MinHash LSH only proposes candidates; the exact Jaccard of the shingle sets decides.
"""

from __future__ import annotations

import re
import unicodedata

from ..minhash import near_duplicates

NEAR_DUP_THRESHOLD = 0.8
NUM_PERM = 128
_WORD = re.compile(r"\w+")


def normal_words(text: str) -> list[str]:
    """Casefolded word tokens: layout, punctuation and ligatures do not matter."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def find_duplicates(texts: list[str], threshold: float = NEAR_DUP_THRESHOLD) -> list[tuple[int, str, float] | None]:
    """For each text in order: None when it is kept, else (index of the earlier kept text it
    repeats, "exact" | "near", Jaccard similarity). The synthetic-passage near-dup filter's
    MinHash LSH (entigraph/minhash.py) runs on the normalised words; texts with no words are kept."""
    norm = [" ".join(normal_words(t)) for t in texts]
    present = [i for i, t in enumerate(norm) if t]
    hits = near_duplicates([norm[i] for i in present], threshold, NUM_PERM)
    out: list[tuple[int, str, float] | None] = [None] * len(texts)
    for i, hit in zip(present, hits):
        if hit is not None:
            j = present[hit[0]]
            out[i] = (j, "exact" if norm[j] == norm[i] else "near", round(hit[1], 3))
    return out
