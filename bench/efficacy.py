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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]

from entigraph.io import read_json, read_jsonl
from entigraph.eval.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap

RUNS = ROOT / "runs"
FK = ROOT.parent / "shared" / "data" / "fictional-knowledge" / "dev.json"
SETTINGS = ("closed", "rag", "oracle")
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}


@dataclass(frozen=True)
class Method:
    label: str
    run: str
    what: str
    group: str  # main | budget | ablation | control
    model: str = ""  # the model's label in a run that evaluated several (eval.extra_models); "" = the run's one model
    train_run: str = ""  # where that model was trained, when not in `run`


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
    Method("eg-lr3e-4", "fk-eg-lr3e-4", "EntiGraph, every kept passage, at its own learning rate chosen on the tuning documents (3e-4, not Raw's 1e-3)", "ablation"),
    Method("eg+raw", "fk-eg-raw", "EntiGraph passages plus the raw documents (`train.data=synthetic+raw`)", "ablation"),
]
QUALITY_METHODS = [
    Method("base", "qd-base", "SmolLM2-135M-Instruct, not trained", "main"),
    Method("raw", "qd-raw", "Raw CPT: the 3 articles themselves", "main"),
    Method("rephrase", "qd-rephrase", "Rephrase CPT: one paraphrase of each of the 62 passages", "main"),
    Method("entigraph", "qd-eg", "EntiGraph CPT: 144 generations (48 per article), kept passages", "main"),
    Method("eg-quarter", "qd-eg-q", "EntiGraph, first quarter of the kept synthetic tokens", "budget"),
    Method("eg-half", "qd-eg-h", "EntiGraph, first half of the kept synthetic tokens", "budget"),
    Method("eg-pairs", "qd-eg-pairs", "EntiGraph, summaries and pairs only (no triples)", "ablation"),
    Method("eg-no-replay", "qd-eg-noreplay", "EntiGraph without replay (`train.replay.fraction=0`)", "ablation"),
    Method("raw-other", "qd-control-eval", "Control: Raw CPT on three other articles (4-6), trained in `runs/qd-control`",
           "control", model="other", train_run="qd-control"),
]
QUALITY_PROBES = {"": "QuALITY"}
REF_NAMES = {"raw": "Raw", "raw-other": "control"}


def load_records(run: str, model: str = "") -> dict[tuple[str, str], dict[str, dict]]:
    """{(setting, probe_type): {qid: record}} for the one model evaluated in this run (or the one labelled `model`)."""
    path = RUNS / run / "eval" / "records.jsonl"
    out: dict[tuple[str, str], dict[str, dict]] = {}
    if not path.is_file():
        return out
    for r in read_jsonl(path):
        label, setting = r["condition"].rsplit("_", 1)
        if model and label != model:
            continue
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
    logp = [recs[q].get("target_logprob", float("nan")) for q in qids]  # nan for multiple-choice questions
    return {"n": len(qids), "accuracy": 100 * float(np.mean(correct)), "ci95": [100 * lo, 100 * hi],
            "mean_target_logprob": float(np.mean(logp)) if qids else float("nan")}


def paired(a: dict[str, dict], b: dict[str, dict], qids: list[str]) -> dict:
    test = mcnemar_exact([a[q]["correct"] for q in qids], [b[q]["correct"] for q in qids])
    if all("target_logprob" in a[q] and "target_logprob" in b[q] for q in qids):
        logp = paired_bootstrap([a[q]["target_logprob"] for q in qids], [b[q]["target_logprob"] for q in qids])
        wins = sum(a[q]["target_logprob"] > b[q]["target_logprob"] for q in qids)
    else:  # multiple-choice questions: no single target text
        logp, wins = {"diff": float("nan"), "ci95": [float("nan"), float("nan")]}, 0
    return {"accuracy_diff": 100 * float(np.mean([a[q]["correct"] for q in qids]) - np.mean([b[q]["correct"] for q in qids])),
            "mcnemar": test, "logprob_diff": logp, "logprob_wins": wins, "n": len(qids)}


