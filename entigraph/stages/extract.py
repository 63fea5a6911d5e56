"""The extract stage: corpus → passages → entities → knowledge graph, written under runs/<name>/extract/.

    documents.jsonl  passages.jsonl  entities.jsonl (named first, then by salience)
    graph.graphml  graph.json  graph.png  summary.json (counts, drop reasons, LLM failures)
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import TYPE_CHECKING

from .. import artifacts
from ..config import RunConfig
from ..corpus import load_corpus_report, split_passages
from ..graph import build_graph, draw_top, load_graph, write_graph
from ..io import write_json, write_jsonl
from ..records import to_dict

if TYPE_CHECKING:
    from ..backends.base import Backend

__all__ = ["run", "summary_lines", "load_graph"]

from .spec import StageSpec

STAGE = StageSpec(
    "extract", "load the corpus, extract entities, build the knowledge graph",
    sections=("seed", "corpus", "entities", "models.spacy"),
    outputs=("summary.json", "documents.jsonl", "passages.jsonl", "entities.jsonl", "graph.graphml", "graph.json",
             "graph.png"),
    uses_backend=lambda cfg: cfg.entities.extractor in ("llm", "hybrid"),
    external_inputs=lambda cfg: list(cfg.corpus.paths),
)

MAX_PROVENANCE = 20  # passage ids stored per edge; the weight keeps the true count
MAX_FAILURE_DETAILS = 50


def run(cfg: RunConfig, backend: "Backend | None" = None) -> dict:
    """Extract entities and build the graph. `backend` replaces the run's backend (tests)."""
    from ..entities import extract_entities  # spaCy: imported only when the stage runs

    start = time.perf_counter()
    out = artifacts.stage_dir(cfg.out, "extract")
    out.mkdir(parents=True, exist_ok=True)
    docs, corpus = load_corpus_report(cfg.corpus.paths, cfg.corpus.format, cfg.corpus.text_field,
                                      cfg.corpus.limit_docs, cfg.corpus.skip_docs)
    for note in corpus.notes():  # skipped files and duplicates: printed now, recorded in summary.json
        print(f"[extract] {note}")
    passages = [p for d in docs for p in split_passages(d, cfg.corpus.passage_words, cfg.corpus.passage_overlap)]

    if backend is None and STAGE.uses_backend(cfg):
        from ..backends import open_backend

        with open_backend(cfg) as own:
            result = extract_entities(docs, passages, cfg, own)
    else:
        result = extract_entities(docs, passages, cfg, backend)

    steps = {"load": round(time.perf_counter() - start, 3), **result.seconds}
    clock = time.perf_counter()
    graph = build_graph(result.entities, passages, MAX_PROVENANCE, result.salience)
    steps["graph"] = round(time.perf_counter() - clock, 3)
    write_jsonl(out / "documents.jsonl", (to_dict(d) for d in docs))
    write_jsonl(out / "passages.jsonl", (to_dict(p) for p in passages))
    write_jsonl(out / "entities.jsonl", (to_dict(e) for e in result.entities))
    write_graph(graph, out / "graph.graphml", out / "graph.json")
    draw_top(graph, out / "graph.png")
    steps["write"] = round(time.perf_counter() - clock - steps["graph"], 3)

    per_doc = Counter(m.doc_id for e in result.entities for m in {m.doc_id: m for m in e.mentions}.values())
    counts = [per_doc.get(d.doc_id, 0) for d in docs]
    words = sum(len(d.text.split()) for d in docs)
    seconds = time.perf_counter() - start
    summary = {
        "corpus": corpus.to_dict(),
        "extractor": cfg.entities.extractor,
        "documents": len(docs),
        "passages": len(passages),
        "words": words,
        "entities": len(result.entities),
        "merged_aliases": result.merged_aliases,
        "edges": graph.number_of_edges(),
        "entities_per_doc": round(statistics.mean(counts), 2) if counts else 0.0,
        "entities_per_doc_max": max(counts, default=0),
        "labels": dict(Counter(e.label for e in result.entities).most_common()),
        "seconds": round(seconds, 2),
        "words_per_s": round(words / seconds, 1) if seconds > 0 else 0.0,
        "step_seconds": steps,
        "failures": len(result.failures),
        "failure_details": result.failures[:MAX_FAILURE_DETAILS],
        "dropped": result.drops.summary(),
    }
    write_json(out / "summary.json", summary)
    return summary


def summary_lines(summary: dict) -> list[str]:
    corpus = summary.get("corpus") or {}
    lines = [
        f"{len(corpus.get('read', []))} files read, {len(corpus.get('skipped', []))} skipped, "
        f"{len(corpus.get('duplicates', []))} duplicate documents loaded once, {corpus.get('pages', 0)} pages",
        f"{summary.get('documents', 0)} documents, {summary.get('passages', 0)} passages, "
        f"{summary.get('words', 0):,} words",
        f"{summary.get('entities', 0)} entities ({summary.get('entities_per_doc', 0)} per document, "
        f"{summary.get('merged_aliases', 0)} merged aliases), {summary.get('edges', 0)} edges",
        f"{summary.get('seconds', 0):.1f} s ({summary.get('words_per_s', 0):,.0f} words/s)",
    ]
    if summary.get("failures"):
        lines.append(f"{summary['failures']} LLM chunks failed to parse after retries (see summary.json)")
    return lines
