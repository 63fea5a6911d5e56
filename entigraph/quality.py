"""The data report: how the filters changed the synthetic corpus, measured before and after.

Metrics (all on word tokens, see text.words):
- distinct-n (Li et al. 2016): unique / total word n-grams over the whole set, n = 1, 2, 3.
- self-BLEU (Zhu et al. 2018): mean BLEU-4 of each sampled passage against the other sampled
  passages as references, implemented here (uniform weights, clipped counts, brevity penalty to the
  closest reference length, Chen & Cherry 2014 smoothing method 1 with epsilon 0.1, i.e. NLTK's
  ``sentence_bleu(..., smoothing_function=SmoothingFunction().method1)``). Higher = less diverse.
- compression ratio: raw bytes / gzip bytes of the concatenated passages. Higher = more redundant.
- near-duplicate rate: share of passages that are MinHash near-duplicates of an earlier one.
- copy rate: share of word 13-grams (the GPT-3 contamination length) found verbatim in the corpus.
- invented-name rate: invented / candidate names (text.invented_names), pooled.
- entity / edge coverage: share of graph entities mentioned in some passage, and of graph edges
  whose two entities are both mentioned in one passage (names and aliases, entities.index.EntityIndex).
- embedding coverage: share of source passages whose nearest synthetic passage has cosine >=
  report.coverage_threshold (optional: needs an embedding function).
- source-unit coverage (entigraph/facts/coverage.py), per synthesis mode and for all modes, before
  and after filtering: the share of source units (the corpus's sentences) restated by at least 1
  and at least synthesis.coverage_k synthetic sentences, overall and per document; the share of
  synthetic sentences the source supports; the invented-name rate. Markup ("Question:", list
  markers) is not a claim, and the generator-free modes' instructions are not counted.
- the support gate (filter.support): per mode, passages and sentences judged, kept,
  repaired and dropped, the reasons sentences were removed, and examples.
"""

from __future__ import annotations

import gzip
import html
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from .config import FilterConfig, ReportConfig
from .reporting import Html, html_table, pct
from .filters import FilterContext, Judge, Outcome, SentenceSupport
from .minhash import near_duplicates
from .text import invented_names, ngram_hashes, words
from .records import Document, Entity, Passage, SynthPassage

COPY_N = 13
EXAMPLES = 3  # dropped examples per filter in the report
Embed = Callable[[list[str]], np.ndarray]


