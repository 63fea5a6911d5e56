"""Faithful synthesis recipe (issue 14): per-mode and mixed coverage of the kept synthetic corpus,
and the probe-target search, on Fictional Knowledge.

    .venv/bin/python bench/faithful_recipe.py tune RUN [RUN ...]   # tuning documents 10-14: choose
    .venv/bin/python bench/faithful_recipe.py report RUN           # reporting documents 0-9: measure

`tune` merges the kept passages of the named runs (the same documents, e.g. one run of the
generator-free modes and one of the LLM modes), then measures every mode alone and candidate mixes;
`report` measures one run of the recommended recipe (configs/recipes/faithful.yaml), per mode and
for the mix. Coverage, supported sentences and invented names as the filter stage's data report
counts them (entigraph/facts/coverage.py, k = 3); probe targets as bench/efficacy.py counts them
(case-insensitive, whitespace normalised, verbatim in the concatenated kept passages). Each part
rewrites its own section of bench/results/faithful-recipe.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from entigraph import artifacts
from entigraph.facts.coverage import Coverage
from entigraph.facts.units import name_forms, source_units
from entigraph.records import SynthPassage, from_dict
from entigraph.modes import GENERATOR_FREE
from entigraph.text import words

ROOT = Path(__file__).resolve().parents[1]
FK = ROOT.parent / "shared" / "data" / "fictional-knowledge" / "dev.json"
OUT = ROOT / "bench" / "results" / "faithful-recipe.json"
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}
FREE = GENERATOR_FREE
BARS = {"covered_1": 0.95, "covered_k": 0.80, "supported_sentence_rate": 0.95, "invented_name_rate": 0.05,
        "paraphrased": 0.95, "composition": 0.80}


def _norm(text: str) -> str:  # as bench/efficacy.py counts probe targets
    return " ".join(text.lower().split())


def load_run(name: str) -> tuple[list, list, list[SynthPassage], list[dict], dict]:
    out = ROOT / "runs" / name
    docs, ents = artifacts.documents(out), artifacts.entities(out)
    kept = artifacts.kept(out)
    generated = [json.loads(l) for l in (out / "synthesize" / "passages.jsonl").read_text().splitlines() if l.strip()]
    report = json.loads((out / "filter" / "report.json").read_text())
    return docs, ents, kept, generated, report


def targets_for(docs) -> dict[str, list[str]]:
    data = json.loads(FK.read_text())
    by_text = {d["train_context"]: d for d in data}
    chosen = [by_text[d.text] for d in docs]  # the run's documents, whichever they are
    return {PROBES[k]: [_norm(t) for d in chosen for t in d[f"{k}_target"]] for k in PROBES}


def measure(passages: list[SynthPassage], units, vocab, forms, targets, k: int = 3) -> dict:
    cov = Coverage(units, vocab, k=k, forms=forms)
    for p in passages:
        cov.add(p.text, p.mode, p.doc_ids or None)
    every = cov.report()["modes"].get("*", {})
    blob = _norm("\n".join(p.text for p in passages))
    out = {"passages": len(passages), "tokens": sum(p.completion_tokens for p in passages),
           "words": sum(len(p.text.split()) for p in passages)}
    for key in ("covered_1", "covered_k", "supported_sentence_rate", "invented_name_rate", "restating_sentence_rate"):
        out[key] = every.get(key)
    for kind, ts in targets.items():
        out[kind] = sum(t in blob for t in ts) / len(ts) if ts else None
    out["meets"] = meets(out)
    return out


def meets(row: dict) -> bool:
    ok = True
    for key, bar in BARS.items():
        v = row.get(key)
        ok &= v is not None and (v <= bar if key == "invented_name_rate" else v >= bar)
    return bool(ok)


def first_permutations(passages: list[SynthPassage], n: int) -> list[SynthPassage]:
    """Of each section's permutations, the first n in synthesis order (a section: its set of units)."""
    seen: dict[frozenset, int] = defaultdict(int)
    out = []
    for p in sorted(passages, key=lambda p: p.seq):
        key = frozenset(p.unit_ids)
        if seen[key] < n:
            out.append(p)
        seen[key] += 1
    return out


def per_mode_gate(generated: list[dict], kept: list[SynthPassage]) -> dict:
    n_gen, n_kept = defaultdict(int), defaultdict(int)
    for g in generated:
        n_gen[g["mode"]] += 1
    for p in kept:
        n_kept[p.mode] += 1
    return {m: {"generated": n_gen[m], "kept": n_kept[m]} for m in n_gen}


def fmt(v, pct=True) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.0%}" if pct and isinstance(v, float) else f"{v:,}"


