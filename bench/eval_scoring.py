"""Option scoring speed: the context encoded once with its KV cache reused for every option (options
batched, or one after another) against scoring each option as its own full sequence.

    .venv/bin/python bench/eval_scoring.py [--questions 10] [--context-tokens 512] [--dtypes bfloat16 float32]

Uses the embedded SmolLM2-135M on QuALITY dev questions (../shared/data/quality-leval/dev.jsonl) with
the question's article cut to --context-tokens as context. Writes bench/results/eval-scoring.json.
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

import numpy as np
import torch
import transformers

from entigraph.models import resolve_lm
from entigraph.evaluation.scoring import LMScorer
from entigraph.evaluation.tasks import load_questions

DATA = ROOT.parent / "shared" / "data" / "quality-leval" / "dev.jsonl"


def time_method(scorer: LMScorer, items, method: str) -> tuple[float, list[list[np.ndarray]]]:
    scorer.batch_options = method == "cached_batched"
    start, scores = time.perf_counter(), []
    for prefix, conts in items:
        if method == "separate":
            scores.append(scorer.separate_logprobs(prefix, conts))
        else:
            scores.append(scorer.continuation_logprobs(prefix, conts)[0])
    return (time.perf_counter() - start) / len(items), scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--context-tokens", type=int, default=512)
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    docs, questions = load_questions(DATA)
    text = {d.doc_id: d.text for d in docs}
    # spread over the articles: every 12th question
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    results = {}
    for dtype in args.dtypes:
        scorer = LMScorer(resolve_lm("smollm2-135m-instruct"), "cpu", dtype, args.context_tokens)
        items = []
        for q in questions:
            prefix, _ = scorer.prompt_ids(q, text[q.doc_id])
            items.append((prefix, [scorer.continuation_ids(o) for o in q.options]))
        time_method(scorer, items[:1], "cached_batched")  # warm-up
        timing, scores = {}, {}
        for method in ("separate", "cached_loop", "cached_batched"):
            timing[method], scores[method] = time_method(scorer, items, method)
            print(f"{dtype} {method}: {timing[method]:.3f} s/question", flush=True)
        ref = scores["separate"]
        agree = {}
        for method in ("cached_loop", "cached_batched"):
            diffs = [np.abs(a - b).max() for qa, qb in zip(scores[method], ref) for a, b in zip(qa, qb)]
            same = [int(np.argmax([x.mean() for x in qa])) == int(np.argmax([x.mean() for x in qb]))
                    for qa, qb in zip(scores[method], ref)]
            agree[method] = {"max_abs_token_logprob_diff": float(max(diffs)), "same_length_norm_answer": float(np.mean(same))}
        results[dtype] = {
            "seconds_per_question": timing,
            "speedup_vs_separate": {m: timing["separate"] / timing[m] for m in ("cached_loop", "cached_batched")},
            "agreement_with_separate": agree,
            "mean_prompt_tokens": float(np.mean([len(p) for p, _ in items])),
            "mean_option_tokens": float(np.mean([len(c) for _, cs in items for c in cs])),
        }
        scorer.close()
        del scorer
    report = {
        "benchmark": "eval-scoring", "model": "smollm2-135m-instruct (embedded)", "questions": len(questions),
        "context_tokens": args.context_tokens, "options_per_question": 4, "torch_threads": args.threads,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "results": results,
    }
    out = ROOT / "bench" / "results" / "eval-scoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
