"""The eval stage: base vs continued-pretrained, closed-book vs RAG vs oracle, on the same questions.

Conditions are <model>_<setting>: model base (models.base), cpt (train/model) or an eval.extra_models
label; setting closed (question only), rag (top-k retrieved chunks, then the question) or oracle (the
question's own document, cut from the left to eval.max_context_tokens). Each model is loaded once,
runs all its conditions, and is freed before the next one loads.

Writes under runs/<name>/eval/: records.jsonl (one line per condition x question), retrieval.json
(recall@k, latency, hits per question), index/ (the FAISS index), results.json; and a copy of
results.json at runs/<name>/results.json.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from entigraph.retrieval import (
    RECALL_KS,
    Retriever,
    chunk_documents,
    count_words,
    document_recall,
    latency_summary,
    token_counter,
)
from tqdm import tqdm

from entigraph import artifacts
from entigraph.config import RunConfig, SamplingConfig
from entigraph.corpus import locate
from entigraph.devices import pick_device
from entigraph.errors import ConfigError
from entigraph.io import write_json
from entigraph.models import resolve_lm
from entigraph.records import Document, Question

from .answers import exact_match
from .scoring import MODES, LMScorer, mc_messages, parse_answer
from .stats import bootstrap_ci, mcnemar_exact, paired_bootstrap, wilson_ci

SETTINGS = ("closed", "rag", "oracle")
# Pairs worth a test, in reading order: what continued pretraining changes, what retrieval
# changes, and the paper's question (does closed-book CPT reach the base model with RAG?).
PAIRS = (
    ("cpt_closed", "base_closed"), ("cpt_rag", "base_rag"), ("cpt_oracle", "base_oracle"),
    ("base_rag", "base_closed"), ("cpt_rag", "cpt_closed"), ("cpt_closed", "base_rag"),
    ("base_oracle", "base_closed"),
)


def planned_conditions(cfg: RunConfig) -> list[str]:
    """eval.conditions plus, with eval.reading_check, base_rag / base_oracle beside cpt_rag /
    cpt_oracle: does the adapted model still read its context as well as the base model does?"""
    conds = list(dict.fromkeys(cfg.eval.conditions))
    if getattr(cfg.eval, "reading_check", False):
        for setting in ("rag", "oracle"):
            if f"cpt_{setting}" in conds and f"base_{setting}" not in conds:
                conds.append(f"base_{setting}")
    return conds


def plan_models(cfg: RunConfig) -> list[tuple[str, str, list[str]]]:
    """[(label, model path, conditions)], failing fast (before any model loads) on a missing
    trained model or a bad extra-model label."""
    by_model: dict[str, list[str]] = defaultdict(list)
    for cond in planned_conditions(cfg):
        label, setting = cond.rsplit("_", 1)
        by_model[label].append(cond)
    plan = []
    if by_model.get("base"):
        plan.append(("base", resolve_lm(cfg.models.base, cfg.models.cache_dir), by_model["base"]))
    if by_model.get("cpt"):
        plan.append(("cpt", str(artifacts.trained_model(cfg.out)), by_model["cpt"]))
        for alpha in dict.fromkeys(getattr(cfg.eval, "interpolate", [])):  # the eval stage writes these folders
            label = interpolated_label(alpha)
            plan.append((label, str(interpolated_dir(cfg, alpha)),
                         [f"{label}_{c.rsplit('_', 1)[1]}" for c in by_model["cpt"]]))
    rag = any(c.endswith("_rag") for c in planned_conditions(cfg))
    for label, folder in cfg.eval.extra_models.items():
        if label in ("base", "cpt") or not label.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"eval.extra_models: label {label!r} must be a plain name other than base/cpt")
        if not Path(folder).is_dir():
            raise ConfigError(f"eval.extra_models.{label}: model folder not found: {folder}")
        plan.append((label, folder, [f"{label}_closed"] + ([f"{label}_rag"] if rag else [])))
    return plan


def interpolated_label(alpha: float) -> str:
    """eval.interpolate's model labels: alpha0.5 is 0.5 x trained + 0.5 x base."""
    return f"alpha{alpha:g}"


