"""What `entigraph study` does not compute for docs/results.md. Reads the runs of
configs/studies/fictional-dev.yaml:

    entigraph study configs/studies/fictional-dev.yaml --write-docs docs/results.md   # the comparison
    .venv/bin/python bench/efficacy.py coverage   # how many probe targets each training text states,
                                                  # and closed-book accuracy split by it
    .venv/bin/python bench/efficacy.py modes      # the faithful modes' rows (fa-* recipes) beside the
                                                  # base model, without touching the main table
    .venv/bin/python bench/efficacy.py reproduce  # a rerun of the study against the figures recorded
                                                  # here ("methods"): is each accuracy inside its interval?

A fa-* run not on disk keeps its row from the current table (said on stderr), so one new recipe's row
can be added without rerunning the others; `coverage` refuses to write a table that would lose a
training text unless --partial.

Writes bench/results/eval-efficacy.json (with the machine and versions) and splices each table into
docs/results.md between its "coverage" or "faithful-modes" begin/end markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from entigraph.evaluation.stats import bootstrap_ci, mcnemar_exact
from entigraph.io import read_json, read_jsonl
from entigraph.study import load_study
from entigraph.study.report import splice, spliced

ROOT = Path(__file__).resolve().parents[1]
FK = ROOT.parent / "shared" / "data" / "fictional-knowledge" / "dev.json"
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}
POOLS = ("rephrase", "entigraph", "eg-ungrounded")  # recipes whose kept synthetic passages are searched


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def condition_records(run: Path, cond: str) -> dict[str, dict]:
    """{qid: record} of one evaluated condition (e.g. "cpt_closed") of a run; {} before its eval."""
    path = run / "eval" / "records.jsonl"
    return {r["qid"]: r for r in read_jsonl(path) if r["condition"] == cond} if path.is_file() else {}


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
        closed = condition_records(root / label, f"{model}_closed")
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


def table_rows(block: str) -> dict[tuple[str, str], str]:
    """{(probe label, first cell): row} of the tables in a faithful-modes block."""
    rows, label = {}, ""
    for line in block.splitlines():
        head = re.match(r"\*\*(\w+) probes\*\*", line)
        if head:
            label = head.group(1).lower()
        elif line.startswith("| ") and not line.startswith("| training text"):
            rows[(label, line.split("|")[1].strip())] = line
    return rows


def modes_markdown(root: Path, runs: list[str], previous: str = "") -> tuple[str, dict]:
    """Closed-book, RAG and oracle per probe kind for the base model and each run, with McNemar
    against the base model closed-book, training tokens and wall seconds. A run without results
    keeps its row from `previous` (the current block), if it has one."""
    done = [r for r in runs if (root / r / "eval" / "results.json").is_file()]
    old = table_rows(previous)

    def records(run: str, cond: str) -> dict[str, dict]:
        return condition_records(root / run, cond)

    base_closed, lines, figures = records("base", "base_closed"), [], {}
    for kind, label in PROBES.items():
        lines += [f"**{label.capitalize()} probes** (accuracy %, 95 % bootstrap interval; McNemar against the base model, closed-book)", "",
                  "| training text | training tokens | closed-book | RAG | oracle | vs base, closed | train s | eval s |",
                  "|---|---:|---|---|---|---|---:|---:|"]
        for run in ["base", *runs]:
            if run != "base" and run not in done:
                if (label, run) in old:
                    lines.append(old[(label, run)])
                continue
            model = "base" if run == "base" else "cpt"
            cells = []
            for setting in ("closed", "rag", "oracle"):
                ok = [r["correct"] for r in records(run, f"{model}_{setting}").values() if r["probe_type"] == kind]
                lo, hi = bootstrap_ci(ok, 2000, 0) if ok else (0, 0)
                cells.append(f"{100 * np.mean(ok):.0f} [{100 * lo:.0f}, {100 * hi:.0f}]" if ok else "—")
                figures.setdefault(run, {})[f"{kind}/{setting}"] = float(np.mean(ok)) if ok else None
            if run == "base":
                lines.append(f"| base | 0 | {' | '.join(cells)} | — | — | — |")
                continue
            a = records(run, "cpt_closed")
            qids = [q for q in a if a[q]["probe_type"] == kind and q in base_closed]
            test = mcnemar_exact([a[q]["correct"] for q in qids], [base_closed[q]["correct"] for q in qids])
            diff = 100 * float(np.mean([a[q]["correct"] for q in qids]) - np.mean([base_closed[q]["correct"] for q in qids]))
            tokens = read_json(root / run / "train" / "data" / "manifest.json")["train_tokens"]
            total = read_json(root / run / "timings.json").get("total", {})
            lines.append(f"| {run} | {tokens:,} | {' | '.join(cells)} | {diff:+.0f} (p = {test['p']:.2g}) | "
                         f"{total.get('train', 0):.0f} | {total.get('eval', 0):.0f} |")
        lines.append("")
    return "\n".join(lines), figures


CONDITIONS = ("closed", "rag", "oracle")


def reproduction(recorded: dict, rerun: dict, same: dict[str, str] | None = None) -> dict:
    """Each accuracy of the rerun (study-results.json "recipes") against the recorded one
    (eval-efficacy.json "methods"; `same` maps a rerun recipe to the recorded method it repeats,
    e.g. a learning rate the tuning chose): inside the recorded 95 % interval, and the recorded point
    inside the rerun's; with the target log-likelihood of both."""
    cells = []
    for name, entry in rerun.items():
        old = recorded.get((same or {}).get(name, name))
        if old is None:
            continue
        new = entry.get("results", {})
        for key, was in old["results"].items():
            if key not in new:
                continue
            now = new[key]
            cells.append({"recipe": name, "recorded_as": (same or {}).get(name, name),
                          "condition": key.split("/")[0], "probes": key.split("/")[1],
                          "recorded": [was["accuracy"], *was["ci95"]], "rerun": [now["accuracy"], *now["ci95"]],
                          "inside": bool(was["ci95"][0] <= now["accuracy"] <= was["ci95"][1]),
                          "recorded_inside_rerun": bool(now["ci95"][0] <= was["accuracy"] <= now["ci95"][1]),
                          "logprob": [was["mean_target_logprob"], now["target_logprob"]]})
    return {"cells": cells, "inside": sum(c["inside"] for c in cells),
            "recorded_inside_rerun": sum(c["recorded_inside_rerun"] for c in cells), "n": len(cells)}


