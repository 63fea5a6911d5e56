"""Does batching questions pay when scoring on a CPU? The prefix pass of a RAG question (~450
prompt tokens) dominates its scoring time (eval/scoring.py scores one question at a time and batches
its options over the prefix cache). This times the same prefixes one at a time and in batches of
4 and 8 (equal lengths, so no padding work), with the model the eval stage uses.

    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_batching.py [--prompts 16] [--tokens 450]

Writes bench/results/eval-batching.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "eval-batching.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=450)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from entigraph.corpus import DEMO_CORPUS
    from entigraph.models import resolve_lm

    path = resolve_lm("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    text = " ".join(json.loads(line)["input"] for line in open(DEMO_CORPUS, encoding="utf-8"))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    # distinct prefixes of the same length: windows of the demo corpus, as retrieved chunks would be
    step = max(1, (len(ids) - args.tokens) // args.prompts)
    prefixes = torch.tensor([ids[i * step: i * step + args.tokens] for i in range(args.prompts)])

    @torch.inference_mode()
    def timed(batch: int) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for i in range(0, len(prefixes), batch):
                model(input_ids=prefixes[i: i + batch], use_cache=True, logits_to_keep=1)
            best = min(best, time.perf_counter() - start)
        return best

    timed(1)  # warm-up
    rows = {}
    for batch in (1, 4, 8):
        seconds = timed(batch)
        rows[batch] = {"seconds": round(seconds, 3), "prompt_tokens_per_s": round(prefixes.numel() / seconds, 1)}
        print(f"batch {batch}: {seconds:.2f} s for {args.prompts} prefixes of {args.tokens} tokens, "
              f"{rows[batch]['prompt_tokens_per_s']} prompt tokens/s", flush=True)
    for batch, row in rows.items():
        row["speedup_vs_one_at_a_time"] = round(rows[1]["seconds"] / row["seconds"], 2)
    result = {
        "benchmark": "eval-batching", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "loadavg": os.getloadavg()},
        "versions": {"torch": torch.__version__},
        "model": "smollm2-135m-instruct (embedded default), fp32 (eval.dtype auto on CPU)",
        "args": vars(args), "batches": rows,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