def interpolated_dir(cfg: RunConfig, alpha: float) -> Path:
    return cfg.out / "interpolated" / interpolated_label(alpha)


def query_text(q: Question) -> str:
    """What is searched for: the question and, for multiple choice, its options (they carry names)."""
    return " ".join([q.question, *q.options]) if q.kind == "mc" else q.question


def make_embedder(cfg: RunConfig):
    """The embedding function for dense retrieval (tests replace this with a deterministic one)."""
    from entigraph.retrieval.embeddings import Embedder

    return Embedder(cfg.models.embedder, device=pick_device(cfg.device))


EXAMPLE_QUESTIONS = 5  # questions whose retrieved chunks the report shows


def retrieve_contexts(cfg: RunConfig, documents: Sequence[Document], questions: Sequence[Question],
                      out: Path) -> tuple[dict[str, tuple[str, list[str]]], dict]:
    """Chunk, index, and retrieve for every question. Returns {qid: (context, chunk ids)} and the
    retrieval report (also written to retrieval.json with each question's hits)."""
    r = cfg.eval.retrieval
    start = time.perf_counter()
    embed = make_embedder(cfg) if (r.method != "bm25" or r.chunk_unit == "tokens") else None
    length = token_counter(embed.tokenizer) if r.chunk_unit == "tokens" else count_words
    chunks = chunk_documents(documents, r.chunk_words, r.chunk_overlap, r.title_prefix, length)
    retriever = Retriever.build(chunks, r.method, embed, r.index, out / "index", cfg.models.embedder,
                                r.reranker, r.rrf_k, r.candidates)
    built = time.perf_counter() - start
    k = max(r.top_k, max(RECALL_KS))
    hits, seconds = retriever.search_many([query_text(q) for q in questions], k, progress=True)
    text = {c.chunk_id: c.indexed_text for c in chunks}
    contexts = {q.qid: ("\n\n".join(text[h.chunk_id] for h in hs[: r.top_k]), [h.chunk_id for h in hs[: r.top_k]])
                for q, hs in zip(questions, hits)}
    report = {
        "method": r.method, "index": retriever.dense.plan.kind if retriever.dense else "bm25",
        "index_note": retriever.dense.plan.note if retriever.dense else "",
        "embedder": cfg.models.embedder if embed is not None else "", "reranker": r.reranker or "",
        "chunks": len(chunks), "chunk_size": r.chunk_words, "chunk_unit": r.chunk_unit, "top_k": r.top_k,
        **document_recall(hits, [q.doc_id for q in questions]),
        "latency": latency_summary(seconds), "build_seconds": round(built, 2),
    }
    by_id, docs = {c.chunk_id: c for c in chunks}, {d.doc_id: d for d in documents}
    report["examples"] = [  # the first questions' top chunks, cited down to the page or section
        {"question": q.question, "doc_id": q.doc_id, "chunks": [
            {"chunk_id": h.chunk_id, "title": docs[h.doc_id].title, "score": round(h.score, 4),
             "where": locate(docs[h.doc_id], by_id[h.chunk_id].start, by_id[h.chunk_id].end)} for h in hs[: r.top_k]]}
        for q, hs in list(zip(questions, hits))[:EXAMPLE_QUESTIONS]]
    write_json(out / "retrieval.json", {**report, "hits": [
        {"qid": q.qid, "doc_id": q.doc_id, "hits": [[h.chunk_id, round(h.score, 4)] for h in hs]}
        for q, hs in zip(questions, hits)]})
    return contexts, report