def reproduction_markdown(rep: dict, rerun_env: str) -> str:
    by = {(c["recipe"], c["probes"], c["condition"]): c for c in rep["cells"]}
    lines = [f"Recorded (the tables above) → {rerun_env}: accuracy % [95 % interval]; ✓ when the rerun's accuracy "
             "lies inside the recorded interval, ✗ when not; the closed-book target log-likelihood, recorded → rerun.", "",
             "| method | probes | closed-book | RAG (top 3) | oracle | closed-book target log-lik |",
             "|---|---|---|---|---|---|"]
    for recipe, probes in dict.fromkeys((c["recipe"], c["probes"]) for c in rep["cells"]):
        cells = []
        for cond in CONDITIONS:
            c = by.get((recipe, probes, cond))
            cells.append("—" if c is None else f"{c['recorded'][0]:.0f} → {c['rerun'][0]:.0f} "
                         f"[{c['rerun'][1]:.0f}, {c['rerun'][2]:.0f}] {'✓' if c['inside'] else '✗'}")
        lp = by[(recipe, probes, "closed")]["logprob"]
        was = by[(recipe, probes, "closed")]["recorded_as"]
        label = recipe if was == recipe else f"{recipe} (recorded as {was})"
        lines.append(f"| {label} | {PROBES[probes]} | {' | '.join(cells)} | {lp[0]:.2f} → {lp[1]:.2f} |")
    lines += ["", f"{rep['inside']} of {rep['n']} rerun accuracies lie inside the recorded 95 % interval; "
              f"{rep['recorded_inside_rerun']} of {rep['n']} recorded accuracies inside the rerun's."]
    return "\n".join(lines) + "\n"


def environment() -> dict:
    import torch
    import transformers

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["coverage", "modes", "reproduce"])
    ap.add_argument("--study", default=str(ROOT / "configs" / "studies" / "fictional-dev.yaml"))
    ap.add_argument("--runs", nargs="*", default=["fa-permute", "fa-profile", "fa-reading", "fa-qa", "fa-llm", "fa-mix"])
    ap.add_argument("--partial", action="store_true", help="coverage: write even when a training text is missing")
    ap.add_argument("--rerun", default="", help="reproduce: the rerun's machine and date, said in the table")
    ap.add_argument("--same", nargs="*", default=[], metavar="RECIPE=METHOD",
                    help="reproduce: a rerun recipe that repeats a recorded method of another name")
    args = ap.parse_args()
    doc = ROOT / "docs" / "results.md"
    results_path = ROOT / "bench" / "results" / "eval-efficacy.json"
    saved = read_json(results_path) if results_path.is_file() else {}
    saved["environment"] = environment()
    if args.what == "coverage":
        cov = target_coverage(Path(args.study))
        lost = sorted(set(saved.get("target_coverage", {}).get("pools", {})) - set(cov["pools"]))
        if lost and not args.partial:
            sys.exit(f"bench/efficacy.py coverage: no kept passages for {', '.join(lost)} under the study's runs; "
                     "the table would lose them. Run those recipes first, or pass --partial")
        saved["target_coverage"] = cov
        table, tag = coverage_markdown(cov), "coverage"
    elif args.what == "reproduce":
        study = load_study(Path(args.study))
        rerun_path = ROOT / study.run_dir / study.name / "study-results.json"
        if not rerun_path.is_file():
            sys.exit(f"bench/efficacy.py reproduce: no {rerun_path}: run `entigraph study {args.study}` first")
        rep = reproduction(saved["methods"], read_json(rerun_path)["recipes"], dict(a.split("=", 1) for a in args.same))
        if not rep["n"]:
            sys.exit("bench/efficacy.py reproduce: the rerun has none of the recorded methods' results")
        saved["reproduction"] = {**rep, "rerun_environment": saved["environment"], "rerun": args.rerun,
                                 "same": args.same}
        table, tag = reproduction_markdown(rep, args.rerun or "rerun"), "reproduction"
    else:
        study = load_study(Path(args.study))
        root = ROOT / study.run_dir / study.name
        if not (root / "base" / "eval" / "results.json").is_file():
            sys.exit(f"bench/efficacy.py modes: no base run under {root}: run the study's base recipe first")
        table, figures = modes_markdown(root, args.runs, spliced(doc, "faithful-modes"))
        kept = [r for r in args.runs if r not in figures]  # rows taken from the current table
        if kept:
            print(f"kept from the current table (no run on disk): {', '.join(kept)}", file=sys.stderr)
        saved["faithful_modes"] = {**saved.get("faithful_modes", {}), **figures}
        tag = "faithful-modes"
    splice(doc, table, tag)
    print(table)
    results_path.write_text(json.dumps(saved, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