def compare(methods: list[Method], probes: dict[str, str] = PROBES, refs: tuple[str, ...] = ("base", "raw")) -> dict:
    records = {m.label: load_records(m.run, m.model) for m in methods}
    present = [m for m in methods if records[m.label]]
    out: dict = {"methods": {}, "paired": {}, "gap_closed": {}, "refs": list(refs)}
    base = records.get("base", {})
    for m in present:
        facts = run_facts(m.train_run or m.run)
        if m.train_run:
            facts["timings_s"] = {**facts["timings_s"], **run_facts(m.run)["timings_s"]}
        cfg_path = RUNS / (m.train_run or m.run) / "config.yaml"
        if cfg_path.is_file():
            facts["epochs"] = yaml.safe_load(cfg_path.read_text())["train"]["epochs"]
        entry = {"run": m.run, "what": m.what, "group": m.group, **facts,
                 "synthetic_tokens": synthetic_tokens(facts), "results": {}}
        for (setting, probe), recs in sorted(records[m.label].items()):
            entry["results"][f"{setting}/{probe}"] = accuracy(recs, sorted(recs))
        out["methods"][m.label] = entry
    for m in present:
        for ref in refs:
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


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def target_coverage(n_docs: int = 10) -> dict:
    """How many probe targets (the fact's words, e.g. "Zorgon's leadership") appear verbatim in each
    training corpus, and how each model scores on probes whose target its training text contains
    vs those it does not: a model cannot learn a fact its synthetic data never states."""
    data = json.loads(FK.read_text(encoding="utf-8"))[:n_docs]
    targets = {f"dev-{i:04d}:{kind}{j}": _norm(t) for i, d in enumerate(data) for kind in PROBES
               for j, t in enumerate(d[f"{kind}_target"])}
    pools = {"raw": [d["train_context"] for d in data]}
    for label, run in (("rephrase", "fk-rephrase"), ("entigraph", "fk-eg"), ("eg-ungrounded", "fk-eg-ungrounded")):
        path = RUNS / run / "filter" / "kept.jsonl"
        if path.is_file():
            pools[label] = [r["text"] for r in read_jsonl(path)]
    out: dict = {"pools": {}, "split_accuracy": {}}
    present: dict[str, set[str]] = {}
    for label, texts in pools.items():
        blob = _norm("\n".join(texts))
        counts = {q: blob.count(t) for q, t in targets.items()}
        present[label] = {q for q, c in counts.items() if c}
        by_probe = {probe: [c for q, c in counts.items() if q.split(":")[1].rstrip("0123456789") == probe] for probe in PROBES}
        out["pools"][label] = {probe: {"share": float(np.mean([c > 0 for c in cs])), "mean_count": float(np.mean(cs))}
                               for probe, cs in by_probe.items()}
    for label, pool in (("entigraph", "entigraph"), ("base", "entigraph"), ("rephrase", "rephrase"), ("raw", "raw")):
        run = next((m.run for m in METHODS if m.label == label), None)
        recs = load_records(run) if run else {}
        if pool not in present:
            continue
        for probe in PROBES:
            closed = recs.get(("closed", probe), {})
            inside = [closed[q]["correct"] for q in closed if q in present[pool]]
            outside = [closed[q]["correct"] for q in closed if q not in present[pool]]
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


def unit(name: str) -> str:
    """What one evaluated item of a benchmark is called in headings."""
    return "questions" if name == "QuALITY" else "probes"


def pct(x: float, sign: str = "") -> str:
    """Whole points when exact (n = 50 gives steps of 2), else one decimal (n = 40: steps of 2.5)."""
    return f"{x:{sign}.0f}" if abs(x - round(x)) < 0.05 else f"{x:{sign}.1f}"