def table(rows: dict[str, dict]) -> str:
    cols = ["passages", "tokens", "covered_1", "covered_k", "supported_sentence_rate", "invented_name_rate",
            "restating_sentence_rate", "paraphrased", "composition", "meets"]
    head = "| texts | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [head, "|---" + "|---:" * len(cols) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(r.get(c), c not in ("passages", "tokens")) for c in cols) + " |")
    return "\n".join(lines)


def context(runs: list[str]):
    docs, ents, *_ = load_run(runs[0])
    units = source_units(docs, ents)
    vocab = {w for d in docs for w in words(d.title + "\n" + d.text)}
    return docs, ents, units, vocab, name_forms(ents)


def tune(runs: list[str]) -> dict:
    docs, ents, units, vocab, forms = context(runs)
    ids = [d.doc_id for d in docs]
    kept, gate = [], {}
    for i, run in enumerate(runs):
        d, _, k, generated, _ = load_run(run)
        assert [x.doc_id for x in d] == ids, f"{run} holds other documents"
        for p in k:
            p.seq += i * 1_000_000  # runs after one another
        kept += k
        gate.update(per_mode_gate(generated, k))
    targets = targets_for(docs)
    by_mode: dict[str, list[SynthPassage]] = defaultdict(list)
    for p in kept:
        by_mode[p.mode].append(p)
    rows = {"raw documents": measure([SynthPassage("raw", "raw", [], [d.doc_id], [], d.text) for d in docs],
                                     units, vocab, forms, targets)}
    for mode in sorted(by_mode, key=lambda m: (m not in FREE, m)):
        rows[mode] = {**measure(by_mode[mode], units, vocab, forms, targets), **gate.get(mode, {})}
    llm = [m for m in by_mode if m not in FREE]
    mixes = {}
    free = [m for m in FREE if m in by_mode]
    for n in (1, 2, 3):
        base = first_permutations(by_mode["permute"], n) if "permute" in by_mode else []
        for r in range(len(free)):
            for others in combinations([m for m in free if m != "permute"], r):
                name = f"permute x{n}" + "".join(f" + {m}" for m in others)
                mixes[name] = base + [p for m in others for p in by_mode[m]]
    mixes["generator-free, all"] = [p for m in free for p in by_mode[m]]
    mixes["LLM modes, all"] = [p for m in llm for p in by_mode[m]]
    for m in llm:
        mixes[f"generator-free + {m}"] = mixes["generator-free, all"] + by_mode[m]
    mixes["everything"] = kept
    mix_rows = {name: measure(ps, units, vocab, forms, targets) for name, ps in mixes.items()}
    print(table(rows), "\n")
    print(table(mix_rows))
    return {"runs": runs, "documents": ids, "units": len(units), "modes": rows, "mixes": mix_rows, "bars": BARS}


def report(run: str) -> dict:
    docs, ents, units, vocab, forms = context([run])
    _, _, kept, generated, rep = load_run(run)
    targets = targets_for(docs)
    by_mode: dict[str, list[SynthPassage]] = defaultdict(list)
    for p in kept:
        by_mode[p.mode].append(p)
    gate = per_mode_gate(generated, kept)
    rows = {"raw documents": measure([SynthPassage("raw", "raw", [], [d.doc_id], [], d.text) for d in docs],
                                     units, vocab, forms, targets)}
    for mode in sorted(by_mode, key=lambda m: (m not in FREE, m)):
        rows[mode] = {**measure(by_mode[mode], units, vocab, forms, targets), **gate.get(mode, {})}
    rows["recipe (all kept)"] = measure(kept, units, vocab, forms, targets)
    # the filter stage's own figures for the same corpus (they must agree with the row above)
    stage = rep["coverage"]["after"]["modes"]["*"]
    print(table(rows))
    synth = json.loads((ROOT / "runs" / run / "synthesize" / "summary.json").read_text())
    return {"run": run, "documents": [d.doc_id for d in docs], "units": len(units), "modes": rows,
            "filter_report_all_modes": {k: stage[k] for k in ("covered_1", "covered_k", "supported_sentence_rate",
                                                              "invented_name_rate")},
            "support_gate": rep.get("support"), "synthesis": {k: synth.get(k) for k in (
                "passages", "failed", "completion_tokens", "tokens_per_s", "seconds", "per_mode", "plans")},
            "bars": BARS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["tune", "report"])
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    res = tune(args.runs) if args.part == "tune" else report(args.runs[0])
    saved = json.loads(OUT.read_text()) if OUT.is_file() else {}
    saved[args.part] = res
    saved["environment"] = {"python": sys.version.split()[0], "machine": platform.machine()}
    OUT.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
