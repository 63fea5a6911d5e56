"""What content fingerprints of a stage's input files cost (issue 32): the extract stage's input
digest over a corpus folder, timed three ways.

    .venv/bin/python bench/fingerprint_inputs.py [--files 2000] [--kb 50]

- cold: no hash cache; every file is read and hashed (xxh3-128), as on a run's first fingerprint
- warm: the hash cache in {run_dir}/.input-hashes.json holds every file (the usual case: a corpus
  that did not change since the last run); only stat calls and the cache's JSON
- stat only: path, size and mtime of every file (what the fingerprint was before issue 32)
Files are written, then left for more than fingerprints.RACY_NS (files changed that recently are not
remembered). Median of --repeats. Writes bench/results/fingerprint-inputs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from entigraph import fingerprints
from entigraph.config import load_config
from entigraph.corpus import list_files


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--kb", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fingerprint-bench-"))
    try:
        corpus = root / "corpus"
        corpus.mkdir()
        rng = random.Random(0)
        words = [f"w{i}" for i in range(5000)]
        for i in range(args.files):
            text = " ".join(rng.choice(words) for _ in range(args.kb * 1024 // 6))
            (corpus / f"doc{i:05d}.txt").write_text(text[: args.kb * 1024])
        time.sleep(fingerprints.RACY_NS / 1e9 + 0.5)
        cfg = load_config(None, [f"run_dir={root / 'runs'}", "name=bench", f"corpus.paths=[{corpus}]"])
        (root / "runs").mkdir()
        cache = Path(cfg.run_dir) / fingerprints.HASH_CACHE

        def cold() -> None:
            cache.unlink(missing_ok=True)
            fingerprints.input_digest(cfg, "extract")

        def warm() -> None:
            fingerprints.input_digest(cfg, "extract")

        def stat_only() -> None:
            listed, _ = list_files([str(corpus)])
            [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in listed]

        cold_s = timed(cold, args.repeats)
        warm()  # fills the cache
        warm_s = timed(warm, args.repeats)
        stat_s = timed(stat_only, args.repeats)
        total_mb = args.files * args.kb / 1024
        result = {
            "files": args.files, "file_kb": args.kb, "corpus_mb": round(total_mb, 1), "repeats": args.repeats,
            "cold_s": round(cold_s, 3), "cold_mb_per_s": round(total_mb / cold_s, 1),
            "warm_s": round(warm_s, 3), "stat_only_s": round(stat_s, 3),
            "cache_bytes": cache.stat().st_size,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "note": "page cache warm (files just written); a cold disk adds its read time to cold_s only",
        }
        out = Path(__file__).parent / "results" / "fingerprint-inputs.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
