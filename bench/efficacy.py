"""Efficacy of continued pretraining on Fictional Knowledge: read the runs made by
bench/efficacy_runs.sh (and bench/efficacy_tune.sh), compare them on the same probes, write

    bench/results/eval-efficacy.json   every figure below, with the machine and versions
    docs/img/efficacy-scaling.png      closed-book accuracy against synthetic tokens
    docs/results.md                    the tables, between the "efficacy:begin/end" markers

    .venv/bin/python bench/efficacy.py report     # the comparison on the reporting documents (0-9)
    .venv/bin/python bench/efficacy.py tune       # the learning-rate choice on documents 10-14

Accuracy is 4-way multiple choice (length-normalised log-likelihood; distractors are the other
targets of the same document). Paired tests compare two models on the same probes: exact McNemar on
right/wrong, and a paired bootstrap on the target's mean token log-likelihood (continuous, so it
sees smaller changes than accuracy does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from entigraph.io import read_json, read_jsonl  # noqa: E402
from eval.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap  # noqa: E402

RUNS = ROOT / "runs"
SETTINGS = ("closed", "rag", "oracle")
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}


@dataclass(frozen=True)
class Method:
    label: str
    run: str
    what: str
    group: str  # main | budget | ablation


METHODS = [
    Method("base", "fk-base", "SmolLM2-135M-Instruct, not trained", "main"),
    Method("raw", "fk-raw", "Raw CPT: the 10 documents themselves", "main"),
    Method("rephrase", "fk-rephrase", "Rephrase CPT: one paraphrase per passage (`synthesis.modes=[rephrase]`)", "main"),
    Method("entigraph", "fk-eg", "EntiGraph CPT: every kept passage (summary, pair, triple)", "main"),
    Method("eg-eighth", "fk-eg-e", "EntiGraph, first eighth of the kept synthetic tokens", "budget"),
    Method("eg-quarter", "fk-eg-q", "EntiGraph, first quarter of the kept synthetic tokens", "budget"),
    Method("eg-half", "fk-eg-h", "EntiGraph, first half of the kept synthetic tokens", "budget"),
    Method("eg-pairs", "fk-eg-pairs", "EntiGraph, summaries and pairs only (no triples)", "ablation"),
    Method("eg-document", "fk-eg-doc", "EntiGraph with the whole document as context (`synthesis.context=document`), first 40 generations", "ablation"),
    Method("eg-ungrounded", "fk-eg-ungrounded", "EntiGraph without the grounding filter, at the eighth's token budget", "ablation"),
    Method("eg-no-replay", "fk-eg-noreplay", "EntiGraph without replay (`train.replay.fraction=0`)", "ablation"),
    Method("eg+raw", "fk-eg-raw", "EntiGraph passages plus the raw documents (`train.data=synthetic+raw`)", "ablation"),
]
QUALITY_METHODS = [
    Method("base", "qd-base", "SmolLM2-135M-Instruct, not trained", "main"),
    Method("raw", "qd-raw", "Raw CPT: the 3 articles themselves", "main"),
    Method("entigraph", "qd-eg", "EntiGraph CPT: 48 generations (16 per article), kept passages", "main"),
]
QUALITY_PROBES = {"": "QuALITY"}


def load_records(run: str) -> dict[tuple[str, str], dict[str, dict]]:
    """{(setting, probe_type): {qid: record}} for the one model evaluated in this run."""
    path = RUNS / run / "eval" / "records.jsonl"
    out: dict[tuple[str, str], dict[str, dict]] = {}
    if not path.is_file():
        return out
    for r in read_jsonl(path):
        setting = r["condition"].rsplit("_", 1)[1]
        out.setdefault((setting, r["probe_type"]), {})[r["qid"]] = r
    return out


def run_facts(run: str) -> dict:
    """Training data and wall times of a run, from its own files."""
    base = RUNS / run
    facts: dict = {"timings_s": read_json(base / "timings.json") if (base / "timings.json").is_file() else {}}
    manifest = base / "train" / "data" / "manifest.json"
    if manifest.is_file():
        m = read_json(manifest)
        facts.update(train_tokens_by_source=m.get("train_tokens_by_source", {}), steps=m.get("steps"),
                     documents=m.get("documents", {}))
    summary = base / "filter" / "summary.json"
    if summary.is_file():
        s = read_json(summary)
        facts["filter"] = {k: s[k] for k in ("total", "kept") if k in s}
    return facts


def synthetic_tokens(facts: dict) -> int:
    """Distinct synthetic tokens in the training data (one epoch's worth)."""
    by = facts.get("train_tokens_by_source", {})
    epochs = facts.get("epochs") or 1
    return int(by.get("synthetic", 0) / epochs)


def accuracy(recs: dict[str, dict], qids: list[str]) -> dict:
    correct = [bool(recs[q]["correct"]) for q in qids]
    lo, hi = bootstrap_ci(correct, seed=0)
    logp = [recs[q].get("target_logprob", float("nan")) for q in qids]
    return {"n": len(qids), "accuracy": 100 * float(np.mean(correct)), "ci95": [100 * lo, 100 * hi],
            "mean_target_logprob": float(np.nanmean(logp)) if qids else float("nan")}


def paired(a: dict[str, dict], b: dict[str, dict], qids: list[str]) -> dict:
    test = mcnemar_exact([a[q]["correct"] for q in qids], [b[q]["correct"] for q in qids])
    if all("target_logprob" in a[q] and "target_logprob" in b[q] for q in qids):
        logp = paired_bootstrap([a[q]["target_logprob"] for q in qids], [b[q]["target_logprob"] for q in qids])
        wins = sum(a[q]["target_logprob"] > b[q]["target_logprob"] for q in qids)
    else:  # multiple-choice questions: no single target text
        logp, wins = {"diff": float("nan"), "ci95": [float("nan"), float("nan")]}, 0
    return {"accuracy_diff": 100 * float(np.mean([a[q]["correct"] for q in qids]) - np.mean([b[q]["correct"] for q in qids])),
            "mcnemar": test, "logprob_diff": logp, "logprob_wins": wins, "n": len(qids)}


def compare(methods: list[Method], probes: dict[str, str] = PROBES) -> dict:
    records = {m.label: load_records(m.run) for m in methods}
    present = [m for m in methods if records[m.label]]
    out: dict = {"methods": {}, "paired": {}, "gap_closed": {}}
    base = records.get("base", {})
    for m in present:
        facts = run_facts(m.run)
        cfg_path = RUNS / m.run / "config.yaml"
        if cfg_path.is_file():
            import yaml

            facts["epochs"] = yaml.safe_load(cfg_path.read_text())["train"]["epochs"]
        entry = {"run": m.run, "what": m.what, "group": m.group, **facts,
                 "synthetic_tokens": synthetic_tokens(facts), "results": {}}
        for (setting, probe), recs in sorted(records[m.label].items()):
            entry["results"][f"{setting}/{probe}"] = accuracy(recs, sorted(recs))
        out["methods"][m.label] = entry
    for m in present:
        for ref in ("base", "raw"):
            if ref == m.label or ref not in records or not records[ref]:
                continue
            for (setting, probe), recs in records[m.label].items():
                other = records[ref].get((setting, probe))
                if not other:
                    continue
                qids = sorted(set(recs) & set(other))
                out["paired"][f"{m.label} vs {ref}: {setting}/{probe}"] = paired(recs, other, qids)
    for m in present:  # share of the base model's closed-book -> oracle gap this model closes
        for probe in probes:
            closed, oracle = base.get(("closed", probe)), base.get(("oracle", probe))
            mine = records[m.label].get(("closed", probe))
            if not (closed and oracle and mine):
                continue
            qids = sorted(set(closed) & set(oracle) & set(mine))
            lo = np.mean([closed[q]["correct"] for q in qids])
            hi = np.mean([oracle[q]["correct"] for q in qids])
            got = np.mean([mine[q]["correct"] for q in qids])
            out["gap_closed"][f"{m.label}/{probe}"] = float((got - lo) / (hi - lo)) if hi > lo else float("nan")
    return out


def fmt_acc(r: dict | None) -> str:
    if not r:
        return "—"
    return f"{r['accuracy']:.0f} [{r['ci95'][0]:.0f}, {r['ci95'][1]:.0f}]"


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def markdown(res: dict, probes: dict[str, str] = PROBES) -> str:
    ms = res["methods"]
    lines = []
    for probe, name in probes.items():
        lines += [f"**{name[0].upper() + name[1:]} {'questions' if name == 'QuALITY' else 'probes'}** (accuracy %, 95 % bootstrap interval; n = "
                  f"{next((e['results'].get(f'closed/{probe}', {}).get('n') for e in ms.values() if e['results'].get(f'closed/{probe}')), 0)} probes)", "",
                  "| method | synthetic tokens | training tokens | closed-book | RAG (top 3) | oracle | gap closed | vs base, closed (McNemar p) | vs Raw, closed (McNemar p) |",
                  "|---|---:|---:|---|---|---|---:|---|---|"]
        for label, e in ms.items():
            rs = e["results"]
            train_tokens = sum(e.get("train_tokens_by_source", {}).values())
            gap = res["gap_closed"].get(f"{label}/{probe}")
            cells = []
            for ref in ("base", "raw"):
                p = res["paired"].get(f"{label} vs {ref}: closed/{probe}")
                cells.append("—" if not p else f"{p['accuracy_diff']:+.0f} (p = {fmt_p(p['mcnemar']['p'])})")
            lines.append(
                f"| {label} | {e['synthetic_tokens']:,} | {train_tokens:,} | {fmt_acc(rs.get(f'closed/{probe}'))} | "
                f"{fmt_acc(rs.get(f'rag/{probe}'))} | {fmt_acc(rs.get(f'oracle/{probe}'))} | "
                f"{'—' if gap is None else f'{100 * gap:.0f} %'} | {cells[0]} | {cells[1]} |")
        lines.append("")
    lines += ["**Target log-likelihood** (mean per-token log-probability of the right answer, closed-book; "
              "paired bootstrap 95 % interval of the difference; wins = probes where it rose)", "",
              "| method | probes | vs base: Δ log-lik [95 % CI] | wins | vs Raw: Δ log-lik [95 % CI] | wins |",
              "|---|---|---|---|---|---|"]
    for label in ms:
        for probe, name in probes.items():
            cells = []
            for ref in ("base", "raw"):
                p = res["paired"].get(f"{label} vs {ref}: closed/{probe}")
                cells += (["—", "—"] if not p else
                          [f"{p['logprob_diff']['diff']:+.3f} [{p['logprob_diff']['ci95'][0]:+.3f}, {p['logprob_diff']['ci95'][1]:+.3f}]",
                           f"{p['logprob_wins']}/{p['n']}"])
            if label != "base":
                lines.append(f"| {label} | {name} | {' | '.join(cells)} |")
    lines += ["", "**With retrieval**: RAG with each trained model against RAG with the base model, same probes", "",
              "| method | probes | RAG vs base RAG: Δ acc (McNemar p) | Δ log-lik [95 % CI] |", "|---|---|---|---|"]
    for label in ms:
        for probe, name in probes.items():
            p = res["paired"].get(f"{label} vs base: rag/{probe}")
            if p:
                lines.append(f"| {label} | {name} | {p['accuracy_diff']:+.0f} (p = {fmt_p(p['mcnemar']['p'])}) | "
                             f"{p['logprob_diff']['diff']:+.3f} [{p['logprob_diff']['ci95'][0]:+.3f}, {p['logprob_diff']['ci95'][1]:+.3f}] |")
    lines += ["", "**Runs** (wall seconds per stage on this machine)", "",
              "| method | run | what | steps | stage seconds |", "|---|---|---|---:|---|"]
    for label, e in ms.items():
        t = ", ".join(f"{k} {v:.0f}" for k, v in e.get("timings_s", {}).items() if k != "report")
        lines.append(f"| {label} | `runs/{e['run']}` | {e['what']} | {e.get('steps') or '—'} | {t} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = res["methods"]
    curve = [lab for lab in ("eg-eighth", "eg-quarter", "eg-half", "entigraph") if lab in ms]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (probe, name) in zip(axes, PROBES.items()):
        xs = [ms[lab]["synthetic_tokens"] for lab in curve]
        rs = [ms[lab]["results"].get(f"closed/{probe}") for lab in curve]
        if rs and all(rs):
            ys = [r["accuracy"] for r in rs]
            err = [[y - r["ci95"][0] for y, r in zip(ys, rs)], [r["ci95"][1] - y for y, r in zip(ys, rs)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label="EntiGraph CPT")
        for lab, style in (("base", ":"), ("raw", "--"), ("rephrase", "-.")):
            r = ms.get(lab, {}).get("results", {}).get(f"closed/{probe}")
            if r:
                ax.axhline(r["accuracy"], ls=style, color="grey" if lab == "base" else None, label=lab)
        oracle = ms.get("base", {}).get("results", {}).get(f"oracle/{probe}")
        if oracle:
            ax.axhline(oracle["accuracy"], ls="-", color="black", lw=0.8, label="base + oracle document")
        ax.set_xscale("log")
        ax.set_xlabel("synthetic training tokens (one epoch)")
        ax.set_title(f"{name} probes, closed-book")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=8, loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def splice(md_path: Path, block: str, tag: str) -> None:
    text = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    new = f"{begin}\n{block}{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    else:
        text += "\n" + new + "\n"
    md_path.write_text(text, encoding="utf-8")


def tune() -> dict:
    runs = sorted(p.name for p in RUNS.glob("fk-tune-*"))
    out = {}
    for run in runs:
        for (setting, probe), recs in load_records(run).items():
            out[f"{run}: {setting}/{probe}"] = accuracy(recs, sorted(recs))
    lines = ["| run | probes | closed-book accuracy % [95 % CI] | mean target log-lik |", "|---|---|---|---:|"]
    for key, r in out.items():
        run, rest = key.split(": ")
        lines.append(f"| `{run}` | {PROBES[rest.split('/')[1]]} | {fmt_acc(r)} | {r['mean_target_logprob']:.3f} |")
    return {"results": out, "markdown": "\n".join(lines) + "\n"}


def environment() -> dict:
    import torch
    import transformers

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["report", "tune", "quality"])
    args = ap.parse_args()
    results_path = ROOT / "bench" / "results" / "eval-efficacy.json"
    saved = read_json(results_path) if results_path.is_file() else {}
    if args.what == "tune":
        t = tune()
        saved["tuning"] = t["results"]
        splice(ROOT / "docs" / "results.md", t["markdown"], "tuning")
        print(t["markdown"])
    elif args.what == "quality":
        res = compare(QUALITY_METHODS, QUALITY_PROBES)
        saved["quality"] = res
        md = markdown(res, QUALITY_PROBES)
        splice(ROOT / "docs" / "results.md", md, "quality")
        print(md)
    else:
        res = compare(METHODS)
        saved.update(res)
        md = markdown(res)
        plot(res, ROOT / "docs" / "img" / "efficacy-scaling.png")
        splice(ROOT / "docs" / "results.md", md, "efficacy")
        print(md)
    saved["environment"] = environment()
    results_path.write_text(json.dumps(saved, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
