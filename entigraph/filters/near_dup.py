"""Near-duplicates among the passages (MinHash LSH, entigraph/minhash.py)."""

from __future__ import annotations

from ..minhash import near_duplicates
from .base import Filter, Flag

class NearDup(Filter):
    """MinHash LSH on word 5-grams; the first passage in seq order is kept, later ones dropped."""

    name = "near_dup"

    def __init__(self, threshold: float, num_perm: int):
        self.threshold, self.num_perm = threshold, num_perm

    def run(self, passages, ctx):
        hits = near_duplicates([p.text for p in passages], self.threshold, self.num_perm,
                               progress=len(passages) > 2000)
        return [None if h is None else Flag(
            f"near-duplicate of {passages[h[0]].task_id} (5-gram Jaccard {h[1]:.2f} >= "
            f"{self.threshold})") for h in hits]
