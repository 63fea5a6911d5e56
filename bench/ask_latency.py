"""`entigraph ask` latency once the model and index are loaded: seconds per question (retrieval +
generation), on a finished run.

    .venv/bin/python bench/ask_latency.py [--run configs/demo.yaml] [--threads 1] [--top-k 6]

Loads the adapted model and the retrieval index once (reported apart), then answers each question
of the demo's ask set in turn. Writes bench/results/ask-demo.json with the load average, so a
number taken on a busy machine says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = ["In which year did Marit Ellery become keeper?", "Who succeeded Marit Ellery as keeper?",
             "How many seaweed specimens did Marit Ellery collect?", "When was the Quarrow tide station founded?",
             "What boat carried supplies to the island?"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="configs/demo.yaml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=None)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from entigraph import ask as A

    A.quiet()
    load_start = os.getloadavg()
    cfg = A.run_config(args.run)
    t0 = time.perf_counter()
    asker = A.Asker(cfg, top_k=args.top_k or A.TOP_K)
    load_s = time.perf_counter() - t0
    rows = []
    for q in QUESTIONS:
        a = asker.ask(q)
        rows.append({"question": q, "answer": a.answer, "cited": a.cited, "cited_by": a.cited_by,
                     "seconds": round(a.seconds, 2)})
        print(f"{a.seconds:5.1f} s  {q} -> {a.answer}", flush=True)
    asker.close()
    secs = [r["seconds"] for r in rows]
    out = {"bench": "ask_latency", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "loadavg_start": [round(x, 2) for x in load_start],
                       "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
           "setup": {"run": args.run, "threads": args.threads, "top_k": args.top_k or A.TOP_K,
                     "max_new_tokens": asker.max_new_tokens, "model": asker.model},
           "load_seconds": round(load_s, 1), "median_seconds": statistics.median(secs), "max_seconds": max(secs),
           "questions": rows}
    path = ROOT / "bench" / "results" / "ask-demo.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("load_seconds", "median_seconds", "max_seconds")}), "->", path)


if __name__ == "__main__":
    main()
