"""The eval stage: base vs continued-pretrained, closed-book vs RAG vs oracle, on the same questions.

Writes under runs/<name>/eval/: records.jsonl (one row per question, condition and model),
retrieval.json, results.json (also copied to runs/<name>/results.json), summary.json.
"""

from __future__ import annotations

import gc
import time

from .. import artifacts
from ..config import RunConfig
from ..io import write_json, write_jsonl


def run(cfg: RunConfig) -> dict:
    from ..eval.compare import plan_models, retrieve_contexts, score_generate, score_loglik, summarize
    from ..eval.tasks import questions_for_run

    start = time.perf_counter()
    out = artifacts.stage_dir(cfg.out, "eval")
    out.mkdir(parents=True, exist_ok=True)
    documents = artifacts.documents(cfg.out)
    questions, notes = questions_for_run(cfg, documents)
    plan = plan_models(cfg)
    rag, retrieval = {}, {}
    if any(c.endswith("_rag") for _, _, conds in plan for c in conds):
        rag, retrieval = retrieve_contexts(cfg, documents, questions, out)
    docs = {d.doc_id: d for d in documents}
    score = score_generate if cfg.eval.answer_mode == "generate" else score_loglik
    records = []
    for label, path, conds in plan:
        records += score(cfg, label, path, conds, questions, rag, docs)
        gc.collect()  # free this model before the next one loads
    write_jsonl(out / "records.jsonl", records)
    results = summarize(records, questions, documents, cfg)
    results.update(retrieval=retrieval, notes=notes, seconds=round(time.perf_counter() - start, 2),
                   models={label: path for label, path, _ in plan})
    write_json(out / "results.json", results)
    write_json(cfg.out / "results.json", results)
    return {k: results[k] for k in ("questions", "scoring", "chance", "conditions", "paired", "retrieval", "seconds")}


def summary_lines(summary: dict) -> list[str]:
    from ..eval.compare import table_lines

    return table_lines(summary)
