"""FAISS indexes over normalised embeddings (inner product = cosine): flat, HNSW, IVF-PQ.

- flat: exact; the right choice up to ~100k chunks (a 2,000 x 384 flat index answers ~49k queries/s).
- hnsw: graph search, M=32, efSearch=64 (recall@10 ~0.99 against flat); no training.
- ivfpq: for large corpora. IVF lists nlist ~ 4*sqrt(n), capped so every list trains on >= 39
  vectors (FAISS's minimum), product quantisation with d/8 sub-quantisers; bits per code shrink for
  corpora too small to train 256 centroids. The 4*k best PQ candidates are re-scored exactly
  (IndexRefineFlat: keeps the full vectors too, trading PQ's memory saving for recall). Below `MIN_IVF` vectors it falls back to flat, with a
  note saying so: clustering a few hundred vectors only loses recall.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from entigraph.io import read_json, write_json

MIN_IVF = 1000  # below this many vectors an IVF index is slower to build and no faster to search
HNSW_M = 32
HNSW_EF_SEARCH = 64


@dataclass
class IndexPlan:
    kind: str  # what was built: flat | hnsw | ivfpq
    requested: str
    params: dict = field(default_factory=dict)
    note: str = ""


def plan_index(kind: str, n: int, dim: int) -> IndexPlan:
    """Choose the index parameters for `n` vectors of `dim` dimensions."""
    if kind == "flat":
        return IndexPlan("flat", kind)
    if kind == "hnsw":
        return IndexPlan("hnsw", kind, {"M": HNSW_M, "efSearch": HNSW_EF_SEARCH})
    if kind != "ivfpq":
        raise ValueError(f"unknown index kind {kind!r} (flat | hnsw | ivfpq)")
    if n < MIN_IVF:
        return IndexPlan("flat", kind, note=f"ivfpq needs >= {MIN_IVF} vectors to pay off; {n} given, using flat")
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    nbits = max(4, min(8, int(math.log2(n // 39))))  # PQ trains 2**nbits centroids on >= 39 each
    m = _pq_subquantizers(dim)
    return IndexPlan("ivfpq", kind, {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": min(nlist, max(8, nlist // 16)),
                                     "k_factor": 4})


def _pq_subquantizers(dim: int) -> int:
    """Largest divisor of `dim` not above dim/8 (8 dimensions per sub-quantiser, 48 for 384)."""
    target = max(1, dim // 8)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def build_faiss(vectors: np.ndarray, plan: IndexPlan):
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if plan.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif plan.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, plan.params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = plan.params["efSearch"]
    else:
        p = plan.params
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFPQ(quantizer, dim, p["nlist"], p["m"], p["nbits"], faiss.METRIC_INNER_PRODUCT)
        # PQ codes rank near-duplicates poorly; re-score k_factor*k candidates with exact vectors
        index = faiss.IndexRefineFlat(ivf)
        index.train(vectors)
        _set_search_params(index, plan)
    index.add(vectors)
    return index


def _set_search_params(index, plan: IndexPlan) -> None:
    import faiss

    if plan.kind == "ivfpq":
        index.k_factor = plan.params["k_factor"]
        faiss.downcast_index(index.base_index).nprobe = plan.params["nprobe"]
    elif plan.kind == "hnsw":
        index.hnsw.efSearch = plan.params["efSearch"]


class DenseIndex:
    """A FAISS index plus the ids of the rows it holds."""

    def __init__(self, index, ids: list[str], plan: IndexPlan, key: str = ""):
        self.index, self.ids, self.plan, self.key = index, ids, plan, key

    @classmethod
    def build(cls, vectors: np.ndarray, ids: list[str], kind: str = "flat", key: str = "") -> "DenseIndex":
        if len(vectors) != len(ids):
            raise ValueError(f"{len(vectors)} vectors for {len(ids)} ids")
        plan = plan_index(kind, len(ids), vectors.shape[1])
        return cls(build_faiss(vectors, plan), list(ids), plan, key)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row indices), each (n_queries, k); rows missing (k > size) are -1."""
        k = min(k, len(self.ids))
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows

    def save(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        write_json(folder / "meta.json", {"kind": self.plan.kind, "requested": self.plan.requested,
                                          "params": self.plan.params, "note": self.plan.note,
                                          "key": self.key, "size": len(self.ids)})
        write_json(folder / "ids.json", self.ids)

    @classmethod
    def load(cls, folder: Path, key: str | None = None) -> "DenseIndex | None":
        """The saved index, or None if absent or built from other chunks/embedder (key differs)."""
        import faiss

        folder = Path(folder)
        if not (folder / "index.faiss").is_file() or not (folder / "meta.json").is_file():
            return None
        meta = read_json(folder / "meta.json")
        if key is not None and meta.get("key") != key:
            return None
        plan = IndexPlan(meta["kind"], meta["requested"], meta["params"], meta["note"])
        index = faiss.read_index(str(folder / "index.faiss"))
        _set_search_params(index, plan)
        return cls(index, read_json(folder / "ids.json"), plan, meta["key"])


def index_key(embedder: str, kind: str, texts: list[str]) -> str:
    """Identifies what an index was built from, so a saved one is reused only when still valid."""
    h = hashlib.sha256(json.dumps([embedder, kind]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