def fmt_acc(r: dict | None) -> str:
    if not r:
        return "—"
    return f"{pct(r['accuracy'])} [{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]"


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def markdown(res: dict, probes: dict[str, str] = PROBES) -> str:
    ms, refs = res["methods"], res.get("refs", ["base", "raw"])
    lines = []
    for probe, name in probes.items():
        lines += [f"**{name[0].upper() + name[1:]} {unit(name)}** (accuracy %, 95 % bootstrap interval; n = "
                  f"{next((e['results'].get(f'closed/{probe}', {}).get('n') for e in ms.values() if e['results'].get(f'closed/{probe}')), 0)} {unit(name)})", "",
                  "| method | synthetic tokens | training tokens | closed-book | RAG (top 3) | oracle | gap closed | "
                  + " | ".join(f"vs {REF_NAMES.get(r, r)}, closed (McNemar p)" for r in refs) + " |",
                  "|---|---:|---:|---|---|---|---:|" + "---|" * len(refs)]
        for label, e in ms.items():
            rs = e["results"]
            train_tokens = sum(e.get("train_tokens_by_source", {}).values())
            gap = res["gap_closed"].get(f"{label}/{probe}")
            cells = []
            for ref in refs:
                p = res["paired"].get(f"{label} vs {ref}: closed/{probe}")
                cells.append("—" if not p else f"{pct(p['accuracy_diff'], '+')} (p = {fmt_p(p['mcnemar']['p'])})")
            lines.append(
                f"| {label} | {e['synthetic_tokens']:,} | {train_tokens:,} | {fmt_acc(rs.get(f'closed/{probe}'))} | "
                f"{fmt_acc(rs.get(f'rag/{probe}'))} | {fmt_acc(rs.get(f'oracle/{probe}'))} | "
                f"{'—' if gap is None else f'{100 * gap:.0f} %'} | {' | '.join(cells)} |")
        lines.append("")
    has_loglik = any(not np.isnan(p["logprob_diff"]["diff"]) for p in res["paired"].values())
    lines += [] if not has_loglik else ["**Target log-likelihood** (mean per-token log-probability of the right answer, closed-book; "
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
            if label != "base" and has_loglik:
                lines.append(f"| {label} | {name} | {' | '.join(cells)} |")
    lines += ["", "**With retrieval**: RAG with each trained model against RAG with the base model, same probes", "",
              "| method | probes | RAG vs base RAG: Δ acc (McNemar p) | Δ log-lik [95 % CI] |", "|---|---|---|---|"]
    for label in ms:
        for probe, name in probes.items():
            p = res["paired"].get(f"{label} vs base: rag/{probe}")
            if p:
                d = p["logprob_diff"]
                logp = "—" if np.isnan(d["diff"]) else f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
                lines.append(f"| {label} | {name} | {pct(p['accuracy_diff'], '+')} (p = {fmt_p(p['mcnemar']['p'])}) | {logp} |")
    lines += ["", "**Runs** (wall seconds per stage on this machine)", "",
              "| method | run | what | steps | stage seconds |", "|---|---|---|---:|---|"]
    for label, e in ms.items():
        t = ", ".join(f"{k} {v:.0f}" for k, v in e.get("timings_s", {}).items() if k != "report")
        lines.append(f"| {label} | `runs/{e['run']}` | {e['what']} | {e.get('steps') or '—'} | {t} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path, probes: dict[str, str] = PROBES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = res["methods"]
    curve = [lab for lab in ("eg-eighth", "eg-quarter", "eg-half", "entigraph") if lab in ms]
    rows = [("accuracy", "accuracy (%)")]
    if any(not np.isnan(p["logprob_diff"]["diff"]) for p in res["paired"].values()):  # not for multiple-choice questions
        rows.append(("mean_target_logprob", "target log-likelihood / token"))
    fig, axes = plt.subplots(len(rows), len(probes), figsize=(max(8, 5 * len(probes)), 3.5 * len(rows) + 1),
                             sharex=True, squeeze=False)
    for col, (probe, name) in enumerate(probes.items()):
        for row, (key, label) in enumerate(rows):
            ax = axes[row][col]
            xs = [ms[lab]["synthetic_tokens"] for lab in curve]
            settings = [("closed", "o", "tab:blue", "EntiGraph CPT, closed-book")]
            if key == "accuracy":  # the RAG curve: does training on synthetic text cost in-context reading?
                settings.append(("rag", "s", "tab:orange", "EntiGraph CPT + RAG"))
            for setting, marker, color, name_ in settings:
                rs = [ms[lab]["results"].get(f"{setting}/{probe}") for lab in curve]
                if not (rs and all(rs)):
                    continue
                ys = [r[key] for r in rs]
                err = None
                if key == "accuracy":
                    err = [[y - r["ci95"][0] for y, r in zip(ys, rs)], [r["ci95"][1] - y for y, r in zip(ys, rs)]]
                ax.errorbar(xs, ys, yerr=err, marker=marker, capsize=3, color=color, label=name_)
            for lab, style, color in (("base", ":", "grey"), ("raw", "--", "tab:red"), ("rephrase", "-.", "tab:green")):
                r = ms.get(lab, {}).get("results", {}).get(f"closed/{probe}")
                if r:
                    ax.axhline(r[key], ls=style, color=color, label=f"{lab}, closed-book")
            base_rs = ms.get("base", {}).get("results", {})
            if key == "accuracy" and base_rs.get(f"rag/{probe}"):
                ax.axhline(base_rs[f"rag/{probe}"][key], ls=":", color="tab:orange", label="base + RAG")
            if key == "accuracy" and name == "QuALITY":  # 4 options; the base model sits near it
                ax.axhline(25, ls="-", color="tab:purple", lw=0.6, label="chance (4 options)")
            if key == "accuracy" and base_rs.get(f"oracle/{probe}"):
                ax.axhline(base_rs[f"oracle/{probe}"][key], ls="-", color="black", lw=0.8, label="base + oracle document")
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{name} {unit(name)}")
            if row == len(rows) - 1:
                ax.set_xlabel("synthetic training tokens (one epoch)")
            if col == 0:
                ax.set_ylabel(label)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4 if len(probes) > 1 else 3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if len(rows) > 1 else 0.2, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


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
        res = compare(QUALITY_METHODS, QUALITY_PROBES, refs=("base", "raw", "raw-other"))
        saved["quality"] = res
        md = markdown(res, QUALITY_PROBES)
        plot(res, ROOT / "docs" / "img" / "efficacy-quality-scaling.png", QUALITY_PROBES)
        splice(ROOT / "docs" / "results.md", md, "quality")
        print(md)
    else:
        res = compare(METHODS)
        saved.update(res)
        md = markdown(res)
        plot(res, ROOT / "docs" / "img" / "efficacy-scaling.png")
        splice(ROOT / "docs" / "results.md", md, "efficacy")
        cov = target_coverage()
        saved["target_coverage"] = cov
        splice(ROOT / "docs" / "results.md", coverage_markdown(cov), "coverage")
        print(md)
        print(coverage_markdown(cov))
    saved["environment"] = environment()
    results_path.write_text(json.dumps(saved, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
