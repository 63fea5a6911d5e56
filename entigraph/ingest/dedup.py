"""Duplicate documents: exact (same normalised words) and near (5-word shingles, Jaccard >= 0.8).

The same report saved as PDF and as Word, or a second copy with a few words edited, is loaded once.
0.8 because the same text through two extractors (PDF vs DOCX: different line breaks, running
headers, hyphenation) measures 0.9 and up, while distinct documents on one subject rarely pass 0.3;
no two documents in the shared QuALITY and Fictional Knowledge sets reach it.
MinHash LSH only proposes candidates; the exact Jaccard of the shingle sets decides.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

NEAR_DUP_THRESHOLD = 0.8
SHINGLE = 5  # words
NUM_PERM = 128
_WORD = re.compile(r"\w+")


def normal_words(text: str) -> list[str]:
    """Casefolded word tokens: layout, punctuation and ligatures do not matter."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def shingles(tokens: list[str]) -> np.ndarray:
    """Sorted unique crc32 hashes of the word shingles (the whole text when it is shorter)."""
    grams = {" ".join(tokens[i:i + SHINGLE]) for i in range(max(1, len(tokens) - SHINGLE + 1))}
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint32, count=len(grams)))


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter) if len(a) + len(b) else 1.0


def find_duplicates(texts: list[str], threshold: float = NEAR_DUP_THRESHOLD) -> list[tuple[int, str, float] | None]:
    """For each text in order: None when it is kept, else (index of the earlier kept text it
    repeats, "exact" | "near", Jaccard similarity)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
    seen: dict[str, int] = {}
    kept: dict[int, np.ndarray] = {}
    out: list[tuple[int, str, float] | None] = []
    for i, text in enumerate(texts):
        tokens = normal_words(text)
        if not tokens:  # nothing to compare (an empty jsonl row)
            out.append(None)
            continue
        digest = hashlib.sha1(" ".join(tokens).encode()).hexdigest()
        if digest in seen:
            out.append((seen[digest], "exact", 1.0))
            continue
        seen[digest] = i
        hashes = shingles(tokens)
        signature = MinHash(num_perm=NUM_PERM, seed=1)
        signature.update_batch([h.tobytes() for h in hashes])
        best: tuple[int, str, float] | None = None
        for j in sorted(lsh.query(signature)):
            similarity = _jaccard(hashes, kept[j])
            if similarity >= threshold and (best is None or similarity > best[2]):
                best = (j, "near", round(similarity, 3))
        if best is None:
            lsh.insert(i, signature, check_duplication=False)
            kept[i] = hashes
        out.append(best)
    return out