def _record(cond: str, label: str, q: Question, scored: dict, main: str, retrieved: list[str]) -> dict:
    if "predicted" in scored:
        correct = {m: scored["predicted"][m] == q.answer for m in scored["predicted"]}
        predicted = scored["predicted"][main]
    else:  # no options: a short answer or a bare cloze probe is right when the greedy reply matches
        correct = {m: bool(scored.get("exact_match")) for m in MODES}
        predicted = -1
    return {
        "condition": cond, "model": label, "qid": q.qid, "doc_id": q.doc_id, "kind": q.kind,
        "probe_type": q.meta.get("probe_type", ""), "answer": q.answer, "predicted": predicted,
        "correct": correct[main], "correct_by_mode": correct, "predicted_by_mode": scored.get("predicted", {}),
        "scores": scored.get("scores", {}), "retrieved": retrieved,
        **{k: scored[k] for k in ("target_logprob", "greedy", "exact_match", "reply") if k in scored},
        "prompt_tokens": scored.get("prompt_tokens", 0), "truncated": scored.get("truncated", False),
        "seconds": round(scored.get("seconds", 0.0), 4),
    }


def _context(setting: str, q: Question, rag: dict, docs: dict[str, Document]) -> tuple[str | None, list[str]]:
    if setting == "rag":
        return rag[q.qid]
    if setting == "oracle":
        doc = docs.get(q.doc_id)
        return (doc.text if doc else None), ([q.doc_id] if doc else [])
    return None, []


def score_loglik(cfg: RunConfig, label: str, path: str, conds: list[str], questions: Sequence[Question],
                 rag: dict, docs: dict[str, Document]) -> list[dict]:
    scorer = LMScorer(path, cfg.device, cfg.eval.dtype, cfg.eval.max_context_tokens)
    records = []
    try:
        for cond in conds:
            setting = cond.rsplit("_", 1)[1]
            for q in tqdm(questions, desc=cond, unit="q"):
                context, retrieved = _context(setting, q, rag, docs)
                records.append(_record(cond, label, q, scorer.score(q, context), cfg.eval.scoring, retrieved))
    finally:
        scorer.close()
    return records


def score_generate(cfg: RunConfig, label: str, path: str, conds: list[str], questions: Sequence[Question],
                   rag: dict, docs: dict[str, Document]) -> list[dict]:
    """Generative answering through the configured backend (backend.kind): greedy replies,
    parsed for "Answer: (X)"; questions without options are scored by exact match."""
    from entigraph.backends import Request, open_backend

    sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0,
                              max_new_tokens=512 if cfg.eval.chain_of_thought else 32)
    records = []
    with open_backend(cfg, path) as backend:
        for cond in conds:
            setting = cond.rsplit("_", 1)[1]
            requests, retrieved = [], []
            for q in questions:
                context, ids = _context(setting, q, rag, docs)
                shots = [x for x in questions if x.doc_id != q.doc_id and x.options][: cfg.eval.few_shot]
                if q.options:
                    messages = mc_messages(q, context, shots, cfg.eval.chain_of_thought)
                else:
                    head = f"{context.strip()}\n\n" if context else ""
                    messages = [{"role": "user", "content": f"{head}Complete with a short answer: {q.question}"}]
                requests.append(Request(messages, sampling, seed=cfg.seed))
                retrieved.append(ids)
            gens = []
            for i in tqdm(range(0, len(requests), cfg.backend.batch_size), desc=cond, unit="batch"):
                gens += backend.generate(requests[i: i + cfg.backend.batch_size])
            for q, g, ids in zip(questions, gens, retrieved):
                scored = {"reply": g.text, "seconds": g.seconds, "prompt_tokens": g.prompt_tokens}
                if q.options:
                    scored["predicted"] = {m: parse_answer(g.text, q.options) for m in MODES}
                else:
                    scored["exact_match"] = exact_match(g.text.split("Answer:")[-1], q.answer_text, prefix=True)
                records.append(_record(cond, label, q, scored, cfg.eval.scoring, ids))
    return records


