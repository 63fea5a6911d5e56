"""What `entigraph study` does not compute for docs/results.md: how many probe targets each training
text states, and closed-book accuracy split by it (a model cannot learn a fact its training text
never states). Reads the runs of configs/studies/fictional-dev.yaml:

    entigraph study configs/studies/fictional-dev.yaml --write-docs docs/results.md   # the comparison
    .venv/bin/python bench/efficacy.py coverage                                       # this table

Writes bench/results/eval-efficacy.json (with the machine and versions) and splices the table into
docs/results.md between the "coverage:begin/end" markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from entigraph.io import read_json, read_jsonl
from entigraph.study import load_study
from entigraph.study.report import splice

ROOT = Path(__file__).resolve().parents[1]
FK = ROOT.parent / "shared" / "data" / "fictional-knowledge" / "dev.json"
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}
POOLS = ("rephrase", "entigraph", "eg-ungrounded")  # recipes whose kept synthetic passages are searched


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def closed_records(run: Path, model: str) -> dict[str, dict]:
    path = run / "eval" / "records.jsonl"
    return {r["qid"]: r for r in read_jsonl(path) if r["condition"] == f"{model}_closed"} if path.is_file() else {}


def target_coverage(study_path: Path) -> dict:
    """Probe targets (e.g. "Zorgon's leadership") searched verbatim in each training text, and each
    model's closed-book accuracy on the probes whose target its training text states vs the others."""
    study = load_study(study_path)
    root = ROOT / study.run_dir / study.name
    r = study.split.reporting
    everything = json.loads(FK.read_text(encoding="utf-8"))
    data = everything[r.skip_docs: r.skip_docs + (r.limit_docs or len(everything))]
    targets = {f"dev-{r.skip_docs + i:04d}:{kind}{j}": _norm(t) for i, d in enumerate(data) for kind in PROBES
               for j, t in enumerate(d[f"{kind}_target"])}
    pools = {"raw": [d["train_context"] for d in data]}
    for name in POOLS:
        kept = root / name / "filter" / "kept.jsonl"
        if kept.is_file():
            pools[name] = [row["text"] for row in read_jsonl(kept)]
    out: dict = {"study": study.name, "pools": {}, "split_accuracy": {}}
    present: dict[str, set[str]] = {}
    for label, texts in pools.items():
        blob = _norm("\n".join(texts))
        counts = {q: blob.count(t) for q, t in targets.items()}
        present[label] = {q for q, c in counts.items() if c}
        by_probe = {p: [c for q, c in counts.items() if q.split(":")[1].rstrip("0123456789") == p] for p in PROBES}
        out["pools"][label] = {p: {"share": float(np.mean([c > 0 for c in cs])), "mean_count": float(np.mean(cs))}
                               for p, cs in by_probe.items()}
    for label, pool, model in (("entigraph", "entigraph", "cpt"), ("base", "entigraph", "base"),
                               ("rephrase", "rephrase", "cpt"), ("raw", "raw", "cpt")):
        if pool not in present or not (root / label).is_dir():
            continue
        closed = closed_records(root / label, model)
        for probe in PROBES:
            inside = [closed[q]["correct"] for q in closed if q.endswith(tuple(f":{probe}{j}" for j in range(10)))
                      and q in present[pool]]
            outside = [closed[q]["correct"] for q in closed if q.endswith(tuple(f":{probe}{j}" for j in range(10)))
                       and q not in present[pool]]
            out["split_accuracy"][f"{label}/{probe} (targets in {pool})"] = {
                "in": [100 * float(np.mean(inside)) if inside else float("nan"), len(inside)],
                "out": [100 * float(np.mean(outside)) if outside else float("nan"), len(outside)]}
    return out


def coverage_markdown(cov: dict) -> str:
    lines = ["| training text | paraphrased targets present | mean occurrences | composition targets present | mean occurrences |",
             "|---|---:|---:|---:|---:|"]
    for label, by in cov["pools"].items():
        lines.append(f"| {label} | {100 * by['gen']['share']:.0f} % | {by['gen']['mean_count']:.1f} | "
                     f"{100 * by['hard_gen']['share']:.0f} % | {by['hard_gen']['mean_count']:.1f} |")
    lines += ["", "| model, probes (split by the targets in which training text) | closed-book accuracy where the target is present (n) | where absent (n) |",
              "|---|---|---|"]
    for key, r in cov["split_accuracy"].items():
        cell = lambda acc, n: f"{acc:.0f} % ({n})" if n else "— (0)"  # noqa: E731
        lines.append(f"| {key} | {cell(*r['in'])} | {cell(*r['out'])} |")
    return "\n".join(lines) + "\n"


def environment() -> dict:
    import torch
    import transformers

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["coverage"])
    ap.add_argument("--study", default=str(ROOT / "configs" / "studies" / "fictional-dev.yaml"))
    args = ap.parse_args()
    results_path = ROOT / "bench" / "results" / "eval-efficacy.json"
    saved = read_json(results_path) if results_path.is_file() else {}
    cov = target_coverage(Path(args.study))
    saved["target_coverage"] = cov
    saved["environment"] = environment()
    splice(ROOT / "docs" / "results.md", coverage_markdown(cov), "coverage")
    print(coverage_markdown(cov))
    results_path.write_text(json.dumps(saved, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
