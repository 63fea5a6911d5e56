"""Retrieval throughput and quality: MiniLM embedding chunks/s, FAISS flat / HNSW / IVF-PQ queries/s
and recall@10 against flat, bm25s index and query speed, and document recall@k of dense, BM25 and
hybrid retrieval on the QuALITY and Fictional Knowledge questions.

    .venv/bin/python bench/eval_retrieval.py [--synthetic 20000] [--queries 500]

ANN speed is measured on the real chunk embeddings and on --synthetic vectors made by jittering
them (real embeddings plus Gaussian noise, renormalised: clustered like real data, unlike uniform
random vectors). Writes bench/results/eval-retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

import bm25s
import faiss
import numpy as np
import sentence_transformers
import torch

from entigraph.evaluation.tasks import load_questions
from entigraph.retrieval import Retriever, chunk_documents, document_recall
from entigraph.retrieval.embeddings import Embedder
from entigraph.retrieval.index import DenseIndex
from entigraph.retrieval.lexical import BM25Index

DATA = ROOT.parent / "shared" / "data"
SETS = {"quality": DATA / "quality-leval" / "dev.jsonl", "fictional": DATA / "fictional-knowledge" / "dev.json"}


def ann_speed(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    ids = [str(i) for i in range(len(vectors))]
    out, exact = {}, None
    for kind in ("flat", "hnsw", "ivfpq"):
        start = time.perf_counter()
        index = DenseIndex.build(vectors, ids, kind)
        built = time.perf_counter() - start
        start = time.perf_counter()
        _, rows = index.search(queries, k)
        qps = len(queries) / (time.perf_counter() - start)
        if kind == "flat":
            exact = rows
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, exact)]))
        out[kind] = {"built_as": index.plan.kind, "params": index.plan.params, "note": index.plan.note,
                     "build_s": round(built, 3), "queries_per_s": round(qps, 1), f"recall@{k}_vs_flat": round(recall, 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=20000, help="jittered vectors for the ANN timing")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    load_start = os.getloadavg()
    embed = Embedder("all-minilm-l6-v2", device="cpu", show_progress=False)

    data, report = {}, {}
    for name, path in SETS.items():
        docs, questions = load_questions(path, probe_types=["gen"]) if name == "fictional" else load_questions(path)
        data[name] = (docs, questions, chunk_documents(docs, 100, 20))
    chunks = [c for _, _, cs in data.values() for c in cs]
    texts = [c.indexed_text for c in chunks]
    start = time.perf_counter()
    vectors = embed(texts)
    emb_s = time.perf_counter() - start
    report["embedding"] = {"model": "all-MiniLM-L6-v2", "chunks": len(texts), "seconds": round(emb_s, 2),
                           "chunks_per_s": round(len(texts) / emb_s, 1), "batch_size": embed.batch_size,
                           "mean_words_per_chunk": round(float(np.mean([len(t.split()) for t in texts])), 1)}
    print(report["embedding"], flush=True)

    questions = [q for _, qs, _ in data.values() for q in qs]
    start = time.perf_counter()
    qvecs = embed([q.question for q in questions])
    report["embedding"]["query_ms"] = round(1000 * (time.perf_counter() - start) / len(questions), 2)

    rng = np.random.default_rng(0)
    report["ann_real"] = ann_speed(vectors, qvecs)
    base = vectors[rng.integers(0, len(vectors), args.synthetic)]
    synth = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    synth /= np.linalg.norm(synth, axis=1, keepdims=True)
    q_idx = rng.integers(0, len(vectors), args.queries)
    squeries = vectors[q_idx] + rng.normal(0, 0.05, (args.queries, vectors.shape[1])).astype(np.float32)
    squeries /= np.linalg.norm(squeries, axis=1, keepdims=True)
    report["ann_synthetic"] = {"vectors": args.synthetic, "queries": args.queries, **ann_speed(synth, squeries)}
    print(report["ann_synthetic"], flush=True)

    start = time.perf_counter()
    bm25 = BM25Index(texts)
    built = time.perf_counter() - start
    qtexts = [q.question for q in questions]
    start = time.perf_counter()
    bm25.search(qtexts, 10)
    report["bm25s"] = {"chunks": len(texts), "index_s": round(built, 3),
                       "queries_per_s": round(len(qtexts) / (time.perf_counter() - start), 1)}

    # document recall@k per data set: each set is its own corpus, as in a run. Chunk embeddings
    # come from the pass above; only queries are embedded again.
    known = dict(zip(texts, vectors))

    def cached_embed(batch):  # queries are not cached, so their latency is measured every time
        if all(t in known for t in batch):
            return np.stack([known[t] for t in batch])
        return embed(batch)

    report["recall"] = {}
    for name, (docs, qs, cs) in data.items():
        gold = [q.doc_id for q in qs]
        rows = {}
        for method in ("dense", "bm25", "hybrid"):
            r = Retriever.build(cs, method, cached_embed, "flat")
            for query in ("question", "question+options") if name == "quality" else ("question",):
                qt = [q.question if query == "question" else " ".join([q.question, *q.options]) for q in qs]
                hits, secs = r.search_many(qt, 10)
                rows[f"{method}/{query}"] = {**document_recall(hits, gold), "ms_per_query": round(1000 * float(np.mean(secs)), 2)}
        report["recall"][name] = {"documents": len(docs), "chunks": len(cs), "questions": len(qs), **rows}
        print(name, json.dumps(rows), flush=True)

    result = {
        "benchmark": "eval-retrieval", "torch_threads": args.threads,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "versions": {"faiss": faiss.__version__, "bm25s": bm25s.__version__, "torch": torch.__version__,
                     "sentence_transformers": sentence_transformers.__version__},
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(), **report,
    }
    out = ROOT / "bench" / "results" / "eval-retrieval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
