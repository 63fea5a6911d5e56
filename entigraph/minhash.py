"""Near-duplicate detection: MinHash LSH over word 5-gram shingles, verified by exact Jaccard.

Used by the near-dup filter on synthetic passages and by ingest's document dedup."""

from __future__ import annotations

import zlib

import numpy as np
from tqdm import tqdm

from .text import words


SHINGLE_N = 5
CANDIDATE_MARGIN = 0.1  # LSH looks for candidates from threshold - 0.1; each is then verified exactly


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted unique crc32 hashes of the word 5-gram shingles (the whole text when shorter)."""
    toks = words(text)
    shingles = {" ".join(toks[i:i + SHINGLE_N]) for i in range(max(1, len(toks) - SHINGLE_N + 1))}
    return np.unique(np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint32))


class MinHasher:
    """MinHash signatures over shingle hashes. crc32 instead of datasketch's default sha1:
    deterministic across runs and ~1.8x faster here (bench/dedup_minhash.py: hash_speed)."""

    def __init__(self, num_perm: int, seed: int = 1):
        from datasketch import MinHash

        self._cls = MinHash
        self.num_perm, self.seed = num_perm, seed
        self.perms = MinHash(num_perm=num_perm, seed=seed).permutations

    def __call__(self, hashes: np.ndarray):
        m = self._cls(num_perm=self.num_perm, seed=self.seed, permutations=self.perms,
                      scheme="affine32", hashfunc=int)
        m.update_batch(hashes.tolist())
        return m


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter) if len(a) + len(b) else 1.0


def near_duplicates(texts: list[str], threshold: float, num_perm: int,
                    progress: bool = False) -> list[tuple[int, float] | None]:
    """For each text (in order): (index of the earlier kept text it duplicates, Jaccard of their
    shingle sets), or None for a text that is kept. MinHash LSH proposes candidates at a lower
    threshold (threshold - CANDIDATE_MARGIN); the exact Jaccard of the stored shingle hashes
    decides, so no pair below the threshold is ever dropped."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(0.05, threshold - CANDIDATE_MARGIN), num_perm=num_perm)
    hasher = MinHasher(num_perm)
    kept: dict[int, np.ndarray] = {}  # shingle hashes of kept texts (~4 bytes a word)
    out: list[tuple[int, float] | None] = []
    for i, text in enumerate(tqdm(texts, desc="near-dup", disable=not progress, leave=False)):
        hashes = shingle_hashes(text)
        m = hasher(hashes)
        best = None
        for j in sorted(lsh.query(m)):
            sim = jaccard(hashes, kept[j])
            if sim >= threshold and (best is None or sim > best[1]):
                best = (j, sim)
        if best is None:
            lsh.insert(i, m, check_duplication=False)
            kept[i] = hashes
        out.append(best)
    return out
