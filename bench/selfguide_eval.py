"""SELF-GUIDE on ../shared/data/self-guide with the embedded SmolLM2-135M: search + test.

    .venv/bin/python bench/selfguide_eval.py [CONFIG] [--set key=value ...]

Writes bench/results/selfguide-eval.json (machine, versions, per-task figures, load average at
start and end) next to the run's own runs/<name>/selfguide/results.json and report.html.
Resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from entigraph.selfguide.settings import load_config
from entigraph.selfguide.recipe import run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="configs/selfguide-dev.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    import rouge_score  # noqa: F401
    import torch
    import transformers

    load_start = os.getloadavg()
    cfg = load_config(args.config, args.overrides)
    start = time.perf_counter()
    run(cfg)
    seconds = time.perf_counter() - start
    results = json.loads((cfg.out / "results.json").read_text())
    figures = {
        "choice": results["search"]["choice"],
        "search": results["search"]["tasks"],
        "test": [{k: r[k] for k in ("task", "kind", "metric", "baseline", "selfguide", "gain", "seconds")}
                 | {"generated": r["data"]["generated"], "kept": r["data"]["kept"],
                    "dropped": r["data"]["dropped"], "labels": r["data"].get("labels")}
                 for r in results["test"]],
        "run_seconds_this_invocation": seconds,
        "run_seconds_recorded": results["seconds"],
    }
    out = {
        "benchmark": "selfguide-eval", "command": " ".join(sys.argv), "config": cfg.to_dict(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "threads": torch.get_num_threads(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "figures": figures,
    }
    path = Path(__file__).parent / "results" / "selfguide-eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
