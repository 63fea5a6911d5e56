"""The filter stage: apply the quality gates to the stored synthesis run and write the data report.

Writes under runs/<name>/filter/:
    kept.jsonl     SynthPassage records kept (possibly trimmed), each with `edits` (repairs made) and
                   `unsupported_sentences` (each sentence the support gate removed, with its reason)
    dropped.jsonl  SynthPassage records dropped, each with `dropped_by` and `reason` (and, when the
                   support gate dropped it, `unsupported_sentences`: why each sentence failed)
    report.json    counts per filter with examples, repairs, judge scores, metrics before/after, the
                   support gate's tally, source-unit coverage per synthesis mode (entigraph/facts)
    summary.json   the summary returned by run()
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import numpy as np

from .. import artifacts
from ..backends import open_backend
from ..config import RunConfig
from ..config import FilterConfig
from ..filters import (Echo, Empty, Failed, Filter, FilterContext, Grounding, Judge, Length, NearDup, Noise,
                       Repetition, SentenceSupport, Truncated, apply_filters)
from ..modes import LLM_MODES
from ..io import write_json, write_jsonl
from ..models import resolve_embedder
from ..quality import Embed, build_report
from ..records import to_dict

from .spec import StageSpec

STAGE = StageSpec(
    "filter", "apply the quality gates and write the data report",
    sections=("filter", "report", "models.embedder"),
    outputs=("report.json", "kept.jsonl", "dropped.jsonl", "summary.json"),
    uses_backend=lambda cfg: cfg.filter.judge.enabled,
)


def load_embedder(name: str) -> Embed:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_embedder(name), device="cpu")
    return lambda texts: np.asarray(model.encode(texts, batch_size=32, show_progress_bar=len(texts) > 64))


def build_filters(f: FilterConfig, judge_batch_size: int = 16) -> list[Filter]:
    """The gates in order, cheap to expensive, each with its thresholds from the config."""
    support: list[Filter] = []
    gated: list[str] = []
    s = f.support
    if s.enabled:
        gated = list(s.modes or LLM_MODES)
        support = [SentenceSupport(s.min_share, s.max_absent_names, s.max_absent_numbers, s.min_kept_sentences,
                                   s.min_kept_share, gated)]
    filters: list[Filter] = [
        Failed(), Empty(), Truncated(f.min_words), *support, Echo(f.echo_threshold), Noise(f.noise_terms),
        Length(f.min_words, f.length_sigma, f.length_reference),
        Repetition(f.max_dup_line_ratio, f.max_top_ngram_share, f.max_dup_ngram_ratio),
        Grounding(f.require_entities, f.max_invented_rate, gated), NearDup(f.near_dup.threshold, f.near_dup.num_perm),
    ]
    return filters + [Judge(f.judge.threshold, judge_batch_size)] if f.judge.enabled else filters


def run(cfg: RunConfig, embed: Embed | None = None) -> dict:
    """Filter synthesize/passages.jsonl; `embed` replaces the configured embedder (tests)."""
    out = artifacts.stage_dir(cfg.out, "filter")
    inputs = artifacts.synthetic(cfg.out)
    documents, source = artifacts.documents(cfg.out), artifacts.passages(cfg.out)
    entities = artifacts.entities(cfg.out)

    filters = build_filters(cfg.filter, cfg.backend.batch_size)
    with open_backend(cfg, cfg.filter.judge.model) if cfg.filter.judge.enabled else nullcontext() as judge_backend:
        ctx = FilterContext.build(documents, source, entities, judge=judge_backend)
        outcome = apply_filters(inputs, filters, ctx)

    if embed is None and cfg.report.embedding_coverage:
        embed = load_embedder(cfg.models.embedder)
    judge = next((f for f in filters if isinstance(f, Judge)), None)
    support = next((f for f in filters if isinstance(f, SentenceSupport)), None)
    report = build_report(inputs, outcome, ctx, cfg.filter, report=cfg.report, coverage_k=cfg.synthesis.coverage_k,
                          documents=documents, source=source, entities=entities, graph=artifacts.graph(cfg.out),
                          seed=cfg.seed, judge=judge, embed=embed if cfg.report.embedding_coverage else None,
                          support=support)

    write_jsonl(out / "kept.jsonl", ({**to_dict(p), "edits": outcome.edits.get(p.task_id, []),
                                      "unsupported_sentences": outcome.sentences.get(p.task_id, [])}
                                     for p in outcome.kept))
    write_jsonl(out / "dropped.jsonl", ({**to_dict(p), "dropped_by": f, "reason": r,
                                         "edits": outcome.edits.get(p.task_id, []),
                                         "unsupported_sentences": outcome.sentences.get(p.task_id, [])}
                                        for p, f, r in outcome.dropped))
    write_json(out / "report.json", report)
    summary = make_summary(report)
    write_json(out / "summary.json", summary)
    return summary


def make_summary(report: dict) -> dict:
    before, after = report["metrics"]["before"], report["metrics"]["after"]
    keys = ("distinct_2", "self_bleu", "copy_rate", "invented_rate", "entity_coverage", "embedding_coverage")
    return {
        "input": report["input"],
        "kept": report["kept"],
        "dropped": {f["filter"]: f["dropped"] for f in report["filters"]},
        "would_flag": {f["filter"]: f["would_flag"] for f in report["filters"]},
        "trimmed": report["repairs"]["count"],
        "tokens_in": report["tokens_in"],
        "tokens_kept": report["tokens_kept"],
        "metrics": {k: [before.get(k), after.get(k)] for k in keys if k in before},
        "coverage": _coverage_summary(report),
    }


def _coverage_summary(report: dict) -> dict | None:
    """Kept passages, all modes: source units covered >= 1 and >= k times, supported sentences, invented names."""
    every = (report.get("coverage") or {}).get("after", {}).get("modes", {}).get("*")
    if not every:
        return None
    keys = ("covered_1", "covered_k", "supported_sentence_rate", "invented_name_rate")
    return {"k": report["coverage"]["after"]["k"], **{k: every[k] for k in keys}}


def summary_lines(summary: dict) -> list[str]:
    n_in, n_kept = summary["input"], summary["kept"]
    share = f" ({n_kept / n_in:.0%})" if n_in else ""
    lines = [f"kept {n_kept:,}/{n_in:,} passages{share}, {summary['tokens_kept']:,}/"
             f"{summary['tokens_in']:,} tokens; trimmed {summary['trimmed']} truncated passages"]
    dropped = {k: v for k, v in summary["dropped"].items() if v}
    if dropped:
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines.append("before -> after: " + ", ".join(
        f"{k} {fmt(b)} -> {fmt(a)}" for k, (b, a) in summary["metrics"].items()))
    cov = summary.get("coverage")
    if cov:
        pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
        lines.append(f"source units covered >= 1: {pct(cov['covered_1'])}, >= {cov['k']}: {pct(cov['covered_k'])}; "
                     f"supported sentences {pct(cov['supported_sentence_rate'])}, invented names "
                     f"{pct(cov['invented_name_rate'])} (kept passages, all modes)")
    lines.append("details: filter/report.json, dropped passages in filter/dropped.jsonl")
    return lines
