"""Regenerate README.md's demo section from a finished demo run (between <!-- demo:begin/end -->).

    .venv/bin/python scripts/demo_readme.py [runs/demo] --wall "14 min 2 s" --env "4 min 10 s"

--wall and --env are what `time make demo` printed on a fresh clone (the whole command, and the
environment part of it); the rest comes from the run folder: results.json, timings.json,
train/data/manifest.json and config.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from entigraph.reporting import pct
from entigraph.io import read_json
from entigraph.study.report import splice

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"base_closed": "base, closed-book", "cpt_closed": "adapted, closed-book",
          "base_rag": "base + RAG (hybrid MiniLM + BM25, top 3)", "cpt_rag": "adapted + RAG"}


def pair_line(p: dict) -> str:
    lo, hi = p["ci95"]
    return f"{100 * p['diff']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}], McNemar p = {p['mcnemar_p']:.2g}"


def section(run: Path, wall: str, env: str) -> str:
    res, timings = read_json(run / "results.json"), read_json(run / "timings.json")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    manifest = read_json(run / "train" / "data" / "manifest.json")
    conds, pairs = res["conditions"], {(p["a"], p["b"]): p for p in res["paired"]}
    rows = [f"| {LABELS.get(c, c)} | {pct(v['accuracy'])} | [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}] |"
            for c, v in conds.items()]
    learned, reads = pairs.get(("cpt_closed", "base_closed")), pairs.get(("cpt_rag", "base_rag"))
    by_source = ", ".join(f"{s.split(':')[0]} {n:,}" for s, n in manifest["train_tokens_by_source"].items() if n)
    stages = ", ".join(f"{s} {t:.0f} s" for s, t in timings.get("total", timings).items() if isinstance(t, (int, float)))
    lines = [
        f"From a fresh clone on this machine, `time make demo`: **{wall}** in all, of which {env} to build the "
        f"environment (the recipe loads no generator, so no vLLM environment is built).",
        "",
        "| condition | accuracy | 95 % CI (bootstrap) |", "| --- | --- | --- |", *rows, "",
    ]
    if learned:
        lines.append(f"- **Did the adapted model learn the documents?** Closed-book {pct(conds['base_closed']['accuracy'])} → "
                     f"{pct(conds['cpt_closed']['accuracy'])}: {pair_line(learned)}.")
    if reads:
        lines.append(f"- **Does it help or hurt retrieval?** RAG {pct(conds['base_rag']['accuracy'])} with the base model, "
                     f"{pct(conds['cpt_rag']['accuracy'])} with the adapted one: {pair_line(reads)}.")
    lines += [
        f"- Training: {manifest['train_tokens']:,} tokens ({by_source}), {manifest['steps']} steps at lr "
        f"{cfg['train']['lr']:g}.",
        f"- Stage times: {stages}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default=str(ROOT / "runs" / "demo"))
    ap.add_argument("--wall", required=True, help="the wall time of `make demo` on a fresh clone")
    ap.add_argument("--env", required=True, help="the part of it spent building the environment")
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    args = ap.parse_args()
    block = section(Path(args.run), args.wall, args.env)
    splice(Path(args.readme), block, "demo")
    print(block)


if __name__ == "__main__":
    main()