def distinct_n(token_lists: list[list[str]], n: int) -> float | None:
    grams = [tuple(t[i:i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def self_bleu(token_lists: list[list[str]], sample: int, seed: int) -> float | None:
    """Mean BLEU-4 of each sampled passage against all other sampled passages."""
    idx = random.Random(seed).sample(range(len(token_lists)), min(sample, len(token_lists)))
    docs = [token_lists[i] for i in idx]
    if len(docs) < 2:
        return None
    # For each n-gram keep the two largest counts over the sample and the owner of the largest,
    # so "max count over the other passages" is O(1): the clip needs nothing else.
    counts, top = [], []
    for n in range(1, 5):
        per_doc = [Counter(tuple(d[i:i + n]) for i in range(len(d) - n + 1)) for d in docs]
        best: dict[tuple, list] = {}
        for k, c in enumerate(per_doc):
            for g, v in c.items():
                b = best.setdefault(g, [0, -1, 0])  # [largest, owner, second largest]
                if v > b[0]:
                    b[:] = [v, k, b[0]]
                elif v > b[2]:
                    b[2] = v
        counts.append(per_doc)
        top.append(best)
    lengths = [len(d) for d in docs]
    scores = []
    for k, d in enumerate(docs):
        if len(d) < 4:
            continue
        log_p = 0.0
        for n in range(4):
            total = sum(counts[n][k].values())
            clipped = sum(min(v, b[2] if b[1] == k else b[0])
                          for g, v in counts[n][k].items() for b in (top[n][g],))
            log_p += math.log((clipped or 0.1) / total) / 4
        refs = lengths[:k] + lengths[k + 1:]
        closest = min(refs, key=lambda r: (abs(r - len(d)), r))
        bp = 1.0 if len(d) > closest else math.exp(1 - closest / len(d))
        scores.append(bp * math.exp(log_p))
    return float(np.mean(scores)) if scores else None


def compression_ratio(texts: list[str]) -> float | None:
    raw = "\n".join(texts).encode()
    return len(raw) / len(gzip.compress(raw)) if raw else None


def corpus_ngrams(documents: list[Document], n: int) -> set[int]:
    grams: set[int] = set()
    for doc in documents:
        grams.update(ngram_hashes(words(doc.text), n))
    return grams


def copy_rate(token_lists: list[list[str]], corpus_grams: set[int], n: int = COPY_N) -> float | None:
    grams = [g for t in token_lists for g in ngram_hashes(t, n)]
    return sum(g in corpus_grams for g in grams) / len(grams) if grams else None


def graph_ids(graph: Any, entities: list[Entity]) -> tuple[list[str], list[tuple[str, str]]]:
    """Graph nodes and edges as entity ids (nodes are matched by id, then by name). Without a
    graph every entity is a node and there are no edges."""
    if graph is None:
        return [e.entity_id for e in entities], []
    ids = {e.entity_id for e in entities}
    by_name = {e.name.lower(): e.entity_id for e in entities}

    def to_id(node) -> str:
        node = str(node)
        if node in ids:
            return node
        name = str(graph.nodes[node].get("name", graph.nodes[node].get("label", node))).lower()
        return by_name.get(name, by_name.get(node.lower(), node))

    return [to_id(n) for n in graph.nodes], [(to_id(u), to_id(v)) for u, v in graph.edges]


def entity_coverage(texts: list[str], ctx: FilterContext, nodes: list[str],
                    edges: list[tuple[str, str]]) -> dict:
    node_set = set(nodes)
    seen: set[str] = set()
    pairs: set[frozenset] = set()
    for text in texts:
        found = sorted(ctx.entities.found(text) & node_set)
        seen.update(found)
        pairs.update(frozenset((a, b)) for i, a in enumerate(found) for b in found[i + 1:])
    return {
        "entity_coverage": len(seen) / len(node_set) if node_set else None,
        "edge_coverage": sum(frozenset(e) in pairs for e in edges) / len(edges) if edges else None,
    }


def embedding_coverage(source: np.ndarray, synth: np.ndarray, threshold: float) -> dict:
    """Share of source passages whose nearest synthetic passage has cosine >= threshold."""
    if not len(source) or not len(synth):
        return {"embedding_coverage": None, "mean_best_cosine": None}
    norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    best = (norm(source) @ norm(synth).T).max(axis=1)
    return {"embedding_coverage": float((best >= threshold).mean()), "mean_best_cosine": float(best.mean())}


def metrics(passages: list[SynthPassage], ctx: FilterContext, cfg: FilterConfig, report: ReportConfig,
            copy_grams: set[int], graph: tuple[list[str], list[tuple[str, str]]], seed: int) -> dict:
    texts = [p.text for p in passages]
    toks = [words(t) for t in texts]
    dups = near_duplicates(texts, cfg.near_dup.threshold, cfg.near_dup.num_perm)
    names = [invented_names(t, ctx.vocab) for t in texts]
    n_candidates = sum(len(c) for c, _ in names)
    return {
        "passages": len(passages),
        "tokens": sum(p.completion_tokens for p in passages),
        "words": sum(len(t) for t in toks),
        **{f"distinct_{n}": distinct_n(toks, n) for n in (1, 2, 3)},
        "self_bleu": self_bleu(toks, report.self_bleu_sample, seed),
        "compression_ratio": compression_ratio(texts),
        "near_dup_rate": sum(d is not None for d in dups) / len(dups) if dups else None,
        "copy_rate": copy_rate(toks, copy_grams),
        "invented_rate": sum(len(i) for _, i in names) / n_candidates if n_candidates else None,
        **entity_coverage(texts, ctx, *graph),
    }


def unit_coverage(sets: dict[str, list[SynthPassage]], ctx: FilterContext, documents: list[Document],
                  entities: list[Entity], k: int) -> dict:
    """Source-unit coverage per mode of each set of passages (entigraph/facts/coverage.py)."""
    from .facts.coverage import Coverage
    from .facts.units import source_units

    units = source_units(documents, entities)
    out = {}
    for name, passages in sets.items():
        cov = Coverage(units, ctx.vocab, k=k, forms=ctx.forms)
        for p in passages:
            cov.add(p.text, p.mode, p.doc_ids or None)
        out[name] = cov.report()
    return {"units": len(units), "documents": len({u.doc_id for u in units}), **out}


def _reason_kind(reason: str) -> str:
    for prefix, kind in (("name", "name absent from the source"), ("number", "number absent from the source"),
                         ("shares", "too few content words in the source")):
        if reason.startswith(prefix):
            return kind
    return "other"


def support_summary(support: SentenceSupport | None, outcome: Outcome) -> dict | None:
    """The support gate's verdicts per mode, why sentences went, and examples."""
    if support is None:
        return None
    removed = [s for ss in outcome.sentences.values() for s in ss if s.get("filter") == support.name]
    tally = {m: dict(c) for m, c in sorted(getattr(support, "tally", {}).items())}
    total = Counter()
    for c in tally.values():
        total.update(c)
    return {"by_mode": tally, "all": dict(total),
            "kept_sentence_rate": total["kept_sentences"] / total["sentences"] if total["sentences"] else None,
            "reasons": dict(Counter(_reason_kind(s["reason"]) for s in removed).most_common()),
            "examples": [{"sentence": s["sentence"][:300], "reason": s["reason"]} for s in removed[:EXAMPLES * 3]]}


def build_report(inputs: list[SynthPassage], outcome: Outcome, ctx: FilterContext, cfg: FilterConfig, *,
                 report: ReportConfig | None = None, coverage_k: int = 3, documents: list[Document], source: list[Passage], entities: list[Entity],
                 graph: Any = None, seed: int = 0, judge: Judge | None = None,
                 embed: Embed | None = None, support: SentenceSupport | None = None) -> dict:
    """The report JSON: counts per filter with examples, repairs, and metrics before/after.
    `graph` is the extract stage's networkx graph (None: every entity a node, no edges)."""
    report = report or ReportConfig()
    before = [p for p in inputs if p.status == "ok" and p.text.strip()]
    copy_grams = corpus_ngrams(documents, COPY_N)
    nodes_edges = graph_ids(graph, entities)
    sets = {"before": before, "after": outcome.kept}
    report_metrics = {k: metrics(v, ctx, cfg, report, copy_grams, nodes_edges, seed) for k, v in sets.items()}
    if embed is not None:
        texts = sorted({p.text for p in before + outcome.kept} | {p.text for p in source})
        vecs = dict(zip(texts, embed(texts))) if texts else {}
        src = np.array([vecs[p.text] for p in source]).reshape(len(source), -1)
        for k, v in sets.items():
            syn = np.array([vecs[p.text] for p in v]).reshape(len(v), -1)
            report_metrics[k].update(embedding_coverage(src, syn, report.coverage_threshold))

    filters = []
    for row in outcome.stats:
        drops = [(p, r) for p, f, r in outcome.dropped if f == row["filter"]]
        filters.append({**row, "tokens_dropped": sum(p.completion_tokens for p, _ in drops), "examples": [
            {"task_id": p.task_id, "mode": p.mode, "entities": p.entities, "reason": r, "text": p.text[:600]}
            for p, r in drops[:EXAMPLES]]})
    repairs = [(tid, e) for tid, es in outcome.edits.items() for e in es]
    return {
        "input": len(inputs),
        "kept": len(outcome.kept),
        "dropped": len(outcome.dropped),
        "tokens_in": sum(p.completion_tokens for p in inputs),
        "tokens_kept": sum(p.completion_tokens for p in outcome.kept),
        "filters": filters,
        "repairs": {"count": len(repairs), "examples": [
            {"task_id": tid, "filter": e["filter"], "reason": e["reason"],
             "original_end": e["original_text"][-200:]} for tid, e in repairs[:EXAMPLES]]},
        "judge": None if judge is None else {
            "scores": dict(sorted(Counter(s for s in judge.scores.values() if s is not None).items())),
            "unparseable": len(judge.unparseable), "unparseable_examples": judge.unparseable[:EXAMPLES]},
        "metrics": report_metrics,
        "metrics_notes": "before: generated passages with text (status ok); after: kept passages",
        "support": support_summary(support, outcome),
        "coverage": unit_coverage(sets, ctx, documents, entities, coverage_k),
        "settings": {"filter": asdict(cfg), "report": asdict(report), "coverage_k": coverage_k},
    }


# ---------------------------------------------------------------------------------------------
# HTML fragment for the final report

METRIC_LABELS = {
    "passages": "passages", "tokens": "tokens", "words": "words",
    "distinct_1": "distinct-1", "distinct_2": "distinct-2", "distinct_3": "distinct-3",
    "self_bleu": "self-BLEU-4 (lower = more diverse)", "compression_ratio": "gzip compression ratio",
    "near_dup_rate": "near-duplicate rate", "copy_rate": f"copy rate ({COPY_N}-grams in corpus)",
    "invented_rate": "invented-name rate", "entity_coverage": "entity coverage",
    "edge_coverage": "graph-edge coverage", "embedding_coverage": "source embedding coverage",
    "mean_best_cosine": "mean best cosine to a source passage",
}


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(header: list[str], rows: list[list]) -> str:
    return html_table(header, rows, fmt=_fmt)


def _mode_rows(modes: dict) -> list[list]:
    order = sorted((m for m in modes if m != "*"), key=str) + (["*"] if "*" in modes else [])
    return [[Html("<strong>all modes</strong>") if m == "*" else m, modes[m]["passages"], modes[m]["sentences"],
             pct(modes[m]["supported_sentence_rate"]), pct(modes[m]["invented_name_rate"]),
             pct(modes[m]["covered_1"]), pct(modes[m]["covered_k"]),
             pct(modes[m]["doc_mean_covered_1"]), pct(modes[m]["doc_mean_covered_k"])] for m in order]


def coverage_html(cov: dict) -> list[str]:
    """Source-unit coverage per mode (kept and as generated), and per document for all modes."""
    after = cov.get("after", {})
    k = after.get("k", 3)
    header = ["mode", "passages", "sentences", "supported sentences", "invented-name rate", "units covered ≥ 1",
              f"≥ {k}", "per-document mean ≥ 1", f"≥ {k}"]
    parts = ["<h3>Source coverage</h3>",
             f"<p>The corpus's {cov['units']:,} sentences (source units) in {cov['documents']:,} documents: how many "
             f"the synthetic sentences restate at least once and at least {k} times (a restatement carries "
             f"3/4 of a unit's names and numbers and 3/5 of its content words), the share of synthetic sentences "
             f"their documents support, and the share of names found nowhere in the corpus. "
             f"Kept passages:</p>",
             _table(header, _mode_rows(after.get("modes", {})))]
    before = cov.get("before", {}).get("modes", {})
    if before:
        parts += ["<p>As generated (before the filters):</p>", _table(header, _mode_rows(before))]
    per_doc = after.get("modes", {}).get("*", {}).get("per_doc", {})
    if per_doc:
        rows = [[d, r["units"], pct(r["covered_1"]), pct(r["covered_k"])] for d, r in sorted(per_doc.items())]
        parts += ["<details><summary>Per document (kept passages, all modes)</summary>"
                  + _table(["document", "units", "covered ≥ 1", f"covered ≥ {k}"], rows) + "</details>"]
    return parts


def support_html(sup: dict) -> list[str]:
    a = sup["all"]
    if not a.get("passages"):
        return ["<h3>Sentence support gate</h3>",
                "<p>On, with no LLM-written passage to check (generator-free passages are the source's own "
                "sentences and are not gated).</p>"]
    parts = ["<h3>Sentence support gate</h3>",
             f"<p>{a.get('sentences', 0):,} sentences of {a.get('passages', 0):,} LLM-written passages checked "
             f"against their source context; {a.get('kept_sentences', 0):,} supported "
             f"({pct(sup['kept_sentence_rate'])}). {a.get('repaired', 0):,} passages kept without their "
             f"unsupported sentences, {a.get('dropped', 0):,} dropped (too little left). Sentences removed: "
             + html.escape(", ".join(f"{k} {v:,}" for k, v in sup["reasons"].items()) or "none") + ".</p>",
             _table(["mode", "passages", "sentences", "kept sentences", "repaired", "dropped"],
                    [[m, c.get("passages", 0), c.get("sentences", 0), c.get("kept_sentences", 0),
                      c.get("repaired", 0), c.get("dropped", 0)] for m, c in sup["by_mode"].items()])]
    if sup["examples"]:
        parts.append(_table(["removed sentence", "reason"],
                            [[Html(f"<small>{html.escape(e['sentence'])}</small>"), e["reason"]] for e in sup["examples"]]))
    return parts


def report_section_html(report: dict) -> str:
    """An HTML fragment (headings and tables, no <html>/<body>) for the final report."""
    n_in, n_kept = report["input"], report["kept"]
    share = f"{n_kept / n_in:.1%}" if n_in else "–"
    parts = [
        "<h2>Synthetic data quality</h2>",
        f"<p>Kept {n_kept:,} of {n_in:,} passages ({share}), {report['tokens_kept']:,} of "
        f"{report['tokens_in']:,} generated tokens. Each passage is dropped by the first filter that "
        f"rejects it; <em>would flag</em> counts what a filter flags on all inputs on its own.</p>",
        _table(["filter", "evaluated", "would flag", "dropped", "repaired", "remaining", "tokens remaining"],
               [[f["filter"], f["evaluated"], f["would_flag"], f["dropped"], f["repaired"], f["remaining"],
                 f["tokens_remaining"]] for f in report["filters"]]),
        "<h3>Before and after filtering</h3>",
    ]
    before, after = report["metrics"]["before"], report["metrics"]["after"]
    keys = [k for k in METRIC_LABELS if k in before or k in after]
    parts.append(_table(["metric", "before", "after"],
                        [[METRIC_LABELS[k], before.get(k), after.get(k)] for k in keys]))
    if report.get("coverage"):
        parts += coverage_html(report["coverage"])
    if report.get("support"):
        parts += support_html(report["support"])
    rows = [[f["filter"], e["task_id"], e["reason"], Html(f"<small>{html.escape(e['text'][:300])}</small>")]
            for f in report["filters"] for e in f["examples"]]
    if rows:
        parts += ["<h3>Dropped examples</h3>", _table(["filter", "task", "reason", "text"], rows)]
    if report["repairs"]["count"]:
        parts.append(f"<p>{report['repairs']['count']:,} passages cut at the token limit were trimmed "
                     "to their last full sentence and kept.</p>")
    judge = report.get("judge")
    if judge:
        scores = ", ".join(f"{s}: {n}" for s, n in judge["scores"].items()) or "none"
        parts.append(f"<p>LLM judge scores ({html.escape(scores)}); {judge['unparseable']} unparseable "
                     "replies (kept).</p>")
    return "\n".join(parts)