# --- summaries -------------------------------------------------------------------------------
def summarize(records: Sequence[dict], questions: Sequence[Question], documents: Sequence[Document],
              cfg: RunConfig) -> dict:
    main, resamples, seed = cfg.eval.scoring, cfg.eval.bootstrap, cfg.seed
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_cond[r["condition"]].append(r)
    conditions = {}
    for cond, rs in by_cond.items():
        ok = np.array([r["correct"] for r in rs], dtype=float)
        entry = {
            "model": rs[0]["model"], "accuracy": float(ok.mean()), "n": len(rs), "correct": int(ok.sum()),
            "ci95": list(bootstrap_ci(ok, resamples, seed)), "wilson95": list(wilson_ci(int(ok.sum()), len(rs))),
            "by_mode": {m: _accuracy([r["correct_by_mode"][m] for r in rs], resamples, seed)
                        for m in rs[0]["correct_by_mode"]},
            "truncated": sum(r["truncated"] for r in rs),
            "seconds": round(sum(r["seconds"] for r in rs), 2),
        }
        if any("exact_match" in r for r in rs):
            entry["exact_match"] = float(np.mean([r.get("exact_match", False) for r in rs]))
        if any("target_logprob" in r for r in rs):
            entry["target_logprob"] = float(np.mean([r["target_logprob"] for r in rs if "target_logprob" in r]))
        conditions[cond] = entry
    paired = []
    by_qid = {c: {r["qid"]: r for r in rs} for c, rs in by_cond.items()}
    extra_pairs = [(f"{label}_closed", "base_closed") for label in cfg.eval.extra_models] + \
                  [("cpt_closed", f"{label}_closed") for label in cfg.eval.extra_models] + \
                  [(f"{interpolated_label(a)}_{s}", f"base_{s}") for a in getattr(cfg.eval, "interpolate", [])
                   for s in SETTINGS]
    for a, b in (*PAIRS, *extra_pairs):
        if a in by_qid and b in by_qid:
            paired.append({"a": a, "b": b, **paired_test(by_qid[a], by_qid[b], resamples, seed)})
    titles = {d.doc_id: d.title for d in documents}
    by_document: dict[str, dict] = {}
    by_type: dict[str, dict] = defaultdict(dict)
    for cond, rs in by_cond.items():
        groups, types = defaultdict(list), defaultdict(list)
        for r in rs:
            groups[r["doc_id"]].append(r["correct"])
            if r["probe_type"]:
                types[r["probe_type"]].append(r["correct"])
        for doc_id, ok in groups.items():
            entry = by_document.setdefault(doc_id, {"title": titles.get(doc_id, ""), "n": len(ok), "accuracy": {}})
            entry["accuracy"][cond] = float(np.mean(ok))
        for ptype, ok in types.items():
            by_type[ptype][cond] = {"accuracy": float(np.mean(ok)), "n": len(ok)}
    with_options = [q for q in questions if q.options]
    generated = sum(bool(q.meta.get("generated")) for q in questions)
    return {
        "questions": len(questions), "scoring": main, "modes": list(MODES), "answer_mode": cfg.eval.answer_mode,
        "probes": "generated" if generated else "given", "generated_questions": generated,
        "chance": float(np.mean([1 / len(q.options) for q in with_options])) if with_options else None,
        "conditions": {c: conditions[c] for c in _ordered(conditions)},
        "paired": paired, "by_document": by_document, "by_type": dict(by_type),
        "reading": reading_check(by_qid, conditions, resamples, seed),
    }


def paired_test(a: dict[str, dict], b: dict[str, dict], resamples: int = 2000, seed: int = 0) -> dict:
    """Two conditions on their shared questions ({qid: record} each): the accuracy difference with
    a paired bootstrap interval and the exact McNemar test, and, where both records carry the
    target's log-likelihood (cloze probes), its mean difference with a paired bootstrap interval
    and the number of questions on which it rose."""
    qids = [q for q in a if q in b]
    xa, xb = [a[q]["correct"] for q in qids], [b[q]["correct"] for q in qids]
    test, boot = mcnemar_exact(xa, xb), paired_bootstrap(xa, xb, resamples, seed)
    out = {"diff": boot["diff"], "ci95": boot["ci95"], "mcnemar_p": test["p"], "only_a": test["only_a"],
           "only_b": test["only_b"], "n": len(qids)}
    if qids and all("target_logprob" in a[q] and "target_logprob" in b[q] for q in qids):
        la, lb = [a[q]["target_logprob"] for q in qids], [b[q]["target_logprob"] for q in qids]
        lp = paired_bootstrap(la, lb, resamples, seed)
        out.update(logprob_diff=lp["diff"], logprob_ci95=lp["ci95"], logprob_wins=int(sum(x > y for x, y in zip(la, lb))))
    return out


