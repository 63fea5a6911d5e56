"""Synthesis on Ray: the same run with 1 and with 2 Ray workers (actors) of one thread each.

    .venv/bin/python bench/synth_ray.py [--passages 32] [--new-tokens 48] [--batch 4] [--model smollm2-135m-instruct]

A local Ray cluster (ray.init, 2 CPUs) on this machine; the synthetic test corpus of
tests/synth_inputs.py (two short documents); the embedded SmolLM2-135M-Instruct through the hf
backend in every actor. Each run starts from an empty store; tokens/s is generated tokens over the
engine's wall time (actor start-up and model loading excluded), as the synthesize summary reports
it, plus each worker's own rate over its busy time. Also checks that both runs stored the same
texts (batches and seeds do not depend on the number of workers). Writes bench/results/synth-ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the working tree's package, as the tests see it
sys.path.append(str(ROOT / "tests"))  # synth_inputs; after the package, which tests/ would shadow
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import ray
from synth_inputs import tiny_config, write_inputs

from entigraph.stages import synthesize as synthesis
from entigraph.synthesis.store import Store


def run(root: Path, args, workers: int) -> tuple[dict, list]:
    cfg = tiny_config(root, args.model, max_passages=args.passages, batch_size=args.batch)
    cfg.backend.sampling.max_new_tokens = args.new_tokens
    s = cfg.synthesis
    s.executor, s.ray.workers, s.ray.cpus_per_worker, s.context_tokens = "ray", workers, 1, 256
    write_inputs(cfg)
    t0 = time.perf_counter()
    summary = synthesis.run(cfg, progress=False)
    summary["stage_seconds"] = round(time.perf_counter() - t0, 2)
    with Store(cfg.out / "synthesize" / "store.sqlite") as store:
        rows = sorted((p.task_id, p.text) for p in store.passages(None))
    return summary, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()
    load_start = os.getloadavg()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
    results, texts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            summary, rows = run(Path(tmp) / f"w{workers}", args, workers)
            texts[workers] = rows
            results[f"{workers}_workers"] = {
                k: summary[k] for k in ("passages", "failed", "completion_tokens", "tokens_per_s", "seconds",
                                        "stage_seconds", "workers")}
            print(workers, "workers:", summary["tokens_per_s"], "tok/s", flush=True)
    ray.shutdown()
    load_end = os.getloadavg()
    one, two = results["1_workers"]["tokens_per_s"], results["2_workers"]["tokens_per_s"]
    out = {
        "bench": "synth_ray",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end]},
        "setup": {"model": args.model, "backend": "hf", "passages": args.passages, "new_tokens": args.new_tokens,
                  "batch_size": args.batch, "threads_per_worker": 1, "ray": ray.__version__,
                  "cluster": "local ray.init(num_cpus=2)"},
        "results": results,
        "speedup_2_over_1": round(two / one, 3) if one else None,
        "same_texts_1_and_2_workers": texts[1] == texts[2],
        "notes": ("The machine was heavily loaded by other jobs during this run (load average above; 2 cores): "
                  "absolute tokens/s are several times below a quiet machine's and the 2-worker ratio is bounded "
                  "by the cores other jobs leave free. tokens_per_s = generated tokens / engine wall time "
                  "(actor start and model load excluded); per-worker tokens_per_s = its tokens / its busy time."),
    }
    path = ROOT / "bench" / "results" / "synth-ray.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("speedup_2_over_1", "same_texts_1_and_2_workers")}), "->", path)


if __name__ == "__main__":
    main()
