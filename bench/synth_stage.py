"""The synthesize stage end to end on each backend: configs/demo-entigraph.yaml's 48 EntiGraph
generations (200 new tokens at most, the demo's sampling) through `entigraph synthesize`, server
start and stop included, on the machine's cores as `make demo` gives them.

    OMP_NUM_THREADS=2 .venv/bin/python bench/synth_stage.py [--kinds vllm-server hf] [--run-dir runs/synth-stage]

Each backend gets its own run folder under --run-dir (a folder that already holds a finished run
is read, not rerun). Writes bench/results/synth-stage.json: per backend the stage's wall seconds,
generated tokens, seconds per generated token, generation-only tokens/s, and the ratio to hf.
Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "synth-stage.json"
CONFIG = "configs/demo-entigraph.yaml"


def run_stage(kind: str, run_dir: Path) -> None:
    for stage in ("extract", "synthesize"):
        subprocess.run([sys.executable, "-m", "entigraph.cli", stage, CONFIG, "--set", f"run_dir={run_dir}",
                        "--set", f"name={kind}", "--set", f"backend.kind={kind}"], cwd=ROOT, check=True)


def measure(kind: str, run: Path) -> dict:
    summary = json.loads((run / "synthesize" / "summary.json").read_text())
    stage_s = [json.loads(line)["seconds"] for line in (run / "history.jsonl").read_text().splitlines()
               if json.loads(line)["stage"] == "synthesize"][-1]
    tokens = summary["completion_tokens"]
    return {"backend": summary["backend"], "backend_detail": summary.get("backend_detail"), "passages": summary["passages"],
            "completion_tokens": tokens, "prompt_tokens": summary["prompt_tokens"], "stage_seconds": stage_s,
            "ms_per_generated_token": round(1000 * stage_s / tokens, 2),
            "generation_tokens_per_s": summary["tokens_per_s"], "generation_seconds": summary.get("seconds")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", nargs="+", default=["vllm-server", "hf"])
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "synth-stage")
    ap.add_argument("--note", action="append", default=[], help="a line for the results' notes")
    args = ap.parse_args()
    rows = {}
    for kind in args.kinds:
        run = args.run_dir / kind
        if not (run / "synthesize" / "summary.json").is_file():
            run_stage(kind, args.run_dir)
        rows[kind] = measure(kind, run)
    if "hf" in rows:
        for r in rows.values():
            r["stage_ratio_to_hf"] = round(rows["hf"]["ms_per_generated_token"] / r["ms_per_generated_token"], 2)
            r["generation_ratio_to_hf"] = round(r["generation_tokens_per_s"] / rows["hf"]["generation_tokens_per_s"], 2)
    import torch

    result = {"benchmark": "synth-stage", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": CONFIG,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "loadavg": os.getloadavg()},
              "versions": {"torch": torch.__version__}, "run_dir": str(args.run_dir), "backends": rows,
              "notes": args.note}
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for kind, r in rows.items():
        print(f"{kind:<16} stage {r['stage_seconds']:7.1f} s  {r['ms_per_generated_token']:6.2f} ms/token  "
              f"generation {r['generation_tokens_per_s']:6.1f} tok/s  " +
              (f"{r['stage_ratio_to_hf']}x hf per token (stage), {r['generation_ratio_to_hf']}x (generation)" if "hf" in rows else ""))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