def reading_check(by_qid: dict[str, dict[str, dict]], conditions: dict[str, dict], resamples: int, seed: int) -> list[dict]:
    """The adapted model against the base model with the same context (retrieved chunks, the
    document itself): a model that learned the documents but reads its context worse shows here."""
    out = []
    for setting in ("rag", "oracle"):
        a, b = f"cpt_{setting}", f"base_{setting}"
        if a in by_qid and b in by_qid:
            out.append({"setting": setting, "a": a, "b": b,
                        "cpt": {k: conditions[a][k] for k in ("accuracy", "ci95", "n") if k in conditions[a]},
                        "base": {k: conditions[b][k] for k in ("accuracy", "ci95", "n") if k in conditions[b]},
                        **paired_test(by_qid[a], by_qid[b], resamples, seed)})
    return out


def _accuracy(correct: Sequence[bool], resamples: int, seed: int) -> dict:
    return {"accuracy": float(np.mean(correct)), "ci95": list(bootstrap_ci(correct, resamples, seed))}


def _ordered(conds) -> list[str]:
    def key(c: str) -> tuple:
        label, setting = c.rsplit("_", 1)
        return ({"base": 0, "cpt": 1}.get(label, 2), label, SETTINGS.index(setting) if setting in SETTINGS else 9)
    return sorted(conds, key=key)


def table_lines(results: dict) -> list[str]:
    """The comparison as a plain-text table (what the CLI prints)."""
    conds = results.get("conditions", {})
    if not conds:
        return ["no conditions were evaluated"]
    lines = [f"{'condition':<18}{'accuracy':>9}  {'95% CI':<15}{'n':>5}"]
    for cond, c in conds.items():
        lo, hi = c["ci95"]
        lines.append(f"{cond:<18}{100 * c['accuracy']:>8.1f}%  [{100 * lo:4.1f}, {100 * hi:4.1f}]  {c['n']:>5}")
    chance = results.get("chance")
    lines.append(f"scoring: {results.get('scoring', '')}" + (f"; chance {100 * chance:.1f}%" if chance else ""))
    for p in results.get("paired", []):
        lo, hi = p["ci95"]
        lines.append(f"{p['a']} - {p['b']}: {100 * p['diff']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}], "
                     f"McNemar p={p['mcnemar_p']:.3g}")
    for r in results.get("reading") or []:
        lo, hi = r["ci95"]
        lp = (f"; target log-lik {r['logprob_diff']:+.3f} [{r['logprob_ci95'][0]:+.3f}, {r['logprob_ci95'][1]:+.3f}]"
              if "logprob_diff" in r else "")
        lines.append(f"reading check, {r['setting']}: adapted {100 * r['cpt']['accuracy']:.1f}% vs base "
                     f"{100 * r['base']['accuracy']:.1f}%, {100 * r['diff']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}], "
                     f"McNemar p={r['mcnemar_p']:.3g}{lp}")
    f = results.get("forgetting") or {}
    if "diff" in f:
        lines.append(f"forgetting ({f['source']}, {f['blocks']} blocks): loss {f['base_loss']:.3f} -> {f['cpt_loss']:.3f} "
                     f"nats/token, {f['diff']:+.3f} [{f['ci95'][0]:+.3f}, {f['ci95'][1]:+.3f}]")
    if results.get("cached_conditions"):
        lines.append("from the evaluation cache: " + ", ".join(results["cached_conditions"]))
    if "recall@1" in results.get("retrieval", {}):
        r = results["retrieval"]
        lines.append("document recall " + ", ".join(f"@{k} {100 * r[f'recall@{k}']:.0f}%" for k in RECALL_KS if f"recall@{k}" in r))
    return lines
