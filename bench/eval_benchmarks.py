"""The eval stage on real question sets with the embedded base model: closed-book, RAG and oracle,
every scoring mode, via eval.compare.run (the same code path as `entigraph eval`).

    .venv/bin/python bench/eval_benchmarks.py quality   [--limit 119]
    .venv/bin/python bench/eval_benchmarks.py fictional [--limit 200] [--probe-types gen]

quality:   ../shared/data/quality-leval/dev.jsonl (10 articles, 119 questions)
fictional: ../shared/data/fictional-knowledge/dev.json (90 documents; gen probes = paraphrased facts,
           multiple choice against the other targets of the same document)
Writes bench/results/eval-<set>.json (accuracies with intervals, document recall@k, wall time);
the run folder (records.jsonl, retrieval.json, report.html) goes to --run-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]

import torch
import transformers

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.corpus import load_corpus
from entigraph.io import write_jsonl
from entigraph.records import to_dict
from entigraph.evaluation import compare, report

DATA = ROOT.parent / "shared" / "data"
SETS = {"quality": DATA / "quality-leval" / "dev.jsonl", "fictional": DATA / "fictional-knowledge" / "dev.json"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--limit", type=int, default=None, help="first N questions (default: all; fictional 200)")
    ap.add_argument("--probe-types", nargs="+", default=["gen"])
    ap.add_argument("--conditions", nargs="+", default=["base_closed", "base_rag", "base_oracle"])
    ap.add_argument("--max-context-tokens", type=int, default=1536)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default=str(ROOT / "runs"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()

    cfg = RunConfig(name=f"bench-eval-{args.set}", run_dir=args.run_dir, device="cpu")
    cfg.corpus.paths = [str(SETS[args.set])]
    cfg.eval.conditions = args.conditions
    cfg.eval.limit = args.limit if args.limit is not None else (200 if args.set == "fictional" else None)
    cfg.eval.probe_types = args.probe_types
    cfg.eval.max_context_tokens = args.max_context_tokens
    cfg.eval.dtype = args.dtype
    docs = load_corpus(cfg.corpus.paths)
    write_jsonl(artifacts.stage_dir(cfg.out, "extract") / "documents.jsonl", [to_dict(d) for d in docs])

    start = time.perf_counter()
    results = compare.run(cfg)
    wall = time.perf_counter() - start
    report.run(cfg)
    print("\n".join(compare.table_lines(results)))

    out = {
        "benchmark": f"eval-{args.set}", "data": str(SETS[args.set].relative_to(ROOT.parent)),
        "model": cfg.models.base + " (embedded)", "embedder": cfg.models.embedder,
        "questions": results["questions"], "limit": cfg.eval.limit, "probe_types": args.probe_types if args.set == "fictional" else None,
        "max_context_tokens": args.max_context_tokens, "dtype": args.dtype, "torch_threads": args.threads,
        "headline_scoring": results["scoring"], "chance": results["chance"],
        "conditions": {c: {"accuracy": v["accuracy"], "ci95": v["ci95"], "wilson95": v["wilson95"], "n": v["n"],
                           "by_mode": v["by_mode"], "truncated": v["truncated"], "seconds": v["seconds"],
                           **{k: v[k] for k in ("exact_match", "target_logprob") if k in v}}
                       for c, v in results["conditions"].items()},
        "paired": results["paired"],
        "retrieval": results["retrieval"],
        "wall_seconds": round(wall, 1),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
    }
    path = ROOT / "bench" / "results" / f"eval-{args.set}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
