"""One retriever over chunks: dense (FAISS), BM25, or both fused by reciprocal rank fusion, with an
optional cross-encoder reranking the first-stage candidates. Plus document-level recall@k."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .chunking import Chunk
from .embeddings import EmbedFn
from .index import DenseIndex, index_key
from .lexical import BM25Index

RECALL_KS = (1, 3, 5, 10)


@dataclass
class Hit:
    chunk_id: str
    doc_id: str
    score: float


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion (Cormack et al. 2009): score(d) = sum over lists of 1 / (k + rank),
    ranks from 1. Needs no score calibration between retrievers. Ids < 0 (no hit) are skipped."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            if item >= 0:
                fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    def __init__(self, chunks: Sequence[Chunk], method: str = "dense", embed: EmbedFn | None = None,
                 dense: DenseIndex | None = None, bm25: BM25Index | None = None, reranker=None,
                 rrf_k: int = 60, candidates: int = 20):
        if method not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"unknown retrieval method {method!r}")
        if method != "bm25" and (embed is None or dense is None):
            raise ValueError(f"method {method!r} needs an embedding function and a dense index")
        self.chunks, self.method, self.embed = list(chunks), method, embed
        self.dense, self.bm25, self.reranker = dense, bm25, reranker
        self.rrf_k, self.candidates = rrf_k, candidates

    @classmethod
    def build(cls, chunks: Sequence[Chunk], method: str = "dense", embed: EmbedFn | None = None,
              index_kind: str = "flat", index_dir: Path | None = None, embedder_name: str = "",
              reranker: str | None = None, rrf_k: int = 60, candidates: int = 20) -> "Retriever":
        """Build the indexes `method` needs. A dense index saved in `index_dir` is reused when it was
        built from the same chunk texts, embedder and kind; otherwise rebuilt and saved there."""
        texts = [c.indexed_text for c in chunks]
        dense = bm25 = None
        if method in ("dense", "hybrid"):
            key = index_key(embedder_name, index_kind, texts)
            dense = DenseIndex.load(index_dir, key) if index_dir else None
            if dense is None:
                dense = DenseIndex.build(embed(texts), [c.chunk_id for c in chunks], index_kind, key)
                if index_dir:
                    dense.save(index_dir)
        if method in ("bm25", "hybrid"):
            bm25 = BM25Index(texts)
        return cls(chunks, method, embed, dense, bm25, load_reranker(reranker), rrf_k, candidates)

    def _first_stage(self, query: str, k: int) -> list[tuple[int, float]]:
        if self.method == "dense":
            scores, rows = self.dense.search(self.embed([query]), k)
            return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
        if self.method == "bm25":
            scores, rows = self.bm25.search([query], k)
            return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
        _, dense_rows = self.dense.search(self.embed([query]), max(k, self.candidates))
        _, bm25_rows = self.bm25.search([query], max(k, self.candidates))
        return rrf([dense_rows[0], bm25_rows[0]], self.rrf_k)[:k]

    def search(self, query: str, k: int) -> list[Hit]:
        first = self._first_stage(query, max(k, self.candidates) if self.reranker else k)
        if self.reranker is not None and first:
            scores = self.reranker.predict([(query, self.chunks[r].indexed_text) for r, _ in first],
                                           show_progress_bar=False)
            first = sorted(zip((r for r, _ in first), map(float, scores)), key=lambda rs: -rs[1])
        return [Hit(self.chunks[r].chunk_id, self.chunks[r].doc_id, s) for r, s in first[:k]]

    def search_many(self, queries: Sequence[str], k: int, progress: bool = False) -> tuple[list[list[Hit]], list[float]]:
        """Hits per query and each query's latency in seconds (queries run one at a time, as a
        user's would; batch throughput is in bench/eval_retrieval.py)."""
        hits, seconds = [], []
        for q in tqdm(queries, desc="retrieval", unit="q", leave=False, disable=not progress):
            start = time.perf_counter()
            hits.append(self.search(q, k))
            seconds.append(time.perf_counter() - start)
        return hits, seconds


def load_reranker(name: str | None):
    if not name:
        return None
    from sentence_transformers import CrossEncoder

    return CrossEncoder(name)


def document_recall(hits: Sequence[Sequence[Hit]], gold_doc_ids: Sequence[str],
                    ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Share of queries whose top-k holds a chunk of the query's own document. Queries without a
    document (gold "") are left out."""
    pairs = [(h, g) for h, g in zip(hits, gold_doc_ids) if g]
    if not pairs:
        return {}
    return {f"recall@{k}": float(np.mean([any(x.doc_id == g for x in h[:k]) for h, g in pairs])) for k in ks}


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = np.asarray(seconds) * 1000
    return {"mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "queries": len(ms)}
